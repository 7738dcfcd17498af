--- coldsend: the ColdSend campaign API client.
-- The C core (coldsend.core) validates and builds requests and parses
-- responses; this facade owns what needs a transport: the request loop
-- (rate limiting, retries, deadlines, hooks) and the campaign methods that
-- talk to the server. It is Lua so that transports may yield (OpenResty).
-- @module coldsend
local core = require "coldsend.core"
local retry = require "coldsend.retry"
local writes = require "coldsend.writes"
local ratelimit = require "coldsend.ratelimit"
local redact = require "coldsend.redact"

local M = { _VERSION = core._VERSION }

--- The public API's base URL, used when neither base_url nor COLDSEND_BASE_URL is set.
M.DEFAULT_BASE_URL = "https://api.coldsend.pro/api/public/v1"

--- The longest single wait (seconds) a call sleeps through, for the rate
-- limit or a server's stated wait, unless the max_wait option says other.
M.DEFAULT_MAX_WAIT = 60

local type, pairs, ipairs, tostring, setmetatable, error =
  type, pairs, ipairs, tostring, setmetatable, error
local format, concat = string.format, table.concat

-- The key of each client lives here, not in the client table, so that
-- pairs(client), a debugger dump or an error message cannot show it.
local secrets = setmetatable({}, { __mode = "k" })
-- The client a campaign handle belongs to.
local owners = setmetatable({}, { __mode = "k" })

local Client = {}
Client.__index = Client
Client.__name = "coldsend.client"

-- ---------------------------------------------------------------------
-- option checking

-- The directory of the library's Lua files: frames there are not the
-- caller's.
local LIB_DIR = debug.getinfo(1, "S").source:match("^@(.*[/\\])[^/\\]*$")

