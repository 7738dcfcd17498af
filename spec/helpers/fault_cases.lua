--- spec/helpers/fault_cases.lua: the fault scenarios run against the sandbox with the real libcurl transport.
-- spec/faults_spec.lua runs each one and checks its outcome;
-- spec/security_spec.lua runs them all again with a recognisable key and
-- checks that the key shows up in nothing they produce.
--
--   local cases = require "spec.helpers.fault_cases"
--   local env = cases.env(sb, { api_key = ..., on_event = function(kind, payload) end })
--   for _, case in ipairs(cases) do case.run(env) end   -- each asserts its own outcome
--
-- Every case ends in success or a structured error; `env.client(opts)`
-- builds a client with small backoffs so that no case sleeps for real
-- more than a second, and `env.fake_time()` gives a clock and a sleep that
-- only pretend (for the cases whose server asks for long waits).
local assert = require "luassert"
local socket = require "socket"
local coldsend = require "coldsend"
local core = require "coldsend.core"

local M = {}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- A loopback port nothing listens on.
local function closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

--- The test environment: sb a started sandbox; opts.api_key (default
-- sb.key), opts.on_event(kind, payload) gets every hook payload, error and
-- result the cases produce.
function M.env(sb, opts)
  opts = opts or {}
  local env = { sb = sb, key = opts.api_key or sb.key, seen = opts.on_event or function() end }

  --- A client for the sandbox: no client-side limit, short timeouts, tiny
  -- backoffs; `o` overrides.
  function env.client(o)
    local t = {
      api_key = env.key, base_url = sb.url, rate_limit = false,
      timeout = 2, connect_timeout = 1, max_retries = 3,
      backoff_base = 0.01, backoff_cap = 0.05,
      on_request = function(e) env.seen("on_request", e) end,
      on_response = function(e) env.seen("on_response", e) end,
      on_retry = function(e)
        env.retries[#env.retries + 1] = e
        env.seen("on_retry", e)
      end,
    }
    for k, v in pairs(o or {}) do t[k] = v end
    env.retries = {}
    return coldsend.client(t)
  end

  --- A clock and a sleep that only pretend: sleeping moves the clock.
  function env.fake_time()
    local ft = { slept = {}, offset = 0 }
    function ft.clock() return core.now() + ft.offset end
    function ft.wall_clock() return core.time() + ft.offset end
    function ft.sleep(s)
      ft.slept[#ft.slept + 1] = s
      ft.offset = ft.offset + s
    end
    function ft.total()
      local n = 0
      for _, s in ipairs(ft.slept) do n = n + s end
      return n
    end
    return ft
  end

  --- A campaign made directly in the sandbox (not through the client).
  function env.campaign(name)
    local status, body = sb:request("POST", "/campaigns", { name = name or "Fault Target Campaign" })
    assert.equal(201, status)
    return body.campaign_id
  end

  --- Runs f, reports its results, checks the time it took (real seconds).
  function env.timed(limit, f)
    local t0 = core.now()
    local res, err = f()
    local took = core.now() - t0
    env.seen("result", res)
    if err ~= nil then env.seen("error", err) end
    assert.is_true(took < limit, ("took %.2f s, limit %.2f s"):format(took, limit))
    return res, err, took
  end

  --- The campaigns of that name in the sandbox (by its own list).
  function env.named(name)
    local status, body = sb:request("GET", "/campaigns?limit=100&search=" .. name:gsub(" ", "%%20"))
    assert.equal(200, status)
    local n = 0
    for _, c in ipairs(body.campaigns) do
      if c.name == name then n = n + 1 end
    end
    return n
  end

  return env
end

--- Checks the shape every error of a server call has.
local function structured(err, code)
  assert.is_true(coldsend.is_error(err), "not a coldsend error: " .. tostring(err))
  if type(code) == "table" then
    local ok = false
    for _, c in ipairs(code) do ok = ok or err.code == c end
    assert.is_true(ok, "code " .. tostring(err.code))
  elseif code then
    assert.equal(code, err.code)
  end
  assert.is_string(err.message)
  assert.is_string(err.method)
  assert.is_string(err.url)
  assert.is_number(err.attempts)
  assert.is_string(tostring(err))
end
M.structured = structured

local function case(name, run)
  M[#M + 1] = { name = name, run = run }
end

local GET_PATH = "^/campaigns/"

------------------------------------------------------------------------
-- transport failures

case("connection refused: a GET is retried, then a network error", function(env)
  local cs = env.client { base_url = ("http://127.0.0.1:%d/api/public/v1"):format(closed_port()) }
  local res, err = env.timed(2, function()
    return cs:get_campaign("550e8400-e29b-41d4-a716-446655440000")
  end)
  assert.is_nil(res)
  structured(err, "network")
  assert.equal(4, err.attempts)
  assert.equal(3, #env.retries)
  assert.is_nil(err.ambiguous)
end)

case("connection refused: a POST is retried too (it never arrived)", function(env)
  local cs = env.client { base_url = ("http://127.0.0.1:%d/api/public/v1"):format(closed_port()) }
  local res, err = env.timed(2, function()
    return cs:create_campaign { name = "Never Arrived Campaign" }
  end)
  assert.is_nil(res)
  structured(err, "network")
  assert.equal(4, err.attempts)
  assert.is_nil(err.ambiguous)
end)

case("reset before the response: the GET is sent again and succeeds", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "close_before", reset = true, method = "GET", path = GET_PATH }
  local cs = env.client()
  local c, err = env.timed(2, function() return cs:get_campaign(id) end)
  assert.is_nil(err)
  assert.equal(id, c.id)
  assert.equal(2, env.sb:count("GET", GET_PATH))
  assert.equal("network", env.retries[1].code)
end)

case("reset half-way through the body: the GET is sent again and succeeds", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "close_mid_body", method = "GET", path = GET_PATH }
  local cs = env.client()
  local c, err = env.timed(2, function() return cs:get_campaign(id) end)
  assert.is_nil(err)
  assert.equal(id, c.id)
  assert.equal(2, env.sb:count("GET", GET_PATH))
end)

case("a response slower than the timeout: timed out, sent again, succeeds", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "delay", delay_ms = 1500, method = "GET", path = GET_PATH }
  local cs = env.client { timeout = 0.3 }
  local c, err, took = env.timed(1.2, function() return cs:get_campaign(id) end)
  assert.is_nil(err)
  assert.equal(id, c.id)
  assert.equal("timeout", env.retries[1].code)
  assert.is_true(took >= 0.3)
end)

------------------------------------------------------------------------
-- rate limiting and server errors

case("429 twice then 200, with Retry-After: waits what the server asked", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "status", status = 429, retry_after = 3, times = 2, method = "GET", path = GET_PATH }
  local ft = env.fake_time()
  local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock }
  local c, err = env.timed(1, function() return cs:get_campaign(id) end)
  assert.is_nil(err)
  assert.equal(id, c.id)
  assert.equal(2, #ft.slept)
  for _, s in ipairs(ft.slept) do assert.is_true(s >= 3, "slept " .. s) end
  assert.equal("rate_limited", env.retries[1].reason)
  assert.equal(3, env.sb:count("GET", GET_PATH))
end)

