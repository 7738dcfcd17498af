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
    { http(503), "503", { "retry", "retry", "retry", "retry", "retry", "retry" }, "unavailable" },
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
  local NOW = 1700000000

  it("grows exponentially: base * 2^(attempt-1) at the top of the jitter", function()
    local want = { 0.5, 1, 2, 4, 8, 16, 30, 30 }
    for attempt, w in ipairs(want) do
      assert.equal(w, retry.delay(attempt, p, nil, NOW, fixed(1)))
    end
  end)

  it("is full jitter: random() times the ceiling", function()
    assert.equal(0, retry.delay(3, p, nil, NOW, fixed(0)))
    assert.equal(0.5, retry.delay(3, p, nil, NOW, fixed(0.25)))
    local seen = {}
    for i = 1, 4 do seen[i] = retry.delay(4, p, {}, NOW, fixed((i - 1) / 4)) end
    assert.same({ 0, 1, 2, 3 }, seen)
  end)

  it("never exceeds cap on its own", function()
    local small = retry.policy { base = 1, cap = 3 }
    for attempt = 1, 60 do
      local d = retry.delay(attempt, small, nil, NOW, fixed(0.999999))
      assert.is_true(d <= 3, "attempt " .. attempt)
    end
  end)

  it("uses math.random when no random source is given", function()
    for _ = 1, 50 do
      local d = retry.delay(2, p, nil, NOW)
      assert.is_true(d >= 0 and d <= 1)
    end
  end)

  it("waits at least Retry-After seconds", function()
    local d, asked = retry.delay(1, p, { ["retry-after"] = "7" }, NOW, fixed(0.5))
    assert.equal(7, d)
    assert.equal(7, asked)
  end)

  it("keeps the jitter when it is longer than Retry-After", function()
    assert.equal(4, retry.delay(5, p, { ["retry-after"] = "2" }, NOW, fixed(0.5)))
  end)

  it("accepts fractional Retry-After seconds and surrounding spaces", function()
    assert.equal(0.25, retry.delay(1, p, { ["retry-after"] = " 0.25 " }, NOW, fixed(0)))
  end)

  it("honours a Retry-After longer than cap", function()
    assert.equal(120, retry.delay(1, p, { ["retry-after"] = "120" }, NOW, fixed(1)))
  end)

  it("reads Retry-After as an HTTP date", function()
    local at = retry.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT")
    local d = retry.delay(1, p, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, at - 42, fixed(0))
    assert.equal(42, d)
  end)

  it("treats an HTTP date in the past as no wait", function()
    local d, asked = retry.delay(1, p, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, NOW, fixed(0))
    assert.equal(0, d)
    assert.equal(0, asked)
  end)

  it("ignores a Retry-After it cannot read", function()
    local d, asked = retry.delay(1, p, { ["retry-after"] = "soon" }, NOW, fixed(1))
    assert.equal(0.5, d)
    assert.is_nil(asked)
    assert.equal(0.5, (retry.delay(1, p, { ["retry-after"] = "-5" }, NOW, fixed(1))))
    assert.equal(0.5, (retry.delay(1, p, { ["retry-after"] = string.rep("9", 400) }, NOW, fixed(1))))
  end)

  it("finds headers whatever their case", function()
    assert.equal(9, retry.delay(1, p, { ["Retry-After"] = "9" }, NOW, fixed(0)))
  end)

  it("waits until X-RateLimit-Reset when the window is spent", function()
    local h = { ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = tostring(NOW + 25) }
    assert.equal(25, retry.delay(1, p, h, NOW, fixed(0)))
  end)

  it("honours X-RateLimit-Reset on a 429 that omits Remaining", function()
    local h = { ["x-ratelimit-reset"] = tostring(NOW + 12) }
    assert.equal(12, retry.delay(1, p, h, NOW, fixed(0), 429))
    assert.equal(0, retry.delay(1, p, h, NOW, fixed(0)))     -- unknown status: ignored
    assert.equal(0, retry.delay(1, p, h, NOW, fixed(0), 503)) -- not a rate limit
  end)

  it("ignores X-RateLimit-Reset while requests remain", function()
    local h = { ["x-ratelimit-remaining"] = "40", ["x-ratelimit-reset"] = tostring(NOW + 50) }
    assert.equal(0.25, retry.delay(1, p, h, NOW, fixed(0.5)))
  end)

  it("prefers Retry-After over X-RateLimit-Reset", function()
    local h = { ["retry-after"] = "3", ["x-ratelimit-remaining"] = "0",
                ["x-ratelimit-reset"] = tostring(NOW + 50) }
    assert.equal(3, retry.delay(1, p, h, NOW, fixed(0)))
  end)

  it("takes a small X-RateLimit-Reset as seconds from now", function()
    local h = { ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = "30" }
    assert.equal(30, retry.delay(1, p, h, NOW, fixed(0)))
  end)

  it("treats a reset in the past as no wait", function()
    local h = { ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = tostring(NOW - 5) }
    assert.equal(0.5, retry.delay(1, p, h, NOW, fixed(1)))
  end)
