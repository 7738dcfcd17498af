--- coldsend.resources: the client's calls on everything but one campaign
-- handle: the campaign list (a page, or every page), cs:request and its path
-- check, single leads (get, update), SMTP inboxes and analytics.
-- @module coldsend.resources
local core = require "coldsend.core"
local writes = require "coldsend.writes"
local options = require "coldsend.options"
local loop = require "coldsend.request_loop"

local M = {}

local type, pairs, tostring, error = type, pairs, tostring, error
local format = string.format
local check_call_options, check_id = options.check_call_options, options.check_id
local new_error, decorate, call = loop.new_error, loop.decorate, loop.call
local protocol_error, expect_table = loop.protocol_error, loop.expect_table
local Client = require("coldsend.client").Client
local shown_value = options.shown

local LIST_QUERY = {
  page = "integer", limit = "integer", status = "string", search = "string",
  sort_by = "string", sort_order = "string", days = "integer",
}
local STATUSES = { DRAFT = true, ACTIVE = true, PAUSED = true, COMPLETED = true, FAILED = true }

local function check_list_query(what, query, allowed)
  if query == nil then return {} end
  if type(query) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", what, type(query)), 3)
  end
  local q = {}
  for k, v in pairs(query) do
    local t = (allowed or LIST_QUERY)[k]
    if not t then error(format("unknown query field '%s' for %s", tostring(k), what), 3) end
    if t == "integer" and (type(v) ~= "number" or v ~= math.floor(v) or v < 1) then
      error(format("bad value for '%s' (integer >= 1 expected, got %s)", k,
        v ~= v and "nan" or tostring(v)), 3)
    elseif t == "string" and type(v) ~= "string" then
      error(format("bad value for '%s' (string expected, got %s)", k, type(v)), 3)
    end
    q[k] = v
  end
  if q.limit and q.limit > 100 then
    error(format("bad value for 'limit' (integer 1..100 expected, got %s)", tostring(q.limit)), 3)
  end
  if q.status and not STATUSES[q.status] then
    error(format("bad value for 'status' (DRAFT, ACTIVE, PAUSED, COMPLETED or FAILED expected, got %q)",
      q.status), 3)
  end
  if q.sort_order and q.sort_order ~= "asc" and q.sort_order ~= "desc" then
    error(format("bad value for 'sort_order' (asc or desc expected, got %q)", q.sort_order), 3)
  end
  return q
end

local function list_page(self, query, opts)
  local req = core.build_request(self.base_url, "GET", "/campaigns", nil, query)
  local data, err = self:_send(req, opts)
  if not data then return nil, err end
  local items, perr = expect_table(req, data, "campaigns", "array")
  if not items then return nil, perr end
  local page
  page, perr = expect_table(req, data, "pagination", "object")
  if not page then return nil, perr end
  return data
end

--- One page of campaigns: {campaigns = {...}, pagination = {...}}.
function Client:list_campaigns(query, opts)
  check_call_options(opts)
  return list_page(self, check_list_query("list_campaigns", query), opts)
end

--- Iterates over every campaign of every page; raises the error object.
function Client:each_campaign(query, opts)
  check_call_options(opts)
  local q = check_list_query("each_campaign", query)
  q.page = q.page or 1
  q.limit = q.limit or 100
  local items, i, done = nil, 0, false
  local seen_first = {}
  return function()
    while true do
      if items and i < #items then
        i = i + 1
        return items[i]
      end
      if done then return nil end
      local data, err = list_page(self, q, opts)
      if not data then error(err, 0) end
      items, i = data.campaigns, 0
      local p = data.pagination
      local first = items[1] and items[1].campaign_id
      if (p.page ~= nil and p.page ~= q.page) or (first and seen_first[first]) then
        error(decorate(new_error { code = "protocol",
          message = format("page %d repeats an earlier page; stopping instead of looping", q.page) },
          { method = "GET", url = self.base_url .. "/campaigns" }, 1), 0)
      end
      if first then seen_first[first] = true end
      if p.has_next == true and #items > 0 then
        q.page = q.page + 1
      else
        done = true
      end
    end
  end
end

local METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true }