case("429 twice then 200, stating no wait: the client's own backoff", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "status", status = 429, times = 2, method = "GET", path = GET_PATH,
    body = { detail = "Too many requests" } }
  local ft = env.fake_time()
  local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock,
    backoff_base = 1, backoff_cap = 4, random = function() return 1 end }
  local c, err = env.timed(1, function() return cs:get_campaign(id) end)
  assert.is_nil(err)
  assert.equal(id, c.id)
  assert.same({ 1, 2 }, ft.slept) -- base * 2^(attempt-1), full jitter at its top
end)

case("the documented 429 (only the body says 'Retry after N seconds'): waits N", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "status", status = 429, times = 1, method = "GET", path = GET_PATH,
    body = { detail = "Rate limit exceeded. Retry after 7 seconds." } }
  local ft = env.fake_time()
  local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock,
    random = function() return 1 end }
  local c, err = env.timed(1, function() return cs:get_campaign(id) end)
  assert.is_nil(err)
  assert.equal(id, c.id)
  assert.same({ 7 }, ft.slept)
end)

case("a 429 asking for more than max_wait: rate_limited at once, retry_after is the ask", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "status", status = 429, retry_after = 86400 * 365, times = 0,
    method = "GET", path = GET_PATH }
  local ft = env.fake_time()
  local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock }
  local res, err = env.timed(1, function() return cs:get_campaign(id) end)
  assert.is_nil(res)
  structured(err, "rate_limited")
  assert.equal(86400 * 365, err.retry_after)
  assert.same({}, ft.slept)
  assert.equal(1, err.attempts)
  assert.matches("more than max_wait 60 s", err.message)
  -- a per-call max_wait lets a patient caller wait longer
  env.sb:control("DELETE", "/faults")
  env.sb:fault { kind = "status", status = 429, retry_after = 90, times = 1,
    method = "GET", path = GET_PATH }
  assert(cs:get_campaign(id, { max_wait = 120 }))
  assert.same({ 90 }, ft.slept)
end)

-- Faults on every GET of a campaign, and the structured error each ends in:
-- { name, fault, client options, code(s), attempts, status }.
local ALWAYS = {
  { "503 until the retries run out: a server error after max_retries + 1 tries",
    { kind = "status", status = 503 }, { max_retries = 2 }, "server", 3, 503 },
  { "an HTML 502 page: a server error, not a parse failure",
    { kind = "html" }, { max_retries = 1 }, "server", 2, 502 },
  { "a truncated JSON body: a structured error after the retries",
    { kind = "truncated" }, { max_retries = 1 }, { "network", "protocol" }, 2 },
  -- a read is tried again once, as the body may have been mangled on the way
  { "a 200 with a non-JSON body: a protocol error",
    { kind = "non_json" }, { max_retries = 1 }, "protocol", 2, 200 },
  { "a wrong Content-Type: a protocol error",
    { kind = "wrong_content_type" }, { max_retries = 1 }, "protocol", 2, 200 },
  -- not tried again: it would be as big the next time
  { "an oversized body: a protocol error at once, not a crash",
    { kind = "oversized" }, {}, "protocol", 1 },
}

