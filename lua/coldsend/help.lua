--- coldsend.help: help in the REPL.
--
--    > coldsend.help()                          -- what there is
--    > coldsend.help "daily_limit_per_inbox"    -- a field: type, rule, default
--    > coldsend.help "save"                     -- a method: call and description
--    > coldsend.help "errors"                   -- the error codes
--
-- The text goes to `io.stdout` and is returned, except when called straight
-- from the interactive interpreter (stdin), which would echo it a second time.
-- @module coldsend.help
local core = require "coldsend.core"

local M = {}

local format, concat, sort = string.format, table.concat, table.sort

-- Client methods, in the order of the README's table.
local CLIENT = {
  { "campaign", "cs:campaign([id])", "A campaign handle, no I/O; without id a new definition that save() creates." },
  { "create_campaign", "cs:create_campaign(fields [, opts])",
    "POST /campaigns, then one PUT for variants, sequences, inboxes and mapping; returns the "
    .. "campaign, in DRAFT." },
  { "get_campaign", "cs:get_campaign(id [, opts])",
    "GET /campaigns/{id}: the campaign with its fields, status and readiness." },
  { "list_campaigns", "cs:list_campaigns([query [, opts]])",
    "GET /campaigns: one page, {campaigns=, pagination=}; query: page, limit, status, search, "
    .. "sort_by, sort_order, days." },
  { "each_campaign", "cs:each_campaign([query [, opts]])",
    "An iterator over every campaign of every page; raises the error object on failure." },
  { "plan", "cs:plan(definition [, opts])",
    "What applying a definition (campaign fields, plus id for an existing campaign) would "
    .. "change: one GET, no writes; plan:apply{launch=} does it." },
  { "get_lead", "cs:get_lead(campaign_id, lead_id [, opts])", "GET /campaigns/{id}/leads/{lead_id}." },
  { "update_lead", "cs:update_lead(campaign_id, lead_id, fields [, opts])",
    "PUT a lead: first_name, last_name, company, custom_fields (coldsend.null removes a key)." },
  { "add_smtp_inbox", "cs:add_smtp_inbox(fields [, opts])", "POST /sender-accounts/smtp; returns {inbox_id=, ...}." },
  { "list_inboxes", "cs:list_inboxes([query [, opts]])", "GET /sender-accounts." },
  { "campaign_analytics", "cs:campaign_analytics([query [, opts]])",
    "GET /analytics/campaigns: {status=, from_date=, to_date=}." },
  { "timeline", "cs:timeline([query [, opts]])", "GET /analytics/campaigns/timeline: {from_date=, to_date=}." },
  { "request", "cs:request(method, path [, body [, query [, opts]]])",
    "Any other call, with the same retries, limits and errors." },
}

-- Campaign methods: the C ones, then those that talk to the server.
local CAMPAIGN = {
  { "validate", "c:validate()",
    "Checks the rules that span fields (percentages sum to 100, window end after start, at most "
    .. "4 variants, follow-ups 2..4); true, or nil and an invalid error whose problems (and "
    .. "text) list every problem." },
  { "changes", "c:changes()",
    "The exact table the next save() sends: only the fields changed since the last save or "
    .. "refresh; it prints as the JSON body it becomes." },
  { "split_evenly", "c:split_evenly()",
    "Spreads 100 percent over the variants of each step (34/33/33); the sum is always exactly "
    .. "100." },
  { "add_variant",
    "c:add_variant{subject_template=, email_content= [, variant_name=, variant_label=, "
    .. "distribution_percent=]}",
    "Adds an A/B variant of the initial email (names A..D by default)." },
  { "add_sequence",
    "c:add_sequence{trigger_type=, wait_days=, variants={...} [, step_number=, "
    .. "enable_unsubscribe=]}",
    "Adds a follow-up (steps 2..4 in order); trigger NOT_OPENED, NOT_REPLIED or "
    .. "OPENED_BUT_NOT_REPLIED." },
  { "save", "c:save([opts])",
    "Validates, then sends only the changed fields (PUT); a campaign not yet created is created "
    .. "like create_campaign (POST, then one PUT); nothing when nothing changed." },
  { "launch", "c:launch([opts])",
    "Validates, then sends the pending changes with launch = true; a not_ready error lists what "
    .. "is missing." },
  { "refresh", "c:refresh([opts])", "Reloads the campaign from the server (GET), dropping local changes." },
  { "pause", "c:pause([opts])", "POST /campaigns/{id}/pause: stops an ACTIVE campaign." },
  { "resume", "c:resume([opts])", "POST /campaigns/{id}/resume: restarts a PAUSED campaign." },
  { "delete", "c:delete([opts])", "DELETE /campaigns/{id} (DRAFT or PAUSED only); true on success." },
  { "add_lead",
    "c:add_lead({email= [, first_name=, last_name=, company=, custom_fields=]} [, opts])",
    "POST /campaigns/{id}/leads/manual: one lead." },
  { "upload_leads", "c:upload_leads{file=, mapping= [, on_progress=, wait=, dry_run=]}",
    "Uploads a CSV of leads in chunks; returns a job with :wait() (see doc/leads.md)." },
  { "fields", "c:fields()",
    "An iterator over the fields, in a stable order: for k, v in c:fields() do ... end (what "
    .. "pairs(c) does; works on LuaJIT, which has no __pairs)." },
  { "diff", "c:diff(other)",
    "The changes from this campaign to another campaign or definition table, one line each (see "
    .. "coldsend.plan)." },
}

