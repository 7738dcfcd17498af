--- JSON for the Lua side (sandbox, CLI): lua-cjson with empty arrays.
-- Debian's lua-cjson 2.1 encodes every empty table as `{}`; a table marked
-- with `json.array` encodes as `[]` even when empty.
-- @module coldsend.json
local cjson = require "cjson"

local M = {}

local codec = cjson.new()
codec.encode_number_precision(14)
--- The JSON null (`cjson.null`): decodes from `null`, encodes as `null`.
M.null = cjson.null

local array_mt = { __name = "coldsend.json.array" }
--- The metatable `json.array` sets; a table with it encodes as a JSON array, `[]` when empty.
M.array_mt = array_mt

--- Marks t (or a new table) as a JSON array, so that empty it encodes as [].
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

-- The C core's empty array (core.EMPTY_ARRAY, which c:changes() and the
-- request bodies hold), when the core is loaded: the sandbox uses this
-- module without it.
local function core_empty()
  local core = package.loaded["coldsend.core"]
  return type(core) == "table" and core.EMPTY_ARRAY or nil
end

--- True for an empty array: an empty table marked by `json.array`, or the
-- C core's marker core.EMPTY_ARRAY. Both encode as [].
function M.is_empty_array(v)
  if type(v) == "table" then return next(v) == nil and getmetatable(v) == array_mt end
  return v ~= nil and v == core_empty()
end

-- cjson 2.1 writes numbers with 14 significant digits at most and has no
-- empty-array value. Before encoding, each number it would change, each
-- empty marked array, and each string that holds the marker prefix (so that
-- no user string can pass for a marker) is replaced in a copy by a marker
-- "\0coldsend:N"; after encoding, marker N becomes literal N.
local PREFIX = "\0coldsend:"
local MARKER_JSON_PATTERN = '"\\u0000coldsend:(%d+)"'
local MAX_DEPTH = 1000
local format, floor, abs = string.format, math.floor, math.abs
local mtype = math.type or function() return "float" end

-- The exact JSON text of n when cjson's 14 digits would change it, else nil.
local function number_text(n)
  if mtype(n) == "integer" then
    if n > -100000000000000 and n < 100000000000000 then return nil end
    return format("%d", n)
  end
  if n ~= n or n == math.huge or n == -math.huge then return nil end -- cjson refuses
  -- an integral 10^15 goes out as digits, not 1e+15 (see request.c)
  if n == floor(n) and abs(n) < 9.2e18 then
    return n > -1e14 and n < 1e14 and nil or format("%.0f", n)
  end
  if tonumber(format("%.14g", n)) == n then return nil end
  for p = 15, 17 do
    local t = format("%." .. p .. "g", n)
    if tonumber(t) == n then return t end
  end
end

