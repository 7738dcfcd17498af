--- coldsend.leads: CSV lead uploads in conforming chunks, resumable.
-- The facade installs `upload` as the campaign method `c:upload_leads{...}`
-- (single leads are coldsend.single_lead's); doc/leads.md is the user's
-- guide. The C core reads and checks the CSV (core.csv_preflight) and plans
-- the chunks; this module sends them, polls the jobs and keeps the state
-- file that makes a re-run resume instead of starting over.
-- @module coldsend.leads
local core = require "coldsend.core"
local writes = require "coldsend.writes"
local json = require "coldsend.json"

local type, pairs, ipairs, tostring, setmetatable, error = type, pairs, ipairs, tostring, setmetatable, error
local format, concat, floor = string.format, table.concat, math.floor

local M = {}

--- The server's limits per upload (spec 7.2). 50 MB is taken as 50,000,000
-- bytes, under the limit whichever way the server counts a megabyte.
M.MAX_ROWS = 10000
--- The most bytes in one uploaded chunk (the default and the largest `chunk_bytes`).
M.MAX_BYTES = 50000000
--- How long (seconds) an upload waits for its jobs unless `wait_timeout`
-- (or job:wait's `timeout`) says other; then it returns the job's last
-- state with a `timeout` error (err.job).
M.DEFAULT_WAIT_TIMEOUT = 3600
--- The version of the state file's format; a state file of another version is refused.
M.STATE_VERSION = 1

-- ----------------------------------------------------------------------
-- options

local options = require "coldsend.options"
local CALL_OPTIONS = options.CALL_OPTIONS
local raise, shown = options.raise, options.shown

local UPLOAD_OPTIONS = {
  file = "path", mapping = "table", on_progress = "function", wait = "boolean",
  dry_run = "boolean", state_file = "path|false",
  chunk_rows = options.between(1, M.MAX_ROWS), chunk_bytes = options.between(1, M.MAX_BYTES),
  max_problems = "count", allow_duplicates = "boolean",
  restart = "boolean", poll_interval = "seconds", wait_timeout = "seconds",
}
for k, v in pairs(CALL_OPTIONS) do UPLOAD_OPTIONS[k] = v end

local function call_options(opts)
  local t
  for k in pairs(CALL_OPTIONS) do
    if opts[k] ~= nil then
      t = t or {}
      t[k] = opts[k]
    end
  end
  return t
end

local function invalid(message, fields)
  fields = fields or {}
  fields.code, fields.message, fields.attempts = "invalid", message, 0
  return core.error(fields)
end

local function basename(path)
  return path:match("([^/\\]+)$") or path
end

-- ----------------------------------------------------------------------
-- the mapping

-- Header names read as lead fields when neither the call nor the campaign
-- gives a mapping: the standard columns under their usual spellings.
local ALIASES = {
  email = "email", email_address = "email", e_mail = "email",
  first_name = "first_name", firstname = "first_name",
  last_name = "last_name", lastname = "last_name",
  company = "company", company_name = "company",
}

-- Linear in #h: gsub("%s+$", "") would retry from every blank of a run.
local function normalise_header(h)
  local i = h:find("%S")
  if not i then return "" end
  return (h:match("^.*%S", i):lower():gsub("[%s%-]+", "_"))
end

-- The standard columns found in the header, or false when it has no email
-- column (the pre-flight then says so), or nil, err.
local function default_mapping(path)
  local r, msg = core.csv_open(path)
  if not r then return nil, invalid(msg, { file = path }) end
  local header, err = r:read()
  r:close()
  if err then return nil, invalid(err, { file = path }) end
  local mapping = {}
  for _, h in ipairs(header or {}) do
    local field = ALIASES[normalise_header(h)]
    if field and not mapping[field] then mapping[field] = h end
  end
  return mapping.email and mapping or false
end

-- The mapping to send: the call's, else the campaign's lead_mapping, else
-- the standard columns of the header.
local function choose_mapping(c, opts)
  if opts.mapping then return opts.mapping end
  local lm = c.lead_mapping
  if type(lm) == "table" and next(lm) ~= nil then return lm end
  return default_mapping(opts.file)
end

-- ----------------------------------------------------------------------
-- the state file: written whole to a temporary file, then renamed over the
-- old one, so a crash leaves either the old state or the new, never half

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function load_state(path)
  local s = path and read_file(path)
  if not s then return nil end
  local t = json.decode(s)
  if type(t) ~= "table" or t.version ~= M.STATE_VERSION or type(t.uploads) ~= "table" then
    return nil, format("%s is not an upload state file of this version", path)
  end
  return t
end

-- The temporary file has a unique name and is created exclusively, mode
-- 0600, without following links (core.write_private): a file or link
-- planted beside the CSV in a shared folder is never written through.
local function save_state(path, state)
  if not path then return true end
  return core.write_private(path, json.encode(state))
end

-- ----------------------------------------------------------------------
-- the job: one object over the server jobs of every chunk

local Job = {}
Job.__index = Job
Job.__name = "coldsend.upload_job"
--- The upload job class (`coldsend.upload_job`): one object over the server jobs of every chunk.
M.Job = Job

-- What a job needs but a user should not see in pairs(job).
local private = setmetatable({}, { __mode = "k" })

local FINAL = { COMPLETED = true, FAILED = true }

-- JSON numbers decode as floats under Lua 5.4; counts read better as integers.
local int = math.tointeger or function(v) return v end
local COUNTS = { "processed_count", "success_count", "duplicate_count", "error_count" }

-- A count as digits; whatever else a server sent (1.5) as Lua shows it,
-- where %d would raise (5.3+) or cut it (5.1).
local function count(v)
  v = v or 0
  return type(v) == "number" and v == floor(v) and math.abs(v) < 2 ^ 53 and format("%d", v) or tostring(v)
end

--- One line: `coldsend.upload_job <id> IN_PROGRESS 45% (4500/10000 rows, 12 errors)`.
function Job:__tostring()
  local n = #self.chunks
  return format("coldsend.upload_job %s %s %s%% (%s/%s rows, %s error%s%s)",
    tostring(self.job_id), tostring(self.status), count(self.progress_percentage),
    count(self.processed_count), count(self.total_count), count(self.error_count),
    self.error_count == 1 and "" or "s", n > 1 and format(", %d chunks", n) or "")
end

-- Recomputes the combined fields from the chunks' last server answers.
-- Per-row errors get the row number in the whole file (the header is row 1),
-- from the 1-based data row the server reports within its chunk.
local function combine(job)
  for _, k in ipairs(COUNTS) do job[k] = 0 end
  local errors, statuses, all_final, any_failed = {}, {}, true, false
  local started, completed
  job.job_ids = {}
  for i, ch in ipairs(job.chunks) do
    job.job_ids[i] = ch.job_id or false
    local res = ch.result or {}
    for _, k in ipairs(COUNTS) do
      if type(res[k]) == "number" then job[k] = job[k] + (int(res[k]) or res[k]) end
    end
    for _, e in ipairs(type(res.errors) == "table" and res.errors or {}) do
      local data_row = type(e) == "table" and tonumber(e.row)
      data_row = data_row and (int(data_row) or data_row)
      errors[#errors + 1] = {
        row = data_row and ch.first_row + data_row - 1, chunk = i,
        email = type(e) == "table" and e.email or nil,
        message = type(e) == "table" and tostring(e.message) or tostring(e),
      }
    end
    local st = ch.status or "PENDING"
    statuses[st] = true
    if not FINAL[st] then all_final = false end
    if st == "FAILED" then any_failed = true end
    if type(res.started_at) == "string" and (not started or res.started_at < started) then
      started = res.started_at
    end
    if type(res.completed_at) == "string" and (not completed or res.completed_at > completed) then
      completed = res.completed_at
    end
  end
  job.errors = errors
  job.job_id = nil
  for _, jid in ipairs(job.job_ids) do
    if jid then job.job_id = jid break end
  end
  if all_final then
    job.status = any_failed and "FAILED" or "COMPLETED"
  elseif statuses.IN_PROGRESS or statuses.COMPLETED or statuses.FAILED then
    job.status = "IN_PROGRESS"
  elseif statuses.VALIDATING then
    job.status = "VALIDATING"
  else
    job.status = "PENDING"
  end
  job.started_at = started
  job.completed_at = all_final and completed or nil
  job.progress_percentage = job.total_count > 0
    and floor(job.processed_count * 100 / job.total_count) or 100
  if all_final then job.progress_percentage = 100 end
end

-- Rows handed to the server, and rows counted as done: processed rows
-- while waiting, otherwise rows handed over.
local function progress_of(job)
  local sent = 0
  for _, ch in ipairs(job.chunks) do
    if ch.job_id then sent = sent + ch.rows end
  end
  return sent, private[job].waiting and job.processed_count or sent
end

-- Reports progress to the callback of the call (or of wait). The rate
-- counts only this run's work, not chunks done by an earlier run.
local function emit(job, phase, chunk)
  local p = private[job]
  local cb = p.on_progress
  if not cb then return end
  local sent, done = progress_of(job)
  local elapsed = p.client.clock() - p.started
  local rate = elapsed > 0 and (done - p.done_before) / elapsed or nil
  cb {
    phase = phase, chunk = chunk, chunks = #job.chunks, file = job.file,
    total = job.total_count, sent = sent, processed = job.processed_count, done = done,
    percent = job.total_count > 0 and floor(done * 100 / job.total_count) or 100,
    created = job.success_count, duplicates = job.duplicate_count, errors = job.error_count,
    elapsed = elapsed, rate = rate,
    eta = rate and rate > 0 and (job.total_count - done) / rate or nil,
    status = job.status,
  }
end

local function record_state(job)
  local p = private[job]
  if not p.state then return true end
  local rec = p.state.uploads[job.campaign_id]
  for i, ch in ipairs(job.chunks) do
    local s = rec.chunks[i]
    s.state, s.job_id, s.status, s.result = ch.state, ch.job_id, ch.status, ch.result
  end
  local ok, err = save_state(p.state_path, p.state)
  if not ok then
    return nil, core.error { code = "io", message = format("cannot write the upload state %s: %s",
      p.state_path, tostring(err)), attempts = 0 }
  end
  return true
end

-- Keeps what the server says about a chunk's job, without the bulky or
-- redundant fields.
local function keep_result(data)
  local res = {}
  for _, k in ipairs(COUNTS) do res[k] = data[k] end
  res.total_count = data.total_count
  res.started_at = type(data.started_at) == "string" and data.started_at or nil
  res.completed_at = type(data.completed_at) == "string" and data.completed_at or nil
  res.errors = type(data.errors) == "table" and data.errors or {}
  return res
end

local function poll_chunk(job, i)
  local p = private[job]
  local ch = job.chunks[i]
  local path = "/campaigns/" .. job.campaign_id .. "/leads/upload/" .. ch.job_id
  local req = core.build_request(p.client.base_url, "GET", path)
  local data, err = p.client:_send(req, p.call_opts)
  if not data then
    err.chunk, err.job = i, job
    return nil, err
  end
  if type(data.status) ~= "string" then
    return nil, core.error { code = "protocol", method = "GET", url = req.url, attempts = 1,
      message = "expected 'status' (string) in the upload job, got " .. type(data.status) }
  end
  ch.status = data.status
  ch.result = keep_result(data)
  combine(job)
  return true
end

-- Polls chunk i until its job is COMPLETED or FAILED.
local function wait_chunk(job, i, interval, deadline_at)
  local p = private[job]
  local ch = job.chunks[i]
  if not ch.job_id then -- the job of an upload that stopped half-way
    return nil, core.error { code = "invalid", attempts = 0, job = job, chunk = i,
      message = format("chunk %d of %d was not accepted by the server: run the upload again to "
        .. "send it", i, #job.chunks) }
  end
  while not FINAL[ch.status] do
    local ok, err = poll_chunk(job, i)
    if not ok then return nil, err end
    emit(job, "processing", i)
    if FINAL[ch.status] then
      local saved, serr = record_state(job)
      if not saved then return nil, serr end
      break
    end
    local now = p.client.clock()
    if deadline_at and now + interval > deadline_at then
      return nil, core.error { code = "timeout", attempts = 0, job = job,
        message = format("upload job not finished after %g s: %s", deadline_at - p.wait_started,
          tostring(job)) }
    end
    p.client.sleep(interval)
  end
  return true
end

local WAIT_OPTIONS = { interval = "seconds", timeout = "seconds", on_progress = "function" }

--- Polls every chunk's job until all are COMPLETED or FAILED.
-- opts: interval (s between polls, default the upload's poll_interval or 1),
-- timeout (s; then nil, err with code "timeout"), on_progress.
-- Returns the job (check job.status: FAILED when a chunk's job failed).
function Job:wait(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(format("bad argument #1 to 'wait' (table expected, got %s)", type(opts)), 2)
  end
  options.check("job:wait", opts, WAIT_OPTIONS)
  local p = private[self]
  if opts.on_progress then p.on_progress = opts.on_progress end
  local interval = opts.interval or p.poll_interval
  if not p.waiting then -- the rate now counts processed rows
    p.waiting = true
    p.started = p.client.clock()
    local _, done = progress_of(self)
    p.done_before = done
  end
  p.wait_started = p.client.clock()
  local deadline_at = p.wait_started + (opts.timeout or M.DEFAULT_WAIT_TIMEOUT)
  for i in ipairs(self.chunks) do
    local ok, err = wait_chunk(self, i, interval, deadline_at)
    if not ok then return nil, err end
  end
  emit(self, "done")
  return self
end

-- ----------------------------------------------------------------------
-- the upload

local function header_line(path, report)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  f:seek("set", report.header_offset)
  local s = f:read(report.header_bytes)
  f:close()
  if not s or #s ~= report.header_bytes then return nil, path .. ": changed while reading" end
  return s
end

local function problems_error(path, report, problems, n_problems)
  local first = problems[1]
  local where = first.row and format("row %d%s", first.row,
    first.column and format(" (%s)", first.column) or "") or "file"
  return invalid(format("%s: %d problem%s found before sending; first: %s: %s", basename(path),
    n_problems, n_problems == 1 and "" or "s", where, first.message), {
    problems = problems, problem_count = n_problems, report = report, file = path,
  })
end

local function same_plan(rec, report)
  if type(rec.chunks) ~= "table" or #rec.chunks ~= #report.chunks then return false end
  for i, ch in ipairs(report.chunks) do
    local s = rec.chunks[i]
    if type(s) ~= "table" or s.offset ~= ch.offset or s.length ~= ch.length then return false end
  end
  return true
end

local function fresh_record(report, mapping)
  local chunks = {}
  for i, ch in ipairs(report.chunks) do
    chunks[i] = { first_row = ch.first_row, last_row = ch.last_row, rows = ch.rows,
      offset = ch.offset, length = ch.length, state = "pending" }
  end
  return { mapping = mapping, chunks = chunks }
end

local function same_mapping(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k, v in pairs(b) do if a[k] ~= v then return false end end
  return true
end

local function show_mapping(m)
  if type(m) ~= "table" then return tostring(m) end
  local keys = {}
  for k in pairs(m) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(m[k]) end
  return concat(keys, ",")
end

-- Loads the state and decides what is already done. Returns the state and
-- the record of this campaign, or nil, err when the file changed under an
-- upload that had chunks accepted.
local function resume_state(path, opts, report, id, mapping)
  local state, serr = load_state(path)
  if serr and not opts.restart then
    return nil, core.error { code = "io", attempts = 0, message = serr
      .. "; pass restart = true or remove it to start over" }
  end
  local same_file = state and state.fingerprint == report.fingerprint and state.bytes == report.bytes
  local rec = same_file and state.uploads[id] or nil
  if rec and not opts.restart and not same_plan(rec, report) then
    return nil, core.error { code = "conflict", attempts = 0, state_file = path,
      message = format("%s records an upload of this file in other chunks (chunk_rows or chunk_bytes "
        .. "changed); pass the same values to resume, or restart = true", path) }
  end
  if rec and not opts.restart and not same_mapping(rec.mapping, mapping) then
    return nil, core.error { code = "conflict", attempts = 0, state_file = path,
      message = format("%s records an upload of this file with another mapping (%s); pass the "
        .. "same mapping to resume, or restart = true to send the file again with this one",
        path, show_mapping(rec.mapping)) }
  end
  if state and not same_file and not opts.restart then
    for _, r in pairs(state.uploads) do
      for _, ch in ipairs(type(r) == "table" and type(r.chunks) == "table" and r.chunks or {}) do
        if ch.job_id then
          return nil, core.error { code = "conflict", attempts = 0, state_file = path,
            message = format("%s changed since the upload recorded in %s; pass restart = true to "
              .. "send it again (the server skips emails it already has) or remove the state file",
              basename(opts.file), path) }
        end
      end
    end
  end
  if not same_file then
    state = { version = M.STATE_VERSION, file = basename(opts.file), bytes = report.bytes,
      fingerprint = report.fingerprint, uploads = {} }
  end
  if not rec or opts.restart then
    rec = fresh_record(report, mapping)
    state.uploads[id] = rec
  end
  return state, rec
end

local function new_job(client, id, path, report, rec, opts, state, state_path)
  local job = setmetatable({
    campaign_id = id, file = path, state_file = state_path,
    total_count = report.rows, chunks = {}, skipped = 0,
  }, Job)
  for i, s in ipairs(rec.chunks) do
    local ch = { index = i, first_row = s.first_row, last_row = s.last_row, rows = s.rows,
      offset = s.offset, length = s.length, state = s.state or "pending", job_id = s.job_id,
      status = s.status, result = s.result }
    -- a chunk the server refused to process is sent again
    if ch.status == "FAILED" then ch.state, ch.job_id, ch.status, ch.result = "pending", nil, nil, nil end
    if ch.state ~= "accepted" then ch.job_id, ch.status, ch.result = nil, nil, nil end
    if ch.job_id then job.skipped = job.skipped + 1 end
    job.chunks[i] = ch
  end
  local started = client.clock()
  private[job] = {
    client = client, call_opts = call_options(opts), on_progress = opts.on_progress,
    poll_interval = opts.poll_interval or 1, state = state, state_path = state_path,
    started = started, wait_started = started, waiting = opts.wait ~= false,
  }
  combine(job)
  local _, done = progress_of(job)
  private[job].done_before = done
  return job
end

local function send_chunk(job, i, header, mapping_json)
  local p = private[job]
  local ch = job.chunks[i]
  local n = #job.chunks
  local name = basename(job.file)
  if n > 1 then name = name:gsub("%.[Cc][Ss][Vv]$", "") .. format(".part%dof%d.csv", i, n) end
  local req = {
    method = "POST", url = p.client.base_url .. "/campaigns/" .. job.campaign_id .. "/leads",
    headers = {},
    multipart = {
      { name = "file", file = job.file, filename = name, content_type = "text/csv",
        offset = ch.offset, length = ch.length, prefix = header },
      { name = "mapping", value = mapping_json },
    },
  }
  if p.batches_before == nil then
    -- the campaign's lead batches before this run sends anything: what
    -- tells an ambiguous chunk's batch apart (coldsend.writes.upload_chunk)
    local before, berr = writes.lead_batches(p.client, job.campaign_id, p.call_opts)
    if before == nil then return nil, berr end
    p.batches_before = before
  end
  local known = {}
  for _, other in ipairs(job.chunks) do
    if other.job_id then known[other.job_id] = true end
  end
  local data, err = writes.upload_chunk(p.client, req, name, job.campaign_id, p.batches_before,
    known, p.call_opts)
  if data and not core.is_uuid(data.job_id) then
    err = core.error { code = "protocol", method = "POST", url = req.url, attempts = 1,
      message = "expected 'job_id' (UUID) in the upload answer, got " .. shown(data.job_id) }
    err.ambiguous = true -- the server took the chunk, but which job is it?
    data = nil
  end
  local what = format("chunk %d of %d (rows %d-%d)", i, n, ch.first_row, ch.last_row)
  if not data then
    err.chunk, err.job, err.state_file = i, job, p.state_path
    if err.ambiguous then
      ch.state = "unknown"
      local saved, serr = record_state(job)
      if not saved then return nil, serr end
      -- the transport's message already says it may have arrived
      err.message = format("%s: %s; run the upload again to resume: accepted chunks are skipped, "
        .. "this one is sent again and the server skips emails it already has",
        tostring(err.message), what)
    else
      err.message = format("%s: %s was not accepted", tostring(err.message), what)
    end
    return nil, err
  end
  ch.state, ch.job_id, ch.status = "accepted", data.job_id, data.status
  ch.result = keep_result(data)
  combine(job)
  local saved, serr = record_state(job)
  if not saved then return nil, serr end
  return true
end

--- c:upload_leads{file=, mapping=, on_progress=, wait=, dry_run=, ...}
-- Checks the whole file first (problems -> nil, err with code "invalid"),
-- then sends it in chunks of at most 10,000 rows and 50 MB, header repeated,
-- one after another; with wait (the default) each chunk's job is followed
-- to the end before the next is sent. Returns the combined job or nil, err.
-- dry_run returns the pre-flight report instead and sends nothing.
function M.upload(client, c, opts)
  if type(opts) ~= "table" then
    raise(format("bad argument #1 to 'upload_leads' (table expected, got %s)", type(opts)))
  end
  options.check("upload_leads", opts, UPLOAD_OPTIONS)
  if opts.file == nil then options.opt_error("upload_leads", "file", "path string", nil) end
  local id = options.saved_id(c, "upload_leads")
  local path = opts.file

  local mapping, merr = choose_mapping(c, opts)
  if mapping == nil then return nil, merr end
  local state_path = opts.state_file
  if state_path == nil then state_path = path .. ".coldsend-upload" end
  if state_path == false then state_path = nil end

  -- an interrupted upload resumes with the chunk sizes it started with
  local chunk_rows, chunk_bytes = opts.chunk_rows, opts.chunk_bytes
  local old = not opts.restart and state_path and load_state(state_path)
  local old_rec = old and old.uploads[id]
  if type(old_rec) == "table" then
    chunk_rows = chunk_rows or old_rec.chunk_rows
    chunk_bytes = chunk_bytes or old_rec.chunk_bytes
  end
  chunk_rows, chunk_bytes = chunk_rows or M.MAX_ROWS, chunk_bytes or M.MAX_BYTES

  local report, rerr = core.csv_preflight(path, {
    mapping = mapping or nil, chunk_rows = chunk_rows, chunk_bytes = chunk_bytes,
    max_problems = opts.max_problems,
  })
  if not report then return nil, invalid(rerr, { file = path }) end
  report.chunk_rows, report.chunk_bytes = chunk_rows, chunk_bytes
  if opts.dry_run then return report end

  local problems, n_problems = report.problems, report.problem_count
  if opts.allow_duplicates and report.duplicates > 0 then
    problems, n_problems = {}, report.problem_count - report.duplicates
    for _, pr in ipairs(report.problems) do
      if pr.kind ~= "duplicate" then problems[#problems + 1] = pr end
    end
  end
  if n_problems > 0 then
    if #problems == 0 then -- the list is capped and held only duplicates
      problems = { { message = format("%d more problem(s) beyond max_problems", n_problems) } }
    end
    return nil, problems_error(path, report, problems, n_problems)
  end

  local header, herr = header_line(path, report)
  if not header then return nil, invalid(herr, { file = path }) end
  local sent_mapping = report.mapping or mapping or { email = report.email_column }

  local state, rec
  if state_path then
    state, rec = resume_state(state_path, opts, report, id, sent_mapping)
    if not state then return nil, rec end
  else
    rec = fresh_record(report, sent_mapping)
  end
  rec.chunk_rows, rec.chunk_bytes = chunk_rows, chunk_bytes
  local job = new_job(client, id, path, report, rec, opts, state, state_path)
  local saved, serr = record_state(job)
  if not saved then return nil, serr end

  local mapping_json = json.encode(sent_mapping)
  local p = private[job]
  emit(job, "start")
  for i, ch in ipairs(job.chunks) do
    if not ch.job_id then
      emit(job, "uploading", i)
      local ok, err = send_chunk(job, i, header, mapping_json)
      if not ok then return nil, err end
      emit(job, "uploaded", i)
    end
    if p.waiting then
      local ok, err = wait_chunk(job, i, p.poll_interval,
        p.started + (opts.wait_timeout or M.DEFAULT_WAIT_TIMEOUT))
      if not ok then return nil, err end
    end
  end
  emit(job, p.waiting and "done" or "uploaded")
  return job
end

return M
