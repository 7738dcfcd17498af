--- coldsend.sandbox.access: who may call what, and how often: the API
-- key and its scopes, the sandbox's clock, and the sliding-window rate
-- limits with their X-RateLimit-* headers.
local socket = require "socket"

local M = {}

local Server = {}
--- Methods of the server, for coldsend.sandbox to mix into its Server.
M.methods = Server

local function scope_ok(granted, need)
  local res = need:match("^([^:]+):")
  for _, g in ipairs(granted) do
    if g == "*" or g == need or g == res .. ":all" then return true end
    -- the legacy scope set
    if g == res .. ":write" and not need:match(":read$") then return true end
  end
  return false
end

--- Whether the granted scopes satisfy need (itself, "*", "<resource>:all",
-- or the legacy "<resource>:write" for anything but ":read").
M.scope_ok = scope_ok

-- Returns granted scopes, or nil, status, body.
function Server:authenticate(req)
  local key = req.headers["x-api-key"]
  if key == nil or key == "" then
    return nil, 401, { detail = "API key required. Include your API key in X-API-Key header." }
  end
  if self.keys then
    local k = self.keys[key]
    if k then return k.scopes or { "*" }, key end
    if key == self.key then return { "*" }, key end
    return nil, 401, { detail = "Invalid or revoked API key" }
  end
  if key:sub(1, 3) ~= "cs_" or #key < 8 or key:find("[^%w_%-]") then
    return nil, 401, { detail = "Invalid or revoked API key" }
  end
  return { "*" }, key
end

--- The sandbox's clock (Unix seconds, fractional): the real time, or the
-- instant `POST /__sandbox/clock` set, which then moves only when told.
function Server:now()
  return self.clock_at or socket.gettime()
end

-- The enforced windows: { {limit, period}... }, the minute's first.
function Server:rate_windows()
  local o, w = self.opts, {}
  if o.rate_limit then w[#w + 1] = { o.rate_limit, o.rate_window } end
  if o.rate_limit_hour then w[#w + 1] = { o.rate_limit_hour, o.rate_window_hour } end
  return w
end

--- Counts a request of key against the sandbox's sliding-window rate
-- limits (when consume is true) and gives the X-RateLimit-* headers.
-- A request is allowed when every window [now - period, now) (half-open at
-- its start: a request exactly one period ago has left) holds fewer than
-- its limit of the key's accepted requests. The headers describe the
-- window with the fewest left (the minute on a tie): its limit, what is
-- left after this request, and when its oldest request leaves it (so the
-- count cannot rise before then). Returns headers, ok (false when a limit
-- is spent) and the whole seconds until the request would be allowed;
-- with rate limiting off, fixed headers and true.
-- @param key the API key (nil: an anonymous bucket)
-- @param consume whether to take one request from the windows
function Server:rate(key, consume)
  local now = self:now()
  local windows = self:rate_windows()
  if #windows == 0 then
    return { ["X-RateLimit-Limit"] = 100, ["X-RateLimit-Remaining"] = 100,
      ["X-RateLimit-Reset"] = math.floor(now) + 60 }, true
  end
  -- the key's accepted requests, oldest first, none older than the longest window
  local times = self.buckets[key or ""] or {}
  self.buckets[key or ""] = times
  local longest = 0
  for _, w in ipairs(windows) do longest = math.max(longest, w[2]) end
  local drop = 0
  while times[drop + 1] and times[drop + 1] <= now - longest do drop = drop + 1 end
  local n = #times
  if drop > 0 then
    for i = 1, n do times[i] = times[i + drop] end -- the tail becomes nil
    n = n - drop
  end
  local counts, ok, wait = {}, true, 0
  for i, w in ipairs(windows) do
    local first = n + 1
    while first > 1 and times[first - 1] > now - w[2] do first = first - 1 end
    counts[i] = { n - first + 1, first }
    if n - first + 1 >= w[1] then
      ok = false
      -- allowed once all but limit - 1 of them have left
      wait = math.max(wait, times[n - w[1] + 1] + w[2] - now)
    end
  end
  if consume and ok then
    times[n + 1] = now
    for _, c in ipairs(counts) do c[1] = c[1] + 1 end
  end
  local pick, left
  for i, w in ipairs(windows) do
    local l = math.max(0, w[1] - counts[i][1])
    if not left or l < left then pick, left = i, l end
  end
  local w, oldest = windows[pick], times[counts[pick][2]]
  return { ["X-RateLimit-Limit"] = w[1], ["X-RateLimit-Remaining"] = left,
    ["X-RateLimit-Reset"] = math.ceil((oldest or now) + w[2]) }, ok, math.max(1, math.ceil(wait))
end

return M
