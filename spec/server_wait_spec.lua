-- server_wait_spec: one reading of the server's stated wait. For the same
-- answer, the error's retry_after, the wait the retry loop takes and the
-- client-side rate limiter's hold agree: all three come from
-- core.server_wait (the limiter's X-RateLimit-Reset window through
-- coldsend.retry.window_wait, a thin wrapper around it). The cases are
-- generated (Retry-After in seconds and as each HTTP date form,
-- X-RateLimit-Reset as a Unix time and as a delay, the 429 body's "Retry
-- after N seconds", their combinations and garbage) and run over the real
-- libcurl transport against spec/helpers/rawhttpd.lua, through a Lua
-- transport (and direct calls) for what no server sends, and against the
-- sandbox's own rate limit and its 429 fault.
local cjson = require "cjson"
local coldsend = require "coldsend"
local core = require "coldsend.core"
local retry = require "coldsend.retry"
local sandbox = require "spec.helpers.sandbox"

local KEY = "cs_live_" .. ("W41tK3y%08x"):format(math.random(0, 0x7fffffff))
local W = 1800000000     -- the client's wall clock when each case starts (2027)
local LONGEST = 3600     -- the limiter's hold is capped at its longest window
local MINUTE = 60        -- the window a Remaining of 0 without a stated reset holds
local MAX = 366 * 86400  -- core.server_wait's cap on any stated wait
local JITTER = 0.25      -- the first backoff with random() = 0.5 and the default base 0.5

local function imf(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
local function rfc850(t) return os.date("!%A, %d-%b-%y %H:%M:%S GMT", t) end
local function asctime(t) return os.date("!%a %b %e %H:%M:%S %Y", t) end

-- the same cases on every Lua and every run
local seed = 20261203
local function rand(lo, hi)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return lo + seed % (hi - lo + 1)
end

-- Each form: its name and a function of n giving the text sent and the
-- wait it states (nil: it states none).
local RETRY_AFTER = {
  { "no Retry-After" },
  { "Retry-After in seconds", function(n) return tostring(n), n end },
  { "Retry-After in seconds with a fraction", function(n) return n .. ".25", n + 1 end },
  { "Retry-After as an HTTP date", function(n) return imf(W + n), n end },
  { "Retry-After as an RFC 850 date", function(n) return rfc850(W + n), n end },
  { "Retry-After as an asctime date", function(n) return asctime(W + n), n end },
  { "Retry-After as a date in the past", function(n) return imf(W - n), 0 end },
  { "Retry-After of a hundred years", function() return "3155760000", MAX end },
  { "Retry-After of garbage", function() return "soon", nil end },
  { "Retry-After negative", function(n) return "-" .. n, nil end },
  { "Retry-After as a date with a bad month", function(n) return (imf(W + n):gsub(" %a%a%a ", " Foo ")), nil end },
}
local RESET = {
  { "no X-RateLimit-Reset" },
  { "X-RateLimit-Reset as a Unix time", function(n) return tostring(W + n), n end },
  { "X-RateLimit-Reset as a delay", function(n) return tostring(n), n end },
  { "X-RateLimit-Reset in the past", function(n) return tostring(W - n), 0 end },
  { "X-RateLimit-Reset of garbage", function() return "tomorrow", nil end },
}
local BODY = {
  { "no detail" },
  { "the detail's Retry after N seconds",
    function(n) return ("Rate limit exceeded. Retry after %d seconds."):format(n), n end },
  { "a detail without a wait", function() return "Rate limit exceeded.", nil end },
}

-- The documented reading: Retry-After first; else, for a 429 or an answer
-- whose X-RateLimit-Remaining is 0, X-RateLimit-Reset; else a 429's text.
local function expected(status, ra, reset, body, spent)
  if ra ~= nil then return ra end
  if status ~= 429 and not spent then return nil end
  if reset ~= nil then return reset end
  if status == 429 then return body end
  return nil
end

local cases = {}
local function add_cases(status, spent, bodies)
  for _, ra in ipairs(RETRY_AFTER) do
    for _, rs in ipairs(RESET) do
      for b = 1, bodies do
        local body = BODY[b]
        local case = { status = status, headers = {}, spent = spent,
          name = ("%d%s: %s, %s, %s"):format(status, spent and " with Remaining 0" or "",
            ra[1], rs[1], body[1]) }
        local text, wait
        local function draw(form) if form[2] then return form[2](rand(1, 5000)) end end
        text, case.ra = draw(ra)
        case.headers["Retry-After"] = text
        text, case.reset = draw(rs)
        case.headers["X-RateLimit-Reset"] = text
        if spent then case.headers["X-RateLimit-Remaining"] = "0" end
        text, wait = draw(body)
        case.detail = text
        case.wait = expected(status, case.ra, case.reset, wait, spent)
        cases[#cases + 1] = case
      end
    end
  end
end
add_cases(429, false, #BODY)
add_cases(503, false, 1)
add_cases(200, true, 1)

local function lower(headers)
  local out = {}
  for k, v in pairs(headers) do out[k:lower()] = v end
  return out
end

-- The limiter's hold the next request waits: the stated wait (capped at
-- the longest window) on a 429 or a spent window; a spent window with no
-- stated reset holds the minute; a 503's Retry-After is the loop's alone.
local function hold_of(case)
  if case.status == 429 or case.spent then
    if case.wait then return math.min(case.wait, LONGEST) end
    return case.spent and MINUTE or 0
  end
  return 0
end

-- A client on a clock that moves only when it sleeps; returns it and the
-- lists of its sleeps and of its retry delays (on_retry).
local function client(base, transport, max_retries, rate_limit)
  local t, slept, delays = 0, {}, {}
  local cs = coldsend.client {
    api_key = KEY, base_url = base, transport = transport, max_retries = max_retries,
    max_wait = 1e8, rate_limit = rate_limit,
    clock = function() return t end, wall_clock = function() return W + t end,
    sleep = function(s) slept[#slept + 1] = s; t = t + s end,
    random = function() return 0.5 end,
    on_retry = function(e) delays[#delays + 1] = e.delay end,
  }
  return cs, slept, delays
end

local function sum(list, from)
  local s = 0
  for i = from or 1, #list do s = s + list[i] end
  return s
end

local function header_lines(headers)
  local lines = {}
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  table.sort(lines)
  return table.concat(lines, "\n")
end

-- Runs one case through clients of `base` (with `transport`, nil for
-- libcurl); the answer is asked for with GET /headers?..., the next
-- request with GET /json.
local function check_case(case, base, transport)
  local query = { code = case.status, h = header_lines(case.headers),
    body = case.detail and cjson.encode { detail = case.detail } or "{}" }
  -- the error, and the hold the next request waits
  local cs, slept = client(base, transport, 0)
  local data, err = cs:request("GET", "/headers", nil, query)
  if case.status == 200 then
    assert(data, err)
  else
    assert.is_nil(data)
    assert.equal(case.wait, err.retry_after)
  end
  local before = #slept
  assert(cs:request("GET", "/json"))
  assert.equal(hold_of(case), sum(slept, before + 1))
  if case.status == 200 then return end
  -- the retry loop waits what the first error said, and the limiter adds
  -- nothing (the error returned is the second try's, read on a clock moved
  -- by the wait)
  local delays
  cs, slept, delays = client(base, transport, 1)
  assert.is_nil((cs:request("GET", "/headers", nil, query)))
  local delay = case.wait or JITTER
  assert.same({ delay }, delays)
  assert.same(delay > 0 and { delay } or {}, slept)
end

-- X-RateLimit-Remaining: 1 with each X-RateLimit-Reset form, on a 200:
-- the limiter allows one more request, then holds the minute window until
-- the reset (at most a minute), read as core.server_wait reads it.
local WINDOW_CASES = {}
for _, rs in ipairs(RESET) do
  local n = rand(1, 59)
  local text, wait
  if rs[2] then text, wait = rs[2](n) end
  WINDOW_CASES[#WINDOW_CASES + 1] = { name = rs[1], reset = text,
    hold = wait == nil and MINUTE or math.min(wait, MINUTE) }
end
WINDOW_CASES[#WINDOW_CASES + 1] = { name = "a reset past the minute", reset = tostring(W + 600),
  hold = MINUTE }

local function check_window(case, base, transport)
  local h = "X-RateLimit-Remaining: 1" .. (case.reset and "\nX-RateLimit-Reset: " .. case.reset or "")
  local cs, slept = client(base, transport, 0)
  assert(cs:request("GET", "/headers", nil, { code = 200, h = h }))
  assert(cs:request("GET", "/json"))
  assert.same({}, slept)
  assert(cs:request("GET", "/json"))
  assert.same(case.hold > 0 and { case.hold } or {}, slept)
end

describe("the server's stated wait", function()
  it("has generated cases of every form, combination and status", function()
    assert.equal(#RETRY_AFTER * #RESET * (#BODY + 2), #cases)
    local forms = {}
    for _, c in ipairs(cases) do forms[c.wait == nil and "none" or c.wait == 0 and "zero" or "some"] = true end
    assert.same({ none = true, zero = true, some = true }, forms)
  end)

  describe("direct calls", function()
    it("core.server_wait reads each case as documented", function()
      for _, case in ipairs(cases) do
        local got = core.server_wait(case.status, lower(case.headers),
          case.status == 429 and case.detail or nil, W)
        assert.equal(case.wait, got, case.name)
      end
    end)

    it("the error of core.parse_response says the same wait", function()
      for _, case in ipairs(cases) do
        if case.status ~= 200 then
          local body = case.detail and cjson.encode { detail = case.detail } or "{}"
          local data, err = core.parse_response(case.status, lower(case.headers), body, W)
          assert.is_nil(data)
          assert.equal(case.wait, err.retry_after, case.name)
        end
      end
    end)

    it("retry.window_wait reads X-RateLimit-Reset as core.server_wait does", function()
      for _, case in ipairs(cases) do
        assert.equal(case.reset, retry.window_wait(lower(case.headers), W), case.name)
        assert.equal(case.reset, retry.window_wait(case.headers, W), case.name)
      end
      assert.is_nil(retry.window_wait(nil, W))
      assert.is_nil(retry.window_wait({}, W))
      -- a value that is not a string is no header, for the error as for the limiter
      assert.is_nil(retry.window_wait({ ["x-ratelimit-reset"] = W + 5 }, W))
      assert.is_nil(core.server_wait(429, { ["x-ratelimit-reset"] = W + 5 }, nil, W))
      -- the boundary: a number up to 1e9 is a delay (capped), above it a Unix time
      assert.equal(MAX, retry.window_wait({ ["x-ratelimit-reset"] = "1000000000" }, W))
      assert.equal(0, retry.window_wait({ ["x-ratelimit-reset"] = "1000000001" }, W))
      assert.is_nil(retry.reset_in)
    end)
  end)

  describe("through a Lua transport", function()
    -- the answers rawhttpd gives; `spell` the header names
    local function transport_for(case, spell)
      return function(req)
        if req.url:find("/json", 1, true) then
          return { status = 200, headers = {}, body = '{"ok":true}' }
        end
        local body = case.detail and cjson.encode { detail = case.detail } or "{}"
        return { status = case.status, headers = spell(case.headers), body = body }
      end
    end

    it("error, retry loop and limiter agree in every case", function()
      for _, case in ipairs(cases) do
        local ok, why = pcall(check_case, case, "http://127.0.0.1:9", transport_for(case, lower))
        assert(ok, case.name .. ": " .. tostring(why))
      end
    end)

    it("the limiter holds a window until its X-RateLimit-Reset", function()
      for _, case in ipairs(WINDOW_CASES) do
        local transport = function(req)
          local headers = { ["x-ratelimit-remaining"] = "1", ["x-ratelimit-reset"] = case.reset }
          if req.url:find("/json", 1, true) then headers = {} end
          return { status = 200, headers = headers, body = '{"ok":true}' }
        end
        local ok, why = pcall(check_window, case, "http://127.0.0.1:9", transport)
        assert(ok, case.name .. ": " .. tostring(why))
      end
    end)

    it("agree on a 429 whose header names are not lower-cased (a user transport's)", function()
      local function as_spelled(h) return h end
      for _, case in ipairs(cases) do
        if case.status == 429 then
          local ok, why = pcall(check_case, case, "http://127.0.0.1:9", transport_for(case, as_spelled))
          assert(ok, case.name .. ": " .. tostring(why))
        end
      end
    end)
  end)

  describe("over libcurl, against a scripted server", function()
    -- one libcurl transport for every client: a client each would keep a
    -- connection each open until collected, and the sandbox started next
    -- inherits the descriptors
    local pipe, base, http
    setup(function()
      http = core.http {}
      pipe = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 300", "r"))
      local line = assert(pipe:read("*l"), "rawhttpd printed no port")
      base = "http://127.0.0.1:" .. assert(line:match("^(%d+) "), line)
    end)
    teardown(function()
      pcall(core.http_perform, { method = "GET", url = base .. "/__quit", headers = {},
        timeout = 5, connect_timeout = 5 })
      pipe:close()
      http = nil
      collectgarbage()
    end)

    it("error, retry loop and limiter agree in every case", function()
      for _, case in ipairs(cases) do
        local ok, why = pcall(check_case, case, base, http)
        assert(ok, case.name .. ": " .. tostring(why))
      end
    end)

    it("the limiter holds a window until its X-RateLimit-Reset", function()
      for _, case in ipairs(WINDOW_CASES) do
        local ok, why = pcall(check_window, case, base, http)
        assert(ok, case.name .. ": " .. tostring(why))
      end
    end)
  end)

  describe("against the sandbox", function()
    local sb
    setup(function()
      sb = sandbox.start { rate_limit = 2, rate_window = 30, latency_ms = 0 }
    end)
    teardown(function() sb:stop() end)
    before_each(function()
      sb:reset() -- any cs_ key, no counts
      sb:config { rate_limit = 2, rate_window = 30 }
      sb:clock { now = W }
    end)

    it("its rate limit: the spent window's reset is the limiter's hold and the 429's wait", function()
      local cs, slept = client(sb.url, nil, 0, { per_minute = 100 })
      assert(cs:list_campaigns())
      assert(cs:list_campaigns()) -- Remaining 0, Reset W + 30
      assert.same({}, slept)
      -- the limiter holds the key 30 s; the sandbox (its clock stands
      -- still) still refuses then, with the same 30 s
      local data, err = cs:list_campaigns()
      assert.same({ 30 }, slept)
      assert.is_nil(data)
      assert.equal(429, err.status)
      assert.equal(30, err.retry_after)
      -- a client without a limiter retries after what the 429 says
      local delays
      cs, slept, delays = client(sb.url, nil, 1, false)
      data, err = cs:list_campaigns()
      assert.is_nil(data)
      assert.equal(30, err.retry_after)
      assert.same({ 30 }, delays)
      assert.same({ 30 }, slept)
    end)

    it("its 429 fault: Retry-After and the detail's seconds, for generated waits", function()
      sb:config { rate_limit = false }
      for _, n in ipairs { 0, 1, rand(2, 59), rand(60, 3599), 3600, rand(3601, 86400) } do
        sb:fault { kind = "status", status = 429, retry_after = n, times = 1, method = "GET",
          path = "^/campaigns$" }
        local cs, slept = client(sb.url, nil, 0)
        local data, err = cs:list_campaigns()
        assert.is_nil(data)
        assert.equal(n, err.retry_after)
        assert(cs:list_campaigns())
        assert.equal(math.min(n, LONGEST), sum(slept))
        sb:fault { kind = "status", status = 429, retry_after = n, times = 1, method = "GET",
          path = "^/campaigns$" }
        local delays
        cs, slept, delays = client(sb.url, nil, 1)
        assert(cs:list_campaigns())
        assert.same({ n }, delays)
        assert.same(n > 0 and { n } or {}, slept)
      end
    end)
  end)
end)