for _, a in ipairs(ALWAYS) do
  local name, fault, options, code, attempts, status = a[1], a[2], a[3], a[4], a[5], a[6]
  case(name, function(env)
    local id = env.campaign()
    local f = { times = 0, method = "GET", path = GET_PATH }
    for k, v in pairs(fault) do f[k] = v end
    env.sb:fault(f)
    local cs = env.client(options)
    local res, err = env.timed(2, function() return cs:get_campaign(id) end)
    assert.is_nil(res)
    structured(err, code)
    assert.equal(attempts, err.attempts)
    if status then assert.equal(status, err.status) end
    assert.equal(attempts, env.sb:count("GET", GET_PATH))
  end)
end

------------------------------------------------------------------------
-- deadlines

case("the deadline expiring mid-backoff: stops before sleeping past it", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "status", status = 503, times = 0, method = "GET", path = GET_PATH }
  local ft = env.fake_time()
  local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock,
    max_retries = 10, backoff_base = 0.4, backoff_cap = 10, deadline = 1,
    random = function() return 1 end }
  local res, err = env.timed(1, function() return cs:get_campaign(id) end)
  assert.is_nil(res)
  structured(err, "server")
  assert.is_true(err.deadline)
  assert.equal(2, err.attempts)       -- slept 0.4; the next 0.8 would end past 1 s
  assert.same({ 0.4 }, ft.slept)
  assert.is_true(ft.total() <= 1)
end)

case("a per-call deadline shorter than a slow answer: a timeout within it", function(env)
  local id = env.campaign()
  env.sb:fault { kind = "delay", delay_ms = 3000, times = 0, method = "GET", path = GET_PATH }
  local cs = env.client { timeout = 10 }
  local res, err, took = env.timed(1.5, function() return cs:get_campaign(id, { deadline = 0.5 }) end)
  assert.is_nil(res)
  structured(err, "timeout")
  assert.is_true(took < 1.0, took)
end)

------------------------------------------------------------------------
-- creates: never a duplicate

-- A fault that hits the create after the server made the campaign: the
-- client does not send it again, and finds the campaign it made (not in
-- the snapshot of same-named campaigns taken before the POST).
local AFTER = {
  { kind = "close_before", reset = true },
  { kind = "close_before" },
  { kind = "close_mid_body" },
  { kind = "truncated" },
  { kind = "delay", delay_ms = 1200 },
  { kind = "status", status = 500 },
  { kind = "status", status = 502 },
  { kind = "status", status = 503 },
  { kind = "status", status = 504 },
  { kind = "html" },
  { kind = "non_json" },
  { kind = "wrong_content_type" },
}

for i, f in ipairs(AFTER) do
  local label = f.kind .. (f.status and (" " .. f.status) or "") .. (f.reset and " (reset)" or "")
  case("create hit by " .. label .. " after processing: not re-sent, found by the look-up", function(env)
    local name = "Ambiguous Create Campaign " .. i
    local fault = { method = "POST", path = "^/campaigns$", after = true }
    for k, v in pairs(f) do fault[k] = v end
    env.sb:fault(fault)
    local cs = env.client { timeout = 0.5 }
    local c, err = env.timed(2.5, function() return cs:create_campaign { name = name } end)
    assert.is_nil(err)
    assert.truthy(tostring(c.id):match(UUID))
    assert.equal(name, c.name)
    assert.equal(1, env.sb:count("POST", "^/campaigns$"))
    assert.equal(1, env.named(name))
  end)
end

case("create reset before processing: looked up, nothing found, sent again, made once", function(env)
  local name = "Lost Create Campaign"
  env.sb:fault { kind = "close_before", reset = true, method = "POST", path = "^/campaigns$" }
  local cs = env.client()
  local c, err = env.timed(2, function() return cs:create_campaign { name = name } end)
  assert.is_nil(err)
  assert.equal(name, c.name)
  assert.equal(2, env.sb:count("POST", "^/campaigns$"))
  assert.equal(1, env.named(name))
end)

case("create refused with 429, or 503 before acting: sent again after the look-up, made once",
  function(env)
  local name = "Retried Create Campaign"
  env.sb:fault { kind = "status", status = 429, retry_after = 0, method = "POST", path = "^/campaigns$" }
  env.sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$" }
  local cs = env.client()
  local c, err = env.timed(2, function() return cs:create_campaign { name = name } end)
  assert.is_nil(err)
  assert.equal(name, c.name)
  assert.equal(3, env.sb:count("POST", "^/campaigns$"))
  assert.equal(1, env.named(name))
end)

return M
