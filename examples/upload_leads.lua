-- upload_leads.lua: check a CSV of leads, then upload it in chunks with a progress bar.
--
--   COLDSEND_API_KEY=cs_live_... lua5.4 examples/upload_leads.lua leads.csv [CAMPAIGN_ID]
--
-- Without a file it writes a demo file of 25,001 leads (three chunks); without
-- a campaign id it creates a campaign. Interrupt it and run it again: the
-- chunks already accepted are skipped (state in leads.csv.coldsend-upload).
local coldsend = require "coldsend"
local progress = require "coldsend.progress"

local cs = coldsend.client {}  -- key and URL from COLDSEND_API_KEY / COLDSEND_BASE_URL

local file = arg[1]
local demo = file == nil
if demo then
  file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write("Email,First Name,Last Name,Company\r\n")
  for i = 1, 25001 do
    f:write(("lead%d@example.com,First%d,\"Last, %d\",Company %d\r\n"):format(i, i, i, i % 500))
  end
  f:close()
end

local c
if arg[2] then
  c = assert(cs:get_campaign(arg[2]))
else
  c = assert(cs:create_campaign { name = "Lead upload example" })
end
print("campaign ", c)

-- 1. check the whole file first: nothing is sent
local report = assert(c:upload_leads { file = file, dry_run = true })
print(("checked   %d rows, %d bytes, %d chunk(s), %d problem(s)")
  :format(report.rows, report.bytes, #report.chunks, report.problem_count))
for _, p in ipairs(report.problems) do
  print(("  row %s%s: %s"):format(p.row, p.column and " (" .. p.column .. ")" or "", p.message))
end
if report.problem_count > 0 then os.exit(1) end

-- 2. upload, following each chunk's job to the end
-- labelled with the file's name as given (the demo file's is a temporary one)
local bar = progress.new { label = demo and "demo leads" or file:match("[^/]+$") }
local job, err = c:upload_leads { file = file, on_progress = bar }
bar:finish()
if demo then
  os.remove(file)
  os.remove(file .. ".coldsend-upload")
end
if not job then
  print("failed   ", err)
  os.exit(1)
end
print("uploaded ", job)
print(("created   %d, duplicates %d, errors %d"):format(job.success_count, job.duplicate_count,
  job.error_count))
for i, e in ipairs(job.errors) do
  if i > 10 then print(("  ... %d more"):format(#job.errors - 10)) break end
  print(("  row %s: %s"):format(tostring(e.row), e.message))
end
