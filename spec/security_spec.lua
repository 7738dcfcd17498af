-- security_spec: the key never shows, bad input is refused before it is sent, http:// only to loopback, TLS verified.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local sandbox = require "spec.helpers.sandbox"
local cases = require "spec.helpers.fault_cases"
local tlsd = require "spec.helpers.tlsd"
local util = require "spec.helpers.util"

local UUID = "550e8400-e29b-41d4-a716-446655440000"

local sh_quote = util.q

-- A key nobody could mistake: its token, and pieces of it, are searched
-- for in everything the fault suite produces.
local TOKEN = ("K3yS3cr3t%08x%08x"):format(math.random(0, 0x7fffffff), os.time() % 0x7fffffff)
local KEY = "cs_live_" .. TOKEN

-- Every string reachable from v: strings, table keys and values (and
-- their metatables' __tostring), campaign handles through tostring and
-- pairs. Calls found(s, where) for each.
local function each_string(v, found, where, seen)
  seen = seen or {}
  local t = type(v)
  if t == "string" then
    found(v, where)
  elseif t == "number" or t == "boolean" or t == "nil" or t == "function" or t == "thread" then
    return
  elseif seen[v] then
    return
  else
    seen[v] = true
    local ok, s = pcall(tostring, v)
    if ok then found(s, where .. " (tostring)") end
    if t == "table" then
      for k, x in next, v do
        each_string(k, found, where .. " key", seen)
        each_string(x, found, where .. "." .. tostring(k), seen)
      end
    elseif t == "userdata" then
      local okp, iter, state, init = pcall(pairs, v)
      if okp then
        pcall(function()
          for k, x in iter, state, init do
            each_string(k, found, where .. " key", seen)
            each_string(x, found, where .. "." .. tostring(k), seen)
          end
        end)
      end
    end
  end
end

-- Fails when s holds the key, its token, or a long piece of the token.
local function no_key(s, where)
  local pieces = { KEY, TOKEN, TOKEN:sub(1, 12), TOKEN:sub(-12) }
  for _, p in ipairs(pieces) do
    if s:find(p, 1, true) then
      error(("the API key shows in %s: %q"):format(where, s:sub(1, 300)), 0)
    end
  end
end

-- Captures what print, io.write and file:write on stdout/stderr print,
-- passing it through.
local function capture_output(sink)
  local old_print, old_write = print, io.write
  local mt = getmetatable(io.stdout)
  local old_fwrite = mt.__index.write
  print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    sink(table.concat(parts, "\t"))
    return old_print(...)
  end
  io.write = function(...)
    for i = 1, select("#", ...) do sink(tostring((select(i, ...)))) end
    return old_write(...)
  end
  mt.__index.write = function(f, ...)
    if f == io.stdout or f == io.stderr then
      for i = 1, select("#", ...) do sink(tostring((select(i, ...)))) end
    end
    return old_fwrite(f, ...)
  end
  return function()
    print, io.write, mt.__index.write = old_print, old_write, old_fwrite
  end
end

describe("security", function()
  local sb

  local hooks = sandbox.hooks({ rate_limit = false }, function(s) sb = s end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  describe("the API key", function()
    it("shows in no error, tostring, hook event or output of the whole fault suite", function()
      local events, output = {}, {}
      local env = cases.env(sb, {
        api_key = KEY,
        on_event = function(kind, payload) events[#events + 1] = { kind = kind, payload = payload } end,
      })
      local restore = capture_output(function(s) output[#output + 1] = s end)
      local ok, failure = pcall(function()
        for _, case in ipairs(cases) do
          sb:reset()
          local ran, err = pcall(case.run, env)
          -- a failed case is the fault spec's business; its message is ours
          if not ran then events[#events + 1] = { kind = "case failure", payload = err } end
          local cs = env.client()
          events[#events + 1] = { kind = "client", payload = tostring(cs) }
          events[#events + 1] = { kind = "client table", payload = cs }
        end
      end)
      restore()
      assert(ok, failure)
      -- what the hooks saw is there to be searched
      local kinds = {}
      for _, e in ipairs(events) do kinds[e.kind] = true end
      assert.is_true(kinds.on_request and kinds.on_response and kinds.on_retry and kinds.error
        and kinds.result and true or false)
      for i, e in ipairs(events) do
        each_string(e.payload, no_key, ("%s #%d"):format(e.kind, i))
      end
      for i, s in ipairs(output) do no_key(s, "output #" .. i) end
      -- the requests did carry it: the sandbox saw a key on each
      for _, entry in ipairs(sb:log()) do assert.is_true(entry.key_present) end
    end)

    it("is redacted in the headers the on_request hook sees", function()
      local seen
      local cs = coldsend.client { api_key = KEY, base_url = sb.url, rate_limit = false,
        on_request = function(e) seen = e end }
      assert(cs:list_campaigns())
      local shown
      for k, v in pairs(seen.headers) do
        if k:lower() == "x-api-key" then shown = v end
      end
      assert.is_string(shown)
      no_key(shown, "on_request headers")
    end)

    it("is not shown by the errors about a bad key", function()
      local bad = { KEY .. "\r\nX-Evil: 1", KEY .. " ", "xx_" .. TOKEN, TOKEN }
      for _, k in ipairs(bad) do
        local ok, msg = pcall(coldsend.client, { api_key = k, base_url = sb.url })
        assert.is_false(ok)
        no_key(tostring(msg), "the error for a bad key")
      end
    end)

    it("is not shown by tostring of the client or its limiter", function()
      local cs = coldsend.client { api_key = KEY, base_url = sb.url }
      each_string(cs, no_key, "client")
      no_key(tostring(cs), "tostring(client)")
    end)
  end)

  describe("refused before anything is sent", function()
    local function nothing_sent()
      assert.same({}, sb:log())
    end

    it("CR or LF in the API key: refused when the client is made", function()
      for _, k in ipairs { KEY .. "\r\nX-Evil: 1", KEY .. "\n", "cs_live_a\rb_padding_x" } do
        local ok, msg = pcall(coldsend.client, { api_key = k, base_url = sb.url })
        assert.is_false(ok)
        assert.truthy(tostring(msg):find("control characters", 1, true), msg)
      end
      nothing_sent()
    end)

    it("CR or LF in a header value or name: refused by the transport (it raises)", function()
      local http = core.http()
      local bad = {
        { ["X-Test"] = "a\r\nX-Evil: 1" }, { ["X-Test"] = "a\nb" }, { ["X-Test"] = "a\rb" },
        { ["X-Test"] = "a\0b" }, { ["X-Te\r\nst"] = "v" }, { ["X Test"] = "v" }, { ["X:Test"] = "v" },
      }
      for _, headers in ipairs(bad) do
        headers["X-API-Key"] = KEY
        local ok, msg = pcall(http, { method = "GET", url = sb.url .. "/campaigns", headers = headers })
        assert.is_false(ok)
        assert.truthy(tostring(msg):find("bad header", 1, true), msg)
        no_key(tostring(msg), "the transport's error")
      end
      nothing_sent()
    end)

    it("CR, LF or spaces in a request path: refused", function()
      local cs = coldsend.client { api_key = KEY, base_url = sb.url, rate_limit = false }
      for _, p in ipairs { "/campaigns\r\nX-Evil: 1", "/campaigns\n", "/campaigns HTTP/1.1",
          "/a/../../etc", "/campaigns/..", "http://evil.example/x", "campaigns" } do
        assert.is_false((pcall(cs.request, cs, "GET", p)))
      end
      nothing_sent()
    end)

    it("a query value with CR LF is percent-encoded, not injected", function()
      local cs = coldsend.client { api_key = KEY, base_url = sb.url, rate_limit = false }
      assert(cs:list_campaigns { search = "a\r\nX-Evil: 1" })
      local log = sb:log()
      assert.equal(1, #log)
      assert.equal("a\r\nX-Evil: 1", log[1].query.search)
    end)

    it("ids that are not UUIDs: refused by every call that takes one", function()
      local cs = coldsend.client { api_key = KEY, base_url = sb.url, rate_limit = false }
      local bad = { "../../campaigns", "550e8400-e29b-41d4-a716-44665544000", UUID .. "/pause",
        UUID .. "\r\n", "550e8400e29b41d4a716446655440000", "", 42, {}, true }
      for _, id in ipairs(bad) do
        assert.is_false((pcall(cs.get_campaign, cs, id)))
        assert.is_false((pcall(cs.campaign, cs, id)))
        assert.is_false((pcall(cs.get_lead, cs, id, UUID)))
        assert.is_false((pcall(cs.get_lead, cs, UUID, id)))
        assert.is_false((pcall(cs.update_lead, cs, UUID, id, { first_name = "A" })))
        assert.is_false((pcall(core.campaign, id)))
      end
      nothing_sent()
    end)
  end)

  describe("http://", function()
    it("to a host that is not loopback: refused when the client is made", function()
      local calls = 0
      local spy = function() calls = calls + 1 end
      for _, url in ipairs { "http://api.coldsend.pro/api/public/v1", "HTTP://EXAMPLE.COM/x",
          "http://127.0.0.1.evil.example/x", "http://localhost.evil.example/x",
          "http://10.0.0.1/x", "http://[::2]/x", "http://user:pw@127.0.0.1/x", "ftp://127.0.0.1/x",
          "http://0x7f000001/x" } do
        local ok, msg = pcall(coldsend.client, { api_key = KEY, base_url = url, transport = spy })
        assert.is_false(ok, url)
        assert.is_string(msg)
      end
      assert.equal(0, calls)
    end)

    it("to loopback: allowed", function()
      for _, url in ipairs { "http://127.0.0.1:1/x", "http://localhost:1/x", "http://[::1]:1/x" } do
        assert.is_truthy(coldsend.client { api_key = KEY, base_url = url })
      end
    end)
  end)

  describe("TLS against a self-signed loopback server", function()
    local dir, srv, port

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. sh_quote(dir)))
      srv = tlsd.start(dir, "cert", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
      port = srv.port
    end)

    teardown(function()
      if srv then srv:stop() end
      if dir then os.execute("rm -rf " .. sh_quote(dir)) end
    end)

    local function client(extra)
      local o = { api_key = KEY, base_url = ("https://127.0.0.1:%d/api/public/v1"):format(port),
        -- generous: under valgrind (make check) the handshake's crypto is slow
        rate_limit = false, max_retries = 0, timeout = 60, connect_timeout = 60 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return coldsend.client(o)
    end

    it("fails with code tls when the certificate is not trusted", function()
      local res, err = client():get_campaign(UUID)
      assert.is_nil(res)
      assert.equal("tls", err.code)
      assert.is_nil(err.status)
      no_key(tostring(err), "the TLS error")
    end)

    it("fails with code tls for localhost too, and is not retried", function()
      local cs = client { base_url = ("https://localhost:%d/api/public/v1"):format(port), max_retries = 3 }
      local res, err = cs:get_campaign(UUID)
      assert.is_nil(res)
      assert.equal("tls", err.code)
      assert.equal(1, err.attempts)
    end)

    it("gets an HTTP answer when the certificate is given as ca_file", function()
      local res, err = client { ca_file = dir .. "/cert.pem" }:get_campaign(UUID)
      -- s_server answers with an HTML page: TLS worked, the body is not the API's
      assert.is_nil(res)
      assert.equal("protocol", err.code)
      assert.equal(200, err.status)
    end)
  end)
end)
