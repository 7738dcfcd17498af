-- haproxy_spec.lua: examples/haproxy/ in a real HAProxy (Debian's, with Lua
-- 5.3 inside, loading build/5.3) on free loopback ports, against a sandbox:
-- the launch service, the status action, the error path without the key,
-- the body-of-lua-load refusal, calls in a fetch and a converter, TLS, bodies cut short by a hostile server
-- (spec/helpers/rawhttpd.lua), Lua timeouts that waits do not count
-- against, one rate-limit budget for two
-- threads, and responsiveness proven by order: with
-- one thread, a ping answers while four slow API calls are in flight, and
-- does not over the blocking libcurl transport.
local socket = require "socket"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"
local tlsd = require "spec.helpers.tlsd"
local json = require "cjson"

local ROOT = sandbox.root
local q = util.q

local free_port = require("spec.nginx.helper").free_port

local function env_line(vars)
  local parts = { "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_3 -u LUA_CPATH_5_3" }
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. q(v) end
  return table.concat(parts, " ")
end

local function base_env(sb)
  return {
    COLDSEND_LUA_DIR = ROOT .. "/lua",
    COLDSEND_LUA_CDIR = (os.getenv("BUILD") or (ROOT .. "/build")) .. "/5.3",
    COLDSEND_EXAMPLE_DIR = ROOT .. "/examples/haproxy",
    COLDSEND_FIXTURE_DIR = ROOT .. "/spec/fixtures/haproxy",
    COLDSEND_API_KEY = sb and sb.key or "cs_test_sandbox",
    COLDSEND_BASE_URL = sb and sb.url or "http://127.0.0.1:9/api/public/v1",
  }
end

