--- coldsend.redact: keeps secrets out of hook events, errors and output.
-- A secret is the API key, and the value of any field whose name contains
-- `password`, `secret` or `token` (or is an API key or auth header), at any
-- depth of a request body or URL query. Such fields are replaced by
-- "[redacted]"; the secret values of a request are also cut out of any
-- string (a server that echoes the key or a password in its error body),
-- as is anything shaped like a ColdSend key (cs_live_..., cs_test_...).
-- @module coldsend.redact
local cjson = require "cjson"

local type, pairs, ipairs, tostring, getmetatable, setmetatable =
  type, pairs, ipairs, tostring, getmetatable, setmetatable

local M = {}

--- What replaces a secret.
M.MARK = "[redacted]"

local MAX_DEPTH = 32
-- shorter values are too common to cut out of every string
local MIN_SECRET = 4

local NAMED = { ["x-api-key"] = true, api_key = true, apikey = true, authorization = true,
  ["proxy-authorization"] = true, cookie = true, ["set-cookie"] = true }

--- True when a field or header of this name holds a secret.
function M.is_secret_name(name)
  if type(name) ~= "string" then return false end
  local n = name:lower()
  return NAMED[n] or n:find("password", 1, true) ~= nil or n:find("secret", 1, true) ~= nil
    or n:find("token", 1, true) ~= nil
end
local is_secret_name = M.is_secret_name

