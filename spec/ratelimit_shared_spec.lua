-- ratelimit_shared_spec: coldsend.ratelimit_ngx over a fake lua_shared_dict,
-- with workers whose every dict operation may be interleaved with any
-- other worker's (a dict operation is the unit nginx makes atomic; between
-- two of them another worker process can run). Each worker is a coroutine
-- with its own limiter and store object: only the dict is shared, as
-- between nginx workers. The server sees each request at a random instant
-- between its reservation and its answer.
local ratelimit = require "coldsend.ratelimit"
local ratelimit_ngx = require "coldsend.ratelimit_ngx"

local windows = require "spec.helpers.windows"
local busiest, lcg = windows.busiest, windows.lcg

-- A fake ngx.shared.DICT on the simulation's clock (sim.now): values
-- expire, and every operation first yields, so the scheduler may run
-- another worker between any two. broken_lock: safe_add always succeeds
-- (a lock that does not exclude), to show the test catches a race.
-- capacity: the most entries it holds; adding more fails with "no memory",
-- as safe_set and safe_add do on a full dict.
local function fake_dict(sim, broken_lock, capacity)
  local data = {}
  local function full(key)
    if not capacity or data[key] then return false end
    local n = 0
    for k, e in pairs(data) do
      if e.exp and e.exp <= sim.now then data[k] = nil else n = n + 1 end
    end
    return n >= capacity
  end
  local function live(key)
    local e = data[key]
    if e and e.exp and e.exp <= sim.now then data[key] = nil; e = nil end
    return e
  end
  local function step()
    -- (Lua 5.1 and 5.2 have no coroutine.isyieldable)
    local co, main = coroutine.running()
    if co and not main then coroutine.yield("op") end
  end
  local d = {}
  function d.get(_, key)
    step()
    local e = live(key)
    return e and e.v
  end
  function d.safe_set(_, key, v, exptime)
    step()
    if full(key) then return false, "no memory" end
    data[key] = { v = v, exp = exptime and exptime > 0 and sim.now + exptime or nil }
    return true
  end
  function d.safe_add(_, key, v, exptime)
    step()
    if live(key) and not broken_lock then return false, "exists" end
    if full(key) then return false, "no memory" end
    data[key] = { v = v, exp = exptime and exptime > 0 and sim.now + exptime or nil }
    return true
  end
  function d.delete(_, key)
    step()
    data[key] = nil
  end
  d.data = data
  return d
end

