-- leads.lua: `make bench-leads`: CSV pre-flight throughput and memory, and a chunked upload's client RSS (issue 5).
--
-- Targets: pre-flight >= 150 MB/s on a 50 MB / ~500,000-row file, peak RSS
-- growth < 16 MB; the upload's client RSS flat whatever the row count.
-- Environment: LEADS_ROWS (default 500000), LEADS_RUNS (default 3),
-- LEADS_UPLOAD_ROWS (rows sent to a local sandbox; default 50000, 0 skips;
-- 1000000 for the full run), LEADS_DIR (default /tmp).
local core = require "coldsend.core"

local ROWS = tonumber(os.getenv("LEADS_ROWS") or "") or 500000
local RUNS = tonumber(os.getenv("LEADS_RUNS") or "") or 3
local UPLOAD_ROWS = tonumber(os.getenv("LEADS_UPLOAD_ROWS") or "") or 50000
local DIR = os.getenv("LEADS_DIR") or "/tmp"

-- VmHWM / VmRSS in KiB.
local function status(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  for line in f:lines() do
    local v = line:match("^" .. field .. ":%s+(%d+) kB")
    if v then f:close() return tonumber(v) end
  end
  f:close()
end

-- Resets VmHWM to the current RSS (Linux >= 4.0), so each measurement
-- starts from where the process is, not from the file generation.
local function reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if not f then return false end
  local ok = f:write("5")
  f:close()
  return ok ~= nil
end

-- A leads file like a CRM export: about 100 bytes a row, a quoted field
-- with a comma in every row, one with a line break every 1,000 rows.
local function generate(path, rows)
  local f = assert(io.open(path, "wb"))
  f:write("Email,First Name,Last Name,Company,Title\r\n")
  local batch = {}
  for i = 1, rows do
    local title = i % 1000 == 0 and '"Head of\nSales"' or "Account Exec"
    batch[#batch + 1] = ("firstname.lastname%d@company%d.example.com,First%d,\"Last, %d\",Company %d,%s\r\n")
      :format(i, i % 5000, i, i, i % 777, title)
    if #batch == 1000 then
      f:write(table.concat(batch))
      batch = {}
    end
  end
  f:write(table.concat(batch))
  f:close()
end

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function mb(bytes) return bytes / 1e6 end

local results = {}
local function row(name, value, target, ok)
  results[#results + 1] = { name, value, target or "", ok == nil and "" or (ok and "ok" or "MISSED") }
end

------------------------------------------------------------------------
-- 1. pre-flight throughput and memory

local path = DIR .. "/coldsend-bench-leads.csv"
io.stderr:write(("generating %d rows in %s ...\n"):format(ROWS, path))
generate(path, ROWS)
local size = file_size(path)
collectgarbage()
collectgarbage()

local opts = { mapping = { email = "Email", first_name = "First Name", last_name = "Last Name",
  company = "Company" } }
local best, best_cpu, report = math.huge, math.huge, nil
local can_reset = reset_peak()
local rss_before, hwm_growth = status("VmRSS"), 0
for _ = 1, RUNS do
  if can_reset then reset_peak() end
  local base = status("VmHWM")
  local t0, c0 = core.now(), os.clock()
  report = assert(core.csv_preflight(path, opts))
  local dt, cpu = core.now() - t0, os.clock() - c0
  if dt < best then best = dt end
  if cpu < best_cpu then best_cpu = cpu end
  local growth = status("VmHWM") - base
  if growth > hwm_growth then hwm_growth = growth end
  report = report.problem_count == 0 and report or error("unexpected problems: " .. report.problems[1].message)
  collectgarbage()
end
local rate = mb(size) / best
row("file", ("%.1f MB, %d rows, %d chunks"):format(mb(size), report.rows, #report.chunks))
row("pre-flight throughput (best of " .. RUNS .. ")", ("%.0f MB/s (%.3f s)"):format(rate, best),
  ">= 150 MB/s", rate >= 150)
-- on a busy machine the wall clock says more about the neighbours
row("pre-flight per CPU second", ("%.0f MB/s (%.3f s)"):format(mb(size) / best_cpu, best_cpu))
row("pre-flight peak RSS growth", ("%.1f MB"):format(hwm_growth / 1024), "< 16 MB",
  can_reset and hwm_growth / 1024 < 16 or nil)
row("RSS before / after", ("%.1f / %.1f MB"):format(rss_before / 1024, status("VmRSS") / 1024))

-- peers: reading lines without parsing (a floor), and the sandbox's
-- pure-Lua RFC 4180 reader on the same bytes
do
  local t0 = core.now()
  local n = 0
  for _ in io.lines(path) do n = n + 1 end
  local dt = core.now() - t0
  row("io.lines, no parsing (floor)", ("%.0f MB/s"):format(mb(size) / dt),
    ("pre-flight: %.2fx its speed"):format(dt / best))
  local ok, csv = pcall(require, "coldsend.sandbox.csv")
  if ok then
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    t0 = core.now()
    local next_rec, records = csv.reader(data), 0
    while next_rec() do records = records + 1 end
    dt = core.now() - t0
    data = nil
    collectgarbage()
    row("pure-Lua CSV reader (sandbox)", ("%.0f MB/s"):format(mb(size) / dt),
      ("pre-flight: %.1fx its speed"):format(dt / best))
  end
end
os.remove(path)

------------------------------------------------------------------------
-- 2. a chunked upload against a local sandbox: the client's RSS stays flat
-- because each chunk is streamed from the file

if UPLOAD_ROWS > 0 then
  local ok, sandbox = pcall(require, "spec.helpers.sandbox")
  if not ok then
    row("upload", "skipped (" .. tostring(sandbox):match("^[^\n]*") .. ")")
  else
    local coldsend = require "coldsend"
    local upath = DIR .. "/coldsend-bench-upload.csv"
    generate(upath, UPLOAD_ROWS)
    os.remove(upath .. ".coldsend-upload")
    local sb = sandbox.start { rate_limit = false, job_step_ms = 50 }
    local cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false }
    local c = assert(cs:create_campaign { name = "Bench: chunked upload" })
    collectgarbage()
    if can_reset then reset_peak() end
    local base, samples = status("VmHWM"), {}
    local t0 = core.now()
    local job, err = c:upload_leads { file = upath, poll_interval = 0.05, state_file = false,
      on_progress = function(p)
        if p.phase == "processing" or p.phase == "done" then samples[#samples + 1] = status("VmRSS") end
      end }
    local dt = core.now() - t0
    sb:stop()
    os.remove(upath)
    if not job then
      row("upload", "failed: " .. tostring(err))
    else
      local lo, hi = math.huge, 0
      for _, v in ipairs(samples) do
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
      row("upload", ("%d rows in %d chunks, %.1f s (the sandbox parses in Lua)"):format(job.success_count,
        #job.chunks, dt))
      row("upload client RSS min / max while sending", ("%.1f / %.1f MB"):format(lo / 1024, hi / 1024), "flat")
      -- the pre-flight's email set is most of it: 8-16 bytes per distinct email
      row("upload client peak RSS growth, pre-flight included",
        ("%.1f MB"):format((status("VmHWM") - base) / 1024))
    end
  end
end

------------------------------------------------------------------------

local function loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return "?" end
  local s = f:read("*l")
  f:close()
  return s:match("^(%S+ %S+ %S+)")
end

local w = 0
for _, r in ipairs(results) do if #r[1] > w then w = #r[1] end end
print(("%s  (%s, %s, load average %s)"):format("lua-coldsend bench-leads", _VERSION,
  os.date("!%Y-%m-%d"), loadavg()))
for _, r in ipairs(results) do
  print(("  %-" .. w .. "s  %-28s %-12s %s"):format(r[1], r[2], r[3], r[4]))
end
