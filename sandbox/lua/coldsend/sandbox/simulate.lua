--- coldsend.sandbox.simulate: days of sending activity for ACTIVE campaigns.
-- `POST /__sandbox/simulate {"days": N, "seed": S, "start": D}` runs N
-- days from D, else from the day after the last one simulated (the first
-- time: today, UTC). Each
-- ACTIVE campaign sends on its `sending_days` only, up to its daily limit
-- per inbox (the inbox's own `daily_limit` when the campaign has none;
-- ramped up by `ramp_up_increment` a sending day when ramp-up is on, to
-- `ramp_up_max_limit`) times its inboxes, and no more than its sending
-- window allows at one email per inbox every 4 minutes. Follow-ups due
-- (their `wait_days` after the lead's previous email, when their trigger
-- holds) go before new leads. Each email picks a variant by
-- `distribution_percent`; a first email bounces 2% of the time; with
-- `enable_tracking` 45% are opened; replies come from 9% of opened and 3%
-- of unopened emails (5% without tracking); 0.5% unsubscribe. Opens and
-- replies are counted on the day of the email. A campaign whose leads have
-- all had their last email (or replied, bounced, unsubscribed) becomes
-- COMPLETED. The random numbers come from a Park-Miller generator seeded
-- with S (default: the sandbox's --seed, else 1) when a seed is given or
-- on the first call: the same seed over the same campaigns gives the same
-- numbers. The sandbox's "today" (the timeline's default end) becomes the
-- last simulated day.
-- @module coldsend.sandbox.simulate
local M = {}

local floor, min, max = math.floor, math.min, math.max

M.BOUNCE, M.OPEN, M.REPLY_OPENED, M.REPLY_UNOPENED, M.REPLY_UNTRACKED, M.UNSUBSCRIBE =
  0.02, 0.45, 0.09, 0.03, 0.05, 0.005
M.MINUTES_PER_EMAIL = 4
M.DEFAULT_INBOX_LIMIT = 50
M.MAX_DAYS = 366

-- Park-Miller minimal standard generator: exact in doubles on every Lua.
local function next_random(sim)
  sim.rng = (sim.rng * 16807) % 2147483647
  return sim.rng / 2147483647
end

local function day_of(t) return os.date("!%Y-%m-%d", t) end

-- Noon UTC of a YYYY-MM-DD date, without the local zone.
local function noon(date)
  local y, m, d = date:match("^(%d+)-(%d+)-(%d+)$")
  local t = os.time { year = tonumber(y), month = tonumber(m), day = tonumber(d), hour = 12 }
  local lt, ut = os.date("*t", t), os.date("!*t", t)
  lt.isdst = false
  return t + (os.time(lt) - os.time(ut))
end

-- ISO weekday, 1 = Monday.
local function weekday(t)
  local w = tonumber(os.date("!%w", t))
  return w == 0 and 7 or w
end

local function pick_variant(sim, variants)
  local r, acc = next_random(sim) * 100, 0
  for i, v in ipairs(variants) do
    acc = acc + (tonumber(v.distribution_percent) or 0)
    if r < acc then return i end
  end
  return #variants
end

-- The emails a campaign may send today (its k-th sending day).
local function capacity(srv, c, k)
  local per_inbox = c.daily_limit_per_inbox
  if type(per_inbox) ~= "number" then
    per_inbox = math.huge
    for _, id in ipairs(c.inbox_ids) do
      local ib = srv.state.inboxes[id]
      per_inbox = min(per_inbox, ib and ib.daily_limit or M.DEFAULT_INBOX_LIMIT)
    end
    if per_inbox == math.huge then per_inbox = M.DEFAULT_INBOX_LIMIT end
  end
  if c.ramp_up_enabled == true then
    per_inbox = min(per_inbox, (c.ramp_up_increment or 50) * k, c.ramp_up_max_limit or 500)
  end
  local window = (c.sending_window_end or 17) * 60 + (c.sending_window_end_minute or 0)
    - (c.sending_window_start or 9) * 60 - (c.sending_window_start_minute or 0)
  per_inbox = min(per_inbox, max(0, floor(window / M.MINUTES_PER_EMAIL)))
  return per_inbox * #c.inbox_ids
end

local function trigger_holds(l, step)
  if step.trigger_type == "NOT_OPENED" then return not l.email_opened end
  if step.trigger_type == "OPENED_BUT_NOT_REPLIED" then return l.email_opened == true end
  return true -- NOT_REPLIED: a lead that replied has no next step
end

-- Schedules the lead's next follow-up after step index i (0: the first
-- email) sent on day n, or ends its sequence.
local function schedule(c, l, i, n)
  local step = c.sequences[i + 1]
  if step then
    l.sim = { next = i + 1, due = n + (tonumber(step.wait_days) or 1) }
  else
    l.sim = { done = true }
  end
end

