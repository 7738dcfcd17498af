--- coldsend.sandbox.campaigns: the campaign endpoints (C1 create, C2 list,
-- C3 get, C4 update and launch, C5 pause, C6 resume, C7 delete) and the
-- campaign's views and launch readiness; the fields and rules are in
-- coldsend.sandbox.campaign_schema.
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local schema = require "coldsend.sandbox.campaign_schema"
local E = require "coldsend.sandbox.endpoint"

local array, null = json.array, json.null
local iso, copy_array, deepcopy = E.iso, E.copy_array, E.deepcopy
local detail, unprocessable, not_found = E.detail, E.unprocessable, E.not_found
local query_int, paginate = E.query_int, E.paginate
local STATUSES, DEFAULTS = schema.STATUSES, schema.DEFAULTS
local CREATE_FIELDS, UPDATE_FIELDS = schema.CREATE_FIELDS, schema.UPDATE_FIELDS
local window_errors, list_rules = schema.window_errors, schema.list_rules

local M = {}

-- -------------------------------------------------------------------------
-- Campaign views
-- -------------------------------------------------------------------------

local function readiness(c)
  local missing = array()
  if #c.leads.list == 0 then missing[#missing + 1] = "leads" end
  if #c.inbox_ids == 0 then missing[#missing + 1] = "inboxes" end
  if #c.variants == 0 then missing[#missing + 1] = "variants" end
  return #missing == 0, missing
end
M.readiness = readiness

local function pct(a, b)
  if b == 0 then return 0 end
  return math.floor(a / b * 10000 + 0.5) / 100
end

local function list_item(c)
  local st = c.stats
  return {
    campaign_id = c.campaign_id, name = c.name, status = c.status,
    current_step = 0, created_at = c.created_at, updated_at = c.updated_at,
    launched_at = c.launched_at or null,
    total_leads = #c.leads.list, sent_count = st.sent, reply_count = st.replied,
    open_count = st.opened, bounce_count = st.bounced,
    unsubscribe_count = st.unsubscribed,
  }
end

local function full_view(srv, c)
  local v = list_item(c)
  for k in pairs(DEFAULTS) do v[k] = c[k] end
  v.sending_days = copy_array(c.sending_days)
  v.lead_mapping = c.lead_mapping and deepcopy(c.lead_mapping) or null
  v.variants = deepcopy(c.variants)
  v.sequences = deepcopy(c.sequences)
  v.inbox_ids = copy_array(c.inbox_ids)
  v.inboxes = array()
  for i, id in ipairs(c.inbox_ids) do
    local ib = srv.state.inboxes[id]
    v.inboxes[i] = {
      inbox_id = id, email_address = ib and ib.email_address or null,
      display_name = ib and ib.display_name or null,
      inbox_type = ib and ib.inbox_type or null,
      daily_limit = ib and ib.daily_limit or null,
    }
  end
  v.lead_batches = deepcopy(c.lead_batches)
  v.team_id = srv.state.team_id
  v.created_by = srv.state.user_id
  v.reply_to = null
  local st, total = c.stats, #c.leads.list
  v.completion_rate = pct(st.sent + st.bounced, total)
  v.success_rate = pct(st.sent, total)
  v.open_to_reply_rate = pct(st.replied, st.opened)
  local ready, missing = readiness(c)
  v.is_launch_ready = ready
  v.missing_requirements = missing
  return v
end

local function find_campaign(srv, id)
  local c = srv.state.campaigns[id:lower()]
  if not c then return nil, not_found("Campaign") end
  return c
end

M.find_campaign = find_campaign

local function touch(c) c.updated_at = iso(os.time()) end

-- -------------------------------------------------------------------------
-- C1 create
-- -------------------------------------------------------------------------

