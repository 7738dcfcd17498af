-- ab_test.lua: an A/B test of subject lines. One variant of the initial
-- email per subject line, built in a loop, the traffic split evenly
-- (34/33/33), saved in one request; then a plan for adding a fourth line.
--
--   COLDSEND_API_KEY=cs_live_... lua5.4 examples/ab_test.lua
local coldsend = require "coldsend"

local cs = coldsend.client {}  -- key and URL from COLDSEND_API_KEY / COLDSEND_BASE_URL

local subjects = {
  "Quick question, {{first_name}}",
  "An idea for {{company}}",
  "{{first_name}}, 15 minutes next week?",
}
local body = "Hi {{first_name}},\n\nWe help teams like {{company}} ship faster.\n\nBest,\nJane"

local c = assert(cs:create_campaign { name = "A/B test: subject lines" })
print("created   ", c)

for _, subject in ipairs(subjects) do
  c:add_variant { subject_template = subject, email_content = body }
end
c:split_evenly()          -- 34/33/33: the sum is always exactly 100
assert(c:validate())
assert(c:save())          -- one PUT with the three variants

for _, v in ipairs(c.variants) do
  print(string.format("variant %s  %3d%%  %s", v.variant_name, v.distribution_percent,
    v.subject_template))
end

-- What a fourth subject line would change, before sending anything: the
-- same loop, as a definition, planned against the server's campaign.
subjects[#subjects + 1] = "Worth a look, {{first_name}}?"
local variants = {}
for i, subject in ipairs(subjects) do
  variants[i] = { variant_name = string.char(64 + i), subject_template = subject,
                  email_content = body, distribution_percent = 25 }
end
local plan = assert(cs:plan { id = c.id, variants = variants })
print(plan)
local saved = assert(plan:apply())
print("saved     ", saved)
