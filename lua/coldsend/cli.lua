--- coldsend.cli: the `coldsend` command-line tool (bin/coldsend).
-- Campaigns as code: `coldsend plan FILE` shows what applying a campaign
-- file would change, `coldsend apply FILE` does it; plus status, list,
-- launch, pause and upload. The logic is here, with its input and output
-- injectable, so that the tests can run it in-process as well as through
-- the script. See doc/cli.md.
--
-- Exit codes: 0 done, 1 the API (or the network) failed, 2 a usage or
-- validation error; nothing was sent.
-- @module coldsend.cli
local M = {}

local format, concat = string.format, table.concat

M.EXIT_OK, M.EXIT_API, M.EXIT_USAGE = 0, 1, 2

local USAGE = [[
usage: coldsend [--json] [--base-url URL] COMMAND [ARGS]

Commands:
  plan FILE                  show what applying a campaign file would change
  apply FILE [--launch] [--yes]
                             create (no id in FILE) or update the campaign
  status ID                  a campaign's state and fields
  list [--status S]          every campaign (S: DRAFT, ACTIVE, PAUSED, COMPLETED, FAILED)
  launch ID                  launch a campaign
  pause ID                   pause an active campaign
  upload ID CSV --map email=Email[,first_name=First,...] [--dry-run] [--restart]
                             upload a CSV of leads
  doctor                     check the setup (key, URL, proxy, TLS, scopes...)

Options:
  --json                     machine-readable output (JSON on stdout)
  --base-url URL             the API (default: $COLDSEND_BASE_URL, else the public API)
  -h, --help                 this help; COMMAND --help for a command's

The API key comes from $COLDSEND_API_KEY. A campaign FILE is a Lua file that
returns a table of campaign fields (plus `id` once the campaign exists).
Exit codes: 0 ok, 1 API error, 2 usage or validation error.]]

