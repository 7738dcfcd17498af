--- coldsend.sandbox: a local, in-memory ColdSend-compatible server.
--
--   local sandbox = require "coldsend.sandbox"
--   local srv = sandbox.new{ port = 0 }   -- 0: a free port
--   print(srv:listen())                   -- the base URL
--   srv:run()                             -- serves until shutdown
--
-- `srv:handle(req)` answers a request table without any socket (an
-- in-process transport for tests: see sandbox.transport). doc/sandbox.md
-- describes the API, the control endpoints under /__sandbox/ and the faults.
-- @module coldsend.sandbox
local socket = require "socket"
local json = require "coldsend.json"
local http = require "coldsend.sandbox.http"
local api = require "coldsend.sandbox.api"
local uploads = require "coldsend.sandbox.uploads"
local V = require "coldsend.sandbox.validate"

local M = { _VERSION = "0.1.0" }

--- The path prefix of the API endpoints.
M.BASE = "/api/public/v1"
--- The path prefix of the control endpoints (log, faults, reset, keys, config, simulate, shutdown).
M.CONTROL = "/__sandbox"

local array, null = json.array, json.null

local Server = {}
Server.__index = Server

local DEFAULTS = {
  host = "127.0.0.1", port = 0, key = nil,
  rate_limit = false,       -- false: counted nowhere; N: N requests per window per key
  rate_window = 60,         -- seconds
  rate_limit_hour = false,  -- false: no hour window; N: N requests per rate_window_hour
  rate_window_hour = 3600,  -- seconds
  latency_ms = 0,           -- added before every API answer
  idle_exit = nil,          -- seconds without a request or connection: exit
  parent_pid = nil,         -- exit when this process is gone
  job_step_ms = 250,        -- an upload job moves one stage per poll or per this time
  seed = nil,               -- the simulation's default seed (nil: 1)
  keepalive_s = 30,         -- idle keep-alive connections are closed after this
  max_connections = 900,    -- open connections; at the cap the longest idle one is closed
  max_body = 4 * 1024 * 1024,            -- JSON endpoints: 413 above
  max_upload_body = 64 * 1024 * 1024,    -- the multipart upload: 413 above
  log_max = 20000,          -- request log entries kept
  quiet = false,
}

local function random_hex(n)
  local t = {}
  for i = 1, n do t[i] = ("%x"):format(math.random(0, 15)) end
  return table.concat(t)
end

