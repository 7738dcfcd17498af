-- doctor_spec: `coldsend doctor` and coldsend.doctor() against the sandbox,
-- a refused port, self-signed and misnamed TLS servers and a proxy
-- variable: each ✗ names its cause, the key shows nowhere, exit codes,
-- --json, the ASCII marks, and the transcript of doc/cli.md and README.
local cjson = require "cjson"
local socket = require "socket"
local coldsend = require "coldsend"
local core = require "coldsend.core"
local doctor = require "coldsend.doctor"
local sandbox = require "spec.helpers.sandbox"
local tlsd = require "spec.helpers.tlsd"
local util = require "spec.helpers.util"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local ROOT = sandbox.root
local q = util.q

local TOKEN = ("D0ct0rS3cr3t%08x%08x"):format(math.random(0, 0x7fffffff), os.time() % 0x7fffffff)
local KEY = "cs_live_" .. TOKEN

-- Fails when s holds the key or a long piece of it.
local function no_key(s, where)
  for _, p in ipairs { KEY, TOKEN, TOKEN:sub(1, 12), TOKEN:sub(-12, -5) } do
    if s:find(p, 1, true) then
      error(("the API key shows in %s: %q"):format(where, s:sub(1, 400)), 0)
    end
  end
end

-- Variables of the test machine that would change what doctor says: unset
-- for the child (the rest, LD_PRELOAD of the sanitizer runs included, stays).
local CLEARED = { "LC_ALL", "LC_CTYPE", "LANG", "COLDSEND_API_KEY", "COLDSEND_BASE_URL",
  "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
  "no_proxy", "NO_PROXY" }

