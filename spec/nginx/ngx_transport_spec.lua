-- spec/nginx/ngx_transport_spec.lua: coldsend.transport.ngx inside a real
-- Debian nginx, with stand-in thread functions (spec/nginx/thread_stub.lua),
-- so the glue is proven whatever state the C transfer is in.
local helper = require "spec.nginx.helper"

local HTTP = [[
  init_by_lua_block {
    ngx_transport = require "coldsend.transport.ngx"
    stub = function(func, pool)
      return ngx_transport.new{ pool = pool, module = "spec.nginx.thread_stub", func = func }
    end
    seq = require "spec.helpers.ngx_seq"
    -- the phase error a call gives where nginx cannot wait
    phase_error = function()
      local ok, err = pcall(stub("echo"), { method = "GET", url = "http://127.0.0.1:1/" })
      return ok and "no error" or tostring(err)
    end
  }
  init_worker_by_lua_block {
    ngx.shared.coldsend_test:set("err:init_worker", phase_error())
    ngx.timer.at(0, function()
      local res, msg = stub("echo")({ method = "GET", url = "http://timer.test/" })
      ngx.shared.coldsend_test:set("timer", res and res.body or msg)
    end)
  }
]]

local SERVER = [[
    location = /echo {
      content_by_lua_block {
        local res, msg, code, info = stub("echo")({
          method = "POST", url = "http://127.0.0.1:9/x", headers = { A = "b" },
          body = "{}", timeout = 3, on_progress = print,
          meta = setmetatable({}, { __index = function() return 1 end }),
        })
        ngx.say(res.status, " ", res.body, " ", res.headers["x-fields"])
      }
    }
    location = /refused {
      content_by_lua_block {
        local res, msg, code, info = stub("refused")({ method = "GET", url = "http://x/" })
        ngx.say(tostring(res), "|", msg, "|", code, "|", info.curl_code, "|", tostring(info.sent))
      }
    }
    location = /nopool {
      content_by_lua_block {
        local ok, err = pcall(stub("echo", "nopool"), { method = "GET", url = "http://x/" })
        ngx.say(tostring(ok), "|", err)
      }
    }
    location = /nomodule {
      content_by_lua_block {
        local t = ngx_transport.new{ module = "coldsend.no_such_core" }
        local ok, err = pcall(t, { method = "GET", url = "http://x/" })
        ngx.say(tostring(ok), "|", err)
      }
    }
    location = /raise {
      content_by_lua_block {
        local ok, err = pcall(stub("raise"), { method = "GET", url = "http://x/" })
        ngx.say(tostring(ok), "|", err)
      }
    }
    location = /rewrite_access {
      rewrite_by_lua_block { ngx.ctx.r = stub("echo")({ method = "GET", url = "http://r/" }).body }
      access_by_lua_block { ngx.ctx.a = stub("echo")({ method = "GET", url = "http://a/" }).body }
      content_by_lua_block { ngx.say(ngx.ctx.r, "|", ngx.ctx.a) }
    }
    location = /phases {
      set_by_lua_block $set_err { return phase_error() }
      header_filter_by_lua_block { ngx.shared.coldsend_test:set("err:header_filter", phase_error()) }
      body_filter_by_lua_block {
        if ngx.arg[2] then ngx.shared.coldsend_test:set("err:body_filter", phase_error()) end
      }
      log_by_lua_block { ngx.shared.coldsend_test:set("err:log", phase_error()) }
      content_by_lua_block { ngx.shared.coldsend_test:set("err:set", ngx.var.set_err) ngx.say("ok") }
    }
    location = /helpers {
      content_by_lua_block {
        local t0 = ngx_transport.now()
        ngx_transport.sleep(0.01)
        ngx.say(tostring(ngx_transport.available()), "|", tostring(ngx_transport.check_phase()),
                "|", tostring(ngx_transport.now() - t0 >= 0.009))
      }
    }
    location = /slow {
      content_by_lua_block {
        seq("slow_start:" .. ngx.var.arg_i)
        local res, msg = stub("slow")({ method = "GET", url = "http://x/", timeout = 2 })
        seq("slow_done:" .. ngx.var.arg_i)
        ngx.say(res and res.body or msg)
      }
    }
    location = /ping {
      content_by_lua_block { seq("ping:" .. ngx.var.arg_i) ngx.say("pong") }
    }
]]

