-- spec/nginx/ratelimit_ngx_spec.lua: the rate limiter's buckets in a
-- lua_shared_dict, shared by every worker of a real nginx.
local helper = require "spec.nginx.helper"

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
        ngx.say(tostring(a), " ", tostring(b), " ", lim:acquire(ngx.now()))
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

  it("gives all workers one budget per key", function()
    local granted, workers = 0, {}
    for _ = 1, 60 do
      local status, body = srv:get("/take")
      assert.are.equal(200, status)
      local verdict, worker = body:match("^(%a+) (%d+)")
      if verdict == "ok" then granted = granted + 1 end
      workers[worker] = true
    end
    -- per-worker buckets would grant up to 5 in each worker
    assert.are.equal(5, granted)
    assert.is_true(workers["0"] and workers["1"], "both workers answered")
    local status, keys = srv:get("/keys")
    assert.are.equal(200, status)
    assert.matches("coldsend:ratelimit:fnv:%x+:minute", keys)
  end)

  it("falls back to per-worker buckets without the dict, warning once", function()
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
