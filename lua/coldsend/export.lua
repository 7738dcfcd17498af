--- coldsend.export: a campaign as a campaign file (the format of doc/cli.md).
-- `export.campaign_file(c)` returns the Lua text of a file that returns the
-- campaign's id and every writable field, so that `coldsend plan` of it
-- against the same campaign shows no changes. Multi-line texts are long
-- strings (`[[...]]`, readable as written); every other string is quoted
-- with escapes that load the same on Lua 5.1 to 5.4 and LuaJIT.
-- @module coldsend.export
local cjson = require "cjson"

local M = {}

local format, concat, sort, rep = string.format, table.concat, table.sort, string.rep
local null = cjson.null

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

-- A quoted string: quotes, backslashes and control characters escaped
-- (\n, \t, \r or a three-digit \ddd, which every Lua reads); other bytes,
-- UTF-8 included, as they are.
local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function quoted(s)
  return '"' .. s:gsub('[%c"\\\127]', function(ch)
    return ESCAPES[ch] or format("\\%03d", ch:byte())
  end) .. '"'
end

-- A long string keeps every byte except that the reader turns \r and \r\n
-- into \n and drops a newline right after the opening bracket (we write
-- one there). So: only for text with a newline and no control character
-- but \n and \t; the level is one no "]=*]" in the text can close. Lua
-- 5.1 refuses "[[" inside a level-0 long string: such text starts at 1.
local function long_string(s)
  if not s:find("\n", 1, true) or s:find("[%z\1-\8\11-\31\127]") then return nil end
  local level = s:find("[[", 1, true) and 1 or 0
  while s:find("]" .. rep("=", level) .. "]", 1, true) or s:sub(-1 - level) == "]" .. rep("=", level) do
    level = level + 1
  end
  local eq = rep("=", level)
  return "[" .. eq .. "[\n" .. s .. "]" .. eq .. "]"
end

local function string_value(s)
  return long_string(s) or quoted(s)
end
M.quoted = quoted

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then return k end
  return "[" .. (type(k) == "string" and quoted(k) or tostring(k)) .. "]"
end

-- NaN and the infinities (lua-cjson reads them from a server) as
-- expressions: "%.17g" would write nan or inf, names that load as nil.
local function number_text(v)
  if v ~= v then return "0/0" end
  if v == math.huge or v == -math.huge then return v > 0 and "1/0" or "-1/0" end
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
  return format("%.17g", v)
end

local value_text