end)

describe("retry.fits and retry.deadline_at", function()
  it("always fits without a deadline", function()
    assert.is_true(retry.fits(nil, 100, 1e9))
  end)

  it("fits while the sleep ends by the deadline", function()
    assert.is_true(retry.fits(110, 100, 10))
    assert.is_false(retry.fits(110, 100, 10.001))
    assert.is_false(retry.fits(110, 111, 0))
  end)

  it("computes the instant from the policy", function()
    assert.equal(130, retry.deadline_at(retry.policy { deadline = 30 }, 100))
    assert.is_nil(retry.deadline_at(retry.policy(), 100))
  end)

  it("drives a loop that stops mid-backoff at the deadline (fake clock)", function()
    local p = retry.policy { max_retries = 10, base = 1, cap = 8, deadline = 10 }
    local now = 0
    local deadline_at = retry.deadline_at(p, now)
    local attempt, slept = 0, {}
    while true do
      attempt = attempt + 1
      now = now + 0.5 -- each try takes half a second
      local again = retry.decide("GET", { status = 503, headers = {} }, attempt, p)
      if not again then break end
      local d = retry.delay(attempt, p, nil, 0, fixed(1))
      if not retry.fits(deadline_at, now, d) then break end
      slept[#slept + 1] = d
      now = now + d
    end
    -- 0.5 +1, 0.5 +2, 0.5 +4 = 8.5; the next (0.5 + 8) would end past 10
    assert.same({ 1, 2, 4 }, slept)
    assert.equal(4, attempt)
    assert.is_true(now <= 10)
  end)
end)

describe("retry.parse_http_date", function()
  it("parses the IMF-fixdate of RFC 7231", function()
    assert.equal(1445412480, retry.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"))
    assert.equal(784111777, retry.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.equal(0, retry.parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
  end)

  it("parses the obsolete RFC 850 and asctime forms", function()
    assert.equal(784111777, retry.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.equal(784111777, retry.parse_http_date("Sun Nov  6 08:49:37 1994"))
  end)

  it("handles leap days and century rules", function()
    assert.equal(951782400, retry.parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
    assert.equal(1709164800, retry.parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"))
    assert.equal(4102444799, retry.parse_http_date("Fri, 31 Dec 2099 23:59:59 GMT"))
    assert.is_nil(retry.parse_http_date("Mon, 29 Feb 2100 00:00:00 GMT"))
    assert.is_nil(retry.parse_http_date("Sun, 29 Feb 2015 00:00:00 GMT"))
  end)

  it("agrees with days_from_civil on known dates", function()
    assert.equal(0, retry.days_from_civil(1970, 1, 1))
    assert.equal(-1, retry.days_from_civil(1969, 12, 31))
    assert.equal(10957, retry.days_from_civil(2000, 1, 1))
    assert.equal(19723, retry.days_from_civil(2024, 1, 1))
  end)

  it("does not depend on the locale or time zone", function()
    local old = os.setlocale()
    pcall(os.setlocale, "de_DE.UTF-8")
    assert.equal(1445412480, retry.parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"))
    os.setlocale(old)
  end)

  local bad = {
    "", "yesterday", "Wed, 21 Oct 2015 07:28:00 UTC", "Wed, 21 Foo 2015 07:28:00 GMT",
    "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 00 Oct 2015 07:28:00 GMT",
    "Wed, 21 Oct 2015 24:00:00 GMT", "Wed, 21 Oct 2015 07:60:00 GMT",
    "Wed, 31 Apr 2015 07:28:00 GMT", "Wed, 21 Oct 15 07:28:00 GMT", "Wed, 1 Oct 2015 07:28:00 GMT",
  }
  for _, s in ipairs(bad) do
    it("refuses " .. string.format("%q", s), function()
      assert.is_nil(retry.parse_http_date(s))
    end)
  end

  it("refuses non-strings", function()
    assert.is_nil(retry.parse_http_date(nil))
    assert.is_nil(retry.parse_http_date(12))
  end)
end)
