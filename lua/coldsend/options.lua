--- coldsend.options: the one checker of options. Every table of options
-- the library takes (the client's, a call's, upload_leads', job:wait's,
-- the retry policy's) is checked here against a spec, {name = rule}:
-- an unknown name raises `unknown option 'x' for what; did you mean 'y'?`,
-- a value that breaks its rule `bad option 'x' for what (rule expected,
-- got value)`, both at the caller's line (the first frame outside the
-- library's directory, however deep the check sits).
--
--   options.check("upload_leads", opts, { file = "path", wait = "boolean",
--     chunk_rows = options.rule("integer 1..10000", function(v) ... end) })
--
-- A rule is the name of one of `options.RULES`, a rule made by
-- `options.rule(text, test)`, or "any" (a name that exists, checked by
-- the code that uses it).
-- @module coldsend.options
local core = require "coldsend.core"

local M = {}

local type, pairs, tostring, error, getmetatable = type, pairs, tostring, error, getmetatable
local format, floor, huge = string.format, math.floor, math.huge

-- The directory of the library's Lua files: frames there are not the
-- caller's.
local LIB_DIR = debug.getinfo(1, "S").source:match("^@(.*[/\\])[^/\\]*$")

-- Raises msg at the first frame outside the library (the line of the
-- user's call, however deep in the library the check sits).
local function raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then level = 2 break end
    local own = info.what == "C" or info.what == "tail" -- 5.1's tail-call frame
      or (LIB_DIR and info.source:sub(1, #LIB_DIR + 1) == "@" .. LIB_DIR)
    if not own then break end
    level = level + 1
  end
  error(msg, level)
end
M.raise = raise

--- A value for a message: a string quoted (cut after 57 characters), NaN as
-- "nan" on every Lua (PUC Lua prints 0/0 as "-nan"), a number as it prints,
-- anything else by its type (a table's address says nothing).
function M.shown(v)
  local t = type(v)
  if t == "string" then
    -- the API key given as another option's value is not repeated
    v = require("coldsend.redact").string(v)
    return format("%q", #v > 60 and v:sub(1, 57) .. "..." or v)
  end
  if v ~= v then return "nan" end
  if t == "number" then return tostring(v) end
  return t
end
local shown = M.shown

--- Raises `bad option 'name' for what (rule expected, got value)`.
function M.opt_error(what, name, rule, value)
  raise(format("bad option '%s' for %s (%s expected, got %s)", name, what, rule, shown(value)))
end
local opt_error = M.opt_error

local function callable(v)
  local mt = getmetatable(v)
  return type(v) == "function" or (type(mt) == "table" and mt.__call ~= nil)
end

local function is_integer(v)
  return type(v) == "number" and v == floor(v) and v > -huge and v < huge
end

--- A rule: what it expects (said in the message) and its test.
function M.rule(text, test) return { text, test } end
local rule = M.rule

--- The rules by name.
M.RULES = {
  seconds = rule("positive number of seconds", function(v)
    return type(v) == "number" and v > 0 and v < huge end),
  retries = rule("integer 0..100", function(v) return is_integer(v) and v >= 0 and v <= 100 end),
  count = rule("integer >= 0", function(v) return is_integer(v) and v >= 0 end),
  bytes = rule("positive integer (bytes)", function(v) return is_integer(v) and v >= 1 end),
  ["function"] = rule("function", callable),
  boolean = rule("boolean", function(v) return type(v) == "boolean" end),
  table = rule("table", function(v) return type(v) == "table" end),
  path = rule("path string", function(v) return type(v) == "string" end),
  ["path|false"] = rule("path string or false", function(v)
    return v == false or (type(v) == "string" and v ~= "") end),
  any = rule("anything", function() return true end),
}
local RULES = M.RULES

--- An integer rule lo..hi.
function M.between(lo, hi)
  return rule(format("integer %d..%d", lo, hi), function(v)
    return is_integer(v) and v >= lo and v <= hi end)
end

--- Raises for the first name of opts that spec does not know, with the
-- closest known name.
function M.check_known(what, opts, spec)
  for k in pairs(opts) do
    if spec[k] == nil then raise(require("coldsend.help").unknown_option(k, what, spec)) end
  end
end

--- Raises for the first value of opts that breaks its rule in spec.
function M.check_values(what, opts, spec)
  for k, v in pairs(opts) do
    local r = spec[k]
    if type(r) == "string" then r = RULES[r] end
    if r and not r[2](v) then opt_error(what, k, r[1], v) end
  end
end

--- Checks opts against spec: unknown names first, then each value.
-- Returns opts.
function M.check(what, opts, spec)
  M.check_known(what, opts, spec)
  M.check_values(what, opts, spec)
  return opts
end

--- Raises `bad value for 'name' (rule expected, got value)` unless v keeps
-- the rule (a name of RULES or a rule): the message of a merged value
-- whose option table is not the caller's (coldsend.retry's policy).
function M.check_value(name, r, v)
  if type(r) == "string" then r = RULES[r] end
  if not r[2](v) then
    raise(format("bad value for '%s' (%s expected, got %s)", name, r[1], shown(v)))
  end
  return v
end

--- Per-call options every server call accepts as its last argument.
M.CALL_OPTIONS = {
  timeout = "seconds", connect_timeout = "seconds", deadline = "seconds",
  backoff_base = "seconds", backoff_cap = "seconds", max_wait = "seconds",
  max_retries = "retries",
  _deadline_at = "any", -- internal: one deadline for the requests of one call
}
local CALL_OPTIONS = M.CALL_OPTIONS

--- Checks a call's options (nil, or a table of CALL_OPTIONS); returns them.
function M.check_call_options(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    raise(format("bad call options (table expected, got %s)", type(opts)))
  end
  return M.check("call", opts, CALL_OPTIONS)
end

--- The id of a campaign handle, or a raise at the caller's line naming
-- `what` when save() has not created it yet.
function M.saved_id(c, what)
  local id = c.id
  if not core.is_uuid(id) then
    raise(format("%s: the campaign has no id yet (save it first)", what))
  end
  return id
end

--- Raises `bad argument #argn to 'what' (UUID expected, got ...)` at the
-- caller of the caller's caller (level 3) unless id is a UUID.
local function check_id(what, id, argn)
  if not core.is_uuid(id) then
    local got = type(id) == "string" and format("%q", id) or type(id)
    error(format("bad argument #%d to '%s' (UUID expected, got %s)", argn, what, got), 3)
  end
  return id
end

M.check_id = check_id

return M