-- The keys of a table in the order given by `order` (names known to come
-- first), then the rest sorted.
local function ordered_keys(t, order)
  local keys, seen = {}, {}
  for _, k in ipairs(order or {}) do
    if t[k] ~= nil then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do if not seen[k] then rest[#rest + 1] = k end end
  sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

-- The order of the keys inside the items of a list field.
local ITEM_ORDER = {
  variants = { "variant_name", "variant_label", "subject_template", "email_content",
    "distribution_percent" },
  sequences = { "step_number", "trigger_type", "wait_days", "enable_unsubscribe", "variants" },
}

local function is_list(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

-- A table: a list of scalars on one line, anything else one entry a line
-- at `indent` + 2; `order` orders the keys of a map (or of a list's
-- items). JSON nulls inside items are left out (the server's way of saying
-- "not set", which a file says by leaving the key out).
local function table_text(t, indent, order)
  local inner = indent .. "  "
  if is_list(t) then
    local simple, parts = true, {}
    for i, v in ipairs(t) do
      if type(v) == "table" then simple = false end
      parts[i] = value_text(v, inner, order)
    end
    if #parts == 0 then return "{}" end
    if simple then return "{ " .. concat(parts, ", ") .. " }" end
    local lines = { "{" }
    for i, p in ipairs(parts) do lines[i + 1] = inner .. p .. "," end
    lines[#lines + 1] = indent .. "}"
    return concat(lines, "\n")
  end
  local lines = { "{" }
  for _, k in ipairs(ordered_keys(t, order)) do
    if t[k] ~= null then
      lines[#lines + 1] = format("%s%s = %s,", inner, key_text(k), value_text(t[k], inner, ITEM_ORDER[k]))
    end
  end
  lines[#lines + 1] = indent .. "}"
  return concat(lines, "\n")
end

function value_text(v, indent, order)
  local tv = type(v)
  if v == null then return "coldsend.null" end
  if tv == "string" then return string_value(v) end
  if tv == "number" then return number_text(v) end
  if tv == "boolean" then return tostring(v) end
  if tv == "table" then return table_text(v, indent, order) end
  error(format("cannot export a %s", tv), 2)
end

-- Fields whose empty value the API refuses to be set to ("1 or more"):
-- left out of the file (so not managed) with a comment saying why.
local NONEMPTY = { inbox_ids = true, variants = true }
-- Ramp-up settings, which matter only when ramp-up is on.
local RAMP = { ramp_up_increment = true, ramp_up_max_limit = true }
-- Fields the API sets to null to mean "none": written as coldsend.null.
local NULLABLE = { daily_limit_per_inbox = true, start_date = true, lead_mapping = true }

--- The text of a campaign file for campaign `c` (a `coldsend.campaign`
-- read from the server): a comment naming it, `id`, then every writable
-- field in the order of `core.campaign_fields()`.
-- @param c the campaign
-- @treturn string the file's text (ends with a newline)
function M.campaign_file(c)
  local lines, uses_null = {}, false
  local body = { format("  id = %s,", quoted(c.id)) }
  for _, name in ipairs(require("coldsend.plan").writable_fields()) do
    local ok, v = pcall(function() return c[name] end)
    if not ok then v = nil end
    if (v == nil or v == null) and NULLABLE[name] then
      body[#body + 1] = format("  %s = coldsend.null,", name)
      uses_null = true
    elseif v == nil or v == null then
      body[#body + 1] = format("  -- %s: not set on the server", name)
    elseif RAMP[name] and c.ramp_up_enabled ~= true then
      -- the core refuses them without ramp-up (they would have no effect)
      -- a comment is one line: never a long string there
      local shown = type(v) == "string" and quoted(v) or type(v) == "number" and number_text(v)
        or type(v) == "table" and "..." or tostring(v)
      body[#body + 1] = format("  -- %s = %s,  (used only with ramp_up_enabled = true)", name, shown)
    elseif type(v) == "table" and next(v) == nil and NONEMPTY[name] then
      body[#body + 1] = format("  -- %s = {},  (none yet; set at least one to manage them)", name)
    else
      body[#body + 1] = format("  %s = %s,", name, value_text(v, "  ", ITEM_ORDER[name]))
    end
  end
  local name = c.name
  lines[1] = format("-- Campaign %s%s, exported by `coldsend export`.", c.id,
    type(name) == "string" and (" " .. quoted(name)) or "")
  lines[2] = "-- `coldsend plan` of this file shows what differs from the server."
  if uses_null then lines[#lines + 1] = 'local coldsend = require "coldsend"' end
  lines[#lines + 1] = "return {"
  for _, l in ipairs(body) do lines[#lines + 1] = l end
  lines[#lines + 1] = "}"
  return concat(lines, "\n") .. "\n"
end

--- A file name for a campaign of `--all`: its name in lower case, runs of
-- anything but letters and digits as `-`, at most 60 characters, then
-- `.lua`; `taken` (a set) makes it unique with `-2`, `-3`...
-- @string name the campaign's name
-- @tab taken names already used (updated)
-- @treturn string the file name
function M.file_name(name, taken)
  local base = tostring(name or ""):lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  base = base:sub(1, 60):gsub("%-+$", "")
  if base == "" then base = "campaign" end
  local candidate, n = base .. ".lua", 1
  while taken[candidate] do
    n = n + 1
    candidate = format("%s-%d.lua", base, n)
  end
  taken[candidate] = true
  return candidate
end

return M
