--- coldsend.ratelimit_ngx: the rate limiter's rings in a lua_shared_dict.
--
-- Under OpenResty each worker is a separate process with its own Lua state,
-- so the default in-process store would give every worker a full budget of
-- its own. This store keeps the rings (see coldsend.ratelimit, "Store
-- interface") in a `lua_shared_dict`, so all workers of the host draw from
-- one budget per API key:
--
--   http { lua_shared_dict coldsend 1m; ... }
--
--   local store = require("coldsend.ratelimit_ngx").store("coldsend")
--   local lim = ratelimit.new(key, cfg, { store = store })  -- store nil: per worker
--
-- The facade does this by itself inside nginx (client option `shared_dict`).
-- Without the dict it warns once per worker in the error log and returns
-- nil, and the limiter falls back to per-worker rings.
--
-- Why it is exact across workers: a reservation reads a ring's head and
-- slot and writes them back, and those reads and writes happen only while
-- the worker holds the key's lock, a dict entry made with `safe_add`,
-- which the dict performs atomically under its own shared-memory mutex:
-- of two workers adding it, one succeeds and the other is told it exists.
-- That one's `acquire` answers a wait of a millisecond, and its `done`
-- (after a few more tries) asks its caller to sleep a millisecond and call
-- again, so a worker's event loop never blocks on the lock (the facade
-- sleeps with ngx.sleep). No read-then-write spans two holders of the
-- lock, and the critical section makes no call that yields. The lock
-- entry expires after LOCK_TTL seconds so a worker killed while holding it
-- cannot stop the others for longer; exactness then needs that no worker
-- stays descheduled inside the section for that long.
--
-- Slots are written with `safe_set`, which fails rather than evicting
-- other entries: a full dict must not forget a live slot. A reservation
-- that could not be stored (nor its lock) is not made: `acquire` answers
-- a wait of a second (entries expire a second after they pass, which
-- makes room) and a warning says to make the dict larger, so a dict too
-- small for the rings sends less, never more. Give the limiter a dict of its own: a host's plain
-- `set` into a full shared dict evicts the least recently used entries,
-- slots included. A key's rings take up to 1,100 entries (some 150 KB:
-- `lua_shared_dict coldsend 1m` holds six keys in use at once), each
-- expiring once it no longer matters. Slots expire by the limiter's
-- clock (`store(name, clock)`; the facade passes the client's), which
-- must be one clock for every worker: the client's default inside nginx
-- is coldsend.core.now (CLOCK_MONOTONIC, system-wide, and not moved by a
-- step of the wall clock, which would free every slot at once); ngx.now()
-- is one too, but follows the wall clock.
-- @module coldsend.ratelimit_ngx

local M = { _NAME = "coldsend.ratelimit_ngx" }

--- The lua_shared_dict name `store` uses when given none.
M.DEFAULT_DICT = "coldsend"

-- Keys are namespaced so the dict can be shared with the host's own data.
local PREFIX = "coldsend:ratelimit:"

--- Seconds after which a lock whose holder died frees itself.
M.LOCK_TTL = 5

local warned = {}

local function warn_once(what, message)
  if warned[what] then return end
  warned[what] = true
  ngx.log(ngx.WARN, message)
end

-- An entry that is not an instant (a ring's head, a hold's allowance) is
-- kept this long after its last write; forgetting a head only restarts the
-- ring at slot 0, which is harmless (every slot is checked before use).
local KEEP = 2 * 3600

-- A ring (see coldsend.ratelimit, "Store interface") whose fields are
-- dict entries "<PREFIX><ring name>:<field>". A slot or a hold's end (an
-- instant on the limiter's clock) expires a second after it passes, when it
-- no longer matters, never before: a live slot must not vanish (nor be
-- evicted: `safe_set`), and a key unused for an hour leaves nothing.
local function ring(store, name)
  local dict, prefix = store.dict, PREFIX .. name .. ":"
  return setmetatable({}, {
    __index = function(_, field)
      local v = dict:get(prefix .. field)
      if type(v) == "number" then return v end
      return nil
    end,
    __newindex = function(_, field, v)
      local ttl = KEEP
      if type(field) == "number" or field == "till" then
        ttl = math.max(v - store.now(), 0) + 1
      end
      local ok, err = dict:safe_set(prefix .. field, v, ttl)
      if not ok then
        -- the limiter reads this and sends nothing on a reservation it
        -- could not store
        store.failed = true
        warn_once("set:" .. store.name, ("coldsend: rate-limit state could not be stored in"
          .. " lua_shared_dict '%s' (%s); requests wait until it has room: make it"
          .. " larger"):format(store.name, tostring(err)))
      end
    end,
  })
end

local store_mt = {
  __name = "coldsend.ratelimit_ngx.store",
  __index = {
    ring = ring,
    lock = function(self, name)
      local ok, err = self.dict:safe_add(PREFIX .. name .. ":lock", true, M.LOCK_TTL)
      if ok then return true end
      if err == "exists" then return nil end
      -- no memory even for the lock: no reservation is made without it
      -- (an answer's bookkeeping goes ahead unlocked)
      warn_once("lock:" .. self.name, ("coldsend: rate-limit lock could not be stored in"
        .. " lua_shared_dict '%s' (%s); requests wait until it has room: make it"
        .. " larger"):format(self.name, tostring(err)))
      return nil, tostring(err)
    end,
    unlock = function(self, name)
      self.dict:delete(PREFIX .. name .. ":lock")
    end,
  },
  __tostring = function(self)
    return "coldsend.ratelimit_ngx.store " .. self.name
  end,
}

--- A store over `ngx.shared[dict_name]` (default "coldsend"), or nil after
-- one warning in the error log when there is no such dict (or no nginx).
-- `clock` (default ngx.now) is the limiter's clock: entries expire by it.
function M.store(dict_name, clock)
  dict_name = dict_name or M.DEFAULT_DICT
  if type(dict_name) ~= "string" or dict_name == "" then
    error(("bad value for 'shared_dict' (non-empty string expected, got %s)"):format(type(dict_name)), 2)
  end
  local n = rawget(_G, "ngx")
  if type(n) ~= "table" or type(n.shared) ~= "table" then return nil end
  local dict = n.shared[dict_name]
  if not dict then
    warn_once("missing:" .. dict_name, ("coldsend: no lua_shared_dict '%s': the client-side"
      .. " rate limit is counted per worker, so the workers together may exceed the API's"
      .. " limit; add to the http {} block of nginx.conf:  lua_shared_dict %s 1m;")
      :format(dict_name, dict_name))
    return nil
  end
  -- ngx.now() counts whole milliseconds: slots are held one more
  return setmetatable({ dict = dict, name = dict_name, resolution = 0.001, now = clock or n.now },
    store_mt)
end

return M
