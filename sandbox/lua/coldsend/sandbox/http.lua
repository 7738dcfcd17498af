--- coldsend.sandbox.http: a small HTTP/1.1 server over LuaSocket.
--
-- One coroutine per connection, scheduled over `socket.select`. A coroutine
-- waits by yielding ("r", sock, deadline), ("w", sock, deadline) or
-- ("t", deadline); nothing ever blocks the process, so a delayed answer on
-- one connection holds up no other. Delays are timers of the select loop.
--
-- Requests: keep-alive (HTTP/1.1 default, HTTP/1.0 on request),
-- Content-Length and chunked bodies, `Expect: 100-continue`. Malformed
-- request lines or headers get a 400 (or 431, 413, 501) and the connection
-- is closed; the server keeps serving every other connection.
local socket = require "socket"
local json = require "coldsend.json"

local M = {}

local gettime = socket.gettime
local yield = coroutine.yield

M.REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [415] = "Unsupported Media Type",
  [417] = "Expectation Failed", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

-- -------------------------------------------------------------------------
-- The scheduler
-- -------------------------------------------------------------------------

local Loop = {}
Loop.__index = Loop

function M.loop()
  return setmetatable({
    waits = {},      -- co -> {kind, sock, deadline}
    readers = {},    -- sock -> co
    writers = {},    -- sock -> co
    nconn = 0,       -- open connections
    running = true,
    on_error = function(msg) io.stderr:write("coldsend-sandbox: ", msg, "\n") end,
  }, Loop)
end

--- Waits until sock is readable; false when the deadline passed first.
function M.wait_read(sock, deadline) return yield("r", sock, deadline) end
function M.wait_write(sock, deadline) return yield("w", sock, deadline) end
--- Sleeps inside a connection coroutine (a timer of the select loop).
function M.sleep(seconds)
  if seconds and seconds > 0 then yield("t", nil, gettime() + seconds) end
end
M.gettime = gettime

function Loop:spawn(fn, ...)
  local co = coroutine.create(fn)
  self:resume(co, ...)
  return co
end

function Loop:resume(co, ...)
  local w = self.waits[co]
  if w then
    self.waits[co] = nil
    if w.kind == "r" then self.readers[w.sock] = nil
    elseif w.kind == "w" then self.writers[w.sock] = nil end
  end
  local ok, kind, sock, deadline = coroutine.resume(co, ...)
  if not ok then
    self.on_error(debug.traceback(co, tostring(kind)))
    return
  end
  if coroutine.status(co) == "dead" then return end
  local rec = { kind = kind, sock = sock, deadline = deadline }
  self.waits[co] = rec
  if kind == "r" then self.readers[sock] = co
  elseif kind == "w" then self.writers[sock] = co end
end

--- Resumes at once the coroutine waiting on sock (closed under it).
function Loop:wake(sock)
  local co = self.readers[sock] or self.writers[sock]
  if co then self:resume(co, true) end
end

--- Descriptors at or above this are closed at accept: select() takes only
-- descriptors below FD_SETSIZE (1024) and raises for any other.
M.MAX_FD = 1000

