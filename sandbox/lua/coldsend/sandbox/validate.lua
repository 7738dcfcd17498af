--- coldsend.sandbox.validate: request checks as the ColdSend server does
-- them: field errors become pydantic-style items {loc=, msg=, type=} (a 422
-- `detail` array), rule errors are strings (a 400 `detail`).
--
-- The sandbox is deliberately strict where pydantic v1 would coerce: an
-- integer field takes a JSON integer (or an integral number), never a
-- string or a boolean; a string field takes a JSON string only.
local json = require "coldsend.json"

local M = {}

local null = json.null
M.null = null

function M.is_null(v) return v == nil or v == null end

local function copy_loc(loc, ...)
  local out = json.array()
  for i = 1, #loc do out[i] = loc[i] end
  for i = 1, select("#", ...) do out[#out + 1] = (select(i, ...)) end
  return out
end
M.loc = copy_loc

--- An error collector.
local Errs = {}
Errs.__index = Errs

function M.errors() return setmetatable({ list = json.array() }, Errs) end

function Errs:add(loc, msg, typ, ctx)
  self.list[#self.list + 1] = { loc = loc, msg = msg, type = typ, ctx = ctx }
end

function Errs:empty() return #self.list == 0 end

local function is_int(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
    and v == math.floor(v)
end
M.is_int = is_int

local function toint(v)
  return math.tointeger and math.tointeger(v) or v
end
M.toint = toint

--- Field checkers: each takes (errs, loc, value, spec) and returns the
-- cleaned value (or nil after recording an error).

function M.str(errs, loc, v, spec)
  if type(v) ~= "string" then
    errs:add(loc, "str type expected", "type_error.str")
    return nil
  end
  local n = utf8 and utf8.len(v) or #v
  if not n then
    errs:add(loc, "string is not valid UTF-8", "value_error.str.utf8")
    return nil
  end
  if spec.min and n < spec.min then
    errs:add(loc, ("ensure this value has at least %d characters"):format(spec.min),
      "value_error.any_str.min_length", { limit_value = spec.min })
    return nil
  end
  if spec.max and n > spec.max then
    errs:add(loc, ("ensure this value has at most %d characters"):format(spec.max),
      "value_error.any_str.max_length", { limit_value = spec.max })
    return nil
  end
  if spec.pattern and not v:match(spec.pattern) then
    errs:add(loc, ('string does not match regex "%s"'):format(spec.regex or spec.pattern),
      "value_error.str.regex", { pattern = spec.regex or spec.pattern })
    return nil
  end
  return v
end

function M.int(errs, loc, v, spec)
  if type(v) ~= "number" or not is_int(v) then
    errs:add(loc, "value is not a valid integer", "type_error.integer")
    return nil
  end
  v = toint(v)
  if spec.ge and v < spec.ge then
    errs:add(loc, ("ensure this value is greater than or equal to %d"):format(spec.ge),
      "value_error.number.not_ge", { limit_value = spec.ge })
    return nil
  end
  if spec.le and v > spec.le then
    errs:add(loc, ("ensure this value is less than or equal to %d"):format(spec.le),
      "value_error.number.not_le", { limit_value = spec.le })
    return nil
  end
  return v
end

function M.bool(errs, loc, v)
  if type(v) ~= "boolean" then
    errs:add(loc, "value could not be parsed to a boolean", "type_error.bool")
    return nil
  end
  return v
end

function M.enum(errs, loc, v, spec)
  if type(v) == "string" then
    for _, e in ipairs(spec.values) do
      if v == e then return v end
    end
  end
  local quoted = {}
  for i, e in ipairs(spec.values) do quoted[i] = "'" .. e .. "'" end
  errs:add(loc, "value is not a valid enumeration member; permitted: " .. table.concat(quoted, ", "),
    "type_error.enum", { enum_values = spec.values })
  return nil
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
function M.is_uuid(s) return type(s) == "string" and s:match(UUID) ~= nil end

function M.uuid(errs, loc, v)
  if not M.is_uuid(v) then
    errs:add(loc, "value is not a valid uuid", "type_error.uuid")
    return nil
  end
  return v:lower()
end

--- Email syntax: local@domain.tld with the usual characters.
function M.is_email(s)
  if type(s) ~= "string" or #s > 254 or #s < 3 then return false end
  local lp, dom = s:match("^([^@]+)@([^@]+)$")
  if not lp or #lp > 64 then return false end
  if not lp:match("^[%w!#$%%&'*+/=?^_`{|}~%.%-]+$") then return false end
  if lp:sub(1, 1) == "." or lp:sub(-1) == "." or lp:find("..", 1, true) then return false end
  if not dom:find(".", 1, true) then return false end
  for label in (dom .. "."):gmatch("([^.]*)%.") do
    if #label == 0 or #label > 63 then return false end
    if not label:match("^[%w%-]+$") or label:sub(1, 1) == "-" or label:sub(-1) == "-" then
      return false
    end
  end
  local tld = dom:match("%.([^.]+)$")
  if not tld or #tld < 2 or tld:match("^%d+$") then return false end
  return true
end

function M.email(errs, loc, v, spec)
  if type(v) ~= "string" then
    errs:add(loc, "str type expected", "type_error.str")
    return nil
  end
  if spec and spec.min and #v < spec.min then
    errs:add(loc, ("ensure this value has at least %d characters"):format(spec.min),
      "value_error.any_str.min_length", { limit_value = spec.min })
    return nil
  end
  if spec and spec.max and #v > spec.max then
    errs:add(loc, ("ensure this value has at most %d characters"):format(spec.max),
      "value_error.any_str.max_length", { limit_value = spec.max })
    return nil
  end
  if not M.is_email(v) then
    errs:add(loc, "value is not a valid email address", "value_error.email")
    return nil
  end
  return v
end

--- ISO 8601 date-time (pydantic's form: a date, T or space, a time, an
-- optional zone). Returns the string unchanged.
function M.datetime(errs, loc, v)
  if type(v) == "string" then
    local y, mo, d, h, mi, rest = v:match("^(%d%d%d%d)%-(%d%d?)%-(%d%d?)[T ](%d%d?):(%d%d)(.*)$")
    if y then
      local ok = true
      local s = rest:match("^:(%d%d)") ; if s then rest = rest:sub(4) end
      local frac = rest:match("^%.(%d+)") ; if frac then rest = rest:sub(#frac + 2) end
      local zone_ok = rest == "" or rest == "Z" or rest == "z"
        or rest:match("^[+-]%d%d:?%d%d$") or rest:match("^[+-]%d%d$")
      if not zone_ok then ok = false end
      mo, d, h, mi = tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
      if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or (s and tonumber(s) > 59) then ok = false end
      if ok then return v end
    end
  end
  errs:add(loc, "invalid datetime format", "value_error.datetime")
  return nil
end

function M.parse_date(v)
  if type(v) ~= "string" then return nil end
  local y, mo, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return nil end
  local t = os.time { year = y, month = mo, day = d, hour = 12 }
  local back = os.date("*t", t)
  if back.day ~= d then return nil end
  return y, mo, d
end

local zoneinfo_dir
do
  local f = io.open("/usr/share/zoneinfo/UTC", "rb")
  if f then f:close() zoneinfo_dir = "/usr/share/zoneinfo/" end
end

function M.timezone(errs, loc, v)
  v = M.str(errs, loc, v, { min = 1, max = 100 })
  if not v then return nil end
  local ok = v:match("^[%w_+%-]+[%w_+%-/]*$") and not v:find("..", 1, true)
  if ok and zoneinfo_dir then
    local f = io.open(zoneinfo_dir .. v, "rb")
    ok = f ~= nil
    if f then
      -- a directory opens but cannot be read
      ok = f:read(4) == "TZif"
      f:close()
    end
  end
  if not ok then
    errs:add(loc, "unknown IANA time zone: " .. v, "value_error.timezone")
    return nil
  end
  return v
end

--- A JSON array (Lua sequence) check.
function M.list(errs, loc, v, spec)
  if type(v) ~= "table" or getmetatable(v) ~= nil and getmetatable(v) ~= json.array_mt then
    errs:add(loc, "value is not a valid list", "type_error.list")
    return nil
  end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
      errs:add(loc, "value is not a valid list", "type_error.list")
      return nil
    end
  end
  -- a decoded `{}` looks like `[]`: both pass as an empty list
  if spec.min and n < spec.min then
    errs:add(loc, ("ensure this value has at least %d items"):format(spec.min),
      "value_error.list.min_items", { limit_value = spec.min })
    return nil
  end
  if spec.max and n > spec.max then
    errs:add(loc, ("ensure this value has at most %d items"):format(spec.max),
      "value_error.list.max_items", { limit_value = spec.max })
    return nil
  end
  return v
end

--- A JSON object check (a table with string keys, or empty).
function M.dict(errs, loc, v)
  if type(v) ~= "table" then
    errs:add(loc, "value is not a valid dict", "type_error.dict")
    return nil
  end
  for k in pairs(v) do
    if type(k) ~= "string" then
      errs:add(loc, "value is not a valid dict", "type_error.dict")
      return nil
    end
  end
  return v
end

--- Checks obj against fields = { {name, checker, spec..., required=, nullable=} }.
-- Returns the cleaned table (only present fields; explicit nulls kept as
-- json.null when nullable) and the set of unknown keys.
function M.object(errs, loc, obj, fields)
  local out, known = {}, {}
  for _, f in ipairs(fields) do
    known[f.name] = true
    local v = obj[f.name]
    local floc = copy_loc(loc, f.name)
    if v == nil then
      if f.required then errs:add(floc, "field required", "value_error.missing")
      elseif f.default ~= nil then out[f.name] = f.default end
    elseif v == null then
      if f.nullable then out[f.name] = null
      elseif f.required or not f.null_means_unset then
        errs:add(floc, "none is not an allowed value", "type_error.none.not_allowed")
      end
    else
      local cv = f.check(errs, floc, v, f)
      if cv ~= nil then out[f.name] = cv end
    end
  end
  local unknown = {}
  for k in pairs(obj) do
    if not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  table.sort(unknown)
  -- the server records ignored fields in its request log
  local sink = M.unknown_sink
  if sink then
    for _, k in ipairs(unknown) do
      local parts = {}
      for i = 2, #loc do parts[#parts + 1] = tostring(math.tointeger and math.tointeger(loc[i]) or loc[i]) end
      parts[#parts + 1] = k
      sink[#sink + 1] = table.concat(parts, ".")
    end
  end
  return out, unknown
end

--- Normalizes numbers decoded by cjson (floats under Lua 5.4) to integers
-- where integral, in place.
function M.normalize(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" then
        if is_int(x) and math.tointeger then v[k] = math.tointeger(x) or x end
      elseif type(x) == "table" then
        M.normalize(x)
      end
    end
  end
  return v
end

return M
