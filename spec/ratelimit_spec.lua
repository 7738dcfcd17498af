-- ratelimit_spec: the shared token buckets (coldsend.ratelimit) on a fake clock.
local ratelimit = require "coldsend.ratelimit"

-- A distinct key per test, so buckets shared per key never leak between tests.
local serial = 0
local function new_key()
  serial = serial + 1
  return string.format("cs_test_ratelimit_spec_%d_%s", serial, tostring({}):match("0x%x+") or "")
end

-- Takes tokens until one is refused; returns how many were taken and the wait.
local function drain(lim, now)
  for n = 0, 10000 do
    local wait = lim:acquire(now)
    if wait > 0 then return n, wait end
  end
  error("never refused")
end

-- A caller sending as fast as the limiter lets it, on a fake clock, until
-- `stop` seconds or a wait longer than `longest`; returns requests sent and
-- the clock.
local function pace(lim, stop, longest)
  local now, sent = 0, 0
  while now < stop do
    local wait = lim:acquire(now)
    if wait == 0 then
      sent = sent + 1
    elseif wait > longest then
      break
    else
      now = now + wait
    end
  end
  return sent, now
end

describe("ratelimit", function()
  local NOW_WALL = 1700000000

  it("allows exactly 100 in a minute, then asks to wait", function()
    local lim = ratelimit.new(new_key())
    local taken, wait = drain(lim, 0)
    assert.equal(100, taken)
    assert.near(0.6, wait, 1e-9) -- one token refills in 60/100 s
  end)

  it("does not take a token when it asks to wait", function()
    local lim = ratelimit.new(new_key())
    drain(lim, 0)
    assert.near(0.6, lim:acquire(0), 1e-9)
    assert.near(0.6, lim:acquire(0), 1e-9)
    assert.near(0.3, lim:acquire(0.3), 1e-9)
    assert.equal(0, lim:acquire(0.6))
    assert.near(0.6, lim:acquire(0.6), 1e-9)
  end)

  it("spreads a burst over the minute at 100/60 per second", function()
    local sent = pace(ratelimit.new(new_key()), 60, math.huge)
    -- 100 at once, then one every 0.6 s
    assert.is_true(sent >= 199 and sent <= 201, sent)
  end)

  it("refills fully after a minute, never beyond the limit", function()
    local lim = ratelimit.new(new_key())
    drain(lim, 0)
    assert.near(50, lim:available(30).per_minute, 1e-9)
    assert.equal(100, lim:available(60).per_minute)
    assert.equal(100, lim:available(600).per_minute)
    assert.equal(100, (drain(lim, 600)))
  end)

  it("allows exactly 1,000 in an hour, then one every 3.6 s", function()
    local lim = ratelimit.new(new_key(), { per_minute = false })
    local taken, wait = drain(lim, 0)
    assert.equal(1000, taken)
    assert.near(3.6, wait, 1e-9)
    assert.equal(0, lim:acquire(3.6))
    assert.near(3.6, lim:acquire(3.6), 1e-9)
  end)

  it("lets the hour bucket take over once its burst is spent", function()
    local lim = ratelimit.new(new_key())
    -- stops when the wait outgrows the minute's 0.6 s: the hour bucket's turn
    local sent, now = pace(lim, 3600, 0.6 + 1e-9)
    -- the minute pace (one per 0.6 s) outruns the hour refill (one per 3.6 s)
    -- until the hour's 1,000 are spent: 100 + t/0.6 = 1000 + t/3.6 at t = 648 s
    assert.is_true(now > 600 and now < 700, now)
    assert.is_true(sent > 1100 and sent < 1200, sent)
    assert.is_true(lim:acquire(now) <= 3.6)
  end)

  it("takes its limits from the configuration", function()
    local lim = ratelimit.new(new_key(), { per_minute = 5, per_hour = 7 })
    assert.equal(5, (drain(lim, 0)))
    assert.equal(2, (drain(lim, 60)))
    local wait = lim:acquire(60)
    assert.near(3600 / 7 - 60, wait, 1e-6) -- the hour refilled 60 * 7/3600 of a token
  end)

  it("switches a bucket off with false", function()
    local lim = ratelimit.new(new_key(), { per_minute = false, per_hour = 3 })
    assert.equal(3, (drain(lim, 0)))
    assert.is_nil(lim:available(0).per_minute)
    local lim2 = ratelimit.new(new_key(), { per_minute = 2, per_hour = false })
    assert.equal(2, (drain(lim2, 0)))
  end)

  it("switches off entirely with false", function()
    local lim = ratelimit.new(new_key(), false)
    for _ = 1, 5000 do assert.equal(0, lim:acquire(0)) end
    lim:update({ ["x-ratelimit-remaining"] = "0" }, 0, NOW_WALL)
    assert.equal(0, lim:acquire(0))
    assert.equal("coldsend.ratelimit off", tostring(lim))
  end)

  it("refuses bad configurations, naming the option", function()
    local cases = {
      { { per_minute = 0 }, "bad value for 'rate_limit.per_minute' (integer >= 1 or false expected, got 0)" },
      { { per_hour = 2.5 }, "bad value for 'rate_limit.per_hour' (integer >= 1 or false expected, got 2.5)" },
      { { per_hour = "10" }, "bad value for 'rate_limit.per_hour' (integer >= 1 or false expected, got string)" },
      { true, "bad value for 'rate_limit' (table or false expected, got boolean)" },
    }
    for _, c in ipairs(cases) do
      local ok, msg = pcall(ratelimit.new, new_key(), c[1])
      assert.is_false(ok)
      assert.truthy(msg:find(c[2], 1, true), msg)
    end
  end)

  it("refuses a missing key without showing it", function()
    assert.has_error(function() ratelimit.new(nil) end,
      "bad value for 'api_key' (non-empty string expected, got nil)")
    assert.has_error(function() ratelimit.new("") end,
      "bad value for 'api_key' (non-empty string expected, got empty string)")
  end)

  describe("sharing", function()
    it("shares the buckets of two limiters of the same key", function()
      local key = new_key()
      local a, b = ratelimit.new(key), ratelimit.new(key)
      for _ = 1, 60 do assert.equal(0, a:acquire(0)) end
      assert.equal(40, (drain(b, 0)))
      assert.is_true(a:acquire(0) > 0)
    end)

    it("does not share between different keys", function()
      local a, b = ratelimit.new(new_key()), ratelimit.new(new_key())
      assert.equal(100, (drain(a, 0)))
      assert.equal(100, (drain(b, 0)))
    end)

    it("tells keys apart that differ in one character", function()
      assert.not_equal(ratelimit.fingerprint("cs_live_aaaa"), ratelimit.fingerprint("cs_live_aaab"))
      assert.not_equal(ratelimit.fingerprint("ab"), ratelimit.fingerprint("ba"))
      assert.equal(ratelimit.fingerprint("cs_live_x"), ratelimit.fingerprint("cs_live_x"))
    end)

    it("computes the standard FNV-1a", function()
      -- 32-bit FNV-1a test vectors: "" -> 811c9dc5, "a" -> e40c292c, "foobar" -> bf9cf968
      assert.equal("811c9dc5", ratelimit.fingerprint(""):sub(5, 12))
      assert.equal("e40c292c", ratelimit.fingerprint("a"):sub(5, 12))
      assert.equal("bf9cf968", ratelimit.fingerprint("foobar"):sub(5, 12))
    end)

    it("forgets the buckets of a key once no limiter holds them", function()
      local key = new_key()
      drain(ratelimit.new(key), 0)
      collectgarbage()
      collectgarbage()
      assert.equal(100, (drain(ratelimit.new(key), 0)))
    end)

    it("keeps the key out of tostring and the limiter's fields", function()
      local key = "cs_live_" .. string.rep("k3y", 13) .. "z"
      local lim = ratelimit.new(key)
      local s = tostring(lim)
      assert.truthy(s:match("^coldsend%.ratelimit fnv:%x+ %(100/min, 1000/h%)$"), s)
      local function walk(v, seen)
        if type(v) == "string" then
          assert.is_nil(v:find(key, 1, true))
          assert.is_nil(v:find("k3yk3y", 1, true))
        elseif type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do walk(k, seen); walk(x, seen) end
          walk(getmetatable(v), seen)
        end
      end
      walk(lim, {})
      walk(tostring(lim.store), {})
    end)

    it("uses a store given in the options", function()
      local calls = {}
      local data = {}
      local store = {
        get = function(_, name)
          calls[#calls + 1] = "get " .. name:match(":(%a+)$")
          local v = data[name]
          if v then return v[1], v[2], v[3] end
        end,
        set = function(_, name, t, s, h)
          calls[#calls + 1] = "set " .. name:match(":(%a+)$")
          data[name] = { t, s, h }
        end,
      }
      local key = new_key()
      local a = ratelimit.new(key, { per_minute = 2, per_hour = 10 }, { store = store })
      local b = ratelimit.new(key, { per_minute = 2, per_hour = 10 }, { store = store })
      assert.equal(0, a:acquire(0))
      assert.same({ "get minute", "get hour", "set minute", "set hour" }, calls)
      assert.equal(0, b:acquire(0))
      assert.is_true(a:acquire(0) > 0)
      for name in pairs(data) do
        assert.truthy(name:match("^fnv:%x+:%a+$"))
      end
      -- the in-process registry was not touched
      assert.equal(2, (drain(ratelimit.new(key, { per_minute = 2, per_hour = 10 }), 0)))
    end)
  end)

  describe("server headers", function()
    local function headers(remaining, reset, limit)
      return { ["x-ratelimit-remaining"] = remaining and tostring(remaining),
               ["x-ratelimit-reset"] = reset and tostring(reset),
               ["x-ratelimit-limit"] = limit and tostring(limit) }
    end

    it("tighten the minute bucket when the server has fewer left", function()
      local lim = ratelimit.new(new_key())
      assert.equal(0, lim:acquire(0))
      lim:update(headers(3, NOW_WALL + 20, 100), 0, NOW_WALL)
      assert.equal(3, (drain(lim, 0)))
    end)

    it("hold the refill until the server's window resets", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(0, NOW_WALL + 20), 10, NOW_WALL)
      assert.near(20 + 0.6, lim:acquire(10), 1e-9)
      assert.near(0.6, lim:acquire(30), 1e-9)
      assert.equal(0, lim:acquire(30.6))
    end)

    it("never hold longer than one period", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(0, NOW_WALL + 86400), 0, NOW_WALL)
      assert.near(60.6, lim:acquire(0), 1e-9)
    end)

    it("never loosen the bucket", function()
      local lim = ratelimit.new(new_key())
      drain(lim, 0)
      lim:update(headers(99, NOW_WALL + 50), 0, NOW_WALL)
      assert.is_true(lim:acquire(0) > 0)
    end)

    it("ignore missing or unreadable values", function()
      local lim = ratelimit.new(new_key())
      lim:update(nil, 0, NOW_WALL)
      lim:update({}, 0, NOW_WALL)
      lim:update(headers("lots"), 0, NOW_WALL)
      lim:update(headers(-1), 0, NOW_WALL)
      assert.equal(100, (drain(lim, 0)))
    end)

    it("tighten without a hold when no reset is given", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(0), 0, NOW_WALL)
      assert.near(0.6, lim:acquire(0), 1e-9)
    end)

    it("apply to the hour bucket when the limit header names it", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(2, NOW_WALL + 1800, 1000), 0, NOW_WALL)
      assert.equal(2, (drain(lim, 0)))
      assert.near(98, lim:available(0).per_minute, 1e-9) -- the minute bucket only lost those 2
      assert.is_true(lim:acquire(60) > 60)                  -- held by the hour bucket
    end)

    it("are shared with the other limiters of the key", function()
      local key = new_key()
      local a, b = ratelimit.new(key), ratelimit.new(key)
      a:update(headers(1, NOW_WALL + 30), 0, NOW_WALL)
      assert.equal(0, b:acquire(0))
      assert.is_true(a:acquire(0) > 0)
    end)

    it("are read whatever the header case", function()
      local lim = ratelimit.new(new_key())
      lim:update({ ["X-RateLimit-Remaining"] = "1" }, 0, NOW_WALL)
      assert.equal(1, (drain(lim, 0)))
    end)
  end)

  describe("clocks", function()
    it("treat a clock that went back as no refill, not a wait", function()
      local lim = ratelimit.new(new_key())
      assert.equal(0, lim:acquire(1000))
      assert.equal(0, lim:acquire(5))
      assert.equal(98, (drain(lim, 5)))
    end)

    it("cut a hold that lies more than a period ahead", function()
      local store = ratelimit.memory_store()
      local lim = ratelimit.new(new_key(), nil, { store = store })
      lim:update({ ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = "50" }, 100000, NOW_WALL)
      -- a second user of the store on another clock, near 0
      local wait = lim:acquire(0)
      assert.is_true(wait <= 61, wait)
    end)
  end)
end)
