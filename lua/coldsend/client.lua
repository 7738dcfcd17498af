--- coldsend.client: the client object and its options (the key, the base
-- URL, the proxy, the transport, the clocks, the rate limiter). The request
-- loop, the campaign methods and the other resources add their methods to
-- `Client`; the key itself is kept by coldsend.request_loop, out of reach.
-- @module coldsend.client
local core = require "coldsend.core"
local ratelimit = require "coldsend.ratelimit"
local options = require "coldsend.options"
local endpoint = require "coldsend.endpoint"
local redact = require "coldsend.redact"
local mask_url = redact.credentials

local M = {}

local type, setmetatable = type, setmetatable
local format = string.format
local raise, opt_error = options.raise, options.opt_error

local Client = {}
Client.__index = Client
Client.__name = "coldsend.client"
M.Client = Client

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

local is_loopback = endpoint.is_loopback
M.is_loopback = is_loopback

-- Returns the normalised base URL (no trailing slash) or raises.
local function check_base_url(url, key)
  if type(url) ~= "string" then
    raise(format("bad option 'base_url' for coldsend.client (URL string expected, got %s)", type(url)))
  end
  local u, _, rule = endpoint.parse_url(url)
  if not u then
    -- a URL with credentials is not repeated, not even in an error; nor
    -- is the key (or a secret query field) pasted into one
    local secrets = {}
    redact.add(secrets, key, true)
    local got = rule:find("credentials", 1, true) and "" or format(", got %q", redact.url(url, secrets))
    raise(format("bad option 'base_url' for coldsend.client (%s%s)", rule, got))
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

--- The Lua running this: LuaJIT's version, else _VERSION (the user agent
-- and `coldsend doctor` name it).
function M.lua_version()
  return (rawget(_G, "jit") and jit.version) or _VERSION
end

local function user_agent()
  return format("lua-coldsend/%s %s %s", core._VERSION, core.curl_version(), M.lua_version())
end

-- ---------------------------------------------------------------------
-- the client

-- The client's options and their rules ("any": checked where used).
local CLIENT_OPTIONS = {
  api_key = "any", base_url = "any", proxy = "any", rate_limit = "any",
  thread_pool = "any", shared_dict = "any",
  timeout = "seconds", connect_timeout = "seconds", deadline = "seconds",
  backoff_base = "seconds", backoff_cap = "seconds", max_wait = "seconds",
  max_retries = "retries", ca_file = "path", max_body = "bytes",
  on_request = "function", on_response = "function", on_retry = "function",
  transport = "function", clock = "function", wall_clock = "function",
  sleep = "function", random = "function",
}

-- The proxy the transport goes through, or nil. The key never crosses a
-- proxy in cleartext: the environment's (https_proxy, else all_proxy) only
-- for an https:// base URL, as a CONNECT tunnel, and never for loopback
-- (coldsend.endpoint's proxy_for, the rule `coldsend doctor` reports);
-- http_proxy is never read. The option `proxy` (a URL, or false for none)
-- chooses instead of the environment, and only for https://.
local PROXY_SCHEMES = { http = true, https = true, socks5 = true, socks5h = true }
local function choose_proxy(what, base_url, proxy)
  local u = assert(endpoint.parse_url(base_url))
  local from = "option 'proxy'"
  if proxy == false then return nil end
  if proxy == nil then
    local found, _, name = endpoint.proxy_for(u, os.getenv)
    proxy = found
    if proxy == nil then return nil end
    from = "the proxy in $" .. name
  end
  local shown = type(proxy) == "string" and mask_url(proxy) or proxy
  local rule = "proxy URL http://host:port (also https://, socks5://, socks5h://) or false"
  if type(proxy) ~= "string" then opt_error(what, "proxy", rule, proxy) end
  local url = proxy:match("^%a[%w+.-]*://") and proxy or ("http://" .. proxy)
  local scheme = url:match("^(%a[%w+.-]*)://[^/?#]+/?$")
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
function M.new(opts)
  local facade = require "coldsend" -- the defaults a user may read there
  opts = opts or {}
  if type(opts) ~= "table" then
    raise(format("bad argument #1 to 'client' (table expected, got %s)", type(opts)))
  end
  local what = "coldsend.client"
  options.check_known(what, opts, CLIENT_OPTIONS)
  local key = opts.api_key
  if key == nil then key = os.getenv("COLDSEND_API_KEY") end
  local problem = key_problem(key)
  if problem then raise("coldsend.client: " .. problem) end

  local self = setmetatable({}, Client)
  require("coldsend.request_loop").keep_key(self, key)
  self.base_url = check_base_url(opts.base_url or os.getenv("COLDSEND_BASE_URL")
    or facade.DEFAULT_BASE_URL, key)
  options.check_values(what, opts, CLIENT_OPTIONS)
  self.timeout = opts.timeout or 60
  self.connect_timeout = opts.connect_timeout or 10
  self.deadline = opts.deadline
  self.max_retries = opts.max_retries or 3
  self.backoff_base, self.backoff_cap = opts.backoff_base, opts.backoff_cap
  self.max_wait = opts.max_wait or facade.DEFAULT_MAX_WAIT
  self.ca_file, self.max_body = opts.ca_file, opts.max_body
  local proxy = choose_proxy(what, self.base_url, opts.proxy)
  self.on_request, self.on_response, self.on_retry = opts.on_request, opts.on_response, opts.on_retry

  local nginx = in_nginx()
  -- the host's transport, clock and sleep, which never block it
  local host = (nginx and require("coldsend.transport.ngx"))
    or (in_haproxy() and require("coldsend.transport.haproxy")) or nil
  self.host = host
  -- inside nginx too, CLOCK_MONOTONIC: one clock for every worker (the
  -- rate limiter's shared rings), which a step of the wall clock, and so
  -- ngx.now(), does not move
  self.clock = opts.clock or (host and not nginx and host.now) or core.now
  self.wall_clock = opts.wall_clock
    or (host and host.now) or core.time
  self.sleep = opts.sleep or (host and host.sleep) or core.sleep
  for _, name in ipairs { "clock", "wall_clock" } do
    -- one that is no clock (os.date, one giving a table or nil) failed at
    -- the first request, in the limiter, naming neither option nor line
    local now = opts[name] and opts[name]()
    if opts[name] and not (type(now) == "number" and now == now) then
      opt_error(what, name, "function returning seconds (a number)", now)
    end
  end
  self.random = opts.random or math.random

  local transport = opts.transport
  if transport == nil then
    if host then
      if proxy and host.proxies == false then
        -- HAProxy's httpclient connects directly: an explicit proxy is refused;
        -- the environment's proxy variables do not apply there (doc/haproxy.md)
        if opts.proxy ~= nil then
          opt_error(what, "proxy", "no proxy inside HAProxy (its httpclient connects directly)",
            type(opts.proxy) == "string" and mask_url(opts.proxy) or opts.proxy)
        end
        proxy = nil
      end
      transport = host.new { pool = opts.thread_pool, max_body = opts.max_body, proxy = proxy }
    else
      -- a CA file that cannot be read: raised at the caller's line
      local ok, t = pcall(core.http, { ca_file = opts.ca_file, max_body = opts.max_body, proxy = proxy })
      if not ok then raise(redact.string((tostring(t):gsub("^[^\n]-:%d+: ", "", 1)))) end
      transport = t
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

return M
