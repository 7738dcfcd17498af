--- spec/helpers/sandbox.lua: start a coldsend-sandbox in a child process for
-- a spec, talk to it, stop it. Works under Lua 5.4 and LuaJIT (LuaSocket);
-- the child always runs with lua5.4.
--
--   local sandbox = require "spec.helpers.sandbox"
--   local sb = sandbox.start{ rate_limit = false, latency_ms = 0 }
--   sb.url, sb.key, sb:log(), sb:fault{...}, sb:reset(), sb:stop()
--
-- See doc/internals.md ("The sandbox in tests") and doc/sandbox.md.
local socket = require "socket"
local json = require "coldsend.json"

local M = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The repository root: this file is spec/helpers/sandbox.lua.
local function repo_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/spec/helpers/[^/]*$")
  if dir and dir ~= "" then return dir end
  return "."
end
M.root = repo_root()

local own_pid = require("coldsend.sandbox").own_pid

-- Alive and not a zombie (a container's PID 1 may never reap it).
local function alive(pid)
  if not pid then return false end
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local s = f:read("*l") or ""
  f:close()
  local state = s:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end
M.alive = alive

---------------------------------------------------------------------------
-- A small HTTP/1.1 client over LuaSocket (one request per connection)
---------------------------------------------------------------------------

--- request{url=, method=, headers=, body=, timeout=} -> status, body,
-- headers (lower-case) or nil, err.
function M.http(t)
  local host, port, path = t.url:match("^http://([^:/]+):(%d+)(.*)$")
  if not host then return nil, "bad url " .. tostring(t.url) end
  if path == "" then path = "/" end
  local sock = socket.tcp()
  sock:settimeout(t.timeout or 30)
  local ok, err = sock:connect(host, tonumber(port))
  if not ok then sock:close() return nil, err end
  local body = t.body or ""
  local lines = { ("%s %s HTTP/1.1\r\n"):format(t.method or "GET", path),
    ("Host: %s:%s\r\n"):format(host, port), "Connection: close\r\n" }
  local has_ct = false
  for k, v in pairs(t.headers or {}) do
    if k:lower() == "content-type" then has_ct = true end
    lines[#lines + 1] = k .. ": " .. v .. "\r\n"
  end
  if body ~= "" or t.method == "POST" or t.method == "PUT" then
    lines[#lines + 1] = "Content-Length: " .. #body .. "\r\n"
    if not has_ct and body ~= "" then lines[#lines + 1] = "Content-Type: application/json\r\n" end
  end
  lines[#lines + 1] = "\r\n"
  ok, err = sock:send(table.concat(lines) .. body)
  if not ok then sock:close() return nil, err end
  local status_line, err2 = sock:receive("*l")
  if not status_line then sock:close() return nil, err2 end
  local status = tonumber(status_line:match("^HTTP/%d%.%d (%d%d%d)"))
  local headers = {}
  while true do
    local line, e = sock:receive("*l")
    if not line then sock:close() return nil, e end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local data, e3, partial
  if headers["content-length"] then
    data, e3, partial = sock:receive(tonumber(headers["content-length"]))
  else
    data, e3, partial = sock:receive("*a")
  end
  sock:close()
  if not data then return nil, e3, partial, status, headers end
  return status, data, headers
end

---------------------------------------------------------------------------
-- The sandbox object
---------------------------------------------------------------------------

local Sandbox = {}
Sandbox.__index = Sandbox

local running = {}

--- Starts a sandbox child process on a free port.
-- opts: rate_limit (false | true | N), rate_window (s), rate_limit_hour (N),
-- rate_window_hour (s), latency_ms, job_step_ms,
-- key, port (default 0: a free one), idle_exit (s, default 300), lua
-- (default "lua5.4"), args (more
-- command-line arguments, e.g. { "--fault", "kind=status,status=503" }),
-- command (an installed coldsend-sandbox to run instead of this checkout's,
-- from / and with no LUA_PATH or LUA_CPATH).
function M.start(opts)
  opts = opts or {}
  local root = M.root
  local out = os.tmpname()
  local args = { "--port", tostring(opts.port or 0), "--idle-exit", tostring(opts.idle_exit or 300), "--quiet" }
  local ppid = own_pid()
  if ppid then args[#args + 1] = "--parent-pid" args[#args + 1] = tostring(ppid) end
  if opts.rate_limit then
    args[#args + 1] = "--rate-limit" -- true: the documented 100/min and 1,000/h
    if opts.rate_limit ~= true then args[#args + 1] = tostring(opts.rate_limit) end
  end
  for _, o in ipairs { "rate_window", "rate_limit_hour", "rate_window_hour" } do
    if opts[o] then args[#args + 1] = "--" .. o:gsub("_", "-") args[#args + 1] = tostring(opts[o]) end
  end
  if opts.latency_ms and opts.latency_ms > 0 then
    args[#args + 1] = "--latency" args[#args + 1] = tostring(opts.latency_ms)
  end
  if opts.job_step_ms then args[#args + 1] = "--job-step" args[#args + 1] = tostring(opts.job_step_ms) end
  if opts.key then args[#args + 1] = "--key" args[#args + 1] = opts.key end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = shell_quote(a) end
  local lua_path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/sandbox/lua/?.lua;"
    .. root .. "/sandbox/lua/?/init.lua;;"
  -- the child writes to a file, never to a pipe of ours, and is started in
  -- the background so that nothing here waits for it
  local cmd
  if opts.command then
    cmd = ("cd / && exec env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 %s %s </dev/null >%s 2>&1 &")
      :format(shell_quote(opts.command), table.concat(args, " "), shell_quote(out))
  else
    cmd = ("cd %s && LUA_PATH_5_4=%s LUA_PATH=%s exec %s bin/coldsend-sandbox %s </dev/null >%s 2>&1 &")
      :format(shell_quote(root), shell_quote(lua_path), shell_quote(lua_path), opts.lua or "lua5.4",
        table.concat(args, " "), shell_quote(out))
  end
  local p = io.popen("( " .. cmd .. " ) ; echo started")
  p:read("*a")
  p:close()
  local deadline = socket.gettime() + 15
  local text = ""
  local url, key, pid
  while socket.gettime() < deadline do
    local f = io.open(out, "r")
    if f then text = f:read("*a") f:close() end
    url = text:match("listening on (%S+)")
    key = text:match("test key: (%S+)")
    pid = tonumber(text:match("pid (%d+)") or "")
    if url and key and pid then break end
    socket.sleep(0.02)
  end
  if not (url and key and pid) then
    os.remove(out)
    error("coldsend-sandbox did not start: " .. text, 2)
  end
  local sb = setmetatable({
    url = url, key = key, pid = pid, out = out,
    base = url:match("^(http://[^/]+)"), port = tonumber(url:match(":(%d+)/")),
    log_path = out,
  }, Sandbox)
  running[sb] = true
  return sb
end

--- A raw request against the sandbox. path is relative to sb.url unless it
-- starts with "/__sandbox" or "http". body: a table (JSON-encoded) or a
-- string. Returns status, decoded body (or the raw string), headers, raw body.
function Sandbox:request(method, path, body, headers)
  local url
  if path:match("^http") then url = path
  elseif path:match("^/__sandbox") then url = self.base .. path
  else url = self.url .. path end
  local h = { ["X-API-Key"] = self.key }
  for k, v in pairs(headers or {}) do h[k] = v end
  if h["X-API-Key"] == false then h["X-API-Key"] = nil end
  if type(body) == "table" then body = json.encode(body) end
  local status, data, hdrs = M.http { url = url, method = method, headers = h, body = body }
  if not status then return nil, data end
  local decoded = data
  if data ~= "" and (hdrs["content-type"] or ""):match("json") then
    local v = json.decode(data)
    if v ~= nil then decoded = v end
  end
  return status, decoded, hdrs, data
end

--- Encodes multipart/form-data: parts = { {name=, value=, filename=?,
-- content_type=?} | {name=, file=path, ...} ... }. Returns body,
-- Content-Type header value.
M.multipart = require("coldsend.sandbox.csv").encode_multipart

--- Uploads CSV text to a campaign (L1): mapping is a table (JSON-encoded)
-- or nil. Returns what request returns.
function Sandbox:upload(campaign_id, csv_text, mapping, filename)
  local parts = { { name = "file", filename = filename or "leads.csv", value = csv_text } }
  if mapping then parts[2] = { name = "mapping", value = json.encode(mapping) } end
  local body, ct = M.multipart(parts)
  return self:request("POST", "/campaigns/" .. campaign_id .. "/leads", body, { ["Content-Type"] = ct })
end

--- Polls an upload job until COMPLETED or FAILED; returns the last body and
-- the list of statuses seen.
function Sandbox:wait_job(campaign_id, job_id, max_polls)
  local seen, body = {}, nil
  for _ = 1, max_polls or 50 do
    local st
    st, body = self:request("GET", "/campaigns/" .. campaign_id .. "/leads/upload/" .. job_id)
    if st ~= 200 then return nil, body end
    seen[#seen + 1] = body.status
    if body.status == "COMPLETED" or body.status == "FAILED" then break end
  end
  return body, seen
end

--- A control API call: method, path under /__sandbox, JSON body table.
-- Returns the decoded body; raises on a failure.
function Sandbox:control(method, path, body)
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  local status, data = self:request(method, "/__sandbox" .. path, body)
  if not status then error("sandbox control " .. method .. " " .. path .. ": " .. tostring(data), 2) end
  if status >= 300 then
    error(("sandbox control %s %s: %d %s"):format(method, path, status,
      type(data) == "table" and tostring(data.detail) or tostring(data)), 2)
  end
  return data
end

--- The request log: array of {seq=, method=, path=, query=, body=,
-- status=, key_present=, fault=, conn=, ...}. since: only entries after seq.
function Sandbox:log(since)
  return self:control("GET", "/log" .. (since and ("?since=" .. since) or ""))
end

--- Injects a fault (doc/sandbox.md lists the kinds); returns it with its id.
function Sandbox:fault(f)
  return self:control("POST", "/faults", f)
end

--- Forgets state, faults, keys and the log.
function Sandbox:reset()
  return self:control("POST", "/reset")
end

--- Sets the accepted keys: { [key] = { scopes = {...} } }.
function Sandbox:keys(keys)
  return self:control("POST", "/keys", { keys = keys })
end

--- Changes options at run time: rate_limit, rate_window, rate_limit_hour,
-- rate_window_hour, latency_ms, job_step_ms.
function Sandbox:config(c)
  return self:control("POST", "/config", c)
end

--- Sets the sandbox's clock: { now = unix_seconds } freezes it there,
-- { advance = s } moves it on, { real = true } goes back to the real time.
function Sandbox:clock(c)
  return self:control("POST", "/clock", c)
end

--- Counts log entries by method (nil = any) and a Lua pattern on the path
-- relative to the base URL (e.g. "^/campaigns$").
function Sandbox:count(method, pattern)
  local n = 0
  for _, e in ipairs(self:log()) do
    if (method == nil or e.method == method) and (pattern == nil or (e.path or ""):find(pattern)) then
      n = n + 1
    end
  end
  return n
end

--- Stops the child; idempotent.
function Sandbox:stop()
  if self.stopped then return end
  self.stopped = true
  running[self] = nil
  pcall(M.http, { url = self.base .. "/__sandbox/shutdown", method = "POST",
    headers = { ["X-API-Key"] = self.key }, timeout = 2 })
  local deadline = socket.gettime() + 3
  while socket.gettime() < deadline and alive(self.pid) do socket.sleep(0.02) end
  if alive(self.pid) then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  if self.out then os.remove(self.out) end
end

--- busted hooks for a describe whose tests share one sandbox: started
-- (with opts) in setup, which then calls started(sb); stopped in teardown;
-- reset before each test. busted's hook functions are not globals here,
-- so the spec registers them:
--   local hooks = sandbox.hooks({ rate_limit = false }, function(s) sb = s end)
--   setup(hooks.setup); teardown(hooks.teardown); before_each(hooks.before_each)
function M.hooks(opts, started)
  local sb
  return {
    setup = function()
      sb = M.start(opts)
      if started then started(sb) end
    end,
    teardown = function()
      if sb then sb:stop() end
    end,
    before_each = function()
      sb:reset()
    end,
  }
end

--- Stops every sandbox this process started.
function M.stop_all()
  for sb in pairs(running) do sb:stop() end
end

-- at exit (Lua 5.4 closes the state; LuaJIT collects at lua_close too)
M._gc_guard = setmetatable({}, { __gc = function() M.stop_all() end })
if _VERSION == "Lua 5.1" and newproxy then
  local p = newproxy(true)
  getmetatable(p).__gc = function() M.stop_all() end
  M._gc_proxy = p
end

return M
