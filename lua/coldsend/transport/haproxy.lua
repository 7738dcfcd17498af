--- coldsend.transport.haproxy: the transport over HAProxy's own HTTP client.
--
-- Inside HAProxy a blocking libcurl call stalls every connection of the
-- thread running it. This transport sends the request with
-- `core.httpclient()` (HAProxy 2.5 and later), which yields to HAProxy's
-- scheduler while it waits, so the thread keeps serving. The facade picks
-- it, with `core.msleep` for its waits and `core.now` for its clock,
-- whenever it runs inside HAProxy; doc/haproxy.md has the configuration.
--
--   local cs = coldsend.client { api_key = key }   -- inside HAProxy: this transport
--   local t = require("coldsend.transport.haproxy").new { max_body = 1048576 }
--
-- HAProxy's client works only where HAProxy can park the Lua code: in an
-- action, a service or a task. Elsewhere (the body of a `lua-load`ed file,
-- which runs before HAProxy serves anything, or an init function) the
-- transport raises with the way out; it never falls back to blocking.
--
-- TLS is verified by HAProxy with its global `httpclient.ssl.verify`
-- (`required` by default) against `httpclient.ssl.ca-file` (default: the
-- system's CAs); a per-request `ca_file` cannot be honoured and is ignored,
-- which fails closed, never open. Host names are resolved by HAProxy's
-- `default` resolvers section (the nameservers of /etc/resolv.conf, not
-- /etc/hosts). The whole request body is built in memory (HAProxy's
-- client takes a string), a multipart file part included.
-- @module coldsend.transport.haproxy

local M = { _NAME = "coldsend.transport.haproxy" }
-- HAProxy's httpclient connects directly: the client refuses a proxy option here
M.proxies = false

local DEFAULT_MAX_BODY = 8 * 1024 * 1024
local floor, format = math.floor, string.format

local METHODS = { GET = "get", POST = "post", PUT = "put", DELETE = "delete", HEAD = "head" }

local WHERE = "coldsend: the ColdSend API cannot be called here: HAProxy's HTTP client works"
  .. " only in a Lua action, service or task (core.register_action, core.register_service,"
  .. " core.register_task), not in the body of a lua-load'ed file, an init function,"
  .. " a fetch or a converter; call it from one of those%s"

--- True inside HAProxy (its `core` table with the HTTP client).
function M.available()
  local c = rawget(_G, "core")
  return type(c) == "table" and type(c.httpclient) == "function"
    and type(c.register_service) == "function"
end

--- Seconds from HAProxy's clock (`core.now()`).
function M.now()
  local t = core.now()
  return t.sec + t.usec / 1e6
end

--- `true` when the running code can wait for the API (it runs in a
-- coroutine HAProxy can park), else `nil, message` with the way out.
function M.check_phase()
  if not M.available() then
    return nil, "coldsend: not running inside HAProxy (no core.httpclient)"
  end
  if not coroutine.isyieldable() then
    return nil, format(WHERE, " (a task started from the body runs at once: core.register_task(function() ... end))")
  end
  return true
end

--- `core.msleep`, for the facade's backoff and rate-limit waits; it yields
-- to HAProxy, so waiting stalls nothing else.
function M.sleep(seconds)
  local ok, why = M.check_phase()
  if not ok then error(why, 2) end
  core.msleep(floor(seconds * 1000 + 0.5))
end

-- multipart/form-data as one string (HAProxy's client takes a string):
-- coldsend.transport.resty's streaming body, read to the end
local function multipart_body(parts)
  local iter, ctype = require("coldsend.transport.resty")._multipart_body(parts)
  if not iter then return nil, ctype end
  local out = {}
  while true do
    local piece, err = iter()
    if err then return nil, err end
    if piece == nil then break end
    out[#out + 1] = piece
  end
  return table.concat(out), ctype
end

-- HAProxy's client answers failures it met itself with its own error
-- pages, not with an error: tell them from the server's answers. A 503
-- page means no connection was made (refused, unreachable), so the
-- request was not sent. A name that did not resolve gives a 503 with an
-- empty body and only Content-Length: 0, as a server may answer after
-- acting on the request: that one may have been sent.
local OWN = {
  [502] = { "<html><body><h1>502 Bad Gateway</h1>\n", "network", true,
    "the server closed the connection or sent an invalid response" },
  [503] = { "<html><body><h1>503 Service Unavailable</h1>\n", "network", false,
    "could not connect to the server" },
  [504] = { "<html><body><h1>504 Gateway Time-out</h1>\n", "timeout", true,
    "the server did not answer in time" },
}

local function own_failure(res, headers)
  local own = OWN[res.status]
  if not own then return nil end
  local body = res.body or ""
  if body:sub(1, #own[1]) == own[1] and headers["content-type"] == "text/html"
      and headers["cache-control"] == "no-cache" then
    return own
  end
  if res.status == 503 and body == "" and next(headers, next(headers)) == nil
      and (headers["content-length"] == nil or headers["content-length"] == "0") then
    return { nil, "network", true, "an empty 503: the server's, or HAProxy could not resolve the"
      .. " host name (its resolvers read /etc/resolv.conf, not /etc/hosts)" }
  end
  return nil
end

-- header values come as { [0] = first, [1] = second, ... }
local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do
    if type(k) == "string" then
      if type(v) == "table" then
        local vals, i = {}, 0
        while v[i] ~= nil do
          vals[#vals + 1] = tostring(v[i])
          i = i + 1
        end
        for j = 1, #v do
          if vals[j + 1] == nil then vals[#vals + 1] = tostring(v[j]) end
        end
        v = table.concat(vals, ", ")
      end
      out[k:lower()] = tostring(v)
    end
  end
  return out
end

--- Returns a transport function `transport(req) -> res | nil, message, code, info`
-- (doc/internals.md). opts.max_body: response body cap in bytes (default
-- 8 MiB; req.max_body wins).
function M.new(opts)
  opts = require("coldsend.transport.ngx").new_options(opts)
  local max_body = opts.max_body or DEFAULT_MAX_BODY

  return function(req)
    local ok, why = M.check_phase()
    if not ok then error(why, 2) end
    local method = METHODS[req.method or "GET"]
    if not method then
      error(format("coldsend: HAProxy's HTTP client cannot send a %s request", tostring(req.method)), 2)
    end
    local headers = {}
    for k, v in pairs(req.headers or {}) do
      v = tostring(v)
      if tostring(k):find("[\r\n]") or v:find("[\r\n]") then
        error(format("bad header %q (CR or LF in a header)", tostring(k)), 2)
      end
      headers[k] = { v }
    end
    local body = req.body
    if req.multipart then
      local ctype
      body, ctype = multipart_body(req.multipart)
      if not body then return nil, ctype, "invalid", { sent = false } end
      headers["Content-Type"] = { ctype }
    end
    if body ~= nil or method == "post" or method == "put" then
      -- a length, not chunks: HAProxy's client streams a body chunked
      -- unless told its length
      headers["Content-Length"] = { tostring(#(body or "")) }
    end

    local started = M.now()
    local hc = core.httpclient()
    if not hc then error(format(WHERE, ""), 2) end -- check_phase should have said so
    local args = { url = req.url, headers = headers, body = body }
    if req.timeout then args.timeout = math.max(1, floor(req.timeout * 1000)) end
    local called, res = pcall(hc[method], hc, args)
    if not called then
      -- raised before anything was sent: a URL HAProxy cannot use, no memory
      return nil, "HAProxy's HTTP client: " .. tostring(res), "network", { sent = false }
    end
    if type(res) ~= "table" or not res.status or res.status == 0 then
      return nil, "HAProxy's HTTP client got no response", "network", { sent = true }
    end
    local rheaders = lower_headers(res.headers)
    local own = own_failure(res, rheaders)
    if own then
      local msg = own[4]
      if own[1] and res.status == 503 and req.url:match("^[Hh][Tt][Tt][Pp][Ss]:") then
        -- HAProxy reports a certificate it refused as it does a refused connection
        msg = msg .. " or verify its certificate (HAProxy's httpclient.ssl.ca-file)"
      end
      return nil, msg, own[2], { sent = own[3] }
    end
    local cap = req.max_body or max_body
    local rbody = res.body or ""
    -- HAProxy's client hands over what it got when the connection breaks
    -- or its timeout fires half-way through the body, as a full answer
    local length = tonumber(rheaders["content-length"] or "")
    if length and #rbody < length and method ~= "head" and res.status ~= 204 and res.status ~= 304 then
      local timed_out = req.timeout and M.now() - started >= req.timeout * 0.9
      return nil, format("the answer ended after %d of its %d bytes (%s)", #rbody, length,
        timed_out and "the server did not send the rest in time" or "the connection closed"),
        timed_out and "timeout" or "network", { sent = true }
    end
    if #rbody > cap then
      return nil, format("response body of %d bytes is over the %d-byte cap", #rbody, cap), "protocol",
        { sent = true, too_large = true }
    end
    return { status = res.status, headers = rheaders, body = rbody }
  end
end

-- exposed for the specs
M._multipart_body = multipart_body
M._lower_headers = lower_headers

return M
