--- coldsend.transport.ngx: the libcurl transfer run in an nginx thread pool.
--
-- Inside an OpenResty worker a blocking libcurl call stalls every other
-- request of that worker. This transport hands the transfer to a thread of
-- an nginx `thread_pool` through `ngx.run_worker_thread`, so the calling
-- coroutine yields and the worker's event loop keeps serving. The thread
-- runs `coldsend.core`'s `http_perform(req)` in a Lua state of its own
-- (ngx_lua keeps a pool of them), which caches one libcurl handle per state.
--
--   local ngx_transport = require "coldsend.transport.ngx"
--   local transport = ngx_transport.new{ pool = "coldsend" }
--   local res, msg, code, info = transport(req)
--
-- Failures a person must fix in the nginx config or in the calling code
-- (wrong phase, missing `thread_pool`, a module the threads cannot load)
-- raise at once with the fix in the message, as OpenResty's own APIs do in
-- the wrong context; transfer failures return `nil, message, code, info`.
-- @module coldsend.transport.ngx

local M = { _NAME = "coldsend.transport.ngx" }

-- Phases whose code runs in a coroutine nginx can park while the thread
-- works. ngx_lua also allows ssl_cert/ssl_session_fetch/ssl_client_hello,
-- but an API call there would hold up a TLS handshake: not offered.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true }
--- The nginx phases in which a transfer may run (rewrite, access, content,
-- timer), as a set; elsewhere the transport raises.
M.YIELDABLE = YIELDABLE

local POOL_LINE = "thread_pool %s threads=16;"

--- True inside nginx (ngx_lua or OpenResty), whatever the phase.
function M.available()
  local n = rawget(_G, "ngx")
  return type(n) == "table" and type(n.get_phase) == "function"
end

--- `ngx.sleep`, for the facade's backoff and rate-limit waits. Resolved at
-- call time, so requiring this module outside nginx is harmless.
function M.sleep(seconds)
  return ngx.sleep(seconds)
end

--- Seconds from nginx's cached clock, refreshed first (the cache only
-- moves once per event-loop turn, which a retry loop would not see).
function M.now()
  ngx.update_time()
  return ngx.now()
end

local function phase_message(phase)
  return ("coldsend: the ColdSend API cannot be called in nginx's '%s' phase"
    .. " (it cannot wait for network I/O there, and a blocking call would"
    .. " stall the whole worker); call it from rewrite_by_lua*, access_by_lua*,"
    .. " content_by_lua* or a timer: ngx.timer.at(0, function(premature) ... end)"):format(phase)
end

--- `true` when the current phase can wait for the API, else
-- `nil, message` naming the phase and the way out. Callers that must not
-- raise (the facade before it touches a clock or a sleep) use this.
function M.check_phase()
  if not M.available() then
    return nil, "coldsend: not running inside nginx (no ngx.get_phase)"
  end
  local phase = ngx.get_phase()
  if YIELDABLE[phase] then return true end
  return nil, phase_message(phase)
end

-- ngx.run_worker_thread copies arguments into another Lua state and
-- refuses functions, userdata and threads. Keep only what the contract
-- defines as data, so a hook or a metatable riding on `req` is no error.
local function plain(v, depth)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return v end
  if t ~= "table" or depth > 8 then return nil end
  local out = {}
  for k, x in pairs(v) do
    local tk = type(k)
    if tk == "string" or tk == "number" then
      local c = plain(x, depth + 1)
      if c ~= nil then out[k] = c end
    end
  end
  return out
end

-- ngx_lua's own failure strings, before the function ever ran in a thread.
-- The wording differs across ngx_lua versions; match the stable words.
local function classify(msg, opts)
  if msg:find("thread.pool", 1) and msg:find("not found", 1, true) then
    return "raise", ("coldsend: nginx has no thread pool named '%s' (%s);"
      .. " add this line to the main context of nginx.conf, outside http {}:  "
      .. POOL_LINE):format(opts.pool, msg, opts.pool)
  end
  if msg:find("module '" .. opts.module .. "' not found", 1, true)
    or msg:find("error loading module", 1, true) then
    return "raise", ("coldsend: nginx's worker threads cannot load %s;"
      .. " point lua_package_cpath (and lua_package_path) at the directory"
      .. " holding coldsend/core.so built for LuaJIT: %s"):format(opts.module, msg)
  end
  if msg == "invalid function" or msg == "invalid lua module" then
    return "raise", ("coldsend: %s.%s is missing (%s): the installed %s is"
      .. " older than this facade"):format(opts.module, opts.func, msg, opts.module)
  end
  if msg:find("unsupported", 1, true) then
    -- plain() should have made this impossible: a bug, not an outage
    return "raise", "coldsend: request could not be passed to the worker thread: " .. msg
  end
  if msg == "no available Lua vm" or msg:find("task_post", 1, true)
    or msg == "no memory" then
    -- every Lua VM of the threads is busy (lua_worker_thread_vm_pool_size)
    -- or the pool's queue is full: nothing was sent, the facade may retry
    return "busy", ("coldsend: nginx worker threads are saturated (%s);"
      .. " raise lua_worker_thread_vm_pool_size or the thread_pool's"
      .. " max_queue"):format(msg)
  end
  return "raise", msg
end

--- The options table a transport's new(opts) was given (nil: an empty one).
-- Anything else but a table raises "bad argument #1 to 'new'" at the
-- caller of that new(); shared with coldsend.transport.resty.
function M.new_options(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 3)
  end
  return opts
end

--- Returns a transport function `transport(req) -> res | nil, message, code, info`.
-- opts.pool: the nginx thread_pool name (default "coldsend");
-- opts.module / opts.func: the function run in the thread (default
-- `coldsend.core` / `http_perform`; tests point them at stand-ins);
-- opts.proxy: the proxy of every request that names none (the client's).
function M.new(opts)
  opts = M.new_options(opts)
  local o = {
    pool = opts.pool or "coldsend",
    module = opts.module or "coldsend.core",
    func = opts.func or "http_perform",
    proxy = opts.proxy,
  }
  for _, k in ipairs { "pool", "module", "func" } do
    if type(o[k]) ~= "string" or o[k] == "" then
      error(("bad value for '%s' (non-empty string expected, got %s)"):format(k, type(o[k])), 2)
    end
  end

  return function(req)
    if not M.available() then
      error("coldsend: the ngx transport runs only inside nginx (ngx_lua/OpenResty)", 2)
    end
    local phase = ngx.get_phase()
    if not YIELDABLE[phase] then error(phase_message(phase), 2) end
    local run = ngx.run_worker_thread
    if type(run) ~= "function" then
      error("coldsend: this ngx_lua has no ngx.run_worker_thread (needs"
        .. " lua-nginx-module 0.10.21 or later, built with threads); use"
        .. " transport = require('coldsend.transport.resty').new() instead", 2)
    end

    local task = plain(req, 0)
    if type(task) == "table" and task.proxy == nil then task.proxy = o.proxy end
    local ok, res, msg, code, info = run(o.pool, o.module, o.func, task)
    if ok then
      if res ~= nil then return res end
      return nil, msg, code, info
    end
    -- not ok: ngx_lua refused the task, or the function raised in the thread
    local kind, text = classify(tostring(res), o)
    if kind == "busy" then
      return nil, text, "network", { sent = false }
    end
    error(text, 2)
  end
end

return M
