--- coldsend.plan: campaigns as code.
-- Compares a campaign with another campaign or a definition table field by
-- field (`c:diff(other)`), and says what applying a definition would change
-- on the server (`cs:plan(definition)`), terraform-style.
--
-- A definition is a table of campaign fields, plus `id` for a campaign that
-- exists. It states what it manages: a field it leaves out (nil) is not
-- compared and not changed; `coldsend.null` sets a field to null. Arrays
-- (`variants`, `sequences`, `inbox_ids`, `sending_days`) and `lead_mapping`
-- replace the server's whole value, so their removed items show as `-`.
--
--    local p = assert(cs:plan(dofile "campaign.lua"))
--    print(p)            --> one line per change
--    assert(p:apply())   -- create or save (or nothing)
-- @module coldsend.plan
local core = require "coldsend.core"
local cjson = require "cjson"

local M = {}

local type, pairs, ipairs, tostring, setmetatable, error, next =
  type, pairs, ipairs, tostring, setmetatable, error, next
local format, concat, sort = string.format, table.concat, table.sort
local null = cjson.null

-- Keys compared inside a variant and a follow-up, in display order; the
-- matching key (variant_name, step_number) and `variants` are handled apart.
local VARIANT_KEYS = { "variant_label", "subject_template", "email_content", "distribution_percent" }
local SEQUENCE_KEYS = { "trigger_type", "wait_days", "enable_unsubscribe" }

-- ----------------------------------------------------------------------
-- showing values

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local MAX_SHOWN = 60

local function show_string(s)
  if #s > MAX_SHOWN then s = s:sub(1, MAX_SHOWN - 3) .. "..." end
  return '"' .. s:gsub('[%c"\\]', function(ch)
    return ESCAPES[ch] or format("\\%03d", ch:byte())
  end) .. '"'
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function show(v)
  if v == nil or v == null then return "null" end
  local tv = type(v)
  if tv == "string" then return show_string(v) end
  if tv == "number" then
    if v == math.floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
    return format("%.14g", v)
  end
  if tv ~= "table" then return tostring(v) end
  local parts = {}
  if is_array(v) then
    for i, x in ipairs(v) do parts[i] = show(x) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for i, k in ipairs(keys) do parts[i] = k .. " = " .. show(v[k]) end
  return "{" .. concat(parts, ", ") .. "}"
end
--- Shows a value as the summary lines do: strings quoted and escaped (long
-- ones cut), arrays as `[1, 2]`, maps as `{k = v}` with sorted keys, nil and
-- JSON null as `null`.
-- @param v any value
-- @treturn string one line
M.show = show

-- ----------------------------------------------------------------------
-- changes

--- One change: `op` is `"+"` (added), `"-"` (removed) or `"~"` (changed);
-- `path` names the place (`daily_limit_per_inbox`, `lead_mapping.company`,
-- `variants[B].subject_template`, `sequences[step 3]`); `from` and `to` are
-- the values before and after (nil for an added or removed item); `field`
-- is the top-level campaign field. `tostring(change)` is one summary line.
-- @table Change
local Change = { __name = "coldsend.change" }
Change.__index = Change

function Change.__tostring(ch)
  if ch.item then return ch.op .. " " .. ch.path end
  if ch.op == "+" then return format("+ %s: %s", ch.path, show(ch.to)) end
  if ch.op == "-" then return format("- %s: %s", ch.path, show(ch.from)) end
  return format("~ %s: %s -> %s", ch.path, show(ch.from), show(ch.to))
end

local function add(out, field, op, path, from, to, item)
  out[#out + 1] = setmetatable({ op = op, path = path, field = field, from = from, to = to,
    item = item or nil }, Change)
end

local function is_empty_value(v)
  return v == nil or v == null
end

-- Scalars and arrays of scalars compare by value; the two arrays that are
-- sets for the API (days, inboxes) compare in any order.
local SETS = { sending_days = true, inbox_ids = true }

