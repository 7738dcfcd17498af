--- coldsend.sandbox.campaign_schema: what a campaign may hold, as the API
-- reference (shared/spec/coldsend-api.md) bounds it: the fields of create
-- and update with their checks, variants and follow-up sequences, the
-- server's defaults, and the cross-field rules (sending window, variant and
-- sequence lists).
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local E = require "coldsend.sandbox.endpoint"

local M = {}

local array, null = json.array, json.null
local list_of, str_map = E.list_of, E.str_map

local STATUSES = { "DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "FAILED" }
local TRIGGERS = { "NOT_OPENED", "NOT_REPLIED", "OPENED_BUT_NOT_REPLIED" }
M.STATUSES = STATUSES

local int_list = list_of(V.int)
local uuid_list = list_of(V.uuid, {})

local function lead_mapping(errs, loc, v)
  v = str_map(errs, loc, v)
  if not v then return nil end
  if not v.email then
    errs:add(V.loc(loc, "email"), "field required", "value_error.missing")
    return nil
  end
  return v
end

local VARIANT = {
  { name = "variant_name", check = V.str, min = 1, max = 50, pattern = "^%a+$", regex = "^[A-Za-z]+$", default = "A" },
  { name = "variant_label", check = V.str, max = 100, nullable = true },
  { name = "subject_template", check = V.str, min = 1, max = 500, required = true },
  { name = "email_content", check = V.str, min = 10, max = 100000, required = true },
  { name = "distribution_percent", check = V.int, ge = 0, le = 100, default = 100 },
}

-- An object item checked against fields, then finished by fixup(cv).
local function object_of(fields, fixup)
  return function(errs, loc, x)
    if not V.dict(errs, loc, x) then return nil end
    local before = #errs.list
    local cv = V.object(errs, loc, x, fields)
    if #errs.list > before then return nil end
    fixup(cv)
    return cv
  end
end

local variant_list = list_of(object_of(VARIANT, function(cv)
  cv.variant_name = cv.variant_name:upper()
  if cv.variant_label == nil then cv.variant_label = null end
end), {})

local SEQUENCE = {
  { name = "step_number", check = V.int, ge = 2, le = 4, required = true },
  { name = "trigger_type", check = V.enum, values = TRIGGERS, required = true },
  { name = "wait_days", check = V.int, ge = 1, le = 30, required = true },
  { name = "enable_unsubscribe", check = V.bool, nullable = true },
  { name = "variants", check = variant_list, min = 1, required = true },
}

local sequence_list = list_of(object_of(SEQUENCE, function(cv)
  if cv.enable_unsubscribe == nil then cv.enable_unsubscribe = null end
end), {})

-- Fields common to create and update.
local CAMPAIGN_FIELDS = {
  { name = "name", check = V.str, min = 8, max = 255 },
  { name = "daily_limit_per_inbox", check = V.int, ge = 1, le = 100, nullable = true },
  { name = "start_date", check = V.datetime, nullable = true },
  { name = "timezone", check = V.timezone },
  { name = "sending_days", check = int_list, min = 1, max = 7, item_ge = 1, item_le = 7 },
  { name = "sending_window_start", check = V.int, ge = 0, le = 23 },
  { name = "sending_window_start_minute", check = V.int, ge = 0, le = 59 },
  { name = "sending_window_end", check = V.int, ge = 1, le = 24 },
  { name = "sending_window_end_minute", check = V.int, ge = 0, le = 59 },
  { name = "enable_tracking", check = V.bool },
  { name = "enable_unsubscribe", check = V.bool },
  { name = "ramp_up_enabled", check = V.bool },
  { name = "ramp_up_increment", check = V.int, ge = 1, le = 100000 },
  { name = "ramp_up_max_limit", check = V.int, ge = 1, le = 100000 },
}

local function fields_for(kind)
  local out = {}
  for i, f in ipairs(CAMPAIGN_FIELDS) do
    local g = {}
    for k, v in pairs(f) do g[k] = v end
    if kind == "create" and g.name == "name" then g.required = true end
    if kind == "update" and not g.nullable then g.null_means_unset = true end
    out[i] = g
  end
  if kind == "update" then
    out[#out + 1] = { name = "lead_mapping", check = lead_mapping, nullable = true }
    out[#out + 1] = { name = "inbox_ids", check = uuid_list, min = 1, null_means_unset = true }
    out[#out + 1] = { name = "variants", check = variant_list, min = 1, null_means_unset = true }
    out[#out + 1] = { name = "sequences", check = sequence_list, null_means_unset = true }
    out[#out + 1] = { name = "launch", check = V.bool, null_means_unset = true }
  end
  return out
end
-- The field bounds, for the contract spec that probes them against the client's.
M.SCHEMA = { campaign = CAMPAIGN_FIELDS, variant = VARIANT, sequence = SEQUENCE }

local CREATE_FIELDS = fields_for("create")
local UPDATE_FIELDS = fields_for("update")

local DEFAULTS = {
  daily_limit_per_inbox = null, start_date = null, timezone = "America/New_York",
  sending_window_start = 9, sending_window_start_minute = 0,
  sending_window_end = 17, sending_window_end_minute = 0,
  enable_tracking = false, enable_unsubscribe = true,
  ramp_up_enabled = false, ramp_up_increment = 50, ramp_up_max_limit = 500,
}
M.CREATE_FIELDS, M.UPDATE_FIELDS, M.DEFAULTS = CREATE_FIELDS, UPDATE_FIELDS, DEFAULTS

-- Cross-field rules. Window problems are field errors (422, pydantic root
-- validator style, located on the end field); list rules are 400 strings.
local function window_errors(errs, c)
  local s = c.sending_window_start * 60 + c.sending_window_start_minute
  local e = c.sending_window_end * 60 + c.sending_window_end_minute
  if c.sending_window_end == 24 and c.sending_window_end_minute ~= 0 then
    errs:add(array { "body", "sending_window_end_minute" },
      "sending_window_end_minute must be 0 when sending_window_end is 24", "value_error")
  elseif e <= s then
    errs:add(array { "body", "sending_window_end" },
      "sending window end must be after sending window start", "value_error")
  end
end

local function variant_rules(list, where)
  if #list > 4 then
    return ("Maximum 4 variants allowed%s (got %d)"):format(where, #list)
  end
  local sum, seen = 0, {}
  for _, v in ipairs(list) do
    sum = sum + v.distribution_percent
    if seen[v.variant_name] then
      return ("Duplicate variant name '%s'%s"):format(v.variant_name, where)
    end
    seen[v.variant_name] = true
  end
  if sum ~= 100 then
    return ("Variant distribution_percent values must sum to 100%s (got %d)"):format(where, sum)
  end
end

local function list_rules(fields)
  if fields.variants then
    local msg = variant_rules(fields.variants, "")
    if msg then return msg end
  end
  if fields.sequences then
    if #fields.sequences > 3 then
      return ("Maximum 3 follow-up sequences allowed (got %d)"):format(#fields.sequences)
    end
    local steps = {}
    for _, s in ipairs(fields.sequences) do
      if steps[s.step_number] then
        return ("Duplicate sequence step_number %d"):format(s.step_number)
      end
      steps[s.step_number] = true
      local msg = variant_rules(s.variants, (" in sequence step %d"):format(s.step_number))
      if msg then return msg end
    end
  end
end
M.window_errors, M.list_rules = window_errors, list_rules

return M
