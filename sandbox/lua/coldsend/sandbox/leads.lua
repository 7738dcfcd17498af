--- coldsend.sandbox.leads: a campaign's lead endpoints (add one, get,
-- update, delete, list) and the lead's view; the CSV upload is in
-- coldsend.sandbox.uploads.
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local campaigns = require "coldsend.sandbox.campaigns"
local E = require "coldsend.sandbox.endpoint"

local array, null = json.array, json.null
local iso, deepcopy = E.iso, E.deepcopy
local detail, unprocessable, not_found = E.detail, E.unprocessable, E.not_found
local query_int, paginate = E.query_int, E.paginate
local find_campaign = campaigns.find_campaign

local M = {}

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
M.add_lead = add_lead

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

function M.get_lead(srv, _req, p)
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

function M.delete_lead(srv, _req, p)
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
  local items, pagination = paginate(out, page, limit)
  for i, l in ipairs(items) do items[i] = lead_view(l) end
  return 200, { success = true, message = "Leads retrieved successfully", leads = items,
    pagination = pagination }
end

return M
