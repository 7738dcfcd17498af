-- proxy_spec: the key never crosses a proxy in cleartext. The libcurl
-- transport reads no proxy variable itself; the client takes the
-- environment's (https_proxy, else all_proxy) only for an https:// base URL,
-- as a CONNECT tunnel, never for loopback, and never http_proxy; the
-- option `proxy` chooses one explicitly. spec/helpers/tinyproxy.lua stands
-- in for the proxy on 127.0.0.1 and logs what reaches it (whether a key
-- header came, never its value); spec/helpers/rawhttpd.lua is the server.
-- An https:// base URL names a host under .invalid: through a proxy libcurl
-- never resolves it, and the stand-in answers the CONNECT with 403, so no
-- traffic leaves the machine.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local util = require "spec.helpers.util"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local KEY = "cs_live_Pr0xyK3yNeverSent42"
local HTTPS_BASE = "https://api.coldsend.invalid/api/public/v1"
local ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

local proxy, server, log = {}, {}, nil

local function start(cmd)
  local f = assert(io.popen(cmd, "r"))
  local line = assert(f:read("*l"), cmd .. " printed no port")
  return f, assert(tonumber(line:match("^(%d+)")), line)
end

setup(function()
  log = util.tmp_path()
  proxy.pipe, proxy.port = start("lua5.4 spec/helpers/tinyproxy.lua " .. util.q(log) .. " 120")
  proxy.url = "http://127.0.0.1:" .. proxy.port
  server.pipe, server.port = start("lua5.4 spec/helpers/rawhttpd.lua 120")
  -- localhost, as a newcomer's sandbox URL may say
  server.base = "http://localhost:" .. server.port .. "/api/public/v1"
end)

teardown(function()
  local h = core.http()
  if proxy.pipe then
    h { url = proxy.url .. "/__quit", timeout = 5 }
    proxy.pipe:close()
  end
  if server.pipe then
    h { url = "http://127.0.0.1:" .. server.port .. "/__quit", timeout = 5 }
    server.pipe:close()
  end
  h:close()
  util.cleanup()
end)

-- What reached the proxy since the mark (lines of the log).
local function mark() return #util.slurp(log, "") end
local function since(m) return util.slurp(log, ""):sub(m + 1) end

-- Runs a get_campaign in a child whose environment holds only the given
-- proxy variables; returns its output ("ok" or the error text).
local PROXY_VARS = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
  "ALL_PROXY", "no_proxy", "NO_PROXY" }