local function marker(side, literal)
  side[#side + 1] = literal
  return PREFIX .. #side
end

-- The replacement of v (a marker or a copy of its table), or nil when cjson
-- writes v as it is.
local function prepare(v, side, depth)
  local t = type(v)
  if t == "number" then
    local text = number_text(v)
    return text and marker(side, text)
  elseif t == "string" then
    return v:find(PREFIX, 1, true) and marker(side, codec.encode(v)) or nil
  elseif t ~= "table" then
    return t == "userdata" and v == core_empty() and marker(side, "[]") or nil
  end
  if depth > MAX_DEPTH then error("cannot encode as JSON: nested deeper than " .. MAX_DEPTH, 0) end
  if next(v) == nil then
    return getmetatable(v) == array_mt and marker(side, "[]") or nil
  end
  local copy
  for k, x in pairs(v) do
    if type(k) == "string" and k:find(PREFIX, 1, true) then
      error("cannot encode as JSON: a key holding \\0coldsend:", 0)
    end
    local p = prepare(x, side, depth + 1)
    if p ~= nil then
      if not copy then
        copy = {}
        for k2, x2 in pairs(v) do copy[k2] = x2 end
      end
      copy[k] = p
    end
  end
  return copy
end

--- Encodes v as JSON: numbers exactly (as many digits as they need), empty
-- tables marked with `json.array` as `[]`, other empty tables as `{}`.
-- @param v the value to encode
-- @return the JSON text
function M.encode(v)
  local side = {}
  local p = prepare(v, side, 0)
  if p == nil then return codec.encode(v) end
  local s = codec.encode(p)
  return (s:gsub(MARKER_JSON_PATTERN, function(i) return side[tonumber(i)] end))
end

-- Integers of 16 digits or more that a float cannot hold: quoted with a
-- marker before cjson reads the text (cjson 2.1 reads every number as a
-- float), made integers again after. Only on Lua 5.3+, and only when no
-- string of the text could pass for the marker.
local INT_PREFIX = PREFIX .. "int:"
local BIG_INT = "%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d"

local function quote_big_integers(s)
  local out, last, i, n = {}, 1, 1, #s
  while i <= n do
    local p = s:find('[%d"]', i)
    if not p then break end
    if s:byte(p) == 34 then -- a string: to its closing quote
      local q = p + 1
      while true do
        local e = s:find('["\\]', q)
        if not e then return s end -- malformed: cjson says so
        if s:byte(e) == 92 then q = e + 2 else i = e + 1 break end
      end
    else
      -- the whole number token: fraction and exponent digits are no integer
      local e = (s:find("[^%d%.eE+%-]", p) or n + 1) - 1
      local start = (p > 1 and s:byte(p - 1) == 45) and p - 1 or p
      if e - p + 1 >= 16 and not s:sub(p, e):find("[^%d]")
          and mtype(tonumber(s:sub(start, e))) == "integer" then
        out[#out + 1] = s:sub(last, start - 1)
        out[#out + 1] = '"\\u0000coldsend:int:' .. s:sub(start, e) .. '"'
        last = e + 1
      end
      i = e + 1
    end
  end
  if last == 1 then return s end
  out[#out + 1] = s:sub(last)
  return table.concat(out)
end

local function integers_back(v, depth)
  if depth > MAX_DEPTH then return v end
  if type(v) == "string" and v:sub(1, #INT_PREFIX) == INT_PREFIX then
    return math.tointeger(v:sub(#INT_PREFIX + 1)) or tonumber(v:sub(#INT_PREFIX + 1))
  end
  if type(v) == "table" then
    for k, x in pairs(v) do
      local y = integers_back(x, depth + 1)
      if y ~= x then v[k] = y end
    end
  end
  return v
end

-- Whether t is a sequence 1..n (n >= 1) with no other keys.
local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode_sorted(v, out, depth)
  if type(v) ~= "table" then
    out[#out + 1] = M.encode(v) -- numbers exactly
    return
  end
  if depth > 1000 then error("cannot encode a table nested deeper than 1000 (a cycle?)", 0) end
  if getmetatable(v) == array_mt or is_sequence(v) then
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode_sorted(v[i], out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" and type(k) ~= "number" then
      error("cannot encode a table key of type " .. type(k), 0)
    end
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = codec.encode(k)
    out[#out + 1] = ":"
    encode_sorted(x, out, depth + 1)
  end
  out[#out + 1] = "}"
end

--- Encodes v as JSON like `encode`, with the keys of every object in
-- sorted order, so that the same value always gives the same text (for
-- output people compare: the CLI's --json, a campaign's changes).
-- @param v the value to encode
-- @return the JSON text
function M.encode_sorted(v)
  local out = {}
  encode_sorted(v, out, 0)
  return table.concat(out)
end

--- Decodes s; returns nil, message on bad JSON instead of raising. Integers
-- beyond 2^53 decode exactly as Lua integers on Lua 5.3+.
function M.decode(s)
  local big = math.tointeger and type(s) == "string" and s:find(BIG_INT)
    and not s:find("\\u0000coldsend:", 1, true)
  if big then s = quote_big_integers(s) end
  local ok, v = pcall(codec.decode, s)
  if not ok then return nil, v end
  if big then v = integers_back(v, 0) end
  return v
end

return M
