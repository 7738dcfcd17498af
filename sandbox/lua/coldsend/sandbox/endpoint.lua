--- coldsend.sandbox.endpoint: what the sandbox's endpoint handlers share:
-- answers (detail, 422, 404), copies of stored values, time stamps, list and
-- map checks, query integers and pagination. Handlers take (srv, req,
-- params) and return status, body table [, extra headers].
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"

local M = {}

local array = json.array

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end
M.iso = iso

local function copy_array(t)
  local out = array()
  for i = 1, #(t or {}) do out[i] = t[i] end
  return out
end

local function deepcopy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deepcopy(x) end
  return setmetatable(out, getmetatable(v))
end

local function detail(status, msg) return status, { detail = msg } end

local function unprocessable(errs) return 422, { detail = errs.list } end

local function not_found(what) return 404, { detail = what .. " not found" } end
M.copy_array, M.deepcopy = copy_array, deepcopy
M.detail, M.unprocessable, M.not_found = detail, unprocessable, not_found

-- A list whose items are checked by item(errs, loc, x, spec).
local function list_of(item, item_spec)
  return function(errs, loc, v, spec)
    v = V.list(errs, loc, v, spec)
    if not v then return nil end
    local out, ok = array(), true
    for i, x in ipairs(v) do
      local cx = item(errs, V.loc(loc, i - 1), x, item_spec or { ge = spec.item_ge, le = spec.item_le })
      if cx == nil then ok = false end
      out[i] = cx
    end
    return ok and out or nil
  end
end
M.list_of = list_of

local function str_map(errs, loc, v)
  v = V.dict(errs, loc, v)
  if not v then return nil end
  local out, ok = {}, true
  for k, x in pairs(v) do
    local cx = V.str(errs, V.loc(loc, k), x, { min = 1, max = 255 })
    if cx == nil then ok = false end
    out[k] = cx
  end
  return ok and out or nil
end
M.str_map = str_map

local function query_int(errs, q, name, default, ge, le)
  local v = q[name]
  if v == nil or v == "" then return default end
  local n = v:match("^%s*[+-]?%d+%s*$") and tonumber(v)
  if not n then
    errs:add(array { "query", name }, "value is not a valid integer", "type_error.integer")
    return nil
  end
  return V.int(errs, array { "query", name }, n, { ge = ge, le = le })
end
M.query_int = query_int

function M.paginate(list, page, limit)
  local total = #list
  local pages = math.ceil(total / limit)
  local items = array()
  for i = (page - 1) * limit + 1, math.min(total, page * limit) do
    items[#items + 1] = list[i]
  end
  return items, {
    page = page, limit = limit, total = total, pages = pages,
    has_next = page < pages, has_prev = page > 1,
  }
end

return M
