--- spec/helpers/tlsd.lua: TLS test servers: `openssl s_server -www` on a
-- free 127.0.0.1 port with a fresh self-signed EC certificate. It answers
-- every GET with its HTML status page.
--
--   local tlsd = require "spec.helpers.tlsd"
--   local srv = tlsd.start(dir, "self", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
--   srv.port, srv.cert (the certificate, usable as ca_file), srv.pid
--   srv:stop()
local socket = require "socket"
local util = require "spec.helpers.util"

local M = {}

local function sh(cmd)
  local rc, out, err = util.run(cmd)
  assert(rc == 0, cmd .. ": " .. out .. err)
end

local Server = {}
Server.__index = Server

--- Kills the server; idempotent.
function Server:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
end

--- Makes TAG.key and TAG.pem in dir (subject subj, subjectAltName san),
-- starts s_server with them and waits until it accepts connections.
function M.start(dir, tag, subj, san)
  sh(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    .. "-keyout %s.key -out %s.pem -days 2 -subj %s -addext subjectAltName=%s"):format(
      util.q(dir), tag, tag, util.q(subj), util.q(san)))
  local s = assert(socket.bind("127.0.0.1", 0))
  local port = select(2, s:getsockname())
  s:close()
  local p = assert(io.popen(("cd %s && (openssl s_server -accept 127.0.0.1:%d -cert %s.pem "
    .. "-key %s.key -www -quiet </dev/null >%s.log 2>&1 & echo $!)"):format(util.q(dir), port, tag, tag, tag)))
  local pid = tonumber(p:read("*l"))
  p:close()
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    local up = c:connect("127.0.0.1", port)
    c:close()
    if up then break end
    socket.sleep(0.05)
  end
  return setmetatable({ port = port, pid = pid, cert = dir .. "/" .. tag .. ".pem" }, Server)
end

return M
