--- coldsend.ratelimit_ngx: the rate limiter's buckets in a lua_shared_dict.
--
-- Under OpenResty each worker is a separate process with its own Lua state,
-- so the default in-process store would give every worker a full budget of
-- its own. This store keeps the buckets (see coldsend.ratelimit, "Store
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
-- nil, and the limiter falls back to per-worker buckets.
--
-- Each get and set is atomic, the pair is not: two workers taking the last
-- token in the same microsecond may both get it. The limiter is then close
-- rather than exact, and the facade still retries the server's 429.
-- @module coldsend.ratelimit_ngx

local M = { _NAME = "coldsend.ratelimit_ngx" }

--- The lua_shared_dict name `store` uses when given none.
M.DEFAULT_DICT = "coldsend"

-- Keys are namespaced so the dict can be shared with the host's own data.
local PREFIX = "coldsend:ratelimit:"

-- A bucket untouched this long has refilled completely (the longest window
-- is an hour and a server-imposed hold is capped at one more), so it can go.
local TTL = 2 * 3600

local warned = {}

local function warn_once(what, message)
  if warned[what] then return end
  warned[what] = true
  ngx.log(ngx.WARN, message)
end

local store_mt = {
  __name = "coldsend.ratelimit_ngx.store",
  __index = {
    get = function(self, name)
      local v = self.dict:get(PREFIX .. name)
      if type(v) ~= "string" then return nil end
      local t, s, h = v:match("^(%S+) (%S+) (%S+)$")
      t, s, h = tonumber(t), tonumber(s), tonumber(h)
      if not (t and s and h) then return nil end
      return t, s, h
    end,
    set = function(self, name, tokens, stamp, hold)
      local ok, err = self.dict:set(PREFIX .. name,
        string.format("%.17g %.17g %.17g", tokens, stamp, hold), TTL)
      if not ok then
        -- the bucket is forgotten (a full budget next time), never an error
        warn_once("set:" .. self.name, ("coldsend: rate-limit state could not be stored in"
          .. " lua_shared_dict '%s' (%s); make the dict larger"):format(self.name, tostring(err)))
      end
    end,
  },
  __tostring = function(self)
    return "coldsend.ratelimit_ngx.store " .. self.name
  end,
}

--- A store over `ngx.shared[dict_name]` (default "coldsend"), or nil after
-- one warning in the error log when there is no such dict (or no nginx).
function M.store(dict_name)
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
  return setmetatable({ dict = dict, name = dict_name }, store_mt)
end

return M
