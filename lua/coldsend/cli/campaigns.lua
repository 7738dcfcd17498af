--- coldsend.cli.campaigns: the commands on campaigns that exist: status,
-- export (one or --all), list, launch, pause, resume and delete; the
-- workspace's stats and timeline; and doctor.
-- @module coldsend.cli.campaigns
local output = require "coldsend.cli.output"
local inputs = require "coldsend.cli.inputs"

local M = {}

local format, concat, rep = string.format, table.concat, string.rep
local out, text, report, print_json = output.out, output.text, output.report, output.print_json
local usage_error, json, cell, objects = output.usage_error, output.json, output.cell, output.objects
local client, check_id, fields_of = inputs.client, inputs.check_id, output.fields_of
local checked_call, date_query = inputs.checked_call, inputs.date_query
local EXIT_OK, EXIT_API = output.EXIT_OK, output.EXIT_API

local function show_value(v)
  return require("coldsend.plan").show(v)
end

-- coldsend status ID
function M.status(w, o)
  local cs = client(w, o)
  local c, err = cs:get_campaign(check_id(o.args[1]))
  if not c then return report(w, err) end
  local t, names = fields_of(c)
  if o.json then print_json(w, t) return EXIT_OK end
  out(w, text(c, true))
  for _, k in ipairs(names) do
    out(w, format("  %-28s %s", k, text(show_value(t[k]), true)))
  end
  return EXIT_OK
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Writes a file whole (a temporary file renamed over it); a usage error
-- naming it (exit 2) when that fails.
local function write_whole(path, data)
  local ok, err = require("coldsend.core").write_private(path, data)
  if not ok then usage_error("cannot write %s: %s", path, tostring(err)) end
end

