--- coldsend.campaign_methods: the campaign methods that talk to the
-- server, installed into the C campaign type (save, launch, refresh, pause,
-- resume, delete, upload_leads, add_lead, changes, fields, diff, validate's
-- error), and the client's ways to get a handle (campaign, create_campaign,
-- get_campaign, plan). Each handle knows its client (owners).
-- @module coldsend.campaign_methods
local core = require "coldsend.core"
local writes = require "coldsend.writes"
local options = require "coldsend.options"
local loop = require "coldsend.request_loop"

local M = {}

local type, pairs, ipairs, tostring, setmetatable, error =
  type, pairs, ipairs, tostring, setmetatable, error
local format, concat = string.format, table.concat
local check_call_options, check_id = options.check_call_options, options.check_id
local new_error, protocol_error = loop.new_error, loop.protocol_error
local Client = require("coldsend.client").Client

-- The client a campaign handle belongs to.
local owners = setmetatable({}, { __mode = "k" })

local methods = core.campaign_methods

local function client_of(c)
  local client = owners[c]
  if not client then
    error("campaign has no client: make it with cs:campaign(id), cs:get_campaign(id) "
      .. "or cs:create_campaign(fields)", 3)
  end
  return client
end

local function adopt(self, c)
  owners[c] = self
  return c
end

