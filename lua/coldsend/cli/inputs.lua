--- coldsend.cli.inputs: what a command reads besides its words. Option
-- values (integers, date ranges), campaign and inbox files, the client
-- built from $COLDSEND_API_KEY (whose key output hides from then on),
-- campaign ids and every page of a server's list.
-- @module coldsend.cli.inputs
local output = require "coldsend.cli.output"

local M = {}

local format = string.format
local usage_error, clean, protocol_error = output.usage_error, output.clean, output.protocol_error

-- ----------------------------------------------------------------------
-- option values

-- An integer option of at least min (default 1) and at most max (when
-- given), or a usage error naming it; nil when not given.
local function int_option(name, value, max, min)
  if value == nil then return nil end
  min = min or 1
  -- digits only: tonumber would also take 0x10, 1e1 and " 5"
  local n = tostring(value):match("^%d+$") and tonumber(value)
  if not n or n ~= math.floor(n) or n < min or (max and n > max) then
    usage_error("bad --%s %q (an integer %s expected)", name, value,
      max and (min .. ".." .. max) or (">= " .. min))
  end
  return math.floor(n)
end

-- A call whose bad argument raises (a date, a status): a usage error.
local function checked_call(f, ...)
  local ok, data, err = pcall(f, ...)
  if not ok then usage_error("%s", clean(data):gsub("'from_date'", "--from"):gsub("'to_date'", "--to")
    :gsub("'status'", "--status")) end
  return data, err
end

-- The query of --from/--to (and --status when with_status).
local function date_query(o, with_status)
  -- (the call checks each date; a range that ends before it starts is
  -- refused here, for stats as for timeline, before any request)
  local day = "^%d%d%d%d%-%d%d%-%d%d$"
  if type(o.from) == "string" and type(o.to) == "string" and o.from:match(day) and o.to:match(day)
      and o.from > o.to then
    usage_error("--from %s is after --to %s", o.from, o.to)
  end
  return { from_date = o.from, to_date = o.to, status = with_status and o.status or nil }
end

-- ----------------------------------------------------------------------
-- files

--- Loads a campaign file: a Lua chunk run in a fresh environment (a table
-- whose missing names fall back to the standard globals, so `string`,
-- `table`, `require`... work and its own globals stay in it) that must
-- return a table of campaign fields. Not a sandbox: a campaign file is code
-- you trust, like a Makefile.
-- @string path the file
-- @return the definition table, or nil and a message
function M.load_file(path, what)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end -- "path:line: message"
  if setfenv then setfenv(chunk, env) end -- LuaJIT: 5.1 environments
  local ok, def = pcall(chunk, path)
  if not ok then
    -- error({}) or error(42): the value, not a table's address
    local mt = getmetatable(def)
    if type(def) ~= "string" and type(def) ~= "number" and not (mt and mt.__tostring) then
      return nil, format("%s: the file raised an error (a %s value)", path, type(def))
    end
    local sok, msg = pcall(tostring, def)
    def = sok and msg or format("an error whose __tostring failed (%s)", clean(msg))
    return nil, def:find(path, 1, true) and def or format("%s: %s", path, def)
  end
  if type(def) ~= "table" then
    return nil, format("%s must return a table of %s (got %s)", path, what or "campaign fields", type(def))
  end
  return def
end

-- ----------------------------------------------------------------------
-- the API

-- The client of a command: the key from $COLDSEND_API_KEY, the URL from
-- --base-url, else $COLDSEND_BASE_URL.
local function client(w, o)
  local key = w.getenv("COLDSEND_API_KEY")
  if key == nil or key == "" then
    usage_error("COLDSEND_API_KEY is not set (the API key, cs_live_...)")
  end
  local base = o.base_url or w.getenv("COLDSEND_BASE_URL")
  if base == "" then base = nil end
  local ok, cs = pcall(require("coldsend").client, { api_key = key, base_url = base })
  if not ok then usage_error("%s", clean(cs)) end
  -- hidden from now on, with its echoed forms; a key the client refused is
  -- in no message, and hiding " " or "cs_live_" would garble every line
  require("coldsend.redact").add(output.hidden, key, true)
  return cs
end

-- id, or a usage error when it is not a campaign id (a UUID).
local function check_id(id)
  if not require("coldsend.core").is_uuid(id) then
    usage_error("bad campaign id %q (a UUID expected)", tostring(id))
  end
  return id
end

-- The identity of a list item (a lead, an inbox) for spotting a repeat.
local function item_key(x)
  if type(x) ~= "table" then return tostring(x) end
  return tostring(x.lead_id or x.inbox_id or x.campaign_id or x.id or x.email or x.email_address)
end

-- Every item of a paged list (GET path?page=N&limit=100), or only the
-- page `page` when given. Returns the items and the last pagination.
local function pages(cs, path, field, query, page)
  local items, p, seen = {}, page or 1, {}
  while true do
    query.page = p
    local data, err = cs:request("GET", path, nil, query)
    if not data then return nil, err end
    local list = type(data) == "table" and data[field]
    if type(list) ~= "table" then
      return nil, protocol_error(format("GET %s: no '%s' list in the answer", path, field))
    end
    -- a server that says has_next and sends what it sent before would
    -- keep this loop going for ever
    local new = false
    for _, x in ipairs(list) do
      local k = item_key(x)
      if not seen[k] then seen[k], new = true, true end
    end
    if not new and #list > 0 then
      return nil, protocol_error(format("GET %s: page %d repeats what the server sent before", path, p))
    end
    for _, x in ipairs(list) do items[#items + 1] = x end
    local pg = type(data.pagination) == "table" and data.pagination or {}
    if page or pg.has_next ~= true or #list == 0 then return items, pg end
    p = p + 1
  end
end

M.int_option, M.checked_call, M.date_query = int_option, checked_call, date_query
M.client, M.check_id, M.pages = client, check_id, pages

return M
