--- coldsend.single_lead: one lead at a time. `add` is the campaign method
-- `c:add_lead{...}` (POST /campaigns/{id}/leads/manual); the checks of a
-- lead's fields (`lead_problem`, `custom_fields_problem`: strict UTF-8,
-- numbers that go out exactly) serve cs:update_lead too. CSV uploads are
-- coldsend.leads'.
-- @module coldsend.single_lead
local core = require "coldsend.core"
local writes = require "coldsend.writes"
local options = require "coldsend.options"
local json = require "coldsend.json"

local type, pairs, tostring, next = type, pairs, tostring, next
local format, floor = string.format, math.floor
local raise, shown = options.raise, options.shown

local M = {}

local function invalid(message, fields)
  fields = fields or {}
  fields.code, fields.message, fields.attempts = "invalid", message, 0
  return core.error(fields)
end

local LEAD_FIELDS = { email = true, first_name = true, last_name = true, company = true,
  custom_fields = true }

--- A value for a message: strings quoted, bytes past ASCII as \ddd (the
-- message itself stays valid UTF-8).
function M.shown_bytes(v)
  return (shown(v):gsub("[\128-\255]", function(ch) return "\\" .. ch:byte() end))
end

-- Strict UTF-8: no overlongs, surrogates or code points past U+10FFFF.
local function valid_utf8(s)
  local i, n = s:find("[\128-\255]"), #s
  while i and i <= n do
    local c = s:byte(i)
    local need
    local lo, hi = 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then need = 1
    elseif c >= 0xE0 and c <= 0xEF then
      need = 2
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      need = 3
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    for j = 1, need do
      local b = s:byte(i + j)
      if not b or b < (j == 1 and lo or 0x80) or b > (j == 1 and hi or 0xBF) then return false end
    end
    i = s:find("[\128-\255]", i + need + 1)
  end
  return true
end
M.valid_utf8 = valid_utf8

-- Float integers from 2^53 on may have lost digits (a 17-digit id read by
-- LuaJIT, say; 2^53 + 1 reads as 2^53): only those below it are exact.
local EXACT_FLOAT = 2 ^ 53
local mtype = math.type or function() return "float" end

--- What is wrong with a lead's custom_fields table, or nil: keys are
-- non-empty UTF-8 strings, values UTF-8 strings, booleans or numbers that go
-- out exactly (finite; an integral float below 2^53). Returns the message
-- and "type" (misuse: raise) or "value" (a bad datum: nil, err).
-- allow_null: cjson.null is a value too (update_lead's merge-patch removal).
function M.custom_fields_problem(v, allow_null)
  if type(v) ~= "table" then
    return format("bad value for 'custom_fields' (table expected, got %s)", type(v)), "type"
  end
  for ck, cv in pairs(v) do
    if type(ck) ~= "string" or ck == "" then
      return format("bad key in 'custom_fields' (non-empty string expected, got %s)",
        M.shown_bytes(ck)), "type"
    end
    if not valid_utf8(ck) then
      return format("bad key in 'custom_fields' (valid UTF-8 expected, got %s)", M.shown_bytes(ck)),
        "value"
    end
    local t, rule, kind = type(cv), nil, "type"
    if t == "string" then
      if not valid_utf8(cv) then rule, kind = "valid UTF-8", "value" end
    elseif t == "number" then
      if cv ~= cv or cv == math.huge or cv == -math.huge then
        rule = "string, number or boolean"
      elseif mtype(cv) ~= "integer" and cv == floor(cv) and math.abs(cv) >= EXACT_FLOAT then
        rule, kind = "a number JSON carries exactly: an integer of 2^53 or more held as a float has "
          .. "lost digits, pass it as a string or a Lua integer", "value"
      end
    elseif t ~= "boolean" and not (allow_null and cv == json.null) then
      rule = allow_null and "string, number, boolean or coldsend.null" or "string, number or boolean"
    end
    if rule then
      local got = t == "number" and cv == cv
        and (cv == floor(cv) and math.abs(cv) < 2 ^ 63 and format("%.0f", cv) or format("%.17g", cv))
        or M.shown_bytes(cv)
      return format("bad value for 'custom_fields.%s' (%s expected, got %s)", ck, rule, got), kind
    end
  end
end

--- The first bad datum of a lead whose types are right, or nil:
-- {field=, message=} for invalid UTF-8 in a text field or custom_fields,
-- or a custom_fields number that would not go out exactly.
function M.lead_problem(lead)
  for _, k in ipairs { "first_name", "last_name", "company" } do
    local v = lead[k]
    if type(v) == "string" and not valid_utf8(v) then
      return { field = k, message = format("bad value for '%s' (valid UTF-8 expected, got %s)", k,
        M.shown_bytes(v)) }
    end
  end
  if lead.custom_fields ~= nil then
    local why, kind = M.custom_fields_problem(lead.custom_fields, true)
    if why and kind == "value" then return { field = "custom_fields", message = why } end
  end
end

--- c:add_lead{email=, first_name=, last_name=, company=, custom_fields=}
-- Checked like a CSV row: a wrong type or an unknown field raises; an email
-- that is not an address gives nil, err (code "invalid") without sending.
-- Returns the lead object the server answers with.
function M.add(client, c, lead, opts)
  if type(lead) ~= "table" then
    raise(format("bad argument #1 to 'add_lead' (table expected, got %s)", type(lead)))
  end
  local id = options.saved_id(c, "add_lead")
  options.check_call_options(opts)
  for k, v in pairs(lead) do
    if not LEAD_FIELDS[k] then
      raise(format("no field '%s' in lead (email, first_name, last_name, company, "
        .. "custom_fields expected)", tostring(k)))
    end
    if k == "custom_fields" then
      local why, kind = M.custom_fields_problem(v)
      if kind == "type" then raise(why) end
    elseif type(v) ~= "string" then
      raise(format("bad value for '%s' (string expected, got %s)", k, shown(v)))
    elseif k ~= "email" and (#v > 255 or v:find("%z")) then
      raise(format("bad value for '%s' (string of at most 255 bytes expected, got %s)", k, shown(v)))
    end
  end
  if lead.email == nil then
    raise("missing field 'email' in lead")
  end
  -- a bad datum, as in a CSV row: nil, err and nothing sent
  local problem = M.lead_problem(lead)
  if problem then
    return nil, invalid(problem.message, { problems = { problem } })
  end
  local why = core.email_problem(lead.email)
  if why then
    return nil, invalid(format("invalid email %s: %s", shown(lead.email), why), {
      problems = { { field = "email", message = why } } })
  end
  local body = {}
  for k, v in pairs(lead) do body[k] = v end
  local data, err = writes.add_lead(client, id, body, opts)
  if data and next(data) == nil then -- an empty 200 is not a lead
    return nil, core.error { code = "protocol", method = "POST", attempts = 1, ambiguous = true,
      url = client.base_url .. "/campaigns/" .. id .. "/leads/manual",
      message = "expected a lead object in the response, got an empty body" }
  end
  return data, err
end

return M
