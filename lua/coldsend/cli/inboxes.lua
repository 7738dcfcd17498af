--- coldsend.cli.inboxes: `coldsend inboxes` (the sender accounts, every
-- page) and `coldsend inboxes add FILE`: the SMTP inboxes of an inbox
-- file, passwords from the environment (never from the file, never
-- printed), every inbox checked before the first is sent.
-- @module coldsend.cli.inboxes
local output = require "coldsend.cli.output"
local inputs = require "coldsend.cli.inputs"

local M = {}

local format = string.format
local out, err_line, report, print_json = output.out, output.err_line, output.report, output.print_json
local usage_error, clean, json, cell, objects = output.usage_error, output.clean, output.json, output.cell,
  output.objects
local client = inputs.client
local EXIT_OK = output.EXIT_OK

-- The password fields of an inbox and the variables they come from.
local PASSWORDS = { smtp_password = "COLDSEND_SMTP_PASSWORD", imap_password = "COLDSEND_IMAP_PASSWORD" }

-- The inboxes of an inbox file (one table of fields, or a list of them),
-- passwords filled in from the environment: FIELD_env names the variable,
-- else COLDSEND_SMTP_PASSWORD / COLDSEND_IMAP_PASSWORD (IMAP falls back to
-- the SMTP one). A password written in the file is refused.
local function inbox_file(w, path)
  local t, lerr = inputs.load_file(path, "inbox fields")
  if not t then usage_error("%s", lerr) end
  local list = t[1] ~= nil and t or { t }
  -- a list is 1..n and nothing else: an inbox past a gap, or fields beside
  -- the list, would be left out without a word
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > #list or k ~= math.floor(k) then
      usage_error("%s: a table of inbox fields, or a list of them, expected (the list has a key %s)",
        path, type(k) == "string" and format("%q", k) or tostring(k))
    end
  end
  for i, ib in ipairs(list) do
    local at = #list > 1 and format("%s: inbox %d", path, i) or path
    if type(ib) ~= "table" then usage_error("%s: a table of inbox fields expected", at) end
    for _, field in ipairs { "smtp_password", "imap_password" } do
      local default = PASSWORDS[field]
      if ib[field] ~= nil then
        usage_error("%s: '%s' is in the file; put the password in the environment (%s, or the variable %s_env names)",
          at, field, default, field)
      end
      local var = ib[field .. "_env"]
      if var ~= nil and (type(var) ~= "string" or not var:match("^[%a_][%w_]*$")) then
        usage_error("%s: bad value for '%s_env' (an environment variable name expected)", at, field)
      end
      ib[field .. "_env"] = nil
      local value = var and w.getenv(var)
      if not var then
        value = w.getenv(default)
        if (value == nil or value == "") and field == "imap_password" then
          default, value = PASSWORDS.smtp_password, w.getenv(PASSWORDS.smtp_password)
        end
      end
      if value == nil or value == "" then
        usage_error("%s: %s is not set (the %s of %s)", at, var or default, field, tostring(ib.email_address))
      end
      ib[field] = value
      require("coldsend.redact").add(output.hidden, value)
    end
  end
  return list
end

-- coldsend inboxes | inboxes add FILE
function M.inboxes(w, o)
  if #o.args > 0 and (o.args[1] ~= "add" or #o.args ~= 2) then
    usage_error("'inboxes' takes no arguments, or add FILE; see coldsend inboxes --help")
  end
  if #o.args == 0 then
    local cs = client(w, o)
    local items, err = inputs.pages(cs, "/sender-accounts", "sender_accounts", { limit = 100 })
    if not items then return report(w, err) end
    if o.json then print_json(w, json().array(items)) return EXIT_OK end
    for _, ib in ipairs(objects(items)) do
      out(w, format("%s  %-32s %-16s %6s/day  %s", cell(ib.inbox_id), cell(ib.email_address),
        cell(ib.inbox_type), cell(ib.daily_limit), cell(ib.overall_status)))
    end
    w.stderr:write(format("%d inbox%s\n", #items, #items == 1 and "" or "es"))
    return EXIT_OK
  end
  local list = inbox_file(w, o.args[2])
  local cs = client(w, o)
  -- every inbox checked before the first is sent: add_smtp_inbox checks
  -- the fields before its first request, which this client never sends
  local checker = require("coldsend").client { api_key = "cs_test_checking_only",
    base_url = "http://127.0.0.1/api/public/v1", rate_limit = false, max_retries = 0,
    transport = function() return nil, "not sent", "network" end }
  for i, ib in ipairs(list) do
    local ok, why = pcall(checker.add_smtp_inbox, checker, ib)
    if not ok then usage_error("%s%s: %s", o.args[2], #list > 1 and (": inbox " .. i) or "", clean(why)) end
  end
  local added = {}
  for i, ib in ipairs(list) do
    local data, err = cs:add_smtp_inbox(ib)
    if not data then
      if #list > 1 then
        err_line(w, format("%s: inbox %d (%s) was not added", o.args[2], i, tostring(ib.email_address)))
      end
      local code = report(w, err)
      if o.json then print_json(w, json().array(added)) end
      return code
    end
    added[#added + 1] = data
    if not o.json then
      out(w, format("added inbox %s %s (%s, %s/day, %s)", cell(data.inbox_id), cell(data.email_address),
        cell(data.inbox_type), cell(data.daily_limit), cell(data.overall_status)))
    end
  end
  if o.json then print_json(w, json().array(added)) end
  return EXIT_OK
end

return M
