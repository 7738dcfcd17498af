--- coldsend.sandbox.connections: the server on its socket: binding,
-- accepting under the connection cap, serving each connection's requests
-- (keep-alive) in a coroutine of the select loop (coldsend.sandbox.http),
-- and stopping on shutdown, idleness or the parent's exit.
local socket = require "socket"
local json = require "coldsend.json"
local http = require "coldsend.sandbox.http"
local api = require "coldsend.sandbox.api"

local M = {}

local Server = {}
--- Methods of the server, for coldsend.sandbox to mix into its Server.
M.methods = Server

local array = json.array
local json_response = http.json_response

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
    local is_upload = req.method == "POST" and (api.api_path(req.path) or ""):match("^/campaigns/[^/]+/leads$")
    local max = is_upload and o.max_upload_body or o.max_body
    local ok, berr = conn:read_body(req, max, 120)
    if not ok then
      if type(berr) == "table" then
        self:log_request(req, api.api_path(req.path)).status = berr.status
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
  self.url = ("http://%s:%d%s"):format(host, self.port, api.BASE)
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

return M
