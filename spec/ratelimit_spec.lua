-- ratelimit_spec: the exact sliding windows of coldsend.ratelimit on a fake clock.
local ratelimit = require "coldsend.ratelimit"

-- A distinct key per test, so rings shared per key never leak between tests.
local serial = 0
local function new_key()
  serial = serial + 1
  return string.format("cs_test_ratelimit_spec_%d_%s", serial, tostring({}):match("0x%x+") or "")
end

-- Takes slots until one is refused; returns how many were taken and the wait.
local function drain(lim, now)
  for n = 0, 10000 do
    local wait = lim:acquire(now)
    if wait > 0 then return n, wait end
  end
  error("never refused")
end

local windows = require "spec.helpers.windows"
local busiest, lcg = windows.busiest, windows.lcg

describe("ratelimit", function()
  local NOW_WALL = 1700000000

  it("allows exactly 100 at once, then waits for the first to leave the minute", function()
    local lim = ratelimit.new(new_key())
    local taken, wait = drain(lim, 0)
    assert.equal(100, taken)
    assert.equal(60, wait)
    assert.equal(100, (drain(lim, 60)))
  end)

  it("frees each slot a minute after its own request", function()
    local lim = ratelimit.new(new_key())
    for _ = 1, 40 do assert.equal(0, lim:acquire(0)) end
    local taken, wait = drain(lim, 30)
    assert.equal(60, taken)
    assert.equal(30, wait)
    taken, wait = drain(lim, 60)
    assert.equal(40, taken)
    assert.equal(30, wait)
  end)

  it("does not take a slot when it asks to wait", function()
    local lim = ratelimit.new(new_key(), { per_minute = 2, per_hour = false })
    assert.equal(0, lim:acquire(0))
    assert.equal(0, lim:acquire(10))
    assert.equal(60, lim:acquire(0))
    assert.equal(30, lim:acquire(30))
    assert.equal(0, lim:acquire(60))
    assert.equal(10, lim:acquire(60))
    assert.equal(0, lim:acquire(70))
  end)

  it("slides: a steady caller never puts more than the limit in any minute", function()
    local lim = ratelimit.new(new_key(), { per_minute = 10, per_hour = false })
    local now, sent = 0, {}
    local next_at = lcg(7)
    while now < 600 do
      local wait = lim:acquire(now)
      if wait == 0 then sent[#sent + 1] = now; now = now + next_at() * 3
      else now = now + wait end
    end
    assert.equal(10, busiest(sent, 60))
    assert.is_true(#sent >= 100, #sent)
  end)

  it("allows exactly 1,000 in an hour, then waits for the first to leave it", function()
    local lim = ratelimit.new(new_key(), { per_minute = false })
    local taken, wait = drain(lim, 0)
    assert.equal(1000, taken)
    assert.equal(3600, wait)
    assert.equal(0, lim:acquire(3600))
  end)

  it("holds both windows at once", function()
    local lim = ratelimit.new(new_key())
    local now, sent = 0, {}
    while now < 4000 do
      local wait = lim:acquire(now)
      if wait == 0 then sent[#sent + 1] = now else now = now + wait end
    end
    assert.equal(100, busiest(sent, 60))
    assert.equal(1000, busiest(sent, 3600))
  end)

  it("takes its limits and window lengths from the configuration", function()
    local lim = ratelimit.new(new_key(), { per_minute = 5, per_hour = 7 })
    assert.equal(5, (drain(lim, 0)))
    assert.equal(2, (drain(lim, 60)))
    assert.equal(3600 - 60, lim:acquire(60))
    local short = ratelimit.new(new_key(), { per_minute = 3, per_hour = 4, minute_seconds = 0.5,
      hour_seconds = 2 })
    assert.equal(3, (drain(short, 0)))
    assert.equal(1, (drain(short, 0.5)))
    assert.equal(1.5, short:acquire(0.5))
    assert.equal("coldsend.ratelimit " .. short.fingerprint .. " (3/min, 4/h)", tostring(short))
  end)

  it("switches a window off with false", function()
    local lim = ratelimit.new(new_key(), { per_minute = false, per_hour = 3 })
    assert.equal(3, (drain(lim, 0)))
    assert.is_nil(lim:available(0).per_minute)
    local lim2 = ratelimit.new(new_key(), { per_minute = 2, per_hour = false })
    assert.equal(2, (drain(lim2, 0)))
  end)

  it("switches off entirely with false", function()
    local lim = ratelimit.new(new_key(), false)
    for _ = 1, 5000 do assert.equal(0, lim:acquire(0)) end
    lim:update({ ["x-ratelimit-remaining"] = "0" }, 0, NOW_WALL, 30)
    assert.equal(0, lim:acquire(0))
    assert.equal("coldsend.ratelimit off", tostring(lim))
  end)

  it("refuses bad configurations, naming the option", function()
    local cases = {
      { { per_minute = 0 }, "bad value for 'rate_limit.per_minute' (integer 1 .. 2^53 - 1 or false expected, got 0)" },
      { { per_hour = 2.5 }, "bad value for 'rate_limit.per_hour' (integer 1 .. 2^53 - 1 or false expected, got 2.5)" },
      { { per_minute = 2 ^ 53 }, "bad value for 'rate_limit.per_minute' (integer 1 .. 2^53 - 1"
        .. " or false expected, got 9.007199254741e+15)" },
      { { per_hour = 1e300 },
        "bad value for 'rate_limit.per_hour' (integer 1 .. 2^53 - 1 or false expected, got 1e+300)" },
      { { per_hour = 0 / 0 },
        "bad value for 'rate_limit.per_hour' (integer 1 .. 2^53 - 1 or false expected, got " },
      { { per_hour = "10" },
        "bad value for 'rate_limit.per_hour' (integer 1 .. 2^53 - 1 or false expected, got string)" },
      { { minute_seconds = 0 }, "bad value for 'rate_limit.minute_seconds' (number of seconds > 0 expected, got 0)" },
      { { hour_seconds = "1h" },
        "bad value for 'rate_limit.hour_seconds' (number of seconds > 0 expected, got string)" },
      { true, "bad value for 'rate_limit' (table or false expected, got boolean)" },
      { { per_minut = 5 }, "unknown option 'per_minut' for rate_limit; did you mean 'per_minute'?" },
      { { per_hour = 10, hour = 1 }, "unknown option 'hour' for rate_limit" },
      { { 5 }, "unknown option 1 (a number) for rate_limit" },
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

  describe("requests in flight", function()
    local CFG = { per_minute = 2, per_hour = false }

    it("keep their slot for the lease, then a period after their answer", function()
      local lim = ratelimit.new(new_key(), CFG)
      local _, a = lim:acquire(0, 30)
      assert.equal(0, lim:acquire(0, 30))
      -- both in flight: taken until 0 + 30 + 60 unless answered sooner; an
      -- answer may come any moment, so the caller asks again within a period
      assert.equal(60, lim:acquire(1))
      assert.equal(29, lim:acquire(61))
      lim:done(a, 5)
      assert.equal(1, lim:acquire(64))
      assert.equal(0, lim:acquire(65))
    end)

    it("a lost answer frees the slot once the lease and a period are over", function()
      local lim = ratelimit.new(new_key(), CFG)
      lim:acquire(0, 10)
      lim:acquire(0, 10)
      assert.equal(60, lim:acquire(0))
      assert.equal(10, lim:acquire(60))
      assert.equal(0, lim:acquire(70))
    end)

    it("an answer after the lease holds the slot a period after it", function()
      -- a transport that overran its timeout: the server may have seen the
      -- request as late as its answer
      local lim = ratelimit.new(new_key(), { per_minute = 1, per_hour = false })
      local _, a = lim:acquire(0, 10)
      lim:done(a, 15)
      assert.equal(5, lim:acquire(70))
      assert.equal(0, lim:acquire(75))
    end)

    it("an answer after the slot was taken again changes nothing", function()
      local lim = ratelimit.new(new_key(), { per_minute = 1, per_hour = false })
      local _, a = lim:acquire(0, 10)
      local wait, b = lim:acquire(70, 10)
      assert.equal(0, wait)
      lim:done(a, 71)
      assert.equal(60, lim:acquire(80)) -- b in flight: a's answer left b's slot alone
      lim:done(b, 72)
      assert.equal(52, lim:acquire(80))
    end)

    -- Requests with random latencies, answered out of order; the server
    -- sees each at a random instant between its reservation and its answer.
    it("never let the server see more than the limit in any window, in any order", function()
      for seed = 1, 20 do
        local rnd = lcg(seed)
        local lim = ratelimit.new(new_key(), { per_minute = 5, per_hour = 12, minute_seconds = 10,
          hour_seconds = 40 })
        local now, flying, seen = 0, {}, {}
        while now < 200 do
          if rnd() < 0.5 then
            local wait, ticket = lim:acquire(now, 8)
            if wait == 0 then
              local answer = now + rnd() * 6
              flying[#flying + 1] = { ticket = ticket, at = answer }
              seen[#seen + 1] = now + (answer - now) * rnd()
            end
          end
          for i = #flying, 1, -1 do
            if flying[i].at <= now then
              if rnd() < 0.9 then lim:done(flying[i].ticket, now) end -- some answers are lost
              table.remove(flying, i)
            end
          end
          now = now + rnd() * 0.5
        end
        assert.is_true(busiest(seen, 10) <= 5, "seed " .. seed)
        assert.is_true(busiest(seen, 40) <= 12, "seed " .. seed)
        assert.is_true(#seen > 30, "seed " .. seed .. ": " .. #seen)
      end
    end)
  end)

  describe("sharing", function()
    it("shares the rings of two limiters of the same key", function()
      local key = new_key()
      local a, b = ratelimit.new(key), ratelimit.new(key)
      for _ = 1, 60 do assert.equal(0, a:acquire(0)) end
      assert.equal(40, (drain(b, 0)))
      assert.is_true(a:acquire(0) > 0)
    end)

    it("refuses limits other than those the key's other limiters use, naming the option", function()
      local key = new_key()
      -- in a function of their own, so no register keeps them once it returns
      local function in_use()
        local a = ratelimit.new(key, { per_minute = 3, per_hour = 10 })
        local cases = {
          { { per_minute = 5, per_hour = 10 }, "'rate_limit.per_minute' (3 per 60 s" },
          { { per_minute = false, per_hour = 10 }, "'rate_limit.per_minute' (3 per 60 s" },
          { { per_minute = 3, per_hour = 10, minute_seconds = 6 }, "'rate_limit.per_minute' (3 per 60 s" },
          { { per_minute = 3 }, "'rate_limit.per_hour' (10 per 3600 s" },
        }
        for _, c in ipairs(cases) do
          local ok, msg = pcall(ratelimit.new, key, c[1])
          assert.is_false(ok)
          assert.truthy(msg:find("bad value for " .. c[2], 1, true), msg)
          assert.truthy(msg:find("one key has one budget", 1, true), msg)
          assert.is_falsy(msg:find(key, 1, true))
        end
        -- the same limits share
        local b = ratelimit.new(key, { per_minute = 3, per_hour = 10 })
        for _ = 1, 3 do assert.equal(0, a:acquire(0)) end
        assert.is_true(b:acquire(0) > 0)
      end
      in_use()
      collectgarbage() -- LuaJIT still sees what in_use left on the stack without it
      -- once the others are gone, new limits are taken
      assert.equal(5, (drain(ratelimit.new(key, { per_minute = 5, per_hour = 10 }), 0)))
    end)

    -- HAProxy preempts Lua from a count hook, yielding wherever the code
    -- is yieldable (spec/haproxy_spec.lua shows the overshoot it caused)
    it("inside HAProxy, reserves and settles where its hook cannot yield", function()
      -- HAProxy's `core` global, as the limiter recognises it
      rawset(_G, "core", { register_service = function() end })
      local lim = ratelimit.new(new_key(), { per_minute = 2, per_hour = 5 })
      rawset(_G, "core", nil)
      -- the entry points themselves run yieldable, up to the inner call
      local entry = {}
      for _, f in ipairs { lim.acquire, lim.done } do
        local info = debug.getinfo(f, "S")
        entry[#entry + 1] = { info.linedefined, info.lastlinedefined }
      end
      local function at_entry(line)
        for _, e in ipairs(entry) do
          if line >= e[1] and line <= e[2] then return true end
        end
      end
      local inside, yieldable = 0, {} -- lines run where a yield was possible
      local co = coroutine.create(function()
        debug.sethook(function()
          local info = debug.getinfo(2, "Sl")
          if info and info.source:find("coldsend/ratelimit.lua", 1, true)
            and not at_entry(info.currentline) then
            inside = inside + 1
            -- (a Lua hook never runs yieldable itself: look for the call
            -- from C below it)
            local level, from_c = 3, false
            while true do
              local f = debug.getinfo(level, "S")
              if not f then break end
              if f.what == "C" then from_c = true end
              level = level + 1
            end
            if not from_c then yieldable[#yieldable + 1] = info.currentline end
          end
        end, "", 1)
        local wait, ticket = lim:acquire(0, 10)
        assert.equal(0, wait)
        assert.is_true(lim:done(ticket, 1, { ["x-ratelimit-remaining"] = "0" }, 1700000000))
        assert.is_true(lim:acquire(1) > 0)
        debug.sethook()
      end)
      local ok, err = coroutine.resume(co)
      assert(ok, err)
      assert.is_true(inside > 50, inside)
      assert.same({}, yieldable)
    end)

    it("does not share between different keys", function()
      local a, b = ratelimit.new(new_key()), ratelimit.new(new_key())
      assert.equal(100, (drain(a, 0)))
      assert.equal(100, (drain(b, 0)))
    end)

    it("does not share between clocks", function()
      local key = new_key()
      local fake = function() return 0 end
      local a, b = ratelimit.new(key, nil, { clock = fake }), ratelimit.new(key)
      assert.equal(100, (drain(a, 0)))
      assert.equal(100, (drain(b, 0)))
      assert.equal(0, (drain(ratelimit.new(key, nil, { clock = fake }), 0)))
      assert.equal(0, (drain(ratelimit.new(key), 0)))
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

    it("forgets the rings of a key once no limiter holds them", function()
      local key = new_key()
      drain(ratelimit.new(key), 0)
      collectgarbage()
      collectgarbage()
      assert.equal(100, (drain(ratelimit.new(key), 0)))
    end)

    it("keeps a key's rings while a request they allowed is in a window, limiters gone", function()
      local key, t = new_key(), 0
      local function clock() return t end
      local cfg = { per_minute = 2, per_hour = false }
      -- a limiter made for one request and dropped, as a client per request
      local function once()
        return (ratelimit.new(key, cfg, { clock = clock }):acquire(t, 5))
      end
      local gone = setmetatable({}, { __mode = "k" })
      gone[ratelimit.new(key, cfg, { clock = clock }).store] = true
      assert.equal(0, once())
      t = 10
      assert.equal(0, once())
      collectgarbage()
      collectgarbage()
      assert.equal(55, once())
      t = 65
      collectgarbage()
      assert.equal(0, once())
      -- once every request has left its window, the rings go with the limiters
      t = 200
      ratelimit.new(new_key(), cfg, { clock = clock })
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(gone))
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

    it("uses a store given in the options, locked around every reservation", function()
      local calls, data, held = {}, {}, false
      local function log(what, name, field)
        assert.is_true(held, what .. " outside the lock")
        calls[#calls + 1] = what .. " " .. name:match("^fnv:%x+:(%a+)") .. " " .. field
      end
      local store = {
        lock = function(_, name)
          assert.truthy(name:match("^fnv:%x+$"))
          assert.is_false(held)
          held = true
          calls[#calls + 1] = "lock"
          return true
        end,
        unlock = function() held = false; calls[#calls + 1] = "unlock" end,
        ring = function(_, name)
          return setmetatable({}, {
            __index = function(_, field)
              log("get", name, field)
              return data[name .. "/" .. field]
            end,
            __newindex = function(_, field, v)
              log("set", name, field)
              data[name .. "/" .. field] = v
            end,
          })
        end,
      }
      local key = new_key()
      local a = ratelimit.new(key, { per_minute = 2, per_hour = 10 }, { store = store })
      local b = ratelimit.new(key, { per_minute = 2, per_hour = 10 }, { store = store })
      assert.equal(0, a:acquire(0))
      assert.same({ "lock", "get hold till", "get minute head", "get minute 0", "get minute till",
        "get hour head", "get hour 0", "get hour till", "set minute 0", "set minute head", "set hour 0",
        "set hour head", "unlock" }, calls)
      assert.equal(0, b:acquire(0))
      assert.is_true(a:acquire(0) > 0)
      for name in pairs(data) do
        assert.truthy(name:match("^fnv:%x+:%a+:%d+:%d+/%w+$"), name)
      end
      -- the in-process registry was not touched
      assert.equal(2, (drain(ratelimit.new(key, { per_minute = 2, per_hour = 10 }), 0)))
    end)

    it("answers a short wait, reserving nothing, while another holds the lock", function()
      local inner = ratelimit.memory_store()
      local busy = true
      local store = {
        lock = function() return not busy end,
        unlock = function() end,
        ring = function(_, name) return inner:ring(name) end,
      }
      local lim = ratelimit.new(new_key(), { per_minute = 1, per_hour = false }, { store = store })
      assert.equal(0.001, lim:acquire(0))
      busy = false
      assert.equal(0, lim:acquire(0))
      assert.equal(60, lim:acquire(0))
    end)

    it("sends nothing on a reservation the store has no room for, nor without its lock", function()
      local inner = ratelimit.memory_store()
      local room, lock_room = true, true
      local store = {
        lock = function()
          if lock_room then return true end
          return nil, "no memory"
        end,
        unlock = function() end,
      }
      function store.ring(_, name)
        local r = inner:ring(name)
        return setmetatable({}, {
          __index = r,
          __newindex = function(_, k, v)
            if room then r[k] = v else store.failed = true end
          end,
        })
      end
      local lim = ratelimit.new(new_key(), { per_minute = 1, per_hour = false }, { store = store })
      room = false
      assert.equal(1, lim:acquire(0))
      lock_room = false
      room = true
      assert.equal(1, lim:acquire(0))
      lock_room = true
      local wait, ticket = lim:acquire(0, 10)
      assert.equal(0, wait)
      assert.equal(60, lim:acquire(0))
      -- an answer's bookkeeping goes ahead without the lock
      lock_room = false
      assert.is_true(lim:done(ticket, 2))
      lock_room = true
      assert.equal(52, lim:acquire(10))
    end)
  end)

  describe("server headers", function()
    local function headers(remaining, reset, limit)
      return { ["x-ratelimit-remaining"] = remaining and tostring(remaining),
               ["x-ratelimit-reset"] = reset and tostring(reset),
               ["x-ratelimit-limit"] = limit and tostring(limit) }
    end

    it("allow no more than the server's Remaining before its Reset", function()
      local lim = ratelimit.new(new_key())
      assert.equal(0, lim:acquire(0))
      lim:update(headers(3, NOW_WALL + 20, 100), 0, NOW_WALL)
      local taken, wait = drain(lim, 0)
      assert.equal(3, taken)
      assert.equal(20, wait)
      assert.equal(96, (drain(lim, 20))) -- then the local minute: 100 in all
    end)

    it("hold exactly the server's stated wait, not a default minute", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(0, NOW_WALL + 5), 10, NOW_WALL, 5)
      assert.equal(5, lim:acquire(10))
      assert.equal(1, lim:acquire(14))
      assert.equal(0, lim:acquire(15))
    end)

    it("cap a stated wait at the longest window, a Reset at its window", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(0), 0, NOW_WALL, 31536000)
      assert.equal(3600, lim:acquire(0))
      local lim2 = ratelimit.new(new_key())
      lim2:update(headers(2, NOW_WALL + 86400, 100), 0, NOW_WALL)
      assert.equal(2, (drain(lim2, 0)))
      assert.equal(60, lim2:acquire(0))
    end)

    it("never loosen the budget", function()
      local lim = ratelimit.new(new_key())
      drain(lim, 0)
      lim:update(headers(99, NOW_WALL + 50), 0, NOW_WALL)
      assert.is_true(lim:acquire(0) > 0)
      local lim2 = ratelimit.new(new_key())
      lim2:update(headers(2, NOW_WALL + 30), 0, NOW_WALL)
      lim2:update(headers(50, NOW_WALL + 10), 0, NOW_WALL)
      assert.equal(2, (drain(lim2, 0)))
      assert.equal(30, lim2:acquire(0))
    end)

    it("count the requests sent after the answered one as spent", function()
      local lim = ratelimit.new(new_key())
      local _, first = lim:acquire(0, 30)
      lim:acquire(0, 30)
      lim:acquire(0, 30)
      -- the server had 5 left when it answered the first; the other two may
      -- not be counted yet
      lim:done(first, 1, headers(5, NOW_WALL + 40, 100), NOW_WALL)
      assert.equal(3, (drain(lim, 1)))
    end)

    it("ignore missing or unreadable values", function()
      local lim = ratelimit.new(new_key())
      lim:update(nil, 0, NOW_WALL)
      lim:update({}, 0, NOW_WALL)
      lim:update(headers("lots"), 0, NOW_WALL)
      lim:update(headers("nan"), 0, NOW_WALL)
      assert.equal(100, (drain(lim, 0)))
    end)

    it("take the smallest of a repeated Remaining (joined with commas)", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers("7, 2, x", NOW_WALL + 20), 0, NOW_WALL)
      assert.equal(2, (drain(lim, 0)))
      assert.equal(20, lim:acquire(0))
    end)

    it("take a negative Remaining as none left, a fractional one as its whole part", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(-3, NOW_WALL + 20), 0, NOW_WALL)
      assert.equal(20, lim:acquire(0))
      lim = ratelimit.new(new_key())
      lim:update(headers(2.7, NOW_WALL + 20), 0, NOW_WALL)
      assert.equal(2, (drain(lim, 0)))
      lim = ratelimit.new(new_key())
      lim:update(headers("1e999", NOW_WALL + 20), 0, NOW_WALL)
      assert.equal(100, (drain(lim, 0)))
    end)

    it("hold one period when none is left and no wait is stated", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(0), 0, NOW_WALL)
      assert.equal(60, lim:acquire(0))
    end)

    it("apply to the hour window when the limit header names it", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(2, NOW_WALL + 1800, 1000), 0, NOW_WALL)
      assert.equal(2, (drain(lim, 0)))
      assert.equal(1800, lim:acquire(0))
    end)

    it("hold each window on its own, reading the limit header anew when it changes", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(50, NOW_WALL + 1800, 1000), 0, NOW_WALL)
      lim:update(headers(2, NOW_WALL + 30, 100), 0, NOW_WALL)
      assert.same({ per_minute = 2, per_hour = 50 }, lim:available(0))
      -- the minute's next window (no limit header: the minute) replaces its hold
      lim:update(headers(40, NOW_WALL + 45), 0, NOW_WALL)
      assert.same({ per_minute = 40, per_hour = 50 }, lim:available(0))
      assert.equal(40, (drain(lim, 0)))
      assert.equal(45, lim:acquire(0))
      assert.same({ per_minute = 60, per_hour = 10 }, lim:available(45))
    end)

    it("take the lower allowance for one server window, ignore a stale one", function()
      local lim = ratelimit.new(new_key())
      lim:update(headers(5, NOW_WALL + 30, 100), 0, NOW_WALL)
      lim:update(headers(9, NOW_WALL + 30, 100), 1, NOW_WALL + 1) -- the same reset: not looser
      lim:update(headers(90, NOW_WALL + 20, 100), 2, NOW_WALL + 2) -- an earlier window: stale
      assert.same({ per_minute = 5, per_hour = 1000 }, lim:available(2))
      lim:update(headers(3, NOW_WALL + 30, 100), 3, NOW_WALL + 3) -- lower: taken
      assert.equal(3, (drain(lim, 3)))
      assert.equal(27, lim:acquire(3))
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
end)
