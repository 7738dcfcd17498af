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
local dates = require "coldsend.dates"
local redact = require "coldsend.redact"
local json = require "coldsend.json"

local M = {}

local format, concat = string.format, table.concat
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

-- pcall that a transport may yield across. PUC Lua 5.1 cannot yield across
-- pcall (5.2+ and LuaJIT can): there, inside a coroutine, f runs in a
-- coroutine of its own whose yields are passed on to the caller's, and the
-- values resumed with passed back in (as coxpcall does).
local yieldable_pcall = pcall
if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
  local function pass(co, ok, ...)
    if not ok then return false, ... end
    if coroutine.status(co) == "dead" then return true, ... end
    return pass(co, coroutine.resume(co, coroutine.yield(...)))
  end
  yieldable_pcall = function(f, ...)
    if coroutine.running() == nil then return pcall(f, ...) end -- nothing to yield to
    local co = coroutine.create(f)
    return pass(co, coroutine.resume(co, ...))
  end
end

--- Per-call options for a call that makes several requests: its deadline
-- (client or per-call) becomes one instant, `_deadline_at`, that every
-- request of the call shares. Returns opts itself when no deadline applies.
function M.call_options(client, opts)
  if opts and opts._deadline_at then return opts end
  local d = opts and opts.deadline
  if d == nil then d = client.deadline end
  if not d then return opts end
  local out = {}
  for k, v in pairs(opts or {}) do out[k] = v end
  out._deadline_at = client.clock() + d
  return out
end

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
    if conflict or resends >= limit then
      err.ambiguous = nil
      err.message = format("%s; the look-up found it was not done%s", tostring(err.message),
        conflict and "" or ", and max_retries allows no more tries")
      return nil, err
    end
    resends = resends + 1
    err.ambiguous = nil
    if client.on_retry then
      client.on_retry { method = req.method, url = req.url, attempt = resends + 1, delay = 0,
        reason = "not_done", code = err.code, status = err.status }
    end
  end
end

-- ---------------------------------------------------------------------
-- what the server holds against what was sent

local null = require("cjson").null

local parse_iso_utc = dates.parse_iso_utc
--- Epoch seconds of an ISO 8601 date-time (coldsend.dates.parse_iso_utc).
M.parse_iso_utc = parse_iso_utc

-- True when the server's value `have` holds what was sent as `sent`:
-- equal scalars (numbers by value, date-times by instant), and for tables
-- every key sent holding its value (the server may add keys). JSON null
-- and the empty array are what they encode.
local function holds(have, sent)
  if sent == null then return have == nil or have == null end
  if json.is_empty_array(sent) then
    return type(have) == "table" and next(have) == nil
  end
  if type(sent) == "table" then
    if type(have) ~= "table" then return false end
    for k, v in pairs(sent) do
      if not holds(have[k], v) then return false end
    end
    return true
  end
  if sent == have then return true end
  local a, b = parse_iso_utc(sent), parse_iso_utc(have)
  return a ~= nil and a == b
end
M.holds = holds

local function holds_fields(obj, sent, skip)
  for k, v in pairs(sent) do
    if not (skip and skip[k]) and not holds(obj[k], v) then return false end
  end
  return true
end

