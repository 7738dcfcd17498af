--- spec/helpers/util.lua: small file and shell helpers shared by the specs.
--
--   local util = require "spec.helpers.util"
--   util.q("it's")                 --> 'it'\''s'  (one shell word)
--   util.slurp(path)               --> contents, or nil, err if unreadable
--   util.slurp(path, "")           --> contents, or "" if unreadable
--   util.write(path, text)         --> path
--   util.tmp_path(".suffix", ...)  --> a fresh temp path, removed (with
--                                      path .. suffix, ...) by util.cleanup()
--   util.run(cmd)                  --> exit code, stdout, stderr
--   util.strings(v)                --> every string reachable from v

local M = {}

--- s as one single-quoted shell word.
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The whole file at path; if it cannot be opened, missing when given,
-- else nil and io.open's message.
function M.slurp(path, missing)
  local f, err = io.open(path, "rb")
  if not f then
    if missing ~= nil then return missing end
    return nil, err
  end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text to path (binary, truncating); returns path.
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local tracked = {}

--- A fresh temporary path, remembered (and path .. each suffix given)
-- for util.cleanup().
function M.tmp_path(...)
  local path = os.tmpname()
  tracked[#tracked + 1] = path
  for i = 1, select("#", ...) do
    tracked[#tracked + 1] = path .. select(i, ...)
  end
  return path
end

--- Writes content to a fresh tracked temporary file; returns its path.
function M.write_tmp(content)
  return M.write(M.tmp_path(), content)
end

--- Removes every path util.tmp_path handed out so far.
function M.cleanup()
  for _, path in ipairs(tracked) do os.remove(path) end
  tracked = {}
end

--- Runs a shell command (stdin from /dev/null unless it says otherwise);
-- returns its exit code, stdout and stderr.
function M.run(cmd)
  local base = os.tmpname()
  os.execute(string.format("%s >%s.out 2>%s.err; echo $? >%s.rc", cmd, base, base, base))
  local rc, out, err = tonumber(M.slurp(base .. ".rc", "")), M.slurp(base .. ".out", ""), M.slurp(base .. ".err", "")
  os.remove(base); os.remove(base .. ".rc"); os.remove(base .. ".out"); os.remove(base .. ".err")
  return rc, out, err
end

--- Every string reachable from v: strings, table keys and values, and
-- tostring of each table (for "this secret shows nowhere" checks).
function M.strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    out[#out + 1] = tostring(v)
    for k, x in pairs(v) do
      M.strings(k, out, seen)
      M.strings(x, out, seen)
    end
  end
  return out
end

return M
