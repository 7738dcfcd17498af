--- coldsend.cli: the `coldsend` command-line tool (bin/coldsend).
-- Campaigns as code: `coldsend plan FILE` shows what applying a campaign
-- file would change, `coldsend apply FILE` does it, `coldsend export ID`
-- writes an existing campaign as such a file, `plan DIR`/`apply DIR` a folder
-- of them; plus status, list, launch, pause, resume, delete, leads,
-- inboxes, stats, timeline, upload and doctor.
-- The logic is here, with its input and output
-- injectable, so that the tests can run it in-process as well as through
-- the script. See doc/cli.md.
--
-- Exit codes: 0 done, 1 the API (or the network) failed, 2 a usage or
-- validation error; nothing was sent.
-- @module coldsend.cli
local M = {}

local format, concat, rep = string.format, table.concat, string.rep

M.EXIT_OK, M.EXIT_API, M.EXIT_USAGE = 0, 1, 2

local USAGE = [[
usage: coldsend [--json] [--base-url URL] COMMAND [ARGS]

Commands:
  plan FILE|DIR              show what applying FILE (or every file of DIR) would change
  apply FILE|DIR [--launch] [--yes] [--write-id]
                             create (no id in FILE) or update the campaign(s)
  export ID [FILE] [--force] a campaign as a campaign file (stdout without FILE)
  export --all DIR [--force] every campaign, one file each in DIR
  status ID                  a campaign's state and fields
  list [--status S]          every campaign (S: DRAFT, ACTIVE, PAUSED, COMPLETED, FAILED)
  launch ID                  launch a campaign
  pause ID                   pause an active campaign
  resume ID                  resume a paused campaign
  delete ID [--yes]          delete a DRAFT or PAUSED campaign (asks first)
  leads ID [--page N] [--limit N] [--status S] [--search TEXT]
                             a campaign's leads (every page unless --page)
  inboxes                    the sender accounts
  inboxes add FILE           add the SMTP inboxes of FILE (passwords from the environment)
  stats [--status S] [--from D] [--to D]
                             the workspace's KPIs and each campaign's rates
  timeline [--from D] [--to D] [--width N]
                             sent, opened and replied per day, as a chart
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
usage: coldsend plan FILE|DIR

Loads FILE (a Lua file returning a table of campaign fields) and shows what
`apply` would do: "create" with every field when the table has no `id`,
else one GET of the campaign and the fields that differ, one line each:
  ~ daily_limit_per_inbox: 20 -> 30
  + sequences[step 3]
  - variants[C]
Nothing is written. With --json: {"action":..., "id":..., "changes":[{"op":,
"path":, "from":, "to":}...]}.
DIR: every *.lua file of the folder, in name order, one plan each, then
"Folder: N to create, N to update, N unchanged". Every file is loaded and
checked before the first request. A file without `id` takes the one
recorded for it in DIR/.coldsend-ids.json (see apply). With --json:
{"folder", "campaigns": [plan + "file"], "create", "update", "unchanged"}.]],
  apply = [[
usage: coldsend apply FILE|DIR [--launch] [--yes] [--write-id]

Shows the plan of FILE, asks "Apply? [y/N]", then creates the campaign (no
`id` in FILE) or saves the changed fields. After a create the new id is
kept so that the next plan of FILE is an update: in the folder's
.coldsend-ids.json when there is one, else printed for you to add.
DIR: the plan of every *.lua file, one question, then the writes in file
order; the first failure stops it, saying what was and was not applied
(exit 1). New ids are recorded in DIR/.coldsend-ids.json.
  --launch    launch the campaign afterwards (an update sends its changes
              and launch = true in one request; not with DIR)
  --write-id  put the new id into the file (id = "..." after its
              `return {`) instead of the record
  --yes       do not ask; needed when stdin is not a terminal (else exit 2)
A declined prompt exits with 1 and changes nothing.]],
  export = [[
usage: coldsend export ID [FILE] [--force]
       coldsend export --all DIR [--force]

Writes campaign ID as a campaign file: its id and every field you can set
(variants and follow-ups included), multi-line texts as Lua long strings.
`coldsend plan FILE` of it then shows no changes. Without FILE the file is
printed on stdout. --all writes every campaign into DIR (created when
missing), one file each, named after the campaign (q1-outreach.lua).
  --force   replace files that exist (else exit 2, nothing written)
With --json: {"id", "name", "file"} (or "campaign_file", the text), or for
--all an array of {"id", "name", "file"}.]],
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
  resume = [[
usage: coldsend resume ID

Resumes the paused campaign ID (POST /campaigns/ID/resume): it sends
again. A campaign that lost what it needs (leads, inboxes) is refused,
exit 1. With --json: the campaign's fields.]],
  delete = [[
usage: coldsend delete ID [--yes]

Shows campaign ID, asks "Delete campaign ... ? [y/N]" and deletes it
(DRAFT or PAUSED only; its leads go with it). When stdin is not a
terminal --yes is needed (else exit 2, nothing sent); a declined prompt
exits 1. With --json: {"id", "name", "deleted": true}.]],
  leads = [[
usage: coldsend leads ID [--page N] [--limit N] [--status S] [--search TEXT]

Lists the leads of campaign ID: email, status, name and company, one per
line, then the count on stderr. Every page by default (100 a request);
--page N shows that page only (--limit a page, default 20).
  --status S      only leads in status S (PENDING, CONTACTED, ...)
  --search TEXT   only emails containing TEXT
With --json: an array of the API's lead objects, or with --page
{"leads": [...], "pagination": {...}}.]],
  inboxes = [[
usage: coldsend inboxes
       coldsend inboxes add FILE

Lists the sender accounts: id, email, type, daily limit, status (all pages).
`add FILE` adds the SMTP inboxes of FILE, a Lua file returning a table of
the fields of POST /sender-accounts/smtp (email_address, display_name,
inbox_type, smtp_host, smtp_port, smtp_username, imap_host, imap_port,
imap_username, daily_limit...) or a list of such tables. Passwords never
go in the file: they come from $COLDSEND_SMTP_PASSWORD and
$COLDSEND_IMAP_PASSWORD (IMAP falls back to the SMTP one), or from the
variables that smtp_password_env / imap_password_env name. Every inbox is
checked before the first is sent; the first failure stops the rest.
With --json: an array of the API's sender accounts.]],
  stats = [[
usage: coldsend stats [--status S] [--from YYYY-MM-DD] [--to YYYY-MM-DD]

The workspace's KPIs (campaigns, emails sent, average open, reply and
bounce rates over the campaigns that sent) and a table of the campaigns:
leads, sent, open/reply/bounce rates (GET /analytics/campaigns).
  --status S   only campaigns in status S
  --from D     only campaigns launched on or after D; --to: on or before
With --json: the API's answer (rates as fractions 0..1).]],
  timeline = [[
usage: coldsend timeline [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--width N]

Sent, opened and replied per day (GET /analytics/campaigns/timeline; by
default the 90 days to today) as three bar charts over one date axis,
then the totals and rates. Unicode blocks when the locale is UTF-8
(LC_ALL, LC_CTYPE, LANG), # and . otherwise. The chart fits the terminal:
--width N, else $COLUMNS, else the terminal's width, else 80 (at least
40); when the days outnumber the columns one column sums several days.
With --json: the API's answer.]],
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

-- ----------------------------------------------------------------------
-- arguments

local GLOBAL_FLAGS = { ["--json"] = "json" }
local GLOBAL_VALUES = { ["--base-url"] = "base_url" }

-- Options each command takes: flags (true/false) and options with a value.
local COMMAND_OPTIONS = {
  plan = { args = { "FILE" } },
  apply = { args = { "FILE" }, flags = { ["--launch"] = "launch", ["--yes"] = "yes", ["-y"] = "yes",
    ["--write-id"] = "write_id" } },
  status = { args = { "ID" } },
  list = { args = {}, values = { ["--status"] = "status" } },
  launch = { args = { "ID" } },
  pause = { args = { "ID" } },
  upload = { args = { "ID", "CSV" }, values = { ["--map"] = "map" },
    flags = { ["--dry-run"] = "dry_run", ["--restart"] = "restart" } },
  doctor = { args = {} },
  resume = { args = { "ID" } },
  delete = { args = { "ID" }, flags = { ["--yes"] = "yes", ["-y"] = "yes" } },
  leads = { args = { "ID" }, values = { ["--page"] = "page", ["--limit"] = "limit",
    ["--status"] = "status", ["--search"] = "search" } },
  inboxes = { args = { "add", "FILE" }, min = 0, usage = "no arguments, or add FILE" },
  stats = { args = {}, values = { ["--status"] = "status", ["--from"] = "from", ["--to"] = "to" } },
  timeline = { args = {}, values = { ["--from"] = "from", ["--to"] = "to", ["--width"] = "width" } },
  -- export ID [FILE], export --all DIR
  export = { args = { "ID", "FILE" }, min = 1, usage = "ID [FILE] (or --all DIR)",
    flags = { ["--all"] = "all", ["--force"] = "force" } },
}

-- The commands in the order the usage lists them.
local COMMAND_NAMES = "plan, apply, export, status, list, launch, pause, resume, delete, "
  .. "leads, inboxes, stats, timeline, upload, doctor"

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
        usage_error("unknown command '%s' (%s)%s", a, COMMAND_NAMES,
          close and ("; did you mean '" .. close .. "'?") or "")
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
  if #o.args > #want or #o.args < (spec.min or #want) then
    usage_error("'%s' takes %s (got %d argument%s); see coldsend %s --help", o.command,
      spec.usage or (#want == 0 and "no arguments" or concat(want, " ")), #o.args,
      #o.args == 1 and "" or "s", o.command)
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
  -- hidden from now on, with its echoed forms; a key the client refused is
  -- in no message, and hiding " " or "cs_live_" would garble every line
  require("coldsend.redact").add(hidden, key, true)
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

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
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

-- Writes a file whole (a temporary file renamed over it); exit 1 naming it
-- when that fails.
local function write_whole(path, data)
  local ok, err = require("coldsend.core").write_private(path, data)
  if not ok then
    error(setmetatable({ message = format("cannot write %s: %s", path, tostring(err)) }, Usage), 0)
  end
end

local function files()
  return require "coldsend.campaign_files"
end

-- The id record of a folder (raises a usage error for a bad one).
local function read_ids(dir)
  local ok, state = pcall(files().read_ids, dir)
  if not ok then usage_error("%s", tostring(state)) end
  return state
end

-- One campaign file: {file=, name=, def=, recorded=} where recorded says
-- the id came from the folder's record, not from the file.
local function load_entry(path, state)
  local def, lerr = M.load_file(path)
  if not def then usage_error("%s", lerr) end
  -- every value checked now, before any request (diff reads the
  -- definition through the setters; a bad value raises naming the field)
  local ok, why = pcall(require("coldsend.plan").diff, require("coldsend.core").campaign(), def)
  if not ok then usage_error("%s: %s", path, clean(why)) end
  local _, name = files().split(path)
  local e = { file = path, name = name, def = def }
  if def.id == nil and state and state.ids[name] then
    def.id, e.recorded = state.ids[name], true
  end
  return e
end

-- Plans one entry: the plan, or nil and the error object. A bad value
-- raises (a usage error naming the file).
local function plan_entry(cs, e)
  local ok, p, perr = pcall(require("coldsend.plan").plan, cs, e.def)
  if not ok then usage_error("%s: %s", e.file, clean(p)) end
  e.plan = p
  return p, perr
end

-- The hint after an error for an id that came from the record.
local function recorded_hint(w, e, state, err)
  if e.recorded and type(err) == "table" and err.code == "not_found" then
    write_text(w.stderr, format("  the id of %s comes from %s; remove its entry to create the campaign again\n",
      e.name, state.path))
  end
end

local function single_plan(w, o)
  local dir = files().split(o.args[1])
  local state = read_ids(dir)
  local e = load_entry(o.args[1], state.exists and state or nil)
  -- a create plan needs no server: allow it without a key
  local cs = (e.def.id ~= nil or o.command == "apply") and client(w, o) or nil
  local p, perr = plan_entry(cs, e)
  if not p then
    local code = report(w, perr)
    recorded_hint(w, e, state, perr)
    return nil, code
  end
  return p, e, state
end

-- ----------------------------------------------------------------------
-- a folder of campaign files

local function folder_of(path)
  local dir = path:gsub("/+$", "")
  return dir == "" and "/" or dir
end

-- Loads and plans every campaign file of a folder. Every file is loaded
-- and checked before the first request; problems of any file exit 2.
-- Returns the entries, the id record and the client.
local function folder_plans(w, o)
  local dir = folder_of(o.args[1])
  local paths = files().list(dir)
  if #paths == 0 then usage_error("%s holds no campaign files (*.lua)", dir) end
  local state = read_ids(dir)
  local entries, problems = {}, {}
  for _, path in ipairs(paths) do
    local ok, e = pcall(load_entry, path, state)
    if ok then
      entries[#entries + 1] = e
    elseif getmetatable(e) == Usage then
      problems[#problems + 1] = e.message
    else
      error(e, 0)
    end
  end
  local function stop_on_problems()
    if #problems == 0 then return end
    for _, msg in ipairs(problems) do err_line(w, msg) end
    usage_error("%d of %d campaign files have problems; nothing was sent", #problems, #paths)
  end
  -- two files managing one campaign would overwrite each other's changes
  -- (a UUID in upper case names the same campaign)
  local owner = {}
  for _, e in ipairs(entries) do
    local id = type(e.def.id) == "string" and e.def.id:lower() or e.def.id
    if id ~= nil and owner[id] then
      problems[#problems + 1] = format("%s and %s both manage campaign %s%s", owner[id].file, e.file,
        tostring(id), (e.recorded or owner[id].recorded) and (" (see " .. state.path .. ")") or "")
    elseif id ~= nil then
      owner[id] = e
    end
  end
  stop_on_problems()
  -- a recorded name without its file: most likely a file renamed, whose
  -- campaign the plan would create a second time
  local present = {}
  for _, e in ipairs(entries) do present[e.name] = true end
  local stale = {}
  for name in pairs(state.ids) do
    if not present[name] then stale[#stale + 1] = name end
  end
  table.sort(stale)
  for _, name in ipairs(stale) do
    err_line(w, format("warning: %s records %s (campaign %s), which is not in the folder; if it was renamed, "
      .. "move its entry to the new name, else its campaign is created again", state.path, name,
      tostring(state.ids[name])))
  end
  local needs_key = o.command == "apply"
  for _, e in ipairs(entries) do needs_key = needs_key or e.def.id ~= nil end
  local cs = needs_key and client(w, o) or nil
  local count = counter(w, "planning", #entries)
  for i, e in ipairs(entries) do
    count:step(i, e.name)
    local ok, p, perr = pcall(plan_entry, cs, e)
    if not ok then
      if getmetatable(p) ~= Usage then count:done() error(p, 0) end
      problems[#problems + 1] = p.message
    elseif not p and type(perr) == "table" and perr.code == "invalid" then
      problems[#problems + 1] = e.file .. ": " .. tostring(perr):gsub("^coldsend: ", "")
    elseif not p then
      count:done()
      err_line(w, format("%s: the plan failed; nothing was sent", e.file))
      local code = report(w, perr)
      recorded_hint(w, e, state, perr)
      return nil, code
    end
  end
  count:done()
  stop_on_problems()
  return entries, state, cs
end

local function folder_counts(entries)
  local n = { create = 0, update = 0, none = 0 }
  for _, e in ipairs(entries) do n[e.plan.action] = n[e.plan.action] + 1 end
  return n
end

local function folder_summary(entries)
  local n = folder_counts(entries)
  return format("Folder: %d to create, %d to update, %d unchanged (%d campaign file%s).",
    n.create, n.update, n.none, #entries, #entries == 1 and "" or "s")
end

local function print_folder_plan(w, entries)
  for _, e in ipairs(entries) do
    out(w, e.file)
    out(w, tostring(e.plan))
    out(w, "")
  end
  out(w, folder_summary(entries))
end

local function entry_json(e)
  local t = plan_json(e.plan)
  t.file = e.file
  return t
end

local commands = {}

-- coldsend plan FILE|DIR
function commands.plan(w, o)
  if files().is_dir(o.args[1]) then
    local entries, code = folder_plans(w, o)
    if not entries then return code end
    if o.json then
      local list = {}
      for i, e in ipairs(entries) do list[i] = entry_json(e) end
      local n = folder_counts(entries)
      print_json(w, { folder = folder_of(o.args[1]), campaigns = json().array(list),
        create = n.create, update = n.update, unchanged = n.none })
    else
      print_folder_plan(w, entries)
    end
    return M.EXIT_OK
  end
  local p, e = single_plan(w, o)
  if not p then return e end
  if o.json then print_json(w, plan_json(p)) else out(w, tostring(p)) end
  return M.EXIT_OK
end

local function confirm(w, question)
  w.stderr:write(question or "Apply? [y/N] ")
  w.stderr:flush()
  local line = w.stdin:read("*l")
  return line ~= nil and (line:match("^%s*[yY]%s*$") or line:match("^%s*[yY][eE][sS]%s*$")) ~= nil
end

-- apply --launch refused as not ready: the campaign was created, or the
-- changes saved, all the same (the launch PUT carries them). Says what was
-- saved and what is missing; exit 1.
local function not_launched(w, o, p, e, note)
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
    if note then out(w, note) end
  elseif #names > 0 then
    out(w, format("saved: %d change%s to campaign %s (%s)", #names, #names == 1 and "" or "s",
      tostring(id), concat(names, ", ")))
  end
  err_line(w, format("not launched: campaign %s is missing %s; add %s, then: coldsend launch %s",
    tostring(id), #missing > 0 and concat(missing, ", ") or "launch requirements",
    #missing == 1 and "it" or "them", tostring(id)))
  return M.EXIT_API
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

-- After a create: the id goes into the file (--write-id) or the folder's
-- record, so that the next plan of the file is an update. Returns a line
-- saying where, or nil and a message.
local function keep_id(o, e, state, id)
  if o.write_id then
    local ok, err = files().write_id(e.file, id, M.load_file)
    if not ok then return nil, err end
    return format('wrote id = "%s" into %s', id, e.file)
  end
  if state and (state.exists or o.folder) then
    local ok, err = files().record(state, e.name, id)
    if not ok then return nil, err end
    return format("recorded the id of %s in %s", e.name, state.path)
  end
  return format('add  id = "%s"  to %s to manage this campaign from now on (or apply with --write-id)',
    id, e.file)
end

-- coldsend apply DIR: every file's plan, one confirmation, then the
-- writes in file order, stopping at the first failure.
local function apply_folder(w, o)
  if o.launch then usage_error("apply --launch takes one campaign file, not a folder") end
  o.folder = true
  local entries, state = folder_plans(w, o)
  if not entries then return state end -- the exit code
  if not o.json then print_folder_plan(w, entries) end
  local n = folder_counts(entries)
  local results = {}
  local function result_json(failed)
    local list = {}
    for i, e in ipairs(entries) do
      local t = entry_json(e)
      t.result = results[i] or (e.plan.action == "none" and "unchanged" or "not applied")
      if e.plan.campaign then t.id = e.plan.campaign.id end
      list[i] = t
    end
    print_json(w, { folder = folder_of(o.args[1]), campaigns = json().array(list),
      failed = failed or json().null })
  end
  if n.create + n.update == 0 then
    if o.json then result_json() end
    return M.EXIT_OK
  end
  if not confirmed(w, o) then return M.EXIT_API end
  for i, e in ipairs(entries) do
    if e.plan.action ~= "none" then
      local c, err = e.plan:apply()
      local note, kerr
      if c and e.plan.action == "create" then note, kerr = keep_id(o, e, state, c.id) end
      if not c or kerr then
        -- a create whose id could not be kept was applied all the same
        results[i] = c and "created" or "failed"
        local applied, left = {}, {}
        for j, x in ipairs(entries) do
          if results[j] == "created" or results[j] == "updated" then applied[#applied + 1] = x.name
          elseif j > i and x.plan.action ~= "none" then left[#left + 1] = x.name end
        end
        if c then
          err_line(w, format("%s: created campaign %s but could not record its id: %s; add  id = \"%s\"  to the file",
            e.file, c.id, kerr, c.id))
        else
          err_line(w, format("%s: apply failed", e.file))
          report(w, err)
        end
        if o.json then result_json(e.file) else
          out(w, format("applied: %s", #applied > 0 and concat(applied, ", ") or "none"))
          out(w, format("not applied: %s", #left > 0 and concat(left, ", ") or "none"))
        end
        return M.EXIT_API
      end
      results[i] = e.plan.action == "create" and "created" or "updated"
      if not o.json then
        out(w, format("%s %s: campaign %s", results[i], e.name, c.id))
        if note then out(w, "  " .. note) end
      end
    end
  end
  if o.json then result_json() end
  return M.EXIT_OK
end

-- coldsend apply FILE|DIR [--launch] [--yes] [--write-id]
function commands.apply(w, o)
  if files().is_dir(o.args[1]) then return apply_folder(w, o) end
  local p, e, state = single_plan(w, o)
  if not p then return e end
  if not o.json then out(w, tostring(p)) end
  if p.action == "none" and not o.launch then
    if o.json then print_json(w, { action = "none", id = p.campaign.id, changes = {} }) end
    return M.EXIT_OK
  end
  if not confirmed(w, o) then return M.EXIT_API end
  local c, aerr = p:apply { launch = o.launch }
  local created = p.action == "create" and (c or (type(aerr) == "table" and aerr.campaign))
  local note, kerr
  if created then note, kerr = keep_id(o, e, state, created.id) end
  if kerr then err_line(w, format('%s; add  id = "%s"  to %s', kerr, created.id, e.file)) end
  if not c and o.launch and type(aerr) == "table" and aerr.code == "not_ready" then
    return not_launched(w, o, p, aerr, note)
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
    if note then out(w, note) end
  end
  return kerr and M.EXIT_API or M.EXIT_OK
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

-- coldsend export --all DIR: one file per campaign, named after it.
local function export_all(w, o, cs)
  local ex = require "coldsend.export"
  local dir = o.args[1]
  if #o.args ~= 1 then usage_error("'export --all' takes DIR (got %d arguments)", #o.args) end
  if not shell_ok("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") then
    usage_error("cannot create the folder %s", dir)
  end
  local items = {}
  local ok, err = pcall(function()
    for item in cs:each_campaign() do items[#items + 1] = item end
  end)
  if not ok then return report(w, err) end
  -- every file name first: one that exists stops the export before any write
  local taken, written, paths = {}, {}, {}
  for i, item in ipairs(items) do
    if not require("coldsend.core").is_uuid(item.campaign_id) then
      return report(w, protocol_error(format("GET /campaigns: campaign %d of the list has no UUID (%s); nothing exported",
        i, text(require("coldsend.plan").show(item.campaign_id), true))))
    end
    paths[i] = dir .. "/" .. ex.file_name(item.name, taken)
    if exists(paths[i]) and not o.force then
      usage_error("%s exists; --force replaces it (nothing exported)", paths[i])
    end
  end
  local count = counter(w, "exporting", #items)
  for i, item in ipairs(items) do
    count:step(i, item.name)
    local path = paths[i]
    local c, gerr = cs:get_campaign(item.campaign_id)
    if not c then count:done() return report(w, gerr) end
    write_whole(path, require("coldsend.redact").string(ex.campaign_file(c), hidden))
    written[i] = { id = c.id, name = c.name, file = path }
    if not o.json then out(w, format("%s  %s", c.id, path)) end
  end
  count:done()
  if o.json then print_json(w, json().array(written)) end
  if #items == 0 then w.stderr:write("no campaigns\n") end
  return M.EXIT_OK
end

-- coldsend export ID [FILE]: the campaign as a campaign file.
function commands.export(w, o)
  if not o.all then check_id(o.args[1]) end
  local file = not o.all and o.args[2]
  if file and exists(file) and not o.force then usage_error("%s exists; --force replaces it", file) end
  local cs = client(w, o)
  if o.all then return export_all(w, o, cs) end
  local c, err = cs:get_campaign(o.args[1])
  if not c then return report(w, err) end
  local data = require("coldsend.redact").string(require("coldsend.export").campaign_file(c), hidden)
  if file then
    write_whole(file, data)
    if o.json then print_json(w, { id = c.id, name = c.name, file = file })
    else out(w, format("exported campaign %s %s to %s", c.id, text(show_value(c.name), true), file)) end
  elseif o.json then
    print_json(w, { id = c.id, name = c.name, campaign_file = data })
  else
    w.stdout:write(data)
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
-- coldsend resume ID
commands.resume = state_command("resume", "resumed")

-- coldsend delete ID [--yes]: shows the campaign, asks, deletes.
function commands.delete(w, o)
  -- refused without a terminal before any request (not even the GET)
  check_id(o.args[1])
  if not o.yes and not w.isatty() then confirmed(w, o) end
  local cs = client(w, o)
  local c, err = cs:get_campaign(check_id(o.args[1]))
  if not c then return report(w, err) end
  local shown = format("campaign %s %s (%s)", c.id, text(show_value(c.name), true), text(c.status, true))
  if not confirmed(w, o, format("Delete %s? [y/N] ", shown)) then return M.EXIT_API end
  local ok, derr = c:delete()
  if not ok then return report(w, derr) end
  if o.json then print_json(w, { id = c.id, name = c.name, deleted = true })
  else out(w, "deleted " .. shown) end
  return M.EXIT_OK
end

-- A positive integer option, or a usage error naming it.
local function int_option(name, value, max)
  if value == nil then return nil end
  -- digits only: tonumber would also take 0x10, 1e1 and " 5"
  local n = tostring(value):match("^%d+$") and tonumber(value)
  if not n or n ~= math.floor(n) or n < 1 or (max and n > max) then
    usage_error("bad --%s %q (an integer %s expected)", name, value, max and ("1.." .. max) or ">= 1")
  end
  return math.floor(n)
end

-- Every item of a paged list (GET path?page=N&limit=100), or one page
-- when o.page is given. Returns the items and the last pagination.
-- The identity of a list item (a lead, an inbox) for spotting a repeat.
local function item_key(x)
  if type(x) ~= "table" then return tostring(x) end
  return tostring(x.lead_id or x.inbox_id or x.campaign_id or x.id or x.email or x.email_address)
end

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

-- The items of a server's list that are objects (a number or a string
-- there has no fields to show; --json still prints the list as sent).
local function objects(list)
  local t = {}
  for _, x in ipairs(list) do
    if type(x) == "table" then t[#t + 1] = x end
  end
  return t
end

local function cell(v)
  if v == nil or v == json().null then return "-" end
  return text(v, true)
end

-- coldsend leads ID [--page N] [--limit N] [--status S] [--search TEXT]
function commands.leads(w, o)
  check_id(o.args[1])
  local page = int_option("page", o.page)
  local limit = int_option("limit", o.limit, 100)
  local cs = client(w, o)
  local query = { limit = limit or (page and 20 or 100), status = o.status, search = o.search }
  local items, pg = pages(cs, "/campaigns/" .. o.args[1] .. "/leads", "leads", query, page)
  if not items then return report(w, pg) end
  if o.json then
    print_json(w, page and { leads = json().array(items), pagination = pg } or json().array(items))
    return M.EXIT_OK
  end
  for _, l in ipairs(objects(items)) do
    local name = table.concat({ l.first_name ~= json().null and l.first_name or nil,
      l.last_name ~= json().null and l.last_name or nil }, " ")
    out(w, format("%-32s %-9s %-24s %s", cell(l.email), cell(l.status), name ~= "" and text(name, true) or "-",
      cell(l.company)))
  end
  local total = tonumber(pg.total) or #items
  if page then
    w.stderr:write(format("page %d of %s: %d of %d leads\n", page, tostring(pg.pages or "?"), #items, total))
  else
    w.stderr:write(format("%d lead%s\n", #items, #items == 1 and "" or "s"))
  end
  return M.EXIT_OK
end

-- The password fields of an inbox and the variables they come from.
local PASSWORDS = { smtp_password = "COLDSEND_SMTP_PASSWORD", imap_password = "COLDSEND_IMAP_PASSWORD" }

-- The inboxes of an inbox file (one table of fields, or a list of them),
-- passwords filled in from the environment: FIELD_env names the variable,
-- else COLDSEND_SMTP_PASSWORD / COLDSEND_IMAP_PASSWORD (IMAP falls back to
-- the SMTP one). A password written in the file is refused.
local function inbox_file(w, path)
  local t, lerr = M.load_file(path, "inbox fields")
  if not t then usage_error("%s", lerr) end
  local list = t[1] ~= nil and t or { t }
  -- a list is 1..n and nothing else: an inbox past a gap, or fields beside
  -- the list, would be left out without a word
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > #list or k ~= math.floor(k) then
      usage_error("%s: a table of inbox fields, or a list of them, expected (the list has a key %s)",
        path, type(k) == "string" and format("%q", k) or tostring(k))
    end
  end
  for i, ib in ipairs(list) do
    local at = #list > 1 and format("%s: inbox %d", path, i) or path
    if type(ib) ~= "table" then usage_error("%s: a table of inbox fields expected", at) end
    for _, field in ipairs { "smtp_password", "imap_password" } do
      local default = PASSWORDS[field]
      if ib[field] ~= nil then
        usage_error("%s: '%s' is in the file; put the password in the environment (%s, or the variable %s_env names)",
          at, field, default, field)
      end
      local var = ib[field .. "_env"]
      if var ~= nil and (type(var) ~= "string" or not var:match("^[%a_][%w_]*$")) then
        usage_error("%s: bad value for '%s_env' (an environment variable name expected)", at, field)
      end
      ib[field .. "_env"] = nil
      local value = var and w.getenv(var)
      if not var then
        value = w.getenv(default)
        if (value == nil or value == "") and field == "imap_password" then
          default, value = PASSWORDS.smtp_password, w.getenv(PASSWORDS.smtp_password)
        end
      end
      if value == nil or value == "" then
        usage_error("%s: %s is not set (the %s of %s)", at, var or default, field, tostring(ib.email_address))
      end
      ib[field] = value
      require("coldsend.redact").add(hidden, value)
    end
  end
  return list
end

-- coldsend inboxes | inboxes add FILE
function commands.inboxes(w, o)
  if #o.args > 0 and (o.args[1] ~= "add" or #o.args ~= 2) then
    usage_error("'inboxes' takes no arguments, or add FILE; see coldsend inboxes --help")
  end
  if #o.args == 0 then
    local cs = client(w, o)
    local items, err = pages(cs, "/sender-accounts", "sender_accounts", { limit = 100 })
    if not items then return report(w, err) end
    if o.json then print_json(w, json().array(items)) return M.EXIT_OK end
    for _, ib in ipairs(objects(items)) do
      out(w, format("%s  %-32s %-16s %6s/day  %s", cell(ib.inbox_id), cell(ib.email_address),
        cell(ib.inbox_type), cell(ib.daily_limit), cell(ib.overall_status)))
    end
    w.stderr:write(format("%d inbox%s\n", #items, #items == 1 and "" or "es"))
    return M.EXIT_OK
  end
  local list = inbox_file(w, o.args[2])
  local cs = client(w, o)
  -- every inbox checked before the first is sent: add_smtp_inbox checks
  -- the fields before its first request, which this client never sends
  local checker = require("coldsend").client { api_key = "cs_test_checking_only",
    base_url = "http://127.0.0.1/api/public/v1", rate_limit = false, max_retries = 0,
    transport = function() return nil, "not sent", "network" end }
  for i, ib in ipairs(list) do
    local ok, why = pcall(checker.add_smtp_inbox, checker, ib)
    if not ok then usage_error("%s%s: %s", o.args[2], #list > 1 and (": inbox " .. i) or "", clean(why)) end
  end
  local added = {}
  for i, ib in ipairs(list) do
    local data, err = cs:add_smtp_inbox(ib)
    if not data then
      if #list > 1 then
        err_line(w, format("%s: inbox %d (%s) was not added", o.args[2], i, tostring(ib.email_address)))
      end
      local code = report(w, err)
      if o.json then print_json(w, json().array(added)) end
      return code
    end
    added[#added + 1] = data
    if not o.json then
      out(w, format("added inbox %s %s (%s, %s/day, %s)", cell(data.inbox_id), cell(data.email_address),
        cell(data.inbox_type), cell(data.daily_limit), cell(data.overall_status)))
    end
  end
  if o.json then print_json(w, json().array(added)) end
  return M.EXIT_OK
end

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

-- ----------------------------------------------------------------------
-- results

-- A call whose bad argument raises (a date, a status): a usage error.
local function checked_call(f, ...)
  local ok, data, err = pcall(f, ...)
  if not ok then usage_error("%s", clean(data):gsub("'from_date'", "--from"):gsub("'to_date'", "--to")
    :gsub("'status'", "--status")) end
  return data, err
end

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

-- A fraction 0..1 as a percentage; "-" for what is not a finite number.
local function rate(v)
  v = tonumber(v)
  if not v or v ~= v or v == math.huge or v == -math.huge then return "-" end
  return format("%.1f%%", v * 100)
end

-- s cut to n characters (UTF-8 aware), with "..." when cut.
local function cut(s, n)
  local chars = {}
  for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do chars[#chars + 1] = ch end
  if #chars <= n then return s .. rep(" ", n - #chars) end
  return concat(chars, "", 1, n - 3) .. "..."
end

-- coldsend stats [--status S] [--from D] [--to D]
function commands.stats(w, o)
  local cs = client(w, o)
  local data, err = checked_call(cs.campaign_analytics, cs, date_query(o, true))
  if not data then return report(w, err) end
  if o.json then print_json(w, data) return M.EXIT_OK end
  local k = type(data.workspace_kpis) == "table" and data.workspace_kpis or {}
  local thousands = require("coldsend.chart").thousands
  out(w, format("Workspace: %s campaign%s, %s sent; average open %s, reply %s, bounce %s",
    thousands(tonumber(k.total_campaigns) or 0), k.total_campaigns == 1 and "" or "s",
    thousands(tonumber(k.total_sends) or 0), rate(k.avg_open_rate), rate(k.avg_reply_rate),
    rate(k.avg_bounce_rate)))
  local list = type(data.campaigns) == "table" and data.campaigns or {}
  if #list == 0 then
    w.stderr:write("no campaigns\n")
    return M.EXIT_OK
  end
  out(w, "")
  out(w, format("%-30s %-9s %7s %7s %6s %6s %6s", "CAMPAIGN", "STATUS", "LEADS", "SENT", "OPEN",
    "REPLY", "BOUNCE"))
  for _, c in ipairs(objects(list)) do
    out(w, format("%s %-9s %7s %7s %6s %6s %6s", cut(text(tostring(c.campaign_name), true), 30),
      cell(c.status), thousands(tonumber(c.total_leads) or 0), thousands(tonumber(c.total_sent) or 0),
      rate(c.open_rate), rate(c.reply_rate), rate(c.bounce_rate)))
  end
  return M.EXIT_OK
end

-- The terminal's width: --width, else $COLUMNS, else stty's when stdout
-- is a terminal, else 80.
local function terminal_width(w, o)
  local n = tonumber(o.width or w.getenv("COLUMNS") or "")
  if not n and w.stdout_tty() then
    local p = io.popen("stty size </dev/tty 2>/dev/null")
    local line = p and p:read("*l")
    if p then p:close() end
    n = tonumber(line and line:match("^%d+ (%d+)$") or "")
  end
  if o.width and (not n or n < 40 or n ~= math.floor(n) or not o.width:match("^%d+$")) then
    usage_error("bad --width %q (an integer >= 40 expected)", o.width)
  end
  return n and math.max(40, math.floor(n)) or 80
end

-- coldsend timeline [--from D] [--to D] [--width N]
function commands.timeline(w, o)
  local width = terminal_width(w, o)
  local cs = client(w, o)
  local data, err = checked_call(cs.timeline, cs, date_query(o, false))
  if not data then return report(w, err) end
  if o.json then print_json(w, data) return M.EXIT_OK end
  local points = type(data.timeline) == "table" and data.timeline or {}
  local utf8 = require("coldsend.doctor").utf8_locale(w.getenv)
  -- out() escapes what a server could put in the dates (control characters)
  out(w, (require("coldsend.chart").timeline(points, { width = width, utf8 = utf8 }):gsub("\n$", "")))
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
  -- the key and passwords of an earlier call in this process are not this one's
  for k in pairs(hidden) do hidden[k] = nil end
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