-- The `invalid` error of validate(), save() and launch(): problems is the
-- list {field=, message=} of every rule broken; the message lists them.
local function invalid_error(problems, method, url)
  local lines = {}
  for i, p in ipairs(problems) do
    lines[i] = format("  %s: %s", tostring(p.field), tostring(p.message))
  end
  return new_error {
    code = "invalid", problems = problems, method = method, url = url, attempts = 0,
    message = format("campaign is not valid: %d problem%s\n%s", #problems,
      #problems == 1 and "" or "s", concat(lines, "\n")),
  }
end

local core_validate = methods.validate

--- Checks the rules that span fields. Returns true, or nil, err: an
-- `invalid` error whose `problems` lists every problem ({field=, message=})
-- and whose text names each.
function methods.validate(c)
  local ok, problems = core_validate(c)
  if ok then return true end
  return nil, invalid_error(problems)
end

-- A handle that save() has not created yet cannot be refreshed, deleted,
-- paused or resumed: misuse, raised at the caller's line as add_lead does.
local need_id = options.saved_id

-- The C methods the request path calls, called directly rather than
-- through the campaign's __index (each method lookup is a C call).
local build_request = methods._request
local has_changes, apply = methods._has_changes, methods._apply

local function run_campaign_op(c, op, opts, needs_validation)
  local client = owners[c] or client_of(c)
  if opts ~= nil then check_call_options(opts) end
  if op == "get" or op == "delete" then need_id(c, op == "get" and "refresh" or op) end
  -- validated first when asked (a remembered pass costs nothing)
  local req, problems = build_request(c, op, client.base_url, needs_validation)
  if not req then return nil, invalid_error(problems) end
  -- a launch re-sent by libcurl on a dead keep-alive connection would look
  -- like a refusal; on a new connection only this loop re-sends it
  if op == "launch" then req.fresh = true end
  local data, err = client:_send(req, opts)
  if data and op ~= "delete" and next(data) == nil then -- an empty 200 is not a campaign
    return nil, protocol_error(req, "a campaign object", "an empty body"), req
  end
  return data, err, req
end

--- Creates a new campaign handle (no I/O). With no id, a local
-- definition that `save` creates on the server.
function Client:campaign(id)
  if id ~= nil then check_id("campaign", id, 1) end
  return adopt(self, core.campaign(id))
end

-- Sets every field of a definition on c. A bad value raises at the
-- caller's line (level), as an assignment there would, not here.
local function set_fields(c, fields, level)
  for k, v in pairs(fields) do
    local ok, why = pcall(function() c[k] = v end)
    if not ok then
      if type(why) == "string" then why = why:gsub("^[^:\n]*:%d+: ", "", 1) end
      error(why, level + 1)
    end
  end
end

--- Creates a campaign and returns its handle, in DRAFT. The create-schema
-- fields go in the POST /campaigns, the rest (variants, follow-ups,
-- inboxes, mapping) in one PUT after it (coldsend.writes.create_campaign,
-- the one create routine). Every field is checked first, so nothing is
-- created when any is bad.
function Client:create_campaign(fields, opts)
  if type(fields) ~= "table" then
    error(format("bad argument #1 to 'create_campaign' (table expected, got %s)", type(fields)), 2)
  end
  check_call_options(opts)
  local c = adopt(self, core.campaign())
  set_fields(c, fields, 2)
  return writes.create_campaign(self, c, opts)
end

--- Fetches a campaign (GET /campaigns/{id}).
function Client:get_campaign(id, opts)
  check_id("get_campaign", id, 1)
  local c = adopt(self, core.campaign(id))
  local ok, err = c:refresh(opts)
  if not ok then return nil, err end
  return c
end

-- ---------------------------------------------------------------------
-- campaign methods that talk to the server (installed into the C type)

--- Sends the pending changes (PUT); a local definition (no id yet) is
-- created by the one create routine (coldsend.writes.create_campaign).
function methods.save(c, opts)
  -- a misspelt option raises even with nothing to send
  if opts ~= nil then check_call_options(opts) end
  local changed, exists = has_changes(c)
  if not exists then return writes.create_campaign(client_of(c), c, opts) end
  if not changed then return c end
  local data, err = run_campaign_op(c, "save", opts, true)
  if not data then return nil, err end
  -- what was sent is applied (the dirty set cleared first), and the body,
  -- fresh from the decoder, keeps its tables rather than copies
  apply(c, data, true, true)
  return c
end

local function not_ready_error(missing, req, attempts, status)
  local list = {}
  for i, m in ipairs(missing or {}) do list[i] = tostring(m) end
  return new_error {
    code = "not_ready", missing_requirements = list, status = status,
    method = req.method, url = req.url, attempts = attempts,
    message = #list > 0 and ("campaign is missing " .. concat(list, ", "))
      or "campaign is not ready to launch",
  }
end

--- Sends the pending changes with launch = true. Succeeds only when the
-- campaign is ACTIVE afterwards; an unready campaign gives a not_ready error
-- whether the server says so with a 200 body or with an error status.
function methods.launch(c, opts)
  local changes = c:changes()
  local data, err, req = run_campaign_op(c, "launch", opts, true)
  if not data then
    -- a re-sent launch refused because its first try launched: done
    data = writes.reconcile_launch(client_of(c), c, err, changes, opts)
  end
  if not data then
    if err and type(err.missing_requirements) == "table" then
      return nil, not_ready_error(err.missing_requirements, req, err.attempts, err.status)
    end
    if err and err.code == "bad_request" and type(err.message) == "string"
        and err.message:lower():find("requirement") then
      return nil, not_ready_error({}, req, err.attempts, err.status)
    end
    return nil, err
  end
  c:_clear_dirty()
  c:_apply(data)
  if data.is_launch_ready == false or (data.status ~= nil and data.status ~= "ACTIVE") then
    local missing = type(data.missing_requirements) == "table" and data.missing_requirements or {}
    return nil, not_ready_error(missing, req, 1, 200)
  end
  return c
end

--- Reloads the campaign from the server, dropping local changes.
function methods.refresh(c, opts)
  local data, err = run_campaign_op(c, "get", opts, false)
  if not data then return nil, err end
  c:_discard()
  apply(c, data, true) -- fresh from the decoder
  c:_clear_dirty()
  return c
end

local function state_op(op)
  return function(c, opts)
    local client = client_of(c)
    check_call_options(opts)
    need_id(c, op)
    local data, err = writes.state_change(client, c, op, opts)
    if not data then return nil, err end
    if next(data) == nil then -- an empty 200 is not a campaign
      return nil, protocol_error({ method = "POST", url = client.base_url .. "/campaigns/" .. c.id },
        "a campaign object", "an empty body")
    end
    c:_apply(data)
    return c
  end
end

--- Pauses an ACTIVE campaign.
methods.pause = state_op("pause")
--- Resumes a PAUSED campaign.
methods.resume = state_op("resume")

--- Deletes the campaign (DRAFT or PAUSED only). A re-sent delete answered
-- 404 because its first try deleted it succeeds.
function methods.delete(c, opts)
  local data, err = run_campaign_op(c, "delete", opts, false)
  if not data and not writes.reconcile_delete(err) then return nil, err end
  return true
end

--- Uploads a CSV of leads (see doc/leads.md).
function methods.upload_leads(c, opts)
  return require("coldsend.leads").upload(client_of(c), c, opts)
end

--- Adds one lead (POST /campaigns/{id}/leads/manual).
function methods.add_lead(c, lead, opts)
  check_call_options(opts)
  return require("coldsend.single_lead").add(client_of(c), c, lead, opts)
end

-- c:changes() is a plain table (the C core's copy) that prints, in the
-- REPL or with tostring, as the JSON body the next save sends.
local Changes = { __name = "coldsend.changes" }
function Changes.__tostring(t)
  local ok, text = pcall(require("coldsend.json").encode_sorted, t)
  return ok and text or "coldsend.changes (" .. tostring(text) .. ")"
end
local core_changes = methods.changes

--- The table the next save sends: only the changed fields. It prints as
-- the JSON body it becomes (keys sorted).
function methods.changes(c)
  return setmetatable(core_changes(c), Changes)
end

--- Iterates over the fields that are set, in a stable order, like
-- pairs(c) on Lua 5.4 (LuaJIT ignores __pairs): for name, value in c:fields().
function methods.fields(c)
  return getmetatable(c).__pairs(c)
end

--- Field-by-field differences between this campaign and another campaign
-- or definition table (see coldsend.plan).
function methods.diff(c, other)
  return require("coldsend.plan").diff(c, other)
end

--- What applying a definition (a table of campaign fields, with `id` for an
-- existing campaign) would change on the server (one GET, no writes).
function Client:plan(definition, opts)
  return require("coldsend.plan").plan(self, definition, opts)
end

--- REPL help: coldsend.help() lists what there is; coldsend.help("name")

return M
