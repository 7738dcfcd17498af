--- coldsend.cli.output: what the command-line tool writes and how it
-- ends. The world a command talks to (stdout, stderr, stdin, the
-- environment; replaced by the tests), text for a terminal (escaped, the
-- key and passwords cut out), --json output, error reports and the exit
-- code each one means, usage errors, the confirmation prompt and the
-- count of items done on a terminal.
-- @module coldsend.cli.output
local M = {}

local format, concat = string.format, table.concat

--- Exit codes: 0 done, 1 the API (or the network) failed, 2 a usage or
-- validation error; nothing was sent.
M.EXIT_OK, M.EXIT_API, M.EXIT_USAGE = 0, 1, 2

-- ----------------------------------------------------------------------
-- the world the CLI talks to (replaced by the tests)

-- Whether a shell command exits 0, on every Lua (5.1 and LuaJIT return a number).
local function shell_ok(cmd)
  local ok, _, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and (code == nil or code == 0)
end

local function default_isatty()
  -- the shell inherits our stdin, so `test -t 0` tests it
  return shell_ok("test -t 0")
end

-- stderr that flushes stdout before each write, so that output sent to one
-- file (2>&1, a CI log) keeps the order a terminal shows.
local function after_stdout(err, stdout)
  return {
    write = function(self, ...)
      stdout:flush()
      err:write(...)
      return self
    end,
    flush = function() return err:flush() end,
  }
end

local function world(io_)
  io_ = io_ or {}
  local stdout = io_.stdout or io.stdout
  return {
    stdout = stdout,
    stderr = after_stdout(io_.stderr or io.stderr, stdout),
    stdin = io_.stdin or io.stdin,
    getenv = io_.getenv or os.getenv,
    isatty = io_.isatty or default_isatty,
    stdout_tty = io_.stdout_tty or function()
      return io_.stdout == nil and require("coldsend.progress").detect_tty(1)
    end,
    -- whether stderr is a terminal (the progress bar redraws one line)
    stderr_tty = io_.stderr_tty or function()
      return io_.stderr == nil and require("coldsend.progress").detect_tty(2)
    end,
  }
end

-- ----------------------------------------------------------------------
-- output

-- Text for a terminal: control characters (C0, DEL and the UTF-8 C1 range
-- a terminal may read as CSI) shown as \xNN / \u{NN}, so a server string
-- cannot move the cursor, retitle the window or hide a line. Newlines and
-- tabs of the text itself stay. --json output is written exact instead.
-- The key and the passwords of the command, never printed, in every form
-- (coldsend.redact also hides anything shaped like a key).
local hidden = {}

local function text(s, one_line)
  return require("coldsend.text").escape(require("coldsend.redact").string(tostring(s), hidden),
    one_line)
end

local function write_text(f, ...)
  local n = select("#", ...)
  local parts = { ... }
  for i = 1, n do parts[i] = text(parts[i]) end
  f:write(table.concat(parts, "", 1, n))
end

local function out(w, ...)
  write_text(w.stdout, ...)
  w.stdout:write("\n")
end

local function err_line(w, first, ...)
  -- an error object prints as "coldsend: ..." already
  first = tostring(first):gsub("^coldsend: ", "")
  write_text(w.stderr, "coldsend: ", first, ...)
  w.stderr:write("\n")
end

-- A raised message without the "file:line: " the raise added.
local function clean(msg)
  return (tostring(msg):gsub("^[^\n:]*:%d+: ", ""))
end

local function json()
  return require "coldsend.json"
end

-- A table ready for JSON: empty tables as [], functions and userdata
-- dropped, NaN and infinities (which lua-cjson reads from a server, and
-- JSON has not) as null.
local function jsonable(v)
  if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then return json().null end
  if type(v) ~= "table" then
    if type(v) == "function" or type(v) == "userdata" and v ~= json().null then return nil end
    return v
  end
  if next(v) == nil then return json().array() end
  local t = {}
  for k, x in pairs(v) do t[k] = jsonable(x) end
  return t
end

-- JSON text as written: the key cut out, and UTF-8 whatever bytes the
-- server sent (each stray byte becomes U+FFFD).
local function write_json(w, s)
  w.stdout:write(require("coldsend.text").utf8(require("coldsend.redact").string(s, hidden)), "\n")
end

local function print_json(w, v)
  -- sorted keys: the same answer prints the same text on every run
  write_json(w, json().encode_sorted(jsonable(v)))
end