local MODULE = {
  { "client",
    "coldsend.client{api_key=, base_url=, timeout=, max_retries=, deadline=, max_wait=, "
    .. "rate_limit=, on_request=, on_response=, on_retry=, transport=}",
    "A client; the key from COLDSEND_API_KEY, the URL from COLDSEND_BASE_URL when not given. "
    .. "Server calls take a last table of per-call options (timeout, connect_timeout, deadline, "
    .. "max_retries, backoff_base, backoff_cap, max_wait); no single wait is longer than "
    .. "max_wait (default 60 s)." },
  { "help", "coldsend.help([topic])", "This help: a field, a method or 'errors'." },
  { "null", "coldsend.null", "JSON null, to set a field or a custom lead field to null." },
}

local ERRORS = [[
Misuse (a wrong type, a bad value, an unknown field) raises a string:
  bad value for 'daily_limit_per_inbox' (integer 1..100 expected, got 150)
Server calls return nil, err; err prints as one line and has code, message,
status, method, url and attempts. Codes:
  invalid           local validation failed, nothing sent (err.problems)
  not_ready         launch refused (err.missing_requirements)
  bad_request       400; unprocessable: 422 (err.details: {field=, message=, type=})
  auth, forbidden   401, 403 (err.required, err.granted)
  not_found         404; conflict: 409
  rate_limited      429 after retries (err.retry_after)
  server            5xx after retries
  timeout, network, tls   transport failures
  protocol          a response that is not what the API documents
err.ambiguous is true when a POST failed after it may have reached the server.]]

local function fields()
  return core.campaign_fields()
end

local function find_entry(list, name)
  for _, e in ipairs(list) do
    if e[1] == name then return e end
  end
end

