-- spec/nginx/openresty_spec.lua: the client inside a real Debian nginx,
-- against the sandbox: a campaign created and launched from a content
-- handler, a worker that keeps serving while 20 launches wait on a slow
-- API, and the phase error where nginx cannot wait.
local helper = require "spec.nginx.helper"
local sandbox = require "spec.helpers.sandbox"
local cjson = require "cjson"

local HTTP = [[
  init_by_lua_block {
    coldsend = require "coldsend"
    cjson = require "cjson.safe"
    new_client = function(opts)
      opts = opts or {}
      opts.api_key = os.getenv("SANDBOX_KEY")
      opts.base_url = os.getenv("SANDBOX_URL")
      return coldsend.client(opts)
    end
    seq = require "spec.helpers.ngx_seq"
    -- a ready-to-launch campaign: an inbox, a lead and one variant
    prepare = function(cs, name)
      local inbox, err = cs:add_smtp_inbox {
        email_address = name:gsub("%W", "") .. "@example.com", display_name = "Jane", inbox_type = "CUSTOM_SMTP",
        smtp_host = "smtp.example.com", smtp_port = 587,
        smtp_username = "jane@example.com", smtp_password = "app-password",
        imap_host = "imap.example.com", imap_port = 993,
        imap_username = "jane@example.com", imap_password = "app-password",
      }
      if not inbox then return nil, err end
      local c
      c, err = cs:create_campaign { name = name, timezone = "UTC", daily_limit_per_inbox = 30 }
      if not c then return nil, err end
      c.inbox_ids = { inbox.inbox_id }
      local lead
      lead, err = c:add_lead { email = "ada@example.org", first_name = "Ada" }
      if not lead then return nil, err end
      c:add_variant { subject_template = "Quick question, {{first_name}}",
        email_content = "Hi {{first_name}}, ...", distribution_percent = 100 }
      return c
    end
    -- what a call gives where nginx cannot wait (the client made there too)
    phase_error = function()
      local ok, err = pcall(function()
        return new_client():get_campaign("550e8400-e29b-41d4-a716-446655440000")
      end)
      return ok and "no error" or tostring(err)
    end
  }
  init_worker_by_lua_block {
    ngx.shared.coldsend_test:set("err:init_worker", phase_error())
  }
]]

local SERVER = [[
    location = /flow {
      content_by_lua_block {
        local cs = new_client()   -- default rate limiter: buckets in lua_shared_dict coldsend
        local c, err = prepare(cs, "nginx flow")
        local launched
        if c then launched, err = c:launch() end
        ngx.say(cjson.encode {
          ok = launched ~= nil, error = err and tostring(err) or nil,
          id = c and c.id, status = c and c.status, ready = c and c.is_launch_ready,
          phase = ngx.get_phase(),
          dict_keys = #ngx.shared.coldsend:get_keys(0),
        })
      }
    }
    location = /prepare {
      content_by_lua_block {
        local c, err = prepare(new_client { rate_limit = false }, "launch " .. ngx.var.arg_i)
        if c then c, err = c:save() end
        ngx.say(c and c.id or ("error: " .. tostring(err)))
      }
    }
    location = /launch {
      content_by_lua_block {
        local i = ngx.var.arg_i
        local cs = new_client { rate_limit = false, max_retries = 0, timeout = 30 }
        seq("launch_start:" .. i)
        local c, err = cs:campaign(ngx.var.arg_id):launch()
        seq("launch_done:" .. i)
        ngx.say(cjson.encode { ok = c ~= nil, status = c and c.status, error = err and tostring(err) or nil })
      }
    }
    location = /upload {
      content_by_lua_block {
        local cs = new_client { rate_limit = false }
        local c, err = cs:create_campaign { name = "nginx upload", timezone = "UTC" }
        local job, path
        if c then
          path = os.tmpname()
          local f = assert(io.open(path, "wb"))
          f:write("email,first_name\n")
          for i = 1, 25 do f:write(("u%d@example.org,U%d\n"):format(i, i)) end
          f:close()
          -- three chunks, each streamed from the file by the worker thread
          job, err = c:upload_leads { file = path, state_file = false, chunk_rows = 10,
            poll_interval = 0.05 }
          os.remove(path)
        end
        if job then c, err = c:refresh() end
        ngx.say(cjson.encode { ok = job ~= nil and c ~= nil, error = err and tostring(err) or nil,
          job = job and tostring(job), leads = c and c.total_leads })
      }
    }
    location = /ping {
      content_by_lua_block { seq("ping:" .. ngx.var.arg_i) ngx.say("pong") }
    }
    location = /phases {
      set_by_lua_block $set_err { return phase_error() }
      log_by_lua_block { ngx.shared.coldsend_test:set("err:log", phase_error()) }
      content_by_lua_block { ngx.shared.coldsend_test:set("err:set", ngx.var.set_err) ngx.say("ok") }
    }
]]

