--- coldsend.ratelimit: the API's 100 requests/minute and 1,000/hour, held exactly.
--
--   local lim = ratelimit.new(api_key, { per_minute = 100, per_hour = 1000 })
--   local wait, ticket = lim:acquire(now, lease) -- 0: send; else sleep `wait` and ask again
--   ... send the request (its timeout at most `lease` seconds) ...
--   -- once the answer (or the failure) is in; false: sleep a millisecond, call again
--   lim:done(ticket, now, res.headers, now_wall, stated_wait, lowered)
--
-- `lowered` is true when the header names are known to be lower-case (the
-- libcurl transport's): then none is searched case-insensitively.
--
-- The path of a request allowed at once allocates nothing: `done` keeps
-- the ticket for the limiter's next `acquire`, so a ticket is not used
-- after its `done`.
--
-- `now` is a monotonic clock in seconds and `now_wall` Unix seconds; both
-- are passed in (nothing here sleeps, nor reads a clock but `new`, which
-- reads `opts.clock` to let go of rings whose windows are over), so tests
-- run on a fake clock.
--
-- The guarantee. Each window (a minute holding `per_minute`, an hour
-- holding `per_hour`) is a ring of `limit` slots. A request takes the
-- ring's next slot, and only once that slot is free; it holds it from its
-- reservation until one period after its answer arrived (after `now +
-- lease + period` when `done` never comes; an answer later than its
-- lease still holds the slot a period after it, unless the slot was taken
-- again). So at any instant at most `limit` requests are live, and a
-- request the server saw at time a (its reservation <= a <= its answer)
-- is live over all of [a, a + period): any
-- `period`-long window of the server's clock holds at most `limit` of the
-- key's requests, whatever the latency, concurrency or interleaving. It is
-- the sliding-window log, with the answer time standing in for the unknown
-- arrival time. Slots are taken in order (the ring is first in, first
-- out), so a slow request delays the one `limit` places after it even if
-- later slots freed first: never more than the limit, sometimes a little
-- less.
--
-- Every limiter of the same API key (and the same clock) in the process
-- shares its rings: the API counts per key, not per client object. The
-- default store is kept in a weak-valued registry indexed by the clock
-- (`opts.clock`, the client's clock function; limiters made without one
-- share among themselves) and a
-- fingerprint of the key (two FNV-1a hashes, see `ratelimit.fingerprint`);
-- the key itself is never stored, and appears in no `tostring` or error.
-- With a clock, a key's rings outlive its limiters until the last request
-- they allowed has left its windows (read on the clock when a limiter is
-- made), so limiters made and dropped one after another share a budget.
-- Limiters of one key in the registry must use the same limits (a ring is
-- named by its size and period, so other limits would be a budget of
-- their own): other limits raise an error naming the option, until the
-- key's earlier limiters are garbage and their requests out of their
-- windows. A store given in `opts.store` is
-- not checked: its users must agree on the limits.
--
-- The server tightens the budget. A stated wait (`stated_wait`: the
-- server's Retry-After / X-RateLimit-Reset / "Retry after N seconds" on a
-- 429 or when X-RateLimit-Remaining is 0, read by core.server_wait) holds
-- every request of the key for exactly that long from the answer, capped
-- at the longest window. X-RateLimit-Remaining = R with X-RateLimit-Reset
-- T allows at most R more requests before T (less the requests of this
-- key reserved after the one answered, which the server may not have
-- counted yet) in the window the headers describe: the minute (the
-- reference's example shows `X-RateLimit-Limit: 100`), unless
-- `X-RateLimit-Limit` equals the hour limit; T is capped at one period.
-- For one server window (the same T) a later answer only lowers R; one
-- about a later window replaces the hold, one about an earlier window is
-- stale and ignored. The rings apply as well: the server's word never
-- loosens them.
--
-- `cfg` is nil (the defaults), false (no limiting: `acquire` always
-- returns 0), or `{ per_minute = n | false, per_hour = n | false,
-- minute_seconds = s, hour_seconds = s }`, where n is an integer >= 1 and
-- false switches that window off; `minute_seconds` (default 60) and
-- `hour_seconds` (default 3600) shorten the windows for tests against a
-- server enforcing short windows (the sandbox's `rate_window`).
--
-- Store interface (`ratelimit.new(key, cfg, { store = s })`), so that
-- OpenResty can keep the rings in a lua_shared_dict shared by workers:
--
--   s:ring(name)    -> a table-like ring: fields `head` (reservations so
--                      far), 0 .. limit-1 (the instant each slot frees),
--                      `till` and `left` (the server's hold); nil when unset
--   s:lock(name)    -> true, nil when another process holds it, or nil
--                      and a reason when it cannot be taken (no room)
--   s:unlock(name)
--   s.failed        set true by a ring write that could not be stored
--                   (the limiter clears it before its writes)
--   s.lockless      true: lock and unlock are not needed (one Lua state)
--   s.resolution    seconds the users' clock may lag the true time
--
-- Every read and write of a reservation happens between lock and unlock,
-- and nothing in between yields, so within one Lua state no lock is needed
-- (the memory store, whose rings are C userdata on PUC Lua and tables on
-- LuaJIT, see `memory_store`);
-- `coldsend.ratelimit_ngx` locks across nginx workers with the dict's
-- atomic `safe_add`, and its rings read and write dict entries. A busy lock
-- makes `acquire` answer a wait of a millisecond; a lock or a reservation
-- the store has no room for, a wait of a second (nothing is sent on a
-- reservation that is not stored). Slots are held
-- `resolution` longer (ngx.now() counts whole milliseconds). Ring names
-- are "<fingerprint>:minute:<limit>:<period>", "<fingerprint>:hour:<limit>:<period>"
-- and "<fingerprint>:hold"; every user of one store must pass the same
-- clock (nginx workers share CLOCK_MONOTONIC, the facade's default).
-- @module coldsend.ratelimit
local retry = require "coldsend.retry"
-- misuse is reported at the caller's line, as every option check is
local raise = require("coldsend.options").raise
local core = require "coldsend.core"

local M = {}

local floor, max, min = math.floor, math.max, math.min

--- The limits used for a window `cfg` leaves out (or when `cfg` is nil): the API's 100 per minute and 1,000 per hour.
M.DEFAULTS = { per_minute = 100, per_hour = 1000 }

-- the options of `cfg`
local KNOWN = { per_minute = true, per_hour = true, minute_seconds = true, hour_seconds = true }

local MIN_WAIT = 0.001
-- the wait answered when the store has no room for a reservation
local FULL_WAIT = 1
-- how often `done` tries a lock another worker holds before it asks its
-- caller to wait
local DONE_TRIES = 10

local WINDOWS = {
  { option = "per_minute", length = "minute_seconds", suffix = ":minute:", period = 60, unit = "min" },
  { option = "per_hour", length = "hour_seconds", suffix = ":hour:", period = 3600, unit = "h" },
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

-- On PUC Lua its rings are C userdata (src/ratelimit.c) read and written
-- like the table rings of the store interface, of the size their name
-- gives (none: the hold), and its limiters' `acquire` and `done` are one C
-- call each: 2k instructions per request rather than 6.5k on Lua 5.4. On
-- LuaJIT, whose compiled Lua path costs under 1k and a call into C about
-- as much, they are tables and the Lua path runs.
local C_RINGS = rawget(_G, "jit") == nil

local memory_store_mt = {
  __name = "coldsend.ratelimit.store",
  __index = {
    lockless = true,
    ring = function(self, name)
      local r = self.rings[name]
      if not r then
        r = self.c and core.ratelimit_ring(tonumber(name:match("^[^:]*:[^:]*:[^:]*:(%d+):[^:]*$")) or 0)
          or {}
        self.rings[name] = r
      end
      return r
    end,
  },
}

--- A store that keeps the rings in this Lua state. `rings` (for tests):
-- "c" or "table", the default C on PUC Lua and tables on LuaJIT (see above).
function M.memory_store(rings)
  local c = C_RINGS
  if rings ~= nil then c = rings == "c" end
  return setmetatable({ rings = {}, c = c }, memory_store_mt)
end


-- clock -> fingerprint -> memory store, alive as long as a limiter of that
-- key (and the clock) is. The instants a store holds mean nothing on
-- another clock, so limiters on different clocks (fake clocks in tests)
-- do not share.
local registry = setmetatable({}, { __mode = "k" })
local DEFAULT_CLOCK = {}
-- clock -> fingerprint -> memory store with a request still in one of its
-- windows: kept even when no limiter of the key is left (a client made
-- per request and dropped must not leave the next one a fresh budget).
-- A reservation pins its store; `new` unpins the stores of its clock whose
-- last window is over (`busy_until` on that clock).
local pinned = setmetatable({}, { __mode = "k" })

local function pin(clock)
  local pins = pinned[clock]
  if not pins then
    pins = {}
    pinned[clock] = pins
  end
  local now = clock()
  for fp, s in pairs(pins) do
    -- C rings keep busy_until on the key's hold ring (src/ratelimit.c)
    local hold = s.c and s.rings[fp .. ":hold"]
    if (hold and hold.busy_until or s.busy_until) <= now then
      pins[fp] = nil
      if hold then hold.pinned = false end
    end
  end
  return pins
end

local function config_error(name, expected, v)
  local got = type(v) == "number" and string.format("%.14g", v) or type(v)
  raise(string.format("bad value for 'rate_limit.%s' (%s expected, got %s)", name, expected, got))
end

local function check_limit(name, v)
  if v == nil then return M.DEFAULTS[name] end
  if v == false then return false end
  -- at most 2^53 - 1: a ring's slot count, an integer on every Lua (larger
  -- ones were refused deep inside, by string.format or the C rings)
  if not (type(v) == "number" and v >= 1 and v == floor(v) and v < 2 ^ 53) then
    config_error(name, "integer 1 .. 2^53 - 1 or false", v)
  end
  return v
end

local function check_length(name, v, default)
  if v == nil then return default end
  if not (type(v) == "number" and v > 0 and v < math.huge) then
    config_error(name, "number of seconds > 0", v)
  end
  return v
end

-- true, or the first option whose window differs between two limits
-- tables (see M.new)
local function same_limits(a, b)
  for _, w in ipairs(WINDOWS) do
    if a[w.option] ~= b[w.option] then return w.option end
  end
  return true
end

local Limiter = {}
Limiter.__index = Limiter
local reserve, settle -- (below)
Limiter.__name = "coldsend.ratelimit"

function Limiter:__tostring()
  local parts = {}
  for _, b in ipairs(self.windows) do
    parts[#parts + 1] = string.format("%d/%s", b.limit, b.unit)
  end
  if #parts == 0 then return "coldsend.ratelimit off" end
  return string.format("coldsend.ratelimit %s (%s)", self.fingerprint, table.concat(parts, ", "))
end

--- A limiter for `key` (see the header for cfg, opts.store and opts.clock).
function M.new(key, cfg, opts)
  if type(key) ~= "string" or key == "" then
    raise(string.format("bad value for 'api_key' (non-empty string expected, got %s)",
      type(key) == "string" and "empty string" or type(key)))
  end
  if cfg ~= nil and cfg ~= false and type(cfg) ~= "table" then
    raise(string.format("bad value for 'rate_limit' (table or false expected, got %s)", type(cfg)))
  end
  local fp = M.fingerprint(key)
  local self = setmetatable({ fingerprint = fp, windows = {}, n = 0, longest = 0, target = 1 },
    Limiter)
  if cfg == false then return self end
  cfg = cfg or {}
  for k in pairs(cfg) do
    if not KNOWN[k] then
      -- a misspelt option would otherwise leave the default in force
      raise(type(k) == "string" and require("coldsend.help").unknown_option(k, "rate_limit", KNOWN)
        or string.format("unknown option %s (a %s) for rate_limit", tostring(k), type(k)))
    end
  end
  local limits = {} -- option -> "<limit> per <period> s" or "off"
  for _, w in ipairs(WINDOWS) do
    local limit = check_limit(w.option, cfg[w.option])
    local period = check_length(w.length, cfg[w.length], w.period)
    limits[w.option] = limit and string.format("%d per %.14g s", limit, period) or "off"
    if limit then
      self.windows[#self.windows + 1] = {
        name = string.format("%s%s%d:%.14g", fp, w.suffix, limit, period),
        option = w.option, limit = limit, period = period, unit = w.unit,
      }
      self.longest = max(self.longest, period)
    end
  end
  local store = opts and opts.store
  if not store then
    local clock = opts and opts.clock or DEFAULT_CLOCK
    local stores = registry[clock]
    if not stores then
      stores = setmetatable({}, { __mode = "v" })
      registry[clock] = stores
    end
    local pins = clock ~= DEFAULT_CLOCK and pin(clock) or nil
    if stores[fp] and same_limits(stores[fp].limits, limits) ~= true then
      -- limiters no longer in use may still hold the store
      collectgarbage()
    end
    store = stores[fp]
    if store then
      -- rings are named by their limits: other limits would be a budget
      -- of their own, and the key's clients together would overspend
      local option = same_limits(store.limits, limits)
      if option ~= true then
        raise(string.format("bad value for 'rate_limit.%s' (%s expected, as the key's other"
          .. " clients in this process have it, or had it for requests still in their window:"
          .. " one key has one budget; got %s)", option,
          store.limits[option], limits[option]))
      end
    else
      store = M.memory_store()
      store.limits, store.pins, store.fp, store.busy_until = limits, pins, fp, -math.huge
      stores[fp] = store
    end
  end
  self.store = store -- a strong reference keeps the shared rings alive
  self.n = #self.windows
  self.locking = not store.lockless
  self.resolution = store.resolution or 0
  for i, b in ipairs(self.windows) do
    b.ring = store:ring(b.name)
    self["r" .. i], self["l" .. i], self["p" .. i] = b.ring, b.limit, b.period
  end
  self.hold = store:ring(fp .. ":hold")
  if self.n > 0 and getmetatable(store) == memory_store_mt and store.c then
    self._reserve, self._settle = core.ratelimit_limiter(self.hold, self.r1, self.p1, self.r2,
      self.p2, self.longest, store.pins ~= nil, M._tighten)
  end
  if not M.preempting() then self.acquire, self.done = self._reserve, self._settle end
  return self
end

-- Reserves a slot in every window and returns 0 and a ticket (for
-- `done`), or reserves nothing and returns the seconds to wait before
-- asking again (never more than a window's period, unless the server's
-- stated wait is longer: a slot whose request is still in flight is asked
-- about again after a period). `lease` (default 0) is the longest the
-- request can take (its timeout): the slots stay taken that long if
-- `done` never comes. The Lua path of the stores other than the memory
-- store, whose rings src/ratelimit.c reserves and settles in C (the same
-- steps; spec/ratelimit_c_spec.lua compares the two).
function reserve(self, now, lease)
  -- the windows' rings, limits and periods sit in the limiter itself
  -- (r1, l1, p1; r2, l2, p2 when there are two): Lua 5.4 pays for every
  -- table read and call on this path, once per request
  local r1 = self.r1
  if not r1 then return 0 end
  local store, locking = self.store, self.locking
  if locking then
    local locked, why = store:lock(self.fingerprint)
    if not locked then return why and FULL_WAIT or MIN_WAIT end
  end
  local wait = 0
  local till = self.hold.till
  if till and till > now then wait = till - now end
  -- each window: its next slot, and the server's hold on it
  local h1 = r1.head or 0
  local s1 = h1 % self.l1
  local free_at = r1[s1]
  if free_at and free_at > now then
    -- a slot still in flight frees a period after its answer, which may
    -- come any moment: ask again after one period at most
    local w, p = free_at - now, self.p1
    if w > p then w = p end
    if w > wait then wait = w end
  end
  local t1, left1 = r1.till, nil
  if t1 and t1 > now then
    left1 = r1.left or 0
    if left1 < 1 and t1 - now > wait then wait = t1 - now end
  end
  local r2 = self.r2
  local h2, s2, left2
  if r2 then
    h2 = r2.head or 0
    s2 = h2 % self.l2
    free_at = r2[s2]
    if free_at and free_at > now then
      local w, p = free_at - now, self.p2
      if w > p then w = p end
      if w > wait then wait = w end
    end
    local t2 = r2.till
    if t2 and t2 > now then
      left2 = r2.left or 0
      if left2 < 1 and t2 - now > wait then wait = t2 - now end
    end
  end
  if wait > 0 then
    if locking then store:unlock(self.fingerprint) end
    -- at least a millisecond: a caller adding a tinier wait to a large
    -- clock value would not move it, and ask again forever
    return max(wait, MIN_WAIT)
  end
  local ends = now + (lease or 0) + self.resolution
  if locking then store.failed = nil end
  -- a slot is written before its head: one that fails to be stored leaves
  -- the ring skipping a free slot or holding one for nothing, never short
  r1[s1] = ends + self.p1
  r1.head = h1 + 1
  if left1 then r1.left = left1 - 1 end
  if r2 then
    r2[s2] = ends + self.p2
    r2.head = h2 + 1
    if left2 then r2.left = left2 - 1 end
  end
  if locking then
    store:unlock(self.fingerprint)
    if store.failed then return FULL_WAIT end
  end
  local pins = store.pins
  if pins then
    -- pinned until its last window is over (unpinned only once it was)
    local busy = ends + self.longest
    if busy > store.busy_until then store.busy_until = busy; pins[store.fp] = store end
  end
  local ticket = self.spare
  if ticket then
    self.spare = nil
    ticket[1], ticket[2], ticket[3] = h1, h2, ends
    return 0, ticket
  end
  return 0, { h1, h2, ends }
end

-- A header by its lower-case name: transports lower-case names, but a user
-- transport may not. Only a name of the same length can match, so the
-- usual answer (no such header) lowers none (retry.header lowers each).
local function header(headers, name)
  local v = headers[name]
  if v ~= nil then return v end
  local len = #name
  for k, value in next, headers do
    if type(k) == "string" and #k == len and k:lower() == name then return value end
  end
  return nil
end

-- The window the server's headers describe (see the header): its index
-- in self.windows.
local function target(self, headers, lowered)
  local s = headers["x-ratelimit-limit"]
  if s == nil and not lowered then s = header(headers, "x-ratelimit-limit") end
  if s ~= self.limit_s then -- the same every time: read once
    self.limit_s, self.target = s, 1
    local limit, b1, b2 = s and tonumber(s), self.windows[1], self.windows[2]
    if b2 and limit == b2.limit and limit ~= b1.limit then self.target = 2 end
  end
  return self.target
end

-- Applies the server's word (see the header), under the lock. A stated
-- wait holds the whole key (the later end wins). Remaining/Reset hold the
-- window they describe: a statement about the same server window (the
-- same reset, to half a second) can only lower the allowance; one about
-- a later window replaces it; one about an earlier window is stale (an
-- answer overtaken by a later one) and ignored.
local function tighten(self, headers, now, now_wall, stated, ticket, lowered)
  if stated and stated >= 0 then
    local till = now + min(stated, self.longest)
    local hold = self.hold
    local old = hold.till
    if till > now and not (old and old >= till) then hold.till = till end
    return
  end
  local raw = headers["x-ratelimit-remaining"]
  if raw == nil then
    if lowered then return end
    raw = header(headers, "x-ratelimit-remaining")
  end
  local remaining = tonumber(raw)
  if not remaining and type(raw) == "string" then
    -- a repeated header arrives joined with ", ": the smallest holds
    for v in raw:gmatch("[^,]+") do
      v = tonumber(v)
      if v and v == v and not (remaining and remaining <= v) then remaining = v end
    end
  end
  -- a negative allowance (a server past its limit) is none
  if not remaining or remaining ~= remaining then return end
  local i = target(self, headers, lowered)
  local b = self.windows[i]
  local r = b.ring
  local reset_in = retry.window_wait(headers, now_wall)
  local till = now + min(reset_in or b.period, b.period)
  if till <= now then return end
  local left = max(floor(remaining), 0)
  if ticket then
    -- reservations made after the answered one may not be counted yet (a
    -- ticket of the C rings is the head number of both windows)
    local later = (r.head or 0) - (type(ticket) == "number" and ticket or ticket[i]) - 1
    if later > 0 then left = left - later end
  end
  local old = r.till
  if old and old > now then
    if till < old - 0.5 then return end
    if till <= old + 0.5 and (r.left or 0) <= left then return end
  end
  r.till = till
  r.left = max(left, 0)
end
M._tighten = tighten -- for the C rings' `done` (src/ratelimit.c)

-- After the answer (or the failure) of a request `acquire` allowed:
-- its slots stay taken one period from `now` (not from its lease, even
-- when `now` is past it, unless the slot was taken again), and
-- the server's headers tighten the budget (`stated`: the wait the server
-- stated, see the header; `headers` nil after a transport failure;
-- `lowered`: the header names are lower-case). ticket may be nil (a
-- request sent without a reservation); once settled, it is kept for the
-- next `acquire`. Returns true,
-- or false when another process held the lock and nothing was done: the
-- caller sleeps a millisecond and calls again (the slots meanwhile keep
-- their lease: later, never sooner).
function settle(self, ticket, now, headers, now_wall, stated, lowered)
  local r1 = self.r1
  if not r1 then return true end
  local store, locking = self.store, self.locking
  if locking then
    local fp = self.fingerprint
    local locked, why = store:lock(fp)
    for _ = 2, DONE_TRIES do
      if locked or why then break end
      locked, why = store:lock(fp)
    end
    if not (locked or why) then return false end
    -- no room for the lock: an answer's bookkeeping (its own slots, the
    -- server's limits) goes ahead unlocked
    locking = locked
  end
  local resolution = self.resolution
  if ticket then
    local ends, answered = ticket[3], now + resolution
    if answered ~= ends then
      -- a period after the answer, sooner or (a transport that overran its
      -- timeout) later, while the slot is still ours: taken again only a
      -- period after its lease
      local p, slot = self.p1, ticket[1] % self.l1
      if r1[slot] == ends + p then r1[slot] = answered + p end
      local r2 = self.r2
      if r2 then
        p, slot = self.p2, ticket[2] % self.l2
        if r2[slot] == ends + p then r2[slot] = answered + p end
      end
    end
  end
  -- lower-case names without X-RateLimit-Remaining, and no stated wait:
  -- nothing to tighten
  if headers and (stated ~= nil or not lowered or headers["x-ratelimit-remaining"] ~= nil) then
    tighten(self, headers, now, now_wall, stated, ticket, lowered)
  end
  -- a late answer or the server's hold: both end within the longest window
  local pins = store.pins
  if pins then
    local busy = now + resolution + self.longest
    if busy > store.busy_until then store.busy_until = busy; pins[store.fp] = store end
  end
  if locking then store:unlock(self.fingerprint) end
  if ticket then self.spare = ticket end
  return true
end

-- the Lua path; `new` sets the C one on the memory store's limiters
Limiter._reserve, Limiter._settle = reserve, settle

-- HAProxy preempts Lua code from a debug hook (it yields every
-- `tune.lua.forced-yield` instructions wherever the code can yield), and
-- another caller of the same Lua state could then run in the middle of a
-- reservation. A limiter made inside HAProxy (`new` sets no instance
-- methods) makes its reservations and answers, while a hook is set,
-- inside a call from C (string.gsub's replacement function), where no
-- yield is possible. Elsewhere `acquire` and `done` are `reserve` and
-- `settle` themselves: nothing is added to the common path.
local gethook, gsub = debug and debug.gethook, string.gsub

--- True inside HAProxy (its `core` global), where Lua code is preempted.
function M.preempting()
  local c = rawget(_G, "core")
  return type(c) == "table" and type(c.register_service) == "function"
end

--- Reserves a slot in every window: 0 and a ticket, or the seconds to
-- wait (see `reserve` above).
function Limiter:acquire(now, lease)
  if gethook and gethook() and self.n > 0 then
    local wait, ticket
    gsub("x", "x", function() wait, ticket = self._reserve(self, now, lease) end)
    return wait, ticket
  end
  return self._reserve(self, now, lease)
end

--- After the answer (or the failure) of a request `acquire` allowed:
-- true, or false to be called again after a millisecond (see `settle`
-- above).
function Limiter:done(ticket, now, headers, now_wall, stated, lowered)
  if gethook and gethook() and self.n > 0 then
    local ok
    gsub("x", "x", function()
      ok = self._settle(self, ticket, now, headers, now_wall, stated, lowered)
    end)
    return ok
  end
  return self._settle(self, ticket, now, headers, now_wall, stated, lowered)
end

--- The server's headers of an answer to a request sent without a ticket
-- (`done(nil, ...)`).
function Limiter:update(headers, now, now_wall, stated)
  return self:done(nil, now, headers, now_wall, stated)
end

--- The requests each window would allow at `now`, by option name (for
-- tests and introspection): { per_minute = n, per_hour = n }. The server's
-- holds cap them.
function Limiter:available(now)
  local out, till = {}, self.hold.till
  for _, b in ipairs(self.windows) do
    local r, n = b.ring, 0
    if not (till and till > now) then
      for slot = 0, b.limit - 1 do
        local free_at = r[slot]
        if not free_at or free_at <= now then n = n + 1 end
      end
      if r.till and r.till > now then n = min(n, max(r.left or 0, 0)) end
    end
    out[b.option] = n
  end
  return out
end

return M
