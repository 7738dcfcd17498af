--- coldsend.request_loop: every call to the server goes through
-- `Client:_send`: the headers (the key lives here, nowhere else), the
-- client-side rate limit, the deadline, the transport, the hooks, the
-- retries and their waits, and the error's method, URL, attempts and hint.
-- @module coldsend.request_loop
local core = require "coldsend.core"
local retry = require "coldsend.retry"
local redact = require "coldsend.redact"
local options = require "coldsend.options"
local Client = require("coldsend.client").Client

local M = {}

local type, pairs, tostring, tonumber, setmetatable, error = type, pairs, tostring, tonumber, setmetatable, error
local format = string.format
local check_call_options = options.check_call_options
local is_loopback = require("coldsend.client").is_loopback

-- The key of each client lives here, not in the client table, so that
-- pairs(client), a debugger dump or an error message cannot show it.
local secrets = setmetatable({}, { __mode = "k" })

-- Keeps a new client's key (once: a client's key is never replaced).
function M.keep_key(client, key)
  if secrets[client] ~= nil then error("coldsend.client: the key is already set", 2) end
  secrets[client] = key
end

--- The API's path prefix; a base_url must end with it.
M.API_PATH = "/api/public/v1"
--- The URL `make sandbox` (and `coldsend-sandbox --port 8089`) serves.
M.SANDBOX_URL = "http://127.0.0.1:8089" .. M.API_PATH

local function new_error(fields)
  return core.error(fields)
end
M.new_error = new_error

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
function M.hint(err, url)
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
  return M.hint(redact.error(err, req), err.url)
end
M.decorate = decorate

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

-- The headers of every request plus those of req.headers. A request with
-- no headers table is one the library built (core.build_request,
-- c:_request): its body, if any, is JSON. The two usual sets (no body,
-- a JSON body) are made once per client; the transports do not change
-- them. They hold the key, so they live beside it, out of the client's
-- reach.
local header_cache = setmetatable({}, { __mode = "k" })

local function request_headers(self, req)
  local extra = req.headers
  local kind -- "plain" or "json": one of the two sets kept
  if extra == nil then
    kind = req.body ~= nil and "json" or "plain"
  elseif next(extra) == nil then
    kind = "plain"
  elseif extra["Content-Type"] == "application/json" and next(extra, next(extra)) == nil then
    kind = "json"
  end
  local cache = header_cache[self]
  if not cache then
    cache = {}
    header_cache[self] = cache
  end
  if kind and cache[kind] then return cache[kind] end
  local headers = {}
  for k, v in pairs(extra or {}) do headers[k] = v end
  if kind == "json" then headers["Content-Type"] = "application/json" end
  headers["X-API-Key"] = secrets[self]
  headers["Accept"] = "application/json"
  headers["User-Agent"] = self.user_agent
  if kind then cache[kind] = headers end
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

--- Sends req ({method, url, headers?, body, multipart}) with retries.
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
  -- the usual request (one the library built, no body or a JSON one)
  -- takes a kept set without a call
  local headers = req.headers == nil and header_cache[self]
  headers = headers and headers[req.body ~= nil and "json" or "plain"] or request_headers(self, req)
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
    -- req was built for this call alone: it is completed in place (the
    -- libcurl transport takes the timeouts and limits as arguments)
    local treq = req
    local ct = connect_timeout < t and connect_timeout or t
    treq.headers = headers
    if self.on_request then
      self.on_request(redact.event({ method = req.method, url = req.url, attempt = attempt,
        headers = copy_headers_redacted(headers), body = req.body }, treq))
    end
    -- (read only for the hook that reports the time taken)
    local sent_at = self.on_response and clock()
    -- the libcurl transport lower-cases header names (the limiter then
    -- searches none case-insensitively) and always answers a well-formed
    -- table: known once per transport, read at each try (a hook may have
    -- swapped it)
    local transport = self.transport
    local lowered = self._lowered
    if self._lowered_for ~= transport then
      lowered = core.is_http(transport)
      self._lowered, self._lowered_for = lowered, transport
    end
    local res, msg, code, info
    if lowered then
      res, msg, code, info = transport(treq, headers, t, ct, self.ca_file, self.max_body)
    else
      treq.timeout, treq.connect_timeout = t, ct
      treq.ca_file, treq.max_body = self.ca_file, self.max_body
      res, msg, code, info = transport(treq)
    end
    local outcome, data
    -- (the libcurl transport answers a table with a header table, or nil)
    if res and not lowered and (type(res) ~= "table"
        or (res.headers ~= nil and type(res.headers) ~= "table")) then
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
        elseif rh then
          -- any case and any spelling of zero ("0", "00", "0.0"), as C reads it
          local remaining = rh["x-ratelimit-remaining"]
          if remaining == nil and not lowered then remaining = retry.header(rh, "x-ratelimit-remaining") end
          if remaining ~= nil and tonumber(remaining) == 0 then
            stated = core.server_wait(res.status, rh, nil, wall)
          end
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

M.protocol_error, M.expect_table, M.call = protocol_error, expect_table, call

return M
