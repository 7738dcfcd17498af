--- coldsend.cli.leads: `coldsend leads` (a campaign's leads, every page
-- or one) and `coldsend upload` (a CSV of leads in chunks, with a
-- progress bar on stderr and the state file CSV.coldsend-upload that lets
-- a re-run send only what is missing; --dry-run checks the file only).
-- @module coldsend.cli.leads
local output = require "coldsend.cli.output"
local inputs = require "coldsend.cli.inputs"

local M = {}

local format = string.format
local out, err_line, text, report, print_json = output.out, output.err_line, output.text, output.report,
  output.print_json
local usage_error, clean, json, cell, objects = output.usage_error, output.clean, output.json, output.cell,
  output.objects
local client, check_id = inputs.client, inputs.check_id
local EXIT_OK, EXIT_USAGE = output.EXIT_OK, output.EXIT_USAGE

-- coldsend leads ID [--page N] [--limit N] [--status S] [--search TEXT]
function M.leads(w, o)
  check_id(o.args[1])
  local page = inputs.int_option("page", o.page)
  local limit = inputs.int_option("limit", o.limit, 100)
  local cs = client(w, o)
  local query = { limit = limit or (page and 20 or 100), status = o.status, search = o.search }
  local items, pg = inputs.pages(cs, "/campaigns/" .. o.args[1] .. "/leads", "leads", query, page)
  if not items then return report(w, pg) end
  if o.json then
    print_json(w, page and { leads = json().array(items), pagination = pg } or json().array(items))
    return EXIT_OK
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
  return EXIT_OK
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
  if count == 0 then return EXIT_OK end
  err_line(w, format("%s: %d problem%s; nothing would be sent", o.args[2], count,
    count == 1 and "" or "s"))
  output.problem_lines(w, r.problems)
  output.more_problems(w, count, r.problems)
  return EXIT_USAGE
end

-- coldsend upload ID CSV --map ...
function M.upload(w, o)
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
  return EXIT_OK
end

return M
