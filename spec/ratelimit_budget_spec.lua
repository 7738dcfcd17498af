-- ratelimit_budget_spec: the key's budget held exactly, end to end: the
-- client with the real libcurl transport against a sandbox enforcing the
-- same limits over sliding windows, on a fake clock shared by the client
-- and the sandbox (the sandbox's clock is set to the client's before every
-- request, and every answer takes LATENCY seconds of it), so minutes pass
-- without waiting. The sandbox's log shows the instant it saw each request.
local sandbox = require "spec.helpers.sandbox"
local windows = require "spec.helpers.windows"
local coldsend = require "coldsend"
local core = require "coldsend.core"

local BASE = 1700000000
local LATENCY = 0.25
local busiest = windows.busiest

describe("the key's budget against the sandbox", function()
  local sb
  local hooks = sandbox.hooks({ rate_limit = true }, function(s) sb = s end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  -- One fake clock for every client of a test: clock, wall_clock and sleep,
  -- and a transport that sets the sandbox's clock, sends, and lets the
  -- answer take LATENCY.
  local function world()
    local w = { t = 0, slept = 0 }
    function w.clock() return w.t end
    function w.wall_clock() return BASE + w.t end
    function w.sleep(s)
      w.slept = w.slept + s
      w.t = w.t + s
    end
    local real = core.http {}
    function w.transport(req)
      sb:clock { now = BASE + w.t }
      local res, msg, code, info = real(req)
      w.t = w.t + LATENCY
      return res, msg, code, info
    end
    function w.client(opts)
      local o = { api_key = sb.key, base_url = sb.url, clock = w.clock, wall_clock = w.wall_clock,
        sleep = w.sleep, transport = w.transport, max_wait = 3600 }
      for k, v in pairs(opts or {}) do o[k] = v end
      return coldsend.client(o)
    end
    return w
  end

  -- Runs coroutine tasks ({ wake =, co = }) on w's clock: a sleep yields
  -- the instant it ends, and whoever wakes first is resumed.
  local function run(w, tasks)
    while true do
      table.sort(tasks, function(a, b) return a.wake < b.wake end)
      local task = tasks[1]
      if not task then break end
      if task.wake > w.t then w.t = task.wake end
      local ok, wake = coroutine.resume(task.co)
      assert(ok, wake)
      if coroutine.status(task.co) == "dead" then table.remove(tasks, 1) else task.wake = wake end
    end
  end

  -- The sandbox's view: the instants it saw API requests, and its 429s.
  local function seen()
    local at, refused = {}, 0
    for _, e in ipairs(sb:log()) do
      if e.path and e.path:sub(1, 1) == "/" then
        at[#at + 1] = e.clock - BASE
        if e.status == 429 then refused = refused + 1 end
      end
    end
    return at, refused
  end

  -- `n` list calls through cs; then the sandbox must have seen `total`
  -- requests and refused none: the instants it saw them
  local function listed(cs, n, total)
    for _ = 1, n do assert(cs:list_campaigns { limit = 1 }) end
    local at, refused = seen()
    assert.equal(total, #at)
    assert.equal(0, refused)
    return at
  end

  it("230 sequential calls: never over 100 in a minute, no 429", function()
    -- a bare --rate-limit: the documented limits
    local c = sb:control("GET", "/config")
    assert.same({ 100, 60, 1000, 3600 }, { c.rate_limit, c.rate_window, c.rate_limit_hour,
      c.rate_window_hour })
    local w = world()
    local cs = w.client()
    local made = assert(cs:create_campaign { name = "Budget Held Exactly" })
    for _ = 1, 229 do assert(cs:get_campaign(made.id)) end
    local at, refused = seen()
    assert.is_true(#at >= 230, #at) -- the create makes more than one
    assert.equal(0, refused)
    assert.equal(100, busiest(at, 60))
    -- 100 went at once, then each waited for the one 100 places before it
    assert.is_true(w.slept >= 60 and w.t < 200, w.t)
  end)

  it("1,050 calls: never over 1,000 in an hour nor 100 in a minute, no 429", function()
    local w = world()
    local at = listed(w.client(), 1050, 1050)
    assert.equal(100, busiest(at, 60))
    assert.equal(1000, busiest(at, 3600))
    assert.is_true(w.t > 3600, w.t)
  end)

  it("the server's Remaining tightens it: requests made elsewhere with the key count", function()
    local w = world()
    sb:clock { now = BASE }
    for _ = 1, 60 do
      assert.equal(200, (sb:request("GET", "/campaigns", nil)))
    end
    local at = listed(w.client(), 120, 180)
    assert.equal(100, busiest(at, 60))
  end)

  it("a 429 holds exactly the wait the sandbox states, then the budget resumes", function()
    local w = world()
    sb:config { rate_limit = 3, rate_limit_hour = false }
    sb:clock { now = BASE }
    for _ = 1, 3 do assert.equal(200, (sb:request("GET", "/campaigns", nil))) end
    local cs = w.client { rate_limit = { per_minute = 3, per_hour = false } }
    w.t = 20
    assert(cs:list_campaigns())
    -- the 429 at 20 said "Retry-After: 40"; counted from its answer (at
    -- 20.25) the retry went at 60.25, accepted
    assert.equal(40, w.slept)
    local at, refused = seen()
    assert.same({ 0, 0, 0, 20, 60 + LATENCY }, at)
    assert.equal(1, refused)
    sb:config { rate_limit = true }
  end)

  it("many clients and coroutines of one key, short windows: no window over", function()
    local w = world()
    sb:config { rate_limit = 5, rate_window = 6, rate_limit_hour = 12, rate_window_hour = 40 }
    local cfg = { per_minute = 5, per_hour = 12, minute_seconds = 6, hour_seconds = 40 }
    local tasks = {}
    local function sleep(s)
      w.slept = w.slept + s
      coroutine.yield(w.t + s)
    end
    for i = 1, 4 do
      local cs = w.client { rate_limit = cfg, sleep = sleep }
      for _ = 1, 3 do
        tasks[#tasks + 1] = { wake = i * 0.1, co = coroutine.create(function()
          for _ = 1, 4 do assert(cs:list_campaigns { limit = 1 }) end
        end) }
      end
    end
    run(w, tasks)
    local at, refused = seen()
    assert.equal(48, #at)
    assert.equal(0, refused)
    assert.equal(5, busiest(at, 6))
    assert.equal(12, busiest(at, 40))
    sb:config { rate_limit = true, rate_window = 60, rate_window_hour = 3600 }
  end)

  it("a call waits for the limiter no longer than max_wait in all, however many others wait", function()
    local w = world()
    sb:config { rate_limit = 1, rate_window = 6, rate_limit_hour = false }
    finally(function() sb:config { rate_limit = true, rate_window = 60, rate_limit_hour = 1000 } end)
    local cfg = { per_minute = 1, per_hour = false, minute_seconds = 6 }
    local tasks, slept, errs = {}, {}, {}
    local function sleep(s)
      local co = coroutine.running()
      slept[co] = (slept[co] or 0) + s
      coroutine.yield(w.t + s)
    end
    for i = 1, 6 do
      local cs = w.client { rate_limit = cfg, sleep = sleep, max_wait = 6 }
      tasks[i] = { wake = i * 0.1, co = coroutine.create(function()
        local ok, err = cs:list_campaigns { limit = 1 }
        if not ok then errs[#errs + 1] = err end
      end) }
    end
    local all = {}
    for i, task in ipairs(tasks) do all[i] = task end
    run(w, tasks)
    for _, task in ipairs(all) do
      assert.is_true((slept[task.co] or 0) <= 6, slept[task.co])
    end
    -- the first goes at once, the next after one window; the others are
    -- told when to come back rather than kept waiting
    local at, refused = seen()
    assert.equal(2, #at)
    assert.equal(0, refused)
    assert.equal(4, #errs)
    for _, err in ipairs(errs) do
      assert.equal("rate_limited", err.code)
      assert.is_true(err.retry_after > 0 and err.retry_after <= 6, err.retry_after)
      assert.truthy(err.message:find("max_wait 6 s", 1, true), err.message)
    end
  end)

  it("the sandbox enforces what it reports: a client without a limiter meets 429s", function()
    local w = world()
    local cs = w.client { rate_limit = false, max_retries = 0 }
    local last
    for _ = 1, 101 do last = select(2, cs:list_campaigns { limit = 1 }) end
    assert.equal("rate_limited", last.code)
    -- 100 at 0, 0.25, ..., 24.75: the first leaves at 60
    assert.equal(60 - 25, last.retry_after)
  end)
end)
