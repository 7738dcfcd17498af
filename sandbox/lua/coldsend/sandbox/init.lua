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
--
-- This file holds the server object (options, state, reset), the request
-- log and the dispatch of a request (control API, fault, API answer); its
-- other methods are in coldsend.sandbox.access (keys, scopes, rate
-- limits), .faults, .control (/__sandbox/) and .connections (the socket and
-- the loop); the endpoints in coldsend.sandbox.api and the modules it names.
-- @module coldsend.sandbox
local socket = require "socket"
local json = require "coldsend.json"
local http = require "coldsend.sandbox.http"
local api = require "coldsend.sandbox.api"
local uploads = require "coldsend.sandbox.uploads"
local V = require "coldsend.sandbox.validate"
local access = require "coldsend.sandbox.access"
local faults = require "coldsend.sandbox.faults"
local control = require "coldsend.sandbox.control"
local connections = require "coldsend.sandbox.connections"

local M = { _VERSION = "0.1.0" }

--- The path prefix of the API endpoints.
M.BASE = api.BASE
--- The path prefix of the control endpoints (log, faults, reset, keys, config, simulate, shutdown).
M.CONTROL = control.PREFIX
--- The fault kinds `add_fault` accepts, as a set (kind = true).
M.FAULT_KINDS = faults.FAULT_KINDS
--- This process's id, read from /proc/self/stat; nil where there is no /proc.
M.own_pid = connections.own_pid
--- The path relative to the API base, or nil when outside it.
M.api_path = api.api_path

local array = json.array
local scope_ok = access.scope_ok

local Server = {}
Server.__index = Server
for _, part in ipairs { access, faults, control, connections } do
  for name, method in pairs(part.methods) do Server[name] = method end
end

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
function Server.uuid(_)
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
-- Dispatch
-- -------------------------------------------------------------------------

local json_response = http.json_response
--- A JSON response table {status, headers, body}: body encoded, Content-Type
-- application/json, plus any headers given (coldsend.sandbox.http).
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
  local handled, status, out, extra = pcall(route.handler, self, req, params)
  local unknown = V.unknown_sink
  V.unknown_sink = nil
  if not handled then error(status, 0) end
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
