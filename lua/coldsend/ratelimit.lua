--- coldsend.ratelimit: client-side token buckets for the API's 100 requests/minute and 1,000/hour.
--
--   local lim = ratelimit.new(api_key, { per_minute = 100, per_hour = 1000 })
--   local wait = lim:acquire(now)          -- 0: a token was taken; else sleep `wait`, then ask again
--   lim:update(res.headers, now, now_wall) -- after each response: the server's count tightens ours
--
-- `now` is a monotonic clock in seconds and `now_wall` Unix seconds; both
-- are passed in (nothing here reads a clock or sleeps), so tests run on a
-- fake clock.
--
-- Every limiter of the same API key in the process shares its buckets: the
-- API counts per key, not per client object. The default store is kept in a
-- weak-valued registry indexed by a fingerprint of the key (two FNV-1a
-- hashes, see `ratelimit.fingerprint`); the key itself is never stored, and
-- appears in no `tostring` or error.
--
-- Each bucket holds `limit` tokens and refills continuously at
-- limit/period, so a burst of `limit` goes at once and one window can see
-- up to twice the limit while the bucket refills. When a response says fewer requests remain than the bucket
-- holds (`X-RateLimit-Remaining`), the bucket drops to that count and does
-- not refill before the server's window resets (`X-RateLimit-Reset`, never
-- more than one period ahead, so a skewed server clock cannot freeze us).
-- The headers are taken to describe the minute window (the reference's
-- example shows `X-RateLimit-Limit: 100`), unless `X-RateLimit-Limit`
-- equals the hour limit.
--
-- `cfg` is nil (the defaults), false (no limiting: `acquire` always
-- returns 0), or `{ per_minute = n | false, per_hour = n | false }`, where
-- n is an integer >= 1 and false switches that bucket off. Limiters of one
-- key with different limits share the token counts, each applying its own
-- limit.
--
-- Store interface (`ratelimit.new(key, cfg, { store = s })`), so that
-- OpenResty can keep the buckets in a lua_shared_dict shared by workers:
--
--   s:get(name)                       -> tokens, stamp, hold   (nil when unknown)
--   s:set(name, tokens, stamp, hold)
--
-- `name` is "<fingerprint>:minute" or "<fingerprint>:hour"; `tokens` a
-- number (fractional while refilling), `stamp` the `now` it was counted at,
-- `hold` the `now` before which it does not refill (0: none). Every user of
-- one store must pass the same clock (CLOCK_MONOTONIC is system-wide, so
-- nginx workers may share it). `coldsend.ratelimit_ngx` is such a store
-- over a lua_shared_dict; its get/set pair is not atomic across workers, so
-- the limiter is then close rather than exact, and a 429 from the server
-- is still retried.
-- @module coldsend.ratelimit
local retry = require "coldsend.retry"

local M = {}

local floor, max, min = math.floor, math.max, math.min

--- The limits used for a bucket `cfg` leaves out (or when `cfg` is nil): the API's 100 per minute and 1,000 per hour.
M.DEFAULTS = { per_minute = 100, per_hour = 1000 }

-- A refill computed in floating point may stop a hair short of a token.
local ONE = 1 - 1e-9
local MIN_WAIT = 0.001

local WINDOWS = {
  { option = "per_minute", suffix = ":minute", period = 60, unit = "min" },
  { option = "per_hour", suffix = ":hour", period = 3600, unit = "h" },
}

-- Exclusive-or of two bytes, in arithmetic (LuaJIT has no ~ operator and
-- Lua 5.4 no bit library).
local function xor8(a, b)
  local r, bit = 0, 1
  for _ = 1, 8 do
    local x, y = a % 2, b % 2
    if x ~= y then r = r + bit end
    a, b, bit = (a - x) / 2, (b - y) / 2, bit * 2
  end
  return r
end

-- 32-bit FNV-1a. The product by the FNV prime (2^24 + 403) is split so
-- every intermediate stays below 2^53, exact in a double.
local function fnv1a32(s, h)
  for i = 1, #s do
    local low = h % 256
    h = h - low + xor8(low, s:byte(i))
    h = (h * 403 + (h % 256) * 16777216) % 4294967296
  end
  return h
end

--- A short, stable, non-reversible name for an API key: "fnv:" and 16 hex
-- digits. Not a secret-grade hash; it only has to tell keys apart.
function M.fingerprint(key)
  return string.format("fnv:%08x%08x", fnv1a32(key, 2166136261), fnv1a32(key, 3367941983))
end

local memory_store_mt = {
  __name = "coldsend.ratelimit.store",
  __index = {
    get = function(self, name)
      local cell = self.cells[name]
      if cell then return cell[1], cell[2], cell[3] end
      return nil
    end,
    set = function(self, name, tokens, stamp, hold)
      local cell = self.cells[name]
      if cell then
        cell[1], cell[2], cell[3] = tokens, stamp, hold
      else
        self.cells[name] = { tokens, stamp, hold }
      end
    end,
  },
}

--- A store that keeps the buckets in this Lua state.
function M.memory_store()
  return setmetatable({ cells = {} }, memory_store_mt)
end

