-- campaign.lua: a campaign definition for the coldsend CLI.
--
--   coldsend plan examples/campaign.lua         # what apply would change
--   coldsend apply examples/campaign.lua        # create it (asks first)
--
-- The file is Lua returning a table of campaign fields, so variants can be
-- built with loops. Once created, add the printed `id = "..."` below: from
-- then on `apply` updates that campaign with only the fields that differ.
local subjects = {
  "Quick question, {{first_name}}",
  "An idea for {{company}}",
}

local variants = {}
for i, subject in ipairs(subjects) do
  variants[i] = {
    variant_name = string.char(64 + i),         -- A, B, ...
    subject_template = subject,
    email_content = "Hi {{first_name}},\n\nWe help teams like {{company}} ship faster.\n\nBest,\nJane",
    distribution_percent = math.floor(100 / #subjects),  -- 50/50
  }
end

return {
  -- id = "550e8400-e29b-41d4-a716-446655440000",
  name = "Q1 Product Launch Outreach",
  timezone = "America/New_York",
  sending_days = { 1, 2, 3, 4, 5 },
  sending_window_start = 9, sending_window_start_minute = 30,
  sending_window_end = 17,
  daily_limit_per_inbox = 30,
  enable_tracking = true,
  lead_mapping = { email = "Email", first_name = "First Name", company = "Company" },
  variants = variants,
  sequences = {
    { step_number = 2, trigger_type = "NOT_REPLIED", wait_days = 3,
      variants = { { variant_name = "A", subject_template = "Following up",
                     email_content = "Hi {{first_name}},\n\nJust bumping this up.\n\nJane",
                     distribution_percent = 100 } } },
  },
}
