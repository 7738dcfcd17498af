--- coldsend.sandbox.api: the ColdSend public API endpoints of the sandbox,
-- written against the API reference (shared/spec/coldsend-api.md) as the
-- server would implement it. Handlers take (srv, req, params) and return
-- status, body table [, extra headers].
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local csv = require "coldsend.sandbox.csv"

local M = {}

local array = json.array
local null = json.null
local is_null = V.is_null

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end
M.iso = iso

local function copy_array(t)
  local out = array()
  for i = 1, #(t or {}) do out[i] = t[i] end
  return out
end

local function deepcopy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deepcopy(x) end
  return setmetatable(out, getmetatable(v))
end

local function detail(status, msg) return status, { detail = msg } end

local function unprocessable(errs) return 422, { detail = errs.list } end

local function not_found(what) return 404, { detail = what .. " not found" } end

-- -------------------------------------------------------------------------
-- Schemas
-- -------------------------------------------------------------------------

local STATUSES = { "DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "FAILED" }
local TRIGGERS = { "NOT_OPENED", "NOT_REPLIED", "OPENED_BUT_NOT_REPLIED" }
local INBOX_TYPES = { "GOOGLE_WORKSPACE", "OUTLOOK_365", "CUSTOM_SMTP" }
local PROVIDER_MAX = { GOOGLE_WORKSPACE = 2000, OUTLOOK_365 = 10000, CUSTOM_SMTP = 100000 }

-- A list whose items are checked by item(errs, loc, x, spec).
local function list_of(item, item_spec)
  return function(errs, loc, v, spec)
    v = V.list(errs, loc, v, spec)
    if not v then return nil end
    local out, ok = array(), true
    for i, x in ipairs(v) do
      local cx = item(errs, V.loc(loc, i - 1), x, item_spec or { ge = spec.item_ge, le = spec.item_le })
      if cx == nil then ok = false end
      out[i] = cx
    end
    return ok and out or nil
  end
end
local int_list = list_of(V.int)
local uuid_list = list_of(V.uuid, {})

local function str_map(errs, loc, v)
  v = V.dict(errs, loc, v)
  if not v then return nil end
  local out, ok = {}, true
  for k, x in pairs(v) do
    local cx = V.str(errs, V.loc(loc, k), x, { min = 1, max = 255 })
    if cx == nil then ok = false end
    out[k] = cx
  end
  return ok and out or nil
end

local function lead_mapping(errs, loc, v)
  v = str_map(errs, loc, v)
  if not v then return nil end
  if not v.email then
    errs:add(V.loc(loc, "email"), "field required", "value_error.missing")
    return nil
  end
  return v
end

local VARIANT = {
  { name = "variant_name", check = V.str, min = 1, max = 50, pattern = "^%a+$", regex = "^[A-Za-z]+$", default = "A" },
  { name = "variant_label", check = V.str, max = 100, nullable = true },
  { name = "subject_template", check = V.str, min = 1, max = 500, required = true },
  { name = "email_content", check = V.str, min = 10, max = 100000, required = true },
  { name = "distribution_percent", check = V.int, ge = 0, le = 100, default = 100 },
}

-- An object item checked against fields, then finished by fixup(cv).
local function object_of(fields, fixup)
  return function(errs, loc, x)
    if not V.dict(errs, loc, x) then return nil end
    local before = #errs.list
    local cv = V.object(errs, loc, x, fields)
    if #errs.list > before then return nil end
    fixup(cv)
    return cv
  end
end

local variant_list = list_of(object_of(VARIANT, function(cv)
  cv.variant_name = cv.variant_name:upper()
  if cv.variant_label == nil then cv.variant_label = null end
end), {})

local SEQUENCE = {
  { name = "step_number", check = V.int, ge = 2, le = 4, required = true },
  { name = "trigger_type", check = V.enum, values = TRIGGERS, required = true },
  { name = "wait_days", check = V.int, ge = 1, le = 30, required = true },
  { name = "enable_unsubscribe", check = V.bool, nullable = true },
  { name = "variants", check = variant_list, min = 1, required = true },
}

local sequence_list = list_of(object_of(SEQUENCE, function(cv)
  if cv.enable_unsubscribe == nil then cv.enable_unsubscribe = null end
end), {})

-- Fields common to create and update.
local CAMPAIGN_FIELDS = {
  { name = "name", check = V.str, min = 8, max = 255 },
  { name = "daily_limit_per_inbox", check = V.int, ge = 1, le = 100, nullable = true },
  { name = "start_date", check = V.datetime, nullable = true },
  { name = "timezone", check = V.timezone },
  { name = "sending_days", check = int_list, min = 1, max = 7, item_ge = 1, item_le = 7 },
  { name = "sending_window_start", check = V.int, ge = 0, le = 23 },
  { name = "sending_window_start_minute", check = V.int, ge = 0, le = 59 },
  { name = "sending_window_end", check = V.int, ge = 1, le = 24 },
  { name = "sending_window_end_minute", check = V.int, ge = 0, le = 59 },
  { name = "enable_tracking", check = V.bool },
  { name = "enable_unsubscribe", check = V.bool },
  { name = "ramp_up_enabled", check = V.bool },
  { name = "ramp_up_increment", check = V.int, ge = 1, le = 100000 },
  { name = "ramp_up_max_limit", check = V.int, ge = 1, le = 100000 },
}

local function fields_for(kind)
  local out = {}
  for i, f in ipairs(CAMPAIGN_FIELDS) do
    local g = {}
    for k, v in pairs(f) do g[k] = v end
    if kind == "create" and g.name == "name" then g.required = true end
    if kind == "update" and not g.nullable then g.null_means_unset = true end
    out[i] = g
  end
  if kind == "update" then
    out[#out + 1] = { name = "lead_mapping", check = lead_mapping, nullable = true }
    out[#out + 1] = { name = "inbox_ids", check = uuid_list, min = 1, null_means_unset = true }
    out[#out + 1] = { name = "variants", check = variant_list, min = 1, null_means_unset = true }
    out[#out + 1] = { name = "sequences", check = sequence_list, null_means_unset = true }
    out[#out + 1] = { name = "launch", check = V.bool, null_means_unset = true }
  end
  return out
end
-- The field bounds, for the contract spec that probes them against the client's.
M.SCHEMA = { campaign = CAMPAIGN_FIELDS, variant = VARIANT, sequence = SEQUENCE }

local CREATE_FIELDS = fields_for("create")
local UPDATE_FIELDS = fields_for("update")

local DEFAULTS = {
  daily_limit_per_inbox = null, start_date = null, timezone = "America/New_York",
  sending_window_start = 9, sending_window_start_minute = 0,
  sending_window_end = 17, sending_window_end_minute = 0,
  enable_tracking = false, enable_unsubscribe = true,
  ramp_up_enabled = false, ramp_up_increment = 50, ramp_up_max_limit = 500,
}

-- Cross-field rules. Window problems are field errors (422, pydantic root
-- validator style, located on the end field); list rules are 400 strings.
local function window_errors(errs, c)
  local s = c.sending_window_start * 60 + c.sending_window_start_minute
  local e = c.sending_window_end * 60 + c.sending_window_end_minute
  if c.sending_window_end == 24 and c.sending_window_end_minute ~= 0 then
    errs:add(array { "body", "sending_window_end_minute" },
      "sending_window_end_minute must be 0 when sending_window_end is 24", "value_error")
  elseif e <= s then
    errs:add(array { "body", "sending_window_end" },
      "sending window end must be after sending window start", "value_error")
  end
end

local function variant_rules(list, where)
  if #list > 4 then
    return ("Maximum 4 variants allowed%s (got %d)"):format(where, #list)
  end
  local sum, seen = 0, {}
  for _, v in ipairs(list) do
    sum = sum + v.distribution_percent
    if seen[v.variant_name] then
      return ("Duplicate variant name '%s'%s"):format(v.variant_name, where)
    end
    seen[v.variant_name] = true
  end
  if sum ~= 100 then
    return ("Variant distribution_percent values must sum to 100%s (got %d)"):format(where, sum)
  end
end

local function list_rules(fields)
  if fields.variants then
    local msg = variant_rules(fields.variants, "")
    if msg then return msg end
  end
  if fields.sequences then
    if #fields.sequences > 3 then
      return ("Maximum 3 follow-up sequences allowed (got %d)"):format(#fields.sequences)
    end
    local steps = {}
    for _, s in ipairs(fields.sequences) do
      if steps[s.step_number] then
        return ("Duplicate sequence step_number %d"):format(s.step_number)
      end
      steps[s.step_number] = true
      local msg = variant_rules(s.variants, (" in sequence step %d"):format(s.step_number))
      if msg then return msg end
    end
  end
end

-- -------------------------------------------------------------------------
-- Campaign views
-- -------------------------------------------------------------------------

local function readiness(srv, c)
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

local function frac(a, b)
  if b == 0 then return 0 end
  return math.floor(a / b * 10000 + 0.5) / 10000
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
  local ready, missing = readiness(srv, c)
  v.is_launch_ready = ready
  v.missing_requirements = missing
  return v
end

local function find_campaign(srv, id)
  local c = srv.state.campaigns[id:lower()]
  if not c then return nil, not_found("Campaign") end
  return c
end

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

local function query_int(errs, q, name, default, ge, le)
  local v = q[name]
  if v == nil or v == "" then return default end
  local n = v:match("^%s*[+-]?%d+%s*$") and tonumber(v)
  if not n then
    errs:add(array { "query", name }, "value is not a valid integer", "type_error.integer")
    return nil
  end
  return V.int(errs, array { "query", name }, n, { ge = ge, le = le })
end
M.query_int = query_int

function M.paginate(list, page, limit)
  local total = #list
  local pages = math.ceil(total / limit)
  local items = array()
  for i = (page - 1) * limit + 1, math.min(total, page * limit) do
    items[#items + 1] = list[i]
  end
  return items, {
    page = page, limit = limit, total = total, pages = pages,
    has_next = page < pages, has_prev = page > 1,
  }
end

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
  local items, pagination = M.paginate(out, page, limit)
  for i, c in ipairs(items) do items[i] = list_item(c) end
  return 200, {
    success = true, message = "Campaigns retrieved successfully",
    campaigns = items, pagination = pagination,
  }
end

-- -------------------------------------------------------------------------
-- C3 get, C4 update, C5 pause, C6 resume, C7 delete
-- -------------------------------------------------------------------------

function M.get_campaign(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local v = full_view(srv, c)
  v.success = true
  v.message = "Campaign retrieved successfully"
  return 200, v
end

local function update_answer(srv, c, message)
  local ready, missing = readiness(srv, c)
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
    return update_answer(srv, c, launch and "Campaign is already active" or "No changes")
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
    local ready, missing = readiness(srv, c)
    if ready then
      c.status = "ACTIVE"
      c.launched_at = c.launched_at or iso(os.time())
      touch(c)
      message = "Campaign launched successfully"
    else
      message = "Campaign is not ready to launch: missing " .. table.concat(missing, ", ")
    end
  end
  return update_answer(srv, c, message)
end

local function state_answer(c, message)
  return 200, {
    success = true, message = message, campaign_id = c.campaign_id,
    name = c.name, status = c.status, updated_at = c.updated_at,
  }
end

function M.pause_campaign(srv, req, p)
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

function M.resume_campaign(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  if c.status == "ACTIVE" then return state_answer(c, "Campaign is already active") end
  if c.status ~= "PAUSED" then
    return detail(400, ("Only PAUSED campaigns can be resumed (campaign is %s); launch a DRAFT with PUT {\"launch\": true}")
      :format(c.status))
  end
  local ready, missing = readiness(srv, c)
  if not ready then
    return detail(400, "Campaign cannot be resumed: missing " .. table.concat(missing, ", "))
  end
  c.status = "ACTIVE"
  touch(c)
  return state_answer(c, "Campaign resumed successfully")
end

function M.delete_campaign(srv, req, p)
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

-- -------------------------------------------------------------------------
-- Leads
-- -------------------------------------------------------------------------

local function lead_view(l, full)
  local v = {
    lead_id = l.lead_id, batch_id = l.batch_id or null, email = l.email,
    first_name = l.first_name or null, last_name = l.last_name or null,
    company = l.company or null, status = l.status,
    -- what the simulation (coldsend.sandbox.simulate) records, else the defaults
    last_contacted_at = l.last_contacted_at or null, opened_at = l.opened_at or null,
    replied_at = l.replied_at or null,
    created_at = l.created_at, custom_fields = deepcopy(l.custom_fields),
    sequence_step = l.sequence_step or 0, email_opened = l.email_opened or false,
    email_replied = l.email_replied or false, unsubscribed = l.unsubscribed or false,
    delivery_status = l.delivery_status or null,
  }
  if full then
    v.email_interactions = array()
    v.replies = array()
  end
  return v
end

local function add_lead(srv, c, fields, batch_id)
  local st = srv.state
  local l = {
    lead_id = srv:uuid(), batch_id = batch_id, email = fields.email,
    first_name = fields.first_name, last_name = fields.last_name,
    company = fields.company, status = "PENDING", created_at = iso(os.time()),
    custom_fields = fields.custom_fields or {}, campaign_id = c.campaign_id,
  }
  c.leads.list[#c.leads.list + 1] = l
  c.leads.by_email[l.email:lower()] = l
  st.leads[l.lead_id] = l
  return l
end

local function nullable_str(errs, loc, v, spec)
  return V.str(errs, loc, v, spec)
end

local function custom_fields(errs, loc, v)
  v = V.dict(errs, loc, v)
  if not v then return nil end
  for k, x in pairs(v) do
    local t = type(x)
    if not (t == "string" or t == "number" or t == "boolean" or x == null) then
      errs:add(V.loc(loc, k), "custom field values must be strings, numbers, booleans or null",
        "type_error.custom_field")
      return nil
    end
  end
  return v
end

local LEAD_FIELDS = {
  { name = "email", check = V.email, required = true, max = 255 },
  { name = "first_name", check = nullable_str, max = 255, nullable = true },
  { name = "last_name", check = nullable_str, max = 255, nullable = true },
  { name = "company", check = nullable_str, max = 255, nullable = true },
  { name = "custom_fields", check = custom_fields },
}

function M.add_manual_lead(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local errs = V.errors()
  local f = V.object(errs, array { "body" }, req.json, LEAD_FIELDS)
  if not errs:empty() then return unprocessable(errs) end
  if c.leads.by_email[f.email:lower()] then
    return detail(409, ("Lead with email %s already exists in this campaign"):format(f.email))
  end
  local cf = {}
  for k, v in pairs(f.custom_fields or {}) do
    if v ~= null then cf[k] = v end
  end
  f.custom_fields = cf
  for _, k in ipairs { "first_name", "last_name", "company" } do
    if f[k] == null then f[k] = nil end
  end
  local l = add_lead(srv, c, f, nil)
  local v = lead_view(l)
  v.success = true
  v.message = "Lead added successfully"
  return 201, v
end

local function find_lead(srv, c, id)
  local l = srv.state.leads[id:lower()]
  if not l or l.campaign_id ~= c.campaign_id then return nil, not_found("Lead") end
  return l
end

function M.get_lead(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local l, s, b = find_lead(srv, c, p.lead_id)
  if not l then return s, b end
  local v = lead_view(l, true)
  v.success = true
  v.message = "Lead retrieved successfully"
  return 200, v
end

local LEAD_UPDATE = {
  { name = "first_name", check = nullable_str, max = 255, nullable = true },
  { name = "last_name", check = nullable_str, max = 255, nullable = true },
  { name = "company", check = nullable_str, max = 255, nullable = true },
  { name = "custom_fields", check = custom_fields, nullable = true },
}

function M.update_lead(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local l, s, b = find_lead(srv, c, p.lead_id)
  if not l then return s, b end
  local errs = V.errors()
  local body = req.json
  if body.email ~= nil then
    errs:add(array { "body", "email" }, "email cannot be updated", "value_error.not_updatable")
  end
  local f = V.object(errs, array { "body" }, body, LEAD_UPDATE)
  if not errs:empty() then return unprocessable(errs) end
  for _, k in ipairs { "first_name", "last_name", "company" } do
    if f[k] == null then l[k] = nil elseif f[k] ~= nil then l[k] = f[k] end
  end
  if f.custom_fields and f.custom_fields ~= null then
    -- JSON merge patch (RFC 7386) on the custom fields
    for k, v in pairs(f.custom_fields) do
      if v == null then l.custom_fields[k] = nil else l.custom_fields[k] = v end
    end
  end
  local v = lead_view(l)
  v.success = true
  v.message = "Lead updated successfully"
  return 200, v
end

function M.delete_lead(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local l, s, b = find_lead(srv, c, p.lead_id)
  if not l then return s, b end
  if l.status ~= "PENDING" then
    return detail(400, ("Only PENDING leads can be deleted (lead is %s)"):format(l.status))
  end
  srv.state.leads[l.lead_id] = nil
  c.leads.by_email[l.email:lower()] = nil
  for i, x in ipairs(c.leads.list) do
    if x == l then table.remove(c.leads.list, i) break end
  end
  return 200, { success = true, message = "Lead deleted successfully", lead_id = l.lead_id }
end

function M.list_leads(srv, req, p)
  local c, e1, e2 = find_campaign(srv, p.campaign_id)
  if not c then return e1, e2 end
  local q = req.query
  local errs = V.errors()
  local page = query_int(errs, q, "page", 1, 1)
  local limit = query_int(errs, q, "limit", 20, 1, 100)
  if not errs:empty() then return unprocessable(errs) end
  local status = q.status and q.status ~= "" and q.status:upper() or nil
  local search = q.search and q.search ~= "" and q.search:lower() or nil
  local out = {}
  for _, l in ipairs(c.leads.list) do
    if (not status or l.status == status) and (not search or l.email:lower():find(search, 1, true)) then
      out[#out + 1] = l
    end
  end
  local items, pagination = M.paginate(out, page, limit)
  for i, l in ipairs(items) do items[i] = lead_view(l) end
  return 200, { success = true, message = "Leads retrieved successfully", leads = items,
    pagination = pagination }
end

-- -------------------------------------------------------------------------
-- L1 upload, L2 progress
-- -------------------------------------------------------------------------

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

function M.upload_progress(srv, req, p)
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

-- -------------------------------------------------------------------------
-- Sender accounts
-- -------------------------------------------------------------------------

local SMTP_FIELDS = {
  { name = "email_address", check = V.email, required = true, min = 5, max = 255 },
  { name = "display_name", check = V.str, required = true, min = 1, max = 255 },
  { name = "inbox_type", check = V.enum, values = INBOX_TYPES, required = true },
  { name = "smtp_host", check = V.str, required = true, min = 1, max = 255 },
  { name = "smtp_port", check = V.int, required = true, ge = 1, le = 65535 },
  { name = "smtp_username", check = V.str, required = true, min = 1, max = 255 },
  { name = "smtp_password", check = V.str, required = true, min = 1, max = 1024 },
  { name = "imap_host", check = V.str, required = true, min = 1, max = 255 },
  { name = "imap_port", check = V.int, required = true, ge = 1, le = 65535 },
  { name = "imap_username", check = V.str, required = true, min = 1, max = 255 },
  { name = "imap_password", check = V.str, required = true, min = 1, max = 1024 },
  { name = "daily_limit", check = V.int, ge = 1, le = 100000, default = 100 },
  { name = "smtp_use_tls", check = V.bool, default = true },
  { name = "imap_use_ssl", check = V.bool, default = true },
}

local function inbox_view(ib)
  return {
    inbox_id = ib.inbox_id, email_address = ib.email_address,
    display_name = ib.display_name, inbox_type = ib.inbox_type,
    daily_limit = ib.daily_limit, overall_status = ib.overall_status,
    created_at = ib.created_at,
  }
end

function M.create_smtp(srv, req)
  local errs = V.errors()
  local f = V.object(errs, array { "body" }, req.json, SMTP_FIELDS)
  if errs:empty() and f.daily_limit > PROVIDER_MAX[f.inbox_type] then
    errs:add(array { "body", "daily_limit" },
      ("ensure this value is less than or equal to %d"):format(PROVIDER_MAX[f.inbox_type]),
      "value_error.number.not_le", { limit_value = PROVIDER_MAX[f.inbox_type] })
  end
  if not errs:empty() then return unprocessable(errs) end
  local st = srv.state
  if st.inbox_by_email[f.email_address:lower()] then
    return detail(409, ("Sender account with email %s already exists"):format(f.email_address))
  end
  -- a host under the reserved .invalid TLD simulates a failed connection test
  for _, h in ipairs { "smtp_host", "imap_host" } do
    if f[h]:lower():match("%.invalid$") or f[h]:lower() == "invalid" then
      return detail(400, ("%s connection failed: could not connect to %s:%d")
        :format(h == "smtp_host" and "SMTP" or "IMAP", f[h], h == "smtp_host" and f.smtp_port or f.imap_port))
    end
  end
  local ib = {
    inbox_id = srv:uuid(), email_address = f.email_address, display_name = f.display_name,
    inbox_type = f.inbox_type, daily_limit = f.daily_limit, overall_status = "ACTIVE",
    created_at = iso(os.time()),
  }
  st.inboxes[ib.inbox_id] = ib
  st.inbox_by_email[f.email_address:lower()] = ib
  st.inbox_list[#st.inbox_list + 1] = ib
  local v = inbox_view(ib)
  v.success = true
  v.message = "SMTP inbox created successfully"
  return 201, v
end

function M.list_inboxes(srv, req)
  local errs = V.errors()
  local page = query_int(errs, req.query, "page", 1, 1)
  local limit = query_int(errs, req.query, "limit", 20, 1, 100)
  if not errs:empty() then return unprocessable(errs) end
  local items, pagination = M.paginate(srv.state.inbox_list, page, limit)
  for i, ib in ipairs(items) do items[i] = inbox_view(ib) end
  return 200, { success = true, message = "Sender accounts retrieved successfully",
    sender_accounts = items, pagination = pagination }
end

function M.get_inbox(srv, req, p)
  local ib = srv.state.inboxes[p.inbox_id:lower()]
  if not ib then return not_found("Sender account") end
  local v = inbox_view(ib)
  v.success = true
  v.message = "Sender account retrieved successfully"
  return 200, v
end

function M.delete_inbox(srv, req, p)
  local st = srv.state
  local ib = st.inboxes[p.inbox_id:lower()]
  if not ib then return not_found("Sender account") end
  for _, c in ipairs(st.campaign_list) do
    for _, id in ipairs(c.inbox_ids) do
      if id == ib.inbox_id then
        return detail(400, ("Sender account is in use by campaign %s"):format(c.campaign_id))
      end
    end
  end
  st.inboxes[ib.inbox_id] = nil
  st.inbox_by_email[ib.email_address:lower()] = nil
  for i, x in ipairs(st.inbox_list) do
    if x == ib then table.remove(st.inbox_list, i) break end
  end
  return 200, { success = true, message = "Sender account deleted successfully", inbox_id = ib.inbox_id }
end

-- -------------------------------------------------------------------------
-- Analytics
-- -------------------------------------------------------------------------

local function date_param(errs, q, name)
  local v = q[name]
  if v == nil or v == "" then return nil end
  local y, m, d = V.parse_date(v)
  if not y then
    errs:add(array { "query", name }, "invalid date format", "value_error.date")
    return nil
  end
  return ("%04d-%02d-%02d"):format(y, m, d)
end

function M.analytics_campaigns(srv, req)
  local q = req.query
  local errs = V.errors()
  local status = q.status and q.status ~= "" and q.status or nil
  if status then V.enum(errs, array { "query", "status" }, status:upper(), { values = STATUSES }) end
  local from = date_param(errs, q, "from_date")
  local to = date_param(errs, q, "to_date")
  if not errs:empty() then return unprocessable(errs) end
  local items = array()
  local sends, orate, rrate, brate, nrated = 0, 0, 0, 0, 0
  for _, c in ipairs(srv.state.campaign_list) do
    local launched = c.launched_at and c.launched_at:sub(1, 10)
    local ok = (not status or c.status == status:upper())
      and (not from or (launched and launched >= from))
      and (not to or (launched and launched <= to))
    if ok then
      local s = c.stats
      local it = {
        campaign_id = c.campaign_id, campaign_name = c.name, status = c.status,
        total_leads = #c.leads.list, total_sent = s.sent, total_opened = s.opened,
        total_replied = s.replied, total_bounced = s.bounced,
        open_rate = frac(s.opened, s.sent), reply_rate = frac(s.replied, s.sent),
        bounce_rate = frac(s.bounced, s.sent), created_at = c.created_at,
      }
      items[#items + 1] = it
      sends = sends + s.sent
      if s.sent > 0 then
        nrated = nrated + 1
        orate, rrate, brate = orate + it.open_rate, rrate + it.reply_rate, brate + it.bounce_rate
      end
    end
  end
  local function avg(x) return nrated == 0 and 0 or math.floor(x / nrated * 10000 + 0.5) / 10000 end
  return 200, {
    success = true, message = "Campaign analytics retrieved successfully",
    workspace_kpis = { total_campaigns = #items, total_sends = sends,
      avg_open_rate = avg(orate), avg_reply_rate = avg(rrate), avg_bounce_rate = avg(brate) },
    campaigns = items,
  }
end

local function day_string(t) return os.date("!%Y-%m-%d", t) end

local function day_time(s)
  local y, m, d = V.parse_date(s)
  -- noon UTC of that day, computed without the local zone
  local t = os.time { year = y, month = m, day = d, hour = 12 }
  local lt, ut = os.date("*t", t), os.date("!*t", t)
  lt.isdst = false
  return t + (os.time(lt) - os.time(ut))
end

function M.analytics_timeline(srv, req)
  local q = req.query
  local errs = V.errors()
  local from = date_param(errs, q, "from_date")
  local to = date_param(errs, q, "to_date")
  if not errs:empty() then return unprocessable(errs) end
  -- the sandbox's today: later than the real one after simulated days
  to = to or require("coldsend.sandbox.simulate").today(srv)
  from = from or day_string(day_time(to) - 90 * 86400)
  if from > to then
    return detail(400, "from_date must be on or before to_date")
  end
  local t0, t1 = day_time(from), day_time(to)
  if (t1 - t0) / 86400 > 366 then
    return detail(400, "The timeline covers at most 366 days")
  end
  local timeline = array()
  local t = t0
  while day_string(t) <= to do
    local d = day_string(t)
    local p = { date = d, sent = 0, opened = 0, replied = 0, bounced = 0 }
    for _, c in ipairs(srv.state.campaign_list) do
      local x = c.daily[d]
      if x then
        p.sent, p.opened = p.sent + x.sent, p.opened + x.opened
        p.replied, p.bounced = p.replied + x.replied, p.bounced + x.bounced
      end
    end
    p.open_rate = frac(p.opened, p.sent)
    p.reply_rate = frac(p.replied, p.sent)
    p.bounce_rate = frac(p.bounced, p.sent)
    timeline[#timeline + 1] = p
    t = t + 86400
  end
  return 200, { success = true, message = "Timeline retrieved successfully",
    from_date = from, to_date = to, timeline = timeline }
end

-- -------------------------------------------------------------------------
-- Routes
-- -------------------------------------------------------------------------

-- {method, path with {params}, handler, scope, body = "json"|"multipart"|nil}
M.ROUTES = {
  { "POST", "/campaigns", M.create_campaign, "campaigns:create", body = "json" },
  { "GET", "/campaigns", M.list_campaigns, "campaigns:read" },
  { "GET", "/campaigns/{campaign_id}", M.get_campaign, "campaigns:read" },
  { "PUT", "/campaigns/{campaign_id}", M.update_campaign, "campaigns:update", body = "json" },
  { "DELETE", "/campaigns/{campaign_id}", M.delete_campaign, "campaigns:delete" },
  { "POST", "/campaigns/{campaign_id}/pause", M.pause_campaign, "campaigns:pause" },
  { "POST", "/campaigns/{campaign_id}/resume", M.resume_campaign, "campaigns:activate" },
  { "POST", "/campaigns/{campaign_id}/leads", M.upload_leads, "leads:create", body = "multipart" },
  { "GET", "/campaigns/{campaign_id}/leads", M.list_leads, "leads:read" },
  { "POST", "/campaigns/{campaign_id}/leads/manual", M.add_manual_lead, "leads:create", body = "json" },
  { "GET", "/campaigns/{campaign_id}/leads/upload/{job_id}", M.upload_progress, "leads:read" },
  { "GET", "/campaigns/{campaign_id}/leads/{lead_id}", M.get_lead, "leads:read" },
  { "PUT", "/campaigns/{campaign_id}/leads/{lead_id}", M.update_lead, "leads:create", body = "json" },
  { "DELETE", "/campaigns/{campaign_id}/leads/{lead_id}", M.delete_lead, "leads:delete" },
  { "POST", "/sender-accounts/smtp", M.create_smtp, "sender_accounts:create", body = "json" },
  { "GET", "/sender-accounts", M.list_inboxes, "sender_accounts:read" },
  { "GET", "/sender-accounts/{inbox_id}", M.get_inbox, "sender_accounts:read" },
  { "DELETE", "/sender-accounts/{inbox_id}", M.delete_inbox, "sender_accounts:delete" },
  { "GET", "/analytics/campaigns", M.analytics_campaigns, "campaigns:read" },
  { "GET", "/analytics/campaigns/timeline", M.analytics_timeline, "campaigns:read" },
}

local function split(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  return segs
end

for _, r in ipairs(M.ROUTES) do
  r.method, r.path, r.handler, r.scope = r[1], r[2], r[3], r[4]
  r.segs = split(r.path)
  r.literals = 0
  for _, s in ipairs(r.segs) do if not s:match("^{") then r.literals = r.literals + 1 end end
end
-- literal segments win over parameters (".../leads/manual" before ".../leads/{lead_id}")
table.sort(M.ROUTES, function(a, b)
  if #a.segs ~= #b.segs then return #a.segs < #b.segs end
  return a.literals > b.literals
end)

--- Finds the route of (method, path): route, params; or nil, allowed
-- methods (405) or nil (404).
function M.match(method, path)
  local segs = split(path)
  if path:sub(-1) == "/" and #path > 1 then return nil end
  local allowed
  for _, r in ipairs(M.ROUTES) do
    if #r.segs == #segs then
      local params, ok = {}, true
      for i, s in ipairs(r.segs) do
        local pname = s:match("^{(.+)}$")
        if pname then params[pname] = segs[i]
        elseif s ~= segs[i] then ok = false break end
      end
      if ok then
        if r.method == method then return r, params end
        allowed = allowed or {}
        allowed[#allowed + 1] = r.method
      end
    end
  end
  return nil, allowed
end

return M