-- Pages of a list answer, each `{items}` by `field`, until has_next is not
-- true or `pages` pages: calls each(item) and returns true (all seen),
-- false (stopped at the cap), or nil, err.
local function each_page(client, path, query, field, pages, opts, each)
  for page = 1, pages do
    query.page = page
    local req = core.build_request(client.base_url, "GET", path, nil, query)
    local data, err = client:_send(req, opts)
    if not data then return nil, err end
    local items = data[field]
    if type(items) ~= "table" then
      return nil, core.error { code = "protocol", method = "GET", url = req.url, attempts = 1,
        message = format("expected '%s' (array) in the list answer, got %s", field, type(items)) }
    end
    for _, item in ipairs(items) do
      if type(item) == "table" then each(item) end
    end
    local p = data.pagination
    if not (type(p) == "table" and p.has_next == true and #items > 0) then return true end
  end
  return false
end

-- ---------------------------------------------------------------------
-- campaigns

-- A search answers at most this many pages of 100 in a snapshot.
local SNAPSHOT_PAGES = 20

-- The campaigns named `name` exactly, created in the last day (the list's
-- `days` filter; the search is a substring match), newest first:
-- { [id] = created_at }, whether the list was seen to its end, and the
-- oldest created_at seen (epoch seconds; the server's own clock).
local function same_name(client, name, opts)
  local found, oldest = {}, nil
  local complete, err = each_page(client, "/campaigns", { search = name, days = 1, limit = 100,
    sort_by = "created_at", sort_order = "desc" }, "campaigns", SNAPSHOT_PAGES, opts, function(item)
    local at = parse_iso_utc(item.created_at)
    if at and (not oldest or at < oldest) then oldest = at end
    if item.name == name and core.is_uuid(item.campaign_id) then
      found[item.campaign_id] = item.created_at or true
    end
  end)
  if complete == nil then return nil, err end
  return { ids = found, complete = complete, oldest = oldest }
end

-- After an ambiguous create: the ids of same-named campaigns that are not
-- in the snapshot. When the snapshot stopped at its page cap, campaigns
-- older than the oldest it saw (by the server's own created_at: a proxy's
-- Date header may run on another clock) are older than the call too.
local function made_since(client, name, snap, opts)
  local now, err = same_name(client, name, opts)
  if not now then return nil, err end
  local ids = {}
  for id, created in pairs(now.ids) do
    if not snap.ids[id] then
      local at = parse_iso_utc(created)
      if snap.complete or not (at and snap.oldest and at < snap.oldest) then ids[#ids + 1] = id end
    end
  end
  table.sort(ids)
  return ids
end

-- The create-schema fields of a definition, as its POST sends them.
local CREATE_NAMES
local function create_body(c)
  if not CREATE_NAMES then
    CREATE_NAMES = {}
    for _, f in ipairs(core.campaign_fields()) do
      if f.create then CREATE_NAMES[#CREATE_NAMES + 1] = f.name end
    end
  end
  local changes, body = c:changes(), {}
  for _, name in ipairs(CREATE_NAMES) do body[name] = changes[name] end
  return body
end

-- Most new same-named campaigns read to tell which one holds the POST.
local MAX_CANDIDATES = 10

-- Which of the new same-named campaigns the POST made: the one that holds
-- the create body. Returns its data, false (none: the POST made nothing),
-- or nil, err (an `ambiguous` err with candidates when several could be).
local function which_is_ours(client, ids, body, req, opts)
  if #ids == 0 then return false end
  if #ids > MAX_CANDIDATES then
    return nil, ambiguous_error({ method = req.method, url = req.url,
      message = "the create's answer was lost" }, ids, "campaigns")
  end
  local ours, candidates = {}, {}
  for _, id in ipairs(ids) do
    local got, err = client:_send(core.build_request(client.base_url, "GET", "/campaigns/" .. id), opts)
    if not got then
      err.candidates = ids
      return nil, err
    end
    got.campaign_id = id
    if holds_fields(got, body) then ours[#ours + 1] = got; candidates[#candidates + 1] = id end
  end
  if #ours == 1 then return ours[1] end
  if #ours == 0 then return false end
  return nil, ambiguous_error({ method = req.method, url = req.url,
    message = "the create's answer was lost" }, candidates, "campaigns")
end

-- Handles whose create is under way, and those whose last create ended
-- undecided (its snapshot is kept: a save() again looks before it sends).
local creating = setmetatable({}, { __mode = "k" })
local undecided = setmetatable({}, { __mode = "k" })

local function create(client, c, opts)
  local ok, verr = c:validate()
  if not ok then return nil, verr end
  local body = create_body(c)
  local req = c:_request("create", client.base_url)
  local snap, adopted = undecided[c], false
  local function check()
    local ids, lerr = made_since(client, snap.name, snap, opts)
    if not ids then return nil, lerr end
    local got, gerr = which_is_ours(client, ids, body, req, opts)
    if got then adopted = true end
    return got, gerr
  end
  local data, err
  if snap then
    -- an earlier create of this handle ended undecided: did it happen?
    data, err = check()
    if data == false then data, err = nil, nil end
  else
    snap, err = same_name(client, c.name, opts)
    if not snap then return nil, err end
    snap.name = c.name
  end
  if not data and not err then
    data, err = M.post(client, req, opts, check)
    if data and not adopted and not core.is_uuid(data.campaign_id) then
      -- an answer that says it worked but not what it made: look
      data, err = check()
      if data == false then
        data, err = nil, core.error { code = "protocol", method = req.method, url = req.url,
          attempts = 1, ambiguous = true, message = "the create's answer has no 'campaign_id' "
            .. "(UUID), and the look-up found no campaign it made" }
      end
    end
  end
  if not data then
    -- undecided: keep the snapshot, so that a save() again looks first
    if err.ambiguous or err.candidates or err.check_error then undecided[c] = snap end
    return nil, err
  end
  undecided[c] = nil
  -- made by a POST whose answer was lost: every field stays pending, so
  -- the PUT below makes the server hold exactly this definition
  if not adopted then c:_clear_dirty("create") end
  c:_apply(data)
  if c:_has_changes() then
    local saved, serr = c:save(opts)
    if not saved then
      serr.campaign = c -- created, but the rest of the definition did not go through
      return nil, serr
    end
  end
  return c
end

--- The one create routine, for every path that creates a campaign (a save
-- of a local definition, create_campaign, plan/apply, the CLI). `c` is a
-- handle without an id. The create-schema fields go in the POST, the rest
-- in one PUT after it. Returns c or nil, err (err.campaign: created, but
-- the PUT did not go through; the handle keeps those changes pending).
-- A create that ended undecided is looked up again by the next one on the
-- same handle before anything is sent.
function M.create_campaign(client, c, opts)
  if creating[c] then
    return nil, core.error { code = "conflict", attempts = 0, method = "POST",
      url = client.base_url .. "/campaigns",
      message = "this campaign is being created by another call: wait for its result" }
  end
  creating[c] = true
  opts = M.call_options(client, opts)
  local ok, res, err = yieldable_pcall(create, client, c, opts)
  creating[c] = nil
  if not ok then error(res, 0) end
  return res, err
end

-- ---------------------------------------------------------------------
-- leads and inboxes: a snapshot of those with that email before the POST,
-- so that the look-up never takes one that was there before for ours

local function conflict_error(req, what, existing)
  return core.error { code = "conflict", status = 409, method = req.method, url = req.url,
    attempts = 1, existing = existing,
    message = format("%s exists already (the look-up after a lost answer found it from before "
      .. "this call, or with other fields than the ones sent)", what) }
end

local LIST_PAGES = 50

-- { [id] = object } of the list's items whose `key` lower-cased is `value`,
-- or nil, err (an `ambiguous` error when the list is too long to read).
local function find_by(client, req, path, query, field, key, value, id_key, opts)
  local found = {}
  local complete, err = each_page(client, path, query, field, LIST_PAGES, opts, function(item)
    local v = item[key]
    if type(v) == "string" and v:lower() == value and item[id_key] ~= nil then
      found[tostring(item[id_key])] = item
    end
  end)
  if complete == nil then return nil, err end
  if not complete then
    return nil, core.error { code = "ambiguous", method = req.method, url = req.url, attempts = 1,
      candidates = {}, message = format("the list of %s is too long to check", field) }
  end
  return found
end

-- A POST that makes one object found by `find()`: a snapshot first, so
-- that after a lost answer the look-up takes only a new one, and only when
-- `matches(obj)` (it holds what was sent); one from before is the server's
-- 409, `conflict` with err.existing.
local function post_unique(client, req, what, find, matches, opts)
  local before, berr = find()
  -- the look-ups carry none of the POST's secrets, which a server may
  -- still echo in their errors: those are redacted with the POST's
  if not before then return nil, redact.error(berr, req) end
  local data, err = M.post(client, req, opts, function()
    local now, err = find()
    if not now then return nil, err end
    for id, obj in pairs(now) do
      if not before[id] then
        if matches(obj) then return obj end
        return nil, conflict_error(req, what, obj)
      end
    end
    local _, old = next(before)
    if old then return nil, conflict_error(req, what, old) end
    return false
  end)
  return data, redact.error(err, req)
end

--- POST /campaigns/{id}/leads/manual, once.
function M.add_lead(client, campaign_id, body, opts)
  opts = M.call_options(client, opts)
  local req = core.build_request(client.base_url, "POST",
    "/campaigns/" .. campaign_id .. "/leads/manual", body)
  local email, skip = body.email:lower(), { email = true }
  return post_unique(client, req, "lead " .. body.email, function()
    return find_by(client, req, "/campaigns/" .. campaign_id .. "/leads",
      { search = body.email, limit = 100 }, "leads", "email", email, "lead_id", opts)
  end, function(lead) return holds_fields(lead, body, skip) end, opts)
end

-- Inbox fields the list never shows (or shows in another form).
local INBOX_HIDDEN = { smtp_password = true, imap_password = true, email_address = true }

--- POST /sender-accounts/smtp, once.
function M.add_inbox(client, fields, opts)
  opts = M.call_options(client, opts)
  local req = core.build_request(client.base_url, "POST", "/sender-accounts/smtp", fields)
  local address = fields.email_address:lower()
  return post_unique(client, req, "inbox " .. fields.email_address, function()
    return find_by(client, req, "/sender-accounts", { limit = 100 }, "sender_accounts",
      "email_address", address, "inbox_id", opts)
  end, function(ib)
    -- what the list shows of it
    for k, v in pairs(fields) do
      if not INBOX_HIDDEN[k] and ib[k] ~= nil and not holds(ib[k], v) then return false end
    end
    return true
  end, opts)
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

--- A launch that failed after an earlier try may have launched: it did
-- when the campaign is ACTIVE and holds every change the launch carried
-- (`changes`, what c:changes() gave before the launch). Returns the
-- campaign's data then, else nil.
function M.reconcile_launch(client, c, err, changes, opts)
  if not (err and err.maybe_done) then return nil end
  local data = fetch(client, c, opts)
  if data and data.status == "ACTIVE" and holds_fields(data, changes) then return data end
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
  local list = data.lead_batches
  -- a list, or nothing to go by (an object is not a list of batches)
  if type(list) ~= "table" or (next(list) ~= nil and list[1] == nil) then return false end
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
