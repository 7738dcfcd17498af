-- followups.lua: an initial email and three follow-ups, each with its own
-- trigger and wait, the first follow-up itself an A/B test.
--
--   COLDSEND_API_KEY=cs_live_... lua5.4 examples/followups.lua
local coldsend = require "coldsend"

local cs = coldsend.client {}  -- key and URL from COLDSEND_API_KEY / COLDSEND_BASE_URL

local c = assert(cs:create_campaign { name = "Follow-up sequence demo", daily_limit_per_inbox = 30 })
print("created   ", c)

c:add_variant {
  subject_template = "Quick question, {{first_name}}",
  email_content = "Hi {{first_name}},\n\nDoes {{company}} still run its outreach by hand?\n\nJane",
}

-- steps 2, 3 and 4 in order (step 1 is the initial email)
local followups = {
  { trigger = "NOT_OPENED", wait = 3, subjects = { "Did this get buried?", "Re: quick question" } },
  { trigger = "NOT_REPLIED", wait = 4, subjects = { "One more thought, {{first_name}}" } },
  { trigger = "OPENED_BUT_NOT_REPLIED", wait = 7, subjects = { "Closing the loop" } },
}
for _, f in ipairs(followups) do
  local variants = {}
  for i, subject in ipairs(f.subjects) do
    variants[i] = {
      subject_template = subject,
      email_content = "Hi {{first_name}},\n\nJust bumping this up in your inbox.\n\nJane",
    }
  end
  c:add_sequence { trigger_type = f.trigger, wait_days = f.wait, variants = variants }
end
c:split_evenly()          -- the two variants of step 2 get 50/50

local ok, problems = c:validate()
if not ok then
  for _, p in ipairs(problems) do print("problem   ", p.field, p.message) end
  os.exit(1)
end
assert(c:save())
assert(c:refresh())       -- what the server has now

for _, s in ipairs(c.sequences) do
  local names = {}
  for i, v in ipairs(s.variants) do
    names[i] = string.format("%s %d%%", v.variant_name, v.distribution_percent)
  end
  print(string.format("step %d    after %d days if %s: %s", s.step_number, s.wait_days,
    s.trigger_type, table.concat(names, ", ")))
end
