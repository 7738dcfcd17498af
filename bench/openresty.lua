--- bench/openresty.lua: a trivial /ping location's latency and throughput
-- while campaign calls are in flight in the same nginx worker, with the
-- thread-pool transport (coldsend.transport.ngx) versus the same libcurl
-- call made directly in the worker (a blocking library). `make
-- bench-openresty` runs it; not part of `make test`.
--
-- Two nginx: the "API", whose campaign GET answers after BENCH_DELAY
-- seconds (ngx.sleep, so it serves any number at once), and the host under
-- test (one worker), whose /work handler fetches a campaign through the
-- client. BENCH_INFLIGHT connections keep /work requests going back to
-- back while BENCH_CLIENTS connections ping the host, for BENCH_SECONDS.
--
-- Environment: BUILD (the LuaJIT build dir, default build), BENCH_DELAY
-- (0.2), BENCH_INFLIGHT (8), BENCH_CLIENTS (8), BENCH_SECONDS (5).
package.path = "./?.lua;" .. package.path
local helper = require "spec.nginx.helper"
local socket = require "socket"

local DELAY = tonumber(os.getenv("BENCH_DELAY") or "0.2")
local INFLIGHT = tonumber(os.getenv("BENCH_INFLIGHT") or "8")
local CLIENTS = tonumber(os.getenv("BENCH_CLIENTS") or "8")
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "5")
local ID = "550e8400-e29b-41d4-a716-446655440000"

local API_SERVER = [[
    location /api/public/v1/campaigns/ {
      content_by_lua_block {
        ngx.sleep(tonumber(os.getenv("BENCH_DELAY")))
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"campaign_id":"]] .. ID .. [[","name":"Bench","status":"ACTIVE",'
          .. '"is_launch_ready":true,"missing_requirements":[]}')
      }
    }
]]

local HOST_HTTP = [[
  init_by_lua_block {
    local coldsend = require "coldsend"
    local function client(transport)
      return coldsend.client{
        api_key = "cs_test_0123456789abcdef0123456789abcdef",
        base_url = os.getenv("BENCH_API"), rate_limit = false, max_retries = 0,
        transport = transport,
      }
    end
    clients = {
      ngx = client(nil),  -- inside nginx: the thread-pool transport
      -- the libcurl call made right here, as a plain blocking library would
      blocking = client(require("coldsend.core").http_perform),
    }
  }
]]

local HOST_SERVER = [[
    location = /ping { content_by_lua_block { ngx.say("pong") } }
    location = /work {
      content_by_lua_block {
        local c, err = clients[ngx.var.arg_mode]:get_campaign("]] .. ID .. [[")
        if not c then ngx.log(ngx.ERR, "bench call failed: ", tostring(err)) end
        ngx.say(c and "ok" or "failed")
      }
    }
]]

local now = socket.gettime

-- One select loop over INFLIGHT /work and CLIENTS /ping connections, each
-- one HTTP/1.0 request at a time, reopened when answered. Pings start once
-- the work is under way. Returns the sorted ping latencies, the elapsed
-- ping time, and the /work answers ("ok"/"failed" counts).
local function drive(port, mode)
  local lat, slots, work = {}, {}, { ok = 0, failed = 0 }
  local function open(slot)
    local c = socket.tcp()
    c:settimeout(10)
    assert(c:connect("127.0.0.1", port))
    c:settimeout(0)
    slot.sock, slot.t0, slot.buf = c, now(), {}
    c:send(("GET %s HTTP/1.0\r\nHost: b\r\n\r\n"):format(slot.path))
  end
  for _ = 1, INFLIGHT do slots[#slots + 1] = { path = "/work?mode=" .. mode, kind = "work" } end
  for _ = 1, CLIENTS do slots[#slots + 1] = { path = "/ping", kind = "ping" } end
  for _, s in ipairs(slots) do if s.kind == "work" then open(s) end end
  socket.sleep(DELAY / 2)
  local t0 = now()
  local stop_at = t0 + SECONDS
  for _, s in ipairs(slots) do if s.kind == "ping" then open(s) end end
  local t_end
  while true do
    local socks, by = {}, {}
    for _, s in ipairs(slots) do
      if s.sock then socks[#socks + 1] = s.sock by[s.sock] = s end
    end
    if #socks == 0 then break end
    local ready = socket.select(socks, nil, 1)
    for _, c in ipairs(ready) do
      local s = by[c]
      local data, err, partial = c:receive(8192)
      data = data or partial
      if data and data ~= "" then s.buf[#s.buf + 1] = data end
      if err == "closed" then
        c:close()
        s.sock = nil
        local body = table.concat(s.buf)
        if s.kind == "ping" then
          assert(body:find("pong", 1, true), "bad /ping answer: " .. body)
          lat[#lat + 1] = now() - s.t0
          t_end = now()
        else
          local verdict = body:find("\r\n\r\nok") and "ok" or "failed"
          work[verdict] = work[verdict] + 1
        end
        if now() < stop_at then open(s) end
      end
    end
  end
  table.sort(lat)
  return lat, (t_end or now()) - t0, work
end

local function pct(sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function run_mode(host, mode)
  io.stderr:write(("bench-openresty: %s transport ...\n"):format(mode))
  local lat, elapsed, work = drive(host.port, mode)
  return {
    mode = mode, n = #lat, rps = #lat / elapsed,
    p50 = pct(lat, 0.5) * 1000, p99 = pct(lat, 0.99) * 1000, max = lat[#lat] * 1000,
    calls = work.ok, failed = work.failed, elapsed = elapsed,
  }
end

local api, host
local ok, err = pcall(function()
  api = helper.start { server = API_SERVER, env = { BENCH_DELAY = DELAY }, error_level = "warn" }
  host = helper.start {
    http = HOST_HTTP, server = HOST_SERVER, error_level = "warn", threads = 64,
    env = { BENCH_API = ("http://127.0.0.1:%d/api/public/v1"):format(api.port) },
  }
  io.write(("OpenResty host: 1 worker; %d connections calling a /work handler that fetches a"
    .. " campaign (the API answers in %g s), %d connections pinging /ping, %g s per transport\n\n")
    :format(INFLIGHT, DELAY, CLIENTS, SECONDS))
  local rows = { run_mode(host, "ngx"), run_mode(host, "blocking") }
  local lines = {
    "| transport | /ping p50 | /ping p99 | /ping max | /ping req/s | campaign calls/s |",
    "|---|---:|---:|---:|---:|---:|",
  }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("| %s | %.2f ms | %.2f ms | %.1f ms | %.0f | %.1f |"):format(
      r.mode == "ngx" and "ngx (thread pool)" or "blocking libcurl in the worker",
      r.p50, r.p99, r.max, r.rps, r.calls / r.elapsed)
    if r.failed > 0 then lines[#lines] = lines[#lines] .. (" (%d calls failed)"):format(r.failed) end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("/ping p50 %.0fx lower, req/s %.0fx higher with the thread pool"):format(
    rows[2].p50 / rows[1].p50, rows[1].rps / rows[2].rps)
  io.write(table.concat(lines, "\n"), "\n")
end)
if host then host:stop() end
if api then api:stop() end
if not ok then
  io.stderr:write("bench-openresty failed: ", tostring(err), "\n")
  os.exit(1)
end