-- What is wrong with a path for cs:request, or nil. The path must stay under
-- the base URL whatever the server or a proxy decodes: dot segments are
-- looked for after percent-decoding (%2e%2e, %2F) and with path parameters
-- (..;x); the query goes in the query argument, so ? and # are refused.
local function path_problem(path)
  if type(path) ~= "string" then return "a string" end
  if path:sub(1, 1) ~= "/" then return "it must start with /" end
  if path:find("[?#]") then return "no ? or # (pass the query as argument #4)" end
  if path:find("[%s%c\\]") or path:find("://", 1, true) then
    return "no spaces, control characters, backslashes or URLs"
  end
  if path:gsub("%%%x%x", ""):find("%", 1, true) then
    return "every % must start an escape %XX"
  end
  -- decoded until nothing changes: a front end may decode twice (%252e)
  local decoded, n = path, 1
  while n > 0 do
    decoded, n = decoded:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  if decoded:find("[%c\\]") then
    return "no encoded control characters or backslashes"
  end
  for seg in (decoded .. "/"):gmatch("/([^/]*)") do
    local name = seg:match("^([^;]*)")
    if name == "." or name == ".." then return "no . or .. segments, even encoded" end
  end
end

--- Any other call: cs:request("GET", "/domains", nil, {page = 2}).
function Client:request(method, path, body, query, opts)
  if not METHODS[method] then
    error(format("bad argument #1 to 'request' (GET, POST, PUT, DELETE or PATCH expected, got %s)",
      tostring(method)), 2)
  end
  local why = path_problem(path)
  if why then
    error(format("bad argument #2 to 'request' (path like /campaigns expected, %s; got %s)", why,
      type(path) == "string" and format("%q", path) or type(path)), 2)
  end
  if body ~= nil and type(body) ~= "table" then
    error(format("bad argument #3 to 'request' (table expected, got %s)", type(body)), 2)
  end
  if query ~= nil and type(query) ~= "table" then
    error(format("bad argument #4 to 'request' (table expected, got %s)", type(query)), 2)
  end
  return call(self, method, path, body, query, opts)
end

-- ---------------------------------------------------------------------
-- leads, inboxes, analytics

--- GET /campaigns/{id}/leads/{lead_id}
function Client:get_lead(campaign_id, lead_id, opts)
  check_id("get_lead", campaign_id, 1)
  check_id("get_lead", lead_id, 2)
  return call(self, "GET", "/campaigns/" .. campaign_id .. "/leads/" .. lead_id, nil, nil, opts)
end

local LEAD_UPDATE = { first_name = true, last_name = true, company = true, custom_fields = true }

--- PUT /campaigns/{id}/leads/{lead_id}: first_name, last_name, company,
-- custom_fields (merge-patch: a key set to coldsend.null is removed).
function Client:update_lead(campaign_id, lead_id, fields, opts)
  check_id("update_lead", campaign_id, 1)
  check_id("update_lead", lead_id, 2)
  if type(fields) ~= "table" then
    error(format("bad argument #3 to 'update_lead' (table expected, got %s)", type(fields)), 2)
  end
  for k, v in pairs(fields) do
    if not LEAD_UPDATE[k] then
      error(format("no field '%s' in lead update (first_name, last_name, company, "
        .. "custom_fields expected)", tostring(k)), 2)
    end
    if k == "custom_fields" then
      local why, kind = require("coldsend.single_lead").custom_fields_problem(v, true)
      if kind == "type" then error(why, 2) end
    elseif type(v) ~= "string" or #v > 255 or v:find("%z") then
      error(format("bad value for '%s' (string of 0..255 characters expected, got %s)",
        k, type(v) == "string" and format("%q", v:sub(1, 40)) or type(v)), 2)
    end
  end
  -- a bad datum (invalid UTF-8, a number that would not go out exactly)
  local problem = require("coldsend.single_lead").lead_problem(fields)
  if problem then
    return nil, new_error { code = "invalid", message = problem.message, problems = { problem },
      attempts = 0 }
  end
  return call(self, "PUT", "/campaigns/" .. campaign_id .. "/leads/" .. lead_id, fields, nil, opts)
end

local INBOX_TYPES = { GOOGLE_WORKSPACE = 2000, OUTLOOK_365 = 10000, CUSTOM_SMTP = 100000 }
local INBOX_FIELDS = {
  email_address = { "string", 5, 255, true }, display_name = { "string", 1, 255, true },
  inbox_type = { "enum", nil, nil, true }, smtp_host = { "string", 1, 255, true },
  smtp_port = { "port", 1, 65535, true }, smtp_username = { "string", 1, 255, true },
  smtp_password = { "secret", 1, 1024, true }, imap_host = { "string", 1, 255, true },
  imap_port = { "port", 1, 65535, true }, imap_username = { "string", 1, 255, true },
  imap_password = { "secret", 1, 1024, true }, daily_limit = { "port", 1, 100000, false },
  smtp_use_tls = { "boolean" }, imap_use_ssl = { "boolean" },
}