describe("client in nginx #once", function()
  local sb, srv

  setup(function()
    assert(helper.usable(), "Debian nginx with libnginx-mod-http-lua is needed")
    sb = sandbox.start { rate_limit = false }
    srv = helper.start { http = HTTP, server = SERVER,
      env = { SANDBOX_URL = sb.url, SANDBOX_KEY = sb.key } }
  end)

  teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)

  local function get(path, timeout)
    local status, body = srv:get(path, timeout)
    assert.are.equal(200, status, body)
    return (body:gsub("\n$", ""))
  end

  it("creates, configures and launches a campaign from a content handler", function()
    local out = cjson.decode(get("/flow"))
    assert.is_nil(out.error)
    assert.is_true(out.ok)
    assert.are.equal("ACTIVE", out.status)
    assert.is_true(out.ready)
    assert.are.equal("content", out.phase)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", out.id)
    -- the default limiter counted in the shared dict, not per worker
    assert.is_true(out.dict_keys >= 1)
    -- the sandbox saw the key on every request, and the launch
    local launched = false
    for _, entry in ipairs(sb:log()) do
      if entry.method == "PUT" and entry.path:find(out.id, 1, true) then launched = true end
    end
    assert.is_true(launched)
  end)

  it("uploads a CSV in chunks from a content handler", function()
    local out = cjson.decode(get("/upload"))
    assert.is_nil(out.error)
    assert.is_true(out.ok)
    assert.matches("COMPLETED", out.job)
    assert.are.equal(25, out.leads)
    assert.are.equal(3, sb:count("POST", "/leads$"))
  end)

  it("keeps the worker serving while 20 launches wait on a slow API", function()
    local ids = {}
    for i = 1, 20 do
      ids[i] = get("/prepare?i=" .. i)
      assert.matches("^%x+%-", ids[i])
    end
    -- from now on every answer of the sandbox takes 2 s
    sb:fault { kind = "delay", delay_ms = 2000, times = 0 }
    local pending = {}
    for i = 1, 20 do pending[i] = srv:start_get(("/launch?i=%d&id=%s"):format(i, ids[i])) end
    -- all 20 handlers are waiting on their transfer in the thread pool
    assert.are.equal(20, srv:wait_count("launch_start:", 20))
    for i = 1, 50 do assert.are.equal("pong", get("/ping?i=" .. i)) end
    for i = 1, 20 do
      local status, body = pending[i].finish()
      assert.are.equal(200, status, body)
      local out = cjson.decode(body)
      assert.is_nil(out.error)
      assert.are.equal("ACTIVE", out.status)
    end
    -- ordering, not timing: every ping answered before the first launch returned
    local last_ping, first_launch = srv:order("ping:", 50, "launch_done:", 20)
    assert.is_true(last_ping < first_launch,
      ("last ping #%d, first launch returned #%d"):format(last_ping, first_launch))
  end)

  it("raises the phase error from init_worker, set and log phases", function()
    sb:reset()
    get("/phases")
    for _, phase in ipairs { "init_worker", "set", "log" } do
      local msg = srv:key("err:" .. phase, 1)
      assert.matches("'" .. phase .. "' phase", msg, 1, true)
      assert.matches("ngx.timer.at(0, function(premature)", msg, 1, true)
    end
    -- nothing reached the API from there
    assert.are.equal(0, #sb:log())
  end)
end)