describe("ngx transport in nginx #once", function()
  local srv

  setup(function()
    assert(helper.usable(), "Debian nginx with libnginx-mod-http-lua is needed")
    srv = helper.start{ http = HTTP, server = SERVER }
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  local function get(path)
    local status, body = srv:get(path)
    assert.are.equal(200, status, body)
    return (body:gsub("\n$", ""))
  end

  it("runs the function in a worker thread and returns its response", function()
    local body = get("/echo")
    -- hooks and metatables on req are dropped before the copy, data kept
    assert.are.equal("200 POST http://127.0.0.1:9/x body=string,headers=table,"
      .. "meta=table,method=string,timeout=number,url=string", body)
  end)

  it("passes a transfer failure through as nil, message, code, info", function()
    assert.are.equal("nil|Couldn't connect to server|network|7|false", get("/refused"))
  end)

  it("shows the thread_pool line to add when the pool is missing", function()
    local body = get("/nopool")
    assert.matches("^false|", body)
    assert.matches("thread_pool nopool threads=16;", body, 1, true)
    assert.matches("main context of nginx.conf", body, 1, true)
  end)

  it("names lua_package_cpath when the threads cannot load the core", function()
    local body = get("/nomodule")
    assert.matches("^false|", body)
    assert.matches("lua_package_cpath", body, 1, true)
  end)

  it("raises what the thread function raised", function()
    assert.matches("^false|.*stub misuse", get("/raise"))
  end)

  it("works in rewrite, access and timer phases", function()
    assert.are.equal("GET http://r/|GET http://a/", get("/rewrite_access"))
    assert.are.equal("GET http://timer.test/", srv:key("timer", 2))
  end)

  it("exposes sleep, now, available and check_phase", function()
    assert.are.equal("true|true|true", get("/helpers"))
  end)

  it("fails at once, naming the phase and ngx.timer.at, where nginx cannot wait", function()
    get("/phases")
    for _, phase in ipairs { "init_worker", "set", "header_filter", "body_filter", "log" } do
      local msg = srv:key("err:" .. phase, 1)
      assert.matches("'" .. phase .. "' phase", msg, 1, true)
      assert.matches("ngx.timer.at(0, function(premature)", msg, 1, true)
    end
  end)

  it("keeps the worker serving while 20 transfers hold threads", function()
    local pending = {}
    for i = 1, 20 do pending[i] = srv:start_get("/slow?i=" .. i) end
    -- wait until all 20 are inside the transport (the worker took them all)
    assert.are.equal(20, srv:wait_count("slow_start:", 20))
    for i = 1, 50 do assert.are.equal("pong", get("/ping?i=" .. i)) end
    for i = 1, 20 do
      local status, body = pending[i].finish()
      assert.are.equal(200, status)
      assert.are.equal("slept 2", (body:gsub("\n$", "")))
    end
    -- ordering, not timing: every ping before the first transfer returned
    local last_ping, first_done = srv:order("ping:", 50, "slow_done:", 20)
    assert.is_true(last_ping < first_done, ("last ping #%d, first transfer done #%d"):format(last_ping, first_done))
  end)
end)

-- The same glue with a stand-in `ngx` (runs under every Lua of the suite):
-- the failures a real nginx only shows under load or when too old.
describe("ngx transport with a stand-in ngx", function()
  local ngx_transport = require "coldsend.transport.ngx"
  local calls, answer

  before_each(function()
    calls = {}
    answer = { true, { status = 200, headers = {}, body = "" } }
    _G.ngx = {
      get_phase = function() return "content" end,
      run_worker_thread = function(...)
        calls[#calls + 1] = { ... }
        return (table.unpack or unpack)(answer)
      end,
    }
  end)

  after_each(function() _G.ngx = nil end)

  it("passes pool, module, function and a plain copy of the request", function()
    local t = ngx_transport.new { pool = "api" }
    local res = t { method = "GET", url = "http://x/", headers = { A = "b" }, hook = print,
      multipart = { { name = "file", file = "/tmp/x.csv", offset = 3 } } }
    assert.are.equal(200, res.status)
    assert.are.same({ "api", "coldsend.core", "http_perform",
      { method = "GET", url = "http://x/", headers = { A = "b" },
        multipart = { { name = "file", file = "/tmp/x.csv", offset = 3 } } } }, calls[1])
  end)

  it("turns saturated threads into a never-sent network failure", function()
    for _, why in ipairs { "no available Lua vm", "ngx_thread_task_post failed" } do
      answer = { false, why }
      local res, msg, code, info = ngx_transport.new()({ method = "POST", url = "http://x/" })
      assert.is_nil(res)
      assert.matches(why, msg, 1, true)
      assert.matches("lua_worker_thread_vm_pool_size", msg, 1, true)
      assert.are.equal("network", code)
      assert.are.same({ sent = false }, info)
    end
  end)

  it("raises with the way out when ngx_lua has no run_worker_thread", function()
    _G.ngx.run_worker_thread = nil
    local ok, err = pcall(ngx_transport.new(), { method = "GET", url = "http://x/" })
    assert.is_false(ok)
    assert.matches("0.10.21", err, 1, true)
    assert.matches("coldsend.transport.resty", err, 1, true)
  end)

  it("raises outside nginx, and check_phase says why", function()
    _G.ngx = nil
    assert.is_false(ngx_transport.available())
    local ok, why = ngx_transport.check_phase()
    assert.is_nil(ok)
    assert.matches("not running inside nginx", why, 1, true)
    assert.has_error(function() ngx_transport.new()({ method = "GET", url = "http://x/" }) end)
  end)

  it("refuses bad options", function()
    assert.has_error(function() ngx_transport.new { pool = "" } end,
      "bad value for 'pool' (non-empty string expected, got string)")
    assert.has_error(function() ngx_transport.new "coldsend" end)
  end)
end)
