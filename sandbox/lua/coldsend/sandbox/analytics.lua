--- coldsend.sandbox.analytics: the analytics endpoints (per-campaign
-- figures with the workspace's averages, and the daily timeline), from the
-- counts the simulation (coldsend.sandbox.simulate) or the control API adds.
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"
local schema = require "coldsend.sandbox.campaign_schema"
local E = require "coldsend.sandbox.endpoint"

local array = json.array
local detail, unprocessable = E.detail, E.unprocessable
local STATUSES = schema.STATUSES

local M = {}

local function frac(a, b)
  if b == 0 then return 0 end
  return math.floor(a / b * 10000 + 0.5) / 10000
end

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

return M
