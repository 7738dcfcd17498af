--- spec/helpers/tlsd.lua: TLS test servers: `openssl s_server -www` on a
-- free 127.0.0.1 port with a fresh self-signed EC certificate. It answers
-- every GET with its HTML status page.
--
--   local tlsd = require "spec.helpers.tlsd"
--   local srv = tlsd.start(dir, "self", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
--   srv.port, srv.cert (the certificate, usable as ca_file), srv.pid
--   srv:stop()
--   tlsd.start_expired(dir, "old")  -- a certificate that expired in 2020,
--                                   -- issued by a CA of its own: srv.ca
local socket = require "socket"
local util = require "spec.helpers.util"

local M = {}

local function sh(cmd)
  local rc, out, err = util.run("(" .. cmd .. ")")
  assert(rc == 0, cmd .. ": " .. out .. err)
end

local Server = {}
Server.__index = Server

--- Kills the server; idempotent.
function Server:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
end

-- Starts s_server with TAG.pem and TAG.key of dir and waits until it
-- accepts connections.
local function serve(dir, tag)
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

local NEW_KEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

--- Makes TAG.key and TAG.pem in dir (subject subj, subjectAltName san),
-- self-signed, and serves them.
function M.start(dir, tag, subj, san)
  sh(("cd %s && openssl req -x509 %s -keyout %s.key -out %s.pem -days 2 -subj %s "
    .. "-addext subjectAltName=%s"):format(util.q(dir), NEW_KEY, tag, tag, util.q(subj), util.q(san)))
  return serve(dir, tag)
end

-- The smallest `openssl ca` configuration: it is what can set past dates.
local CA_CONF = [[
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = TAG-index.txt
new_certs_dir = .
serial = TAG-serial
default_md = sha256
policy = policy_any
copy_extensions = copy
[ policy_any ]
commonName = supplied
]]

--- A certificate for localhost and 127.0.0.1, valid only on 1 January
-- 2020, issued by a CA made for it (TAG-ca.pem, the server's `ca`).
function M.start_expired(dir, tag)
  util.write(dir .. "/" .. tag .. "-ca.cnf", (CA_CONF:gsub("TAG", tag)))
  util.write(dir .. "/" .. tag .. "-index.txt", "")
  util.write(dir .. "/" .. tag .. "-serial", "01\n")
  sh(("cd %s && openssl req -x509 %s -keyout %s-ca.key -out %s-ca.pem -days 2 -subj '/CN=Test CA' "
    .. "&& openssl req %s -keyout %s.key -out %s.csr -subj /CN=localhost "
    .. "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
    .. "&& openssl ca -batch -config %s-ca.cnf -cert %s-ca.pem -keyfile %s-ca.key -in %s.csr "
    .. "-out %s.pem -startdate 20200101000000Z -enddate 20200102000000Z -notext"):format(
      util.q(dir), NEW_KEY, tag, tag, NEW_KEY, tag, tag, tag, tag, tag, tag, tag))
  local srv = serve(dir, tag)
  srv.ca = dir .. "/" .. tag .. "-ca.pem"
  return srv
end

return M