--- One turn of the loop: select with the earliest deadline as timeout.
function Loop:step(server_sock, on_accept, max_wait)
  local now = gettime()
  local timeout = max_wait or 1
  for _, w in pairs(self.waits) do
    if w.deadline then
      local d = w.deadline - now
      if d < timeout then timeout = d end
    end
  end
  if timeout < 0 then timeout = 0 end
  local recvt, sendt = {}, {}
  if server_sock then recvt[1] = server_sock end
  for s in pairs(self.readers) do recvt[#recvt + 1] = s end
  for s in pairs(self.writers) do sendt[#sendt + 1] = s end
  local ok, r, w = pcall(socket.select, recvt, sendt, timeout)
  if not ok then -- never expected (descriptors are checked at accept): keep serving
    self.on_error("select: " .. tostring(r))
    r, w = {}, {}
    socket.sleep(0.01)
  end
  for _, s in ipairs(r or {}) do
    if s == server_sock then
      -- accept everything pending
      for _ = 1, 64 do
        local c = server_sock:accept()
        if not c then break end
        if c:getfd() >= M.MAX_FD then
          c:close() -- refused: select could not watch it
        else
          on_accept(c)
        end
      end
    else
      local co = self.readers[s]
      if co then self:resume(co, true) end
    end
  end
  for _, s in ipairs(w or {}) do
    local co = self.writers[s]
    if co then self:resume(co, true) end
  end
  now = gettime()
  local due = {}
  for co, wt in pairs(self.waits) do
    if wt.deadline and wt.deadline <= now then due[#due + 1] = co end
  end
  for _, co in ipairs(due) do
    local wt = self.waits[co]
    if wt then self:resume(co, wt.kind == "t") end
  end
end

-- -------------------------------------------------------------------------
-- Connections
-- -------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn
M.Conn = Conn

function M.conn(sock, id, opts)
  sock:settimeout(0)
  sock:setoption("tcp-nodelay", true)
  return setmetatable({ sock = sock, id = id, buf = "", opts = opts or {} }, Conn)
end

--- Reads more bytes into self.buf. true, or nil and "closed"/"timeout".
function Conn:fill(deadline)
  while true do
    local data, err, partial = self.sock:receive(65536)
    local chunk = data or partial
    if chunk and #chunk > 0 then
      self.buf = self.buf .. chunk
      return true
    end
    if err == "closed" then self.eof = true return nil, "closed" end
    if err ~= "timeout" then self.eof = true return nil, err end
    if not M.wait_read(self.sock, deadline) then return nil, "timeout" end
  end
end

--- Reads exactly n bytes (without quadratic concatenation).
function Conn:read_exact(n, deadline)
  if #self.buf >= n then
    local s = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 1)
    return s
  end
  local parts, have = { self.buf }, #self.buf
  self.buf = ""
  while have < n do
    local data, err, partial = self.sock:receive(math.min(n - have, 1048576))
    local chunk = data or partial
    if chunk and #chunk > 0 then
      parts[#parts + 1] = chunk
      have = have + #chunk
    elseif err == "timeout" then
      if not M.wait_read(self.sock, deadline) then return nil, "timeout" end
    else
      self.eof = true
      return nil, err or "closed"
    end
  end
  return table.concat(parts)
end

--- Reads up to and including the next CRLF (or LF); returns the line
-- without its terminator. `max` bounds the line length.
function Conn:read_line(deadline, max)
  while true do
    local i = self.buf:find("\n", 1, true)
    if i then
      local line = self.buf:sub(1, i - 1)
      self.buf = self.buf:sub(i + 1)
      if line:sub(-1) == "\r" then line = line:sub(1, -2) end
      return line
    end
    if max and #self.buf > max then return nil, "too long" end
    local ok, err = self:fill(deadline)
    if not ok then return nil, err end
  end
end

--- Sends s (yielding while the socket is full). true or nil, err.
function Conn:send(s, deadline)
  local i = 1
  while i <= #s do
    local last, err, partial = self.sock:send(s, i)
    if last then
      i = last + 1
    else
      if partial and partial >= i then i = partial + 1 end
      if err == "timeout" then
        if not M.wait_write(self.sock, deadline) then return nil, "timeout" end
      else
        return nil, err
      end
    end
  end
  return true
end

--- Closes; with reset = true an abortive close (RST instead of FIN).
function Conn:close(reset)
  if self.closed then return end
  self.closed = true
  if reset then pcall(self.sock.setoption, self.sock, "linger", { on = true, timeout = 0 }) end
  self.sock:close()
end

-- -------------------------------------------------------------------------
-- Request parsing
-- -------------------------------------------------------------------------

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
M.url_decode = url_decode

function M.parse_query(qs)
  local q = {}
  if not qs or qs == "" then return q end
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = url_decode(k)
    if q[k] == nil then q[k] = url_decode(v) end
  end
  return q
end

-- An error that ends the connection after an answer.
local function fatal(status, detail)
  return { fatal = true, status = status, detail = detail }
end

--- Reads one request head. Returns req, or nil, err where err is
-- "closed"/"timeout" (nothing to answer) or a fatal table (answer, close).
function Conn:read_head(idle_deadline, head_deadline_s)
  -- skip empty lines before a request line (RFC 9112 2.2)
  local line, err
  local first = true
  repeat
    line, err = self:read_line(first and idle_deadline or (gettime() + head_deadline_s), 8192)
    first = false
    if not line then
      if err == "too long" then return nil, fatal(414, "Request line too long") end
      return nil, err
    end
  until line ~= ""
  local deadline = gettime() + head_deadline_s
  local method, target, version = line:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  if not method or not method:match(TOKEN) then
    return nil, fatal(400, "Invalid HTTP request line")
  end
  if version ~= "1.1" and version ~= "1.0" then
    return nil, fatal(505, "HTTP version not supported")
  end
  if not (target:sub(1, 1) == "/" or target:match("^https?://")) then
    return nil, fatal(400, "Invalid request target")
  end
  if target:find("[%c ]") then return nil, fatal(400, "Invalid request target") end
  local headers, size, count = {}, #line, 0
  while true do
    local h, herr = self:read_line(deadline, 16384)
    if not h then
      if herr == "too long" then return nil, fatal(431, "Request header too large") end
      return nil, herr
    end
    if h == "" then break end
    size, count = size + #h, count + 1
    if size > 65536 or count > 200 then return nil, fatal(431, "Request header fields too large") end
    local name, value = h:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if not name or not name:match(TOKEN) then
      return nil, fatal(400, "Invalid header line")
    end
    if value:find("[%z\r\n]") then return nil, fatal(400, "Invalid header value") end
    name = name:lower()
    if headers[name] then
      if name == "content-length" or name == "host" then
        if headers[name] ~= value then return nil, fatal(400, "Duplicate " .. name .. " header") end
      else
        headers[name] = headers[name] .. ", " .. value
      end
    else
      headers[name] = value
    end
  end
  if version == "1.1" and not headers.host then
    return nil, fatal(400, "Missing Host header")
  end
  if target:match("^https?://") then target = target:match("^https?://[^/]*(.*)$") end
  if target == "" then target = "/" end
  local path, qs = target:match("^([^?#]*)%??([^#]*)")
  local req = {
    method = method, target = target, version = version, headers = headers,
    path = url_decode((path:gsub("+", "%%2B"))), query_string = qs,
    query = M.parse_query(qs), conn_id = self.id,
  }
  local conn_hdr = (headers.connection or ""):lower()
  if version == "1.0" then
    req.keep_alive = conn_hdr:find("keep%-alive") ~= nil
  else
    req.keep_alive = conn_hdr:find("close") == nil
  end
  return req
end

--- Reads the body of req into req.body. max: byte limit. Returns true, or
-- nil, err (closed/timeout) or nil, fatal table.
function Conn:read_body(req, max, body_timeout)
  local h = req.headers
  local deadline = gettime() + body_timeout
  local te = h["transfer-encoding"]
  local cl = h["content-length"]
  if te and cl then return nil, fatal(400, "Both Transfer-Encoding and Content-Length") end
  -- answer `Expect: 100-continue` once the body is going to be read
  local function continue100()
    if (h.expect or ""):lower() == "100-continue" and req.version == "1.1" then
      self:send("HTTP/1.1 100 Continue\r\n\r\n", deadline)
    end
  end
  if te then
    if te:lower() ~= "chunked" then return nil, fatal(501, "Unsupported Transfer-Encoding: " .. te) end
    continue100()
    local parts, total = {}, 0
    while true do
      local line, err = self:read_line(deadline, 1024)
      if not line then
        if err == "too long" then return nil, fatal(400, "Invalid chunk size line") end
        return nil, err
      end
      local hex = line:match("^(%x+)%s*;?.*$")
      if not hex or #hex > 12 then return nil, fatal(400, "Invalid chunk size") end
      local n = tonumber(hex, 16)
      if n == 0 then
        -- trailers until an empty line
        repeat
          local t, terr = self:read_line(deadline, 8192)
          if not t then return nil, terr == "too long" and fatal(400, "Invalid trailer") or terr end
        until t == ""
        break
      end
      total = total + n
      if total > max then return nil, fatal(413, "Request body too large") end
      local data, err2 = self:read_exact(n, deadline)
      if not data then return nil, err2 end
      parts[#parts + 1] = data
      local crlf, err3 = self:read_line(deadline, 2)
      if crlf == nil then return nil, err3 == "too long" and fatal(400, "Invalid chunk") or err3 end
      if crlf ~= "" then return nil, fatal(400, "Invalid chunk terminator") end
    end
    req.body = table.concat(parts)
    return true
  end
  if cl then
    if not cl:match("^%d+$") or #cl > 15 then return nil, fatal(400, "Invalid Content-Length") end
    local n = tonumber(cl)
    -- too big: answered without reading the body (and so without a 100 Continue)
    if n > max then return nil, fatal(413, "Request body too large") end
    continue100()
    if n == 0 then req.body = "" return true end
    local data, err = self:read_exact(n, deadline)
    if not data then return nil, err end
    req.body = data
    return true
  end
  req.body = ""
  return true
end

-- -------------------------------------------------------------------------
-- Responses
-- -------------------------------------------------------------------------

--- Builds the head of a response. res = {status, headers = {Name = v}, body}
function M.head(res, keep_alive, content_length)
  local status = res.status or 200
  local out = { ("HTTP/1.1 %d %s\r\n"):format(status, M.REASONS[status] or "Status") }
  local hdrs = res.headers or {}
  local names = {}
  for k in pairs(hdrs) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    out[#out + 1] = k .. ": " .. tostring(hdrs[k]) .. "\r\n"
  end
  out[#out + 1] = "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT") .. "\r\n"
  out[#out + 1] = "Server: coldsend-sandbox\r\n"
  if content_length then
    out[#out + 1] = "Content-Length: " .. content_length .. "\r\n"
  end
  out[#out + 1] = keep_alive and "Connection: keep-alive\r\n" or "Connection: close\r\n"
  out[#out + 1] = "\r\n"
  return table.concat(out)
end

--- A JSON response table {status, headers, body}: body encoded, Content-Type
-- application/json, plus any headers given.
function M.json_response(status, body, headers)
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return { status = status, headers = h, body = json.encode(body) }
end

return M