-- One email to lead l (step index i: 0 the first email) on day n.
local function send(sim, c, l, i, n, iso, counts)
  local variants = i == 0 and c.variants or c.sequences[i].variants
  pick_variant(sim, variants)
  l.last_contacted_at = iso
  l.sequence_step = i + 1
  if i == 0 and next_random(sim) < M.BOUNCE then
    counts.bounced = counts.bounced + 1
    l.status, l.delivery_status, l.sim = "BOUNCED", "BOUNCED", { done = true }
    return
  end
  counts.sent = counts.sent + 1
  l.delivery_status = "DELIVERED"
  if l.status == "PENDING" then l.status = "SENT" end
  local opened = false
  if c.enable_tracking == true and next_random(sim) < M.OPEN then
    opened = true
    counts.opened = counts.opened + 1
    if not l.email_opened then l.opened_at = iso end
    l.email_opened = true
    if l.status == "SENT" then l.status = "OPENED" end
  end
  local p = c.enable_tracking ~= true and M.REPLY_UNTRACKED or (opened and M.REPLY_OPENED or M.REPLY_UNOPENED)
  if next_random(sim) < p then
    counts.replied = counts.replied + 1
    l.status, l.email_replied, l.replied_at, l.sim = "REPLIED", true, iso, { done = true }
    return
  end
  if next_random(sim) < M.UNSUBSCRIBE then
    counts.unsubscribed = counts.unsubscribed + 1
    l.status, l.unsubscribed, l.sim = "UNSUBSCRIBED", true, { done = true }
    return
  end
  schedule(c, l, i, n)
end

-- One day of one campaign: follow-ups due first, then new leads.
local function campaign_day(srv, sim, c, n, t, date)
  local counts = { sent = 0, opened = 0, replied = 0, bounced = 0, unsubscribed = 0 }
  local on = false
  for _, d in ipairs(c.sending_days) do if d == weekday(t) then on = true end end
  if on and #c.variants > 0 then
    c.sim_days = (c.sim_days or 0) + 1
    local left = capacity(srv, c, c.sim_days)
    local iso = date .. "T" .. string.format("%02d:%02d:00Z", c.sending_window_start or 9,
      c.sending_window_start_minute or 0)
    for _, l in ipairs(c.leads.list) do
      if left <= 0 then break end
      local s = l.sim
      -- a follow-up whose trigger does not hold is skipped: the next one
      -- counts its wait from the skipped one's day
      while s and s.next and s.due <= n and not trigger_holds(l, c.sequences[s.next]) do
        schedule(c, l, s.next, s.due)
        s = l.sim
      end
      if s and s.next and s.due <= n then
        send(sim, c, l, s.next, n, iso, counts)
        left = left - 1
      end
    end
    for _, l in ipairs(c.leads.list) do
      if left <= 0 then break end
      if l.sim == nil and l.status == "PENDING" then
        send(sim, c, l, 0, n, iso, counts)
        left = left - 1
      end
    end
  end
  if counts.sent + counts.bounced > 0 then
    local d = c.daily[date] or { sent = 0, opened = 0, replied = 0, bounced = 0, unsubscribed = 0 }
    c.daily[date] = d
    for k, v in pairs(counts) do
      d[k] = d[k] + v
      c.stats[k] = c.stats[k] + v
    end
  end
  -- every lead has had its last email: the campaign is done
  local done = #c.leads.list > 0
  for _, l in ipairs(c.leads.list) do
    if not (l.sim and l.sim.done) then done = false break end
  end
  if done then c.status = "COMPLETED" end
  return counts
end

--- Runs `days` days; returns the answer of the control call.
-- @param srv the sandbox server
-- @int days 1..366
-- @param seed an integer, or nil
-- @param start the first day (YYYY-MM-DD), or nil: the day after the last
-- one simulated, else today
function M.run(srv, days, seed, start)
  local st = srv.state
  st.sim = st.sim or {}
  local sim = st.sim
  if seed or not sim.rng then
    local s = floor(tonumber(seed or srv.opts.seed or 1)) % 2147483647
    sim.rng = s <= 0 and s + 2147483646 or s
  end
  local first = start and noon(start) or sim.last and (noon(sim.last) + 86400) or noon(day_of(os.time()))
  local totals = {}
  local per = {}
  for i = 0, days - 1 do
    local t = first + i * 86400
    local date = day_of(t)
    sim.n = (sim.n or 0) + 1
    for _, c in ipairs(st.campaign_list) do
      if c.status == "ACTIVE" then
        local counts = campaign_day(srv, sim, c, sim.n, t, date)
        local p = per[c.campaign_id]
        if not p then
          p = { campaign_id = c.campaign_id, sent = 0, opened = 0, replied = 0, bounced = 0, unsubscribed = 0 }
          per[c.campaign_id] = p
          totals[#totals + 1] = p
        end
        for k, v in pairs(counts) do p[k] = p[k] + v end
        p.status = c.status
      end
    end
    sim.last = date
  end
  st.today = sim.last
  return { success = true, days = days, from_date = day_of(first),
    to_date = sim.last, campaigns = totals }
end

--- The sandbox's today: the last simulated day when it is later than the
-- real one.
function M.today(srv)
  local real = day_of(os.time())
  local sim = srv.state.today
  return (sim and sim > real) and sim or real
end

--- Whether s is a real date YYYY-MM-DD (as the simulation reads it).
function M.is_date(s)
  if type(s) ~= "string" or not s:match("^%d%d%d%d%-%d%d%-%d%d$") then return false end
  return day_of(noon(s)) == s
end

return M