local function same_array(a, b, as_set)
  if #a ~= #b then return false end
  if as_set then
    local count = {}
    for _, x in ipairs(a) do count[x] = (count[x] or 0) + 1 end
    for _, x in ipairs(b) do
      if not count[x] or count[x] == 0 then return false end
      count[x] = count[x] - 1
    end
    return true
  end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

local function same(a, b, as_set)
  if a == b then return true end
  if is_empty_value(a) and is_empty_value(b) then return true end
  if type(a) == "table" and type(b) == "table" then
    if is_array(a) and is_array(b) then
      if not as_set then
        for i = 1, #a do
          if not same(a[i], b[i]) then return false end
        end
        return #a == #b
      end
      return same_array(a, b, true)
    end
    for k, v in pairs(a) do
      if not same(v, b[k]) then return false end
    end
    for k in pairs(b) do
      if a[k] == nil then return false end
    end
    return true
  end
  return false
end

local function diff_value(out, field, path, from, to)
  if to == nil then return end -- not managed by b
  if same(from, to, SETS[field]) then return end
  add(out, field, is_empty_value(from) and "+" or "~", path, from, to)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  return keys
end

-- A map (lead_mapping): key by key; b replaces the whole map.
local function diff_map(out, field, path, from, to)
  if to == nil then return end
  if type(from) ~= "table" or type(to) ~= "table" then
    return diff_value(out, field, path, from, to)
  end
  local keys, seen = {}, {}
  for _, k in ipairs(sorted_keys(from)) do keys[#keys + 1] = k; seen[k] = true end
  for _, k in ipairs(sorted_keys(to)) do
    if not seen[k] then keys[#keys + 1] = k end
  end
  sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    local p = path .. "." .. tostring(k)
    if to[k] == nil then
      add(out, field, "-", p, from[k], nil)
    else
      diff_value(out, field, p, from[k], to[k])
    end
  end
end

local function variant_name(v, i)
  local name = type(v) == "table" and v.variant_name
  if type(name) == "string" and name ~= "" then return name:upper() end
  return string.char(64 + i) -- A, B, C, D: what the server and add_variant default to
end

local function step_number(s, i)
  local n = type(s) == "table" and s.step_number
  if type(n) == "number" then return n end
  return i + 1 -- the initial email is step 1
end

-- Matches the items of two arrays by a key; calls each(key, from_item,
-- to_item) in the order of the keys (sorted), then reports additions and
-- removals as whole items.
local function diff_items(out, field, path, from, to, key_of, label, each)
  if to == nil then return end
  if type(from) ~= "table" then from = {} end
  if type(to) ~= "table" or to == null then
    return diff_value(out, field, path, from, to)
  end
  local a, b, keys, seen = {}, {}, {}, {}
  for i, item in ipairs(from) do
    local k = key_of(item, i)
    a[k] = item
    if not seen[k] then seen[k] = true; keys[#keys + 1] = k end
  end
  for i, item in ipairs(to) do
    local k = key_of(item, i)
    b[k] = item
    if not seen[k] then seen[k] = true; keys[#keys + 1] = k end
  end
  sort(keys)
  for _, k in ipairs(keys) do
    local p = format("%s[%s]", path, label(k))
    if a[k] == nil then
      add(out, field, "+", p, nil, b[k], true)
    elseif b[k] == nil then
      add(out, field, "-", p, a[k], nil, true)
    else
      each(p, a[k], b[k])
    end
  end
end

local function diff_keys(out, field, path, keys, from, to)
  for _, k in ipairs(keys) do
    diff_value(out, field, path .. "." .. k, from[k], to[k])
  end
end

local function diff_variants(out, field, path, from, to)
  diff_items(out, field, path, from, to, variant_name, tostring, function(p, a, b)
    diff_keys(out, field, p, VARIANT_KEYS, a, b)
  end)
end

local function diff_sequences(out, field, path, from, to)
  diff_items(out, field, path, from, to, step_number, function(k) return "step " .. k end,
    function(p, a, b)
      diff_keys(out, field, p, SEQUENCE_KEYS, a, b)
      diff_variants(out, field, p .. ".variants", a.variants, b.variants)
    end)
end

-- ----------------------------------------------------------------------
-- fields

-- The writable fields in the core's stable order.
local function writable_fields()
  local names = {}
  for _, f in ipairs(core.campaign_fields()) do
    if not f.readonly then names[#names + 1] = f.name end
  end
  return names
end

--- The names of the campaign fields a definition can set, in the core's
-- stable order (`core.campaign_fields()` without the read-only ones).
-- @function writable_fields
M.writable_fields = writable_fields

local function is_campaign(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "coldsend.campaign"
end

-- A definition read through a fresh local campaign, so that every value is
-- checked (a bad one raises naming the field) and normalised the way the
-- core reads it back. Returns the campaign and the set of fields given.
-- The keys of a definition in a stable order: the core's fields in its
-- order, then any others by name. A file with two bad values then names
-- the same one on every run (pairs' order changes from run to run).
local function definition_keys(def)
  local keys, seen = {}, {}
  for _, f in ipairs(core.campaign_fields()) do
    if def[f.name] ~= nil then keys[#keys + 1], seen[f.name] = f.name, true end
  end
  local rest = {}
  for k in pairs(def) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local function load_definition(def, level)
  -- the facade gives campaigns their validate() with an error object (a
  -- bare core campaign's is a list): `coldsend plan` of a create has no client
  require "coldsend"
  local c, given = core.campaign(), {}
  for _, k in ipairs(definition_keys(def)) do
    local v = def[k]
    if k ~= "id" then
      local ok, err = pcall(function() c[k] = v end)
      if not ok then error((tostring(err):gsub("^[^:]*:%d+: ", "")), level + 1) end
      given[k] = true
    end
  end
  return c, given
end

local function diff_fields(a, b, given)
  local out = {}
  for _, name in ipairs(writable_fields()) do
    if not given or given[name] then
      local from, to = a[name], b[name]
      if given and to == nil then to = null end -- set to null in the definition
      if name == "variants" then
        diff_variants(out, name, name, from, to)
      elseif name == "sequences" then
        diff_sequences(out, name, name, from, to)
      elseif name == "lead_mapping" then
        diff_map(out, name, name, from, to)
      else
        diff_value(out, name, name, from, to)
      end
    end
  end
  return out
end

--- The differences from campaign `a` to `b` (a campaign or a definition
-- table), field by field: what a save of `b` over `a` would change.
-- Fields nil in `b` are not compared. Variants are matched by
-- `variant_name` (A, B, ... by position when unnamed), follow-ups by
-- `step_number` (2, 3, 4 by position) and their variants by name.
-- @param a a campaign (`coldsend.campaign`)
-- @param b a campaign, or a table of campaign fields (an `id` key is ignored)
-- @treturn {Change,...} the changes in a stable order (field order of
-- `core.campaign_fields()`, map keys and variant names sorted, steps
-- ascending); each prints as one line (`~ daily_limit_per_inbox: 20 -> 30`)
function M.diff(a, b)
  if not is_campaign(a) then
    error(format("bad argument #1 to 'diff' (coldsend.campaign expected, got %s)", type(a)), 2)
  end
  if is_campaign(b) then return diff_fields(a, b) end
  if type(b) ~= "table" then
    error(format("bad argument #2 to 'diff' (coldsend.campaign or table expected, got %s)",
      type(b)), 2)
  end
  local c, given = load_definition(b, 2)
  return diff_fields(a, c, given)
end

-- ----------------------------------------------------------------------
-- plans

--- What applying a definition would do (from `cs:plan(definition)`).
-- `action` is `"create"`, `"update"` or `"none"`; `changes` the list of
-- `Change`s; `campaign` the server's campaign (nil for a create);
-- `definition` the table planned. `tostring(plan)` prints it one line per
-- change, terraform-style.
-- @table Plan
local Plan = { __name = "coldsend.plan" }
Plan.__index = Plan

local function count_ops(changes)
  local n = { ["+"] = 0, ["~"] = 0, ["-"] = 0 }
  for _, ch in ipairs(changes) do n[ch.op] = n[ch.op] + 1 end
  return n
end

function Plan.__tostring(p)
  local lines = {}
  local name = p.definition.name or (p.campaign and p.campaign.name)
  local title = name and (" " .. show(name)) or ""
  if p.action == "create" then
    lines[1] = "+ create campaign" .. title
  elseif p.action == "update" then
    lines[1] = format("~ update campaign %s%s", p.campaign.id, title)
  else
    lines[1] = format("  campaign %s%s: no changes", p.campaign.id, title)
  end
  for _, ch in ipairs(p.changes) do lines[#lines + 1] = "    " .. tostring(ch) end
  if p.action ~= "none" then
    local n = count_ops(p.changes)
    lines[#lines + 1] = format("Plan: %d to add, %d to change, %d to remove.",
      n["+"], n["~"], n["-"])
  end
  return concat(lines, "\n")
end

-- Fields the create call makes from a definition: every field given.
local function definition_fields(def)
  local fields = {}
  for k, v in pairs(def) do
    if k ~= "id" then fields[k] = v end
  end
  return fields
end

--- Plans a definition against the server: without `id` a create listing
-- every field; with `id` one GET (`client:get_campaign`) and a `diff`, the
-- changes then staged on that campaign (`plan.campaign:changes()` is what
-- `apply` sends).
-- A bad field value raises (naming the field); rules that span fields are
-- checked as `c:validate()` does.
-- @param client a `coldsend.client`
-- @tab definition campaign fields, plus `id` for an existing campaign
-- @tab[opt] opts per-call options for the GET (`timeout`, `deadline`, ...)
-- @treturn Plan the plan
-- @return or nil and an error object (`invalid`, or any error of the GET)
function M.plan(client, definition, opts)
  if type(definition) ~= "table" then
    error(format("bad argument #1 to 'plan' (table expected, got %s)", type(definition)), 3)
  end
  local id = definition.id
  if id ~= nil and not core.is_uuid(id) then
    error(format("bad value for 'id' (UUID expected, got %s)",
      type(id) == "string" and show_string(id) or type(id)), 3)
  end
  local local_c, given = load_definition(definition, 3)
  local p = setmetatable({ definition = definition, client = client }, Plan)
  if id == nil then
    local ok, err = local_c:validate()
    if not ok then return nil, err end
    p.action = "create"
    p.changes = diff_fields({}, local_c, given) -- every field given, none compared
    return p
  end
  local c, err = client:get_campaign(id, opts)
  if not c then return nil, err end
  p.campaign = c
  p.changes = diff_fields(c, local_c, given)
  p.action = #p.changes > 0 and "update" or "none"
  -- stage the changes on the server's campaign: c:changes() is then what
  -- apply sends, and the rules that span fields see the merged campaign
  local changed = {}
  for _, ch in ipairs(p.changes) do changed[ch.field] = true end
  for _, name in ipairs(writable_fields()) do
    if changed[name] then c[name] = local_c[name] end
  end
  local ok, verr = c:validate()
  if not ok then return nil, verr end
  return p
end

--- Applies the plan: a create (`client:create_campaign`), a save of the
-- changed fields, or nothing; with `launch = true` the campaign is then
-- launched (for an update, in the same request as the changes).
-- @tab[opt] opts `{launch = true}` plus per-call options
-- @return the campaign, or nil and an error object
function Plan:apply(opts)
  local launch, call_opts = false, nil
  for k, v in pairs(opts or {}) do
    if k == "launch" then launch = v and true or false
    else call_opts = call_opts or {}; call_opts[k] = v end
  end
  local c, err
  if self.action == "create" then
    c, err = self.client:create_campaign(definition_fields(self.definition), call_opts)
    if not c then return nil, err end
    self.campaign = c
    if launch then
      local launched, lerr = c:launch(call_opts)
      if not launched then lerr.campaign = c end -- created all the same
      return launched, lerr
    end
    return c
  end
  c = self.campaign -- the changes are staged on it (see plan)
  if launch then return c:launch(call_opts) end
  return c:save(call_opts)
end

M.Plan, M.Change = Plan, Change

return M
