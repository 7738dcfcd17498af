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

local SENTINEL = "\0coldsend:[]"
local SENTINEL_JSON_PATTERN = '"\\u0000coldsend:%[%]"'
local array_mt = { __name = "coldsend.json.array" }
--- The metatable `json.array` sets; a table with it encodes as a JSON array, `[]` when empty.
M.array_mt = array_mt

--- Marks t (or a new table) as a JSON array, so that empty it encodes as [].
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

-- Copies v, replacing empty marked arrays by the sentinel; nil when v
-- holds none, so the common case allocates nothing.
local function prepare(v)
  if type(v) ~= "table" then return nil end
  if next(v) == nil then
    if getmetatable(v) == array_mt then return SENTINEL end
    return nil
  end
  local copy
  for k, x in pairs(v) do
    local p = prepare(x)
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

--- Encodes v as JSON (numbers to 14 significant digits); empty tables
-- marked with `json.array` encode as `[]`, other empty tables as `{}`.
-- @param v the value to encode
-- @return the JSON text
function M.encode(v)
  local p = prepare(v)
  if p == nil then return codec.encode(v) end
  local s = codec.encode(p)
  return (s:gsub(SENTINEL_JSON_PATTERN, "[]"))
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
    out[#out + 1] = codec.encode(v)
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

--- Decodes s; returns nil, message on bad JSON instead of raising.
function M.decode(s)
  local ok, v = pcall(codec.decode, s)
  if not ok then return nil, v end
  return v
end

return M
