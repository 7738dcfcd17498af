-- ratelimit_c_spec: the memory store's C rings (src/ratelimit.c) against the
-- Lua path on table rings, and both against a plain model of the ring.
local ratelimit = require "coldsend.ratelimit"
local lcg = require("spec.helpers.windows").lcg

local serial = 0
local function new_key()
  serial = serial + 1
  return "cs_test_ratelimit_c_spec_" .. serial
end

local NOW_WALL = 1700000000

-- One random run of acquires, answers (some lost, some with the server's
-- headers or a stated wait) and reads of `available`; returns its log.
local function run(rings, seed, cfg)
  local rnd = lcg(seed)
  local lim = ratelimit.new(new_key(), cfg, { store = ratelimit.memory_store(rings) })
  local log, flying, now = {}, {}, 0
  for _ = 1, 400 do
    local r = rnd()
    if r < 0.55 then
      local lease = math.floor(rnd() * 8)
      local wait, ticket = lim:acquire(now, lease)
      log[#log + 1] = string.format("acquire %.6f -> %.6f", now, wait)
      if wait == 0 then flying[#flying + 1] = { ticket = ticket, at = now + rnd() * 10 } end
    elseif r < 0.9 and #flying > 0 then
      local i = 1 + math.floor(rnd() * #flying)
      local f = table.remove(flying, i)
      if f.at <= now or rnd() < 0.5 then
        local headers, stated
        local h = rnd()
        if h < 0.2 then
          headers = { ["x-ratelimit-remaining"] = tostring(math.floor(rnd() * 4)),
                      ["x-ratelimit-reset"] = tostring(math.floor(NOW_WALL + now + rnd() * 20)) }
        elseif h < 0.3 then
          headers, stated = {}, rnd() * 5
        elseif h < 0.8 then
          headers = { ["content-type"] = "application/json" }
        end
        log[#log + 1] = string.format("done %.6f -> %s", now,
          tostring(lim:done(f.ticket, now, headers, NOW_WALL + now, stated, true)))
      end
    else
      local a = lim:available(now)
      log[#log + 1] = string.format("available %.6f %s %s", now, tostring(a.per_minute),
        tostring(a.per_hour))
    end
    now = now + rnd() * rnd() * 4
  end
  return log
end

describe("ratelimit's C rings", function()
  local CFGS = {
    { per_minute = 3, per_hour = 7, minute_seconds = 5, hour_seconds = 30 },
    { per_minute = 5, per_hour = false, minute_seconds = 10 },
    { per_minute = false, per_hour = 4, hour_seconds = 12.5 },
    { per_minute = 2, per_hour = 2, minute_seconds = 3, hour_seconds = 9 },
  }

  it("grant and wait as the Lua path does, answers and server headers included", function()
    for seed = 1, 40 do
      local cfg = CFGS[seed % #CFGS + 1]
      local c, lua = run("c", seed, cfg), run("table", seed, cfg)
      assert.equal(#lua, #c)
      for i = 1, #lua do assert.equal(lua[i], c[i], "seed " .. seed .. ", step " .. i) end
    end
  end)

  -- The model: the n-th request is granted at t only when the one `limit`
  -- grants before it has left the window (its reservation + lease +
  -- period <= t); otherwise the wait is that instant - t, at most a period.
  it("grant and wait as a plain model of the ring when no answer comes", function()
    for seed = 1, 30 do
      local rnd = lcg(seed)
      local limit, period = 1 + math.floor(rnd() * 6), 1 + math.floor(rnd() * 20)
      for _, rings in ipairs{ "c", "table" } do
        local lim = ratelimit.new(new_key(), { per_minute = limit, per_hour = false,
          minute_seconds = period }, { store = ratelimit.memory_store(rings) })
        local grants, now = {}, 0
        local r2 = lcg(seed + 1000)
        for _ = 1, 200 do
          local lease = math.floor(r2() * 5)
          local expect = 0
          local before = grants[#grants - limit + 1]
          if before and before > now then expect = math.min(before - now, period) end
          if expect > 0 and expect < 0.001 then expect = 0.001 end
          local wait = lim:acquire(now, lease)
          assert.near(expect, wait, 1e-9, rings .. " seed " .. seed)
          if wait == 0 then grants[#grants + 1] = now + lease + period end
          now = now + r2() * 3
        end
      end
    end
  end)

  it("frees a slot of a ring grown past its first allocation", function()
    local lim = ratelimit.new(new_key(), { per_minute = 100, per_hour = false },
      { store = ratelimit.memory_store("c") })
    local tickets = {}
    for i = 1, 100 do
      local wait, t = lim:acquire(0, 10)
      assert.equal(0, wait)
      tickets[i] = t
    end
    assert.equal(40, lim:acquire(30)) -- the lease's end and a period: 70
    assert.is_true(lim:done(tickets[1], 1))
    assert.equal(31, lim:acquire(30)) -- answered at 1: free at 61
    assert.is_true(lim:done(tickets[100], 2))
    assert.same({ per_minute = 2 }, lim:available(65)) -- the first and the last
  end)

  it("names what it refuses", function()
    local store = ratelimit.memory_store("c")
    local ring = store:ring("fnv:0:minute:3:60")
    assert.has_error(function() ring[3] = 1 end, "coldsend.ratelimit: no slot 3 in a ring of 3")
    local big = store:ring("fnv:0:hour:3000000000:3600")
    assert.has_error(function() big[3000000000] = 1 end,
      "coldsend.ratelimit: no slot 3000000000 in a ring of 3000000000")
    assert.has_error(function() ring.other = 1 end,
      "coldsend.ratelimit: a ring's 'other' is written by C only")
    -- a slot is head % limit: a negative head was read before the slots
    -- (a crash), one at the integers' end overflowed on the next acquire
    for _, bad in ipairs{ -5, 1.5, 2 ^ 60, "x" } do
      local got = type(bad) == "number" and tostring(bad):gsub("%.0$", "") or "string"
      assert.has_error(function() ring.head = bad end,
        "coldsend.ratelimit: bad ring head (integer 0 .. 2^53 expected, got " .. got .. ")")
    end
    ring.head = 2 ^ 53 - 1
    assert.equal(2 ^ 53 - 1, ring.head)
  end)

  it("settles nothing for a ticket that is no head number", function()
    local lim = ratelimit.new(new_key(), { per_minute = 1, per_hour = false, minute_seconds = 10 },
      { store = ratelimit.memory_store("c") })
    assert.equal(0, (lim:acquire(0, 5)))
    for _, bad in ipairs { 1e300, -1e300, 0 / 0, 0.5, -1, { 1e300 }, { 0 / 0 }, {} } do
      assert.is_true(lim:done(bad, 1), tostring(bad))
    end
    assert.equal(10, lim:acquire(5)) -- still the lease's end and a period away: 15
    assert.has_error(function() lim:done("x", 1) end)
  end)

  it("grants after a refused head as before it", function()
    local lim = ratelimit.new(new_key(), { per_minute = 3, per_hour = false },
      { store = ratelimit.memory_store("c") })
    assert.has_error(function() lim.r1.head = -1 end)
    local wait, ticket = lim:acquire(0, 0)
    assert.equal(0, wait)
    assert.equal(0, ticket)
  end)

  -- Headers whose reads run Lua: a collection, an acquire from inside the
  -- answer, an error. The C rings hold no slot across them.
  it("answer as the Lua path does when the headers' reads run Lua", function()
    local function outcome(rings, index)
      local lim = ratelimit.new(new_key(), { per_minute = 2, per_hour = 3, minute_seconds = 5,
        hour_seconds = 20 }, { store = ratelimit.memory_store(rings) })
      local log = {}
      for step = 1, 12 do
        local wait, ticket = lim:acquire(step, 1)
        log[#log + 1] = "a " .. tostring(wait)
        if wait == 0 then
          local headers = setmetatable({}, { __index = function(_, k) return index(lim, k, step, log) end })
          local ok, err = pcall(lim.done, lim, ticket, step + 0.5, headers, NOW_WALL + step, nil, false)
          log[#log + 1] = "d " .. tostring(ok) .. " " .. tostring(ok or tostring(err):match("boom"))
        end
        log[#log + 1] = "v " .. lim:available(step + 1).per_minute .. " " .. lim:available(step + 1).per_hour
      end
      return table.concat(log, "\n")
    end
    local cases = {
      collect = function(_, k)
        collectgarbage()
        collectgarbage()
        if k == "x-ratelimit-remaining" then return "1" end
      end,
      reenter = function(lim, k, step, log)
        if k == "x-ratelimit-remaining" then
          local wait, ticket = lim:acquire(step + 0.25, 0)
          log[#log + 1] = "inner " .. tostring(wait)
          if wait == 0 then lim:done(ticket, step + 0.3, nil) end
          return "0"
        end
      end,
      raise = function(_, k, step)
        if k == "x-ratelimit-reset" and step % 2 == 0 then error("boom") end
        if k == "x-ratelimit-remaining" then return "1" end
      end,
    }
    for name, index in pairs(cases) do
      assert.equal(outcome("table", index), outcome("c", index), name)
    end
  end)

  -- A store's pins (see ratelimit.lua's `pin`) changed after its limiter
  -- was made: the C rings wrote to whatever was there (a crash on nil or
  -- a number); now they do what the Lua path does.
  it("pins as the Lua path does when the store's pins change", function()
    local function outcome(rings, pins)
      local store = ratelimit.memory_store(rings)
      store.pins, store.fp, store.busy_until = {}, "fp", -math.huge
      local lim = ratelimit.new(new_key(), { per_minute = 3, per_hour = false }, { store = store })
      store.pins = pins
      local ok, wait = pcall(lim.acquire, lim, 0, 0)
      return tostring(ok) .. " " .. tostring(ok and wait or tostring(wait):match("attempt to index .*(a %a+ value)")),
        type(pins) == "table" and pins.fp == store
    end
    for _, pins in ipairs{ false, 7, "s", setmetatable({}, { __newindex = rawset }) } do
      local c, c_pinned = outcome("c", pins)
      local lua, lua_pinned = outcome("table", pins)
      assert.equal(lua, c, tostring(pins))
      assert.equal(lua_pinned, c_pinned)
    end
    assert.equal("true 0", (outcome("c", nil)))
  end)
end)