local function child_get(env, base_url)
  local vars = {}
  for _, k in ipairs(PROXY_VARS) do vars[#vars + 1] = "-u " .. k end
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. util.q(v) end
  local code = ([[
    local cs = require("coldsend").client { api_key = %q, base_url = %q, max_retries = 0,
      rate_limit = false, timeout = 10, connect_timeout = 5 }
    local c, err = cs:get_campaign(%q)
    io.write(c and "ok" or tostring(err))]]):format(KEY, base_url, ID)
  local rc, out, err = util.run(("env %s %s -e %s"):format(table.concat(vars, " "), LUA, util.q(code)))
  assert(rc == 0, "the child failed: " .. err)
  return out
end

describe("environment proxies", function()
  for _, var in ipairs { "http_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy", "https_proxy" } do
    it("are not used for an http:// loopback base URL: " .. var, function()
      local m = mark()
      local out = child_get({ [var] = proxy.url }, server.base)
      assert.equal("", since(m))
      -- the request went straight to the server, which answered (rawhttpd
      -- has no campaigns: its own 404 says it was reached)
      assert.matches("no route /api/public/v1/campaigns/" .. ID, out, 1, true)
    end)
  end

  for _, var in ipairs { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" } do
    it("carry an https:// target as a CONNECT tunnel, without the key: " .. var, function()
      local m = mark()
      local out = child_get({ [var] = proxy.url }, HTTPS_BASE)
      local got = since(m)
      assert.matches("^CONNECT api%.coldsend%.invalid:443 HTTP/1%.1 | key=no | host=api%.coldsend%.invalid:443\n$", got)
      assert.not_matches("Pr0xyK3y", out, 1, true)
      assert.matches("^coldsend: network", out)
    end)
  end

  it("never carry http:// even when https_proxy is also set", function()
    local m = mark()
    local out = child_get({ http_proxy = proxy.url, https_proxy = proxy.url, all_proxy = proxy.url },
      server.base)
    assert.equal("", since(m))
    assert.matches("no route /api/public/v1/campaigns/" .. ID, out, 1, true)
  end)
end)

describe("the client option proxy", function()
  it("sends an https:// target through the proxy named, as a CONNECT tunnel", function()
    local m = mark()
    local cs = coldsend.client { api_key = KEY, base_url = HTTPS_BASE, proxy = proxy.url,
      max_retries = 0, rate_limit = false, timeout = 10, connect_timeout = 5 }
    local c, err = cs:get_campaign(ID)
    assert.is_nil(c)
    assert.equal("network", err.code)
    assert.matches("^CONNECT api%.coldsend%.invalid:443 HTTP/1%.1 | key=no", since(m))
  end)

  it("takes host:port as http://host:port", function()
    local m = mark()
    local cs = coldsend.client { api_key = KEY, base_url = HTTPS_BASE,
      proxy = "127.0.0.1:" .. proxy.port, max_retries = 0, rate_limit = false, timeout = 10 }
    assert.is_nil((cs:get_campaign(ID)))
    assert.matches("^CONNECT api%.coldsend%.invalid:443 ", since(m))
  end)

  it("is refused for an http:// base URL: the key would cross it in cleartext", function()
    local ok, msg = pcall(coldsend.client, { api_key = KEY, base_url = server.base, proxy = proxy.url })
    assert.is_false(ok)
    assert.matches("bad option 'proxy' for coldsend.client (no proxy for an http:// base URL", msg, 1, true)
  end)

  it("names the rule and the value when it is not a proxy URL, credentials hidden", function()
    local function refused(v)
      local ok, msg = pcall(coldsend.client, { api_key = KEY, base_url = HTTPS_BASE, proxy = v })
      assert.is_false(ok)
      assert.matches("bad option 'proxy' for coldsend.client (proxy URL http://host:port", msg, 1, true)
      return msg
    end
    assert.matches("got 42%)$", refused(42))
    assert.matches('got "ftp://127.0.0.1:21"', refused("ftp://127.0.0.1:21"), 1, true)
    assert.matches('got "http://127.0.0.1:1/a path"', refused("http://127.0.0.1:1/a path"), 1, true)
    local msg = refused("ftp://user:Sup3rSecretPw@127.0.0.1:21")
    assert.not_matches("Sup3rSecretPw", msg, 1, true)
    assert.matches('"ftp://***@127.0.0.1:21"', msg, 1, true)
  end)

  it("takes false: no proxy", function()
    assert.is_table(coldsend.client { api_key = KEY, base_url = HTTPS_BASE, proxy = false })
  end)

  it("is refused inside HAProxy, whose httpclient connects directly, credentials hidden", function()
    -- what the facade sees of HAProxy: a global core with httpclient
    rawset(_G, "core", { httpclient = function() end, now = function() return { sec = 0, usec = 0 } end,
      msleep = function() end })
    local ok, msg = pcall(coldsend.client, { api_key = KEY, base_url = HTTPS_BASE,
      proxy = "http://u:Sup3rSecretPw@127.0.0.1:" .. proxy.port })
    local ok2, cs = pcall(coldsend.client, { api_key = KEY, base_url = HTTPS_BASE, proxy = false })
    rawset(_G, "core", nil)
    assert.is_false(ok)
    assert.matches("bad option 'proxy' for coldsend.client (no proxy inside HAProxy", msg, 1, true)
    assert.not_matches("Sup3rSecretPw", msg, 1, true)
    assert.is_true(ok2, cs)
  end)
end)

describe("core.http", function()
  it("reads no proxy variable: only its option or the request's field", function()
    local m = mark()
    local h = core.http { proxy = proxy.url }
    local res, msg, code = h { url = "https://api.coldsend.invalid/x", timeout = 10 }
    assert.is_nil(res)
    assert.equal("network", code, msg)
    local res2 = core.http_perform { url = "https://api.coldsend.invalid/y", proxy = proxy.url, timeout = 10 }
    assert.is_nil(res2)
    local got = since(m)
    local n = select(2, got:gsub("CONNECT api%.coldsend%.invalid:443 ", ""))
    assert.equal(2, n)
    h:close()
  end)

  it("uses a request's proxy for that request alone, on one handle", function()
    local direct = "http://127.0.0.1:" .. server.port .. "/json"
    local function through_proxy(h, req)
      local m = mark()
      local res = h(req)
      return res == nil and since(m):find("CONNECT 127.0.0.1:" .. server.port, 1, true) ~= nil
    end
    local h = core.http()
    for _ = 1, 2 do
      assert.is_true(through_proxy(h, { url = direct, proxy = proxy.url, timeout = 10 }))
      assert.is_false(through_proxy(h, { url = direct, timeout = 10 }))
      assert.is_false(through_proxy(h, { url = direct, proxy = "", timeout = 10 }))
    end
    h:close()
    -- the object's proxy, "" in a request for none, then the object's again
    h = core.http { proxy = proxy.url }
    for _ = 1, 2 do
      assert.is_true(through_proxy(h, { url = direct, timeout = 10 }))
      assert.is_false(through_proxy(h, { url = direct, proxy = "", timeout = 10 }))
    end
    h:close()
  end)

  it("refuses a proxy that is not a URL, naming the field", function()
    assert.error_matches(function() core.http { proxy = "gopher://x" } end,
      "bad option 'proxy' (http://, https://, socks5:// or socks5h:// host[:port] expected)", 1, true)
    assert.error_matches(function() core.http_perform { url = "https://x.invalid/", proxy = "http://a b" } end,
      "bad request field 'proxy' (contains a space or control)", 1, true)
    assert.error_matches(function() core.http { proxy = 5 } end,
      "bad option field 'proxy' (string expected, got number)", 1, true)
  end)
end)