-- coldsend export --all DIR: one file per campaign, named after it.
local function export_all(w, o, cs)
  local ex = require "coldsend.export"
  local dir = o.args[1]
  if #o.args ~= 1 then usage_error("'export --all' takes DIR (got %d arguments)", #o.args) end
  if not output.shell_ok("mkdir -p " .. require("coldsend.campaign_files").shell_word(dir)) then
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
      return report(w, output.protocol_error(format(
        "GET /campaigns: campaign %d of the list has no UUID (%s); nothing exported",
        i, text(require("coldsend.plan").show(item.campaign_id), true))))
    end
    paths[i] = dir .. "/" .. ex.file_name(item.name, taken)
    if exists(paths[i]) and not o.force then
      usage_error("%s exists; --force replaces it (nothing exported)", paths[i])
    end
  end
  local count = output.counter(w, "exporting", #items)
  for i, item in ipairs(items) do
    count:step(i, item.name)
    local path = paths[i]
    local c, gerr = cs:get_campaign(item.campaign_id)
    if not c then count:done() return report(w, gerr) end
    write_whole(path, require("coldsend.redact").string(ex.campaign_file(c), output.hidden))
    written[i] = { id = c.id, name = c.name, file = path }
    if not o.json then out(w, format("%s  %s", c.id, path)) end
  end
  count:done()
  if o.json then print_json(w, json().array(written)) end
  if #items == 0 then w.stderr:write("no campaigns\n") end
  return EXIT_OK
end

-- coldsend export ID [FILE]: the campaign as a campaign file.
function M.export(w, o)
  if not o.all then check_id(o.args[1]) end
  local file = not o.all and o.args[2]
  if file and exists(file) and not o.force then usage_error("%s exists; --force replaces it", file) end
  local cs = client(w, o)
  if o.all then return export_all(w, o, cs) end
  local c, err = cs:get_campaign(o.args[1])
  if not c then return report(w, err) end
  local data = require("coldsend.redact").string(require("coldsend.export").campaign_file(c), output.hidden)
  if file then
    write_whole(file, data)
    if o.json then print_json(w, { id = c.id, name = c.name, file = file })
    else out(w, format("exported campaign %s %s to %s", c.id, text(show_value(c.name), true), file)) end
  elseif o.json then
    print_json(w, { id = c.id, name = c.name, campaign_file = data })
  else
    w.stdout:write(data)
  end
  return EXIT_OK
end

local STATUSES = { DRAFT = true, ACTIVE = true, PAUSED = true, COMPLETED = true, FAILED = true }

-- coldsend list [--status S]
function M.list(w, o)
  if o.status and not STATUSES[o.status] then
    usage_error("bad --status %q (DRAFT, ACTIVE, PAUSED, COMPLETED or FAILED)", o.status)
  end
  local cs = client(w, o)
  local items = {}
  local ok, err = pcall(function()
    for item in cs:each_campaign { status = o.status } do items[#items + 1] = item end
  end)
  if not ok then return report(w, err) end
  if o.json then print_json(w, json().array(items)) return EXIT_OK end
  for _, item in ipairs(items) do
    out(w, format("%s  %-9s %s", text(item.campaign_id, true), text(item.status, true),
      text(item.name, true)))
  end
  if #items == 0 then w.stderr:write("no campaigns\n") end
  return EXIT_OK
end

local function state_command(method, verb)
  return function(w, o)
    local cs = client(w, o)
    local c = cs:campaign(check_id(o.args[1]))
    local done, err = c[method](c)
    if not done then return report(w, err) end
    if o.json then print_json(w, fields_of(c)) else out(w, verb .. ": " .. text(c, true)) end
    return EXIT_OK
  end
end

-- coldsend launch ID
M.launch = state_command("launch", "launched")
-- coldsend pause ID
M.pause = state_command("pause", "paused")
-- coldsend resume ID
M.resume = state_command("resume", "resumed")

-- coldsend delete ID [--yes]: shows the campaign, asks, deletes.
function M.delete(w, o)
  -- refused without a terminal before any request (not even the GET)
  check_id(o.args[1])
  if not o.yes and not w.isatty() then output.confirmed(w, o) end
  local cs = client(w, o)
  local c, err = cs:get_campaign(check_id(o.args[1]))
  if not c then return report(w, err) end
  local shown = format("campaign %s %s (%s)", c.id, text(show_value(c.name), true), text(c.status, true))
  if not output.confirmed(w, o, format("Delete %s? [y/N] ", shown)) then return EXIT_API end
  local ok, derr = c:delete()
  if not ok then return report(w, derr) end
  if o.json then print_json(w, { id = c.id, name = c.name, deleted = true })
  else out(w, "deleted " .. shown) end
  return EXIT_OK
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
function M.stats(w, o)
  local cs = client(w, o)
  local data, err = checked_call(cs.campaign_analytics, cs, date_query(o, true))
  if not data then return report(w, err) end
  if o.json then print_json(w, data) return EXIT_OK end
  local k = type(data.workspace_kpis) == "table" and data.workspace_kpis or {}
  local thousands = require("coldsend.text").thousands
  out(w, format("Workspace: %s campaign%s, %s sent; average open %s, reply %s, bounce %s",
    thousands(tonumber(k.total_campaigns) or 0), k.total_campaigns == 1 and "" or "s",
    thousands(tonumber(k.total_sends) or 0), rate(k.avg_open_rate), rate(k.avg_reply_rate),
    rate(k.avg_bounce_rate)))
  local list = type(data.campaigns) == "table" and data.campaigns or {}
  if #list == 0 then
    w.stderr:write("no campaigns\n")
    return EXIT_OK
  end
  out(w, "")
  out(w, format("%-30s %-9s %7s %7s %6s %6s %6s", "CAMPAIGN", "STATUS", "LEADS", "SENT", "OPEN",
    "REPLY", "BOUNCE"))
  for _, c in ipairs(objects(list)) do
    out(w, format("%s %-9s %7s %7s %6s %6s %6s", cut(text(tostring(c.campaign_name), true), 30),
      cell(c.status), thousands(tonumber(c.total_leads) or 0), thousands(tonumber(c.total_sent) or 0),
      rate(c.open_rate), rate(c.reply_rate), rate(c.bounce_rate)))
  end
  return EXIT_OK
end

-- The terminal's width: --width, else $COLUMNS, else stty's when stdout
-- is a terminal, else 80.
local function terminal_width(w, o)
  if o.width then return inputs.int_option("width", o.width, nil, 40) end
  local n = tonumber(w.getenv("COLUMNS") or "")
  if not n and w.stdout_tty() then
    local p = io.popen("stty size </dev/tty 2>/dev/null")
    local line = p and p:read("*l")
    if p then p:close() end
    n = tonumber(line and line:match("^%d+ (%d+)$") or "")
  end
  return n and math.max(40, math.floor(n)) or 80
end

-- coldsend timeline [--from D] [--to D] [--width N]
function M.timeline(w, o)
  local width = terminal_width(w, o)
  local cs = client(w, o)
  local data, err = checked_call(cs.timeline, cs, date_query(o, false))
  if not data then return report(w, err) end
  if o.json then print_json(w, data) return EXIT_OK end
  local points = type(data.timeline) == "table" and data.timeline or {}
  local utf8 = require("coldsend.text").utf8_locale(w.getenv)
  -- out() escapes what a server could put in the dates (control characters)
  out(w, (require("coldsend.chart").timeline(points, { width = width, utf8 = utf8 }):gsub("\n$", "")))
  return EXIT_OK
end

-- coldsend doctor: the checks of coldsend.doctor
function M.doctor(w, o)
  local doctor = require "coldsend.doctor"
  local r = doctor.doctor { base_url = o.base_url, getenv = w.getenv }
  if o.json then output.write_json(w, r:json())
  else out(w, r:text(require("coldsend.text").utf8_locale(w.getenv))) end
  return r.ok and EXIT_OK or EXIT_API
end

return M