-- Runs bin/coldsend doctor ARGS with env; returns exit code, stdout, stderr.
local function run(env, args)
  local vars = {}
  for _, k in ipairs(CLEARED) do vars[#vars + 1] = "-u " .. k end
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. q(v) end
  local rc, out, err = util.run(("cd %s && env %s %s bin/coldsend doctor %s </dev/null"):format(
    q(ROOT), table.concat(vars, " "), LUA, args or ""))
  no_key(out, "stdout")
  no_key(err, "stderr")
  return rc, out, err
end

-- The line of a check in the text output (label as printed).
local function line(out, label)
  for l in out:gmatch("[^\n]+") do
    local rest = l:match("^%S+%s+(.*)$")
    if rest and rest:sub(1, #label + 1) == label .. " " then return l end
  end
  return nil
end

-- The advice printed under the line of label.
local function advice(out, label)
  local found = false
  for l in out:gmatch("[^\n]+") do
    if found then return l:match("^%s+%S+%s(.*)$") end
    local rest = l:match("^%S+%s+(.*)$")
    found = rest ~= nil and rest:sub(1, #label + 1) == label .. " "
  end
end

local function check_of(report, name)
  for _, c in ipairs(report.checks) do
    if c.name == name then return c end
  end
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local port = select(2, s:getsockname())
  s:close()
  return port
end

describe("coldsend doctor", function()
  local sb

  setup(function()
    sb = sandbox.start { rate_limit = false }
  end)

  teardown(function()
    sb:stop()
    util.cleanup()
  end)

  before_each(function()
    sb:reset()
  end)

  describe("a healthy setup", function()
    it("passes every check, exit 0, ✓ marks under a UTF-8 locale", function()
      local rc, out, err = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url, LANG = "C.UTF-8" })
      assert.equal(0, rc, out .. err)
      assert.equal("", err)
      for _, label in ipairs { "versions", "key", "base URL", "proxy", "connection", "API",
        "scope campaigns", "scope leads", "scope sender_accounts", "scope analytics",
        "rate limit", "clock" } do
        local l = line(out, label)
        assert.is_truthy(l, label .. " missing in:\n" .. out)
        assert.equal("✓", l:sub(1, #"✓"), l)
      end
      assert.matches("^%- TLS +not used: http:// to a loopback host", line(out, "TLS"))
      assert.matches("all checks passed\n$", out)
      assert.matches("ending in %.%.%." .. KEY:sub(-4), out)
      assert.matches("libcurl " .. core.curl_info().version:gsub("%.", "%%."), out)
      assert.matches("OpenSSL", line(out, "versions"))
      assert.matches("DNS %d+ ms, TCP connect %d+ ms to 127%.0%.0%.1:" .. sb.port, out)
      assert.matches("100 requests per window, 100 left, resets in %d+ s", out)
    end)

    it("sends only GETs, each with the key", function()
      local rc = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url })
      assert.equal(0, rc)
      local log = sb:log()
      assert.equal(4, #log)
      for _, e in ipairs(log) do
        assert.equal("GET", e.method)
        assert.is_true(e.key_present)
        assert.equal(200, e.status == 404 and 200 or e.status, e.path)
      end
    end)

    it("uses the first campaign's id for the leads read", function()
      local _, c = sb:request("POST", "/campaigns", { name = "Doctor spec" })
      local rc = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url })
      assert.equal(0, rc)
      assert.equal(1, sb:count("GET", "^/campaigns/" .. c.campaign_id:gsub("%-", "%%-") .. "/leads$"))
    end)

    it("prints ok/FAIL in ASCII when the locale is not UTF-8 (LC_ALL over LANG)", function()
      local rc, out = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url, LANG = "en_US.UTF-8",
        LC_ALL = "C" })
      assert.equal(0, rc)
      assert.matches("^ok   versions ", out)
      assert.is_nil(out:find("✓", 1, true))
      assert.matches("\nskip TLS ", out)
    end)

    it("decides the locale from LC_ALL, then LC_CTYPE, then LANG", function()
      local function env(t) return function(k) return t[k] end end
      assert.is_true(doctor.utf8_locale(env { LANG = "de_DE.UTF-8" }))
      assert.is_true(doctor.utf8_locale(env { LC_CTYPE = "en_US.utf8", LANG = "C" }))
      assert.is_false(doctor.utf8_locale(env { LC_ALL = "POSIX", LC_CTYPE = "en_US.UTF-8" }))
      assert.is_false(doctor.utf8_locale(env { LC_ALL = "", LANG = "C" }))
      assert.is_true(doctor.utf8_locale(env { LC_ALL = "", LC_CTYPE = "", LANG = "C.UTF-8" }))
      assert.is_false(doctor.utf8_locale(env {}))
    end)

    it("--json gives every check with status, time and advice, keys sorted", function()
      local rc, out = run({ COLDSEND_API_KEY = KEY }, "--json --base-url " .. q(sb.url))
      assert.equal(0, rc)
      local r = cjson.decode(out)
      assert.is_true(r.ok)
      assert.equal(13, #r.checks)
      local names = {}
      for i, c in ipairs(r.checks) do
        names[i] = c.name
        assert.is_string(c.summary)
        assert.is_truthy(({ ok = 1, skip = 1 })[c.status], c.name)
        assert.equal(cjson.null, c.advice)
      end
      assert.same({ "versions", "key", "base_url", "proxy", "connection", "tls", "api",
        "scope campaigns", "scope leads", "scope sender_accounts", "scope analytics",
        "rate_limit", "clock" }, names)
      assert.is_number(r.checks[5].time)
      assert.equal(KEY:sub(-4), r.checks[2].details.last4)
      -- every object's keys in sorted order, so the output is stable
      assert.matches('^{"checks":%[{"advice":null,"details":{"cjson":', out)
      local _, n = out:gsub('"advice":[^,]*,"details":', "")
      assert.equal(#r.checks, n)
      assert.matches('%],"ok":true}\n$', out)
    end)
  end)

  describe("each failure names its cause", function()
    it("a revoked key: 401, the key is revoked or wrong", function()
      sb:keys { ["cs_live_someone_else_entirely"] = { scopes = { "*" } } }
      local rc, out = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url })
      assert.equal(1, rc)
      assert.matches("^FAIL API +GET /campaigns%?limit=1 %-> 401: the key is revoked or wrong "
        .. "%(Invalid or revoked API key%)", line(out, "API"))
      assert.matches("create a new key", advice(out, "API"))
      assert.matches("^skip scope leads +not run", line(out, "scope leads"))
      assert.matches("1 check failed\n$", out)
    end)

    it("a key missing scopes: which scope each read requires and what the key has", function()
      sb:keys { [KEY] = { scopes = { "campaigns:read" } } }
      local rc, out = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url })
      assert.equal(1, rc)
      assert.matches("^ok", line(out, "scope campaigns"))
      assert.matches("^ok", line(out, "scope analytics"))
      assert.matches("^FAIL scope leads +GET /campaigns/{id}/leads%?limit=1 %-> 403: the key lacks "
        .. "leads:read; it has campaigns:read", line(out, "scope leads"))
      assert.matches("lacks sender_accounts:read; it has campaigns:read", line(out, "scope sender_accounts"))
      assert.matches("create a key with the scope leads:read", advice(out, "scope leads"))
      assert.matches("2 checks failed\n$", out)
    end)

    it("a key without campaigns:read: the API check passes, the scope fails", function()
      sb:keys { [KEY] = { scopes = { "leads:read" } } }
      local r = coldsend.doctor { api_key = KEY, base_url = sb.url }
      assert.is_false(r.ok)
      assert.equal("ok", check_of(r, "api").status)
      assert.equal("fail", check_of(r, "scope campaigns").status)
      assert.equal("fail", check_of(r, "scope analytics").status)
      assert.equal("ok", check_of(r, "scope leads").status)
      assert.same({ "campaigns:read" }, check_of(r, "scope campaigns").details.required)
      assert.same({ "leads:read" }, check_of(r, "scope campaigns").details.granted)
    end)

    it("a refused port: TCP, nothing accepts connections there", function()
      local port = free_port()
      local rc, out = run({ COLDSEND_API_KEY = KEY,
        COLDSEND_BASE_URL = ("http://127.0.0.1:%d/api/public/v1"):format(port) })
      assert.equal(1, rc)
      assert.matches("^FAIL connection +TCP: nothing accepts connections at 127%.0%.0%.1:" .. port,
        line(out, "connection"))
      assert.matches("start the server", advice(out, "connection"))
      assert.matches("^skip API +not run: no connection", line(out, "API"))
    end)

    it("a wrong path: 404, the base URL must end in /api/public/v1", function()
      local rc, out = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.base .. "/v1" })
      assert.equal(1, rc)
      assert.matches("^WARN base URL .* path /v1", line(out, "base URL"))
      assert.matches("^FAIL API +GET /campaigns%?limit=1 %-> 404: the path is wrong %(/v1 is not the API%)",
        line(out, "API"))
      assert.equal("the base URL must end in /api/public/v1, e.g. " .. sb.url, advice(out, "API"))
    end)

    it("no key: the key check fails, the connection is still checked", function()
      local rc, out = run({ COLDSEND_BASE_URL = sb.url })
      assert.equal(1, rc)
      assert.matches("^FAIL key +no API key %(COLDSEND_API_KEY is not set%)", line(out, "key"))
      assert.matches("^ok   connection", line(out, "connection"))
      assert.matches("^skip API +not run: no usable key", line(out, "API"))
      -- the connection check sends one GET, without a key
      local log = sb:log()
      assert.equal(1, #log)
      assert.is_false(log[1].key_present)
    end)

    it("a malformed key: says what is wrong, shows nothing of it but its end", function()
      for _, bad in ipairs { "Bearer " .. KEY, KEY .. "\n", "sk_live_" .. TOKEN, "cs_" .. TOKEN .. "!" } do
        local r = coldsend.doctor { api_key = bad, base_url = sb.url }
        local c = check_of(r, "key")
        assert.equal("fail", c.status)
        no_key(tostring(r), "the report")
        no_key(r:json(), "the JSON report")
      end
      local r = coldsend.doctor { api_key = KEY .. " ", base_url = sb.url }
      assert.matches("whitespace", check_of(r, "key").summary)
      r = coldsend.doctor { api_key = "sk_live_" .. TOKEN, base_url = sb.url }
      assert.matches("does not start with cs_", check_of(r, "key").summary)
      for _, e in ipairs(sb:log()) do -- a bad key is never sent
        assert.is_false(e.key_present)
      end
    end)

    it("a base URL the client refuses: names the rule", function()
      for url, why in pairs {
        ["ftp://127.0.0.1/api/public/v1"] = "scheme ftp",
        ["http://api.coldsend.pro/api/public/v1"] = "only allowed for loopback",
        ["https://user:pw@api.coldsend.pro/api/public/v1"] = "credentials",
        ["https://:443/x"] = "no host",
        ["https://h:99999/x"] = "bad port",
        ["not a url"] = "space",
      } do
        local r = coldsend.doctor { api_key = KEY, base_url = url }
        local c = check_of(r, "base_url")
        assert.equal("fail", c.status, url)
        assert.is_truthy(c.summary:find(why, 1, true), c.summary)
        assert.equal("skip", check_of(r, "connection").status)
        assert.is_nil(tostring(r):find("user:pw", 1, true))
      end
    end)
  end)

  describe("hostile or broken answers", function()
    local function api_of(fault)
      sb:fault(fault)
      local r = coldsend.doctor { api_key = KEY, base_url = sb.url }
      no_key(tostring(r) .. r:json(), "the report")
      return check_of(r, "api"), r
    end

    it("a 5xx, an HTML error page, a body that is not JSON, a broken connection", function()
      local c = api_of { kind = "status", status = 503, path = "^/campaigns$" }
      assert.equal("fail", c.status)
      assert.matches("%-> 503: the server failed", c.summary)
      c = api_of { kind = "html", path = "^/campaigns$" }
      assert.matches("%-> 502: the server failed", c.summary)
      c = api_of { kind = "non_json", path = "^/campaigns$" }
      assert.matches("%-> 200: not an answer of the ColdSend API %(no JSON body%)", c.summary)
      c = api_of { kind = "close_before", path = "^/campaigns$" }
      assert.matches("^GET /campaigns%?limit=1 failed: ", c.summary)
      assert.matches("connection broke", c.advice)
      c = api_of { kind = "oversized", path = "^/campaigns$" }
      assert.equal("fail", c.status)
      c = api_of { kind = "status", status = 429, retry_after = 7, path = "^/campaigns$" }
      assert.matches("%-> 429: rate limited", c.summary)
      assert.matches("wait 7 s", c.advice)
    end)

    it("a 403 whose body lacks or garbles required/granted still names the scope", function()
      local _, r = api_of { kind = "status", status = 403, path = "^/sender%-accounts$", body = { detail = "no" } }
      local c = check_of(r, "scope sender_accounts")
      assert.equal("fail", c.status)
      assert.matches("the key lacks sender_accounts:read$", c.summary)
      _, r = api_of { kind = "status", status = 403, path = "^/sender%-accounts$",
        body = { required = "x", granted = { a = 1 } } }
      c = check_of(r, "scope sender_accounts")
      assert.equal("fail", c.status)
      assert.matches("lacks sender_accounts:read", c.summary)
      local j = cjson.decode(r:json())
      for _, x in ipairs(j.checks) do
        if x.name == "scope sender_accounts" then
          assert.same({ "sender_accounts:read" }, x.details.required)
        end
      end
    end)
  end)

  describe("proxies in the environment", function()
    it("https_proxy applies to an https:// target: a refused proxy is named", function()
      local port = free_port()
      -- .invalid never resolves, and with a proxy libcurl does not try:
      -- nothing leaves the loopback interface
      local rc, out = run({ COLDSEND_API_KEY = KEY,
        HTTPS_PROXY = ("http://user:s3cretpw@127.0.0.1:%d"):format(port) },
        "--base-url https://api.coldsend.invalid/api/public/v1")
      assert.equal(1, rc)
      assert.is_nil(out:find("s3cretpw", 1, true))
      assert.matches("^ok   proxy +HTTPS_PROXY applies: http://%*%*%*@127%.0%.0%.1:" .. port
        .. ", a CONNECT tunnel to api%.coldsend%.invalid:443", line(out, "proxy"))
      assert.matches("^FAIL connection +the proxy of HTTPS_PROXY cannot be reached", line(out, "connection"))
      assert.matches("check HTTPS_PROXY, or unset it", advice(out, "connection"))
    end)

    it("a proxy that refuses the CONNECT tunnel: its answer is named", function()
      -- rawhttpd answers CONNECT api.coldsend.invalid:443 with a 404
      local f = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 30", "r"))
      local port = assert(f:read("*l")):match("^(%d+)")
      local r = coldsend.doctor { api_key = KEY, base_url = "https://api.coldsend.invalid/api/public/v1",
        getenv = function(k) return k == "https_proxy" and "127.0.0.1:" .. port or nil end, timeout = 10 }
      core.probe { url = "http://127.0.0.1:" .. port .. "/__quit", proxy = "" }
      f:close()
      assert.matches("https_proxy applies: 127%.0%.0%.1:" .. port, check_of(r, "proxy").summary)
      local c = check_of(r, "connection")
      assert.equal("fail", c.status)
      assert.equal("the proxy of https_proxy refused the CONNECT tunnel to api.coldsend.invalid:443 "
        .. "(it answered 404)", c.summary)
      assert.matches("does not let this host through", c.advice)
      assert.equal("skip", check_of(r, "tls").status)
    end)

    it("no_proxy naming the host: the proxy is not used", function()
      local r = coldsend.doctor { api_key = KEY, base_url = "https://api.coldsend.invalid/api/public/v1",
        getenv = function(k)
          return ({ https_proxy = "http://127.0.0.1:1", no_proxy = "localhost,.coldsend.invalid" })[k]
        end, timeout = 5 }
      local c = check_of(r, "proxy")
      assert.equal("ok", c.status)
      assert.matches("not used: no_proxy names the host", c.summary)
      -- without a proxy the name does not resolve: the DNS step fails
      assert.matches("^DNS: cannot resolve api%.coldsend%.invalid", check_of(r, "connection").summary)
    end)

    it("never applies to a loopback host, nor to http://", function()
      local rc, out = run({ COLDSEND_API_KEY = KEY, COLDSEND_BASE_URL = sb.url,
        http_proxy = "http://127.0.0.1:1", HTTPS_PROXY = "http://127.0.0.1:1", ALL_PROXY = "http://127.0.0.1:1" })
      assert.equal(0, rc, out)
      assert.matches("^ok   proxy +HTTPS_PROXY, ALL_PROXY, http_proxy set, not used: a loopback host never "
        .. "goes through a proxy", line(out, "proxy"))
      local u = { scheme = "http", host = "example.com", loopback = false }
      local p, _, why = doctor.proxy_for(u, function(k) return k == "http_proxy" and "http://p:3128" or nil end)
      assert.is_nil(p)
      assert.equal("only https:// targets go through a proxy", why)
      u.scheme = "https"
      p, _, why = doctor.proxy_for(u, function(k) return k == "ALL_PROXY" and "http://p:3128" or nil end)
      assert.equal("http://p:3128", p)
      assert.equal("ALL_PROXY", why)
    end)

    it("an unknown proxy scheme fails before any connection", function()
      local r = coldsend.doctor { api_key = KEY, base_url = "https://api.coldsend.invalid/api/public/v1",
        getenv = function(k) return k == "https_proxy" and "ftp://127.0.0.1:1" or nil end }
      assert.equal("fail", check_of(r, "proxy").status)
      assert.equal("skip", check_of(r, "connection").status)
    end)
  end)

  describe("TLS", function()
    local dir, servers = nil, {}
    local self_port, self_cert, other_port, other_cert

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert.equal(0, (util.run("mkdir -p " .. q(dir))))
      servers[1] = tlsd.start(dir, "self", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
      servers[2] = tlsd.start(dir, "other", "/CN=other.test", "DNS:other.test")
      servers[3] = tlsd.start_expired(dir, "old")
      self_port, self_cert = servers[1].port, servers[1].cert
      other_port, other_cert = servers[2].port, servers[2].cert
    end)

    teardown(function()
      for _, srv in ipairs(servers) do srv:stop() end
      if dir then os.execute("rm -rf " .. q(dir)) end
    end)

    -- generous: under valgrind the handshake's crypto is slow
    local function run_tls(port, extra)
      local o = { api_key = KEY, base_url = ("https://127.0.0.1:%d/api/public/v1"):format(port), timeout = 60 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return coldsend.doctor(o)
    end

    it("a self-signed certificate: ✗ says so, with the CA bundle in use", function()
      local rc, out = run({ COLDSEND_API_KEY = KEY, LANG = "C.UTF-8",
        COLDSEND_BASE_URL = ("https://127.0.0.1:%d/api/public/v1"):format(self_port) })
      assert.equal(1, rc)
      assert.matches("^✗ TLS +certificate not verified: the certificate is self%-signed", line(out, "TLS"))
      assert.matches("CA bundle /", line(out, "TLS"))
      assert.matches("^ +→ .*give its CA certificate as ca_file", out:match("\n(%s+→[^\n]*)"))
      assert.matches("^✓ connection", line(out, "connection"))
      assert.matches("^%- API +not run: TLS failed", line(out, "API"))
    end)

    it("the certificate given as ca_file: verified, and the TLS time shown", function()
      local r = run_tls(self_port, { ca_file = self_cert })
      local c = check_of(r, "tls")
      assert.equal("ok", c.status, c.summary)
      assert.matches("^handshake %d+ ms, certificate chain verified %(CA bundle " .. self_cert:gsub("%p", "%%%0"),
        c.summary)
      assert.is_number(c.time)
      -- s_server answers an HTML page: not the API
      local api = check_of(r, "api")
      assert.equal("fail", api.status)
      assert.matches("not an answer of the ColdSend API %(no JSON body%)", api.summary)
    end)

    it("a certificate for another name: the certificate does not name this host", function()
      local r = run_tls(other_port, { ca_file = other_cert })
      local c = check_of(r, "tls")
      assert.equal("fail", c.status)
      assert.matches("the certificate does not name this host", c.summary)
      assert.matches("127.0.0.1 is not among its names", c.advice, 1, true)
    end)

    it("https:// to a server that speaks plain HTTP: the handshake fails, try http://", function()
      local r = coldsend.doctor { api_key = KEY, base_url = "https://127.0.0.1:" .. sb.port .. "/api/public/v1" }
      assert.equal("ok", check_of(r, "connection").status)
      local c = check_of(r, "tls")
      assert.equal("fail", c.status)
      assert.matches("^certificate not verified: TLS handshake failed", c.summary)
      assert.matches("http:// instead?", c.advice, 1, true)
      assert.equal("skip", check_of(r, "api").status)
    end)

    it("a server that accepts and never answers the handshake: TCP works, TLS times out", function()
      local f = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 30", "r"))
      local port, _, silent = assert(f:read("*l")):match("^(%d+) (%d+) (%d+)")
      local r = coldsend.doctor { api_key = KEY, base_url = "https://127.0.0.1:" .. silent .. "/api/public/v1",
        timeout = 1 }
      core.probe { url = "http://127.0.0.1:" .. port .. "/__quit", proxy = "" }
      f:close()
      assert.equal("ok", check_of(r, "connection").status)
      local c = check_of(r, "tls")
      assert.equal("fail", c.status)
      assert.matches("^no TLS session was set up %(.*timed out", c.summary)
      assert.matches("speaks TLS", c.advice)
    end)

    it("an expired certificate: says so, and to check the clock", function()
      local r = run_tls(servers[3].port, { ca_file = servers[3].ca })
      local c = check_of(r, "tls")
      assert.equal("fail", c.status)
      assert.matches("^certificate not verified: the certificate has expired", c.summary)
      assert.equal(10, c.details.verify_result)
      assert.matches("check this machine's clock", c.advice, 1, true)
      -- the same server with the CA it does not know: the issuer is unknown
      c = check_of(run_tls(servers[3].port), "tls")
      assert.equal("fail", c.status)
      assert.matches("issuer", c.summary)
    end)

    it("a CA bundle that cannot be read is named", function()
      local r = run_tls(self_port, { ca_file = dir .. "/missing.pem" })
      local c = check_of(r, "tls")
      assert.equal("fail", c.status)
      assert.matches("missing.pem", c.summary, 1, true)
    end)
  end)

  describe("the rate limit and the clock", function()
    it("reports the budget left and fails when none is", function()
      sb:config { rate_limit = 1 }
      local r = coldsend.doctor { api_key = KEY, base_url = sb.url }
      local c = check_of(r, "rate_limit")
      assert.equal("fail", c.status)
      assert.matches("^1 requests per window, none left, resets in %d+ s", c.summary)
      assert.equal("fail", check_of(r, "scope leads").status)
      assert.matches("429: rate limited", check_of(r, "scope leads").summary)
      sb:config { rate_limit = false }
    end)

    it("rate-limit headers that are no counts (100.5, 1e999) are not read as a budget", function()
      local f = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 30", "r"))
      local port = assert(f:read("*l")):match("^(%d+)")
      local ok, r = pcall(coldsend.doctor, { api_key = KEY,
        base_url = "http://127.0.0.1:" .. port .. "/h/odd_ratelimit/api/public/v1", timeout = 10 })
      core.probe { url = "http://127.0.0.1:" .. port .. "/__quit", proxy = "" }
      f:close()
      assert.is_true(ok, r)
      local c = check_of(r, "rate_limit")
      assert.equal("warn", c.status)
      assert.equal('unreadable X-RateLimit-* headers (limit "100.5", remaining "1e999"; whole numbers expected)',
        c.summary)
    end)

    it("warns past 30 s of skew against the Date header, in either direction", function()
      for _, off in ipairs { 120, -120 } do
        local r = coldsend.doctor { api_key = KEY, base_url = sb.url,
          now = function() return os.time() + off end }
        local c = check_of(r, "clock")
        assert.equal("warn", c.status)
        assert.matches("clock is 1[12]%d s " .. (off > 0 and "ahead" or "behind") .. " of the server's", c.summary)
        assert.matches("NTP", c.advice)
        assert.is_true(r.ok) -- a warning is not a failure
      end
      local r = coldsend.doctor { api_key = KEY, base_url = sb.url, now = function() return os.time() + 5 end }
      assert.equal("ok", check_of(r, "clock").status)
    end)

    it("parses HTTP dates exactly", function()
      assert.equal(0, doctor.parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
      assert.equal(951782400, doctor.parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
      assert.equal(1796247076, doctor.parse_http_date("Wed, 02 Dec 2026 21:31:16 GMT"))
      assert.is_nil(doctor.parse_http_date("Wed, 02 Foo 2026 21:31:16 GMT"))
      assert.is_nil(doctor.parse_http_date("2026-12-02T21:31:16Z"))
      assert.is_nil(doctor.parse_http_date(nil))
    end)
  end)

  describe("usage", function()
    it("exits 2 on an extra argument or an unknown option, and has help", function()
      local rc, _, err = run({}, "extra")
      assert.equal(2, rc)
      assert.matches("'doctor' takes no arguments", err)
      rc, _, err = run({}, "--verbose")
      assert.equal(2, rc)
      assert.matches("unknown option %-%-verbose for 'doctor'", err)
      local out
      rc, out = run({}, "--help")
      assert.equal(0, rc)
      assert.matches("^usage: coldsend doctor %[%-%-base%-url URL%] %[%-%-json%]", out)
    end)

    it("coldsend.doctor refuses bad options, naming them", function()
      assert.has_error(function() coldsend.doctor "x" end,
        "bad argument #1 to 'doctor' (table of options expected, got string)")
      assert.has_error(function() coldsend.doctor { verbose = true } end,
        "unknown option 'verbose' for coldsend.doctor")
      assert.has_error(function() coldsend.doctor { timeout = -1 } end,
        "bad option 'timeout' for coldsend.doctor (seconds in (0, 3600] expected, got -1)")
      assert.has_error(function() coldsend.doctor { ca_file = 3 } end,
        "bad option 'ca_file' for coldsend.doctor (path string expected, got number)")
      assert.has_error(function() coldsend.doctor { getenv = "x" } end,
        "bad option 'getenv' for coldsend.doctor (function expected, got string)")
    end)

    it("hostile option values: a failed check or a named error, never a crash", function()
      local r = coldsend.doctor { api_key = { KEY }, base_url = { sb.url } }
      assert.matches("^the API key is a table", check_of(r, "key").summary)
      assert.matches("^table %(the base_url option%): no URL", check_of(r, "base_url").summary)
      assert.is_false(r.ok)
      r = coldsend.doctor { api_key = 42, base_url = sb.url }
      assert.equal("fail", check_of(r, "key").status)
      assert.equal("ok", check_of(r, "connection").status)
      assert.has_error(function()
        coldsend.doctor { api_key = KEY, base_url = sb.url, now = function() return "soon" end }
      end, "bad option 'now' for coldsend.doctor (it returned string, Unix seconds expected)")
      no_key(cjson.encode(cjson.decode(coldsend.doctor { api_key = KEY, base_url = sb.url }:json())), "JSON")
    end)

    it("core.probe refuses bad requests without echoing header values", function()
      local function err_of(req)
        local ok, e = pcall(core.probe, req)
        assert.is_false(ok)
        return tostring(e)
      end
      assert.matches("bad probe field 'url' %(missing%)", err_of {})
      assert.matches("http:// or https://", err_of { url = "file:///etc/passwd" })
      assert.matches("space or control", err_of { url = "http://127.0.0.1/a b" })
      assert.matches("contains a NUL", err_of { url = "http://127.0.0.1/\0x" })
      local e = err_of { url = "http://127.0.0.1:1/", headers = { ["X-API-Key"] = KEY .. "\r\nX-Evil: 1" } }
      assert.matches("bad probe header 'X%-API%-Key' %(value contains CR, LF or NUL%)", e)
      no_key(e, "the probe error")
      assert.matches("not an HTTP token", err_of { url = "http://127.0.0.1:1/", headers = { ["a b"] = "x" } })
      assert.matches("string names and values", err_of { url = "http://127.0.0.1:1/", headers = { 1 } })
      assert.matches("seconds in", err_of { url = "http://127.0.0.1:1/", timeout = 0 })
      assert.matches("string expected, got number", err_of { url = "http://127.0.0.1:1/", proxy = 1 })
    end)

    it("core.probe answers with timings and the status, and follows no redirect", function()
      local p = core.probe { url = sb.url .. "/campaigns?limit=1", headers = { ["X-API-Key"] = KEY }, proxy = "" }
      assert.equal(0, p.curl_code)
      assert.equal(200, p.status)
      assert.matches("x%-ratelimit%-limit", p.head:lower())
      assert.is_true(p.total >= p.connect and p.connect >= p.dns)
      assert.equal("127.0.0.1", p.ip)
      assert.equal(sb.port, p.port)
      assert.equal("table", type(cjson.decode(p.body)))
    end)
  end)

  describe("the transcript in the docs", function()
    -- The block after "<!-- doctor transcript -->" in file, its command
    -- and its output.
    local function transcript(file)
      local text = assert(util.slurp(ROOT .. "/" .. file))
      local block = text:match("<!%-%- doctor transcript %-%->%s*```[^\n]*\n(.-)```")
      assert.is_truthy(block, "no doctor transcript in " .. file)
      local cmd, output = block:match("^%$ ([^\n]+)\n(.*)$")
      return cmd, output
    end

    -- Times, the port and the reset delay vary from run to run.
    local function mask(s)
      return (s:gsub("%d+ ms", "N ms"):gsub("127%.0%.0%.1:%d+", "127.0.0.1:PORT")
        :gsub("port %d+", "port PORT"):gsub("resets in %d+ s", "resets in N s")
        :gsub("Lua 5%.%d", "Lua 5.x"):gsub("LuaJIT [%w%.%-]+", "Lua 5.x")
        :gsub("libcurl [%w%.%-]+ %([^)]*%)", "libcurl V (TLS)"):gsub("lua%-cjson [%w%.]+", "lua-cjson V")
        :gsub("%(the same, within", "(SKEW, within"):gsub("%(%d s %a+, within", "(SKEW, within"))
    end

    for _, file in ipairs { "doc/cli.md", "README.md" } do
      it("of " .. file .. " is what the command prints against the sandbox", function()
        local cmd, expected = transcript(file)
        local env = {}
        for k, v in cmd:gmatch("(%u[%u_]+)=(%S+)") do env[k] = v end
        local args = cmd:match("coldsend doctor(.*)$")
        assert.is_truthy(args, cmd)
        args = args:gsub("http://127%.0%.0%.1:%d+", sb.base)
        local rc, out = run(env, args)
        assert.equal(0, rc, out)
        assert.equal(mask(expected), mask(out))
      end)
    end
  end)
end)
