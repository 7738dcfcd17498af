--- coldsend.transport.resty: the transport contract over lua-resty-http.
--
-- For OpenResty hosts that would rather use cosockets than a thread pool
-- (no `thread_pool` directive, no C module in the worker threads):
--
--   local cs = coldsend.client{ api_key = key,
--     transport = require("coldsend.transport.resty").new{ keepalive_timeout = 60 } }
--
-- TLS is always verified. Cosockets verify against nginx's
-- `lua_ssl_trusted_certificate` (set it, e.g. to
-- /etc/ssl/certs/ca-certificates.crt); a per-request `ca_file` cannot be
-- honoured by cosockets and is ignored, which fails closed, never open.
-- @module coldsend.transport.resty

local ngx_transport = require "coldsend.transport.ngx"

local M = { _NAME = "coldsend.transport.resty" }

local DEFAULT_MAX_BODY = 8 * 1024 * 1024
local CHUNK = 64 * 1024

local function now()
  local n = rawget(_G, "ngx")
  if type(n) == "table" and n.now then
    n.update_time()
    return n.now()
  end
  return os.time()
end

-- host may be a bracketed IPv6 literal; the port is optional
local function split_url(url)
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if rest == "" then rest = "/" end
  rest = rest:gsub("#.*$", "")
  return scheme, host, port, rest
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end

-- lua-resty-http and cosocket error strings -> contract codes
local function classify(err, scheme)
  err = tostring(err or "unknown error")
  local e = err:lower()
  if e:find("timeout", 1, true) or e:find("timed out", 1, true) then return "timeout" end
  if scheme == "https" and (e:find("ssl", 1, true) or e:find("handshake", 1, true)
      or e:find("certificate", 1, true) or e:find("verify", 1, true)
      or e:match("^%d+: ")) then
    return "tls"
  end
  return "network"
end

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do
    if type(k) == "string" then
      if type(v) == "table" then v = table.concat(v, ", ") end
      out[k:lower()] = tostring(v)
    end
  end
  return out
end

local function quote_param(s)
  return (tostring(s):gsub('[\\"]', "\\%0"):gsub("[\r\n]", " "))
end

