-- rawhttpd.lua: a scripted HTTP/1.1 server on 127.0.0.1 for the transport
-- specs, run as a child process under lua5.4 (LuaSocket, lua-cjson).
--
--   lua5.4 spec/helpers/rawhttpd.lua [lifetime_seconds]
--
-- Prints "PORT CLOSED_PORT SILENT_PORT" on its first line (CLOSED_PORT: a
-- port that was bound and released, for connection-refused tests;
-- SILENT_PORT: connections are accepted and never answered, for timeouts
-- during a TLS handshake or before any answer), then serves until a
-- request for /__quit or until the lifetime (default 60 s) runs out, so it
-- never outlives a crashed test run. Keep-alive is honoured, several
-- connections are served at once, and every answer is chosen by the path:
--
--   /json                 200 {"ok": true}
--   /echo                 200 JSON {method, path, headers, body, conn, n}
--   /slow?ms=N            the /json answer after N ms (other connections go on)
--   /stall?ms=N           headers and half the body, then nothing for N ms
--   /reset                the connection reset before any answer
--   /reset-mid            headers and part of the body, then a reset
--   /big?n=N              N bytes of body ("x" repeated), Content-Length set
--   /chunked              a chunked body, mixed-case and repeated headers
--   /garbage              an answer that is not HTTP/1.x, then a close
--   /status?code=N&type=T&body=B&location=L   any status, type and body
--   /__stats              {"connections": N, "requests": N}
--   /__quit               answers, then exits
local socket = require "socket"
local cjson = require "cjson"

local lifetime = tonumber(arg[1]) or 60
local started = socket.gettime()

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
local probe = assert(socket.bind("127.0.0.1", 0))
local _, closed_port = probe:getsockname()
probe:close()
local silent = assert(socket.bind("127.0.0.1", 0))
silent:settimeout(0)
local _, silent_port = silent:getsockname()
local silent_conns = {}
io.stdout:write(port, " ", closed_port, " ", silent_port, "\n")
io.stdout:flush()

local conns = {}      -- socket -> state
local pending = {}    -- delayed actions {at=, run=}
local stats = { connections = 0, requests = 0 }
local quitting = false

