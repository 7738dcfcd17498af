--- coldsend.cli: the `coldsend` command-line tool (bin/coldsend).
-- Campaigns as code: `coldsend plan FILE` shows what applying a campaign
-- file would change, `coldsend apply FILE` does it, `coldsend export ID`
-- writes an existing campaign as such a file, `plan DIR`/`apply DIR` a folder
-- of them; plus status, list, launch, pause, resume, delete, leads,
-- inboxes, stats, timeline, upload and doctor.
-- This file holds the help texts, the parsing of the command line and the
-- dispatch to the commands (coldsend.cli.apply, .campaigns, .leads,
-- .inboxes), which write through coldsend.cli.output and read through
-- coldsend.cli.inputs. Input and output are injectable, so that the tests
-- can run the tool in-process as well as through the script. See
-- doc/cli.md.
--
-- Exit codes: 0 done, 1 the API (or the network) failed, 2 a usage or
-- validation error; nothing was sent.
-- @module coldsend.cli
local output = require "coldsend.cli.output"
local inputs = require "coldsend.cli.inputs"

local M = {}

local concat = table.concat
local usage_error = output.usage_error

M.EXIT_OK, M.EXIT_API, M.EXIT_USAGE = output.EXIT_OK, output.EXIT_API, output.EXIT_USAGE

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
-- dispatch

local apply, campaigns = require "coldsend.cli.apply", require "coldsend.cli.campaigns"
local leads, inboxes = require "coldsend.cli.leads", require "coldsend.cli.inboxes"

-- Each command's function: (w, o) -> exit code.
local commands = {
  plan = apply.plan, apply = apply.apply,
  export = campaigns.export, status = campaigns.status, list = campaigns.list,
  launch = campaigns.launch, pause = campaigns.pause, resume = campaigns.resume,
  delete = campaigns.delete, stats = campaigns.stats, timeline = campaigns.timeline,
  doctor = campaigns.doctor,
  leads = leads.leads, upload = leads.upload, inboxes = inboxes.inboxes,
}

M.load_file, M.parse_map = inputs.load_file, leads.parse_map

-- ----------------------------------------------------------------------

--- Runs the tool: `main(arg)` from bin/coldsend.
-- @tab argv the arguments
-- @tab[opt] io_ replacements for the world: `stdout`, `stderr`, `stdin`
-- (file-like), `getenv(name)`, `isatty()` (for stdin)
-- @treturn int the exit code: 0 ok, 1 API error, 2 usage or validation error
function M.main(argv, io_)
  local w = output.world(io_)
  -- the key and passwords of an earlier call in this process are not this one's
  for k in pairs(output.hidden) do output.hidden[k] = nil end
  local ok, code = pcall(function()
    local o = M.parse(argv or {})
    if o.help then
      output.out(w, o.command and HELP[o.command] or USAGE)
      return M.EXIT_OK
    end
    return commands[o.command](w, o)
  end)
  if ok then return code end
  if output.is_usage(code) then
    output.err_line(w, code.message)
    return M.EXIT_USAGE
  end
  if type(code) == "table" then return output.report(w, code) end -- a raised error object
  output.err_line(w, output.clean(code))
  return M.EXIT_USAGE
end

return M
