--- coldsend.doctor: checks a setup in order and says what to do.
-- `coldsend doctor` and `coldsend.doctor(opts)`: versions, the key, the
-- base URL and the proxies of the environment, the connection (DNS, TCP,
-- TLS and the certificate), the API's answer, the key's scopes, the rate
-- limit and the server's clock. Read only: GETs and nothing else, each on
-- a fresh connection through core.probe. The key is never shown, only its
-- last 4 characters. The checks are here; the base URL and proxy rules
-- are coldsend.endpoint's, the report and how it reads (text,
-- JSON) coldsend.doctor.report's. See doc/cli.md.
-- @module coldsend.doctor
local core = require "coldsend.core"
local endpoint = require "coldsend.endpoint"
local report = require "coldsend.doctor.report"

local M = {}

local format, concat, floor = string.format, table.concat, math.floor
local unpack = table.unpack or unpack
local json = require "coldsend.json"
local add, array, NULL = report.add, json.array, json.null
local parse_url, mask_url = endpoint.parse_url, require("coldsend.redact").credentials

-- Kept here for their callers: the base URL and proxy rules (coldsend.client
-- uses them), the proxy masking and the locale test.
M.parse_url, M.mask_url, M.proxy_for = parse_url, mask_url, endpoint.proxy_for
M.utf8_locale = require("coldsend.text").utf8_locale

--- The public API's base URL (coldsend.DEFAULT_BASE_URL).
M.DEFAULT_BASE_URL = require("coldsend").DEFAULT_BASE_URL
M.API_PATH = "/api/public/v1"
--- Past this many seconds of clock skew, the clock check warns.
M.MAX_SKEW = 30

-- A campaign id that exists nowhere: a read of its leads answers 404 when
-- the key may read leads, 403 when it may not.
local NIL_UUID = "00000000-0000-0000-0000-000000000000"

-- ----------------------------------------------------------------------
-- small pieces

local function ms(seconds)
  return format("%d ms", floor((seconds or 0) * 1000 + 0.5))
end

-- The seconds from one of a probe's times to a later one, to the
-- microsecond as libcurl gives them (so the JSON shows 0.000389, not the
-- float difference 0.00038899999999999997).
local function between(from, to)
  return floor((to - from) * 1e6 + 0.5) / 1e6
end

--- Unix seconds of an HTTP date (the Date header), or nil: the client's
-- reading (coldsend.retry), so the clock check and the retry loop agree.
M.parse_http_date = require("coldsend.retry").parse_http_date