local function query_args(q)
  local t = {}
  for k, v in (q or ""):gmatch("([^&=]+)=([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

local function send_all(c, data)
  c.sock:settimeout(10)
  local ok = c.sock:send(data)
  c.sock:settimeout(0)
  return ok
end

local function respond(c, status, headers, body)
  local lines = { ("HTTP/1.1 %d X\r\n"):format(status) }
  local has_length = false
  for _, h in ipairs(headers) do
    lines[#lines + 1] = h[1] .. ": " .. h[2] .. "\r\n"
    if h[1]:lower() == "content-length" or h[1]:lower() == "transfer-encoding" then
      has_length = true
    end
  end
  if not has_length then lines[#lines + 1] = "Content-Length: " .. #body .. "\r\n" end
  lines[#lines + 1] = "\r\n"
  send_all(c, table.concat(lines) .. body)
end

local function json(c, status, t)
  respond(c, status, { { "Content-Type", "application/json" } }, cjson.encode(t))
end

local function reset(c)
  c.sock:setoption("linger", { on = true, timeout = 0 }) -- close sends RST
  c.sock:close()
  conns[c.sock] = nil
end

local function later(ms, fn)
  pending[#pending + 1] = { at = socket.gettime() + ms / 1000, run = fn }
end

local routes = {}

routes["/json"] = function(c) json(c, 200, { ok = true }) end

routes["/echo"] = function(c, req)
  json(c, 200, { method = req.method, path = req.target, headers = req.headers,
    body = req.body, conn = c.id, n = c.n })
end

routes["/slow"] = function(c, req)
  c.busy = true
  later(tonumber(req.args.ms) or 1000, function()
    c.busy = false
    if conns[c.sock] then json(c, 200, { ok = true, slow = true }) end
  end)
end

routes["/stall"] = function(c, req)
  c.busy = true
  send_all(c, "HTTP/1.1 200 X\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"ok\": tr")
  later(tonumber(req.args.ms) or 3000, function()
    c.busy = false
    if conns[c.sock] then send_all(c, "ue, \"p\": 1}") end
  end)
end

routes["/reset"] = function(c) reset(c) end

routes["/reset-mid"] = function(c)
  send_all(c, "HTTP/1.1 200 X\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    .. string.rep("x", 100))
  socket.sleep(0.05)
  reset(c)
end

routes["/big"] = function(c, req)
  respond(c, 200, { { "Content-Type", "application/json" } }, string.rep("x", tonumber(req.args.n) or 0))
end

routes["/chunked"] = function(c)
  local chunks = { '{"chunks": ', '["a", "b",', ' "c"]}' }
  local out = { "HTTP/1.1 200 X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    .. "X-Mixed-CASE: Yes\r\nX-Multi: one\r\nx-multi: two\r\nX-Spaces:   padded value  \r\n\r\n" }
  for _, ch in ipairs(chunks) do out[#out + 1] = ("%x\r\n%s\r\n"):format(#ch, ch) end
  out[#out + 1] = "0\r\n\r\n"
  send_all(c, table.concat(out))
end

routes["/garbage"] = function(c)
  send_all(c, "HELLO THERE\r\n\r\n")
  c.sock:close()
  conns[c.sock] = nil
end

routes["/status"] = function(c, req)
  local h = { { "Content-Type", req.args.type or "application/json" } }
  if req.args.location then h[#h + 1] = { "Location", req.args.location } end
  respond(c, tonumber(req.args.code) or 200, h, req.args.body or "")
end

routes["/__stats"] = function(c) json(c, 200, stats) end

routes["/__quit"] = function(c)
  json(c, 200, { bye = true })
  quitting = true
end

-- Reads a request body framed by Content-Length or chunked encoding from
-- buf at pos; returns body and the next position, or nil when incomplete.
local function read_body(headers, buf, pos)
  local te = headers["transfer-encoding"]
  if te and te:lower():find("chunked", 1, true) then
    local parts = {}
    while true do
      local eol = buf:find("\r\n", pos, true)
      if not eol then return nil end
      local size = tonumber(buf:sub(pos, eol - 1):match("^%x+"), 16)
      if not size then return nil end
      if size == 0 then
        local fin = buf:find("\r\n\r\n", eol, true)
        if not fin then return nil end
        return table.concat(parts), fin + 4
      end
      if #buf < eol + 2 + size + 1 then return nil end
      parts[#parts + 1] = buf:sub(eol + 2, eol + 1 + size)
      pos = eol + 2 + size + 2
    end
  end
  local n = tonumber(headers["content-length"] or 0)
  if #buf - pos + 1 < n then return nil end
  return buf:sub(pos, pos + n - 1), pos + n
end

-- Handles every complete request in c.buf (one at a time: no pipelining).
local function serve(c)
  while not c.busy and conns[c.sock] do
    if #c.buf > 0 and not c.buf:find("^%u") then -- not HTTP (a TLS hello, say)
      c.sock:close()
      conns[c.sock] = nil
      return
    end
    local head_end = c.buf:find("\r\n\r\n", 1, true)
    if not head_end then
      if #c.buf > 65536 then reset(c) end
      return
    end
    local method, target = c.buf:match("^(%u+) (%S+) HTTP/1%.[01]\r\n")
    if not method then -- a malformed request line: drop the connection
      c.sock:close()
      conns[c.sock] = nil
      return
    end
    local headers = {}
    for name, value in c.buf:sub(1, head_end):gmatch("\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
      name = name:lower()
      headers[name] = headers[name] and headers[name] .. ", " .. value or value
    end
    local body, next_pos = read_body(headers, c.buf, head_end + 4)
    if not body then return end
    c.buf = c.buf:sub(next_pos)
    c.n = c.n + 1
    stats.requests = stats.requests + 1
    local path, q = target:match("^([^?]*)%??(.*)$")
    local req = { method = method, target = target, path = path, args = query_args(q),
      headers = headers, body = body }
    local route = routes[path]
    if route then route(c, req) else json(c, 404, { detail = "no route " .. path }) end
  end
end

while not quitting and socket.gettime() - started < lifetime do
  local watch = { server, silent }
  for s in pairs(conns) do watch[#watch + 1] = s end
  local wait = 0.05
  local readable = socket.select(watch, nil, wait)
  for _, s in ipairs(readable) do
    if s == silent then
      local client = silent:accept() -- kept open, never read or answered
      if client then silent_conns[#silent_conns + 1] = client end
    elseif s == server then
      local client = server:accept()
      if client then
        client:settimeout(0)
        client:setoption("tcp-nodelay", true)
        stats.connections = stats.connections + 1
        conns[client] = { sock = client, id = stats.connections, n = 0, buf = "" }
      end
    elseif conns[s] then
      local c = conns[s]
      local data, err, partial = s:receive(65536)
      data = data or partial
      if data and #data > 0 then c.buf = c.buf .. data end
      if err == "closed" then
        s:close()
        conns[s] = nil
      else
        serve(c)
      end
    end
  end
  local now = socket.gettime()
  for i = #pending, 1, -1 do
    local p = pending[i]
    if p.at <= now then
      table.remove(pending, i)
      p.run()
    end
  end
  for _, c in pairs(conns) do serve(c) end -- requests that waited behind a delay
end

for s in pairs(conns) do s:close() end
for _, s in ipairs(silent_conns) do s:close() end
server:close()
silent:close()