local codec = cjson.new()

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Base64 of s, whose length is a multiple of 3 (no padding).
local function b64(s)
  local out = {}
  for i = 1, #s - 2, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + b * 256 + c
    for shift = 18, 0, -6 do
      local k = math.floor(n / 2 ^ shift) % 64
      out[#out + 1] = B64:sub(k + 1, k + 1)
    end
  end
  return table.concat(out)
end

-- A base64 core shorter than this could turn up by chance.
local MIN_B64 = 8

-- The forms in which a server may echo s: JSON-escaped; URL-encoded
-- (upper- or lower-case hex, a space as %20 or +); in base64 or base64url,
-- as the groups that hold only s's bytes, at each of the three alignments
-- s can have inside an encoded text (a Basic credential "user:secret").
local function echo_forms(s)
  local forms = {}
  local ok, j = pcall(codec.encode, s)
  if ok then forms[#forms + 1] = j:sub(2, -2) end
  local upper = s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end)
  forms[#forms + 1] = upper
  forms[#forms + 1] = (upper:gsub("%%%x%x", string.lower))
  forms[#forms + 1] = (upper:gsub("%%20", "+"))
  for skip = 0, 2 do
    local part = s:sub(skip + 1)
    local core = b64(part:sub(1, #part - #part % 3))
    if #core >= MIN_B64 then
      forms[#forms + 1] = core
      forms[#forms + 1] = (core:gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
    end
  end
  return forms
end

-- A piece of a key at least this long is hidden too (a server may echo a
-- key split in parts, say across two headers); shorter ones could occur
-- by chance.
local PIECE = 10

-- Adds s and the forms in which a server may echo it to the list; with
-- pieces, every run of PIECE or more of its characters is hidden as well.
local function add_secret(list, s, pieces)
  if type(s) ~= "string" or #s < MIN_SECRET or list[s] then return end
  list[s] = true
  list[#list + 1] = s
  if pieces and #s >= 2 * PIECE then
    list.pieces = list.pieces or {}
    list.pieces[#list.pieces + 1] = s
  end
  for _, f in ipairs(echo_forms(s)) do
    if #f >= MIN_SECRET and not list[f] then
      list[f] = true
      list[#list + 1] = f
    end
  end
end

--- Adds the secret s to list (for M.string), with the forms in which it
-- may be echoed or printed: JSON-escaped, URL-encoded, base64; with
-- pieces (for a key), any run of 10 or more of its characters too.
M.add = add_secret

-- Collects the values of secret fields in v.
local function collect(v, list, depth)
  if type(v) ~= "table" or depth > MAX_DEPTH then return end
  for k, x in pairs(v) do
    if is_secret_name(k) and type(x) ~= "table" then
      add_secret(list, tostring(x))
    else
      collect(x, list, depth + 1)
    end
  end
end

local function may_hold_secrets(s)
  local l = s:lower()
  return l:find("password", 1, true) or l:find("secret", 1, true) or l:find("token", 1, true)
    or l:find("key", 1, true) or l:find("authorization", 1, true)
end

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Secrets of the query of url.
local function collect_url(url, list)
  local q = type(url) == "string" and url:match("%?([^#]*)")
  if not q then return end
  for k, v in q:gmatch("([^&=]*)=([^&]*)") do
    if is_secret_name(unescape(k)) then
      add_secret(list, v)
      add_secret(list, unescape(v))
    end
  end
end

local cache = setmetatable({}, { __mode = "k" })

--- The secret strings of a request ({headers=, body=, url=}): the API key
-- and the secret fields of its JSON body and URL query. Kept per request.
function M.secrets_of(req)
  if type(req) ~= "table" then return {} end
  local list = cache[req]
  if list and list.body == req.body then return list end
  list = {}
  local headers = type(req.headers) == "table" and req.headers
  if headers then
    for k, v in pairs(headers) do
      if is_secret_name(k) then add_secret(list, v, true) end
    end
  end
  local body = req.body
  if type(body) == "string" and may_hold_secrets(body) then
    local ok, data = pcall(codec.decode, body)
    if ok then collect(data, list, 0) end
  end
  collect_url(req.url, list)
  -- longest first, so a secret inside another is not cut half-way
  table.sort(list, function(a, b) return #a > #b end)
  list.body = body
  cache[req] = list
  return list
end

local function plain(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- s with every run of PIECE or more characters of secret replaced: each
-- piece of that length is looked for, and overlapping hits make one run.
local function cut_pieces(s, secret)
  local hits = {}
  for o = 1, #secret - PIECE + 1 do
    local piece = secret:sub(o, o + PIECE - 1)
    local p = s:find(piece, 1, true)
    while p do
      hits[#hits + 1] = p
      p = s:find(piece, p + 1, true)
    end
  end
  if #hits == 0 then return s end
  table.sort(hits)
  local out, from, run_start, run_end = {}, 1, hits[1], hits[1] + PIECE - 1
  for i = 2, #hits + 1 do
    local p = hits[i]
    if p and p <= run_end + 1 then
      if p + PIECE - 1 > run_end then run_end = p + PIECE - 1 end
    else
      out[#out + 1] = s:sub(from, run_start - 1)
      out[#out + 1] = M.MARK
      from = run_end + 1
      if p then run_start, run_end = p, p + PIECE - 1 end
    end
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out)
end

--- s with every secret of list (and anything shaped like a ColdSend key)
-- replaced; a secret cut off at the end of s (a capped body) is replaced too.
function M.string(s, list)
  if type(s) ~= "string" then return s end
  for _, secret in ipairs(list and list.pieces or {}) do
    s = cut_pieces(s, secret)
  end
  for _, secret in ipairs(list or {}) do
    if s:find(secret, 1, true) then s = s:gsub(plain(secret), M.MARK) end
    -- the start of a secret at the very end: a body cut short
    local first = secret:sub(1, 1)
    local p = s:find(first, math.max(1, #s - #secret + 2), true)
    while p and #s - p + 1 >= MIN_SECRET do
      if s:sub(p) == secret:sub(1, #s - p + 1) then
        s = s:sub(1, p - 1) .. M.MARK
        break
      end
      p = s:find(first, p + 1, true)
    end
  end
  s = s:gsub("%f[%w_]cs_%a+_%w[%w_%-%.~+/=]*", M.MARK)
  return s
end
local scrub = M.string

--- url with the values of secret query fields replaced.
function M.url(url, list)
  if type(url) ~= "string" then return url end
  url = url:gsub("([?&])([^&=#]*)=([^&#]*)", function(sep, k, v)
    if is_secret_name(unescape(k)) then return sep .. k .. "=" .. M.MARK end
    return sep .. k .. "=" .. v
  end)
  return scrub(url, list)
end

--- A URL (or a proxy's host:port) with its credentials (user:password@)
-- shown as ***: how a proxy setting is shown in a report or an error.
function M.credentials(url)
  local pre, rest = url:match("^(%a[%w+.-]*://)(.*)$")
  if not pre then pre, rest = "", url end
  local at = rest:find("@[^@]*$")
  if at then rest = "***" .. rest:sub(at) end
  return pre .. rest
end

-- A copy of v with secret fields replaced and strings scrubbed.
local function copy(v, list, depth, seen)
  local t = type(v)
  if t == "string" then return scrub(v, list) end
  if t ~= "table" then return v end
  if seen[v] then return seen[v] end
  if depth > MAX_DEPTH then return M.MARK end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do
    if is_secret_name(k) and type(x) ~= "table" and x ~= cjson.null then
      out[k] = M.MARK
    else
      out[k] = copy(x, list, depth + 1, seen)
    end
  end
  return setmetatable(out, getmetatable(v))
end

--- A redacted copy of v (a table, string or other value).
function M.value(v, list)
  return copy(v, list, 0, {})
end

--- A JSON body with its secret fields replaced: the text itself when it
-- holds none, else the redacted value encoded again.
function M.body(body, list)
  if type(body) ~= "string" then return body end
  if may_hold_secrets(body) then
    local ok, data = pcall(codec.decode, body)
    if ok and type(data) == "table" then
      local red = copy(data, list, 0, {})
      local eok, s = pcall(codec.encode, red)
      if eok then return scrub(s, list) end
    end
  end
  return scrub(body, list)
end

-- Redacts the fields of a table in place (error objects keep their type).
local function in_place(t, list, depth, seen)
  if seen[t] or depth > MAX_DEPTH then return end
  seen[t] = true
  local changes
  for k, x in pairs(t) do
    local nv = x
    if is_secret_name(k) and type(x) ~= "table" and x ~= cjson.null then
      nv = M.MARK
    elseif type(x) == "string" then
      nv = k == "url" and M.url(x, list) or scrub(x, list)
    elseif type(x) == "table" and getmetatable(x) == nil then
      in_place(x, list, depth + 1, seen)
    end
    if nv ~= x then
      changes = changes or {}
      changes[k] = nv
    end
  end
  for k, nv in pairs(changes or {}) do t[k] = nv end
end

--- Redacts an error object in place (message, body, details, url, ...)
-- with the secrets of req; returns it.
function M.error(err, req)
  if type(err) ~= "table" then return err end
  in_place(err, M.secrets_of(req), 0, {})
  return err
end

--- A hook event ({method=, url=, headers=, body=, message=, ...}) with
-- every secret of req replaced.
function M.event(ev, req)
  local list = M.secrets_of(req)
  local out = {}
  for k, v in pairs(ev) do
    if k == "body" then out[k] = M.body(v, list)
    elseif k == "url" then out[k] = M.url(v, list)
    else out[k] = copy(v, list, 0, {}) end
    if is_secret_name(k) and type(v) ~= "table" and v ~= nil then out[k] = M.MARK end
  end
  return out
end

return M