-- multipart/form-data as a body iterator with an exact Content-Length, so a
-- file part streams from disk (prefix, then `length` bytes from `offset`)
-- instead of being read into memory.
local function multipart_body(parts)
  local boundary = ("coldsend-%08x%08x"):format(math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local pieces, total = {}, 0
  local function add(piece, size)
    pieces[#pieces + 1] = piece
    total = total + size
  end
  for _, p in ipairs(parts) do
    if type(p) ~= "table" or type(p.name) ~= "string" then
      return nil, "bad multipart part (table with a name expected)"
    end
    if p.file then
      local f, err = io.open(p.file, "rb")
      if not f then return nil, err end
      local size = f:seek("end")
      f:close()
      local offset = p.offset or 0
      local length = p.length or (size - offset)
      if offset + length > size then
        return nil, ("%s: %d bytes from offset %d run past the end (%d bytes)"):format(p.file, length, offset, size)
      end
      local head = ('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n')
        :format(boundary, quote_param(p.name), quote_param(p.filename or p.file:match("[^/]*$")),
          p.content_type or "application/octet-stream")
      add(head, #head)
      if p.prefix and p.prefix ~= "" then add(p.prefix, #p.prefix) end
      add({ file = p.file, offset = offset, length = length }, length)
      add("\r\n", 2)
    else
      local v = tostring(p.value or "")
      local head = ('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n')
        :format(boundary, quote_param(p.name))
      add(head .. v .. "\r\n", #head + #v + 2)
    end
  end
  local tail = "--" .. boundary .. "--\r\n"
  add(tail, #tail)

  local i, f, left = 0, nil, 0
  local function iter()
    while true do
      if f then
        if left > 0 then
          local chunk = f:read(math.min(CHUNK, left))
          if not chunk then
            f:close()
            f = nil
            return nil, "file shrank while uploading"
          end
          left = left - #chunk
          return chunk
        end
        f:close()
        f = nil
      end
      i = i + 1
      local piece = pieces[i]
      if piece == nil then return nil end
      if type(piece) == "string" then return piece end
      local err
      f, err = io.open(piece.file, "rb")
      if not f then return nil, err end
      f:seek("set", piece.offset)
      left = piece.length
    end
  end
  return iter, "multipart/form-data; boundary=" .. boundary, total
end

--- Returns a transport function `transport(req) -> res | nil, message, code, info`.
-- opts.max_body: response body cap in bytes (default 8 MiB; req.max_body wins);
-- opts.keepalive_timeout: seconds an idle connection is kept (default 60,
-- false to close after each call); opts.keepalive_pool: pool size per host.
function M.new(opts)
  opts = ngx_transport.new_options(opts)
  local max_body = opts.max_body or DEFAULT_MAX_BODY
  local keepalive = opts.keepalive_timeout
  if keepalive == nil then keepalive = 60 end
  local pool_size = opts.keepalive_pool

  local ok, http = pcall(require, "resty.http")
  if not ok then
    error("coldsend.transport.resty needs lua-resty-http (require 'resty.http' failed): " .. tostring(http), 2)
  end

  return function(req)
    -- cosockets exist only where nginx can wait: say so before they raise
    if ngx_transport.available() then
      local fine, why = ngx_transport.check_phase()
      if not fine then error(why, 2) end
    end

    local scheme, host, port, path = split_url(req.url or "")
    if not scheme then
      return nil, ("bad URL %q"):format(tostring(req.url)), "network", { sent = false }
    end
    local timeout = req.timeout or 60
    local connect_timeout = math.min(req.connect_timeout or timeout, timeout)
    local cap = req.max_body or max_body
    local started = now()
    local deadline = started + timeout

    local httpc, err = http.new()
    if not httpc then return nil, "lua-resty-http: " .. tostring(err), "network", { sent = false } end
    httpc:set_timeouts(connect_timeout * 1000, timeout * 1000, timeout * 1000)

    local function fail(message, sent, code)
      httpc:close()
      code = code or classify(message, scheme)
      return nil, tostring(message), code, { sent = sent }
    end

    local connected
    connected, err = httpc:connect {
      scheme = scheme, host = host, port = port,
      ssl_verify = true, -- never switched off
      ssl_server_name = (scheme == "https" and not is_ip(host)) and host or nil,
      pool_size = pool_size,
    }
    if not connected then return fail(err, false) end

    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    local body = req.body
    if req.multipart then
      local iter, ctype, length = multipart_body(req.multipart)
      if not iter then return fail(ctype, false, "network") end
      body = iter
      headers["Content-Type"] = ctype
      headers["Content-Length"] = tostring(length)
    end

    local left = deadline - now()
    if left <= 0 then return fail("timeout", false, "timeout") end
    httpc:set_timeouts(connect_timeout * 1000, left * 1000, left * 1000)
    local res
    res, err = httpc:request { method = req.method or "GET", path = path, headers = headers, body = body }
    if not res then return fail(err, true) end

    local rheaders = lower_headers(res.headers)
    local declared = tonumber(rheaders["content-length"])
    if declared and declared > cap then
      return fail(("response body of %d bytes is over the %d-byte cap"):format(declared, cap), true, "protocol")
    end

    local chunks, size = {}, 0
    local reader = res.body_reader
    while reader do
      left = deadline - now()
      if left <= 0 then return fail("timeout", true, "timeout") end
      httpc:set_timeout(left * 1000)
      local chunk
      chunk, err = reader(CHUNK)
      if err then return fail(err, true) end
      if not chunk then break end
      size = size + #chunk
      if size > cap then
        return fail(("response body over the %d-byte cap"):format(cap), true, "protocol")
      end
      chunks[#chunks + 1] = chunk
    end

    if keepalive then
      httpc:set_keepalive(keepalive * 1000, pool_size)
    else
      httpc:close()
    end
    return { status = res.status, headers = rheaders, body = table.concat(chunks) }
  end
end

-- exposed for the specs
M._split_url = split_url
M._classify = classify
M._multipart_body = multipart_body

return M