-- Where a problem is: "row 3, column Email", "variants[2].subject_template"
-- (a field), or "file".
local function where(p)
  if type(p) ~= "table" then return "file" end
  local parts = {}
  if p.row ~= nil then parts[#parts + 1] = "row " .. tostring(p.row) end
  if p.column ~= nil then parts[#parts + 1] = "column " .. tostring(p.column) end
  if p.field ~= nil then parts[#parts + 1] = tostring(p.field) end
  return #parts > 0 and concat(parts, ", ") or "file"
end

local function problem_lines(w, problems)
  for _, p in ipairs(type(problems) == "table" and problems or {}) do
    local msg = type(p) == "table" and (p.message or p.rule) or p
    write_text(w.stderr, format("  %s: %s\n", where(p), tostring(msg)))
  end
end

-- "  ... N more" when count problems were found and fewer are listed.
local function more_problems(w, count, problems)
  if type(count) == "number" and type(problems) == "table" and count > #problems then
    w.stderr:write(format("  ... %d more\n", count - #problems))
  end
end

-- Reports an error object (nil, err from a call): exit 2 for a local
-- validation failure (nothing was sent), else 1.
local function report(w, e)
  if type(e) ~= "table" then
    err_line(w, clean(e))
    return M.EXIT_USAGE
  end
  err_line(w, tostring(e))
  -- an invalid campaign's message lists its problems already; an upload's
  -- names only the first
  local listed, msg = type(e.problems) == "table", tostring(e)
  for _, p in ipairs(listed and e.problems or {}) do
    if type(p) ~= "table" or not msg:find(tostring(p.message), 1, true) then listed = false end
  end
  if not listed then problem_lines(w, e.problems) end
  more_problems(w, e.problem_count, e.problems)
  for _, d in ipairs(type(e.details) == "table" and e.details or {}) do
    write_text(w.stderr, format("  %s: %s\n", tostring(d.field), tostring(d.message)))
  end
  if e.campaign then
    write_text(w.stderr, format("  the campaign was created: %s\n", tostring(e.campaign.id)))
  end
  if e.state_file then
    w.stderr:write(format("  upload state: %s (--restart sends the whole file again)\n",
      tostring(e.state_file)))
  end
  return e.code == "invalid" and M.EXIT_USAGE or M.EXIT_API
end

-- An error object for an answer the server should not have sent (exit 1).
local function protocol_error(msg)
  return setmetatable({ code = "protocol", message = msg },
    { __tostring = function(e) return "coldsend: protocol: " .. e.message end })
end

-- A usage error: raised inside a command, turned into exit 2.
local Usage = {}
local function usage_error(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, Usage), 0)
end


-- Whether e is a usage error (usage_error's).
local function is_usage(e)
  return getmetatable(e) == Usage
end

-- A count of items done on a terminal's stderr ("planning 3/100 q1.lua"),
-- redrawn in place; nothing when stderr is not a terminal.
local function counter(w, verb, total)
  local tty = w.stderr_tty()
  return {
    step = function(_, i, label)
      if not tty then return end
      local line = format("%s %d/%d %s", verb, i, total, text(label or "", true))
      w.stderr:write("\r\27[K", line:sub(1, 79))
      w.stderr:flush()
    end,
    done = function()
      if tty then w.stderr:write("\r\27[K") w.stderr:flush() end
    end,
  }
end

local function confirm(w, question)
  w.stderr:write(question or "Apply? [y/N] ")
  w.stderr:flush()
  local line = w.stdin:read("*l")
  return line ~= nil and (line:match("^%s*[yY]%s*$") or line:match("^%s*[yY][eE][sS]%s*$")) ~= nil
end

-- Asks once (or takes --yes); false when declined (a message said so).
local function confirmed(w, o, question)
  if o.yes then return true end
  if not w.isatty() then
    usage_error("%s asks for confirmation: pass --yes when stdin is not a terminal", o.command)
  end
  if confirm(w, question) then return true end
  err_line(w, o.command .. " declined; nothing changed")
  return false
end

-- The items of a server's list that are objects (a number or a string
-- there has no fields to show; --json still prints the list as sent).
local function objects(list)
  local t = {}
  for _, x in ipairs(list) do
    if type(x) == "table" then t[#t + 1] = x end
  end
  return t
end

-- A server's value in a table's cell: "-" when absent or null.
local function cell(v)
  if v == nil or v == json().null then return "-" end
  return text(v, true)
end

-- Server fields outside the field table that status shows when present.
local REPORTED = { "current_step", "created_at", "launched_at", "total_leads", "sent_count",
  "reply_count", "open_count", "bounce_count", "unsubscribe_count" }

-- The fields of a campaign as a plain table, and their names in the stable
-- order of core.campaign_fields(). Not pairs(c): LuaJIT has no __pairs.
local function fields_of(c)
  local t, names = {}, {}
  local function take(k)
    local ok, v = pcall(function() return c[k] end)
    if ok and v ~= nil then
      t[k] = v
      names[#names + 1] = k
    end
  end
  for _, f in ipairs(require("coldsend.core").campaign_fields()) do take(f.name) end
  for _, k in ipairs(REPORTED) do take(k) end
  return t, names
end

M.shell_ok, M.world, M.hidden = shell_ok, world, hidden
M.text, M.write_text, M.out, M.err_line, M.clean = text, write_text, out, err_line, clean
M.json, M.write_json, M.print_json = json, write_json, print_json
M.problem_lines, M.more_problems, M.report = problem_lines, more_problems, report
M.protocol_error, M.usage_error, M.is_usage = protocol_error, usage_error, is_usage
M.counter, M.confirmed, M.objects, M.cell, M.fields_of = counter, confirmed, objects, cell, fields_of

return M
