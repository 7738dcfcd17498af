-- tinyproxy.lua: a stand-in proxy on 127.0.0.1 for spec/proxy_spec.lua,
-- run as a child process under lua5.4 (LuaSocket).
--
--   lua5.4 spec/helpers/tinyproxy.lua LOG [lifetime_seconds]
--
-- Prints its port on the first line. For every connection it reads the
-- request line and the headers, appends one line to LOG:
--   <request line> | key=<yes|no> | host=<Host header>
-- (whether an X-API-Key header came, never its value), answers 403 and
-- closes: nothing is forwarded anywhere. A request for /__quit ends it, as
-- does the lifetime (default 60 s), so it never outlives a crashed run.
local socket = require "socket"

local log_path = assert(arg[1], "usage: tinyproxy.lua LOG [lifetime]")
local lifetime = tonumber(arg[2]) or 60
local started = socket.gettime()

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0.2)
local _, port = server:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()

local function serve(c)
  c:settimeout(5)
  local line = c:receive("*l")
  if not line then return end
  local key, host = "no", ""
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    if name and name:lower() == "x-api-key" then key = "yes" end
    if name and name:lower() == "host" then host = value end
  end
  if line:find(" /__quit ", 1, true) then
    c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return "quit"
  end
  local f = assert(io.open(log_path, "a"))
  f:write(line, " | key=", key, " | host=", host, "\n")
  f:close()
  c:send("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
end

while socket.gettime() - started < lifetime do
  local c = server:accept()
  if c then
    local quit = serve(c)
    c:close()
    if quit then break end
  end
end
server:close()
