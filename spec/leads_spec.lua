-- leads_spec.lua: c:upload_leads and c:add_lead against the sandbox with the
-- real libcurl transport, and coldsend.progress.
local sandbox = require "spec.helpers.sandbox"
local coldsend = require "coldsend"
local progress = require "coldsend.progress"
local cjson = require "cjson"
local util = require "spec.helpers.util"

local write, slurp = util.write, util.slurp

local function tmp_path() return util.tmp_path(".coldsend-upload") end

-- A leads file of n rows, emails user<from>.. user<from+n-1>.
local function leads_csv(n, from, path)
  from = from or 1
  local parts = { "Email,First Name,Last Name,Company,Title\r\n" }
  for i = from, from + n - 1 do
    parts[#parts + 1] = ("user%d@example.com,First%d,\"Last, %d\",Company %d,\"Head of \"\"Things\"\"\"\r\n")
      :format(i, i, i, i % 97)
  end
  return write(path or tmp_path(), table.concat(parts))
end

teardown(util.cleanup)

describe("c:upload_leads", function()
  local sb, cs

  setup(function()
    sb = sandbox.start { rate_limit = false }
  end)
  teardown(function() sb:stop() end)

  before_each(function()
    sb:reset()
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false,
      backoff_base = 0.01, backoff_cap = 0.02 }
  end)

  local function campaign()
    return assert(cs:create_campaign { name = "Leads at scale test" })
  end

  local function total_leads(c)
    local status, body = sb:request("GET", "/campaigns/" .. c.id)
    assert.equals(200, status)
    return body.total_leads
  end

  -- The upload POSTs the sandbox logged since seq.
  local function uploads(since)
    local out = {}
    for _, e in ipairs(sb:log(since)) do
      if e.method == "POST" and e.path:match("/leads$") then out[#out + 1] = e end
    end
    return out
  end

  local function last_seq()
    local log = sb:log()
    return #log > 0 and log[#log].seq or 0
  end

  -- Runs an upload whose second chunk POST never gets an answer (the
  -- connection closes before the server reads it, every time it is sent
  -- again after the look-up found nothing), and returns its error with the
  -- fault cleared.
  local function interrupted(c, path, upload_opts)
    sb:fault { kind = "close_before", method = "POST",
      path = "/campaigns/" .. c.id .. "/leads", skip = 1, times = 0 }
    upload_opts.file, upload_opts.poll_interval = path, 0.01
    local job, err = c:upload_leads(upload_opts)
    sb:control("DELETE", "/faults")
    assert.is_nil(job)
    -- each try was looked up: the server never took it, so it is not
    -- ambiguous, only not accepted
    assert.is_nil(err.ambiguous)
    assert.matches("the look-up found it was not done", err.message, 1, true)
    return err
  end

  it("sends a 25,001-row file as 3 chunks and follows every job to the end", function()
    local c = campaign()
    local path = leads_csv(25001)
    local updates = {}
    local job = assert(c:upload_leads { file = path, poll_interval = 0.01,
      on_progress = function(p) updates[#updates + 1] = p end })
    local posts = uploads()
    assert.equals(3, #posts)
    assert.equals(25001, total_leads(c))
    assert.equals("COMPLETED", job.status)
    assert.equals(100, job.progress_percentage)
    assert.same({ 25001, 25001, 25001, 0, 0 }, { job.total_count, job.processed_count,
      job.success_count, job.duplicate_count, job.error_count })
    assert.equals(3, #job.chunks)
    assert.same({ 10000, 10000, 5001 }, { job.chunks[1].rows, job.chunks[2].rows, job.chunks[3].rows })
    for i, ch in ipairs(job.chunks) do
      assert.equals("COMPLETED", ch.status)
      assert.equals(ch.job_id, job.job_ids[i])
    end
    assert.equals(job.job_ids[1], job.job_id)
    assert.equals(("coldsend.upload_job %s COMPLETED 100%% (25001/25001 rows, 0 errors, 3 chunks)")
      :format(job.job_id), tostring(job))
    -- each chunk is a file part with the header repeated and the mapping
    for i, e in ipairs(posts) do
      local file, mapping
      for _, part in ipairs(e.body.parts) do
        if part.name == "file" then file = part end
        if part.name == "mapping" then mapping = part end
      end
      assert.matches("%.part" .. i .. "of3%.csv$", file.filename)
      assert.same({ email = "Email", first_name = "First Name", last_name = "Last Name",
        company = "Company" }, cjson.decode(mapping.value))
      local ch = job.chunks[i]
      assert.equals(#"Email,First Name,Last Name,Company,Title\r\n" + ch.length, file.size)
    end
    -- progress: phases in order, percent reaching 100
    assert.equals("start", updates[1].phase)
    assert.equals("done", updates[#updates].phase)
    assert.equals(100, updates[#updates].percent)
    assert.equals(25001, updates[#updates].done)
    -- the state file records three accepted, completed chunks
    local state = cjson.decode(slurp(path .. ".coldsend-upload"))
    local rec = state.uploads[c.id]
    assert.equals(3, #rec.chunks)
    for _, ch in ipairs(rec.chunks) do
      assert.equals("accepted", ch.state)
      assert.equals("COMPLETED", ch.status)
    end
  end)

  it("resumes after chunk 2 failed: every lead on the server exactly once", function()
    local c = campaign()
    local path = leads_csv(25001)
    local err = interrupted(c, path, {})
    assert.equals(2, err.chunk)
    local ok, werr = err.job:wait { interval = 0.01 }
    assert.is_nil(ok)
    assert.equals("chunk 2 of 3 was not accepted by the server: run the upload again to send it", werr.message)
    assert.equals(path .. ".coldsend-upload", err.state_file)
    assert.matches(": chunk 2 of 3 %(rows 10002%-20001%) was not accepted", err.message)
    assert.equals(1, err.attempts) -- each send is one try: re-sent only after the look-up
    assert.equals(10000, total_leads(c))
    local state = cjson.decode(slurp(path .. ".coldsend-upload"))
    local states = {}
    for i, ch in ipairs(state.uploads[c.id].chunks) do states[i] = ch.state end
    assert.same({ "accepted", "pending", "pending" }, states)

    local since = last_seq()
    local job = assert(c:upload_leads { file = path, poll_interval = 0.01 })
    assert.equals(2, #uploads(since)) -- chunk 1 is not sent again
    assert.equals(1, job.skipped)
    assert.equals(25001, total_leads(c))
    assert.equals("COMPLETED", job.status)
    assert.equals(25001, job.success_count)
    assert.equals(0, job.duplicate_count)
  end)

  it("finds the batch of a chunk whose answer was lost after the server took it: sent once", function()
    local c = campaign()
    local path = leads_csv(2501)
    local since = last_seq()
    sb:fault { kind = "close_before", after = true, method = "POST",
      path = "/campaigns/" .. c.id .. "/leads", skip = 1, times = 1 }
    local job = assert(c:upload_leads { file = path, chunk_rows = 1000, poll_interval = 0.01 })
    assert.equals(3, #uploads(since)) -- one POST per chunk: the lost answer was looked up
    assert.equals(2501, total_leads(c))
    assert.equals("COMPLETED", job.status)
    assert.equals(2501, job.success_count)
    assert.equals(0, job.duplicate_count)
  end)

  it("sends a chunk again when the look-up shows the server never took it", function()
    local c = campaign()
    local path = leads_csv(2501)
    local since = last_seq()
    sb:fault { kind = "close_before", method = "POST",
      path = "/campaigns/" .. c.id .. "/leads", skip = 1, times = 1 }
    local job = assert(c:upload_leads { file = path, chunk_rows = 1000, poll_interval = 0.01 })
    assert.equals(4, #uploads(since)) -- chunk 2 twice: its first copy never arrived
    assert.equals(2501, total_leads(c))
    assert.equals(2501, job.success_count)
    assert.equals(0, job.duplicate_count)
  end)

  it("refuses to resume when the file changed, and starts over with restart = true", function()
    local c = campaign()
    local path = leads_csv(2500)
    interrupted(c, path, { chunk_rows = 1000 })
    leads_csv(2600, 1, path)
    local job, err = c:upload_leads { file = path, poll_interval = 0.01 }
    assert.is_nil(job)
    assert.equals("conflict", err.code)
    assert.matches("changed since the upload recorded in", err.message)
    job = assert(c:upload_leads { file = path, restart = true, poll_interval = 0.01 })
    assert.equals(2600, total_leads(c))
    assert.equals(1000, job.duplicate_count)
  end)

  it("refuses to resume with other chunk sizes", function()
    local c = campaign()
    local path = leads_csv(2500)
    interrupted(c, path, { chunk_rows = 1000 })
    local job, err = c:upload_leads { file = path, chunk_rows = 500, poll_interval = 0.01 }
    assert.is_nil(job)
    assert.equals("conflict", err.code)
    -- without chunk_rows it resumes with the sizes it started with
    job = assert(c:upload_leads { file = path, poll_interval = 0.01 })
    assert.equals(3, #job.chunks)
    assert.equals(2500, total_leads(c))
  end)

  it("dry_run reports and sends nothing", function()
    local c = campaign()
    local path = write(tmp_path(), "email,name\na@example.com,A\nbad,B\n")
    local since = last_seq()
    local report = assert(c:upload_leads { file = path, dry_run = true })
    assert.same({}, sb:log(since))
    assert.equals(2, report.rows)
    assert.equals(1, report.problem_count)
    assert.equals("invalid email 'bad': no @", report.problems[1].message)
    assert.same({ email = "email" }, report.mapping)
    assert.is_nil(slurp(path .. ".coldsend-upload"))
  end)

  it("refuses a file with problems, listing them all, before sending anything", function()
    local c = campaign()
    local path = write(tmp_path(), table.concat {
      "Email,First Name\n", "a@example.com,A\n", "not-an-email,B\n", "A@EXAMPLE.COM,C\n", "d@example.com\n",
    })
    local since = last_seq()
    local job, err = c:upload_leads { file = path, mapping = { email = "Email", company = "Company" } }
    assert.is_nil(job)
    assert.equals("invalid", err.code)
    assert.equals(4, err.problem_count)
    assert.equals(4, #err.problems)
    assert.matches("4 problems found before sending; first: row 1 %(Company%): the header has no column "
      .. "'Company'", err.message)
    assert.not_matches("\n", tostring(err))
    assert.same({}, sb:log(since))
  end)

  it("lets the server skip duplicate emails with allow_duplicates", function()
    local c = campaign()
    local path = write(tmp_path(), "email\na@example.com\nb@example.com\nA@example.com\n")
    local job, err = c:upload_leads { file = path, poll_interval = 0.01 }
    assert.is_nil(job)
    assert.equals("duplicate", err.problems[1].kind)
    assert.equals(2, err.problems[1].first_row)
    job = assert(c:upload_leads { file = path, allow_duplicates = true, poll_interval = 0.01 })
    assert.equals(2, job.success_count)
    assert.equals(1, job.duplicate_count)
  end)

  it("uses the campaign's lead_mapping, else the standard columns of the header", function()
    local c = campaign()
    local path = write(tmp_path(), "Work Email,Given,E-Mail,first name\nx@example.com,X,y@example.com,Y\n")
    local since = last_seq()
    assert(c:upload_leads { file = path, poll_interval = 0.01 })
    local function sent_mapping()
      for _, part in ipairs(uploads(since)[1].body.parts) do
        if part.name == "mapping" then return cjson.decode(part.value) end
      end
    end
    assert.same({ email = "E-Mail", first_name = "first name" }, sent_mapping())

    local c2 = campaign()
    c2.lead_mapping = { email = "work email", first_name = "Given" }
    assert(c2:save())
    since = last_seq()
    assert(c2:upload_leads { file = path, poll_interval = 0.01 })
    assert.same({ email = "Work Email", first_name = "Given" }, sent_mapping())
    local _, leads = sb:request("GET", "/campaigns/" .. c2.id .. "/leads")
    assert.equals("x@example.com", leads.leads[1].email)
  end)

  it("returns at once with wait = false; job:wait follows the jobs", function()
    local c = campaign()
    local path = leads_csv(2500)
    local job = assert(c:upload_leads { file = path, chunk_rows = 1000, wait = false })
    assert.equals(3, #uploads())
    assert.equals("PENDING", job.status)
    assert.matches("^coldsend.upload_job %x+%-[%x-]+ PENDING 0%% %(0/2500 rows, 0 errors, 3 chunks%)$", tostring(job))
    local seen = {}
    assert(job:wait { interval = 0.01, on_progress = function(p) seen[#seen + 1] = p.phase end })
    assert.equals("COMPLETED", job.status)
    assert.equals(2500, job.success_count)
    assert.equals("done", seen[#seen])
    assert.equals(2500, total_leads(c))
  end)

  it("job:wait gives up at its timeout", function()
    local c = campaign()
    local job = assert(c:upload_leads { file = leads_csv(10), wait = false })
    local ok, err = job:wait { interval = 0.2, timeout = 0.05 }
    assert.is_nil(ok)
    assert.equals("timeout", err.code)
    assert.equals(job, err.job)
    assert.has_error(function() job:wait { every = 1 } end, "unknown option 'every' for job:wait")
  end)

  it("reports a missing file and misuse", function()
    local c = campaign()
    local job, err = c:upload_leads { file = "/nonexistent/leads.csv" }
    assert.is_nil(job)
    assert.equals("invalid", err.code)
    assert.matches("No such file", err.message)
    assert.has_error(function() c:upload_leads { file = "x.csv", chunk_rows = 10001 } end,
      "bad option 'chunk_rows' for upload_leads (integer 1..10000 expected, got 10001)")
    assert.has_error(function() c:upload_leads { file = "x.csv", colour = "red" } end,
      "unknown option 'colour' for upload_leads")
    assert.has_error(function() c:upload_leads { mapping = {} } end)
    assert.has_error(function() cs:campaign():upload_leads { file = "x.csv" } end,
      "upload_leads: the campaign has no id yet (save it first)")
  end)

  it("keeps no state file with state_file = false, and honours a given path", function()
    local c = campaign()
    local path = leads_csv(20)
    assert(c:upload_leads { file = path, state_file = false, poll_interval = 0.01 })
    assert.is_nil(slurp(path .. ".coldsend-upload"))
    local state_path = tmp_path()
    os.remove(state_path)
    assert((campaign()):upload_leads { file = path, state_file = state_path, poll_interval = 0.01 })
    assert.equals(1, cjson.decode(slurp(state_path)).version)
  end)
end)

-- Uploads csv through a stand-in transport: answer(req) scripts the
-- server's JSON answers, so the combination of chunk results can be checked
-- exactly. Returns the job.
local function scripted_upload(answer, csv, opts)
  local cs = coldsend.client { api_key = "cs_test_abcdefgh", base_url = "http://127.0.0.1:9/api/public/v1",
    rate_limit = false, transport = function(req)
      return { status = 200, headers = { ["content-type"] = "application/json" }, body = cjson.encode(answer(req)) }
    end }
  local c = cs:campaign("33333333-3333-4333-8333-333333333333")
  local up = { file = write(tmp_path(), csv), poll_interval = 0.001, state_file = false }
  for k, v in pairs(opts or {}) do up[k] = v end
  return assert(c:upload_leads(up))
end

describe("upload job results", function()
  it("gives per-row server errors their row in the whole file", function()
    local ids = { "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222" }
    local posts = 0
    local function transport(req)
      local body
      if req.method == "POST" then
        posts = posts + 1
        body = { job_id = ids[posts], status = "PENDING", total_count = 2 }
      else
        local n = req.url:match("1111") and 1 or 2
        body = { job_id = ids[n], status = "COMPLETED", processed_count = 2, success_count = 1,
          duplicate_count = 0, error_count = 1, total_count = 2,
          errors = { { row = 2, email = "x", message = "invalid email address" } } }
      end
      return body
    end
    local job = scripted_upload(transport, "email\na@example.com\nb@example.com\nc@example.com\nd@example.com\n",
      { chunk_rows = 2 })
    assert.equals(2, posts)
    assert.same({ 4, 2, 2 }, { job.processed_count, job.success_count, job.error_count })
    assert.same({ { row = 3, chunk = 1, email = "x", message = "invalid email address" },
                  { row = 5, chunk = 2, email = "x", message = "invalid email address" } }, job.errors)
  end)
end)

describe("an upload job's tostring", function()
  it("shows counts a server sent as fractions on every Lua (5.3+ would raise on %d)", function()
    local function transport(req)
      local body = { job_id = "11111111-1111-4111-8111-111111111111", status = "COMPLETED",
        processed_count = 1.5, success_count = 1, duplicate_count = 0, error_count = 0.5, total_count = 2 }
      if req.method == "POST" then body = { job_id = body.job_id, status = "PENDING", total_count = 2 } end
      return body
    end
    local job = scripted_upload(transport, "email\na@example.com\nb@example.com\n")
    assert.equals(("coldsend.upload_job %s COMPLETED 100%% (1.5/2 rows, 0.5 errors)"):format(job.job_id),
      tostring(job))
  end)
end)

describe("c:add_lead", function()
  local sb, cs, c

  setup(function()
    sb = sandbox.start { rate_limit = false }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false }
    c = assert(cs:create_campaign { name = "Single leads test" })
  end)
  teardown(function() sb:stop() end)

  it("adds a lead and returns the server's lead object", function()
    local lead = assert(c:add_lead { email = "john.doe@example.com", first_name = "John", last_name = "Doe",
      company = "Acme Inc", custom_fields = { industry = "Technology", employees = 40, partner = true } })
    assert.equals("john.doe@example.com", lead.email)
    assert.equals("PENDING", lead.status)
    assert.same({ industry = "Technology", employees = 40, partner = true }, lead.custom_fields)
  end)

  it("answers a second add of the same email with the server's conflict", function()
    assert(c:add_lead { email = "twice@example.com" })
    local lead, err = c:add_lead { email = "TWICE@example.com" }
    assert.is_nil(lead)
    assert.equals("conflict", err.code)
  end)

  it("checks the email like a CSV row, without sending", function()
    local before = sb:count("POST")
    local lead, err = c:add_lead { email = "not an email" }
    assert.is_nil(lead)
    assert.equals("invalid", err.code)
    assert.equals('invalid email "not an email": contains spaces', err.message)
    assert.same({ { field = "email", message = "contains spaces" } }, err.problems)
    assert.equals(before, sb:count("POST"))
  end)

  it("raises on unknown fields and wrong types", function()
    assert.has_error(function() c:add_lead { email = "a@example.com", phone = "1" } end,
      "no field 'phone' in lead (email, first_name, last_name, company, custom_fields expected)")
    assert.has_error(function() c:add_lead { email = "a@example.com", first_name = 7 } end,
      "bad value for 'first_name' (string expected, got 7)")
    assert.has_error(function() c:add_lead { email = "a@example.com", custom_fields = { x = {} } } end,
      "bad value for 'custom_fields.x' (string, number or boolean expected, got table)")
    assert.has_error(function() c:add_lead { email = "a@example.com", custom_fields = { "positional" } } end,
      "bad key in 'custom_fields' (non-empty string expected, got 1)")
    assert.has_error(function() c:add_lead { first_name = "No email" } end, "missing field 'email' in lead")
    assert.has_error(function() c:add_lead("a@example.com") end,
      "bad argument #1 to 'add_lead' (table expected, got string)")
  end)
end)

describe("coldsend.progress", function()
  local function sink()
    local t = { text = "" }
    function t:write(...)
      for _, s in ipairs { ... } do self.text = self.text .. s end
      return self
    end
    function t.flush() end
    return t
  end

  local p = { phase = "processing", chunk = 2, chunks = 3, done = 4500, total = 10000,
    percent = 45, rate = 1234.5, eta = 65, errors = 12 }

  it("formats percent, rows, rate, ETA and phase on one line", function()
    assert.equals(" 45%  4,500/10,000 rows  1,234 rows/s  ETA 1m05s  processing 2/3  12 errors",
      progress.format(p, 0))
    assert.equals("[#########...........]   45%  4,500/10,000 rows  1,234 rows/s  ETA 1m05s  processing 2/3  12 errors",
      progress.format(p, 20))
    assert.equals("100%  7/7 rows  done", progress.format({ phase = "done", done = 7, total = 7, percent = 100 }, 0))
  end)

  it("redraws one line with \\r on a terminal", function()
    local out = sink()
    local bar = progress.new { out = out, is_tty = true, width = 200 }
    bar(p)
    bar { phase = "done", done = 10000, total = 10000, percent = 100 }
    bar:finish()
    assert.matches("^\r%[#########", out.text)
    assert.matches("\r%[####################%]  100%%  10,000/10,000 rows  done +\n$", out.text)
    assert.equals("coldsend.progress (terminal)", tostring(bar))
  end)

  it("prints plain lines at phase changes and every interval when not a terminal", function()
    local out, now = sink(), 0
    local bar = progress.new { out = out, is_tty = false, interval = 5, clock = function() return now end,
      label = "leads.csv" }
    bar(p)
    now = 1
    bar(p)           -- same phase, too soon: nothing
    now = 6
    bar(p)           -- interval passed
    now = 7
    local last = { phase = "processing", done = 9000, total = 10000, percent = 90 }
    bar(last)        -- too soon, shown by finish
    bar:finish()
    local _, lines = out.text:gsub("\n", "")
    assert.equals(3, lines)
    assert.not_matches("\r", out.text)
    assert.matches("^leads.csv   45%%", out.text)
    assert.matches("leads.csv   90%%  9,000/10,000 rows  processing\n$", out.text)
  end)

  it("is not a terminal without TERM", function()
    assert.is_false(progress.detect_tty(1) and os.getenv("TERM") == nil)
    assert.equals("1,234,567", progress.thousands(1234567))
    assert.equals("?", progress.duration(nil))
    assert.equals("1h02m", progress.duration(3725))
  end)
end)
