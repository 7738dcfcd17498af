-- hostile_driver.lua: decodes a fuzz input into calls of the C entry points that read Lua values, with hostile values.
-- Each operation is one byte (which entry point) and the values it needs,
-- decoded by `value` (a type byte, then its payload). The hostile kinds:
--   * "nasty" tables: a plain backing table behind a proxy whose __index,
--     __newindex, __len and __pairs allocate, run the collector, return
--     fresh copies of long strings, and (on cue) empty the backing table,
--     so a string C got a moment ago loses its last anchor;
--   * finaliser bombs: garbage whose __gc empties a table C is reading;
--   * cyclic tables and chains nested up to 3000 deep;
--   * strings up to 1 MiB, every other Lua type.
-- Every call runs under pcall: a Lua error is an accepted answer. A crash or
-- a sanitizer report is a bug; so is a broken invariant (noted, raised at
-- the end, out of every pcall).
--
-- Network: core.http and http_perform always get the URL
-- http://127.0.0.1:1/... and no proxy or a proxy on 127.0.0.1:1, whatever
-- the input says (a nasty table's __index returns those too), so libcurl's
-- connection is refused at once and nothing leaves the machine.
local core = require "coldsend.core"
local cjson = require "cjson"

local SAFE_URLS = { "http://127.0.0.1:1/x", "http://127.0.0.1:1/api/public/v1/campaigns",
  "https://127.0.0.1:1/y" }
local SAFE_PROXIES = { "", "http://127.0.0.1:1" }
local FORCED = { url = true, proxy = true, timeout = true, connect_timeout = true,
  ca_file = true, file = true }

local FIELDS = {}
for _, f in ipairs(core.campaign_fields()) do FIELDS[#FIELDS + 1] = f.name end
FIELDS[#FIELDS + 1] = "nope"

local KEYS = { "method", "url", "body", "headers", "multipart", "fresh", "timeout",
  "connect_timeout", "ca_file", "max_body", "proxy", "name", "value", "file", "filename",
  "content_type", "prefix", "offset", "length", "content-type", "Content-Type", "retry-after",
  "Retry-After", "x-ratelimit-reset", "x-ratelimit-remaining", "code", "message", "status",
  "method", "url", "problems", "missing_requirements", "retry_after", "attempts", "ambiguous",
  "field", "mapping", "max_problems", "chunk_rows", "chunk_bytes", "email", "first_name",
  "variant_name", "subject_template", "email_content", "distribution_percent", "step_number",
  "trigger_type", "wait_days", "variants", "sequences", "campaign_id", "id", "detail", "loc",
  "msg", "type", 1, 2, 3 }
for _, n in ipairs(FIELDS) do KEYS[#KEYS + 1] = n end

local STRINGS = { "", "\0", "A", "1", "Z", "[", "GET", "POST", "PUT", "DELETE", "PATCH", "get",
  "X-Key", "Content-Type", "application/json", "text/html", "7", "  12  ",
  "Wed, 21 Oct 2015 07:28:00 GMT", "0", "1e400", "-5", "NOT_REPLIED", "Email", "email",
  "invalid", "not_ready", "unprocessable", "retry after 5 seconds", "a\r\nb", "\xff\xfe",
  "550e8400-e29b-41d4-a716-446655440000", "{{first_name}}", string.rep("x", 300) }

local NUMBERS = { 0 / 0, 1 / 0, -1 / 0, -0.0, 0.5, 1.5, 1e308, 2 ^ 53, 2 ^ 63, -2 ^ 63,
  math.maxinteger, math.mininteger, 0, 1, 2, 3, 4, 5, 100, 101, 200, 204, 404, 422, 429, 503,
  999, 1000, -1, 2147483647, 2147483648 }

return function(data, userdata)
  local input = require("driver_input")(data)
  local byte, bytes, invariant = input.byte, input.bytes, input.invariant

  -- Allocates, then runs the collector: a step, or a full cycle on cue.
  local function churn(full)
    local junk = {}
    for i = 1, 8 do junk[i] = string.rep("j", 40 + i) .. i end
    if full then collectgarbage("collect") else collectgarbage("step", 0) end
    return junk
  end

  -- A fresh string equal to s: long strings are not interned, so nothing
  -- but the caller holds the copy.
  local function fresh(s)
    if type(s) ~= "string" then return s end
    return (s .. "\0"):sub(1, -2)
  end

  -- Garbage whose finaliser empties target (Lua 5.4 runs table __gc).
  local function bomb(target)
    setmetatable({}, { __gc = function()
      if type(target) == "table" then
        for k in next, target do rawset(target, k, nil) end
      end
    end })
  end

  local function safe(k, v)
    if k == "url" then return SAFE_URLS[(type(v) == "number" and 1 or 2)] end
    if k == "proxy" then return SAFE_PROXIES[v == nil and 1 or 2] end
    if k == "timeout" or k == "connect_timeout" then return 2 end
    if k == "ca_file" then return v ~= nil and "/nonexistent/ca.pem" or nil end
    if k == "file" then return v ~= nil and "/nonexistent/leads.csv" or nil end
    return v
  end

  -- A proxy over raw. mode bits: 1 full collections, 2 empty raw after
  -- each __index, 4 __len lies, 8 plant a finaliser bomb on raw.
  local function nasty(raw, mode)
    local mt = {}
    mt.__index = function(_, k)
      churn(mode & 1 ~= 0)
      local v = raw[k]
      if mode & 8 ~= 0 then bomb(raw) end
      if mode & 2 ~= 0 then
        for key in next, raw do raw[key] = nil end
      end
      if FORCED[k] then v = safe(k, v) end
      return fresh(v)
    end
    mt.__newindex = function(_, k, v)
      churn(false)
      rawset(raw, k, v)
    end
    mt.__len = function()
      churn(mode & 1 ~= 0)
      if mode & 4 ~= 0 then return ({ -1, 2 ^ 40, "x", nil, 3 })[(#raw % 5) + 1] end
      return #raw
    end
    mt.__pairs = function()
      churn(mode & 1 ~= 0)
      return next, raw, nil
    end
    return setmetatable({}, mt)
  end

  local value
  local function table_value(depth, t)
    if depth >= 5 then return {} end
    local tbl, count = {}, byte() % 8
    for i = 1, count do
      if t == 0 then tbl[i] = value(depth + 1)
      else tbl[KEYS[byte() % #KEYS + 1]] = value(depth + 1) end
    end
    return tbl
  end

  function value(depth)
    local t = byte() % 20
    if t == 0 then return nil
    elseif t == 1 then return byte() % 2 == 0
    elseif t == 2 then return NUMBERS[byte() % #NUMBERS + 1]
    elseif t == 3 then return (string.unpack("<i8", bytes(8)))
    elseif t == 4 then return (string.unpack("<d", bytes(8)))
    elseif t == 5 or t == 6 then return STRINGS[byte() % #STRINGS + 1]
    elseif t == 7 then return bytes(byte())
    elseif t == 8 then -- long: up to 1 MiB
      local s = STRINGS[byte() % #STRINGS + 1]
      if s == "" then s = "z" end
      return string.rep(s, math.min(byte() * byte() * 16 + 1, (1 << 20) // #s))
    elseif t == 9 or t == 10 then return table_value(depth, t - 9)
    elseif t == 11 or t == 12 or t == 13 then
      local raw = table_value(depth, t == 11 and 0 or 1)
      return nasty(raw, byte())
    elseif t == 14 then -- cyclic
      local c = table_value(depth, 1)
      c[KEYS[byte() % #KEYS + 1]] = c
      c[1] = c
      return c
    elseif t == 15 then -- a chain up to 3000 deep
      local root = {}
      local cur = root
      for _ = 1, byte() * 12 do
        local nxt = {}
        cur[KEYS[byte() % 4 + 1]] = nxt
        cur[1] = nxt
        cur = nxt
      end
      return root
    elseif t == 16 then
      local k = byte() % 3
      if k == 0 then return function() end
      elseif k == 1 then return function() error("called") end
      else return math.floor end
    elseif t == 17 then return userdata
    elseif t == 18 then return coroutine.create(function() end)
    else
      local k = byte() % 3
      if k == 0 then return cjson.null end
      if k == 1 then return core.campaign() end
      return io.stdout
    end
  end

  -- A request table: fuzzed fields, then the URL and proxy made safe.
  local function request()
    local raw = table_value(0, 1)
    for k in pairs(FORCED) do raw[k] = safe(k, raw[k]) end
    raw.url = raw.url or SAFE_URLS[1]
    if type(raw.multipart) == "table" and getmetatable(raw.multipart) == nil then
      for _, part in ipairs(raw.multipart) do
        if type(part) == "table" and getmetatable(part) == nil then
          part.file = safe("file", part.file)
        end
      end
    end
    if byte() % 2 == 0 then return nasty(raw, byte()) end
    if byte() % 4 == 0 then bomb(raw.headers) end
    return raw
  end

  local function check_error(err)
    invariant(core.is_error(err), "not an error object")
    invariant(type(err.code) == "string" and type(err.message) == "string",
      "error without code or message")
  end

  local http
  local campaign = core.campaign()
  local csv_path

  local ops = {
    function() -- core.http with a request table
      http = http or core.http { max_body = 4096 }
      local res, msg, code = http(request())
      invariant(res == nil and type(msg) == "string" and type(code) == "string",
        "core.http: a refused connection gave no failure")
    end,
    function() return core.http_perform(request()) end,
    function() -- core.http options
      local raw = table_value(0, 1)
      raw.proxy, raw.ca_file = safe("proxy", raw.proxy), safe("ca_file", raw.ca_file)
      local h = core.http(byte() % 2 == 0 and nasty(raw, byte()) or raw)
      h:close()
    end,
    function() -- parse_response
      local status = NUMBERS[byte() % #NUMBERS + 1]
      local headers = value(0)
      local body = value(0)
      if type(body) ~= "string" then body = '{"detail":[{"loc":["body","x",1],"msg":"m"}]}' end
      local a, err = core.parse_response(status, headers, body, byte() % 2 == 0 and 1e9 or nil)
      if a == nil then check_error(err) end
    end,
    function() return core.server_wait(NUMBERS[byte() % #NUMBERS + 1], value(0), value(0), value(0)) end,
    function() -- the error type
      local t = value(0)
      if byte() % 2 == 0 then
        local ok, err = pcall(core.error, t)
        if ok then t = err end
      end
      local tostr = getmetatable(core.error { code = "x" }).__tostring
      local ok, s = pcall(tostr, t)
      invariant(not ok or type(s) == "string", "__tostring gave no string")
      pcall(core.is_error, t)
    end,
    function() campaign[FIELDS[byte() % #FIELDS + 1]] = value(0) end,
    function() return campaign:add_variant(value(0)) end,
    function() return campaign:add_sequence(value(0)) end,
    function() -- _apply: server data of any shape
      local c = core.campaign()
      c:_apply(value(0))
      pcall(tostring, c)
      pcall(c.validate, c)
      pcall(c.changes, c)
    end,
    function() -- csv_preflight's options and mapping
      if not csv_path then
        csv_path = os.tmpname()
        local f = assert(io.open(csv_path, "wb"))
        f:write("Email,Name, Zip \na@example.com,A,1\nb@example.com,B,2\na@example.com,C,3\n")
        f:close()
      end
      local opts = value(0)
      if byte() % 2 == 0 then
        local raw = table_value(0, 1)
        raw.mapping = value(0)
        opts = byte() % 2 == 0 and nasty(raw, byte()) or raw
      end
      if byte() % 3 == 0 then
        local real = table.sort
        table.sort = function(t) real(t); t[1] = false end
        local ok, e = pcall(core.csv_preflight, csv_path, opts)
        table.sort = real
        if not ok then error(e, 0) end
        return
      end
      return core.csv_preflight(csv_path, opts)
    end,
    function() -- build_request with a query
      local real = table.sort
      table.sort = function() error("table.sort called") end
      local ok, e = pcall(core.build_request, "http://127.0.0.1:1/api", STRINGS[byte() % 10 + 7],
        "/campaigns", value(0), value(0))
      table.sort = real
      invariant(ok or not tostring(e):find("table.sort called", 1, true),
        "build_request called table.sort")
    end,
    function() return core.json_encode(value(0)) end,
    function() return core.is_uuid(value(0)), core.email_problem(value(0)) end,
    function() churn(true) end,
  }

  while input.more() do
    pcall(ops[byte() % #ops + 1])
  end
  if http then http:close() end
  if csv_path then os.remove(csv_path) end
  collectgarbage("collect")
  input.check()
end