local HELP = {
  plan = [[
usage: coldsend plan FILE

Loads FILE (a Lua file returning a table of campaign fields) and shows what
`apply` would do: "create" with every field when the table has no `id`,
else one GET of the campaign and the fields that differ, one line each:
  ~ daily_limit_per_inbox: 20 -> 30
  + sequences[step 3]
  - variants[C]
Nothing is written. With --json: {"action":..., "id":..., "changes":[{"op":,
"path":, "from":, "to":}...]}.]],
  apply = [[
usage: coldsend apply FILE [--launch] [--yes]

Shows the plan of FILE, asks "Apply? [y/N]", then creates the campaign (no
`id` in FILE; add the printed id to the file to manage it from then on) or
saves the changed fields.
  --launch   launch the campaign afterwards (an update sends its changes
             and launch = true in one request)
  --yes      do not ask; needed when stdin is not a terminal (else exit 2)
A declined prompt exits with 1 and changes nothing.]],
  status = [[
usage: coldsend status ID

Fetches the campaign ID and prints it: status, launch readiness, missing
requirements and every field. With --json: an object of the fields.]],
  list = [[
usage: coldsend list [--status S]

Lists every campaign (all pages): id, status and name, one per line.
  --status S   only campaigns in status S (DRAFT, ACTIVE, PAUSED, COMPLETED, FAILED)
With --json: an array of the API's campaign list items.]],
  launch = [[
usage: coldsend launch ID

Launches the campaign ID (PUT {"launch": true}). When the server says it is
not ready, prints what is missing (leads, inboxes, ...) and exits with 1.]],
  pause = [[
usage: coldsend pause ID

Pauses the active campaign ID.]],
  upload = [[
usage: coldsend upload ID CSV --map email=Email[,first_name=First,...] [--dry-run] [--restart]

Uploads the leads of the CSV file to campaign ID, in chunks, printing the
progress on stderr. --map maps lead fields to CSV column headers (email is
required; other keys: first_name, last_name, company, or a custom field).
Accepted chunks are recorded in CSV.coldsend-upload, beside the CSV: a
re-run (after a failure or Ctrl-C) sends only what is missing.
  --dry-run   check the file and the mapping, send nothing; a file with
              problems lists them ("row N, column C: ...") and exits 2
  --restart   ignore CSV.coldsend-upload and send the whole file again
              (needed after changing --map; the server skips emails it has)]],
  doctor = [[
usage: coldsend doctor [--base-url URL] [--json]

Checks the setup in order and says what to do about each problem: versions,
the key (shown only as its last 4 characters), the base URL and the proxy
variables, DNS/TCP/TLS (the certificate and the CA bundle), the API's
answer, the key's scopes, the rate limit and the clock. Only GETs.
Exit 0 when every check passes (warnings allowed), 1 when one fails.
With --json: {"checks": [{"advice", "details", "name", "status",
"summary", "time"}...], "ok"}.]],
}
M.HELP, M.USAGE = HELP, USAGE

-- ----------------------------------------------------------------------
-- the world the CLI talks to (replaced by the tests)

local function default_isatty()
  -- the shell inherits our stdin, so `test -t 0` tests it
  local ok, _, code = os.execute("test -t 0")
  if type(ok) == "number" then return ok == 0 end -- LuaJIT / 5.1
  return ok == true and (code == nil or code == 0)
end

local function world(io_)
  io_ = io_ or {}
  return {
    stdout = io_.stdout or io.stdout,
    stderr = io_.stderr or io.stderr,
    stdin = io_.stdin or io.stdin,
    getenv = io_.getenv or os.getenv,
    isatty = io_.isatty or default_isatty,
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
-- The key of the command, never printed (coldsend.redact also hides
-- anything shaped like a key).
local hidden = {}

local function text(s, one_line)
  return require("coldsend.text").escape(require("coldsend.redact").string(tostring(s), hidden),
    one_line)
end
M._text = text

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

-- A table ready for JSON: empty tables as [], functions and userdata dropped.
local function jsonable(v)
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
  if type(e.problem_count) == "number" and type(e.problems) == "table"
      and e.problem_count > #e.problems then
    w.stderr:write(format("  ... %d more\n", e.problem_count - #e.problems))
  end
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

-- A usage error: raised inside a command, turned into exit 2.
local Usage = {}
local function usage_error(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, Usage), 0)
end

-- ----------------------------------------------------------------------
-- arguments

local GLOBAL_FLAGS = { ["--json"] = "json" }
local GLOBAL_VALUES = { ["--base-url"] = "base_url" }

-- Options each command takes: flags (true/false) and options with a value.
local COMMAND_OPTIONS = {
  plan = { args = { "FILE" } },
  apply = { args = { "FILE" }, flags = { ["--launch"] = "launch", ["--yes"] = "yes", ["-y"] = "yes" } },
  status = { args = { "ID" } },
  list = { args = {}, values = { ["--status"] = "status" } },
  launch = { args = { "ID" } },
  pause = { args = { "ID" } },
  upload = { args = { "ID", "CSV" }, values = { ["--map"] = "map" },
    flags = { ["--dry-run"] = "dry_run", ["--restart"] = "restart" } },
  doctor = { args = {} },
}

--- Parses the command line: global options anywhere, then the command's
-- own. Returns a table `{command=, args={...}, json=, base_url=, help=, ...}`
-- or raises a usage error.
-- @tab argv the arguments (`arg` of the script)
-- @treturn table the parsed options
function M.parse(argv)
  local o = { args = {} }
  local spec
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local cmd_flags = spec and spec.flags or {}
    local cmd_values = spec and spec.values or {}
    if a == "--help" or a == "-h" then
      o.help = true
    elseif GLOBAL_FLAGS[a] then
      o[GLOBAL_FLAGS[a]] = true
    elseif cmd_flags[a] then
      o[cmd_flags[a]] = true
    elseif GLOBAL_VALUES[name] or cmd_values[name] then
      local key = GLOBAL_VALUES[name] or cmd_values[name]
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
        if v == nil then usage_error("option %s needs a value", name) end
      end
      -- `--base-url "$UNSET"` must not fall back to another URL
      if v == "" then usage_error("option %s needs a value (got an empty string)", name) end
      o[key] = v
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local known = { "--help" }
      for _, t in ipairs { GLOBAL_FLAGS, GLOBAL_VALUES, cmd_flags, cmd_values } do
        for k in pairs(t) do if k:sub(1, 2) == "--" then known[#known + 1] = k end end
      end
      local close = require("coldsend.help").closest(name, known)
      usage_error("unknown option %s%s%s", a, o.command and (" for '" .. o.command .. "'") or "",
        close and ("; did you mean " .. close .. "?") or "")
    elseif not o.command then
      if a == "help" then
        o.help = true
      elseif not COMMAND_OPTIONS[a] then
        local close = require("coldsend.help").closest(a, COMMAND_OPTIONS)
        usage_error("unknown command '%s' (plan, apply, status, list, launch, pause, upload, doctor)%s",
          a, close and ("; did you mean '" .. close .. "'?") or "")
      else
        o.command, spec = a, COMMAND_OPTIONS[a]
      end
    else
      o.args[#o.args + 1] = a
    end
    i = i + 1
  end
  if o.help then return o end
  if not o.command then usage_error("no command given") end
  local want = spec.args
  if #o.args ~= #want then
    usage_error("'%s' takes %s (got %d argument%s); see coldsend %s --help", o.command,
      #want == 0 and "no arguments" or concat(want, " "), #o.args, #o.args == 1 and "" or "s",
      o.command)
  end
  return o
end

-- ----------------------------------------------------------------------
-- campaign files

--- Loads a campaign file: a Lua chunk run in a fresh environment (a table
-- whose missing names fall back to the standard globals, so `string`,
-- `table`, `require`... work and its own globals stay in it) that must
-- return a table of campaign fields. Not a sandbox: a campaign file is code
-- you trust, like a Makefile.
-- @string path the file
-- @return the definition table, or nil and a message
function M.load_file(path)
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
    return nil, format("%s must return a table of campaign fields (got %s)", path, type(def))
  end
  return def
end

-- ----------------------------------------------------------------------
-- commands

local function client(w, o)
  local key = w.getenv("COLDSEND_API_KEY")
  if key == nil or key == "" then
    usage_error("COLDSEND_API_KEY is not set (the API key, cs_live_...)")
  end
  local base = o.base_url or w.getenv("COLDSEND_BASE_URL")
  if base == "" then base = nil end
  local ok, cs = pcall(require("coldsend").client, { api_key = key, base_url = base })
  if not ok then usage_error("%s", clean(cs)) end
  -- hidden from now on; a key the client refused is in no message, and
  -- hiding " " or "cs_live_" would garble every line
  hidden[1] = key
  return cs
end

local function check_id(id)
  if not require("coldsend.core").is_uuid(id) then
    usage_error("bad campaign id %q (a UUID expected)", tostring(id))
  end
  return id
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

local function plan_json(p)
  local changes = {}
  for i, ch in ipairs(p.changes) do
    changes[i] = { op = ch.op, path = ch.path, from = ch.from, to = ch.to }
  end
  return {
    action = p.action,
    id = p.campaign and p.campaign.id or p.definition.id,
    name = p.definition.name or (p.campaign and p.campaign.name),
    changes = changes,
  }
end

local function make_plan(w, o)
  local def, lerr = M.load_file(o.args[1])
  if not def then usage_error("%s", lerr) end
  -- a create plan needs no server: allow it without a key
  local cs = (def.id ~= nil or o.command == "apply") and client(w, o) or nil
  local ok, p, perr = pcall(require("coldsend.plan").plan, cs, def)
  if not ok then usage_error("%s: %s", o.args[1], clean(p)) end
  return p, perr
end

local commands = {}

-- coldsend plan FILE
function commands.plan(w, o)
  local p, err = make_plan(w, o)
  if not p then return report(w, err) end
  if o.json then print_json(w, plan_json(p)) else out(w, tostring(p)) end
  return M.EXIT_OK
end

local function confirm(w)
  w.stderr:write("Apply? [y/N] ")
  w.stderr:flush()
  local line = w.stdin:read("*l")
  return line ~= nil and (line:match("^%s*[yY]%s*$") or line:match("^%s*[yY][eE][sS]%s*$")) ~= nil
end

-- apply --launch refused as not ready: the campaign was created, or the
-- changes saved, all the same (the launch PUT carries them). Says what was
-- saved and what is missing; exit 1.
local function not_launched(w, o, p, e)
  local c = p.campaign or e.campaign
  local id = c and c.id or p.definition.id
  local missing = type(e.missing_requirements) == "table" and e.missing_requirements or {}
  local names = {}
  for i, ch in ipairs(p.changes or {}) do names[i] = ch.path or ch.field end
  if o.json then
    local result = plan_json(p)
    result.id, result.launched = id, false
    result.campaign = c and fields_of(c) or nil
    result.missing_requirements = json().array(missing)
    print_json(w, result)
  elseif p.action == "create" then
    out(w, format("created: %s", tostring(c)))
    out(w, format('add  id = "%s"  to %s to manage this campaign from now on', tostring(id), o.args[1]))
  elseif #names > 0 then
    out(w, format("saved: %d change%s to campaign %s (%s)", #names, #names == 1 and "" or "s",
      tostring(id), concat(names, ", ")))
  end
  err_line(w, format("not launched: campaign %s is missing %s; add %s, then: coldsend launch %s",
    tostring(id), #missing > 0 and concat(missing, ", ") or "launch requirements",
    #missing == 1 and "it" or "them", tostring(id)))
  return M.EXIT_API
end

-- coldsend apply FILE [--launch] [--yes]
function commands.apply(w, o)
  local p, err = make_plan(w, o)
  if not p then return report(w, err) end
  if not o.json then out(w, tostring(p)) end
  if p.action == "none" and not o.launch then
    if o.json then print_json(w, { action = "none", id = p.campaign.id, changes = {} }) end
    return M.EXIT_OK
  end
  if not o.yes then
    if not w.isatty() then
      usage_error("apply asks for confirmation: pass --yes when stdin is not a terminal")
    end
    if not confirm(w) then
      err_line(w, "apply declined; nothing changed")
      return M.EXIT_API
    end
  end
  local c, aerr = p:apply { launch = o.launch }
  if not c and o.launch and type(aerr) == "table" and aerr.code == "not_ready" then
    return not_launched(w, o, p, aerr)
  end
  if not c then return report(w, aerr) end
  if o.json then
    local result = plan_json(p)
    result.id = c.id
    result.campaign = fields_of(c)
    result.launched = o.launch and true or false
    print_json(w, result)
  else
    local verb = p.action == "create" and "created" or (p.action == "update" and "updated" or "unchanged")
    out(w, format("%s%s: %s", verb, o.launch and " and launched" or "", text(c, true)))
    if p.action == "create" then
      out(w, format('add  id = "%s"  to %s to manage this campaign from now on', c.id, o.args[1]))
    end
  end
  return M.EXIT_OK
end

local function show_value(v)
  return require("coldsend.plan").show(v)
end

-- coldsend status ID
function commands.status(w, o)
  local cs = client(w, o)
  local c, err = cs:get_campaign(check_id(o.args[1]))
  if not c then return report(w, err) end
  local t, names = fields_of(c)
  if o.json then print_json(w, t) return M.EXIT_OK end
  out(w, text(c, true))
  for _, k in ipairs(names) do
    out(w, format("  %-28s %s", k, text(show_value(t[k]), true)))
  end
  return M.EXIT_OK
end

local STATUSES = { DRAFT = true, ACTIVE = true, PAUSED = true, COMPLETED = true, FAILED = true }

-- coldsend list [--status S]
function commands.list(w, o)
  if o.status and not STATUSES[o.status] then
    usage_error("bad --status %q (DRAFT, ACTIVE, PAUSED, COMPLETED or FAILED)", o.status)
  end
  local cs = client(w, o)
  local items = {}
  local ok, err = pcall(function()
    for item in cs:each_campaign { status = o.status } do items[#items + 1] = item end
  end)
  if not ok then return report(w, err) end
  if o.json then print_json(w, json().array(items)) return M.EXIT_OK end
  for _, item in ipairs(items) do
    out(w, format("%s  %-9s %s", text(item.campaign_id, true), text(item.status, true),
      text(item.name, true)))
  end
  if #items == 0 then w.stderr:write("no campaigns\n") end
  return M.EXIT_OK
end

local function state_command(method, verb)
  return function(w, o)
    local cs = client(w, o)
    local c = cs:campaign(check_id(o.args[1]))
    local done, err = c[method](c)
    if not done then return report(w, err) end
    if o.json then print_json(w, fields_of(c)) else out(w, verb .. ": " .. text(c, true)) end
    return M.EXIT_OK
  end
end

-- coldsend launch ID
commands.launch = state_command("launch", "launched")
-- coldsend pause ID
commands.pause = state_command("pause", "paused")

--- Parses a --map value: `email=Email,first_name=First` -> {email="Email", ...}.
-- @string spec the value
-- @return the mapping, or nil and a message
function M.parse_map(spec)
  local map, n = {}, 0
  for pair in (spec .. ","):gmatch("([^,]*),") do
    local k, v = pair:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if not k or v == "" then
      return nil, format("bad --map entry %q (lead_field=CSV column expected)", pair)
    end
    map[k], n = v, n + 1
  end
  if not map.email then return nil, "--map must map email (e.g. --map email=Email)" end
  return map
end

-- The pre-flight report of upload --dry-run: a summary and every problem;
-- exit 2 when there are problems (nothing would be sent).
local function dry_run_report(w, o, r)
  local count = tonumber(r.problem_count) or 0
  if o.json then
    print_json(w, { file = o.args[2], rows = r.rows, bytes = r.bytes,
      chunks = type(r.chunks) == "table" and #r.chunks or 0, problem_count = count,
      problems = json().array(r.problems or {}), mapping = r.mapping })
  else
    out(w, format("%s: %s rows, %s bytes, %d chunk%s, %d problem%s%s", o.args[2],
      tostring(r.rows), tostring(r.bytes), type(r.chunks) == "table" and #r.chunks or 0,
      type(r.chunks) == "table" and #r.chunks == 1 and "" or "s", count, count == 1 and "" or "s",
      count == 0 and "; nothing sent (--dry-run)" or ""))
  end
  if count == 0 then return M.EXIT_OK end
  err_line(w, format("%s: %d problem%s; nothing would be sent", o.args[2], count,
    count == 1 and "" or "s"))
  problem_lines(w, r.problems)
  if type(r.problems) == "table" and count > #r.problems then
    w.stderr:write(format("  ... %d more\n", count - #r.problems))
  end
  return M.EXIT_USAGE
end

-- coldsend upload ID CSV --map ...
function commands.upload(w, o)
  if not o.map then usage_error("upload needs --map email=COLUMN[,field=COLUMN...]") end
  local map, merr = M.parse_map(o.map)
  if not map then usage_error("%s", merr) end
  local f = io.open(o.args[2], "rb")
  if not f then usage_error("cannot read %s", o.args[2]) end
  f:close()
  local cs = client(w, o)
  local c = cs:campaign(check_id(o.args[1]))
  -- the bar is labelled with the file's name as the user gave it
  local progress = not o.json and not o.dry_run and require("coldsend.progress").new {
    -- a file name may hold escape sequences too
    out = w.stderr, label = text(o.args[2]:match("[^/]+$") or o.args[2], true),
    is_tty = w.stderr_tty() and true or false,
  } or nil
  local ok, job, err = pcall(c.upload_leads, c, {
    file = o.args[2], mapping = map, on_progress = progress, wait = true,
    dry_run = o.dry_run or nil, restart = o.restart or nil,
  })
  if progress then progress:finish() end
  if not ok then usage_error("%s", clean(job)) end
  if not job then return report(w, err) end
  if o.dry_run then return dry_run_report(w, o, job) end
  if o.json then
    local t = {}
    if type(job) == "table" then for k, v in pairs(job) do t[k] = v end end
    print_json(w, t)
  else
    out(w, text(job, true))
  end
  return M.EXIT_OK
end

-- coldsend doctor: the checks of coldsend.doctor
function commands.doctor(w, o)
  local doctor = require "coldsend.doctor"
  local r = doctor.doctor { base_url = o.base_url, getenv = w.getenv }
  if o.json then write_json(w, r:json()) else out(w, r:text(doctor.utf8_locale(w.getenv))) end
  return r.ok and M.EXIT_OK or M.EXIT_API
end

-- ----------------------------------------------------------------------

--- Runs the tool: `main(arg)` from bin/coldsend.
-- @tab argv the arguments
-- @tab[opt] io_ replacements for the world: `stdout`, `stderr`, `stdin`
-- (file-like), `getenv(name)`, `isatty()` (for stdin)
-- @treturn int the exit code: 0 ok, 1 API error, 2 usage or validation error
function M.main(argv, io_)
  local w = world(io_)
  hidden[1] = nil -- the key of an earlier call in this process is not this one's
  local ok, code = pcall(function()
    local o = M.parse(argv or {})
    if o.help then
      out(w, o.command and HELP[o.command] or USAGE)
      return M.EXIT_OK
    end
    return commands[o.command](w, o)
  end)
  if ok then return code end
  if getmetatable(code) == Usage then
    err_line(w, code.message)
    return M.EXIT_USAGE
  end
  if type(code) == "table" then return report(w, code) end -- a raised error object
  err_line(w, clean(code))
  return M.EXIT_USAGE
end

return M
