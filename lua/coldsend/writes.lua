--- coldsend.writes: a write happens once.
--
-- The request loop (Client:_send) re-sends a POST only when it certainly
-- had no effect (it never left, or a 429 refused it). Any other failure of
-- a POST comes back marked `ambiguous`: the server may have acted. Here the
-- caller's write is finished: `post` looks up whether the write happened,
-- then returns what exists or sends again; a 409 "already exists" that
-- answers our own re-sent write is reconciled the same way.
--
-- | write           | how "did it happen?" is answered                         |
-- |-----------------|----------------------------------------------------------|
-- | create campaign | same-named campaigns not in the snapshot taken before    |
-- |                 | the POST and not older than the server's clock then      |
-- | add lead        | the lead of that email, with the fields we sent          |
-- | add inbox       | the inbox of that address, with the fields we sent       |
-- | pause / resume  | the campaign's status                                    |
-- | upload chunk    | a lead batch of the chunk's file name, new since the     |
-- |                 | upload began                                             |
--
-- Idempotent writes (PUT, DELETE) are re-sent by the loop; `reconcile_*`
-- below turn the refusal that a re-sent launch or delete meets when its
-- first try did the work (`err.maybe_done`) into the success it was.
--
-- The invariant: a call never returns or modifies an object that existed
-- before it began. When the look-up cannot decide, the call fails with code
-- `ambiguous` and `err.candidates` (ids), never a guess.
-- @module coldsend.writes
local core = require "coldsend.core"
local retry = require "coldsend.retry"

local M = {}

local format, concat = string.format, table.concat
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

local function max_retries(client, opts)
  local n = opts and opts.max_retries
  if n == nil then n = client.max_retries end
  return n
end

local function ambiguous_error(err, candidates, what)
  local e = core.error {
    code = "ambiguous", candidates = candidates, method = err.method, url = err.url,
    attempts = err.attempts, status = err.status,
    message = format("%s; %d %s could be the one it made (%s): not choosing one; check them",
      tostring(err.message), #candidates, what, concat(candidates, ", ")),
  }
  e.cause = err
  return e
end
M.ambiguous_error = ambiguous_error

--- Sends a write that must happen once. `check()` answers whether the
-- write happened: the object (a table) when it did, false when it did not,
-- or nil, err when it cannot tell (an err with `candidates` or `existing`
-- is the answer returned as it is). Returns the data or nil, err.
function M.post(client, req, opts, check)
  local resends, limit = 0, max_retries(client, opts)
  while true do
    local data, err = client:_send(req, opts)
    if data then return data end
    local conflict = err.code == "conflict" and resends > 0
    if not (err.ambiguous or conflict) then return nil, err end
    local found, cerr = check()
    if found then return found end
    if found == nil then
      if cerr == nil then return nil, err end -- no way to look: stays ambiguous
      if cerr.candidates or cerr.existing then return nil, cerr end
      err.check_error = cerr
      err.message = format("%s; checking whether it happened failed: %s", tostring(err.message),
        cerr and tostring(cerr.message) or "no answer")
      return nil, err
    end
    -- it did not happen: sending again cannot duplicate it
    if conflict or resends >= limit then return nil, err end
    resends = resends + 1
    err.ambiguous = nil
    if client.on_retry then
      client.on_retry { method = req.method, url = req.url, attempt = resends + 1, delay = 0,
        reason = "not_done", code = err.code, status = err.status }
    end
  end
end

-- ---------------------------------------------------------------------
-- campaigns

-- Epoch seconds of an ISO 8601 date-time (UTC, or with an offset), or nil.
local function parse_iso_utc(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)[T ](%d%d):(%d%d):?(%d*)")
  if not y then return nil end
  local offset = 0
  local sign, oh, om = s:match("([+-])(%d%d):?(%d%d)$")
  if sign then offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1) end
  return retry.days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + (tonumber(sec) or 0) - offset
end
M.parse_iso_utc = parse_iso_utc

-- A search answers at most this many pages of 100 in a snapshot; the
-- newest come first, and older ones are told apart by the clock.
local SNAPSHOT_PAGES = 20