-- fingerprint -> memory store, alive as long as a limiter of that key is.
local registry = setmetatable({}, { __mode = "v" })

local function config_error(name, expected, v)
  local got = type(v) == "number" and string.format("%.14g", v) or type(v)
  error(string.format("bad value for 'rate_limit.%s' (%s expected, got %s)", name, expected, got), 3)
end

local function check_limit(name, v)
  if v == nil then return M.DEFAULTS[name] end
  if v == false then return false end
  if not (type(v) == "number" and v >= 1 and v == floor(v) and v < math.huge) then
    config_error(name, "integer >= 1 or false", v)
  end
  return v
end

local Limiter = {}
Limiter.__index = Limiter
Limiter.__name = "coldsend.ratelimit"

function Limiter:__tostring()
  local parts = {}
  for _, b in ipairs(self.buckets) do
    parts[#parts + 1] = string.format("%d/%s", b.limit, b.unit)
  end
  if #parts == 0 then return "coldsend.ratelimit off" end
  return string.format("coldsend.ratelimit %s (%s)", self.fingerprint, table.concat(parts, ", "))
end

--- A limiter for `key` (see the header for cfg and opts.store).
function M.new(key, cfg, opts)
  if type(key) ~= "string" or key == "" then
    error(string.format("bad value for 'api_key' (non-empty string expected, got %s)",
      type(key) == "string" and "empty string" or type(key)), 2)
  end
  if cfg ~= nil and cfg ~= false and type(cfg) ~= "table" then
    error(string.format("bad value for 'rate_limit' (table or false expected, got %s)", type(cfg)), 2)
  end
  local fp = M.fingerprint(key)
  local self = setmetatable({ fingerprint = fp, buckets = {} }, Limiter)
  if cfg == false then return self end
  cfg = cfg or {}
  for _, w in ipairs(WINDOWS) do
    local limit = check_limit(w.option, cfg[w.option])
    if limit then
      self.buckets[#self.buckets + 1] = {
        name = fp .. w.suffix, option = w.option, limit = limit,
        period = w.period, rate = limit / w.period, unit = w.unit,
      }
    end
  end
  local store = opts and opts.store
  if not store then
    store = registry[fp]
    if not store then
      store = M.memory_store()
      registry[fp] = store
    end
  end
  self.store = store -- a strong reference keeps the shared buckets alive
  return self
end

-- The bucket's tokens at `now`, with its stamp and hold.
local function load(store, b, now)
  local tokens, stamp, hold = store:get(b.name)
  if tokens == nil then return b.limit, now, 0 end
  -- A `now` before the stamp: the clock went back, or another user of the
  -- store runs another clock (tests). Count no refill rather than a wait.
  if now < stamp then stamp = now end
  if hold > now + b.period then hold = now + b.period end
  local from = max(stamp, hold)
  if now > from then tokens = min(b.limit, tokens + (now - from) * b.rate) end
  return min(tokens, b.limit), now, hold
end

--- Takes one token from every bucket and returns 0, or takes none and
-- returns the seconds until every bucket has one.
function Limiter:acquire(now)
  local store, buckets = self.store, self.buckets
  local wait, state = 0, {}
  for i, b in ipairs(buckets) do
    local tokens, stamp, hold = load(store, b, now)
    state[i] = { tokens, stamp, hold }
    if tokens < ONE then
      wait = max(wait, max(hold - now, 0) + (1 - tokens) / b.rate)
    end
  end
  -- at least a millisecond: a caller adding a tinier wait to a large clock
  -- value would not move it, and ask again forever
  if wait > 0 then return max(wait, MIN_WAIT) end
  for i, b in ipairs(buckets) do
    local s = state[i]
    store:set(b.name, max(s[1] - 1, 0), s[2], s[3])
  end
  return 0
end

--- The tokens each bucket holds at `now`, by option name (for tests and
-- introspection): { per_minute = n, per_hour = n }.
function Limiter:available(now)
  local out = {}
  for _, b in ipairs(self.buckets) do
    out[b.option] = (load(self.store, b, now))
  end
  return out
end

-- The bucket the server's headers describe (see the header).
function Limiter:_target(headers)
  local limit = tonumber(retry.header(headers, "x-ratelimit-limit"))
  local minute, hour
  for _, b in ipairs(self.buckets) do
    if b.option == "per_minute" then minute = b else hour = b end
  end
  if hour and limit == hour.limit and not (minute and limit == minute.limit) then return hour end
  return minute
end

--- Lowers the bucket the headers describe to the server's
-- X-RateLimit-Remaining when that is below ours, and holds its refill until
-- X-RateLimit-Reset.
function Limiter:update(headers, now, now_wall)
  if not headers then return end
  local remaining = tonumber(retry.header(headers, "x-ratelimit-remaining"))
  if not remaining or remaining ~= remaining or remaining < 0 then return end
  local b = self:_target(headers)
  if not b then return end
  local tokens, stamp, hold = load(self.store, b, now)
  if remaining >= tokens then return end
  local reset_in = retry.reset_in(headers, now_wall)
  if reset_in then hold = max(hold, now + min(reset_in, b.period)) end
  self.store:set(b.name, floor(remaining), stamp, hold)
end

return M
