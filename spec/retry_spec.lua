-- retry_spec: the retry policy (coldsend.retry) on a fake clock and a fake random source.
local retry = require "coldsend.retry"

local function fixed(x) return function() return x end end

describe("retry.policy", function()
  it("has the documented defaults", function()
    assert.same({ max_retries = 3, base = 0.5, cap = 30 }, retry.policy())
    assert.is_nil(retry.policy().deadline)
  end)

  it("merges client options, then per-call options", function()
    local p = retry.policy({ max_retries = 5, base = 1, deadline = 60, api_key = "ignored" },
                           nil, { max_retries = 0, cap = 4 })
    assert.same({ max_retries = 0, base = 1, cap = 4, deadline = 60 }, p)
  end)

  it("lets a call switch a client deadline off with false", function()
    assert.is_nil(retry.policy({ deadline = 10 }, { deadline = false }).deadline)
  end)

  it("accepts integral floats for max_retries", function()
    assert.equal(2, retry.policy { max_retries = 2.0 }.max_retries)
  end)

  local bad = {
    { { max_retries = -1 }, "bad value for 'max_retries' (integer >= 0 expected, got -1)" },
    { { max_retries = 1.5 }, "bad value for 'max_retries' (integer >= 0 expected, got 1.5)" },
    { { max_retries = "3" }, "bad value for 'max_retries' (integer >= 0 expected, got \"3\")" },
    { { max_retries = math.huge }, "'max_retries' (integer >= 0 expected" },
    { { base = 0 }, "bad value for 'base' (number > 0 expected, got 0)" },
    { { base = 0 / 0 }, "bad value for 'base' (number > 0 expected" },
    { { base = math.huge }, "bad value for 'base'" },
    { { cap = -2 }, "bad value for 'cap' (number > 0 expected, got -2)" },
    { { cap = true }, "bad value for 'cap' (number > 0 expected, got boolean)" },
    { { deadline = 0 }, "bad value for 'deadline' (number > 0 or false expected, got 0)" },
    { { deadline = {} }, "bad value for 'deadline' (number > 0 or false expected, got table)" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[2], function()
      local ok, msg = pcall(retry.policy, case[1])
      assert.is_false(ok)
      assert.truthy(msg:find(case[2], 1, true), msg)
    end)
  end

  it("refuses an options value that is not a table", function()
    assert.has_error(function() retry.policy("fast") end, "bad options #1 (table expected, got string)")
  end)
end)

describe("retry.decide", function()
  local p = retry.policy { max_retries = 3 }
  local function http(status) return { status = status, headers = {} } end
  local function fail(code, sent, curl_code)
    return { code = code, info = { sent = sent, curl_code = curl_code } }
  end

  -- { outcome, label, expectation per method: "retry" | "final" | "ambiguous" }
  local M = { "GET", "HEAD", "PUT", "DELETE", "POST", "PATCH" }
  local table_ = {
    { http(429), "429", { "retry", "retry", "retry", "retry", "retry", "retry" }, "rate_limited" },
    { http(503), "503", { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "unavailable" },
    { http(500), "500", { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "server_error" },
    { http(502), "502", { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "server_error" },
    { http(504), "504", { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "server_error" },
    { http(501), "501", { "final", "final", "final", "final", "final", "final" } },
    { http(505), "505", { "final", "final", "final", "final", "final", "final" } },
    { http(400), "400", { "final", "final", "final", "final", "final", "final" } },
    { http(401), "401", { "final", "final", "final", "final", "final", "final" } },
    { http(403), "403", { "final", "final", "final", "final", "final", "final" } },
    { http(404), "404", { "final", "final", "final", "final", "final", "final" } },
    { http(409), "409", { "final", "final", "final", "final", "final", "final" } },
    { http(422), "422", { "final", "final", "final", "final", "final", "final" } },
    { http(301), "301", { "final", "final", "final", "final", "final", "final" } },
    { fail("network", false, 7), "network, not sent",
      { "retry", "retry", "retry", "retry", "retry", "retry" }, "network" },
    { fail("network", true, 56), "network, sent",
      { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "network" },
    { fail("timeout", false, 28), "timeout, not sent",
      { "retry", "retry", "retry", "retry", "retry", "retry" }, "timeout" },
    { fail("timeout", true, 28), "timeout, sent",
      { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "timeout" },
    { { code = "network" }, "network, no info",
      { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "network" },
    { fail("tls", false, 35), "tls handshake",
      { "retry", "retry", "retry", "retry", "retry", "retry" }, "tls_handshake" },
    { fail("tls", true, 35), "tls handshake, sent",
      { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "tls_handshake" },
    { fail("tls", false, 60), "tls verification",
      { "final", "final", "final", "final", "final", "final" } },
    { fail("tls", false, nil), "tls, no curl code",
      { "final", "final", "final", "final", "final", "final" } },
    { fail("protocol", true, 8), "protocol",
      { "retry", "retry", "final", "final", "ambiguous", "ambiguous" }, "protocol" },
    { fail("protocol", true, 23), "protocol, body over the cap",
      { "final", "final", "final", "final", "ambiguous", "ambiguous" } },
    { { code = "protocol", info = { sent = true, too_large = true } }, "protocol, too_large",
      { "final", "final", "final", "final", "ambiguous", "ambiguous" } },
    { fail("protocol", false, 1), "protocol, not sent",
      { "final", "final", "final", "final", "final", "final" } },
    { { status = 200, headers = {}, code = "protocol" }, "200 with a bad body",
      { "retry", "retry", "final", "final", "ambiguous", "ambiguous" }, "protocol" },
    { { status = 201, headers = {}, code = "protocol" }, "201 with a bad body",
      { "retry", "retry", "final", "final", "ambiguous", "ambiguous" }, "protocol" },
    { { status = 502, headers = {}, code = "protocol" }, "502 HTML page",
      { "retry", "retry", "retry", "retry", "ambiguous", "ambiguous" }, "server_error" },
    { fail("weird", false), "unknown transport code",
      { "final", "final", "final", "final", "final", "final" } },
  }

  for _, row in ipairs(table_) do
    for i, method in ipairs(M) do
      local want = row[3][i]
      it(method .. " after " .. row[2] .. ": " .. want, function()
        local again, reason, ambiguous = retry.decide(method, row[1], 1, p)
        assert.is_boolean(ambiguous)
        if want == "retry" then
          assert.is_true(again)
          assert.equal(row[4], reason)
          assert.is_false(ambiguous)
        elseif want == "ambiguous" then
          assert.is_false(again)
          assert.equal("not_idempotent", reason)
          assert.is_true(ambiguous)
        else
          assert.is_false(again)
          assert.equal("final", reason)
          assert.is_false(ambiguous)
        end
      end)
    end
  end

  it("takes the method in any case", function()
    assert.is_true((retry.decide("get", http(500), 1, p)))
    assert.is_false((retry.decide("post", http(500), 1, p)))
  end)

  it("retries while attempt <= max_retries, so max_retries = 3 allows 4 tries", function()
    for attempt = 1, 3 do
      assert.is_true((retry.decide("GET", http(503), attempt, p)))
    end
    local again, reason, ambiguous = retry.decide("GET", http(503), 4, p)
    assert.is_false(again)
    assert.equal("exhausted", reason)
    assert.is_false(ambiguous)
  end)

  it("never retries with max_retries = 0", function()
    local again, reason = retry.decide("GET", http(429), 1, retry.policy { max_retries = 0 })
    assert.is_false(again)
    assert.equal("exhausted", reason)
  end)

  it("keeps an ambiguous POST ambiguous on every attempt", function()
    local again, reason, ambiguous = retry.decide("POST", fail("timeout", true), 9, p)
    assert.is_false(again)
    assert.equal("not_idempotent", reason)
    assert.is_true(ambiguous)
  end)
end)

describe("retry.delay", function()
  local p = retry.policy { base = 0.5, cap = 30 }

  it("grows exponentially: base * 2^(attempt-1) at the top of the jitter", function()
    local want = { 0.5, 1, 2, 4, 8, 16, 30, 30 }
    for attempt, w in ipairs(want) do
      assert.equal(w, retry.delay(attempt, p, nil, fixed(1)))
    end
  end)

  it("is full jitter: random() times the ceiling", function()
    assert.equal(0, retry.delay(3, p, nil, fixed(0)))
    assert.equal(0.5, retry.delay(3, p, nil, fixed(0.25)))
    local seen = {}
    for i = 1, 4 do seen[i] = retry.delay(4, p, nil, fixed((i - 1) / 4)) end
    assert.same({ 0, 1, 2, 3 }, seen)
  end)

  it("never exceeds cap on its own", function()
    local small = retry.policy { base = 1, cap = 3 }
    for attempt = 1, 60 do
      local d = retry.delay(attempt, small, nil, fixed(0.999999))
      assert.is_true(d <= 3, "attempt " .. attempt)
    end
  end)

  it("uses math.random when no random source is given", function()
    for _ = 1, 50 do
      local d = retry.delay(2, p)
      assert.is_true(d >= 0 and d <= 1)
    end
  end)

  it("takes the server's stated wait exactly, shorter or longer than the backoff", function()
    assert.equal(7, retry.delay(1, p, 7, fixed(0.5)))
    assert.equal(2, retry.delay(5, p, 2, fixed(0.5)))
    assert.equal(120, retry.delay(1, p, 120, fixed(1)))
    assert.equal(0, retry.delay(4, p, 0, fixed(1)))
  end)
end)

-- The one reading of the server's wait: core.server_wait, which is also
-- what err.retry_after holds and what the loop and the limiter wait.
describe("core.server_wait", function()
  local core = require "coldsend.core"
  local NOW = 1700000000
  local function wait(status, h, msg) return core.server_wait(status, h, msg, NOW) end

  it("reads Retry-After in seconds, whole seconds rounded up", function()
    assert.equal(7, wait(429, { ["retry-after"] = "7" }))
    assert.equal(1, wait(503, { ["retry-after"] = " 0.25 " }))
    assert.equal(9, wait(429, { ["Retry-After"] = "9" }))
  end)

  it("reads Retry-After as an HTTP date", function()
    local at = retry.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    assert.equal(42, core.server_wait(429, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" },
      nil, at - 42))
    assert.equal(0, wait(429, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }))
  end)

  it("ignores a Retry-After it cannot read", function()
    assert.is_nil(wait(503, { ["retry-after"] = "soon" }))
    assert.is_nil(wait(503, { ["retry-after"] = "-5" }))
  end)

  it("caps an absurd wait at a year instead of overflowing", function()
    assert.equal(366 * 86400, wait(429, { ["retry-after"] = string.rep("9", 400) }))
    assert.equal(366 * 86400, wait(429, { ["retry-after"] = "1e9" }))
  end)

  it("waits until X-RateLimit-Reset when the window is spent, on any status", function()
    local h = { ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = tostring(NOW + 25) }
    assert.equal(25, wait(200, h))
    assert.equal(25, wait(429, h))
  end)

  it("honours X-RateLimit-Reset on a 429 that omits Remaining, and only there", function()
    local h = { ["x-ratelimit-reset"] = tostring(NOW + 12) }
    assert.equal(12, wait(429, h))
    assert.is_nil(wait(503, h))
    assert.is_nil(wait(200, h))
  end)

  it("ignores X-RateLimit-Reset while requests remain", function()
    local h = { ["x-ratelimit-remaining"] = "40", ["x-ratelimit-reset"] = tostring(NOW + 50) }
    assert.is_nil(wait(200, h))
  end)

  it("prefers Retry-After over X-RateLimit-Reset", function()
    local h = { ["retry-after"] = "3", ["x-ratelimit-remaining"] = "0",
                ["x-ratelimit-reset"] = tostring(NOW + 50) }
    assert.equal(3, wait(429, h))
  end)

  it("takes a small X-RateLimit-Reset as seconds from now, a past one as no wait", function()
    assert.equal(30, wait(429, { ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = "30" }))
    assert.equal(0, wait(429, { ["x-ratelimit-remaining"] = "0",
      ["x-ratelimit-reset"] = tostring(NOW - 5) }))
  end)

  it("reads the documented 429 body when no header says", function()
    assert.equal(17, wait(429, {}, "Rate limit exceeded. Retry after 17 seconds."))
    assert.is_nil(wait(429, {}, "Rate limit exceeded."))
  end)

  it("is what parse_response puts in err.retry_after", function()
    local h = { ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = tostring(NOW + 33) }
    local _, err = core.parse_response(429, h, '{"detail":"Rate limit exceeded. Retry after 33 seconds."}',
      NOW)
    assert.equal(wait(429, h, err.message), err.retry_after)
    assert.equal(33, err.retry_after)
  end)
end)

describe("retry.deadline_at", function()
  it("computes the instant from the policy", function()
    assert.equal(130, retry.deadline_at(retry.policy { deadline = 30 }, 100))
    assert.is_nil(retry.deadline_at(retry.policy(), 100))
  end)
end)
