--- spec/nginx/helper.lua: a throwaway Debian nginx + ngx_lua for the specs.
--
--   local helper = require "spec.nginx.helper"
--   local ngx_srv = helper.start{ http = "...", server = "...", main = "...",
--                                 env = { SANDBOX_URL = sb.url } }
--   local status, body = ngx_srv:get("/ping")
--   ngx_srv:stop()        -- idempotent; also run at exit
--
-- Writes nginx.conf into a fresh temp dir (pid, logs and temp paths all
-- inside it), starts `nginx -p <tmp> -c <tmp>/nginx.conf` (one worker, the
-- `coldsend` thread pool, the repo's lua/ and $BUILD/jit on the Lua paths)
-- on a free 127.0.0.1 port and waits until it answers.

local socket = require "socket"
local util = require "spec.helpers.util"

local M = {}

local NDK = "/usr/lib/nginx/modules/ndk_http_module.so"
local LUA_MOD = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local quote, read_file, write_file = util.q, util.slurp, util.write

--- The repository's top directory (absolute), found from this file.
function M.top()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/nginx/helper%.lua$") or "."
  return sh("cd " .. quote(dir) .. " && pwd")
end

--- Absolute directory holding the LuaJIT build (coldsend/core.so).
function M.jit_dir()
  local top = M.top()
  local build = os.getenv("BUILD") or "build"
  if build:sub(1, 1) ~= "/" then build = top .. "/" .. build end
  return build .. "/jit"
end

--- Whether Debian's nginx with the lua module can run here.
function M.usable()
  return sh("command -v nginx") ~= ""
    and io.open(NDK) ~= nil and io.open(LUA_MOD) ~= nil
end

--- A TCP port on 127.0.0.1 that was free a moment ago.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- alive and still an nginx (a pid is not reused behind our back)
local function pid_alive(pid)
  if not pid or os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true then return false end
  local cmd = read_file("/proc/" .. pid .. "/cmdline")
  return cmd == nil or cmd:find("nginx", 1, true) ~= nil
end

local Server = {}
Server.__index = Server

--- Sends one HTTP/1.0 request; returns status, body (or nil, err).
function Server:request(method, path, body, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 30)
  local ok, err = c:connect("127.0.0.1", self.port)
  if not ok then c:close() return nil, err end
  local req = ("%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"):format(method, path)
  if body then req = req .. ("Content-Length: %d\r\n"):format(#body) end
  c:send(req .. "\r\n" .. (body or ""))
  local data, e, partial = c:receive("*a")
  c:close()
  data = data or partial
  if not data or data == "" then return nil, e or "empty response" end
  local status = tonumber(data:match("^HTTP/%d%.%d (%d%d%d)"))
  return status, data:match("\r\n\r\n(.*)$") or ""
end

function Server:get(path, timeout) return self:request("GET", path, nil, timeout) end

--- Opens a connection and sends a GET without reading the answer yet;
-- returns an object with :finish() -> status, body.
function Server:start_get(path)
  local c = assert(socket.tcp())
  c:settimeout(30)
  assert(c:connect("127.0.0.1", self.port))
  assert(c:send(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"):format(path)))
  return {
    finish = function()
      local data, _, partial = c:receive("*a")
      c:close()
      data = data or partial or ""
      return tonumber(data:match("^HTTP/%d%.%d (%d%d%d)")), data:match("\r\n\r\n(.*)$") or ""
    end,
    close = function() c:close() end,
  }
end

--- A value of lua_shared_dict coldsend_test as a string ("nil" when
-- absent); with `wait`, polls up to that many seconds for it to appear
-- (a log-phase handler runs after its answer was sent).
function Server:key(k, wait)
  local deadline = socket.gettime() + (wait or 0)
  while true do
    local status, body = self:get("/__key?k=" .. k)
    assert(status == 200, body)
    body = body:gsub("\n$", "")
    if body ~= "nil" or socket.gettime() >= deadline then return body end
    socket.sleep(0.02)
  end
end

--- How many keys of coldsend_test start with `prefix`.
function Server:count(prefix)
  local status, body = self:get("/__count?p=" .. prefix)
  assert(status == 200, body)
  return tonumber(body:match("%d+"))
end

--- Polls until `prefix` counts `n` keys (up to `wait` seconds); the count.
function Server:wait_count(prefix, n, wait)
  local deadline = socket.gettime() + (wait or 5)
  local got = self:count(prefix)
  while got < n and socket.gettime() < deadline do
    socket.sleep(0.01)
    got = self:count(prefix)
  end
  return got
end

--- The last of keys `a`1..`na` and the first of `b`1..`nb` (numbers set by
-- a handler's sequence counter), to check that every `a` came before any `b`.
function Server:order(a, na, b, nb)
  local last_a, first_b = 0, math.huge
  for i = 1, na do last_a = math.max(last_a, tonumber(self:key(a .. i))) end
  for i = 1, nb do first_b = math.min(first_b, tonumber(self:key(b .. i))) end
  return last_a, first_b
end

--- The error log so far.
function Server:error_log()
  return read_file(self.dir .. "/error.log") or ""
end

--- Stops nginx (TERM, then KILL) and removes the temp dir. Idempotent.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = self.pid or tonumber((read_file(self.dir .. "/nginx.pid") or ""):match("%d+"))
  if pid then
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not pid_alive(pid) then break end
      socket.sleep(0.05)
    end
    if pid_alive(pid) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  -- workers exit with the master; make sure none was orphaned
  if self.worker_pids then
    for _, w in ipairs(self.worker_pids) do
      if pid_alive(w) then os.execute("kill -KILL " .. w .. " 2>/dev/null") end
    end
  end
  if not os.getenv("COLDSEND_KEEP_NGINX") then
    os.execute("rm -rf " .. quote(self.dir))
  end
end

local live = setmetatable({}, { __mode = "k" })
-- stop whatever a failing spec left running when the Lua state closes
local reaper = setmetatable({}, {
  __gc = function()
    for srv in pairs(live) do pcall(Server.stop, srv) end
  end,
})
M._reaper = reaper

--- Writes the config and starts nginx. opts:
--   main   = extra lines for the main context
--   http   = extra lines for the http {} context (handlers' shared code)
--   server = the locations of the one server {}
--   env    = { NAME = value }: exported to the workers (read with os.getenv)
--   threads = thread_pool size (default 32)
--   workers = worker processes (default 1; more listen with reuseport)
--   error_level = error_log level (default "info")
function M.start(opts)
  opts = opts or {}
  local dir = sh("mktemp -d /tmp/coldsend-nginx.XXXXXX")
  assert(dir ~= "", "mktemp failed")
  os.execute("chmod 755 " .. quote(dir))
  local port = opts.port or M.free_port()
  local top = M.top()
  local jit = M.jit_dir()
  local root = sh("id -u") == "0"

  local env_lines = {}
  for k, v in pairs(opts.env or {}) do
    env_lines[#env_lines + 1] = ("env %s=%s;"):format(k, tostring(v))
  end
  table.sort(env_lines)

  local conf = table.concat({
    "load_module " .. NDK .. ";",
    "load_module " .. LUA_MOD .. ";",
    root and "user root;" or "",
    "daemon on;",
    "master_process on;",
    ("worker_processes %d;"):format(opts.workers or 1),
    "pid " .. dir .. "/nginx.pid;",
    "error_log " .. dir .. "/error.log " .. (opts.error_level or "info") .. ";",
    ("thread_pool coldsend threads=%d;"):format(opts.threads or 32),
    table.concat(env_lines, "\n"),
    opts.main or "",
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. dir .. "/client_body;",
    "  proxy_temp_path " .. dir .. "/proxy;",
    "  fastcgi_temp_path " .. dir .. "/fastcgi;",
    "  uwsgi_temp_path " .. dir .. "/uwsgi;",
    "  scgi_temp_path " .. dir .. "/scgi;",
    ('  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;'
      .. '/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;";'):format(top, top, top),
    ('  lua_package_cpath "%s/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;/usr/local/lib/lua/5.1/?.so;;";')
      :format(jit),
    "  lua_shared_dict coldsend 1m;",
    "  lua_shared_dict coldsend_test 1m;",
    opts.http or "",
    "  server {",
    ("    listen 127.0.0.1:%d%s;"):format(port, opts.workers and opts.workers > 1 and " reuseport" or ""),
    "    location = /__alive { return 200 'ok'; }",
    -- the specs' window on lua_shared_dict coldsend_test
    "    location = /__key { content_by_lua_block { ngx.say(tostring(ngx.shared.coldsend_test:get(ngx.var.arg_k))) } }",
    "    location = /__count { content_by_lua_block {",
    "      local n = 0",
    "      for _, k in ipairs(ngx.shared.coldsend_test:get_keys(0)) do",
    "        if k:sub(1, #ngx.var.arg_p) == ngx.var.arg_p then n = n + 1 end",
    "      end",
    "      ngx.say(n) } }",
    opts.server or "",
    "  }",
    "}",
    "",
  }, "\n")
  write_file(dir .. "/nginx.conf", conf)

  local srv = setmetatable({ dir = dir, port = port, conf = conf }, Server)
  local out = sh(("nginx -p %s -c %s/nginx.conf 2>&1; echo rc=$?"):format(quote(dir), quote(dir)))
  if not out:find("rc=0", 1, true) then
    local log = srv:error_log()
    srv:stop()
    error("nginx did not start:\n" .. out .. "\n" .. log .. "\n" .. conf)
  end
  live[srv] = true
  srv.pid = tonumber((read_file(dir .. "/nginx.pid") or ""):match("%d+"))
  for _ = 1, 200 do
    local status = srv:get("/__alive", 1)
    if status == 200 then break end
    socket.sleep(0.025)
  end
  if srv.pid then
    srv.worker_pids = {}
    for w in sh("pgrep -P " .. srv.pid):gmatch("%d+") do
      srv.worker_pids[#srv.worker_pids + 1] = tonumber(w)
    end
    -- a watcher (in its own session, so a kill of our process group spares
    -- it) stops nginx if this process dies without stop() (a crash,
    -- a kill, a timeout); it exits as soon as nginx is gone either way
    local me = sh("echo $PPID")
    local script = table.concat({
      -- a zombie master (not yet reaped) counts as gone
      [[alive() { kill -0 $1 2>/dev/null && grep -q nginx /proc/$1/cmdline 2>/dev/null; }]],
      "while kill -0 ME 2>/dev/null && alive MASTER; do sleep 0.5; done",
      "if alive MASTER; then kill -TERM MASTER; sleep 2; alive MASTER && kill -KILL MASTER WORKERS; rm -rf DIR; fi",
    }, "\n"):gsub("%u+", { ME = me, MASTER = tostring(srv.pid),
      WORKERS = table.concat(srv.worker_pids, " "), DIR = dir })
    os.execute("setsid sh -c " .. quote(script) .. " >/dev/null 2>&1 </dev/null &")
  end
  local status = srv:get("/__alive", 2)
  if status ~= 200 then
    local log = srv:error_log()
    srv:stop()
    error("nginx did not answer on port " .. port .. ":\n" .. log)
  end
  return srv
end

return M
