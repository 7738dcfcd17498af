--- coldsend.options: the one checker of options and arguments.
-- Every misuse raises at the caller's line (the first frame outside the
-- library's directory), naming the option, the rule and the value.
-- @module coldsend.options
local core = require "coldsend.core"

local M = {}

local type, pairs, tostring, error = type, pairs, tostring, error
local format = string.format


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

-- A value for a message; NaN as "nan" on every Lua (PUC Lua prints 0/0 as "-nan").
local function shown_value(v)
  if v ~= v then return "nan" end
  return type(v) == "string" and format("%q", v) or tostring(v)
end

local function opt_error(what, name, rule, value)
  local shown = shown_value(value)
  if type(value) == "table" or type(value) == "function" then shown = type(value) end
  raise(format("bad option '%s' for %s (%s expected, got %s)", name, what, rule, shown))
end

local function check_number(what, opts, name, min)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v <= (min or 0) or v == math.huge then
    opt_error(what, name, "positive number of seconds", v)
  end
  return v
end

local function check_count(what, opts, name)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) or v > 100 then
    opt_error(what, name, "integer 0..100", v)
  end
  return v
end

local function check_function(what, opts, name)
  local v = opts[name]
  if v == nil then return nil end
  local mt = getmetatable(v)
  if type(v) ~= "function" and not (mt and mt.__call) then
    opt_error(what, name, "function", v)
  end
  return v
end

local function check_known(what, opts, known)
  for k in pairs(opts) do
    if not known[k] then
      raise(require("coldsend.help").unknown_option(k, what, known))
    end
  end
end

-- Per-call options every server call accepts as its last argument.
local CALL_OPTIONS = {
  timeout = true, connect_timeout = true, deadline = true, max_retries = true,
  backoff_base = true, backoff_cap = true, max_wait = true,
  _deadline_at = true, -- internal: one deadline for the requests of one call
}

local function check_call_options(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    raise(format("bad call options (table expected, got %s)", type(opts)))
  end
  check_known("call", opts, CALL_OPTIONS)
  check_number("call", opts, "timeout")
  check_number("call", opts, "connect_timeout")
  check_number("call", opts, "deadline")
  check_number("call", opts, "backoff_base")
  check_number("call", opts, "backoff_cap")
  check_number("call", opts, "max_wait")
  check_count("call", opts, "max_retries")
  return opts
end
-- checks shared by the calls

local function check_id(what, id, argn)
  if not core.is_uuid(id) then
    local shown = type(id) == "string" and format("%q", id) or type(id)
    error(format("bad argument #%d to '%s' (UUID expected, got %s)", argn, what, shown), 3)
  end
  return id
end

M.shown_value, M.opt_error = shown_value, opt_error
M.check_number, M.check_count, M.check_function = check_number, check_count, check_function
M.check_known, M.check_call_options, M.check_id = check_known, check_call_options, check_id
M.CALL_OPTIONS = CALL_OPTIONS

return M
