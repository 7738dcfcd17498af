--- coldsend.sandbox.inboxes: the sender-account endpoints (create an SMTP
-- inbox, list, get, delete) and the provider's daily limits.
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local E = require "coldsend.sandbox.endpoint"

local array = json.array
local iso = E.iso
local detail, unprocessable, not_found = E.detail, E.unprocessable, E.not_found
local query_int, paginate = E.query_int, E.paginate

local M = {}

local INBOX_TYPES = { "GOOGLE_WORKSPACE", "OUTLOOK_365", "CUSTOM_SMTP" }
local PROVIDER_MAX = { GOOGLE_WORKSPACE = 2000, OUTLOOK_365 = 10000, CUSTOM_SMTP = 100000 }

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
  local items, pagination = paginate(srv.state.inbox_list, page, limit)
  for i, ib in ipairs(items) do items[i] = inbox_view(ib) end
  return 200, { success = true, message = "Sender accounts retrieved successfully",
    sender_accounts = items, pagination = pagination }
end

function M.get_inbox(srv, _req, p)
  local ib = srv.state.inboxes[p.inbox_id:lower()]
  if not ib then return not_found("Sender account") end
  local v = inbox_view(ib)
  v.success = true
  v.message = "Sender account retrieved successfully"
  return 200, v
end

function M.delete_inbox(srv, _req, p)
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

return M