-- Raises msg at the first frame outside the library (the line of the
-- user's call, however deep in the library the check sits).
local function raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then level = 2 break end
    local own = info.what == "C" or info.what == "tail" -- 5.1's tail-call frame
      or (LIB_DIR and info.source:sub(1, #LIB_DIR + 1) == "@" .. LIB_DIR)
    if not own then break end
    level = level + 1
  end
  error(msg, level)
end
M._raise = raise

-- A value for a message; NaN as "nan" on every Lua (PUC Lua prints 0/0 as "-nan").
local function shown_value(v)
  if v ~= v then return "nan" end
  return type(v) == "string" and format("%q", v) or tostring(v)
end

local function opt_error(what, name, rule, value)
  local shown = shown_value(value)
  if type(value) == "table" or type(value) == "function" then shown = type(value) end
  raise(format("bad option '%s' for %s (%s expected, got %s)", name, what, rule, shown))
end

local function check_number(what, opts, name, min)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v <= (min or 0) or v == math.huge then
    opt_error(what, name, "positive number of seconds", v)
  end
  return v
end

local function check_count(what, opts, name)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) or v > 100 then
    opt_error(what, name, "integer 0..100", v)
  end
  return v
end

local function check_function(what, opts, name)
  local v = opts[name]
  if v == nil then return nil end
  local mt = getmetatable(v)
  if type(v) ~= "function" and not (mt and mt.__call) then
    opt_error(what, name, "function", v)
  end
  return v
end

local function check_known(what, opts, known)
  for k in pairs(opts) do
    if not known[k] then
      raise(require("coldsend.help").unknown_option(k, what, known))
    end
  end
end

-- Per-call options every server call accepts as its last argument.
local CALL_OPTIONS = {
  timeout = true, connect_timeout = true, deadline = true, max_retries = true,
  backoff_base = true, backoff_cap = true, max_wait = true,
  _deadline_at = true, -- internal: one deadline for the requests of one call
}

local function check_call_options(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    raise(format("bad call options (table expected, got %s)", type(opts)))
  end
  check_known("call", opts, CALL_OPTIONS)
  check_number("call", opts, "timeout")
  check_number("call", opts, "connect_timeout")
  check_number("call", opts, "deadline")
  check_number("call", opts, "backoff_base")
  check_number("call", opts, "backoff_cap")
  check_number("call", opts, "max_wait")
  check_count("call", opts, "max_retries")
  return opts
end

-- ---------------------------------------------------------------------
-- the API key and the base URL

-- Says what is wrong with a key without ever showing it.
local function key_problem(key)
  if key == nil or key == "" then
    return "no API key (set COLDSEND_API_KEY or pass api_key; expected cs_live_<token>)"
  end
  if type(key) ~= "string" then
    return format("bad API key (string cs_live_<token> expected, got %s)", type(key))
  end
  if key:find("[%s%c]") then
    return format("bad API key (cs_live_<token> expected; the %d-character value given "
      .. "contains whitespace or control characters)", #key)
  end
  if key:sub(1, 3) ~= "cs_" then
    return format("bad API key (cs_live_<token> expected; the %d-character value given "
      .. "does not start with cs_)", #key)
  end
  if key:match("^cs_%w+_$") then
    return format("bad API key (cs_live_<token> expected; the value given is only the prefix "
      .. "%s, the token after it is missing)", key)
  end
  if #key < 8 or #key > 512 then
    return format("bad API key (cs_live_<token> expected; the value given has %d characters)", #key)
  end
end

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Returns the normalised base URL (no trailing slash) or raises.
local function check_base_url(url)
  if type(url) ~= "string" then
    error(format("bad option 'base_url' for coldsend.client (URL string expected, got %s)", type(url)), 3)
  end
  local scheme, host = url:match("^(%a[%w+.-]*)://([^/?#]+)")
  if not scheme or url:find("[%s%c]") then
    error(format("bad option 'base_url' for coldsend.client (http(s)://host/path expected, got %q)", url), 3)
  end
  scheme = scheme:lower()
  if host:find("@", 1, true) then
    error("bad option 'base_url' for coldsend.client (credentials in the URL are not allowed)", 3)
  end
  if url:find("[?#]") then
    error(format("bad option 'base_url' for coldsend.client (no query or fragment expected, got %q)", url), 3)
  end
  local hostname = host:match("^(%[.-%])") or host:match("^([^:]+)")
  if not hostname then
    error(format("bad option 'base_url' for coldsend.client (a host expected, got %q)", url), 3)
  end
  local port = host:sub(#hostname + 1)
  if port ~= "" and not (port:match("^:%d+$") and tonumber(port:sub(2)) >= 1
      and tonumber(port:sub(2)) <= 65535) then
    error(format("bad option 'base_url' for coldsend.client (port 1..65535 expected, got %q)", url), 3)
  end
  if scheme == "http" then
    if not is_loopback(hostname) then
      error(format("bad option 'base_url' for coldsend.client (https:// required; "
        .. "http:// is only allowed for loopback hosts, got %q)", url), 3)
    end
  elseif scheme ~= "https" then
    error(format("bad option 'base_url' for coldsend.client (http(s) URL expected, got %q)", url), 3)
  end
  return (url:gsub("/+$", ""))
end

-- ---------------------------------------------------------------------
-- the environment: transport, clock, sleep

-- Inside nginx the thread-pool transport is the only default: it raises
-- (with the way out) where it cannot work rather than silently blocking.
local function in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function"
end

-- Inside HAProxy its own HTTP client is the default, for the same reason.
local function in_haproxy()
  local c = rawget(_G, "core")
  return type(c) == "table" and type(c.httpclient) == "function"
end

local function user_agent()
  local lua = (rawget(_G, "jit") and jit.version) or _VERSION
  return format("lua-coldsend/%s %s %s", core._VERSION, core.curl_version(), lua)
end

-- ---------------------------------------------------------------------
-- the client

local CLIENT_OPTIONS = {
  api_key = true, base_url = true, timeout = true, connect_timeout = true,
  max_retries = true, deadline = true, backoff_base = true, backoff_cap = true,
  max_wait = true, rate_limit = true, ca_file = true, max_body = true, proxy = true,
  on_request = true, on_response = true, on_retry = true,
  transport = true, thread_pool = true, shared_dict = true,
  clock = true, wall_clock = true, sleep = true, random = true,
}

-- The proxy the transport goes through, or nil. The key never crosses a
-- proxy in cleartext: the environment's (https_proxy, else all_proxy) only
-- for an https:// base URL, as a CONNECT tunnel, and never for loopback
-- (coldsend.doctor's proxy_for, the rule `coldsend doctor` reports);
-- http_proxy is never read. The option `proxy` (a URL, or false for none)
-- chooses instead of the environment, and only for https://.
local PROXY_SCHEMES = { http = true, https = true, socks5 = true, socks5h = true }
local function choose_proxy(what, base_url, proxy)
  local doctor = require "coldsend.doctor" -- here: it requires this module
  local u = assert(doctor.parse_url(base_url))
  local from = "option 'proxy'"
  if proxy == false then return nil end
  if proxy == nil then
    local name
    proxy, _, name = doctor.proxy_for(u, os.getenv)
    if proxy == nil then return nil end
    from = "the proxy in $" .. name
  end
  local shown = type(proxy) == "string" and doctor.mask_url(proxy) or proxy
  local rule = "proxy URL http://host:port (also https://, socks5://, socks5h://) or false"
  if type(proxy) ~= "string" then opt_error(what, "proxy", rule, proxy) end
  local url = proxy:match("^%a[%w+.-]*://") and proxy or ("http://" .. proxy)
  local scheme, host = url:match("^(%a[%w+.-]*)://([^/?#]+)/?$")
  if not scheme or url:find("[%s%c]") or not PROXY_SCHEMES[scheme:lower()] then
    if from ~= "option 'proxy'" then
      raise(format("coldsend.client: %s is not usable (%s expected, got %q)", from, rule, shown))
    end
    opt_error(what, "proxy", rule, shown)
  end
  if u.scheme ~= "https" then
    opt_error(what, "proxy", "no proxy for an http:// base URL (loopback, and the key would cross"
      .. " the proxy in cleartext)", shown)
  end
  return url
end

--- Makes a client. See the README for the options.
function M.client(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(format("bad argument #1 to 'client' (table expected, got %s)", type(opts)), 2)
  end
  local what = "coldsend.client"
  check_known(what, opts, CLIENT_OPTIONS)
  local key = opts.api_key
  if key == nil then key = os.getenv("COLDSEND_API_KEY") end
  local problem = key_problem(key)
  if problem then error("coldsend.client: " .. problem, 2) end

  local self = setmetatable({}, Client)
  secrets[self] = key
  self.base_url = check_base_url(opts.base_url or os.getenv("COLDSEND_BASE_URL") or M.DEFAULT_BASE_URL)
  self.timeout = check_number(what, opts, "timeout") or 60
  self.connect_timeout = check_number(what, opts, "connect_timeout") or 10
  self.deadline = check_number(what, opts, "deadline")
  self.max_retries = check_count(what, opts, "max_retries") or 3
  self.backoff_base = check_number(what, opts, "backoff_base")
  self.backoff_cap = check_number(what, opts, "backoff_cap")
  self.max_wait = check_number(what, opts, "max_wait") or M.DEFAULT_MAX_WAIT
  if opts.ca_file ~= nil and type(opts.ca_file) ~= "string" then
    opt_error(what, "ca_file", "path string", opts.ca_file)
  end
  if opts.max_body ~= nil and (type(opts.max_body) ~= "number" or opts.max_body < 1
      or opts.max_body ~= math.floor(opts.max_body)) then
    opt_error(what, "max_body", "positive integer (bytes)", opts.max_body)
  end
  self.ca_file, self.max_body = opts.ca_file, opts.max_body
  local proxy = choose_proxy(what, self.base_url, opts.proxy)
  self.on_request = check_function(what, opts, "on_request")
  self.on_response = check_function(what, opts, "on_response")
  self.on_retry = check_function(what, opts, "on_retry")

  local nginx = in_nginx()
  -- the host's transport, clock and sleep, which never block it
  local host = (nginx and require("coldsend.transport.ngx"))
    or (in_haproxy() and require("coldsend.transport.haproxy")) or nil
  self.host = host
  -- inside nginx too, CLOCK_MONOTONIC: one clock for every worker (the
  -- rate limiter's shared rings), which a step of the wall clock, and so
  -- ngx.now(), does not move
  self.clock = check_function(what, opts, "clock") or (host and not nginx and host.now) or core.now
  self.wall_clock = check_function(what, opts, "wall_clock")
    or (host and host.now) or core.time
  self.sleep = check_function(what, opts, "sleep") or (host and host.sleep) or core.sleep
  self.random = check_function(what, opts, "random") or math.random

  local transport = check_function(what, opts, "transport")
  if transport == nil then
    if host then
      if proxy and host.proxies == false then
        -- HAProxy's httpclient connects directly: an explicit proxy is refused;
        -- the environment's proxy variables do not apply there (doc/haproxy.md)
        if opts.proxy ~= nil then
          opt_error(what, "proxy", "no proxy inside HAProxy (its httpclient connects directly)",
            type(opts.proxy) == "string" and require("coldsend.doctor").mask_url(opts.proxy) or opts.proxy)
        end
        proxy = nil
      end
      transport = host.new { pool = opts.thread_pool, max_body = opts.max_body, proxy = proxy }
    else
      transport = core.http { ca_file = opts.ca_file, max_body = opts.max_body, proxy = proxy }
    end
  end
  self.transport = transport

  if opts.rate_limit ~= false then
    if opts.rate_limit ~= nil and type(opts.rate_limit) ~= "table" then
      opt_error(what, "rate_limit", "table {per_minute=, per_hour=} or false", opts.rate_limit)
    end
    local store
    if nginx then
      store = require("coldsend.ratelimit_ngx").store(opts.shared_dict, self.clock)
    end
    self.limiter = ratelimit.new(key, opts.rate_limit or {}, { store = store, clock = self.clock })
  end
  self.user_agent = user_agent()
  return self
end

function Client:__tostring()
  return format("coldsend.client %s", self.base_url)
end

-- ---------------------------------------------------------------------
-- errors

local function new_error(fields)
  return core.error(fields)
end
--- True when v is an error object returned by a call.
M.is_error = core.is_error

--- The API's path prefix; a base_url must end with it.
M.API_PATH = "/api/public/v1"
--- The URL `make sandbox` (and `coldsend-sandbox --port 8089`) serves.
M.SANDBOX_URL = "http://127.0.0.1:8089" .. M.API_PATH

-- What a newcomer most likely got wrong, for two errors whose cause the
-- message alone does not tell: nothing listening on a loopback URL (no
-- sandbox running) and a 404 from a base_url without the API's path.
local function hint_for(err, url)
  if type(url) ~= "string" or type(err) ~= "table" then return nil end
  local host = url:match("^https?://([^/]+)") or ""
  host = host:match("^(%[[^%]]*%])") or host:match("^([^:]*)")
  if err.code == "network" and err.curl_code == 7 and is_loopback(host) then
    return "is the sandbox running? `make sandbox`"
  end
  if err.code == "not_found" and not url:find(M.API_PATH .. "/", 1, true) then
    return format("base_url should end with %s (e.g. %s); the request went to %s",
      M.API_PATH, M.SANDBOX_URL, url)
  end
end

--- Adds to err.message (and err.hint) the likely cause of a failure whose
-- message alone does not say it; returns err.
-- @param err an error object
-- @string url the URL of the request
function M._hint(err, url)
  if type(err) ~= "table" or err.hint ~= nil then return err end
  local hint = hint_for(err, url)
  if hint then
    err.hint = hint
    err.message = format("%s (%s)", tostring(err.message or err.code), hint)
  end
  return err
end

local function decorate(err, req, attempts)
  err.method = err.method or req.method
  err.url = err.url or req.url
  err.attempts = err.attempts or attempts
  -- the key and the request's passwords, wherever the server echoed them
  return M._hint(redact.error(err, req), err.url)
end

-- ---------------------------------------------------------------------
-- the request loop: every call to the server goes through here

local function copy_headers_redacted(headers)
  local out = {}
  for k, v in pairs(headers) do
    out[k] = (k:lower() == "x-api-key") and "[redacted]" or v
  end
  return out
end

local function effective(self, opts, name)
  local v = opts and opts[name]
  if v == nil then v = self[name] end
  return v
end

local function call_policy(self, opts)
  return retry.policy {
    max_retries = effective(self, opts, "max_retries"),
    base = effective(self, opts, "backoff_base"),
    cap = effective(self, opts, "backoff_cap"),
    deadline = effective(self, opts, "deadline"),
  }
end

-- The headers of every request plus those of req (a Content-Type). The two
-- usual sets are made once per client; the transports do not change them.
-- They hold the key, so they live beside it, out of the client's reach.
local header_cache = setmetatable({}, { __mode = "k" })

local function request_headers(self, extra)
  local ctype = extra and extra["Content-Type"]
  local only_ctype = ctype == "application/json" and next(extra, next(extra)) == nil
  local cache = header_cache[self]
  if not cache then
    cache = {}
    header_cache[self] = cache
  end
  if (extra == nil or next(extra) == nil) and cache.plain then return cache.plain end
  if only_ctype and cache.json then return cache.json end
  local headers = {}
  for k, v in pairs(extra or {}) do headers[k] = v end
  headers["X-API-Key"] = secrets[self]
  headers["Accept"] = "application/json"
  headers["User-Agent"] = self.user_agent
  if extra == nil or next(extra) == nil then
    cache.plain = headers
  elseif only_ctype then
    cache.json = headers
  end
  return headers
end

-- A wait longer than max_wait is not slept through: the call returns
-- instead, with err.retry_after saying how long the wait would be.
local function too_long(err, wait, max_wait, why)
  err.retry_after = wait
  err.message = format("%s (%s %s s, more than max_wait %g s: not waiting)", err.message, why,
    format("%.14g", wait), max_wait)
  return err
end

--- Sends req ({method, url, headers, body, multipart}) with retries.
-- Returns the decoded body (a table) and the raw response, or nil, err.
-- err.ambiguous: a write that may have been acted on was not re-sent (the
-- caller checks, coldsend.writes); err.maybe_done: an earlier try of this
-- call may have been acted on (a retried launch or delete that fails may
-- have done its work the first time).
function Client:_send(req, opts)
  if self.host then
    -- fail here, naming the phase, before a limiter wait could try to sleep
    local ok, why = self.host.check_phase()
    if not ok then error(why, 2) end
  end
  local headers = request_headers(self, req.headers)
  -- the common call has no options: its policy is made once per client
  local policy
  if opts == nil then
    policy = self._policy
    if not policy then
      policy = call_policy(self, nil)
      self._policy = policy
    end
  else
    policy = call_policy(self, opts)
  end
  local timeout, connect_timeout, max_wait = self.timeout, self.connect_timeout, self.max_wait
  if opts ~= nil then
    timeout = effective(self, opts, "timeout")
    connect_timeout = effective(self, opts, "connect_timeout")
    max_wait = effective(self, opts, "max_wait")
  end
  local clock = self.clock
  local deadline_at = opts and opts._deadline_at or (policy.deadline and clock() + policy.deadline)
  local limiter = self.limiter
  local write = req.method ~= "GET"
  -- the libcurl transport lower-cases header names: the limiter then
  -- searches none case-insensitively (known once per client)
  local lowered = self._lowered
  if lowered == nil then
    lowered = core.is_http(self.transport)
    self._lowered = lowered
  end

  local attempt, err, maybe_done = 0, nil, false
  local limited = 0 -- seconds this call has waited for the limiter
  while true do
    attempt = attempt + 1

    -- wait for the client-side rate limiter, but never past the deadline
    -- or max_wait
    local ticket
    if limiter then
      local wait
      wait, ticket = limiter:acquire(clock(), timeout)
      while wait > 0 do
        local late = deadline_at and clock() + wait > deadline_at
        if late or limited + wait > max_wait then
          err = err or new_error { code = "rate_limited",
            message = "client-side rate limit: the key's request budget is spent" }
          err.code = "rate_limited"
          err.maybe_done = maybe_done or nil
          if late then
            err.retry_after = wait
            err.message = format("%s (next request allowed in %.1f s, after the deadline)",
              err.message, wait)
          else
            too_long(err, wait, max_wait, limited > 0 and format("already waited %.14g s, next"
              .. " request allowed in", limited) or "next request allowed in")
          end
          return nil, decorate(err, req, attempt - 1)
        end
        limited = limited + wait
        self.sleep(wait)
        wait, ticket = limiter:acquire(clock(), timeout)
      end
    end

    local t = timeout
    if deadline_at then
      local left = deadline_at - clock()
      if left <= 0 then
        err = err or new_error { code = "timeout", message = "deadline reached before sending" }
        err.deadline = true
        err.maybe_done = maybe_done or nil
        return nil, decorate(err, req, attempt - 1)
      end
      if left < t then t = left end
    end
    -- req was built for this call alone: it is completed in place
    local treq = req
    treq.headers, treq.timeout = headers, t
    treq.connect_timeout = connect_timeout < t and connect_timeout or t
    treq.ca_file, treq.max_body = self.ca_file, self.max_body
    if self.on_request then
      self.on_request(redact.event({ method = req.method, url = req.url, attempt = attempt,
        headers = copy_headers_redacted(headers), body = req.body }, treq))
    end
    -- (read only for the hook that reports the time taken)
    local sent_at = self.on_response and clock()
    local res, msg, code, info = self.transport(treq)
    local outcome, data
    if res and (type(res) ~= "table" or (res.headers ~= nil and type(res.headers) ~= "table")) then
      -- a transport's answer the loop cannot read: what it was, not a crash
      res, msg, code, info = nil, format("the transport answered %s (a table {status=, headers=, "
        .. "body=} expected)", type(res) == "table" and "headers of type " .. type(res.headers)
        or "a " .. type(res)), "protocol", { sent = true }
    end
    if res then
      local rh = res.headers
      if self.on_response then
        self.on_response(redact.event({ method = req.method, url = req.url, attempt = attempt,
          status = res.status, headers = rh, elapsed = clock() - sent_at }, treq))
      end
      -- a failure's stated wait (err.retry_after) is read on the client's clock
      local wall = (res.status < 200 or res.status > 299 or limiter) and self.wall_clock() or nil
      data, err = core.parse_response(res.status, rh, res.body, wall)
      if limiter then
        -- the server's stated wait holds the key's budget on a 429 or a
        -- spent window (a 503's Retry-After is the retry loop's alone)
        local stated = nil
        if res.status == 429 then
          stated = core.server_wait(429, rh, err and err.message, wall)
        elseif rh and rh["x-ratelimit-remaining"] == "0" then
          stated = core.server_wait(res.status, rh, nil, wall)
        end
        while not limiter:done(ticket, clock(), rh, wall, stated, lowered) do self.sleep(0.001) end
      end
      if data then return data, res end
      outcome = { status = res.status, headers = rh, code = err.code }
    else
      while limiter and not limiter:done(ticket, clock()) do self.sleep(0.001) end
      err = new_error { code = code or "network", message = msg or "transport failed",
        curl_code = info and info.curl_code }
      outcome = { code = code, info = info or {} }
      if self.on_response then
        self.on_response(redact.event({ method = req.method, url = req.url, attempt = attempt,
          error = code, message = msg, elapsed = clock() - sent_at }, treq))
      end
    end
    err.maybe_done = maybe_done or nil

    local again, reason, ambiguous = retry.decide(req.method, outcome, attempt, policy)
    if ambiguous then
      err.ambiguous = true
      err.message = err.message .. " (the request may have reached the server; not re-sent)"
    end
    if not again then return nil, decorate(err, req, attempt) end
    -- this try may have done the write (a 5xx, or a failure after sending)
    -- unless the server refused it first or it never left
    if write and res and res.status ~= 429 then maybe_done = true
    elseif write and not res and not (info and info.sent == false) then maybe_done = true end

    local delay = retry.delay(attempt, policy, err.retry_after, self.random)
    -- a server asking for more than max_wait is not waited for; the
    -- client's own backoff is only cut to it
    if not err.retry_after and delay > max_wait then delay = max_wait end
    if delay > max_wait then
      return nil, decorate(too_long(err, delay, max_wait, "the server asks to wait"), req, attempt)
    end
    if deadline_at and clock() + delay >= deadline_at then
      err.deadline = true
      err.message = format("%s (deadline of %g s reached after %d attempts)",
        err.message, policy.deadline, attempt)
      return nil, decorate(err, req, attempt)
    end
    if self.on_retry then
      self.on_retry(redact.event({ method = req.method, url = req.url, attempt = attempt,
        delay = delay, reason = reason, code = err.code, status = err.status }, req))
    end
    -- ngx.sleep(0) on Debian's nginx only logs a warning and spins
    if delay > 0 then self.sleep(delay) end
  end
end

-- ---------------------------------------------------------------------
-- checks shared by the calls

local function check_id(what, id, argn)
  if not core.is_uuid(id) then
    local shown = type(id) == "string" and format("%q", id) or type(id)
    error(format("bad argument #%d to '%s' (UUID expected, got %s)", argn, what, shown), 3)
  end
  return id
end

local function protocol_error(req, what, got)
  return decorate(new_error { code = "protocol",
    message = format("expected %s in the response, got %s", what, got) }, req, 1)
end

local function expect_table(req, data, field, what)
  local v = data[field]
  if type(v) ~= "table" then
    return nil, protocol_error(req, format("'%s' (%s)", field, what), type(v))
  end
  return v
end

-- Calls the server and returns the decoded body or nil, err.
local function call(self, method, path, body, query, opts)
  check_call_options(opts)
  local req = core.build_request(self.base_url, method, path, body, query)
  return self:_send(req, opts)
end

-- ---------------------------------------------------------------------
-- campaigns

local methods = core.campaign_methods

local function client_of(c)
  local client = owners[c]
  if not client then
    error("campaign has no client: make it with cs:campaign(id), cs:get_campaign(id) "
      .. "or cs:create_campaign(fields)", 3)
  end
  return client
end

local function adopt(self, c)
  owners[c] = self
  return c
end

-- The `invalid` error of validate(), save() and launch(): problems is the
-- list {field=, message=} of every rule broken; the message lists them.
local function invalid_error(problems, method, url)
  local lines = {}
  for i, p in ipairs(problems) do
    lines[i] = format("  %s: %s", tostring(p.field), tostring(p.message))
  end
  return new_error {
    code = "invalid", problems = problems, method = method, url = url, attempts = 0,
    message = format("campaign is not valid: %d problem%s\n%s", #problems,
      #problems == 1 and "" or "s", concat(lines, "\n")),
  }
end

local core_validate = methods.validate

--- Checks the rules that span fields. Returns true, or nil, err: an
-- `invalid` error whose `problems` lists every problem ({field=, message=})
-- and whose text names each.
function methods.validate(c)
  local ok, problems = core_validate(c)
  if ok then return true end
  return nil, invalid_error(problems)
end

-- A handle that save() has not created yet cannot be refreshed, deleted,
-- paused or resumed: misuse, raised at the caller's line as add_lead does.
local function need_id(c, what)
  if c.id == nil then raise(format("%s: the campaign has no id yet (save it first)", what)) end
end

local function run_campaign_op(c, op, opts, needs_validation)
  local client = client_of(c)
  check_call_options(opts)
  if op == "get" or op == "delete" then need_id(c, op == "get" and "refresh" or op) end
  if needs_validation then
    local ok, err = c:validate()
    if not ok then return nil, err end
  end
  local req = c:_request(op, client.base_url)
  -- a launch re-sent by libcurl on a dead keep-alive connection would look
  -- like a refusal; on a new connection only this loop re-sends it
  if op == "launch" then req.fresh = true end
  local data, err = client:_send(req, opts)
  if data and op ~= "delete" and next(data) == nil then -- an empty 200 is not a campaign
    return nil, protocol_error(req, "a campaign object", "an empty body"), req
  end
  return data, err, req
end

--- Creates a new campaign handle (no I/O). With no id, a local
-- definition that `save` creates on the server.
function Client:campaign(id)
  if id ~= nil then check_id("campaign", id, 1) end
  return adopt(self, core.campaign(id))
end

-- Sets every field of a definition on c. A bad value raises at the
-- caller's line (level), as an assignment there would, not here.
local function set_fields(c, fields, level)
  for k, v in pairs(fields) do
    local ok, why = pcall(function() c[k] = v end)
    if not ok then
      if type(why) == "string" then why = why:gsub("^[^:\n]*:%d+: ", "", 1) end
      error(why, level + 1)
    end
  end
end

--- Creates a campaign and returns its handle, in DRAFT. The create-schema
-- fields go in the POST /campaigns, the rest (variants, follow-ups,
-- inboxes, mapping) in one PUT after it (coldsend.writes.create_campaign,
-- the one create routine). Every field is checked first, so nothing is
-- created when any is bad.
function Client:create_campaign(fields, opts)
  if type(fields) ~= "table" then
    error(format("bad argument #1 to 'create_campaign' (table expected, got %s)", type(fields)), 2)
  end
  check_call_options(opts)
  local c = adopt(self, core.campaign())
  set_fields(c, fields, 2)
  return writes.create_campaign(self, c, opts)
end

--- Fetches a campaign (GET /campaigns/{id}).
function Client:get_campaign(id, opts)
  check_id("get_campaign", id, 1)
  local c = adopt(self, core.campaign(id))
  local ok, err = c:refresh(opts)
  if not ok then return nil, err end
  return c
end

local LIST_QUERY = {
  page = "integer", limit = "integer", status = "string", search = "string",
  sort_by = "string", sort_order = "string", days = "integer",
}
local STATUSES = { DRAFT = true, ACTIVE = true, PAUSED = true, COMPLETED = true, FAILED = true }

local function check_list_query(what, query, allowed)
  if query == nil then return {} end
  if type(query) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", what, type(query)), 3)
  end
  local q = {}
  for k, v in pairs(query) do
    local t = (allowed or LIST_QUERY)[k]
    if not t then error(format("unknown query field '%s' for %s", tostring(k), what), 3) end
    if t == "integer" and (type(v) ~= "number" or v ~= math.floor(v) or v < 1) then
      error(format("bad value for '%s' (integer >= 1 expected, got %s)", k,
        v ~= v and "nan" or tostring(v)), 3)
    elseif t == "string" and type(v) ~= "string" then
      error(format("bad value for '%s' (string expected, got %s)", k, type(v)), 3)
    end
    q[k] = v
  end
  if q.limit and q.limit > 100 then
    error(format("bad value for 'limit' (integer 1..100 expected, got %s)", tostring(q.limit)), 3)
  end
  if q.status and not STATUSES[q.status] then
    error(format("bad value for 'status' (DRAFT, ACTIVE, PAUSED, COMPLETED or FAILED expected, got %q)",
      q.status), 3)
  end
  if q.sort_order and q.sort_order ~= "asc" and q.sort_order ~= "desc" then
    error(format("bad value for 'sort_order' (asc or desc expected, got %q)", q.sort_order), 3)
  end
  return q
end

local function list_page(self, query, opts)
  local req = core.build_request(self.base_url, "GET", "/campaigns", nil, query)
  local data, err = self:_send(req, opts)
  if not data then return nil, err end
  local items, perr = expect_table(req, data, "campaigns", "array")
  if not items then return nil, perr end
  local page
  page, perr = expect_table(req, data, "pagination", "object")
  if not page then return nil, perr end
  return data
end

--- One page of campaigns: {campaigns = {...}, pagination = {...}}.
function Client:list_campaigns(query, opts)
  check_call_options(opts)
  return list_page(self, check_list_query("list_campaigns", query), opts)
end

--- Iterates over every campaign of every page; raises the error object.
function Client:each_campaign(query, opts)
  check_call_options(opts)
  local q = check_list_query("each_campaign", query)
  q.page = q.page or 1
  q.limit = q.limit or 100
  local items, i, done = nil, 0, false
  local seen_first = {}
  return function()
    while true do
      if items and i < #items then
        i = i + 1
        return items[i]
      end
      if done then return nil end
      local data, err = list_page(self, q, opts)
      if not data then error(err, 0) end
      items, i = data.campaigns, 0
      local p = data.pagination
      local first = items[1] and items[1].campaign_id
      if (p.page ~= nil and p.page ~= q.page) or (first and seen_first[first]) then
        error(decorate(new_error { code = "protocol",
          message = format("page %d repeats an earlier page; stopping instead of looping", q.page) },
          { method = "GET", url = self.base_url .. "/campaigns" }, 1), 0)
      end
      if first then seen_first[first] = true end
      if p.has_next == true and #items > 0 then
        q.page = q.page + 1
      else
        done = true
      end
    end
  end
end

local METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true }

-- What is wrong with a path for cs:request, or nil. The path must stay under
-- the base URL whatever the server or a proxy decodes: dot segments are
-- looked for after percent-decoding (%2e%2e, %2F) and with path parameters
-- (..;x); the query goes in the query argument, so ? and # are refused.
local function path_problem(path)
  if type(path) ~= "string" then return "a string" end
  if path:sub(1, 1) ~= "/" then return "it must start with /" end
  if path:find("[?#]") then return "no ? or # (pass the query as argument #4)" end
  if path:find("[%s%c\\]") or path:find("://", 1, true) then
    return "no spaces, control characters, backslashes or URLs"
  end
  if path:gsub("%%%x%x", ""):find("%", 1, true) then
    return "every % must start an escape %XX"
  end
  -- decoded until nothing changes: a front end may decode twice (%252e)
  local decoded, n = path, 1
  while n > 0 do
    decoded, n = decoded:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  if decoded:find("[%c\\]") then
    return "no encoded control characters or backslashes"
  end
  for seg in (decoded .. "/"):gmatch("/([^/]*)") do
    local name = seg:match("^([^;]*)")
    if name == "." or name == ".." then return "no . or .. segments, even encoded" end
  end
end

--- Any other call: cs:request("GET", "/domains", nil, {page = 2}).
function Client:request(method, path, body, query, opts)
  if not METHODS[method] then
    error(format("bad argument #1 to 'request' (GET, POST, PUT, DELETE or PATCH expected, got %s)",
      tostring(method)), 2)
  end
  local why = path_problem(path)
  if why then
    error(format("bad argument #2 to 'request' (path like /campaigns expected, %s; got %s)", why,
      type(path) == "string" and format("%q", path) or type(path)), 2)
  end
  if body ~= nil and type(body) ~= "table" then
    error(format("bad argument #3 to 'request' (table expected, got %s)", type(body)), 2)
  end
  if query ~= nil and type(query) ~= "table" then
    error(format("bad argument #4 to 'request' (table expected, got %s)", type(query)), 2)
  end
  return call(self, method, path, body, query, opts)
end

-- ---------------------------------------------------------------------
-- campaign methods that talk to the server (installed into the C type)

--- Sends the pending changes (PUT); a local definition (no id yet) is
-- created by the one create routine (coldsend.writes.create_campaign).
function methods.save(c, opts)
  if not c.id then
    local client = client_of(c)
    check_call_options(opts)
    return writes.create_campaign(client, c, opts)
  end
  if not c:_has_changes() then return c end
  local data, err = run_campaign_op(c, "save", opts, true)
  if not data then return nil, err end
  c:_clear_dirty()
  c:_apply(data)
  return c
end

local function not_ready_error(missing, req, attempts, status)
  local list = {}
  for i, m in ipairs(missing or {}) do list[i] = tostring(m) end
  return new_error {
    code = "not_ready", missing_requirements = list, status = status,
    method = req.method, url = req.url, attempts = attempts,
    message = #list > 0 and ("campaign is missing " .. concat(list, ", "))
      or "campaign is not ready to launch",
  }
end

--- Sends the pending changes with launch = true. Succeeds only when the
-- campaign is ACTIVE afterwards; an unready campaign gives a not_ready error
-- whether the server says so with a 200 body or with an error status.
function methods.launch(c, opts)
  local changes = c:changes()
  local data, err, req = run_campaign_op(c, "launch", opts, true)
  if not data then
    -- a re-sent launch refused because its first try launched: done
    data = writes.reconcile_launch(client_of(c), c, err, changes, opts)
  end
  if not data then
    if err and type(err.missing_requirements) == "table" then
      return nil, not_ready_error(err.missing_requirements, req, err.attempts, err.status)
    end
    if err and err.code == "bad_request" and type(err.message) == "string"
        and err.message:lower():find("requirement") then
      return nil, not_ready_error({}, req, err.attempts, err.status)
    end
    return nil, err
  end
  c:_clear_dirty()
  c:_apply(data)
  if data.is_launch_ready == false or (data.status ~= nil and data.status ~= "ACTIVE") then
    local missing = type(data.missing_requirements) == "table" and data.missing_requirements or {}
    return nil, not_ready_error(missing, req, 1, 200)
  end
  return c
end

--- Reloads the campaign from the server, dropping local changes.
function methods.refresh(c, opts)
  local data, err = run_campaign_op(c, "get", opts, false)
  if not data then return nil, err end
  c:_discard()
  c:_apply(data)
  c:_clear_dirty()
  return c
end

local function state_op(op)
  return function(c, opts)
    local client = client_of(c)
    check_call_options(opts)
    need_id(c, op)
    local data, err = writes.state_change(client, c, op, opts)
    if not data then return nil, err end
    if next(data) == nil then -- an empty 200 is not a campaign
      return nil, protocol_error({ method = "POST", url = client.base_url .. "/campaigns/" .. c.id },
        "a campaign object", "an empty body")
    end
    c:_apply(data)
    return c
  end
end

--- Pauses an ACTIVE campaign.
methods.pause = state_op("pause")
--- Resumes a PAUSED campaign.
methods.resume = state_op("resume")

--- Deletes the campaign (DRAFT or PAUSED only). A re-sent delete answered
-- 404 because its first try deleted it succeeds.
function methods.delete(c, opts)
  local data, err = run_campaign_op(c, "delete", opts, false)
  if not data and not writes.reconcile_delete(err) then return nil, err end
  return true
end

--- Uploads a CSV of leads (see doc/leads.md).
function methods.upload_leads(c, opts)
  return require("coldsend.leads").upload(client_of(c), c, opts)
end

--- Adds one lead (POST /campaigns/{id}/leads/manual).
function methods.add_lead(c, lead, opts)
  check_call_options(opts)
  return require("coldsend.leads").add(client_of(c), c, lead, opts)
end

-- c:changes() is a plain table (the C core's copy) that prints, in the
-- REPL or with tostring, as the JSON body the next save sends.
local Changes = { __name = "coldsend.changes" }
function Changes.__tostring(t)
  local ok, text = pcall(require("coldsend.json").encode_sorted, t)
  return ok and text or "coldsend.changes (" .. tostring(text) .. ")"
end
local core_changes = methods.changes

--- The table the next save sends: only the changed fields. It prints as
-- the JSON body it becomes (keys sorted).
function methods.changes(c)
  return setmetatable(core_changes(c), Changes)
end

--- Iterates over the fields that are set, in a stable order, like
-- pairs(c) on Lua 5.4 (LuaJIT ignores __pairs): for name, value in c:fields().
function methods.fields(c)
  return getmetatable(c).__pairs(c)
end

--- Field-by-field differences between this campaign and another campaign
-- or definition table (see coldsend.plan).
function methods.diff(c, other)
  return require("coldsend.plan").diff(c, other)
end

--- What applying a definition (a table of campaign fields, with `id` for an
-- existing campaign) would change on the server (one GET, no writes).
function Client:plan(definition, opts)
  return require("coldsend.plan").plan(self, definition, opts)
end

--- REPL help: coldsend.help() lists what there is; coldsend.help("name")
-- prints a field's rule and default, or a function's description.
function M.help(topic)
  return require("coldsend.help").help(topic)
end

-- ---------------------------------------------------------------------
-- leads, inboxes, analytics

--- GET /campaigns/{id}/leads/{lead_id}
function Client:get_lead(campaign_id, lead_id, opts)
  check_id("get_lead", campaign_id, 1)
  check_id("get_lead", lead_id, 2)
  return call(self, "GET", "/campaigns/" .. campaign_id .. "/leads/" .. lead_id, nil, nil, opts)
end

local LEAD_UPDATE = { first_name = true, last_name = true, company = true, custom_fields = true }

--- PUT /campaigns/{id}/leads/{lead_id}: first_name, last_name, company,
-- custom_fields (merge-patch: a key set to coldsend.null is removed).
function Client:update_lead(campaign_id, lead_id, fields, opts)
  check_id("update_lead", campaign_id, 1)
  check_id("update_lead", lead_id, 2)
  if type(fields) ~= "table" then
    error(format("bad argument #3 to 'update_lead' (table expected, got %s)", type(fields)), 2)
  end
  for k, v in pairs(fields) do
    if not LEAD_UPDATE[k] then
      error(format("no field '%s' in lead update (first_name, last_name, company, "
        .. "custom_fields expected)", tostring(k)), 2)
    end
    if k == "custom_fields" then
      local why, kind = require("coldsend.leads").custom_fields_problem(v, true)
      if kind == "type" then error(why, 2) end
    elseif type(v) ~= "string" or #v > 255 or v:find("%z") then
      error(format("bad value for '%s' (string of 0..255 characters expected, got %s)",
        k, type(v) == "string" and format("%q", v:sub(1, 40)) or type(v)), 2)
    end
  end
  -- a bad datum (invalid UTF-8, a number that would not go out exactly)
  local problem = require("coldsend.leads").lead_problem(fields)
  if problem then
    return nil, new_error { code = "invalid", message = problem.message, problems = { problem },
      attempts = 0 }
  end
  return call(self, "PUT", "/campaigns/" .. campaign_id .. "/leads/" .. lead_id, fields, nil, opts)
end

--- JSON null, to clear a key in update_lead's custom_fields.
M.null = require("cjson").null

--- Checks the setup and says what to do: see coldsend.doctor.
function M.doctor(opts) return require("coldsend.doctor").doctor(opts) end

local INBOX_TYPES = { GOOGLE_WORKSPACE = 2000, OUTLOOK_365 = 10000, CUSTOM_SMTP = 100000 }
local INBOX_FIELDS = {
  email_address = { "string", 5, 255, true }, display_name = { "string", 1, 255, true },
  inbox_type = { "enum", nil, nil, true }, smtp_host = { "string", 1, 255, true },
  smtp_port = { "port", 1, 65535, true }, smtp_username = { "string", 1, 255, true },
  smtp_password = { "secret", 1, 1024, true }, imap_host = { "string", 1, 255, true },
  imap_port = { "port", 1, 65535, true }, imap_username = { "string", 1, 255, true },
  imap_password = { "secret", 1, 1024, true }, daily_limit = { "port", 1, 100000, false },
  smtp_use_tls = { "boolean" }, imap_use_ssl = { "boolean" },
}

local function check_inbox(fields)
  for k, v in pairs(fields) do
    local rule = INBOX_FIELDS[k]
    if not rule then error(format("no field '%s' in SMTP inbox", tostring(k)), 3) end
    local kind, min, max = rule[1], rule[2], rule[3]
    local bad
    if kind == "string" or kind == "secret" then
      if type(v) ~= "string" or #v < min or #v > max or v:find("%z") then
        bad = format("string of %d..%d characters expected", min, max)
      end
    elseif kind == "port" then
      if type(v) ~= "number" or v ~= math.floor(v) or v < min or v > max then
        bad = format("integer %d..%d expected", min, max)
      end
    elseif kind == "boolean" then
      if type(v) ~= "boolean" then bad = "boolean expected" end
    elseif kind == "enum" then
      if not INBOX_TYPES[v] then bad = "GOOGLE_WORKSPACE, OUTLOOK_365 or CUSTOM_SMTP expected" end
    end
    if bad then
      -- passwords are secrets too: their value is never shown
      local shown = kind == "secret" and type(v) or shown_value(v)
      error(format("bad value for '%s' (%s, got %s)", k, bad, shown), 3)
    end
  end
  for k, rule in pairs(INBOX_FIELDS) do
    if rule[4] and fields[k] == nil then
      error(format("missing field '%s' in SMTP inbox", k), 3)
    end
  end
  if not fields.email_address:find("^[^@%s]+@[^@%s]+%.[^@%s]+$") then
    error(format("bad value for 'email_address' (an email address expected, got %q)",
      fields.email_address), 3)
  end
  local max = INBOX_TYPES[fields.inbox_type]
  if fields.daily_limit and fields.daily_limit > max then
    error(format("bad value for 'daily_limit' (integer 1..%d expected for %s, got %d)",
      max, fields.inbox_type, fields.daily_limit), 3)
  end
end

--- Adds an SMTP inbox (POST /sender-accounts/smtp); returns the server's
-- body ({inbox_id=, ...}).
function Client:add_smtp_inbox(fields, opts)
  if type(fields) ~= "table" then
    error(format("bad argument #1 to 'add_smtp_inbox' (table expected, got %s)", type(fields)), 2)
  end
  check_inbox(fields)
  check_call_options(opts)
  local data, err = writes.add_inbox(self, fields, opts)
  if data and not core.is_uuid(data.inbox_id) then
    return nil, protocol_error({ method = "POST", url = self.base_url .. "/sender-accounts/smtp" },
      "'inbox_id' (UUID)", tostring(data.inbox_id))
  end
  return data, err
end

--- Lists inboxes (GET /sender-accounts).
local INBOX_QUERY = { page = "integer", limit = "integer" }

function Client:list_inboxes(query, opts)
  local q = check_list_query("list_inboxes", query, INBOX_QUERY)
  return call(self, "GET", "/sender-accounts", nil, q, opts)
end

-- True for a real calendar date YYYY-MM-DD (2024-02-29 yes, 2023-02-29 no).
local function real_date(v)
  local y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return false end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if y < 1 or m < 1 or m > 12 or d < 1 then return false end
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  local days = ({ 31, leap and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
  return d <= days
end

local function check_dates(what, query, allowed)
  local q = {}
  if query ~= nil and type(query) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", what, type(query)), 3)
  end
  for k, v in pairs(query or {}) do
    if not allowed[k] then error(format("unknown query field '%s' for %s", tostring(k), what), 3) end
    if k ~= "status" and (type(v) ~= "string" or not real_date(v)) then
      error(format("bad value for '%s' (a real date YYYY-MM-DD expected, got %s)", k,
        type(v) == "string" and format("%q", v) or type(v)), 3)
    end
    if k == "status" and not STATUSES[v] then
      error(format("bad value for 'status' (DRAFT, ACTIVE, PAUSED, COMPLETED or FAILED expected, got %s)",
        tostring(v)), 3)
    end
    q[k] = v
  end
  return q
end

--- Campaign analytics (GET /analytics/campaigns): {status=, from_date=, to_date=}.
function Client:campaign_analytics(query, opts)
  local q = check_dates("campaign_analytics", query,
    { status = true, from_date = true, to_date = true })
  return call(self, "GET", "/analytics/campaigns", nil, q, opts)
end

--- Daily activity (GET /analytics/campaigns/timeline): {from_date=, to_date=}.
function Client:timeline(query, opts)
  local q = check_dates("timeline", query, { from_date = true, to_date = true })
  return call(self, "GET", "/analytics/campaigns/timeline", nil, q, opts)
end

return M