-- The campaigns named `name` exactly, created in the last day (the list's
-- `days` filter), newest first: { [id] = created_at }, and the server's
-- clock when the list was answered (its Date header, epoch seconds or nil).
local function same_name(client, name, opts)
  local found, server_now = {}, nil
  for page = 1, SNAPSHOT_PAGES do
    local req = core.build_request(client.base_url, "GET", "/campaigns", nil,
      { search = name, days = 1, limit = 100, page = page, sort_by = "created_at",
        sort_order = "desc" })
    local data, res = client:_send(req, opts)
    if not data then return nil, res end
    if type(data.campaigns) ~= "table" then
      return nil, core.error { code = "protocol", method = "GET", url = req.url, attempts = 1,
        message = "expected 'campaigns' (array) in the list answer, got " .. type(data.campaigns) }
    end
    if page == 1 then
      local date = res and res.headers and retry.header(res.headers, "date")
      server_now = date and retry.parse_http_date(date)
    end
    for _, item in ipairs(data.campaigns) do
      if type(item) == "table" and item.name == name and core.is_uuid(item.campaign_id) then
        found[item.campaign_id] = item.created_at or true
      end
    end
    local p = data.pagination
    if not (type(p) == "table" and p.has_next == true and #data.campaigns > 0) then break end
  end
  return found, server_now
end

-- After an ambiguous create: the ids of same-named campaigns that are not
-- in the snapshot and were not made before it on the server's clock.
local function made_since(client, name, before, before_at, opts)
  local now, err = same_name(client, name, opts)
  if not now then return nil, err end
  local ids = {}
  for id, created in pairs(now) do
    if not before[id] then
      local at = parse_iso_utc(created)
      -- created_at has whole seconds: made after the snapshot means not
      -- before the second the snapshot was answered in
      if not (at and before_at and at < before_at) then ids[#ids + 1] = id end
    end
  end
  table.sort(ids)
  return ids
end

--- The one create routine, for every path that creates a campaign (a save
-- of a local definition, create_campaign, plan/apply, the CLI). `c` is a
-- handle without an id. The create-schema fields go in the POST, the rest
-- in one PUT after it. Returns c or nil, err (err.campaign: created, but
-- the PUT did not go through; the handle keeps those changes pending).
function M.create_campaign(client, c, opts)
  local ok, verr = c:validate()
  if not ok then return nil, verr end
  local name = c.name
  local before, before_at = same_name(client, name, opts)
  if not before then return nil, before_at end
  local req = c:_request("create", client.base_url)
  local adopted
  local data, err = M.post(client, req, opts, function()
    local ids, lerr = made_since(client, name, before, before_at, opts)
    if not ids then return nil, lerr end
    if #ids == 0 then return false end
    if #ids > 1 then
      return nil, ambiguous_error(lerr or { method = req.method, url = req.url,
        message = "the create's answer was lost" }, ids, "campaigns")
    end
    adopted = ids[1]
    return { campaign_id = ids[1] }
  end)
  if not data then return nil, err end
  if adopted then
    -- the POST went through but its answer was lost: read what it made;
    -- every field stays pending, so the PUT below makes the server hold
    -- exactly this definition
    local get = core.build_request(client.base_url, "GET", "/campaigns/" .. adopted)
    local got, gerr = client:_send(get, opts)
    if not got then return nil, gerr end
    got.campaign_id = adopted
    c:_apply(got)
  else
    if not core.is_uuid(data.campaign_id) then
      return nil, core.error { code = "protocol", method = req.method, url = req.url, attempts = 1,
        message = "expected 'campaign_id' (UUID) in the response, got " .. tostring(data.campaign_id) }
    end
    c:_clear_dirty("create")
    c:_apply(data)
  end
  if c:_has_changes() then
    local saved, serr = c:save(opts)
    if not saved then
      serr.campaign = c -- created, but the rest of the definition did not go through
      return nil, serr
    end
  end
  return c
end

-- ---------------------------------------------------------------------
-- leads and inboxes: found by their email, and ours only when they hold
-- what we sent

local function holds(obj, sent, skip)
  for k, v in pairs(sent) do
    if not (skip and skip[k]) then
      local have = obj[k]
      if type(v) == "table" then
        if type(have) ~= "table" then return false end
        for ck, cv in pairs(v) do
          if have[ck] ~= cv then return false end
        end
      elseif have ~= v then
        return false
      end
    end
  end
  return true
end

local function conflict_error(req, what, existing)
  return core.error { code = "conflict", status = 409, method = req.method, url = req.url,
    attempts = 1, existing = existing,
    message = format("%s exists already with other fields than the ones sent", what) }
end

--- POST /campaigns/{id}/leads/manual, once.
function M.add_lead(client, campaign_id, body, opts)
  local req = core.build_request(client.base_url, "POST",
    "/campaigns/" .. campaign_id .. "/leads/manual", body)
  local email = body.email:lower()
  return M.post(client, req, opts, function()
    local q = core.build_request(client.base_url, "GET", "/campaigns/" .. campaign_id .. "/leads",
      nil, { search = body.email, limit = 100 })
    local data, err = client:_send(q, opts)
    if not data then return nil, err end
    for _, lead in ipairs(type(data.leads) == "table" and data.leads or {}) do
      if type(lead) == "table" and type(lead.email) == "string" and lead.email:lower() == email then
        if holds(lead, body, { email = true }) then return lead end
        return nil, conflict_error(req, "lead " .. body.email, lead)
      end
    end
    return false
  end)
end

local INBOX_SECRET = { smtp_password = true, imap_password = true, email_address = true }
local INBOX_PAGES = 50

--- POST /sender-accounts/smtp, once.
function M.add_inbox(client, fields, opts)
  local req = core.build_request(client.base_url, "POST", "/sender-accounts/smtp", fields)
  local address = fields.email_address:lower()
  return M.post(client, req, opts, function()
    for page = 1, INBOX_PAGES do
      local q = core.build_request(client.base_url, "GET", "/sender-accounts", nil,
        { limit = 100, page = page })
      local data, err = client:_send(q, opts)
      if not data then return nil, err end
      local list = data.sender_accounts
      for _, ib in ipairs(type(list) == "table" and list or {}) do
        if type(ib) == "table" and type(ib.email_address) == "string"
            and ib.email_address:lower() == address then
          local visible = {}
          for k, v in pairs(fields) do
            if not INBOX_SECRET[k] and ib[k] ~= nil then visible[k] = v end
          end
          if holds(ib, visible) then return ib end
          return nil, conflict_error(req, "inbox " .. fields.email_address, ib)
        end
      end
      local pg = data.pagination
      if not (type(pg) == "table" and pg.has_next == true) then return false end
    end
    return nil, core.error { code = "ambiguous", method = req.method, url = req.url, attempts = 1,
      candidates = {}, message = "the inbox's answer was lost and the inbox list is too long to check" }
  end)
end

-- ---------------------------------------------------------------------
-- state changes

local STATE_AFTER = { pause = "PAUSED", resume = "ACTIVE", launch = "ACTIVE" }

-- The campaign as the server holds it now, or nil, err.
local function fetch(client, c, opts)
  return client:_send(c:_request("get", client.base_url), opts)
end

--- pause/resume (POST): done when the campaign is in the state they lead to.
function M.state_change(client, c, op, opts)
  local req = c:_request(op, client.base_url)
  return M.post(client, req, opts, function()
    local data, err = fetch(client, c, opts)
    if not data then return nil, err end
    if data.status == STATE_AFTER[op] then return data end
    return false
  end)
end

--- A launch that failed after an earlier try may have launched: the
-- campaign's state says. Returns its data when it is ACTIVE, else nil.
function M.reconcile_launch(client, c, err, opts)
  if not (err and err.maybe_done) then return nil end
  local data = fetch(client, c, opts)
  if data and data.status == "ACTIVE" then return data end
  return nil
end

--- A delete answered 404 after an earlier try may have deleted it: done.
function M.reconcile_delete(err)
  return err and err.maybe_done and err.status == 404 or false
end

-- ---------------------------------------------------------------------
-- upload chunks

--- The lead batches a campaign lists now: { [job_id or batch_id] = batch },
-- or nil, err; false when the server does not list them.
function M.lead_batches(client, campaign_id, opts)
  local req = core.build_request(client.base_url, "GET", "/campaigns/" .. campaign_id)
  local data, err = client:_send(req, opts)
  if not data then return nil, err end
  if type(data.lead_batches) ~= "table" then return false end
  local out = {}
  for _, b in ipairs(data.lead_batches) do
    if type(b) == "table" then
      local id = b.job_id or b.batch_id
      if id ~= nil then out[tostring(id)] = b end
    end
  end
  return out
end

--- Sends one upload chunk once: `before` is M.lead_batches from before the
-- upload (false: the server lists none, so an ambiguous chunk is reported,
-- not re-sent), `known` the job ids of this upload's chunks so far.
function M.upload_chunk(client, req, file_name, campaign_id, before, known, opts)
  return M.post(client, req, opts, function()
    if not before then return nil, nil end
    local now, err = M.lead_batches(client, campaign_id, opts)
    if not now then return nil, err end
    local mine = {}
    for id, b in pairs(now) do
      if not before[id] and not known[id] and b.file_name == file_name then mine[#mine + 1] = id end
    end
    if #mine == 0 then return false end
    if #mine > 1 then
      table.sort(mine)
      return nil, ambiguous_error({ method = req.method, url = req.url,
        message = "the upload's answer was lost" }, mine, "lead batches")
    end
    local b = now[mine[1]]
    return { job_id = b.job_id or b.batch_id, status = b.status or "PENDING", reconciled = true }
  end)
end

return M