local function field_text(f)
  local lines = { format("%s  (campaign field%s)", f.name, f.readonly and ", read-only" or "") }
  lines[#lines + 1] = "  type:    " .. tostring(f.type)
  if f.rule ~= nil then lines[#lines + 1] = "  rule:    " .. tostring(f.rule) end
  lines[#lines + 1] = "  default: " .. (f.default == nil and "none (null)"
    or require("coldsend.plan").show(f.default))
  if not f.readonly then
    lines[#lines + 1] = format("  c.%s = ...   checked at assignment", f.name)
  end
  return concat(lines, "\n")
end

-- Wraps words to lines of at most width characters, indented.
local function wrap(words, indent, width, sep)
  local lines, line = {}, indent
  for i, w in ipairs(words) do
    local piece = w .. (i < #words and sep or "")
    if #line + #piece + 1 > width and line ~= indent then
      lines[#lines + 1] = line
      line = indent
    end
    line = line .. (line == indent and "" or " ") .. piece
  end
  lines[#lines + 1] = line
  return concat(lines, "\n")
end

local function method_text(e, kind)
  local words = {}
  for w in e[3]:gmatch("%S+") do words[#words + 1] = w end
  return format("%s  (%s)\n%s", e[2], kind, wrap(words, "  ", 78, ""))
end

local function names_of(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e[1] end
  return out
end

local function overview()
  local writable, readonly = {}, {}
  for _, f in ipairs(fields()) do
    if f.readonly then readonly[#readonly + 1] = f.name else writable[#writable + 1] = f.name end
  end
  return concat({
    "coldsend " .. tostring(core._VERSION) .. ": the ColdSend campaign API",
    "",
    "  cs = coldsend.client{ api_key = ..., base_url = ... }",
    "  c = cs:campaign(id), cs:get_campaign(id) or cs:create_campaign{ name = ... }",
    "",
    "Client methods (cs:name(...)):",
    wrap(names_of(CLIENT), "  ", 78, ","),
    "Campaign methods (c:name(...)):",
    wrap(names_of(CAMPAIGN), "  ", 78, ","),
    "Campaign fields (c.name, checked as you assign them):",
    wrap(writable, "  ", 78, ","),
    "Read-only fields:",
    wrap(readonly, "  ", 78, ","),
    "Module: " .. concat(names_of(MODULE), ", ") .. "; errors: coldsend.help 'errors'",
    "",
    "coldsend.help 'name' tells more about any of them.",
  }, "\n")
end

-- Edit distance (two swapped letters count as one edit), for suggesting
-- names close to a misspelt topic or option.
local function distance(a, b)
  local prev2, prev = nil, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if prev2 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        cur[j] = math.min(cur[j], prev2[j - 2] + 1)
      end
    end
    prev2, prev = prev, cur
  end
  return prev[#b]
end

local function all_topics()
  local t = {}
  for _, f in ipairs(fields()) do t[#t + 1] = f.name end
  for _, list in ipairs { CLIENT, CAMPAIGN, MODULE } do
    for _, e in ipairs(list) do t[#t + 1] = e[1] end
  end
  t[#t + 1] = "errors"
  return t
end

local function close_matches(topic)
  local scored, seen = {}, {}
  local lower = topic:lower()
  for _, name in ipairs(all_topics()) do
    if not seen[name] then
      seen[name] = true
      -- a misspelt start of a long name counts as close too
      local d = math.min(distance(lower, name), distance(lower, name:sub(1, #lower)) + 1)
      local limit = math.max(1, math.floor(#lower / 3))
      if d <= limit or (#lower >= 3 and name:find(lower, 1, true)) then
        scored[#scored + 1] = { name = name, d = d }
      end
    end
  end
  sort(scored, function(x, y)
    if x.d ~= y.d then return x.d < y.d end
    return x.name < y.name
  end)
  local out = {}
  for i = 1, math.min(#scored, 5) do out[i] = scored[i].name end
  return out
end

--- The name in names closest to a misspelt name (edit distance at most a
-- third of its length), or nil.
-- @string name what was written
-- @tab names the names that exist: a list, or a set (name -> true)
-- @treturn ?string the closest name
function M.closest(name, names)
  if type(name) ~= "string" or name == "" then return nil end
  local list = {}
  if #names > 0 then list = names else for k in pairs(names) do list[#list + 1] = k end end
  sort(list)
  local best, best_d
  local lower = name:lower()
  local limit = math.max(1, math.floor(#lower / 3))
  for _, cand in ipairs(list) do
    local d = distance(lower, cand)
    if d <= limit and (not best_d or d < best_d) then best, best_d = cand, d end
  end
  return best
end

--- The message for an unknown option: `unknown option 'base_ulr' for
-- coldsend.client; did you mean 'base_url'?`. The one wording every
-- option check of the library uses.
-- @param name the option given
-- @string what what takes the options (`coldsend.client`, `call`, ...)
-- @tab known the options that exist (a set)
-- @treturn string the message
function M.unknown_option(name, what, known)
  local msg = format("unknown option '%s' for %s", tostring(name), what)
  local close = M.closest(name, known)
  if close then msg = msg .. format("; did you mean '%s'?", close) end
  return msg
end

--- The help text for a topic, without printing it.
-- @string[opt] topic a field or method name (`"save"`, `"c:save"`,
-- `"cs:get_campaign"`), `"errors"`, or nil for the overview
-- @treturn string the text
-- @treturn boolean false when the topic is unknown (the text then lists
-- close matches)
function M.text(topic)
  if topic == nil then return overview(), true end
  if type(topic) ~= "string" then
    error(format("bad argument #1 to 'help' (string expected, got %s)", type(topic)), 2)
  end
  local name = topic:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%(%)$", "")
  name = name:gsub("^coldsend%.", ""):gsub("^[%w_]+:", "")
  if name == "errors" or name == "error" then return ERRORS, true end
  local parts = {}
  for _, f in ipairs(fields()) do
    if f.name == name then parts[#parts + 1] = field_text(f) end
  end
  local e = find_entry(CLIENT, name)
  if e then parts[#parts + 1] = method_text(e, "client method") end
  e = find_entry(CAMPAIGN, name)
  if e then parts[#parts + 1] = method_text(e, "campaign method") end
  e = find_entry(MODULE, name)
  if e then parts[#parts + 1] = method_text(e, "module") end
  if #parts > 0 then return concat(parts, "\n\n"), true end
  local close = close_matches(name)
  local msg = format("no help for '%s'", topic)
  if #close > 0 then
    msg = msg .. "; did you mean: " .. concat(close, ", ") .. "?"
  else
    msg = msg .. "; coldsend.help() lists the fields and methods"
  end
  return msg, false
end

-- True when the call came straight from the interactive interpreter, which
-- prints what a call returns. Lua 5.4's REPL runs a line as `return <line>`,
-- a tail call: the help frames then sit right on the REPL's C frame.
local function getinfo(level)
  local ok, info = pcall(debug.getinfo, level + 1, "St") -- LuaJIT has no "t"
  if not ok then info = debug.getinfo(level + 1, "S") end
  return info
end

local function called_from_repl()
  local level, tail = 2, false
  while true do
    local info = getinfo(level)
    if not info then return false end
    if not info.source:find("coldsend[/\\]") then
      return tail and info.what == "C" and getinfo(level + 1) == nil
    end
    tail = info.istailcall == true
    level = level + 1
  end
end

--- Prints help to `io.stdout` and returns the text (nothing when typed at
-- the interactive prompt, which would print it twice).
-- @string[opt] topic a field, a method, `"errors"`, or nil for the overview
-- @treturn string the text (for an unknown topic: a message with close
-- matches)
function M.help(topic)
  local text = M.text(topic)
  io.stdout:write(text, "\n")
  if called_from_repl() then return end
  return text
end

-- The parameter names of a call as written in the tables above.
local function params(call)
  local inside = call:match("%((.*)%)$") or ""
  if inside:sub(1, 1) == "{" then return { "t" } end
  local out = {}
  for name in inside:gmatch("[%a_][%w_]*") do out[#out + 1] = name end
  return out
end

--- The campaign type (implemented in C) as an ldoc source, written from
-- `core.campaign_fields()` and the method descriptions above, so the API
-- reference cannot drift from the code (`make docs`).
-- @treturn string the text of a `.luadoc` file
function M.luadoc()
  local out = {
    "--- The campaign userdata (`coldsend.campaign`, implemented in C).",
    "-- Fields are read and assigned as `c.name`; every assignment is checked at",
    "-- once and a bad value raises, naming the field, the rule and the value.",
    "-- `pairs(c)` lists the fields in this order; `tostring(c)` is one line.",
    "-- Generated from `core.campaign_fields()` by `make docs`.",
    "-- @classmod coldsend.campaign",
    "",
  }
  for _, f in ipairs(fields()) do
    if f.readonly then
      out[#out + 1] = format("--- Read-only, set by the server: %s.", tostring(f.type))
    else
      out[#out + 1] = format("--- %s: %s.", tostring(f.type), tostring(f.rule))
    end
    out[#out + 1] = "-- Default: " .. (f.default == nil and "none (null)."
      or "`" .. require("coldsend.plan").show(f.default) .. "`.")
    out[#out + 1] = "-- @field " .. f.name
    out[#out + 1] = ""
  end
  for _, e in ipairs(CAMPAIGN) do
    out[#out + 1] = "--- " .. e[3]
    out[#out + 1] = "-- `" .. e[2] .. "`"
    for _, p in ipairs(params(e[2])) do
      out[#out + 1] = format("-- @param %s see the call above", p)
    end
    out[#out + 1] = "-- @function " .. e[1]
    out[#out + 1] = ""
  end
  return concat(out, "\n")
end

M.CLIENT_METHODS, M.CAMPAIGN_METHODS = CLIENT, CAMPAIGN

return M
