-- setters_driver.lua: decodes a fuzz input into operations on coldsend.campaign userdata and checks what succeeds.
-- Each operation starts with one byte: below 128 assigns a value to a
-- field, 128-159 reads a field, 160 and above calls a method. Values are
-- decoded by `value` below (a type byte, then its payload). Every operation
-- runs under pcall: a Lua error is an accepted answer; a crash, a sanitizer
-- report or a broken invariant (noted by `invariant`, raised at the end,
-- out of every pcall) is a bug.
local core = require "coldsend.core"
local cjson = require "cjson"

local FIELDS = {}
for _, f in ipairs(core.campaign_fields()) do FIELDS[#FIELDS + 1] = f.name end
-- names that are not fields, or read-only ones, must be refused cleanly
for _, n in ipairs { "nope", "id", "status", "", "\0", "__index", "save" } do
  FIELDS[#FIELDS + 1] = n
end

-- Keys for generated tables: variant, sequence and server fields.
local KEYS = { "variant_name", "variant_label", "subject_template", "email_content",
  "distribution_percent", "step_number", "trigger_type", "wait_days", "enable_unsubscribe",
  "variants", "email", "first_name", "column", "campaign_id", "status", "is_launch_ready",
  "missing_requirements", "updated_at", "name", "success", "message", 1, 2, 3 }
for _, n in ipairs(FIELDS) do KEYS[#KEYS + 1] = n end

local STRINGS = { "", "\0", "A", "B", "ab", "A1", "Q1 Product Launch Outreach", "NOT_REPLIED",
  "NOT_OPENED", "OPENED_BUT_NOT_REPLIED", "550e8400-e29b-41d4-a716-446655440000",
  "550E8400-E29B-41D4-A716-44665544000G", "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  "2024-01-15", "2024-02-30", "2024-01-15T10:30:00Z", "Europe/London", "Mars/Base",
  "{{first_name}}", "{{", "}}", "Hi {{first_name}}, a question", "\xc3\xa9t\xc3\xa9",
  "\xff\xfe", "\xed\xa0\x80", "\xf4\x90\x80\x80", "DRAFT", "ACTIVE", "email", "leads",
  "https://api.coldsend.pro/api/public/v1", "http://127.0.0.1:1/x", "%s%n%d",
  "\r\nX-Injected: 1", string.rep("x", 255), string.rep("y", 256) }

local NUMBERS = { 0 / 0, 1 / 0, -1 / 0, -0.0, 0.5, 1.5, 29.999999, 1e308, -1e308, 2 ^ 53,
  2 ^ 63, -2 ^ 63, math.maxinteger, math.mininteger, 0, 1, 2, 3, 4, 5, 7, 8, 10, 23, 24,
  25, 30, 31, 33, 34, 59, 60, 99, 100, 101, 255, 256, -1 }

local OPS = { "create", "save", "launch", "get", "pause", "resume", "delete", "nope" }

local function hostile()
  local function boom() error("hostile metamethod") end
  return setmetatable({}, { __index = boom, __newindex = boom, __len = boom,
    __pairs = boom, __tostring = boom, __eq = boom, __lt = boom, __concat = boom })
end

return function(data, userdata)
  local input = require("driver_input")(data)
  local byte, bytes, invariant = input.byte, input.bytes, input.invariant

  local campaigns = { core.campaign() }

  local function value(depth)
    local t = byte() % 16
    if t == 0 then return nil
    elseif t == 1 then return byte() % 2 == 0
    elseif t == 2 then return NUMBERS[byte() % #NUMBERS + 1]
    elseif t == 3 then return string.unpack("<i2", bytes(2))
    elseif t == 4 then return (string.unpack("<d", bytes(8)))
    elseif t == 5 then return (string.unpack("<i8", bytes(8)))
    elseif t == 6 then return STRINGS[byte() % #STRINGS + 1]
    elseif t == 7 then return bytes(byte())
    elseif t == 8 then -- long: up to about 1 MiB
      local s = STRINGS[byte() % #STRINGS + 1]
      if s == "" then s = "z" end
      return string.rep(s, math.min(byte() * byte() + 1, (1 << 20) // #s))
    elseif t == 9 or t == 10 then
      if depth >= 4 then return {} end
      local tbl, count = {}, byte() % 7
      for i = 1, count do
        if t == 9 then tbl[i] = value(depth + 1)
        else tbl[KEYS[byte() % #KEYS + 1]] = value(depth + 1) end
      end
      return tbl
    elseif t == 11 then
      local k = byte() % 3
      if k == 0 then return function() end
      elseif k == 1 then return function() error("called") end
      else return math.floor end
    elseif t == 12 then return userdata
    elseif t == 13 then return hostile()
    elseif t == 14 then return coroutine.create(function() end)
    else
      local k = byte() % 3
      if k == 0 then return cjson.null end
      if k == 1 then return campaigns[byte() % #campaigns + 1] end
      return io.stdout -- a userdata of another type
    end
  end

  local function check_problems(ok, problems)
    invariant(ok == true or (ok == nil and type(problems) == "table"), "validate: bad answer")
    if ok == nil and type(problems) == "table" then
      invariant(#problems > 0, "validate: nil without a problem")
      for _, p in ipairs(problems) do
        invariant(type(p) == "table" and type(p.field) == "string" and type(p.message) == "string",
          "validate: a problem is not {field=, message=}")
      end
    end
  end

  -- validate()'s remembered pass must be what a fresh run answers: checked
  -- after every operation on the campaign it touched (the remembered answer
  -- first, so that a pass is remembered before the next change)
  local function same_as_fresh(c)
    local ok1, a1, b1 = pcall(c.validate, c)
    local ok2, a2, b2 = pcall(c._validate_fresh, c)
    invariant(ok1 == ok2, "validate: raises where a fresh one does not, or the reverse")
    if ok1 and ok2 then
      check_problems(a1, b1)
      invariant(a1 == a2, "validate: the remembered answer differs from a fresh one")
      invariant(a1 == true or #b1 == #b2, "validate: fewer or more problems than a fresh one")
    end
  end

  local methods = {
    function(c) return c:add_variant(value(0)) end,
    function(c) return c:add_sequence(value(0)) end,
    function(c)
      local ok, a, b = pcall(c.validate, c)
      if ok then check_problems(a, b) end
    end,
    function(c)
      local ok, ch = pcall(c.changes, c)
      if ok then
        invariant(type(ch) == "table", "changes: not a table")
        pcall(core.json_encode, ch)
      end
    end,
    function(c) return c:split_evenly() end,
    function(c)
      local ok, s = pcall(tostring, c)
      if ok then invariant(type(s) == "string", "tostring: not a string") end
    end,
    function(c)
      local ok = pcall(function()
        for k in pairs(c) do invariant(type(k) == "string", "pairs: a key is not a string") end
      end)
      local _ = ok
    end,
    function(c) return c:_apply(value(0)) end,
    function(c)
      local ok, req = pcall(c._request, c, OPS[byte() % #OPS + 1],
        byte() % 4 == 0 and value(0) or "http://127.0.0.1:8080/api/public/v1")
      if ok then
        invariant(type(req) == "table" and type(req.method) == "string"
          and type(req.url) == "string", "_request: not a request")
      end
    end,
    function(c) return c:_clear_dirty() end,
    function(c) return c:_discard() end,
    function(c) return c:close() end,
    function()
      local ok, c = pcall(core.campaign, byte() % 2 == 0 and value(0) or nil)
      if ok then campaigns[#campaigns + 1] = c end
    end,
    function(c) return c[value(0)] end,
    function(c) c[value(0)] = value(0) end,
  }

  while input.more() do
    local op = byte()
    local c = campaigns[byte() % #campaigns + 1]
    if op < 128 then
      local name, v = FIELDS[op % #FIELDS + 1], value(0)
      pcall(function() c[name] = v end)
    elseif op < 160 then
      local name = FIELDS[op % #FIELDS + 1]
      pcall(function() return c[name] end)
    else
      pcall(methods[op % #methods + 1], c)
    end
    same_as_fresh(c)
    same_as_fresh(campaigns[#campaigns]) -- one the operation may have made
  end

  -- whatever happened, every campaign must still print and validate or refuse
  for _, c in ipairs(campaigns) do
    pcall(tostring, c)
    local ok, a, b = pcall(c.validate, c)
    if ok then check_problems(a, b) end
  end
  input.check()
end
