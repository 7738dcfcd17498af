--- coldsend.sandbox.uploads: the CSV lead upload (L1) and its job's
-- progress (L2): the multipart body, the column mapping, and the job that
-- adds the rows as leads in stages (on polls, and on a timer in the loop).
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local csv = require "coldsend.sandbox.csv"
local campaigns = require "coldsend.sandbox.campaigns"
local leads = require "coldsend.sandbox.leads"
local E = require "coldsend.sandbox.endpoint"

local array, null = json.array, json.null
local iso, deepcopy = E.iso, E.deepcopy
local detail, unprocessable, not_found = E.detail, E.unprocessable, E.not_found
local str_map = E.str_map
local find_campaign, add_lead = campaigns.find_campaign, leads.add_lead

local M = {}

M.MAX_UPLOAD_BYTES = 50 * 1024 * 1024
M.MAX_UPLOAD_ROWS = 10000

local STANDARD = { email = true, first_name = true, last_name = true, company = true }
local ALIASES = { email = "email", email_address = "email", e_mail = "email",
  first_name = "first_name", firstname = "first_name", last_name = "last_name",
  lastname = "last_name", company = "company", company_name = "company" }

local function norm_header(h)
  return (csv.trim(h:lower()):gsub("[%s%-]+", "_"))
end

