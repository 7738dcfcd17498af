--- coldsend.sandbox.control: the control API under /__sandbox/ (the
-- sandbox's own key only): the request log, faults, reset, keys and
-- scopes, settings, the clock, simulated sending and shutdown.
local json = require "coldsend.json"
local http = require "coldsend.sandbox.http"
local api = require "coldsend.sandbox.api"
local V = require "coldsend.sandbox.validate"

local M = {}

local Server = {}
--- Methods of the server, for coldsend.sandbox to mix into its Server.
M.methods = Server

--- The path prefix of the control endpoints.
M.PREFIX = "/__sandbox"

local array, null = json.array, json.null
local json_response = http.json_response

local function control_error(status, msg) return json_response(status, { detail = msg }) end

--- Answers a control request (sub is the path after /__sandbox); it must
-- carry the sandbox's own key in X-API-Key.
-- @return the response table
function Server:control(req, sub)
  if req.headers["x-api-key"] ~= self.key then
    return control_error(401, "the control API takes the sandbox's own key in X-API-Key")
  end
  local m = req.method
  local body
  if m == "POST" or m == "PUT" then
    local b = req.body or ""
    if b:find("%S") then
      body = json.decode(b)
      if type(body) ~= "table" then return control_error(422, "body must be a JSON object") end
      V.normalize(body)
    else
      body = {}
    end
  end
  if sub == "/log" and m == "GET" then
    local since = tonumber(req.query.since or "") or 0
    local out = array()
    for _, e in ipairs(self.log) do
      if e.seq > since then out[#out + 1] = e end
    end
    return json_response(200, out)
  elseif sub == "/log" and m == "DELETE" then
    self.log = {}
    return json_response(200, { success = true })
  elseif sub == "/faults" and m == "POST" then
    local fault, err = self:add_fault(body)
    if not fault then return control_error(422, err) end
    return json_response(201, fault)
  elseif sub == "/faults" and m == "GET" then
    local out = array()
    for i, f in ipairs(self.faults) do out[i] = f end
    return json_response(200, out)
  elseif sub == "/faults" and m == "DELETE" then
    self.faults = {}
    return json_response(200, { success = true })
  elseif sub == "/reset" and m == "POST" then
    self:reset()
    return json_response(200, { success = true })
  elseif sub == "/keys" and m == "POST" then
    local keys = body.keys
    if keys == nil or keys == null or next(keys) == nil then
      self.keys = nil
    else
      if type(keys) ~= "table" then return control_error(422, "keys must be an object") end
      self.keys = {}
      for k, v in pairs(keys) do
        local scopes = type(v) == "table" and v.scopes
        if scopes ~= nil and type(scopes) ~= "table" then return control_error(422, "scopes must be a list") end
        self.keys[k] = { scopes = scopes or { "*" } }
      end
    end
    return json_response(200, { success = true })
  elseif sub == "/config" and m == "POST" then
    for _, k in ipairs { "rate_limit", "rate_window", "rate_limit_hour", "rate_window_hour",
        "latency_ms", "job_step_ms", "keepalive_s" } do
      local v = body[k]
      local limit = k == "rate_limit" or k == "rate_limit_hour"
      if v ~= nil then
        if v == true and k == "rate_limit" then
          v = 100
          if body.rate_limit_hour == nil then self.opts.rate_limit_hour = 1000 end
        end
        if v == true and k == "rate_limit_hour" then v = 1000 end
        if not (limit and v == false) and not (V.is_int(v) and v >= 0) then
          return control_error(422, k .. " must be a non-negative integer" .. (limit and " or false" or ""))
        end
        if limit and v == 0 then v = false end
        self.opts[k] = v
      end
    end
    self.buckets = {}
    return json_response(200, self:config_view())
  elseif sub == "/config" and m == "GET" then
    return json_response(200, self:config_view())
  elseif sub == "/clock" and m == "POST" then
    local at, by = body.now, body.advance
    if body.real == true then
      self.clock_at = nil
    elseif type(at) == "number" and at >= 0 and at < 1e11 then
      self.clock_at = at
    elseif type(by) == "number" and by >= 0 and by < 1e9 then
      self.clock_at = self:now() + by
    else
      return control_error(422, "clock: give now (Unix seconds), advance (seconds >= 0) or real = true")
    end
    return json_response(200, { now = self:now(), frozen = self.clock_at ~= nil })
  elseif sub == "/clock" and m == "GET" then
    return json_response(200, { now = self:now(), frozen = self.clock_at ~= nil })
  elseif sub == "/simulate" and m == "POST" then
    return self:simulate(body)
  elseif sub == "/shutdown" and m == "POST" then
    self.stopping = true
    return json_response(200, { success = true, message = "shutting down" })
  elseif sub == "" or sub == "/" then
    return json_response(200, { name = "coldsend-sandbox", version = require("coldsend.sandbox")._VERSION,
      base_path = api.BASE, config = self:config_view() })
  end
  return control_error(404, "unknown control endpoint " .. m .. " " .. M.PREFIX .. sub)
end

--- The settings the control API shows and sets: rate_limit, rate_window,
-- rate_limit_hour, rate_window_hour, latency_ms, job_step_ms and keepalive_s.
function Server:config_view()
  local o = self.opts
  return { rate_limit = o.rate_limit, rate_window = o.rate_window,
    rate_limit_hour = o.rate_limit_hour, rate_window_hour = o.rate_window_hour, latency_ms = o.latency_ms,
    job_step_ms = o.job_step_ms, keepalive_s = o.keepalive_s }
end

-- An integer a double holds exactly (counts and seeds up to 2^53).
local function exact_count(n, min)
  return V.is_int(n) and n >= min and n <= 2 ^ 53
end

--- Adds sending activity: with body.days, that many days of every ACTIVE
-- campaign (coldsend.sandbox.simulate, deterministic with body.seed);
-- else body's counts to one campaign for today or body.date.
function Server:simulate(b)
  if b.days == nil and b.campaign_id == nil then
    return control_error(422, "days or campaign_id expected (days of sending, or counts for one campaign)")
  end
  if b.days ~= nil then
    local sim = require "coldsend.sandbox.simulate"
    if not V.is_int(b.days) or b.days < 1 or b.days > sim.MAX_DAYS then
      return control_error(422, "days must be an integer 1.." .. sim.MAX_DAYS)
    end
    if b.seed ~= nil and not exact_count(b.seed, 1) then
      return control_error(422, "seed must be a positive integer (at most 2^53)")
    end
    if b.start ~= nil and not sim.is_date(b.start) then
      return control_error(422, "start must be a date YYYY-MM-DD")
    end
    return json_response(200, sim.run(self, b.days, b.seed, b.start))
  end
  local c = type(b.campaign_id) == "string" and self.state.campaigns[b.campaign_id:lower()]
  if not c then return control_error(404, "Campaign not found") end
  local date = b.date or os.date("!%Y-%m-%d")
  if not V.parse_date(date) then return control_error(422, "date must be YYYY-MM-DD") end
  local kinds = { "sent", "opened", "replied", "bounced", "unsubscribed" }
  -- every count checked before any is added: a refused call changes nothing
  for _, k in ipairs(kinds) do
    if not exact_count(b[k] or 0, 0) then
      return control_error(422, k .. " must be a non-negative integer (at most 2^53)")
    end
  end
  local d = c.daily[date] or { sent = 0, opened = 0, replied = 0, bounced = 0, unsubscribed = 0 }
  c.daily[date] = d
  for _, k in ipairs(kinds) do
    local n = b[k] or 0
    d[k] = d[k] + n
    c.stats[k] = c.stats[k] + n
  end
  return json_response(200, { success = true, stats = c.stats })
end

return M
