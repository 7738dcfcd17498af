-- quickstart.lua: create a campaign, add an inbox and leads, build A/B
-- variants and three follow-ups, validate and launch it.
--
--   COLDSEND_API_KEY=cs_live_... lua5.4 examples/quickstart.lua
--
-- `make demo` runs it against a local sandbox (COLDSEND_BASE_URL set to it).
local coldsend = require "coldsend"

local cs = coldsend.client {}  -- key and URL from COLDSEND_API_KEY / COLDSEND_BASE_URL

-- 1. an inbox to send from; run again, the server has it already (409
-- conflict): use that one
local function smtp_inbox(fields)
  local inbox, err = cs:add_smtp_inbox(fields)
  if inbox then return inbox end
  if err.code ~= "conflict" then error(tostring(err), 0) end
  local page = 1
  while true do
    local list = assert(cs:list_inboxes { page = page, limit = 100 })
    for _, ib in ipairs(list.sender_accounts or {}) do
      if ib.email_address == fields.email_address then return ib end
    end
    if not (list.pagination and list.pagination.has_next) then break end
    page = page + 1
  end
  error(tostring(err), 0)
end

local inbox = smtp_inbox {
  email_address = "jane@example.com", display_name = "Jane from Example",
  inbox_type = "CUSTOM_SMTP",
  smtp_host = "smtp.example.com", smtp_port = 587,
  smtp_username = "jane@example.com", smtp_password = os.getenv("SMTP_PASSWORD") or "app-password",
  imap_host = "imap.example.com", imap_port = 993,
  imap_username = "jane@example.com", imap_password = os.getenv("IMAP_PASSWORD") or "app-password",
  daily_limit = 50,
}
print("inbox      ", inbox.inbox_id, inbox.email_address)

-- 2. the campaign
local c = assert(cs:create_campaign {
  name = "Q1 Product Launch Outreach",
  timezone = "America/New_York",
  sending_days = { 1, 2, 3, 4, 5 },
  sending_window_start = 9, sending_window_start_minute = 30,
  sending_window_end = 17,
  daily_limit_per_inbox = 30,
  enable_tracking = true,
})
print("created    ", c)
c.inbox_ids = { inbox.inbox_id }

-- 3. leads
local leads = {
  { email = "ada@example.org", first_name = "Ada", company = "Analytical Engines" },
  { email = "grace@example.org", first_name = "Grace", company = "Compilers Inc" },
  { email = "linus@example.org", first_name = "Linus", company = "Kernels Ltd" },
}
for _, lead in ipairs(leads) do assert(c:add_lead(lead)) end

-- 4. A/B variants, one per subject line, split evenly
local subjects = {
  "Quick question, {{first_name}}",
  "An idea for {{company}}",
  "{{first_name}}, 15 minutes next week?",
}
for _, subject in ipairs(subjects) do
  c:add_variant {
    subject_template = subject,
    email_content = "Hi {{first_name}},\n\nWe help teams like {{company}} ship faster.\n\nBest,\nJane",
  }
end
c:split_evenly()

-- 5. three follow-ups to those who did not reply
for step, days in ipairs { 3, 4, 7 } do
  c:add_sequence {
    trigger_type = "NOT_REPLIED", wait_days = days,
    variants = { {
      subject_template = "Re: following up (" .. step .. ")",
      email_content = "Hi {{first_name}},\n\nJust bumping this up in your inbox.\n\nJane",
    } },
  }
end

assert(c:validate())
print("pending    ", table.concat((function()
  local names = {}
  for k in pairs(c:changes()) do names[#names + 1] = k end
  table.sort(names)
  return names
end)(), ", "))

-- 6. launch: sends the pending changes and launch = true in one request
local ok, err = c:launch()
if not ok then
  print("launch failed: " .. tostring(err))
  os.exit(1)
end
assert(c:refresh())
print("launched   ", c)
print("status     ", c.status)
print("ready      ", c.is_launch_ready)
print("leads      ", c.total_leads)