-- Runs `workers` coroutines, each sending `per_worker` requests through a
-- limiter of its own over the one dict; returns the instants the server
-- saw them and the simulated time it took.
local function simulate(opts)
  local sim = { now = 0 }
  local rnd = lcg(opts.seed)
  local dict = fake_dict(sim, opts.broken_lock, opts.capacity)
  local saved = rawget(_G, "ngx")
  rawset(_G, "ngx", { shared = { coldsend = dict }, WARN = 5, log = function() end,
    now = function() return sim.now end })
  local seen, tasks = {}, {}
  local function sleep(s) coroutine.yield("sleep", sim.now + s) end
  for w = 1, opts.workers do
    tasks[w] = { wake = 0, co = coroutine.create(function()
      local lim = ratelimit.new("cs_test_shared_dict_spec", opts.cfg, { store = ratelimit_ngx.store() })
      for _ = 1, opts.per_worker do
        while true do
          local wait, ticket = lim:acquire(sim.now, opts.lease)
          if wait == 0 then
            local latency = rnd() * opts.latency
            local at = latency * rnd()
            sleep(at)
            seen[#seen + 1] = sim.now
            sleep(latency - at)
            while not lim:done(ticket, sim.now) do sleep(0.001) end
            break
          end
          sleep(wait)
        end
      end
    end) }
  end
  local ok, err = pcall(function()
    while true do
      local ready, soonest = {}, math.huge
      for _, t in ipairs(tasks) do
        if coroutine.status(t.co) ~= "dead" then
          if t.wake <= sim.now then ready[#ready + 1] = t end
          if t.wake < soonest then soonest = t.wake end
        end
      end
      if soonest == math.huge then break end
      if #ready == 0 then
        sim.now = soonest
      else
        -- any ready worker may take the next step
        local t = ready[1 + math.floor(rnd() * #ready)]
        local alive, what, wake = coroutine.resume(t.co)
        assert(alive, what)
        if what == "sleep" then t.wake = wake end
      end
    end
  end)
  rawset(_G, "ngx", saved)
  assert(ok, err)
  return seen, sim.now, dict
end

-- A worker steps inside the rings' metamethods, which PUC Lua 5.1 cannot
-- yield across: there the interleaved runs are pending.
local interleaved = (_VERSION ~= "Lua 5.1" or rawget(_G, "jit")) and it or pending

describe("ratelimit_ngx over a shared dict, workers interleaved", function()
  local CFG = { per_minute = 10, per_hour = 30, minute_seconds = 6, hour_seconds = 40 }

  interleaved("never lets the server see more than the limit in any window", function()
    for seed = 1, 12 do
      local seen, took = simulate { seed = seed, workers = 6, per_worker = 12, cfg = CFG,
        lease = 5, latency = 3 }
      assert.equal(72, #seen)
      assert.is_true(busiest(seen, 6) <= 10, "seed " .. seed .. ": " .. busiest(seen, 6))
      assert.is_true(busiest(seen, 40) <= 30, "seed " .. seed .. ": " .. busiest(seen, 40))
      -- and it still sends: 72 requests at 30 per 40 s take two windows and a bit
      assert.is_true(took < 40 * 3, "seed " .. seed .. ": " .. took)
    end
  end)

  interleaved("holds with the real windows and 200 requests from 4 workers", function()
    local seen = simulate { seed = 99, workers = 4, per_worker = 50, cfg = {}, lease = 60,
      latency = 0.5 }
    assert.equal(200, #seen)
    assert.equal(100, busiest(seen, 60))
  end)

  interleaved("would overshoot without the lock: the interleaving is real", function()
    local worst = 0
    for seed = 1, 12 do
      local seen = simulate { seed = seed, workers = 6, per_worker = 12, cfg = CFG, lease = 5,
        latency = 3, broken_lock = true }
      worst = math.max(worst, busiest(seen, 6))
    end
    assert.is_true(worst > 10, worst)
  end)

  interleaved("never overspends when the dict is too small for the rings: it sends less", function()
    for seed = 1, 6 do
      local seen = simulate { seed = seed, workers = 4, per_worker = 20, cfg = CFG, lease = 5,
        latency = 1, capacity = 14 }
      assert.is_true(busiest(seen, 6) <= 10, "seed " .. seed .. ": " .. busiest(seen, 6))
      assert.is_true(busiest(seen, 40) <= 30, "seed " .. seed .. ": " .. busiest(seen, 40))
      assert.equal(80, #seen)
    end
  end)

  it("expires entries by the limiter's clock, not nginx's", function()
    local sim = { now = 1700000000 }
    local dict = fake_dict(sim)
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", { shared = { coldsend = dict }, WARN = 5, log = function() end,
      now = function() return sim.now end })
    local mono = 100 -- a monotonic clock far from ngx.now()
    local ok, err = pcall(function()
      local store = ratelimit_ngx.store("coldsend", function() return mono end)
      local lim = ratelimit.new("cs_test_shared_dict_clock", { per_minute = 1, per_hour = false },
        { store = store })
      assert.equal(0, (lim:acquire(mono, 10)))
      sim.now, mono = sim.now + 30, mono + 30
      assert.is_true(lim:acquire(mono) > 0)
    end)
    rawset(_G, "ngx", saved)
    assert(ok, err)
  end)

  interleaved("keeps only the rings' entries, each expiring once it no longer matters", function()
    local _, took, dict = simulate { seed = 5, workers = 3, per_worker = 5, cfg = CFG, lease = 5,
      latency = 1 }
    local n = 0
    for key, e in pairs(dict.data) do
      n = n + 1
      assert.truthy(key:match("^coldsend:ratelimit:fnv:%x+:%a+:"), key)
      assert.is_falsy(key:match(":lock$"), "the lock is released")
      if key:match(":%d+$") then
        -- a second after the slot frees, never before
        assert.is_true(e.exp >= e.v + 1 - 1e-6 and e.exp <= took + 40 + 5 + 2, key)
      else
        assert.is_true(e.exp > 2 * 3600 and e.exp <= took + 2 * 3600, key) -- a head
      end
    end
    -- 15 requests: the minute's 10 slots, 15 of the hour's 30, two heads
    assert.equal(10 + 15 + 2, n)
  end)
end)
