--- coldsend.endpoint: the base URL and the proxy that applies to
-- it. The rules the client's transport follows (coldsend.client checks its
-- base_url and chooses its proxy with them) and that `coldsend doctor`
-- reports: https://, or http:// to a loopback host only; the environment's
-- https_proxy, else all_proxy, for https:// targets that are not loopback
-- and that no_proxy does not name.
-- @module coldsend.endpoint
local M = {}

local format = string.format

-- 127.0.0.0/8 written as an address: "127.0.0.999" or "127.1.1.99999999"
-- is no address, so the resolver would ask DNS for it, and plain http://
-- (the key in clear) would go wherever the answer points
local function is_loopback_v4(host)
  local a, b, c = host:match("^127%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  return a ~= nil and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255
end

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host == "[::1]" or host == "::1" or is_loopback_v4(host)
end

--- Splits a URL into scheme, host, port and path (and whether the host is
-- loopback); nil, a message and the rule broken when it is not an http(s)
-- URL the client would take. The one set of base-URL rules: the client
-- (coldsend.client) words the rule as "bad option 'base_url' (RULE, got
-- URL)", doctor reports the message.
-- @return u, or nil, message, rule
function M.parse_url(url)
  if type(url) ~= "string" or url == "" then return nil, "no URL", "URL string expected" end
  if url:find("[%s%c]") then
    return nil, "the URL contains a space or control character", "http(s)://host/path expected"
  end
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil, "not a URL (scheme://host/path expected)", "http(s)://host/path expected" end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return nil, format("scheme %s: only https:// (or http:// to a loopback host)", scheme),
      "http(s) URL expected"
  end
  if authority:find("@", 1, true) then
    return nil, "credentials in the URL are not allowed", "credentials in the URL are not allowed"
  end
  if rest:find("[?#]") then
    return nil, "a query or fragment is not allowed in the base URL (the client adds the paths)",
      "no query or fragment expected"
  end
  local host, port = authority:match("^(%[[^%]]*%])(.*)$")
  if not host then host, port = authority:match("^([^:]*)(.*)$") end
  if host == "" then return nil, "no host in the URL", "a host expected" end
  if port ~= "" then
    port = port:match("^:(%d+)$")
    if not port or tonumber(port) < 1 or tonumber(port) > 65535 then
      return nil, "bad port in the URL", "port 1..65535 expected"
    end
  end
  local u = { scheme = scheme, host = host:lower(), path = rest,
    port = tonumber(port) or (scheme == "https" and 443 or 80),
    -- what the probes request: the scheme in lower case, as the client sends it
    base = (scheme .. "://" .. authority .. rest):gsub("/+$", "") }
  u.path = u.path:gsub("/+$", "")
  u.loopback = is_loopback(u.host)
  if scheme == "http" and not u.loopback then
    return nil, "http:// is only allowed for loopback hosts; use https://",
      "https:// required; http:// is only allowed for loopback hosts"
  end
  return u
end

M.is_loopback = is_loopback


-- Whether host is excluded by a NO_PROXY list (names, .suffixes, "*").
local function no_proxy_matches(list, host)
  for entry in list:gmatch("[^,%s]+") do
    entry = entry:lower():gsub(":%d+$", "")
    if entry == "*" then return true end
    local bare = entry:gsub("^%.", "")
    if host == bare or host:sub(-(#bare + 1)) == "." .. bare then return true end
  end
  return false
end

local PROXY_VARS = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
  "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY" }

--- Which environment proxy applies to the URL u, by the rule of the
-- transport: only https:// targets go through a proxy (as a CONNECT
-- tunnel), never loopback ones; https_proxy, else all_proxy (lower case
-- first), unless no_proxy names the host.
-- @return the proxy (or nil), the variables set, and why
function M.proxy_for(u, getenv)
  local set = {}
  for _, name in ipairs(PROXY_VARS) do
    local v = getenv(name)
    if v and v ~= "" then set[#set + 1] = name end
  end
  local function get(a, b)
    local v = getenv(a)
    if v == nil or v == "" then v = getenv(b) end
    if v == "" then v = nil end
    return v, v and (getenv(a) and getenv(a) ~= "" and a or b)
  end
  if u.loopback then return nil, set, "a loopback host never goes through a proxy" end
  if u.scheme ~= "https" then return nil, set, "only https:// targets go through a proxy" end
  local no = get("no_proxy", "NO_PROXY")
  if no and no_proxy_matches(no, u.host) then return nil, set, "no_proxy names the host" end
  local p, name = get("https_proxy", "HTTPS_PROXY")
  if not p then p, name = get("all_proxy", "ALL_PROXY") end
  if not p then return nil, set, "no https_proxy or all_proxy is set" end
  return p, set, name
end

return M