-- Resolves the mapping against the header: returns cols = { [lead field] =
-- column index } and custom = { {name=, index=} }, or nil, message.
local function resolve_mapping(header, mapping)
  local index_exact, index_ci = {}, {}
  for i, h in ipairs(header) do
    local t = csv.trim(h)
    if index_exact[t] == nil then index_exact[t] = i end
    if index_ci[t:lower()] == nil then index_ci[t:lower()] = i end
  end
  local std, custom, used = {}, {}, {}
  if mapping then
    local missing = {}
    local keys = {}
    for k in pairs(mapping) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local col = mapping[k]
      local i = index_exact[col] or index_ci[col:lower()]
      if not i then
        missing[#missing + 1] = col
      else
        used[i] = true
        if STANDARD[k] then std[k] = i else custom[#custom + 1] = { name = k, index = i } end
      end
    end
    if #missing > 0 then
      return nil, "Mapping refers to column(s) not found in the CSV header: " .. table.concat(missing, ", ")
    end
  else
    for i, h in ipairs(header) do
      local f = ALIASES[norm_header(h)]
      if f and not std[f] then std[f] = i used[i] = true end
    end
  end
  if not std.email then return nil, "CSV file must contain an email column" end
  -- every other column becomes a custom field named by its header
  for i, h in ipairs(header) do
    if not used[i] and h ~= "" then custom[#custom + 1] = { name = h, index = i } end
  end
  return std, custom
end

local function job_view(job)
  local v = {}
  for _, k in ipairs { "job_id", "campaign_id", "status", "progress_percentage",
    "processed_count", "success_count", "duplicate_count", "error_count",
    "total_count", "file_name", "batch_id" } do
    v[k] = job[k]
  end
  v.errors = deepcopy(job.errors)
  v.started_at = job.started_at or null
  v.completed_at = job.completed_at or null
  v.created_at = job.created_at
  return v
end

local function process_rows(srv, job, upto)
  local c = srv.state.campaigns[job.campaign_id]
  while job.processed_count < upto do
    local i = job.processed_count + 1
    local rec = job.rows[i]
    job.processed_count = i
    local email = rec[job.cols.email]
    email = email and csv.trim(email) or ""
    local function err(msg)
      job.error_count = job.error_count + 1
      job.errors[#job.errors + 1] = { row = i, email = email, message = msg }
    end
    if not c then
      err("campaign was deleted")
    elseif #rec ~= job.nfields then
      err(("row has %d fields, the header has %d"):format(#rec, job.nfields))
    elseif email == "" then
      err("missing email")
    elseif not V.is_email(email) then
      err("invalid email address")
    elseif c.leads.by_email[email:lower()] then
      job.duplicate_count = job.duplicate_count + 1
    else
      local f = { email = email, custom_fields = {} }
      for _, k in ipairs { "first_name", "last_name", "company" } do
        local ix = job.cols[k]
        if ix and rec[ix] and rec[ix] ~= "" then f[k] = rec[ix] end
      end
      for _, cu in ipairs(job.custom) do
        local x = rec[cu.index]
        if x and x ~= "" then f.custom_fields[cu.name] = x end
      end
      add_lead(srv, c, f, job.batch_id)
      job.success_count = job.success_count + 1
    end
  end
  job.progress_percentage = job.total_count == 0 and 100
    or math.floor(job.processed_count * 100 / job.total_count)
  if job.batch then
    job.batch.success_count = job.success_count
    job.batch.duplicate_count = job.duplicate_count
    job.batch.error_count = job.error_count
  end
end

--- Moves a job one stage: PENDING -> VALIDATING -> IN_PROGRESS (half the
-- rows) -> COMPLETED (all rows).
function M.advance_job(srv, job)
  if job.status == "PENDING" then
    job.status = "VALIDATING"
    job.started_at = iso(os.time())
  elseif job.status == "VALIDATING" then
    job.status = "IN_PROGRESS"
    process_rows(srv, job, math.floor(job.total_count / 2))
  elseif job.status == "IN_PROGRESS" then
    process_rows(srv, job, job.total_count)
    job.status = "COMPLETED"
    job.completed_at = iso(os.time())
    job.progress_percentage = 100
    job.rows = nil
    if job.batch then job.batch.status = "COMPLETED" end
  end
  return job.status
end

function M.upload_leads(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local boundary = csv.boundary(req.headers["content-type"])
  local parts
  if boundary then
    local err
    parts, err = csv.multipart(req.body, boundary)
    if not parts then return detail(400, "Malformed multipart body: " .. err) end
  else
    parts = {}
  end
  local file = parts.file
  if not file then
    local errs = V.errors()
    errs:add(array { "body", "file" }, "field required", "value_error.missing")
    return unprocessable(errs)
  end
  local data = file.value
  if #data > M.MAX_UPLOAD_BYTES then
    return detail(413, ("File too large: %d bytes; the maximum is 50 MB (52428800 bytes) per upload")
      :format(#data))
  end
  local mapping
  if parts.mapping and parts.mapping.value:match("%S") then
    local m = json.decode(parts.mapping.value)
    local errs = V.errors()
    if type(m) ~= "table" then
      errs:add(array { "body", "mapping" }, "mapping must be a JSON-encoded object", "value_error.json")
      return unprocessable(errs)
    end
    mapping = str_map(errs, array { "body", "mapping" }, m)
    if not errs:empty() then return unprocessable(errs) end
    if not mapping.email then
      return detail(400, "mapping must map 'email' to a CSV column")
    end
  else
    mapping = c.lead_mapping
  end
  if data == "" or not data:find("%S") then return detail(400, "CSV file is empty") end
  local rows, header = {}, nil
  local count = 0
  local next_rec = csv.reader(data)
  local ok, perr = pcall(function()
    while true do
      local rec = next_rec()
      if not rec then break end
      if not header then
        header = rec
      else
        count = count + 1
        if count <= M.MAX_UPLOAD_ROWS then rows[count] = rec end
      end
      if count % 2000 == 0 and count > 0 then srv:yield_cpu() end
    end
  end)
  if not ok then
    if type(perr) == "table" and perr.csv_error then
      return detail(400, ("Malformed CSV: %s starting on line %d"):format(perr.csv_error, perr.line))
    end
    error(perr, 0)
  end
  if count > M.MAX_UPLOAD_ROWS then
    return detail(400, ("Too many rows: %d; the maximum is 10,000 leads per upload"):format(count))
  end
  local std, custom = resolve_mapping(header, mapping)
  if not std then return detail(400, custom) end
  if count == 0 then return detail(400, "CSV file contains no leads (only a header row)") end
  local now = iso(os.time())
  local job = {
    job_id = srv:uuid(), batch_id = srv:uuid(), campaign_id = c.campaign_id,
    status = "PENDING", progress_percentage = 0, processed_count = 0,
    success_count = 0, duplicate_count = 0, error_count = 0, total_count = count,
    errors = array(), created_at = now, rows = rows, cols = std, custom = custom,
    nfields = #header, file_name = file.filename or "leads.csv",
  }
  job.batch = { batch_id = job.batch_id, job_id = job.job_id, file_name = job.file_name,
    status = "PENDING", total_count = count, success_count = 0, duplicate_count = 0,
    error_count = 0, created_at = now }
  c.lead_batches[#c.lead_batches + 1] = job.batch
  srv.state.jobs[job.job_id] = job
  srv:schedule_job(job)
  local v = job_view(job)
  v.success = true
  v.message = "Upload accepted; poll GET /campaigns/" .. c.campaign_id .. "/leads/upload/" .. job.job_id
  return 200, v
end

function M.upload_progress(srv, _req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local job = srv.state.jobs[p.job_id:lower()]
  if not job or job.campaign_id ~= c.campaign_id then return not_found("Upload job") end
  M.advance_job(srv, job)
  local v = job_view(job)
  v.success = true
  v.message = "Upload progress retrieved successfully"
  return 200, v
end

return M