function M.create_campaign(srv, req)
  local body = req.json
  local errs = V.errors()
  local f = V.object(errs, array { "body" }, body, CREATE_FIELDS)
  if not errs:empty() then return unprocessable(errs) end
  local c = {}
  for k, v in pairs(DEFAULTS) do c[k] = v end
  c.sending_days = array { 1, 2, 3, 4, 5 }
  for k, v in pairs(f) do c[k] = v end
  window_errors(errs, c)
  if not errs:empty() then return unprocessable(errs) end
  local st = srv.state
  st.seq = st.seq + 1
  local now = os.time()
  c.campaign_id = srv:uuid()
  c.status = "DRAFT"
  c.seq = st.seq
  c.created_time = now
  c.created_at = iso(now)
  c.updated_at = c.created_at
  c.launched_at = nil
  c.lead_mapping = nil
  c.inbox_ids = array()
  c.variants = array()
  c.sequences = array()
  c.lead_batches = array()
  c.leads = { list = {}, by_email = {} }
  c.stats = { sent = 0, opened = 0, replied = 0, bounced = 0, unsubscribed = 0 }
  c.daily = {}
  st.campaigns[c.campaign_id] = c
  st.campaign_list[#st.campaign_list + 1] = c
  return 201, {
    success = true, message = "Campaign created successfully",
    campaign_id = c.campaign_id, name = c.name, status = c.status,
    current_step = 0, created_at = c.created_at,
  }
end

-- -------------------------------------------------------------------------
-- C2 list
-- -------------------------------------------------------------------------

local SORTABLE = { created_at = "seq", updated_at = "updated_at", name = "name",
  status = "status", launched_at = "launched_at" }

function M.list_campaigns(srv, req)
  local q = req.query
  local errs = V.errors()
  local page = query_int(errs, q, "page", 1, 1)
  local limit = query_int(errs, q, "limit", 20, 1, 100)
  local days = query_int(errs, q, "days", nil, 1)
  local status = q.status
  if status == "" then status = nil end
  if status then V.enum(errs, array { "query", "status" }, status:upper(), { values = STATUSES }) end
  local sort_by = q.sort_by
  if sort_by == "" then sort_by = nil end
  if sort_by and not SORTABLE[sort_by] then
    errs:add(array { "query", "sort_by" },
      "sort_by must be one of: created_at, updated_at, name, status, launched_at", "value_error")
  end
  local order = (q.sort_order or ""):lower()
  if order == "" then order = "desc" end
  if order ~= "asc" and order ~= "desc" then
    errs:add(array { "query", "sort_order" }, "sort_order must be 'asc' or 'desc'", "value_error")
  end
  if not errs:empty() then return unprocessable(errs) end
  local search = q.search and q.search ~= "" and q.search:lower() or nil
  local since = days and (os.time() - days * 86400) or nil
  local out = {}
  for _, c in ipairs(srv.state.campaign_list) do
    if (not status or c.status == status:upper())
      and (not search or c.name:lower():find(search, 1, true))
      and (not since or c.created_time >= since) then
      out[#out + 1] = c
    end
  end
  local key = SORTABLE[sort_by or "created_at"]
  table.sort(out, function(a, b)
    local x, y = a[key], b[key]
    if x == y or x == nil or y == nil then
      if x == nil and y ~= nil then return order == "asc" end
      if y == nil and x ~= nil then return order ~= "asc" end
      if order == "asc" then return a.seq < b.seq end
      return a.seq > b.seq
    end
    if order == "asc" then return x < y end
    return x > y
  end)
  local items, pagination = paginate(out, page, limit)
  for i, c in ipairs(items) do items[i] = list_item(c) end
  return 200, {
    success = true, message = "Campaigns retrieved successfully",
    campaigns = items, pagination = pagination,
  }
end

-- -------------------------------------------------------------------------
-- C3 get, C4 update, C5 pause, C6 resume, C7 delete
-- -------------------------------------------------------------------------

function M.get_campaign(srv, _req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local v = full_view(srv, c)
  v.success = true
  v.message = "Campaign retrieved successfully"
  return 200, v
end

local function update_answer(c, message)
  local ready, missing = readiness(c)
  return 200, {
    success = true, message = message, campaign_id = c.campaign_id,
    name = c.name, status = c.status, is_launch_ready = ready,
    missing_requirements = missing, updated_at = c.updated_at,
  }
end

function M.update_campaign(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local body = req.json
  local errs = V.errors()
  local f = V.object(errs, array { "body" }, body, UPDATE_FIELDS)
  if not errs:empty() then return unprocessable(errs) end
  local launch = f.launch == true
  f.launch = nil
  local changes = next(body) ~= nil and (function()
    for k in pairs(body) do if k ~= "launch" then return true end end
    return false
  end)() or false
  if c.status == "ACTIVE" then
    if changes then
      return detail(400, "Campaign is ACTIVE and cannot be modified. Pause it first via POST /campaigns/"
        .. c.campaign_id .. "/pause, then update it.")
    end
    -- {"launch": true} (or an empty update) on an ACTIVE campaign changes
    -- nothing: answered as is, so that a retried launch is harmless.
    return update_answer(c, launch and "Campaign is already active" or "No changes")
  end
  if c.status == "COMPLETED" or c.status == "FAILED" then
    return detail(400, ("Campaign in %s status cannot be modified"):format(c.status))
  end
  -- window rules on the merged configuration
  local merged = {}
  for _, k in ipairs { "sending_window_start", "sending_window_start_minute",
    "sending_window_end", "sending_window_end_minute" } do
    merged[k] = f[k] ~= nil and f[k] or c[k]
  end
  window_errors(errs, merged)
  if not errs:empty() then return unprocessable(errs) end
  local rule = list_rules(f)
  if rule then return detail(400, rule) end
  if f.inbox_ids then
    local unknown, seen, uniq = {}, {}, array()
    for _, id in ipairs(f.inbox_ids) do
      if not srv.state.inboxes[id] then unknown[#unknown + 1] = id end
      if not seen[id] then seen[id] = true uniq[#uniq + 1] = id end
    end
    if #unknown > 0 then
      return detail(400, "Sender account(s) not found: " .. table.concat(unknown, ", "))
    end
    f.inbox_ids = uniq
  end
  if f.sequences then
    table.sort(f.sequences, function(a, b) return a.step_number < b.step_number end)
  end
  for k, v in pairs(f) do
    if v == null then
      c[k] = (k == "lead_mapping") and nil or null
    else
      c[k] = v
    end
  end
  if changes then touch(c) end
  local message = "Campaign updated successfully"
  if launch then
    local ready, missing = readiness(c)
    if ready then
      c.status = "ACTIVE"
      c.launched_at = c.launched_at or iso(os.time())
      touch(c)
      message = "Campaign launched successfully"
    else
      message = "Campaign is not ready to launch: missing " .. table.concat(missing, ", ")
    end
  end
  return update_answer(c, message)
end

local function state_answer(c, message)
  return 200, {
    success = true, message = message, campaign_id = c.campaign_id,
    name = c.name, status = c.status, updated_at = c.updated_at,
  }
end

function M.pause_campaign(srv, _req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  if c.status == "PAUSED" then return state_answer(c, "Campaign is already paused") end
  if c.status ~= "ACTIVE" then
    return detail(400, ("Only ACTIVE campaigns can be paused (campaign is %s)"):format(c.status))
  end
  c.status = "PAUSED"
  touch(c)
  return state_answer(c, "Campaign paused successfully")
end

function M.resume_campaign(srv, _req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  if c.status == "ACTIVE" then return state_answer(c, "Campaign is already active") end
  if c.status ~= "PAUSED" then
    return detail(400, ("Only PAUSED campaigns can be resumed (campaign is %s);"
      .. " launch a DRAFT with PUT {\"launch\": true}")
      :format(c.status))
  end
  local ready, missing = readiness(c)
  if not ready then
    return detail(400, "Campaign cannot be resumed: missing " .. table.concat(missing, ", "))
  end
  c.status = "ACTIVE"
  touch(c)
  return state_answer(c, "Campaign resumed successfully")
end

function M.delete_campaign(srv, _req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  if c.status ~= "DRAFT" and c.status ~= "PAUSED" then
    return detail(400, ("Campaign can only be deleted in DRAFT or PAUSED status (campaign is %s)")
      :format(c.status))
  end
  local st = srv.state
  st.campaigns[c.campaign_id] = nil
  for i, x in ipairs(st.campaign_list) do
    if x == c then table.remove(st.campaign_list, i) break end
  end
  for _, l in ipairs(c.leads.list) do st.leads[l.lead_id] = nil end
  return 200, { success = true, message = "Campaign deleted successfully", campaign_id = c.campaign_id }
end

return M
