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
--   /bare?code=N          status N with an empty body and no header but Content-Length
--   /headers?code=N&h=H&body=B   status N with the headers of H ("Name: value"
--                         lines) and body B (default {}), as JSON
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

routes["/bare"] = function(c, req)
  send_all(c, ("HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n"):format(tonumber(req.args.code) or 200))
end

routes["/status"] = function(c, req)
  local h = { { "Content-Type", req.args.type or "application/json" } }
  if req.args.location then h[#h + 1] = { "Location", req.args.location } end
  respond(c, tonumber(req.args.code) or 200, h, req.args.body or "")
end

routes["/headers"] = function(c, req)
  local h = { { "Content-Type", "application/json" } }
  for name, value in (req.args.h or ""):gmatch("([^:\n]+):[ \t]*([^\n]*)") do
    h[#h + 1] = { name, value }
  end
  respond(c, tonumber(req.args.code) or 200, h, req.args.body or "{}")
end

routes["/__stats"] = function(c) json(c, 200, stats) end

-- /h/MODE/...: a hostile answer to any path under it (hostile_server_spec,
-- doctor_spec),
-- so that a client with base URL /h/MODE meets it on every call.
local hostile = {
  -- the key of the request, echoed in the error body and in a header
  echo_key = function(c, req)
    local key = req.headers["x-api-key"] or ""
    respond(c, 401, { { "Content-Type", "application/json" }, { "X-Echo", key } },
      cjson.encode { detail = "Invalid or revoked API key " .. key })
  end,
  -- the request body (passwords included) echoed in a 422 detail
  echo_body = function(c, req)
    json(c, 422, { detail = { { loc = { "body", "smtp_password" }, msg = "bad: " .. req.body,
      type = "value_error" } } })
  end,
  huge_header = function(c)
    respond(c, 200, { { "Content-Type", "application/json" }, { "X-Big", string.rep("h", 200000) } },
      "{}")
  end,
  many_headers = function(c, req)
    local h = { { "Content-Type", "application/json" } }
    for i = 1, 5000 do h[#h + 1] = { "X-H" .. i, "v" } end
    local id = req.path:match("/campaigns/([%x-]+)") or "550e8400-e29b-41d4-a716-446655440000"
    respond(c, 200, h, cjson.encode { campaign_id = id, name = "Many headers", status = "DRAFT" })
  end,
  bad_header = function(c)
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nno colon here\r\n"
      .. "\1\2\3: \27[2J\r\nContent-Length: 2\r\n\r\n{}")
  end,
  escape_name = function(c, req)
    local id = req.path:match("/campaigns/([%x-]+)") or "550e8400-e29b-41d4-a716-446655440000"
    json(c, 200, { campaign_id = id, name = "Evil\27]0;pwned\7\27[2J", status = "DRAFT\27[31m",
      missing_requirements = { "\27[2Jleads" } })
  end,
  empty_200 = function(c) respond(c, 200, { { "Content-Type", "application/json" } }, "") end,
  retry_after_huge = function(c)
    respond(c, 503, { { "Content-Type", "application/json" }, { "Retry-After", "99999999999999999999" } },
      '{"detail":"later"}')
  end,
  truncated = function(c)
    send_all(c, "HTTP/1.1 200 X\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
      .. '{"campaign_id": "550e8400-e29b-41d4-a716-446655440000", "na')
    c.sock:close()
    conns[c.sock] = nil
  end,
  long_loc = function(c)
    local loc = { "body" }
    for i = 2, 500 do loc[i] = "a" end
    json(c, 422, { detail = { { loc = loc, msg = "bad", type = "x" } } })
  end,
  many_details = function(c)
    local d = {}
    for i = 1, 20000 do d[i] = { loc = { "body", "f" .. i }, msg = "bad\27[2J", type = "x" } end
    json(c, 422, { detail = d })
  end,
  deep_json = function(c)
    respond(c, 200, { { "Content-Type", "application/json" } },
      string.rep('{"a":', 5000) .. "1" .. string.rep("}", 5000))
  end,
  json_array = function(c) respond(c, 200, { { "Content-Type", "application/json" } }, "[1,2,3]") end,
  bad_utf8 = function(c)
    respond(c, 400, { { "Content-Type", "application/json" } }, '{"detail":"bad \xff\xfe\xc0\xaf byte"}')
  end,
  nul_body = function(c)
    respond(c, 500, { { "Content-Type", "application/json" } }, '{"detail":"a\0b"}\0\0')
  end,
  redirect_away = function(c)
    respond(c, 302, { { "Content-Type", "application/json" }, { "Location", "http://127.0.0.1:1/steal" } },
      "{}")
  end,
  status_999 = function(c) respond(c, 999, { { "Content-Type", "application/json" } }, "{}") end,
  -- rate-limit headers that are numbers, but no counts
  odd_ratelimit = function(c)
    respond(c, 200, { { "Content-Type", "application/json" }, { "X-RateLimit-Limit", "100.5" },
      { "X-RateLimit-Remaining", "1e999" }, { "X-RateLimit-Reset", "-0x10" } },
      '{"campaigns": [], "pagination": {"page": 1, "limit": 1, "total": 0, "pages": 0}}')
  end,
}

local function hostile_route(c, req)
  local mode = req.path:match("^/h/([%w_]+)")
  local fn = hostile[mode]
  if fn then fn(c, req) else json(c, 404, { detail = "no hostile mode " .. tostring(mode) }) end
end

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
    local route = routes[path] or (path:find("^/h/") and hostile_route)
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