-- The headers of a probe's head as {lower-case name = value}.
local function parse_head(head)
  local t = {}
  for line in (head or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
    if k then
      k = k:lower()
      t[k] = t[k] and (t[k] .. ", " .. v) or v
    end
  end
  return t
end

-- A JSON object the server sent, or nil.
local function decode(body)
  local v = json.decode(body)
  return type(v) == "table" and v or nil
end

-- A string the server sent, as a report may show it: on one line, its
-- control characters and stray bytes escaped, at most 200 characters.
local function server_text(s)
  s = require("coldsend.text").escape(tostring(s), true)
  return #s > 200 and s:sub(1, 200) .. "..." or s
end

local function list_of(v)
  if type(v) ~= "table" then return nil end
  local t = {}
  for _, x in ipairs(v) do
    if type(x) == "string" then t[#t + 1] = server_text(x) end
  end
  return concat(t, ", ")
end

-- ----------------------------------------------------------------------
-- the checks, in order

local function check_versions(r)
  local lua = require("coldsend.client").lua_version()
  local info = core.curl_info()
  local okc, cjson = pcall(require, "cjson")
  local tls = info.ssl_version and format("%s", info.ssl_version) or "no TLS"
  local summary = format("%s, lua-coldsend %s, libcurl %s (%s), lua-cjson %s", lua,
    core._VERSION, info.version, tls, okc and tostring(cjson._VERSION or "?") or "missing")
  local extra = { details = { lua = lua, coldsend = core._VERSION, libcurl = info.version,
    tls_backend = info.ssl_version or NULL, cjson = okc and cjson._VERSION or NULL } }
  if not info.tls then
    return add(r, "versions", "fail", summary,
      "this libcurl has no TLS: https:// cannot work; install a libcurl built with TLS "
        .. "(Debian: libcurl4 with OpenSSL)", extra)
  end
  if not okc then
    return add(r, "versions", "fail", summary,
      "lua-cjson is missing: install it (apt install lua-cjson, or luarocks install lua-cjson)", extra)
  end
  return add(r, "versions", "ok", summary, nil, extra)
end

-- Says what is wrong with a key, never showing more than its last 4.
local function check_key(r, key, source)
  local advice_new = "set COLDSEND_API_KEY to the key from the ColdSend dashboard "
    .. "(Settings > API keys), cs_live_<token>"
  if key == nil or key == "" then
    return add(r, "key", "fail", "no API key (" .. source .. " is not set)", advice_new)
  end
  if type(key) ~= "string" then
    return add(r, "key", "fail", format("the API key is a %s, not a string", type(key)), advice_new)
  end
  -- the last 4 only when most of the token stays hidden (a cs_live_ key of
  -- 12 would show all its token)
  local tail = #key >= 24 and key:sub(-4):gsub("[^%w_%-]", "?") or "????"
  local shown = format("ending in ...%s, %d characters, from %s", tail, #key, source)
  local problem
  if key:find("[%s%c]") then
    problem = "contains whitespace or control characters (a stray newline or space when pasting?)"
  elseif key:sub(1, 3) ~= "cs_" then
    problem = "does not start with cs_"
  elseif #key < 8 or #key > 512 then
    problem = "has the wrong length (8 to 512 characters expected)"
  elseif key:find("[^%w_%-]") then
    problem = "contains characters other than letters, digits, _ and -"
  end
  if problem then
    return add(r, "key", "fail", format("the key %s (%s)", problem, shown), advice_new)
  end
  return add(r, "key", "ok", format("present and well formed (%s)", shown), nil,
    { details = { last4 = tail, length = #key, source = source } })
end

local function check_base_url(r, url, source)
  local u, problem = parse_url(url)
  if not u then
    local shown = type(url) == "string" and mask_url(url) or type(url)
    add(r, "base_url", "fail", format("%s (%s): %s", shown, source, problem),
      format("use %s (the public API), or http://127.0.0.1:PORT%s for a local sandbox",
        M.DEFAULT_BASE_URL, M.API_PATH))
    return nil
  end
  local summary = format("%s (%s): scheme %s, host %s, port %d, path %s", url, source, u.scheme,
    u.host, u.port, u.path == "" and "/" or u.path)
  local details = { scheme = u.scheme, host = u.host, port = u.port, path = u.path }
  if u.path:sub(-#M.API_PATH) ~= M.API_PATH then
    add(r, "base_url", "warn", summary,
      format("the path should end in %s (e.g. %s)", M.API_PATH, M.DEFAULT_BASE_URL),
      { details = details })
  else
    add(r, "base_url", "ok", summary, nil, { details = details })
  end
  return u
end

local function check_proxy(r, u, getenv)
  local proxy, set, why = endpoint.proxy_for(u, getenv)
  local details = { variables = array(set), proxy = proxy and mask_url(proxy) or NULL }
  if #set == 0 then
    add(r, "proxy", "ok", "no proxy variable in the environment", nil, { details = details })
    return ""
  end
  if not proxy then
    add(r, "proxy", "ok", format("%s set, not used: %s", concat(set, ", "), why), nil,
      { details = details })
    return ""
  end
  local pu = proxy:match("^%a[%w+.-]*://") and proxy or ("http://" .. proxy)
  local scheme = pu:match("^(%a[%w+.-]*)://"):lower()
  if scheme ~= "http" and scheme ~= "https" and not scheme:match("^socks") then
    add(r, "proxy", "fail", format("%s=%s: unknown proxy scheme %s", why, mask_url(proxy), scheme),
      format("set %s to http://HOST:PORT, or unset it", why), { details = details })
    return nil
  end
  add(r, "proxy", "ok", format("%s applies: %s, a CONNECT tunnel to %s:%d", why,
    mask_url(proxy), u.host, u.port), nil, { details = details })
  return pu, why
end

-- What a failed probe means, by curl's code: the check that failed, a
-- summary and the advice.
local CURLE = { UNSUPPORTED_PROTOCOL = 1, URL_MALFORMAT = 3, COULDNT_RESOLVE_PROXY = 5,
  COULDNT_RESOLVE_HOST = 6, COULDNT_CONNECT = 7, WEIRD_SERVER_REPLY = 8, HTTP_RETURNED_ERROR = 22,
  OPERATION_TIMEDOUT = 28, SSL_CONNECT_ERROR = 35, PEER_FAILED_VERIFICATION = 60,
  SSL_CACERT_BADFILE = 77, RECV_ERROR = 56, GOT_NOTHING = 52, PROXY = 97 }

-- X509_V_ERR_* codes libcurl's CURLINFO_SSL_VERIFYRESULT gives with OpenSSL.
local VERIFY = {
  [9] = "the certificate is not yet valid",
  [10] = "the certificate has expired",
  [18] = "the certificate is self-signed",
  [19] = "the chain ends in a self-signed certificate that is not trusted",
  [20] = "the certificate's issuer is unknown (not in the CA bundle)",
  [21] = "the certificate's issuer cannot be verified (incomplete chain)",
  [62] = "the certificate does not name this host",
}

local function tls_cause(p)
  local e = (p.error or ""):lower()
  if VERIFY[p.ssl_verify_result] then return VERIFY[p.ssl_verify_result] end
  if e:find("expired", 1, true) then return VERIFY[10] end
  if e:find("self.signed") then return VERIFY[18] end
  if e:find("subject name", 1, true) or e:find("does not match", 1, true)
    or e:find("no alternative certificate", 1, true) then return VERIFY[62] end
  if e:find("local issuer", 1, true) then return VERIFY[20] end
  return nil
end

local function connection_failure(r, u, p, proxy_var)
  local code, err = p.curl_code, p.error or ""
  local where = format("%s:%d", u.host, u.port)
  if proxy_var and (code == CURLE.COULDNT_RESOLVE_PROXY or code == CURLE.PROXY
      or (code == CURLE.COULDNT_CONNECT and p.connect == 0)) then
    return add(r, "connection", "fail", format("the proxy of %s cannot be reached: %s", proxy_var, err),
      format("check %s, or unset it if this network needs no proxy", proxy_var))
  end
  local tunnel = proxy_var and err:match("CONNECT tunnel failed, response (%d+)")
  if tunnel then
    return add(r, "connection", "fail", format("the proxy of %s refused the CONNECT tunnel to %s "
      .. "(it answered %s)", proxy_var, where, tunnel),
      tunnel == "407" and format("the proxy wants credentials: put them in %s (http://user:password@host:port)",
        proxy_var) or format("the proxy does not let this host through: ask its administrator, "
        .. "or unset %s if this network needs no proxy", proxy_var))
  end
  if code == CURLE.COULDNT_RESOLVE_HOST then
    return add(r, "connection", "fail", format("DNS: cannot resolve %s (%s)", u.host, err),
      "check the host name in the base URL, and your DNS (or the network)")
  end
  if code == CURLE.COULDNT_CONNECT then
    return add(r, "connection", "fail", format("TCP: nothing accepts connections at %s (%s)", where, err),
      u.loopback and "start the server (coldsend-sandbox --port PORT for a local sandbox) or fix the port"
        or "check the port, and whether a firewall blocks outgoing connections")
  end
  -- libcurl knows the peer's address once TCP is up: a timeout without
  -- one is a connect that never completed
  if code == CURLE.OPERATION_TIMEDOUT and (p.ip or "") == "" then
    return add(r, "connection", "fail", format("TCP: connecting to %s timed out", where),
      "a firewall may drop the packets, or this network needs a proxy (https_proxy)")
  end
  return nil
end

local function check_tls(r, u, p, ca_file)
  local ca = p.ca_file or ca_file or "libcurl's default"
  if u.scheme ~= "https" then
    return add(r, "tls", "skip", "not used: http:// to a loopback host")
  end
  local cause = tls_cause(p)
  local code = p.curl_code
  if code == CURLE.SSL_CACERT_BADFILE then
    return add(r, "tls", "fail", format("the CA bundle %s cannot be read", ca),
      "install ca-certificates, or pass a readable ca_file", { details = { ca_file = ca } })
  end
  if cause or code == CURLE.PEER_FAILED_VERIFICATION or code == CURLE.SSL_CONNECT_ERROR then
    local advice
    if cause == VERIFY[10] or cause == VERIFY[9] then
      advice = "check this machine's clock; else the server's certificate must be renewed"
    elseif cause == VERIFY[62] then
      advice = format("use the host name the certificate was issued for (%s is not among its names)", u.host)
    elseif cause then
      advice = format("a proxy or middlebox may intercept TLS; if the server is yours, give its CA "
        .. "certificate as ca_file (now %s)", ca)
    else
      advice = "the server may not speak TLS on this port (http:// instead?), or a middlebox interferes"
    end
    return add(r, "tls", "fail", format("certificate not verified: %s (%s; CA bundle %s)",
      cause or "TLS handshake failed", p.error or "", ca), advice,
      { time = p.tls - p.connect > 0 and between(p.connect, p.tls) or nil,
        details = { ca_file = ca, verify_result = p.ssl_verify_result } })
  end
  if (p.tls or 0) == 0 then return nil end
  return add(r, "tls", "ok", format("handshake %s, certificate chain verified (CA bundle %s)",
    ms(p.tls - p.connect), ca), nil,
    { time = between(p.connect, p.tls), details = { ca_file = ca, verify_result = p.ssl_verify_result } })
end

local function check_connection(r, u, p, proxy_var)
  if connection_failure(r, u, p, proxy_var) then return false end
  local peer = p.ip and p.ip ~= "" and (p.ip .. ":" .. tostring(p.port)) or u.host
  local via = proxy_var and " (the proxy)" or ""
  if (p.connect or 0) == 0 then
    -- libcurl gives no connect time for a transfer that failed later
    -- (in the TLS handshake, say): the connection itself was made
    add(r, "connection", "ok", format("DNS %s, TCP connected to %s%s", ms(p.dns), peer, via), nil,
      { details = { dns = p.dns, ip = p.ip or NULL } })
    return true
  end
  add(r, "connection", "ok", format("DNS %s, TCP connect %s to %s%s", ms(p.dns),
    ms(p.connect - p.dns), peer, via), nil,
    { time = p.connect, details = { dns = p.dns, connect = between(p.dns, p.connect), ip = p.ip or NULL } })
  return true
end

local function api_result(r, u, p, path)
  local st = p.status
  local body = decode(p.body)
  local t = p.total
  local line = format("GET %s -> %d", path, st)
  if p.curl_code ~= 0 then
    return add(r, "api", "fail", format("GET %s failed: %s", path, p.error or "?"),
      "the connection broke during the request: try again; if it persists, a proxy may interfere",
      { time = t })
  end
  if st == 200 and body then
    local n = type(body.campaigns) == "table" and #body.campaigns or 0
    return add(r, "api", "ok", format("%s, the API answers", line), nil,
      { time = t, details = { status = st, campaigns = n } })
  end
  if st == 401 then
    return add(r, "api", "fail", format("%s: the key is revoked or wrong (%s)", line,
      body and type(body.detail) == "string" and server_text(body.detail) or "no detail"),
      "create a new key in the ColdSend dashboard (Settings > API keys) and set COLDSEND_API_KEY",
      { time = t, details = { status = st } })
  end
  if st == 404 then
    return add(r, "api", "fail", format("%s: the path is wrong (%s is not the API)", line,
      u.path == "" and "/" or u.path),
      format("the base URL must end in %s, e.g. %s://%s%s%s", M.API_PATH, u.scheme, u.host,
        (u.port == 443 and u.scheme == "https" or u.port == 80 and u.scheme == "http") and ""
          or (":" .. u.port), M.API_PATH),
      { time = t, details = { status = st } })
  end
  if st == 403 then
    return add(r, "api", "ok", format("%s, the key is valid (its scopes below)", line), nil,
      { time = t, details = { status = st } })
  end
  if st == 429 then
    return add(r, "api", "fail", format("%s: rate limited", line),
      format("wait %s s and try again; another script may use the same key",
        server_text(parse_head(p.head)["retry-after"] or "a few")), { time = t, details = { status = st } })
  end
  if st >= 500 then
    return add(r, "api", "fail", format("%s: the server failed", line),
      "try again later; if it persists, contact ColdSend support", { time = t, details = { status = st } })
  end
  if st >= 300 and st < 400 then
    return add(r, "api", "fail", format("%s: a redirect to %s", line,
      server_text(parse_head(p.head).location)), "use the URL the redirect names as base URL",
      { time = t, details = { status = st } })
  end
  return add(r, "api", "fail", format("%s: not an answer of the ColdSend API%s", line,
    body and "" or " (no JSON body)"),
    "check the base URL; a proxy or a web server may answer instead of the API",
    { time = t, details = { status = st } })
end

-- The reads that show each scope: name, path, scope it needs.
local SCOPES = {
  { "campaigns", nil, "campaigns:read" },
  { "leads", "/campaigns/%s/leads?limit=1", "leads:read" },
  { "sender_accounts", "/sender-accounts?limit=1", "sender_accounts:read" },
  { "analytics", "/analytics/campaigns", "campaigns:read" },
}

local function scope_result(r, name, path, need, p)
  local body = decode(p.body)
  local check = "scope " .. name
  if p.curl_code ~= 0 then
    return add(r, check, "fail", format("GET %s failed: %s", path, p.error or "?"),
      "try again; the connection broke", { time = p.total })
  end
  if p.status == 403 then
    local function names(v)
      return type(v) == "table" and #v > 0 and list_of(v) or nil
    end
    local required = body and names(body.required) or need
    local granted = body and (type(body.granted) == "table" and next(body.granted) == nil and ""
      or names(body.granted))
    return add(r, check, "fail", format("GET %s -> 403: the key lacks %s%s", path, required,
      granted and ("; it has " .. (granted == "" and "none" or granted)) or ""),
      format("create a key with the scope %s (or %s:all)", required, name),
      { time = p.total, details = { status = 403,
        required = array(body and names(body.required) and body.required or { need }),
        granted = body and (names(body.granted) or granted == "") and array(body.granted) or NULL } })
  end
  if p.status == 429 then
    return add(r, check, "fail", format("GET %s -> 429: rate limited, the scope was not checked", path),
      "wait for the rate-limit window to reset, then run doctor again", { time = p.total,
        details = { status = 429 } })
  end
  if p.status == 200 or p.status == 404 and body then
    return add(r, check, "ok", format("GET %s -> %d: allowed (%s)", path, p.status, need), nil,
      { time = p.total, details = { status = p.status } })
  end
  return add(r, check, "fail", format("GET %s -> %d: unexpected", path, p.status),
    "run doctor again; if it persists, contact ColdSend support", { time = p.total,
      details = { status = p.status } })
end

-- A header's whole number (decimal digits only: not 0x10, 2.5 or 1e999).
local function header_int(v)
  return type(v) == "string" and v:match("^%d+$") and #v <= 15 and tonumber(v) or nil
end

local function check_rate_limit(r, h, now)
  local limit, left, reset = header_int(h["x-ratelimit-limit"]), header_int(h["x-ratelimit-remaining"]),
    header_int(h["x-ratelimit-reset"])
  if not limit or not left then
    local given = h["x-ratelimit-limit"] or h["x-ratelimit-remaining"]
    return add(r, "rate_limit", "warn", given and format("unreadable X-RateLimit-* headers (limit \"%s\", "
      .. "remaining \"%s\"; whole numbers expected)", server_text(h["x-ratelimit-limit"] or ""),
      server_text(h["x-ratelimit-remaining"] or "")) or "no X-RateLimit-* headers in the answer",
      "the client then paces itself; a proxy may strip the headers")
  end
  local resets = reset and (reset > 1e9 and reset - now or reset) or nil
  local when = resets and format(", resets in %d s", math.max(0, floor(resets + 0.5))) or ""
  local details = { limit = limit, remaining = left, reset = reset or NULL }
  if left <= 0 then
    return add(r, "rate_limit", "fail", format("%d requests per window, none left%s", limit, when),
      "wait for the window to reset; another script may use the same key", { details = details })
  end
  return add(r, "rate_limit", "ok", format("%d requests per window, %d left%s", limit, left, when),
    nil, { details = details })
end

local function check_clock(r, h, now)
  local server = M.parse_http_date(h["date"])
  if not server then
    return add(r, "clock", "warn", h["date"] and format("unreadable Date header \"%s\"", server_text(h["date"]))
      or "no Date header in the answer", "the clock cannot be compared")
  end
  local skew = now - server
  local details = { skew = skew }
  local says = skew == 0 and "the same" or format("%d s %s", math.abs(skew), skew > 0 and "ahead" or "behind")
  if math.abs(skew) > M.MAX_SKEW then
    return add(r, "clock", "warn", format("this machine's clock is %s of the server's", says),
      "synchronise the clock (NTP: timedatectl set-ntp true); rate-limit resets and dates will be off",
      { details = details })
  end
  return add(r, "clock", "ok", format("agrees with the server's (%s, within %d s)", says, M.MAX_SKEW),
    nil, { details = details })
end

local function skip_rest(r, names, why)
  for _, n in ipairs(names) do add(r, n, "skip", "not run: " .. why) end
end

local LATER = { "api", "scope campaigns", "scope leads", "scope sender_accounts",
  "scope analytics", "rate_limit", "clock" }

--- Runs every check and returns the report.
-- @tab[opt] opts `api_key` (default $COLDSEND_API_KEY), `base_url` (default
-- $COLDSEND_BASE_URL, else the public API), `ca_file`, `timeout` (per
-- request, seconds, default 20), `getenv` (a function; default os.getenv),
-- `now` (a function giving Unix seconds; default os.time)
-- @treturn table `{ok = bool, checks = {{name, status ("ok", "fail",
-- "warn", "skip"), summary, advice?, time?, details?}...}}`; tostring gives
-- the text (`report:text(utf8)`), `report:json()` the JSON
function M.doctor(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(format("bad argument #1 to 'doctor' (table of options expected, got %s)", type(opts)), 2)
  end
  -- raised at the line that called doctor (level 3 from here)
  local function bad_option(name, why, level)
    error(format("bad option '%s' for coldsend.doctor (%s)", name, why), level or 3)
  end
  local known = { api_key = true, base_url = true, ca_file = true, timeout = true, getenv = true,
    now = true }
  for k in pairs(opts) do
    if not known[k] then error(require("coldsend.help").unknown_option(k, "coldsend.doctor", known), 2) end
  end
  local getenv = opts.getenv or os.getenv
  if type(getenv) ~= "function" then
    bad_option("getenv", format("function expected, got %s", type(getenv)))
  end
  local clock = opts.now or os.time
  if type(clock) ~= "function" then
    bad_option("now", format("function expected, got %s", type(clock)))
  end
  local function now()
    local t = clock()
    if type(t) ~= "number" or t ~= t then
      bad_option("now", format("it returned %s, Unix seconds expected", type(t)), 0)
    end
    return t
  end
  if opts.ca_file ~= nil and type(opts.ca_file) ~= "string" then
    bad_option("ca_file", format("path string expected, got %s", type(opts.ca_file)))
  end
  local timeout = opts.timeout or 20
  if type(timeout) ~= "number" or not (timeout > 0 and timeout <= 3600) then
    bad_option("timeout", format("seconds in (0, 3600] expected, got %s", tostring(timeout)))
  end

  local r = report.new()
  check_versions(r)
  local key, key_source = opts.api_key, "the api_key option"
  if key == nil then key, key_source = getenv("COLDSEND_API_KEY"), "COLDSEND_API_KEY" end
  local key_ok = check_key(r, key, key_source).status == "ok"
  local url, url_source = opts.base_url, "the base_url option"
  if url == nil or url == "" then url, url_source = getenv("COLDSEND_BASE_URL"), "COLDSEND_BASE_URL" end
  if url == nil or url == "" then url, url_source = M.DEFAULT_BASE_URL, "the default" end
  local u = check_base_url(r, url, url_source)
  if not u then
    skip_rest(r, { "proxy", "connection", "tls" }, "the base URL is not usable")
    skip_rest(r, LATER, "the base URL is not usable")
    return r
  end
  local proxy, proxy_var = check_proxy(r, u, getenv)
  if proxy == nil then
    skip_rest(r, { "connection", "tls" }, "the proxy setting is not usable")
    skip_rest(r, LATER, "the proxy setting is not usable")
    return r
  end

  local base = u.base
  local headers = { ["Accept"] = "application/json",
    ["User-Agent"] = format("lua-coldsend/%s doctor", core._VERSION) }
  if key_ok then
    headers["X-API-Key"] = key
    report.hide(r, key)
  end
  local function get(path)
    return core.probe { url = base .. path, headers = headers, proxy = proxy, ca_file = opts.ca_file,
      timeout = timeout, connect_timeout = math.min(timeout, 10) }
  end

  local path = "/campaigns?limit=1"
  local p = get(path)
  local connected = check_connection(r, u, p, proxy_var)
  local tls = connected and check_tls(r, u, p, opts.ca_file)
  if not connected then
    skip_rest(r, { "tls" }, "no connection")
    skip_rest(r, LATER, "no connection")
    return r
  end
  if tls == nil then -- a failure after TCP that was not a verification error
    add(r, "tls", "fail", format("no TLS session was set up (%s)", p.error or "?"),
      "the server closed the connection in the handshake: check the port and that it speaks TLS "
        .. "(https://); a proxy or firewall may cut TLS")
    skip_rest(r, LATER, "TLS failed")
    return r
  elseif tls.status == "fail" then
    skip_rest(r, LATER, "TLS failed")
    return r
  end
  if not key_ok then
    skip_rest(r, LATER, "no usable key")
    return r
  end
  local api = api_result(r, u, p, path)
  if api.status == "fail" then
    skip_rest(r, { unpack(LATER, 2) }, "the API check failed")
    return r
  end
  local first = decode(p.body)
  first = first and type(first.campaigns) == "table" and first.campaigns[1]
  local cid = type(first) == "table" and type(first.campaign_id) == "string"
    and core.is_uuid(first.campaign_id) and first.campaign_id or NIL_UUID
  for _, s in ipairs(SCOPES) do
    if s[2] == nil then
      scope_result(r, s[1], path, s[3], p)
    else
      local sp = s[2]:find("%s", 1, true) and format(s[2], cid) or s[2]
      scope_result(r, s[1], (s[2]:gsub("%%s", "{id}")), s[3], get(sp))
    end
  end
  local h = parse_head(p.head)
  check_rate_limit(r, h, now())
  check_clock(r, h, now())
  return r
end

return M