local function check_inbox(fields)
  for k, v in pairs(fields) do
    local rule = INBOX_FIELDS[k]
    if not rule then error(format("no field '%s' in SMTP inbox", tostring(k)), 3) end
    local kind, min, max = rule[1], rule[2], rule[3]
    local bad
    if kind == "string" or kind == "secret" then
      if type(v) ~= "string" or #v < min or #v > max or v:find("%z") then
        bad = format("string of %d..%d characters expected", min, max)
      end
    elseif kind == "port" then
      if type(v) ~= "number" or v ~= math.floor(v) or v < min or v > max then
        bad = format("integer %d..%d expected", min, max)
      end
    elseif kind == "boolean" then
      if type(v) ~= "boolean" then bad = "boolean expected" end
    elseif kind == "enum" then
      if not INBOX_TYPES[v] then bad = "GOOGLE_WORKSPACE, OUTLOOK_365 or CUSTOM_SMTP expected" end
    end
    if bad then
      -- passwords are secrets too: their value is never shown
      local shown = kind == "secret" and type(v) or shown_value(v)
      error(format("bad value for '%s' (%s, got %s)", k, bad, shown), 3)
    end
  end
  for k, rule in pairs(INBOX_FIELDS) do
    if rule[4] and fields[k] == nil then
      error(format("missing field '%s' in SMTP inbox", k), 3)
    end
  end
  if not fields.email_address:find("^[^@%s]+@[^@%s]+%.[^@%s]+$") then
    error(format("bad value for 'email_address' (an email address expected, got %q)",
      fields.email_address), 3)
  end
  local max = INBOX_TYPES[fields.inbox_type]
  if fields.daily_limit and fields.daily_limit > max then
    error(format("bad value for 'daily_limit' (integer 1..%d expected for %s, got %d)",
      max, fields.inbox_type, fields.daily_limit), 3)
  end
end

--- Adds an SMTP inbox (POST /sender-accounts/smtp); returns the server's
-- body ({inbox_id=, ...}).
function Client:add_smtp_inbox(fields, opts)
  if type(fields) ~= "table" then
    error(format("bad argument #1 to 'add_smtp_inbox' (table expected, got %s)", type(fields)), 2)
  end
  check_inbox(fields)
  check_call_options(opts)
  local data, err = writes.add_inbox(self, fields, opts)
  if data and not core.is_uuid(data.inbox_id) then
    return nil, protocol_error({ method = "POST", url = self.base_url .. "/sender-accounts/smtp" },
      "'inbox_id' (UUID)", tostring(data.inbox_id))
  end
  return data, err
end

--- Lists inboxes (GET /sender-accounts).
local INBOX_QUERY = { page = "integer", limit = "integer" }

function Client:list_inboxes(query, opts)
  local q = check_list_query("list_inboxes", query, INBOX_QUERY)
  return call(self, "GET", "/sender-accounts", nil, q, opts)
end

local real_date = require("coldsend.dates").real_date

local function check_dates(what, query, allowed)
  local q = {}
  if query ~= nil and type(query) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", what, type(query)), 3)
  end
  for k, v in pairs(query or {}) do
    if not allowed[k] then error(format("unknown query field '%s' for %s", tostring(k), what), 3) end
    if k ~= "status" and (type(v) ~= "string" or not real_date(v)) then
      error(format("bad value for '%s' (a real date YYYY-MM-DD expected, got %s)", k,
        type(v) == "string" and format("%q", v) or type(v)), 3)
    end
    if k == "status" and not STATUSES[v] then
      error(format("bad value for 'status' (DRAFT, ACTIVE, PAUSED, COMPLETED or FAILED expected, got %s)",
        tostring(v)), 3)
    end
    q[k] = v
  end
  return q
end

--- Campaign analytics (GET /analytics/campaigns): {status=, from_date=, to_date=}.
function Client:campaign_analytics(query, opts)
  local q = check_dates("campaign_analytics", query,
    { status = true, from_date = true, to_date = true })
  return call(self, "GET", "/analytics/campaigns", nil, q, opts)
end

--- Daily activity (GET /analytics/campaigns/timeline): {from_date=, to_date=}.
function Client:timeline(query, opts)
  local q = check_dates("timeline", query, { from_date = true, to_date = true })
  return call(self, "GET", "/analytics/campaigns/timeline", nil, q, opts)
end


return M