-- starts haproxy -db with the config files; returns {pid=, log=, port=, blocking_port=}
local function start_haproxy(sb, files, more)
  local vars = base_env(sb)
  for k, v in pairs(more or {}) do vars[k] = v end
  local h = { port = free_port(), blocking_port = free_port(), log = os.tmpname() }
  vars.COLDSEND_HAPROXY_PORT = tostring(h.port)
  vars.COLDSEND_BLOCKING_PORT = tostring(h.blocking_port)
  local args = {}
  for _, f in ipairs(files) do args[#args + 1] = "-f " .. q(ROOT .. "/" .. f) end
  local p = assert(io.popen(string.format("cd %s && %s haproxy -db %s </dev/null >%s 2>&1 & echo $!",
    q(ROOT), env_line(vars), table.concat(args, " "), q(h.log))))
  h.pid = tonumber(p:read("*l"))
  p:close()
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", h.port)
    c:close()
    if ok then return h end
    socket.sleep(0.05)
  end
  os.execute("kill " .. h.pid .. " 2>/dev/null")
  error("haproxy did not start: " .. util.slurp(h.log, ""))
end

local function stop_haproxy(h)
  os.execute("kill " .. h.pid .. " 2>/dev/null")
  os.execute(string.format("for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 %d 2>/dev/null || break; sleep 0.1; done", h.pid))
  local log = util.slurp(h.log, "")
  os.remove(h.log)
  return log
end

local function get(port, path, method)
  return sandbox.http { url = ("http://127.0.0.1:%d%s"):format(port, path), method = method or "GET", timeout = 30 }
end

-- Sends the four slow requests, waits until the sandbox has `in_flight` of
-- them, then sends the ping; returns the names in the order their answers
-- completed, and how many the sandbox had when the ping went.
local function completion_order(sb, port, in_flight)
  local n_before = sb:count("GET", "^/campaigns")
  local socks, names = {}, {}
  local function send(name, path)
    local c = socket.tcp()
    c:settimeout(10)
    assert(c:connect("127.0.0.1", port))
    assert(c:send(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"):format(path)))
    c:settimeout(0)
    socks[#socks + 1] = c
    names[c] = name
  end
  for i = 1, 4 do send("call" .. i, "/campaigns") end
  -- in flight: the sandbox has them (a blocking HAProxy lets only one
  -- through at a time, so there wait for the first)
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline and sb:count("GET", "^/campaigns") < n_before + in_flight do
    socket.sleep(0.05)
  end
  local seen = sb:count("GET", "^/campaigns") - n_before
  send("ping", "/ping")
  local order, open = {}, {}
  for _, c in ipairs(socks) do open[#open + 1] = c end
  deadline = socket.gettime() + 30
  while #open > 0 and socket.gettime() < deadline do
    local readable = socket.select(open, nil, 1)
    for _, c in ipairs(readable) do
      -- "*a" returns the data once the peer closed: that answer is complete
      local data, err = c:receive("*a")
      if data or err == "closed" then
        order[#order + 1] = names[c]
        c:close()
        for i, o in ipairs(open) do if o == c then table.remove(open, i) break end end
      else
        assert(err == "timeout", err)
      end
    end
  end
  for _, c in ipairs(open) do c:close() end
  return order, seen
end

describe("HAProxy #once", function()
  local sb, h

  setup(function()
    sb = sandbox.start { rate_limit = false }
    h = start_haproxy(sb, { "examples/haproxy/haproxy.cfg", "spec/fixtures/haproxy/test.cfg" })
  end)

  teardown(function()
    if h then stop_haproxy(h) end
    if sb then sb:stop() end
  end)

  it("creates, updates and launches a campaign from a service, through HAProxy's HTTP client", function()
    local status, body = get(h.port, "/campaigns/launch?name=Launched%20from%20HAProxy", "POST")
    assert.equal(200, status, body)
    local got = json.decode(body)
    assert.equal("Launched from HAProxy", got.name)
    assert.equal("ACTIVE", got.status)
    assert.equal(30, got.daily_limit_per_inbox)
    -- the server agrees, and saw a create, an update and the launch
    local st, data = sb:request("GET", "/campaigns/" .. got.id)
    assert.equal(200, st)
    assert.equal("ACTIVE", data.status)
    assert.equal(30, data.daily_limit_per_inbox)
    assert.is_true(sb:count("POST", "^/campaigns$") >= 1)
    assert.is_true(sb:count("PUT", "^/campaigns/" .. got.id:gsub("%-", "%%-") .. "$") >= 2)
    -- the action reads it back into a variable haproxy.cfg answers with
    status, body = get(h.port, "/status/" .. got.id)
    assert.equal(200, status)
    assert.same({ id = got.id, status = "ACTIVE" }, json.decode(body))
    status, body = get(h.port, "/ping")
    assert.equal(200, status)
    assert.equal("pong\n", body)
  end)

  it("answers an API error with its code, and the key shows in no answer and no log line", function()
    local status, body = get(h.port, "/status/00000000-0000-4000-8000-000000000000")
    assert.equal(200, status)
    assert.equal("not_found", json.decode(body).error)
    status, body = get(h.port, "/campaigns/launch?name=" .. ("x"):rep(300), "POST")
    assert.equal(422, status, body)
    assert.equal("invalid", json.decode(body).error)
    assert.matches("name", json.decode(body).message)
    -- ?rename= is not ?name=
    status, body = get(h.port, "/campaigns/launch?rename=Renamed%20campaign", "POST")
    assert.equal(400, status, body)
    assert.equal("want ?name=<campaign name>", json.decode(body).error)
    local log = util.slurp(h.log, "")
    assert.matches("coldsend: ", log, 1, true)
    assert.is_nil(log:find(sb.key, 1, true))
    assert.is_nil(body:find(sb.key, 1, true))
  end)

  it("turns HAProxy's own failures into the contract's: refused is not sent, a body over the cap", function()
    local status, body = get(h.blocking_port, "/probe/refused")
    assert.equal(200, status, body)
    local got = json.decode(body)
    assert.same({ res = false, code = "network", sent = false, message = "could not connect to the server" }, got)
    status, body = get(h.blocking_port, "/probe/cap")
    assert.equal(200, status, body)
    got = json.decode(body)
    assert.equal("protocol", got.code)
    assert.is_true(got.too_large)
    assert.matches("over the 10%-byte cap", got.message)
  end)

  it("verifies TLS with httpclient.ssl.ca-file: the system's CAs refuse a self-signed server, "
    .. "its own CA takes it", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    -- HAProxy 2.6 matches the URL's host against DNS names only (and does
    -- not read /etc/hosts): the address is the certificate's name
    local srv = tlsd.start(dir, "self", "/CN=127.0.0.1", "DNS:127.0.0.1,IP:127.0.0.1")
    local other = tlsd.start(dir, "other", "/CN=other.test", "DNS:other.test")
    local trusting, wrong_name
    finally(function()
      if trusting then stop_haproxy(trusting) end
      if wrong_name then stop_haproxy(wrong_name) end
      srv:stop()
      other:stop()
      os.execute("rm -rf " .. q(dir))
    end)
    local files = { "examples/haproxy/haproxy.cfg", "spec/fixtures/haproxy/test.cfg", "spec/fixtures/haproxy/tls.cfg" }
    local status, body = get(h.blocking_port, "/probe/tls?port=" .. srv.port)
    local got = json.decode(body)
    assert.equal(200, status, body)
    assert.is_nil(got.status, body)
    assert.equal("network", got.code)
    assert.equal("could not connect to the server or verify its certificate (HAProxy's httpclient.ssl.ca-file)",
      got.message)
    assert.is_false(got.sent)
    trusting = start_haproxy(sb, files, { COLDSEND_TEST_CA = srv.cert })
    status, body = get(trusting.blocking_port, "/probe/tls?port=" .. srv.port)
    assert.equal(200, status, body)
    got = json.decode(body)
    assert.equal(200, got.status, body)
    -- a certificate the CA file trusts, for another name
    wrong_name = start_haproxy(sb, files, { COLDSEND_TEST_CA = other.cert })
    status, body = get(wrong_name.blocking_port, "/probe/tls?port=" .. other.port)
    assert.equal(200, status, body)
    got = json.decode(body)
    assert.is_nil(got.status, body)
  end)

  it("uploads a CSV of leads through HAProxy's client (multipart) and waits for the job with core.msleep", function()
    local st, made = sb:request("POST", "/campaigns", { name = "Uploaded through HAProxy" })
    assert.equal(201, st)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    util.write(dir .. "/leads.csv", "Email,Name\nada@example.org,Ada\ngrace@example.org,Grace\n")
    local status, body = get(h.blocking_port, ("/probe/upload?campaign=%s&file=%s"):format(made.campaign_id or made.id,
      dir .. "/leads.csv"))
    assert.equal(200, status, body)
    local got = json.decode(body)
    assert.equal("COMPLETED", got.status, body)
    local _, leads = sb:request("GET", "/campaigns/" .. (made.campaign_id or made.id) .. "/leads")
    local emails = {}
    for _, l in ipairs(leads.leads or leads.data or {}) do emails[#emails + 1] = l.email end
    table.sort(emails)
    assert.same({ "ada@example.org", "grace@example.org" }, emails)
  end)

  it("never takes a body cut short for an answer, nor a server's empty 503 for one never sent", function()
    local pipe = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 60", "r"))
    local port = assert(pipe:read("*l"):match("^(%d+) "))
    finally(function()
      sandbox.http { url = "http://127.0.0.1:" .. port .. "/__quit" }
      pipe:close()
    end)
    local function probe(method, path)
      local status, body = get(h.blocking_port, ("/probe/raw?port=%s&method=%s&path=%s"):format(port, method,
        path:gsub("[^%w/]", function(ch) return ("%%%02X"):format(ch:byte()) end)))
      assert.equal(200, status, body)
      return json.decode(body)
    end
    for _, method in ipairs { "GET", "POST" } do
      -- 100 of 1000 bytes, then a reset
      local got = probe(method, "/reset-mid")
      assert.is_nil(got.status, got.body)
      assert.same({ code = "network", sent = true,
        message = "the answer ended after 100 of its 1000 bytes (the connection closed)" }, got)
      -- 9 of 20 bytes, then nothing past the 2 s timeout
      got = probe(method, "/stall?ms=4000")
      assert.is_nil(got.status, got.body)
      assert.same({ code = "timeout", sent = true,
        message = "the answer ended after 9 of its 20 bytes (the server did not send the rest in time)" }, got)
      -- a bare 503 from the server (which may have acted) looks like
      -- HAProxy's answer to a name it cannot resolve: possibly sent
      assert.same({ code = "network", sent = true, message = "an empty 503: the server's, or HAProxy could "
        .. "not resolve the host name (its resolvers read /etc/resolv.conf, not /etc/hosts)" },
        probe(method, "/bare?code=503"))
      -- whole answers still pass, sized or chunked
      assert.same({ status = 200, body = '{"ok":true}' }, probe(method, "/json"))
      assert.equal('{"chunks": ["a", "b", "c"]}', probe(method, "/chunked").body)
    end
  end)

  it("does not count waiting on the API against tune.lua.service-timeout or session-timeout", function()
    local short = start_haproxy(sb, { "examples/haproxy/haproxy.cfg", "spec/fixtures/haproxy/test.cfg",
      "spec/fixtures/haproxy/short_timeouts.cfg" })
    -- one finally per test (busted keeps the last one given)
    finally(function()
      sb:config { latency_ms = 0 }
      stop_haproxy(short)
    end)
    local st, made = sb:request("POST", "/campaigns", { name = "Waited on through HAProxy" })
    assert.equal(201, st)
    sb:config { latency_ms = 1500 }
    -- the service and the action each wait 1.5 s on the API under 1 s limits
    local status, body = get(short.port, "/campaigns")
    assert.equal(200, status, body)
    assert.is_true(json.decode(body).count >= 1)
    status, body = get(short.port, "/status/" .. (made.campaign_id or made.id))
    assert.equal(200, status, body)
    assert.equal("DRAFT", json.decode(body).status, body)
  end)

  it("with one thread, answers a ping while four slow API calls are in flight", function()
    sb:config { latency_ms = 1500 }
    finally(function() sb:config { latency_ms = 0 } end)
    local order, seen = completion_order(sb, h.port, 4)
    assert.equal(4, seen) -- all four were waiting on the sandbox together
    assert.equal(5, #order)
    assert.equal("ping", order[1], table.concat(order, " "))
  end)

  it("the same with the blocking libcurl transport keeps the ping waiting (what the test above catches)", function()
    sb:config { latency_ms = 1500 }
    finally(function() sb:config { latency_ms = 0 } end)
    local order = completion_order(sb, h.blocking_port, 1)
    assert.equal(5, #order)
    assert.are_not.equal("ping", order[1], table.concat(order, " "))
  end)
end)

describe("HAProxy with two threads #once", function()
  -- `n` requests at once to HAProxy with `cfg`, spread over its threads:
  -- how many calls succeeded and were rate_limited, the threads that ran
  -- them, and how many the sandbox saw
  local function burst(cfg, n)
    local sb = sandbox.start { rate_limit = false, latency_ms = 300 }
    local h2 = start_haproxy(sb, { cfg })
    finally(function()
      stop_haproxy(h2)
      sb:stop()
    end)
    local socks = {}
    for i = 1, n do
      local c = socket.tcp()
      c:settimeout(30)
      assert(c:connect("127.0.0.1", h2.port))
      assert(c:send("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
      socks[i] = c
    end
    local ok, limited, threads = 0, 0, {}
    for _, c in ipairs(socks) do
      local answer = assert(c:receive("*a"))
      c:close()
      local got = json.decode(answer:match("\r\n\r\n(.*)$"))
      threads[got.thread] = true
      if got.ok then ok = ok + 1 elseif got.code == "rate_limited" then limited = limited + 1 end
    end
    return ok, limited, threads, sb:count("GET", "^/campaigns$")
  end

  it("draws every thread's calls from one rate-limit budget (lua-load: one Lua state)", function()
    local ok, limited, threads, seen = burst("spec/fixtures/haproxy/ratelimit.cfg", 8)
    assert.equal(3, ok)
    assert.equal(5, limited)
    assert.equal(3, seen)
    local n = 0
    for _ in pairs(threads) do n = n + 1 end
    assert.is_true(n > 1, "all eight requests ran on one thread")
  end)

  it("holds the budget when HAProxy preempts a call in the middle of a reservation", function()
    local ok, limited, _, seen = burst("spec/fixtures/haproxy/ratelimit_preempt.cfg", 24)
    assert.equal(3, seen)
    assert.equal(3, ok)
    assert.equal(21, limited)
  end)
end)

describe("HAProxy, the body of a lua-load'ed file #once", function()
  it("refuses an API call there with the way out, rather than blocking", function()
    local rc, out, err = util.run(string.format("cd %s && %s haproxy -c -f %s", q(ROOT), env_line(base_env()),
      q(ROOT .. "/spec/fixtures/haproxy/body_call.cfg")))
    out = out .. err
    assert.are_not.equal(0, rc, out)
    assert.matches("HAProxy's HTTP client works only in a Lua action, service or task", out, 1, true)
    assert.matches("core.register_task", out, 1, true)
  end)
end)

describe("HAProxy, a sample fetch or a converter #once", function()
  it("is stopped by HAProxy at the call's first wait: an empty sample, an alert, no request", function()
    local sb = sandbox.start { rate_limit = false }
    local h = start_haproxy(sb, { "spec/fixtures/haproxy/fetch.cfg" })
    local log
    finally(function()
      log = log or stop_haproxy(h)
      sb:stop()
    end)
    for _, path in ipairs { "/fetch", "/conv" } do
      local status, body = get(h.port, path)
      assert.equal(200, status)
      assert.equal("[]", body) -- the Lua function did not return
    end
    assert.equal(0, sb:count("GET", "^/campaigns"))
    log = stop_haproxy(h)
    assert.matches("Lua sample-fetch 'coldsend_fetch': yield not allowed", log, 1, true)
    assert.matches("Lua converter 'coldsend_conv': yield functions like core.tcp() or core.sleep() are not "
      .. "allowed", log, 1, true)
  end)
end)

describe("doc/haproxy.md #once", function()
  it("shows examples/haproxy/haproxy.cfg as it is, and the refusal as haproxy prints it", function()
    local doc = util.slurp(ROOT .. "/doc/haproxy.md")
    local cfg = util.slurp(ROOT .. "/examples/haproxy/haproxy.cfg")
    local indented = ("\n" .. cfg):gsub("\n([^\n])", "\n    %1"):sub(2)
    assert.truthy(doc:find("\n" .. indented, 1, true), "doc/haproxy.md lacks the example haproxy.cfg, verbatim")
    local shown = doc:match("\n    (coldsend: the ColdSend API cannot be called here:[^\n]+)")
    assert.truthy(shown)
    local _, out, err = util.run(string.format("cd %s && %s haproxy -c -f %s", q(ROOT), env_line(base_env()),
      q(ROOT .. "/spec/fixtures/haproxy/body_call.cfg")))
    assert.matches(shown, out .. err, 1, true)
  end)
end)
