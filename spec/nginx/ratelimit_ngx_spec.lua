-- spec/nginx/ratelimit_ngx_spec.lua: the rate limiter's rings in a
-- lua_shared_dict, shared by every worker of a real nginx; and 200
-- concurrent calls from 4 workers against a sandbox enforcing the same
-- (short) windows on the real clock.
local helper = require "spec.nginx.helper"
local sandbox = require "spec.helpers.sandbox"
local windows = require "spec.helpers.windows"

local HTTP = [[
  init_by_lua_block {
    ratelimit = require "coldsend.ratelimit"
    ratelimit_ngx = require "coldsend.ratelimit_ngx"
    KEY = "cs_test_ratelimit_ngx_spec"
    CFG = { per_minute = 5, per_hour = false }
  }
]]

local SERVER = [[
    location = /take {
      content_by_lua_block {
        -- a new limiter and a new store object each time: only the dict is shared
        local lim = ratelimit.new(KEY, CFG, { store = ratelimit_ngx.store() })
        ngx.update_time()
        ngx.say(lim:acquire(ngx.now()) == 0 and "ok" or "wait", " ", ngx.worker.id())
      }
    }
    location = /clock {
      content_by_lua_block {
        -- the client's clock: CLOCK_MONOTONIC, not ngx.now()'s wall clock
        local core = require "coldsend.core"
        local cs = require("coldsend").client { api_key = "cs_live_" .. string.rep("a", 32),
          base_url = "http://127.0.0.1:9" }
        ngx.update_time()
        ngx.say(string.format("%.3f %.3f %.3f", cs.clock(), core.now(), ngx.now()))
      }
    }
    location = /keys {
      content_by_lua_block {
        for _, k in ipairs(ngx.shared.coldsend:get_keys(0)) do ngx.say(k) end
      }
    }
    location = /missing {
      content_by_lua_block {
        local a = ratelimit_ngx.store("no_such_dict")
        local b = ratelimit_ngx.store("no_such_dict")
        local lim = ratelimit.new(KEY .. "x", CFG, { store = a })
        ngx.say(tostring(a), " ", tostring(b), " ", (lim:acquire(ngx.now())))
      }
    }
]]

describe("ratelimit_ngx in nginx #once", function()
  local srv

  setup(function()
    assert(helper.usable(), "Debian nginx with libnginx-mod-http-lua is needed")
    srv = helper.start{ http = HTTP, server = SERVER, workers = 2 }
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("gives the client a clock a step of the wall clock does not move", function()
    local status, body = srv:get("/clock")
    assert.are.equal(200, status, body)
    local client, mono, wall = body:match("^(%S+) (%S+) (%S+)")
    assert.is_true(math.abs(tonumber(client) - tonumber(mono)) < 1, body)
    assert.is_true(math.abs(tonumber(client) - tonumber(wall)) > 1000, body)
  end)

  it("gives all workers one budget per key", function()
    local granted, workers = 0, {}
    for _ = 1, 60 do
      local status, body = srv:get("/take")
      assert.are.equal(200, status)
      local verdict, worker = body:match("^(%a+) (%d+)")
      if verdict == "ok" then granted = granted + 1 end
      workers[worker] = true
    end
    -- per-worker rings would grant up to 5 in each worker
    assert.are.equal(5, granted)
    assert.is_true(workers["0"] and workers["1"], "both workers answered")
    local status, keys = srv:get("/keys")
    assert.are.equal(200, status)
    assert.matches("coldsend:ratelimit:fnv:%x+:minute", keys)
  end)

  it("falls back to per-worker rings without the dict, warning once", function()
    local status, body = srv:get("/missing")
    assert.are.equal(200, status)
    assert.are.equal("nil nil 0\n", body)
    local log = srv:error_log()
    local _, count = log:gsub("no lua_shared_dict 'no_such_dict'", "")
    assert.are.equal(1, count)
    assert.matches("lua_shared_dict no_such_dict 1m;", log, 1, true)
    assert.matches("[warn]", log, 1, true)
  end)
end)

local BUDGET_HTTP = [[
  init_by_lua_block {
    coldsend = require "coldsend"
    -- 40 a second and 100 in 4 s: short windows, so 200 calls take seconds
    CFG = { per_minute = 40, per_hour = 100, minute_seconds = 1, hour_seconds = 4 }
  }
]]

local BUDGET_SERVER = [[
    location = /read {
      content_by_lua_block {
        -- a client per request (the default store: lua_shared_dict coldsend);
        -- no retry, so a 429 would show
        local cs = coldsend.client { api_key = os.getenv("SANDBOX_KEY"),
          base_url = os.getenv("SANDBOX_URL"), rate_limit = CFG, max_retries = 0 }
        local page, err = cs:list_campaigns { limit = 1 }
        ngx.say(page and "ok" or err.code, " ", ngx.worker.id())
      }
    }
]]

describe("the key's budget under nginx with 4 workers #once", function()
  local sb, srv

  setup(function()
    assert(helper.usable(), "Debian nginx with libnginx-mod-http-lua is needed")
    sb = sandbox.start { rate_limit = 40, rate_window = 1, rate_limit_hour = 100, rate_window_hour = 4 }
    srv = helper.start { http = BUDGET_HTTP, server = BUDGET_SERVER, workers = 4,
      env = { SANDBOX_URL = sb.url, SANDBOX_KEY = sb.key } }
  end)

  teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)

  it("200 concurrent calls: no window over the limit, no 429", function()
    local pending = {}
    for i = 1, 200 do pending[i] = srv:start_get("/read") end
    local outcomes, workers = {}, {}
    for i = 1, 200 do
      local status, body = pending[i].finish()
      assert.are.equal(200, status, body)
      local outcome, worker = body:match("^(%S+) (%d+)")
      outcomes[outcome] = (outcomes[outcome] or 0) + 1
      workers[worker] = true
    end
    assert.same({ ok = 200 }, outcomes)
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.is_true(n >= 2, "the calls were spread over the workers")
    local at, refused = {}, 0
    for _, e in ipairs(sb:log()) do
      at[#at + 1] = e.clock
      if e.status == 429 then refused = refused + 1 end
    end
    assert.are.equal(200, #at)
    assert.are.equal(0, refused)
    assert.is_true(windows.busiest(at, 1) <= 40, windows.busiest(at, 1))
    -- the budget was used (near its end: each slot frees a window after
    -- its answer, not its arrival), never beyond
    local busiest = windows.busiest(at, 4)
    assert.is_true(busiest <= 100 and busiest >= 60, busiest)
  end)
end)