--- A new sandbox server, not yet listening. opts override the defaults (host
-- "127.0.0.1", port 0, rate_limit false, latency_ms, idle_exit, parent_pid, ...);
-- `rate_limit = true` means the documented limits: 100 per minute and, unless
-- rate_limit_hour says otherwise, 1,000 per hour. Without opts.key a random
-- `cs_test_` key is made.
-- @param opts options table, or nil
-- @return the server
function M.new(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  if o.rate_limit == true then
    o.rate_limit = 100
    if opts.rate_limit_hour == nil then o.rate_limit_hour = 1000 end
  end
  local self = setmetatable({ opts = o, conns = {}, nconns = 0, next_conn = 0 }, Server)
  self.key = o.key or ("cs_test_" .. random_hex(40))
  self:reset()
  return self
end

--- A random version-4 UUID string.
function Server:uuid()
  local h = random_hex(32)
  local variant = ("89ab"):sub(math.random(1, 4)):sub(1, 1)
  return ("%s-%s-4%s-%s%s-%s"):format(h:sub(1, 8), h:sub(9, 12), h:sub(14, 16),
    variant, h:sub(18, 20), h:sub(21, 32))
end

--- Forgets every campaign, lead, inbox, job, fault, key set, rate-limit
-- count and the request log, and goes back to the real clock. Options
-- (rate limit, latency) are kept.
function Server:reset()
  self.state = {
    campaigns = {}, campaign_list = {}, leads = {}, jobs = {},
    inboxes = {}, inbox_list = {}, inbox_by_email = {}, seq = 0,
    team_id = self:uuid(), user_id = self:uuid(),
  }
  self.faults = {}
  self.fault_seq = 0
  self.log = {}
  self.log_seq = 0
  self.keys = nil      -- nil: any key starting with cs_ is accepted
  self.buckets = {}    -- key -> the instants of its accepted requests
  self.clock_at = nil  -- the real clock again
end

-- -------------------------------------------------------------------------
-- Auth, scopes, rate limits
-- -------------------------------------------------------------------------

local function scope_ok(granted, need)
  local res = need:match("^([^:]+):")
  for _, g in ipairs(granted) do
    if g == "*" or g == need or g == res .. ":all" then return true end
    -- the legacy scope set
    if g == res .. ":write" and not need:match(":read$") then return true end
  end
  return false
end

-- Returns granted scopes, or nil, status, body.
function Server:authenticate(req)
  local key = req.headers["x-api-key"]
  if key == nil or key == "" then
    return nil, 401, { detail = "API key required. Include your API key in X-API-Key header." }
  end
  if self.keys then
    local k = self.keys[key]
    if k then return k.scopes or { "*" }, key end
    if key == self.key then return { "*" }, key end
    return nil, 401, { detail = "Invalid or revoked API key" }
  end
  if key:sub(1, 3) ~= "cs_" or #key < 8 or key:find("[^%w_%-]") then
    return nil, 401, { detail = "Invalid or revoked API key" }
  end
  return { "*" }, key
end

--- The sandbox's clock (Unix seconds, fractional): the real time, or the
-- instant `POST /__sandbox/clock` set, which then moves only when told.
function Server:now()
  return self.clock_at or socket.gettime()
end

-- The enforced windows: { {limit, period}... }, the minute's first.
function Server:rate_windows()
  local o, w = self.opts, {}
  if o.rate_limit then w[#w + 1] = { o.rate_limit, o.rate_window } end
  if o.rate_limit_hour then w[#w + 1] = { o.rate_limit_hour, o.rate_window_hour } end
  return w
end

--- Counts a request of key against the sandbox's sliding-window rate
-- limits (when consume is true) and gives the X-RateLimit-* headers.
-- A request is allowed when every window [now - period, now) (half-open at
-- its start: a request exactly one period ago has left) holds fewer than
-- its limit of the key's accepted requests. The headers describe the
-- window with the fewest left (the minute on a tie): its limit, what is
-- left after this request, and when its oldest request leaves it (so the
-- count cannot rise before then). Returns headers, ok (false when a limit
-- is spent) and the whole seconds until the request would be allowed;
-- with rate limiting off, fixed headers and true.
-- @param key the API key (nil: an anonymous bucket)
-- @param consume whether to take one request from the windows
function Server:rate(key, consume)
  local now = self:now()
  local windows = self:rate_windows()
  if #windows == 0 then
    return { ["X-RateLimit-Limit"] = 100, ["X-RateLimit-Remaining"] = 100,
      ["X-RateLimit-Reset"] = math.floor(now) + 60 }, true
  end
  -- the key's accepted requests, oldest first, none older than the longest window
  local times = self.buckets[key or ""] or {}
  self.buckets[key or ""] = times
  local longest = 0
  for _, w in ipairs(windows) do longest = math.max(longest, w[2]) end
  local drop = 0
  while times[drop + 1] and times[drop + 1] <= now - longest do drop = drop + 1 end
  local n = #times
  if drop > 0 then
    for i = 1, n do times[i] = times[i + drop] end -- the tail becomes nil
    n = n - drop
  end
  local counts, ok, wait = {}, true, 0
  for i, w in ipairs(windows) do
    local first = n + 1
    while first > 1 and times[first - 1] > now - w[2] do first = first - 1 end
    counts[i] = { n - first + 1, first }
    if n - first + 1 >= w[1] then
      ok = false
      -- allowed once all but limit - 1 of them have left
      wait = math.max(wait, times[n - w[1] + 1] + w[2] - now)
    end
  end
  if consume and ok then
    times[n + 1] = now
    for _, c in ipairs(counts) do c[1] = c[1] + 1 end
  end
  local pick, left
  for i, w in ipairs(windows) do
    local l = math.max(0, w[1] - counts[i][1])
    if not left or l < left then pick, left = i, l end
  end
  local w, oldest = windows[pick], times[counts[pick][2]]
  return { ["X-RateLimit-Limit"] = w[1], ["X-RateLimit-Remaining"] = left,
    ["X-RateLimit-Reset"] = math.ceil((oldest or now) + w[2]) }, ok, math.max(1, math.ceil(wait))
end

-- -------------------------------------------------------------------------
-- The request log
-- -------------------------------------------------------------------------

local LOG_BODY_MAX = 16384

--- Appends req to the request log (oldest entries dropped past log_max);
-- a JSON body is stored decoded, a large one cut to 2 KiB.
-- @param req the request table
-- @param api_path the path relative to the API base, or nil
-- @return the log entry
function Server:log_request(req, api_path)
  self.log_seq = self.log_seq + 1
  local body = req.body or ""
  local entry = {
    seq = self.log_seq, time = socket.gettime(), clock = self:now(), method = req.method,
    path = api_path or req.path, query = req.query, conn = req.conn_id,
    key_present = (req.headers["x-api-key"] or "") ~= "",
    content_type = req.headers["content-type"], body_size = #body,
  }
  if req.log_body ~= nil then
    entry.body = req.log_body
  elseif body ~= "" then
    if #body <= LOG_BODY_MAX then
      local v = json.decode(body)
      if type(v) == "table" then entry.body = v else entry.body = body end
    else
      entry.body = body:sub(1, 2048)
      entry.body_truncated = true
    end
  end
  local log = self.log
  log[#log + 1] = entry
  if #log > self.opts.log_max then table.remove(log, 1) end
  return entry
end

-- -------------------------------------------------------------------------
-- Faults
-- -------------------------------------------------------------------------

local FAULT_KINDS = {
  delay = true, close_before = true, close_mid_body = true, status = true,
  truncated = true, non_json = true, html = true, oversized = true,
  wrong_content_type = true,
}
--- The fault kinds `add_fault` accepts, as a set (kind = true).
M.FAULT_KINDS = FAULT_KINDS

local function path_matches(pat, path)
  if pat == nil then return true end
  if path:sub(1, #pat) == pat then return true end
  local ok, found = pcall(string.find, path, pat)
  return ok and found ~= nil
end

--- The first armed fault matching req's method, path and key, or nil.
-- A matching fault's skip count is spent first; when it fires its times
-- count goes down and it is removed at zero (times < 0: never).
-- @param req the request table
-- @param path the path relative to the API base
function Server:take_fault(req, path)
  for i, f in ipairs(self.faults) do
    if (not f.method or f.method == req.method)
      and path_matches(f.path, path)
      and (not f.key or f.key == req.headers["x-api-key"]) then
      if f.skip and f.skip > 0 then
        f.skip = f.skip - 1
      else
        f.fired = (f.fired or 0) + 1
        if f.times > 0 then
          f.times = f.times - 1
          if f.times == 0 then table.remove(self.faults, i) end
        end
        return f
      end
    end
  end
end

local function pad_json(size, fields)
  local base = json.encode(fields)
  -- {"...","padding":"xxx"} sized exactly
  local head = base:sub(1, -2) .. ',"padding":"'
  local n = size - #head - 2
  if n < 0 then n = 0 end
  return head .. ("x"):rep(n) .. '"}'
end

-- The response a fault produces. `real` is the processed response when the
-- fault applies after processing, else nil.
function Server:fault_response(f, real)
  local kind = f.kind
  local synthetic = function()
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
      body = json.encode { success = true, message = "sandbox fault: " .. kind,
        padding = ("x"):rep(200) } }
  end
  local res
  if kind == "close_before" then
    return { action = f.reset and "reset" or "close" }
  elseif kind == "status" then
    local st = f.status or 500
    local body = f.body
    local ct = f.content_type or "application/json"
    if body == nil then
      local msgs = {
        [429] = ("Rate limit exceeded. Retry after %d seconds."):format(f.retry_after or 60),
        [500] = "Internal server error", [502] = "Bad gateway",
        [503] = "Service temporarily unavailable", [504] = "Gateway timeout",
      }
      body = json.encode { detail = msgs[st] or ("sandbox fault: status " .. st) }
    elseif type(body) == "table" then
      body = json.encode(body)
    end
    res = { status = st, headers = { ["Content-Type"] = ct }, body = tostring(body) }
    if f.retry_after then res.headers["Retry-After"] = tostring(f.retry_after) end
    return res
  elseif kind == "truncated" or kind == "close_mid_body" then
    res = real or synthetic()
    res.action = kind == "truncated" and (f.reset and "truncate_reset" or "truncate")
      or (f.reset == false and "truncate" or "truncate_reset")
    return res
  elseif kind == "non_json" then
    return { status = f.status or 200,
      headers = { ["Content-Type"] = f.content_type or "application/json" },
      body = f.body or "OK: this body is not JSON <sandbox fault>" }
  elseif kind == "html" then
    return { status = f.status or 502, headers = { ["Content-Type"] = "text/html; charset=utf-8" },
      body = f.body or ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        .. "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n") }
  elseif kind == "oversized" then
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
      body = pad_json(f.size or 9 * 1024 * 1024, { success = true, message = "sandbox fault: oversized" }) }
  elseif kind == "wrong_content_type" then
    res = real or synthetic()
    res.headers = res.headers or {}
    res.headers["Content-Type"] = f.content_type or "text/plain; charset=utf-8"
    return res
  end
end

-- -------------------------------------------------------------------------
-- Dispatch
-- -------------------------------------------------------------------------

local function json_response(status, body, headers)
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return { status = status, headers = h, body = json.encode(body) }
end
--- A JSON response table {status, headers, body}: body encoded, Content-Type
-- application/json, plus any headers given.
-- @param status the HTTP status
-- @param body the value to encode
-- @param headers extra headers, or nil
M.json_response = json_response

local function is_json_type(ct)
  ct = (ct or ""):lower():match("^%s*([^;%s]+)")
  return ct == nil or ct == "application/json" or (ct:match("^application/[%w.%-]+%+json$") ~= nil)
end

-- Decodes a JSON request body as FastAPI does: returns the table or nil,
-- status, body.
local function decode_body(req)
  local ct = req.headers["content-type"]
  if ct and not is_json_type(ct) then
    return nil, 415, { detail = "Unsupported Media Type: Content-Type must be application/json" }
  end
  local body = req.body or ""
  if not body:find("%S") then
    return nil, 422, { detail = array { { loc = array { "body" }, msg = "field required",
      type = "value_error.missing" } } }
  end
  local v, err = json.decode(body)
  if v == nil and err then
    local pos = tonumber(tostring(err):match("at character (%d+)")) or 0
    return nil, 422, { detail = array { { type = "json_invalid", loc = array { "body", pos },
      msg = "JSON decode error", input = {}, ctx = { error = tostring(err):gsub("^.-: ", "") } } } }
  end
  if type(v) ~= "table" or body:match("^%s*(.)") ~= "{" then
    return nil, 422, { detail = array { { loc = array { "body" }, msg = "value is not a valid dict",
      type = "type_error.dict" } } }
  end
  return V.normalize(v)
end

--- The path relative to the API base, or nil when outside it.
function M.api_path(path)
  if path:sub(1, #M.BASE + 1) == M.BASE .. "/" then return path:sub(#M.BASE + 1) end
end

--- Answers one API request (path relative to the base). Returns a
-- response {status, headers, body}.
function Server:api(req, path)
  local route, params = api.match(req.method, path)
  if not route then
    local h = self:rate(req.headers["x-api-key"], false)
    if params then
      table.sort(params)
      h.Allow = table.concat(params, ", ")
      return json_response(405, { detail = "Method Not Allowed" }, h)
    end
    return json_response(404, { detail = "Not Found" }, h)
  end
  local granted, st, body = self:authenticate(req)
  if not granted then
    local h = self:rate(nil, false)
    return json_response(st, body, h)
  end
  local key = st
  local rl, ok, wait = self:rate(key, true)
  if not ok then
    rl["Retry-After"] = tostring(wait)
    return json_response(429, { detail = ("Rate limit exceeded. Retry after %d seconds."):format(wait) }, rl)
  end
  if not scope_ok(granted, route.scope) then
    local g = array()
    for i, s in ipairs(granted) do g[i] = s end
    return json_response(403, { detail = "Missing required scopes: " .. route.scope,
      error = "insufficient_scopes", required = array { route.scope }, granted = g }, rl)
  end
  -- path parameters: UUIDs (FastAPI answers 422 for a malformed one)
  local errs = V.errors()
  local names = {}
  for k in pairs(params) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if V.uuid(errs, array { "path", k }, params[k]) then params[k] = params[k]:lower() end
  end
  if not errs:empty() then return json_response(422, { detail = errs.list }, rl) end
  if route.body == "json" then
    local v, s2, b2 = decode_body(req)
    if not v then return json_response(s2, b2, rl) end
    req.json = v
  end
  V.unknown_sink = array()
  local ok, status, out, extra = pcall(route.handler, self, req, params)
  local unknown = V.unknown_sink
  V.unknown_sink = nil
  if not ok then error(status, 0) end
  if #unknown > 0 and req.log_entry then
    table.sort(unknown)
    req.log_entry.unknown_fields = unknown
  end
  if extra then for k, v in pairs(extra) do rl[k] = v end end
  return json_response(status, out, rl)
end

--- The answer for any request table {method, path, query, headers (lower-
-- case names), body}: an API answer, a control answer, or a fault. Returns
-- the response; res.action (close/reset/truncate) tells the connection
-- what to do with it; res.delay_before/delay_after are seconds to wait.
function Server:handle(req)
  local path = req.path
  self.last_activity = socket.gettime()
  if path == M.CONTROL or path:sub(1, #M.CONTROL + 1) == M.CONTROL .. "/" then
    return self:control(req, path:sub(#M.CONTROL + 1))
  end
  local api_path = M.api_path(path)
  if api_path == nil then
    local entry = self:log_request(req, nil)
    local res = json_response(404, { detail = "Not Found" })
    entry.status = 404
    return res
  end
  local entry = self:log_request(req, api_path)
  req.log_entry = entry
  local f = self:take_fault(req, api_path)
  local latency = (self.opts.latency_ms or 0) / 1000
  local res
  if f then entry.fault = f.kind end
  if f and not f.after then
    if f.kind == "delay" then
      self:sleep((f.delay_ms or 1000) / 1000)
    else
      res = self:fault_response(f, nil)
      self:sleep(latency)
      entry.status = res.status
      return res
    end
  end
  local ok, r = pcall(self.api, self, req, api_path)
  if not ok then
    io.stderr:write("coldsend-sandbox: error in ", req.method, " ", api_path, ": ", tostring(r), "\n")
    r = json_response(500, { detail = "Internal server error" })
  end
  res = r
  -- the server acted on it (what a fault after processing hides from the
  -- client): the log's answer to "how many times did this write happen"
  entry.processed = type(res.status) == "number" and res.status >= 200 and res.status < 300
  self:sleep(latency)
  if f and f.after then
    if f.kind == "delay" then
      self:sleep((f.delay_ms or 1000) / 1000)
    else
      res = self:fault_response(f, res)
    end
  end
  entry.status = res.status
  return res
end

--- Sleeps inside the connection coroutine (a select-loop timer); a no-op
-- outside the loop.
function Server:sleep(s)
  if s and s > 0 and self.loop and coroutine.isyieldable() then http.sleep(s) end
end

--- Lets other connections run during a long computation.
function Server:yield_cpu()
  if self.loop and coroutine.isyieldable() then coroutine.yield("t", nil, socket.gettime()) end
end

--- Advances an upload job on a timer (in the loop) as well as on polls.
function Server:schedule_job(job)
  local step = (self.opts.job_step_ms or 0) / 1000
  if not self.loop or step <= 0 then return end
  self.loop:spawn(function()
    while job.status ~= "COMPLETED" and job.status ~= "FAILED" do
      http.sleep(step)
      if self.state.jobs[job.job_id] ~= job then return end
      uploads.advance_job(self, job)
    end
  end)
end

--- Arms a fault (doc/sandbox.md): returns the stored fault, or nil, message.
function Server:add_fault(f)
  if not FAULT_KINDS[f.kind] then
    local kinds = {}
    for k in pairs(FAULT_KINDS) do kinds[#kinds + 1] = k end
    table.sort(kinds)
    return nil, "kind must be one of: " .. table.concat(kinds, ", ")
  end
  for _, k in ipairs { "method", "path", "key", "content_type" } do
    if f[k] ~= nil and f[k] ~= null and type(f[k]) ~= "string" then return nil, k .. " must be a string" end
  end
  for _, k in ipairs { "times", "skip", "delay_ms", "status", "size", "retry_after" } do
    if f[k] ~= nil and f[k] ~= null and not V.is_int(f[k]) then return nil, k .. " must be an integer" end
  end
  if f.status and (f.status < 100 or f.status > 599) then return nil, "status must be 100..599" end
  local fault = {}
  for k, v in pairs(f) do if v ~= null then fault[k] = v end end
  fault.method = fault.method and fault.method:upper()
  fault.times = fault.times or 1
  if fault.times == 0 then fault.times = -1 end
  self.fault_seq = self.fault_seq + 1
  fault.fault_id = self.fault_seq
  self.faults[#self.faults + 1] = fault
  return fault
end

-- -------------------------------------------------------------------------
-- The control API: /__sandbox/...
-- -------------------------------------------------------------------------

local function control_error(status, msg) return json_response(status, { detail = msg }) end

--- Answers a control request (sub is the path after /__sandbox); it must
-- carry the sandbox's own key in X-API-Key.
-- @return the response table
function Server:control(req, sub)
  if req.headers["x-api-key"] ~= self.key then
    return control_error(401, "the control API takes the sandbox's own key in X-API-Key")
  end
  local m = req.method
  local body
  if m == "POST" or m == "PUT" then
    local b = req.body or ""
    if b:find("%S") then
      body = json.decode(b)
      if type(body) ~= "table" then return control_error(422, "body must be a JSON object") end
      V.normalize(body)
    else
      body = {}
    end
  end
  if sub == "/log" and m == "GET" then
    local since = tonumber(req.query.since or "") or 0
    local out = array()
    for _, e in ipairs(self.log) do
      if e.seq > since then out[#out + 1] = e end
    end
    return json_response(200, out)
  elseif sub == "/log" and m == "DELETE" then
    self.log = {}
    return json_response(200, { success = true })
  elseif sub == "/faults" and m == "POST" then
    local fault, err = self:add_fault(body)
    if not fault then return control_error(422, err) end
    return json_response(201, fault)
  elseif sub == "/faults" and m == "GET" then
    local out = array()
    for i, f in ipairs(self.faults) do out[i] = f end
    return json_response(200, out)
  elseif sub == "/faults" and m == "DELETE" then
    self.faults = {}
    return json_response(200, { success = true })
  elseif sub == "/reset" and m == "POST" then
    self:reset()
    return json_response(200, { success = true })
  elseif sub == "/keys" and m == "POST" then
    local keys = body.keys
    if keys == nil or keys == null or next(keys) == nil then
      self.keys = nil
    else
      if type(keys) ~= "table" then return control_error(422, "keys must be an object") end
      self.keys = {}
      for k, v in pairs(keys) do
        local scopes = type(v) == "table" and v.scopes
        if scopes ~= nil and type(scopes) ~= "table" then return control_error(422, "scopes must be a list") end
        self.keys[k] = { scopes = scopes or { "*" } }
      end
    end
    return json_response(200, { success = true })
  elseif sub == "/config" and m == "POST" then
    for _, k in ipairs { "rate_limit", "rate_window", "rate_limit_hour", "rate_window_hour",
        "latency_ms", "job_step_ms", "keepalive_s" } do
      local v = body[k]
      local limit = k == "rate_limit" or k == "rate_limit_hour"
      if v ~= nil then
        if v == true and k == "rate_limit" then
          v = 100
          if body.rate_limit_hour == nil then self.opts.rate_limit_hour = 1000 end
        end
        if v == true and k == "rate_limit_hour" then v = 1000 end
        if not (limit and v == false) and not (V.is_int(v) and v >= 0) then
          return control_error(422, k .. " must be a non-negative integer" .. (limit and " or false" or ""))
        end
        if limit and v == 0 then v = false end
        self.opts[k] = v
      end
    end
    self.buckets = {}
    return json_response(200, self:config_view())
  elseif sub == "/config" and m == "GET" then
    return json_response(200, self:config_view())
  elseif sub == "/clock" and m == "POST" then
    local at, by = body.now, body.advance
    if body.real == true then
      self.clock_at = nil
    elseif type(at) == "number" and at >= 0 and at < 1e11 then
      self.clock_at = at
    elseif type(by) == "number" and by >= 0 and by < 1e9 then
      self.clock_at = self:now() + by
    else
      return control_error(422, "clock: give now (Unix seconds), advance (seconds >= 0) or real = true")
    end
    return json_response(200, { now = self:now(), frozen = self.clock_at ~= nil })
  elseif sub == "/clock" and m == "GET" then
    return json_response(200, { now = self:now(), frozen = self.clock_at ~= nil })
  elseif sub == "/simulate" and m == "POST" then
    return self:simulate(body)
  elseif sub == "/shutdown" and m == "POST" then
    self.stopping = true
    return json_response(200, { success = true, message = "shutting down" })
  elseif sub == "" or sub == "/" then
    return json_response(200, { name = "coldsend-sandbox", version = M._VERSION,
      base_path = M.BASE, config = self:config_view() })
  end
  return control_error(404, "unknown control endpoint " .. m .. " " .. M.CONTROL .. sub)
end

--- The settings the control API shows and sets: rate_limit, rate_window,
-- rate_limit_hour, rate_window_hour, latency_ms, job_step_ms and keepalive_s.
function Server:config_view()
  local o = self.opts
  return { rate_limit = o.rate_limit, rate_window = o.rate_window,
    rate_limit_hour = o.rate_limit_hour, rate_window_hour = o.rate_window_hour, latency_ms = o.latency_ms,
    job_step_ms = o.job_step_ms, keepalive_s = o.keepalive_s }
end

--- Adds sending activity: with body.days, that many days of every ACTIVE
-- campaign (coldsend.sandbox.simulate, deterministic with body.seed);
-- else body's counts to one campaign for today or body.date.
-- An integer a double holds exactly (counts and seeds up to 2^53).
local function exact_count(n, min)
  return V.is_int(n) and n >= min and n <= 2 ^ 53
end

function Server:simulate(b)
  if b.days == nil and b.campaign_id == nil then
    return control_error(422, "days or campaign_id expected (days of sending, or counts for one campaign)")
  end
  if b.days ~= nil then
    local sim = require "coldsend.sandbox.simulate"
    if not V.is_int(b.days) or b.days < 1 or b.days > sim.MAX_DAYS then
      return control_error(422, "days must be an integer 1.." .. sim.MAX_DAYS)
    end
    if b.seed ~= nil and not exact_count(b.seed, 1) then
      return control_error(422, "seed must be a positive integer (at most 2^53)")
    end
    if b.start ~= nil and not sim.is_date(b.start) then
      return control_error(422, "start must be a date YYYY-MM-DD")
    end
    return json_response(200, sim.run(self, b.days, b.seed, b.start))
  end
  local c = type(b.campaign_id) == "string" and self.state.campaigns[b.campaign_id:lower()]
  if not c then return control_error(404, "Campaign not found") end
  local date = b.date or os.date("!%Y-%m-%d")
  if not V.parse_date(date) then return control_error(422, "date must be YYYY-MM-DD") end
  local kinds = { "sent", "opened", "replied", "bounced", "unsubscribed" }
  -- every count checked before any is added: a refused call changes nothing
  for _, k in ipairs(kinds) do
    if not exact_count(b[k] or 0, 0) then
      return control_error(422, k .. " must be a non-negative integer (at most 2^53)")
    end
  end
  local d = c.daily[date] or { sent = 0, opened = 0, replied = 0, bounced = 0, unsubscribed = 0 }
  c.daily[date] = d
  for _, k in ipairs(kinds) do
    local n = b[k] or 0
    d[k] = d[k] + n
    c.stats[k] = c.stats[k] + n
  end
  return json_response(200, { success = true, stats = c.stats })
end

-- -------------------------------------------------------------------------
-- Connections and the loop
-- -------------------------------------------------------------------------

local function fatal_response(err)
  return json_response(err.status, { detail = err.detail })
end

local function write_response(conn, res, keep_alive)
  local action = res.action
  if action == "close" or action == "reset" then
    conn:close(action == "reset")
    return false
  end
  local body = res.body or ""
  local deadline = socket.gettime() + 60
  if action == "truncate" or action == "truncate_reset" then
    local half = body:sub(1, math.floor(#body / 2))
    conn:send(http.head(res, false, #body) .. half, deadline)
    http.sleep(0.02)
    conn:close(action == "truncate_reset")
    return false
  end
  local ok = conn:send(http.head(res, keep_alive, #body) .. body, deadline)
  if not ok then conn:close() return false end
  return keep_alive
end

--- Serves the requests of one connection (keep-alive) until it closes,
-- errs, or the server stops; then closes it.
function Server:serve_conn(conn)
  local o = self.opts
  while not conn.closed do
    local idle = socket.gettime() + (o.keepalive_s or 30)
    conn.idle_since = socket.gettime() -- may be closed to make room (Server:make_room)
    local req, err = conn:read_head(idle, 30)
    conn.idle_since = nil
    if not req then
      if type(err) == "table" then
        write_response(conn, fatal_response(err), false)
      end
      break
    end
    local is_upload = req.method == "POST" and (M.api_path(req.path) or ""):match("^/campaigns/[^/]+/leads$")
    local max = is_upload and o.max_upload_body or o.max_body
    local ok, berr = conn:read_body(req, max, 120)
    if not ok then
      if type(berr) == "table" then
        self:log_request(req, M.api_path(req.path)).status = berr.status
        write_response(conn, fatal_response(berr), false)
      end
      break
    end
    if is_upload then
      -- keep the log small: a summary of the parts, not the file
      local b = require("coldsend.sandbox.csv").boundary(req.headers["content-type"])
      if b then
        local parts = require("coldsend.sandbox.csv").multipart(req.body, b)
        local summary = array()
        for i, p in ipairs(parts or {}) do
          summary[i] = { name = p.name, filename = p.filename, size = #p.value,
            value = (not p.filename and #p.value <= 1024) and p.value or nil }
        end
        req.log_body = { parts = summary }
      end
    end
    local res = self:handle(req)
    local keep = write_response(conn, res, req.keep_alive and not self.stopping)
    if not keep then break end
  end
  conn:close()
end

local function own_pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local s = f:read("*l")
  f:close()
  return s and tonumber(s:match("^(%d+)"))
end
--- This process's id, read from /proc/self/stat; nil where there is no /proc.
M.own_pid = own_pid

--- Binds the listening socket; returns the base URL.
function Server:listen()
  local o = self.opts
  local s, err = socket.tcp()
  if not s then error(err) end
  s:setoption("reuseaddr", true)
  local ok, berr = s:bind(o.host, o.port)
  if not ok then error("coldsend-sandbox: cannot bind " .. o.host .. ":" .. o.port .. ": " .. tostring(berr), 0) end
  assert(s:listen(256))
  s:settimeout(0)
  self.server = s
  local _, port = s:getsockname()
  self.port = tonumber(port)
  local host = o.host
  if host:find(":") then host = "[" .. host .. "]" end
  self.url = ("http://%s:%d%s"):format(host, self.port, M.BASE)
  return self.url
end

--- Frees a connection slot: closes the connection that has waited longest
-- for its next request. false when every open connection is busy.
function Server:make_room()
  local oldest
  for conn in pairs(self.conns) do
    if conn.idle_since and not conn.closed
        and (not oldest or conn.idle_since < oldest.idle_since) then
      oldest = conn
    end
  end
  if not oldest then return false end
  local sock = oldest.sock
  oldest:close()
  self.loop:wake(sock) -- its coroutine sees the close and ends
  return true
end

--- Serves until POST /__sandbox/shutdown, idle exit or parent exit.
-- Open connections stay under max_connections (and every descriptor under
-- select's FD_SETSIZE, coldsend.sandbox.http): at the cap the longest idle
-- connection is closed, or the new one when none is idle.
function Server:run()
  if not self.server then self:listen() end
  local loop = http.loop()
  self.loop = loop
  self.last_activity = socket.gettime()
  local last_parent_check = 0
  local o = self.opts
  while true do
    loop:step(self.server, function(sock)
      -- descriptors near select()'s limit (inherited ones count too): the
      -- count of connections is held where it is, each new one replacing
      -- the longest idle, whose lower descriptor the next accept reuses
      local cap = self.max_conns or o.max_connections
      if sock:getfd() >= http.MAX_FD - 64 and self.nconns < cap then
        cap = self.nconns
        self.max_conns = cap
      end
      if self.nconns >= cap and not self:make_room() then
        sock:close()
        return
      end
      self.next_conn = self.next_conn + 1
      local conn = http.conn(sock, self.next_conn)
      self.nconns = self.nconns + 1
      self.conns[conn] = true
      self.last_activity = socket.gettime()
      loop:spawn(function()
        local ok, err = pcall(self.serve_conn, self, conn)
        if not ok then
          io.stderr:write("coldsend-sandbox: connection error: ", tostring(err), "\n")
        end
        conn:close()
        self.conns[conn] = nil
        self.nconns = self.nconns - 1
        self.last_activity = socket.gettime()
      end)
    end, 1)
    local now = socket.gettime()
    if self.stopping then
      -- let answers in flight finish (bounded)
      self.stop_deadline = self.stop_deadline or now + 2
      if self.nconns == 0 or now > self.stop_deadline then break end
    end
    if o.idle_exit and self.nconns == 0 and now - self.last_activity > o.idle_exit then
      if not o.quiet then io.stderr:write("coldsend-sandbox: idle for ", o.idle_exit, " s, exiting\n") end
      break
    end
    if o.parent_pid and now - last_parent_check > 1 then
      last_parent_check = now
      local f = io.open("/proc/" .. o.parent_pid .. "/stat", "r")
      if not f then break end
      f:close()
    end
  end
  self.server:close()
  self.server = nil
  self.loop = nil
end

-- -------------------------------------------------------------------------
-- In-process use
-- -------------------------------------------------------------------------

--- A transport (see doc/internals.md) that answers from an in-process
-- sandbox, without sockets: transport(req) -> res. Faults that close or
-- truncate come back as transport failures.
function M.transport(srv)
  srv = srv or M.new()
  return function(req)
    local url = req.url or ""
    local path, qs = url:match("^https?://[^/]*([^?#]*)%??([^#]*)")
    if not path then return nil, "bad url " .. url, "network" end
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k:lower()] = v end
    local body = req.body or ""
    if req.multipart then
      local ct
      body, ct = require("coldsend.sandbox.csv").encode_multipart(req.multipart)
      if not body then return nil, ct, "network", { sent = false } end
      headers["content-type"] = ct
    end
    local r = {
      method = req.method or "GET", path = http.url_decode((path:gsub("+", "%%2B"))),
      query_string = qs, query = http.parse_query(qs), headers = headers,
      body = body, conn_id = 0,
    }
    local res = srv:handle(r)
    if res.action == "close" or res.action == "reset" then
      return nil, "connection closed by the sandbox", "network", { sent = true }
    elseif res.action then
      return nil, "truncated response from the sandbox", "network", { sent = true }
    end
    local h = {}
    for k, v in pairs(res.headers or {}) do h[k:lower()] = tostring(v) end
    return { status = res.status, headers = h, body = res.body or "" }
  end, srv
end

return M
