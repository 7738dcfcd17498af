--- run.lua: the benchmark driver `make bench` runs (through bench/run.sh,
-- which starts and stops the nginx it talks to). Runs every contender in its
-- own process, alternating them round after round, and prints medians,
-- ratios and a markdown table (also written to bench/results.md).
--
-- Environment (run.sh sets the first four):
--   BENCH_URL    base URL of the local nginx: http://127.0.0.1:PORT/api/public/v1
--   BENCH_TMP    scratch directory (nginx prefix; captured request files)
--   BENCH_FLOOR  the compiled bench/floor.c
--   BENCH_OUT    where the markdown table goes (bench/results.md)
--   PYTHON (/usr/bin/python3), BENCH_N (5000), BENCH_ROUNDS (5),
--   BENCH_BUILD_N (100000), BENCH_MEM_N (10000), BENCH_RSS_N (100000)
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local F = require "fixture"

local env = function(name, default) return os.getenv(name) or default end
local URL = assert(os.getenv("BENCH_URL"), "BENCH_URL not set (run bench/run.sh)")
local TMP = assert(os.getenv("BENCH_TMP"), "BENCH_TMP not set")
local FLOOR = assert(os.getenv("BENCH_FLOOR"), "BENCH_FLOOR not set")
local OUT = env("BENCH_OUT", dir .. "/results.md")
local PYTHON = env("PYTHON", "/usr/bin/python3")
local N = tonumber(env("BENCH_N", "5000"))
local ROUNDS = tonumber(env("BENCH_ROUNDS", "5"))
local BUILD_N = tonumber(env("BENCH_BUILD_N", "100000"))
local MEM_N = tonumber(env("BENCH_MEM_N", "10000"))
local RSS_N = tonumber(env("BENCH_RSS_N", "100000"))
local PUT_URL = URL .. "/campaigns/" .. F.ID
local LOAD_AT_START = io.open("/proc/loadavg"):read("l"):match("^(%S+ %S+ %S+)")

local q, run = F.quote, F.run

local function have(cmd) return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") end

local clock = (function()
  local ok, now = pcall(F.clock)
  if ok then return now end
  return function() return tonumber(run("date +%s%N")) / 1e9 end
end)()

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local m = #s // 2
  if #s == 0 then return nil end
  if #s % 2 == 1 then return s[m + 1] end
  return (s[m] + s[m + 1]) / 2
end

local function say(...) io.stderr:write(string.format(...), "\n") end

-- Contenders print two numbers; collects them per name, alternating in rounds.
local samples = {}
local failed = {}
local function sample(name, cmd)
  if failed[name] then return end
  local out, err = run(cmd)
  local a, b = (out or ""):match("^%s*([%d.]+)%s+([%d.]+)%s*$")
  if not a then
    failed[name] = (err or out or ""):gsub("%s+$", "")
    say("  %-18s FAILED: %s", name, failed[name])
    return
  end
  samples[name] = samples[name] or { {}, {} }
  table.insert(samples[name][1], tonumber(a))
  table.insert(samples[name][2], tonumber(b))
  say("  %-18s %10.2f %10.2f", name, tonumber(a), tonumber(b))
end
local function med(name, k) return samples[name] and median(samples[name][k or 1]) end

-- The module, when its pieces have landed.
local module_ok, module_why = run("lua5.4 -e " .. q([[
  local coldsend = require "coldsend"
  local core = require "coldsend.core"
  assert(coldsend.client, "no coldsend.client")
  assert(core.campaign and core.campaign_methods and core.campaign_methods.add_variant,
         "no campaign type in coldsend.core")]]))
local jit_ok = module_ok and have("luajit")
if not module_ok then say("module not available yet: %s", module_why) end

------------------------------------------------------------------------------
-- The request every contender sends.
local body_a, body_b = TMP .. "/body_a.json", TMP .. "/body_b.json"
local headers = TMP .. "/headers.txt"
local same_data
if module_ok then
  local url, err = run(string.format("lua5.4 %s/module_bench.lua capture %s 0 %s",
                                     q(dir), q(URL), q(TMP)))
  assert(url, err)
  assert(url:match("^%S+") == PUT_URL, "the module saves to " .. url)
  same_data = assert(run(string.format("lua5.4 %s/build_bench.lua check 1", q(dir))))
  same_data = same_data:gsub("%s+$", "")
else
  local cjson = require "cjson"
  for k, path in ipairs{ body_a, body_b } do
    local f = assert(io.open(path, "wb"))
    f:write(cjson.encode{ name = F.NAMES[k] })
    f:close()
  end
  local f = assert(io.open(headers, "wb"))
  f:write("Accept: application/json\nContent-Type: application/json\n",
          "User-Agent: lua-coldsend\nX-API-Key: ", F.KEY, "\n")
  f:close()
end
local slurp = F.slurp
say("request: PUT %s  body %s", PUT_URL, slurp(body_a))

------------------------------------------------------------------------------
-- Sequential saves.
local args = string.format("%s %d %s %s %s", q(PUT_URL), N, q(body_a), q(body_b), q(headers))
local contenders = {
  { "floor", q(FLOOR) .. " " .. args },
  { "requests", q(PYTHON) .. " " .. q(dir .. "/requests_bench.py") .. " " .. args },
  { "luasocket", "lua5.4 " .. q(dir .. "/luasocket_bench.lua") .. " " .. args },
}
if module_ok then
  table.insert(contenders, 2, { "module", string.format("lua5.4 %s/module_bench.lua saves %s %d",
                                                        q(dir), q(URL), N) })
end
if jit_ok then
  table.insert(contenders, 3, { "module (LuaJIT)", string.format(
    "luajit %s/module_bench.lua saves %s %d", q(dir), q(URL), N) })
end
say("sequential saves: N = %d, %d rounds (wall us, CPU us per request)", N, ROUNDS)
for r = 1, ROUNDS do
  say(" round %d", r)
  -- a different contender goes first in each round
  for k = 0, #contenders - 1 do
    local c = contenders[(r + k - 1) % #contenders + 1]
    sample(c[1], c[2])
  end
end

------------------------------------------------------------------------------
-- Build only, memory, RSS.
if module_ok then
  say("build only: %d campaigns, %d rounds (wall us, CPU us per campaign)", BUILD_N, ROUNDS)
  for r = 1, ROUNDS do
    for _, mode in ipairs(r % 2 == 1 and { "module", "plain" } or { "plain", "module" }) do
      sample("build " .. mode, string.format("lua5.4 %s/build_bench.lua %s %d", q(dir), mode, BUILD_N))
    end
  end
  say("memory: %d objects kept alive (Lua heap bytes, RSS bytes per object)", MEM_N)
  for _ = 1, 3 do
    for _, mode in ipairs{ "module", "plain" } do
      sample("memory " .. mode, string.format("lua5.4 %s/memory_bench.lua %s %d", q(dir), mode, MEM_N))
    end
  end
  say("RSS across %d saves (KiB after warm-up, at the end)", RSS_N)
  sample("rss", string.format("lua5.4 %s/module_bench.lua rss %s %d", q(dir), q(URL), RSS_N))
end

------------------------------------------------------------------------------
-- Instructions (callgrind) of the build-only contenders (bench/instr.lua
-- counts those of the requests): each runs with n = 1000 and 2000; the
-- difference (1100 campaigns with their warm-ups) cancels start-up.
local instructions = {}
local function count_instructions(template, extra)
  local counts = {}
  for k, n in ipairs{ 1000, 2000 } do
    local p = io.popen("valgrind --tool=callgrind --callgrind-out-file=/dev/null "
      .. string.format(template, n) .. " 2>&1 >/dev/null")
    local out = p:read("a")
    p:close()
    local refs = out:match("Collected%s*:%s*(%d+)")
    if not refs then return nil end
    counts[k] = tonumber(refs)
  end
  return (counts[2] - counts[1]) / extra
end
if module_ok and have("valgrind") then
  say("instructions per campaign (callgrind)")
  instructions.build_module = count_instructions(string.format(
    "lua5.4 %s/build_bench.lua module %%d", q(dir)), 1100)
  instructions.build_plain = count_instructions(string.format(
    "lua5.4 %s/build_bench.lua plain %%d", q(dir)), 1100)
  for _, k in ipairs{ "build_module", "build_plain" } do
    say("  %-18s %10.0f", k, instructions[k] or -1)
  end
end

------------------------------------------------------------------------------
-- Start-up.
local startup = {}
local function time_runs(code, runs)
  local cmd = string.format("i=0; while [ $i -lt %d ]; do lua5.4 -e %s >/dev/null || exit 1; i=$((i+1)); done",
                            runs, q(code))
  local t0 = clock()
  assert(os.execute(cmd), "lua5.4 -e " .. code .. " failed")
  return (clock() - t0) / runs * 1e3
end
local startup_how
if module_ok then
  if have("hyperfine") then
    startup_how = "hyperfine, 50 runs each"
    local json = TMP .. "/hyperfine.json"
    assert(os.execute(string.format(
      "hyperfine -N -w 5 -r 50 --export-json %s %s %s >/dev/null 2>&1",
      q(json), q("lua5.4 -e ''"), q("lua5.4 -e 'require \"coldsend\"'"))))
    local res = require("cjson").decode(slurp(json)).results
    startup.empty, startup.require = res[1].median * 1e3, res[2].median * 1e3
  else
    startup_how = "50 runs each, alternating in 5 rounds of 10; median of the rounds"
    local e, m = {}, {}
    time_runs("", 5)
    time_runs('require "coldsend"', 5)
    for _ = 1, 5 do
      e[#e + 1] = time_runs("", 10)
      m[#m + 1] = time_runs('require "coldsend"', 10)
    end
    startup.empty, startup.require = median(e), median(m)
  end
  say("start-up: lua5.4 -e '' %.2f ms, require \"coldsend\" %.2f ms", startup.empty, startup.require)
end

------------------------------------------------------------------------------
-- The table.
local rows = {}
local function row(metric, value, target, met)
  rows[#rows + 1] = { metric, value, target or "—", met == nil and "—" or (met and "yes" or "**no**") }
end
local function us(name)
  if failed[name] then return "failed: " .. failed[name]:match("[^\n]*$") end
  if not med(name) then return "n/a (module not built yet)" end
  return string.format("%.1f µs wall, %.1f µs CPU", med(name, 1), med(name, 2))
end
local function ratio(a, b, k)
  local x, y = med(a, k), med(b, k)
  if not (x and y) then return nil end
  return x / y
end
local function fmt(x) return x and string.format("%.2f×", x) or "n/a" end

row("floor: C, one reused libcurl handle, per request", us("floor"))
row("module (Lua 5.4): `c.name = ...; c:save()`, per request", us("module"))
if jit_ok then row("module (LuaJIT), per request", us("module (LuaJIT)")) end
row("Python requests.Session, `json=`, per request", us("requests"))
row("LuaSocket socket.http (new connection each request), per request", us("luasocket"))
local r
r = ratio("module", "floor", 1); row("module / floor, wall", fmt(r), "≤ 1.15×", r and r <= 1.15)
r = ratio("module", "floor", 2); row("module / floor, CPU", fmt(r), "≤ 1.3×", r and r <= 1.3)
r = ratio("requests", "module", 1); row("requests / module, wall", fmt(r), "≥ 5×", r and r >= 5)
r = ratio("requests", "module", 2); row("requests / module, CPU", fmt(r))
r = ratio("luasocket", "module", 1); row("luasocket / module, wall", fmt(r))
r = ratio("luasocket", "module", 2); row("luasocket / module, CPU", fmt(r))
row(string.format("build only, module (build + validate + encode), per campaign, %d", BUILD_N), us("build module"))
row("build only, plain table + cjson.encode, per campaign", us("build plain"))
r = ratio("build module", "build plain", 1)
row("build only, module / plain table, wall", fmt(r), "≤ 1.00×", r and r <= 1.0)
r = ratio("build module", "build plain", 2)
row("build only, module / plain table, CPU", fmt(r))
if instructions.build_module and instructions.build_plain then
  row("build only, module / plain table, instructions (callgrind)",
      string.format("%.2f× (%.0fk / %.0fk)", instructions.build_module / instructions.build_plain,
                    instructions.build_module / 1e3, instructions.build_plain / 1e3))
end
local function bytes(name)
  if not med(name) then return "n/a" end
  return string.format("%.0f B (RSS: %.0f B)", med(name, 1), med(name, 2))
end
row(string.format("memory per campaign object (%d kept alive)", MEM_N), bytes("memory module"))
row("memory per plain table with the same data", bytes("memory plain"))
r = ratio("memory module", "memory plain", 1)
row("memory, module / plain table (Lua heap)", fmt(r), "≤ 1.5×", r and r <= 1.5)
r = ratio("memory module", "memory plain", 2)
row("memory, module / plain table (RSS)", fmt(r), "≤ 1.5×", r and r <= 1.5)
if samples.rss then
  local growth = samples.rss[2][1] - samples.rss[1][1]
  row(string.format("RSS growth across %d saves", RSS_N),
      string.format("%d KiB (%d → %d KiB)", growth, samples.rss[1][1], samples.rss[2][1]),
      "< 1 MB", growth * 1024 < 1e6)
else
  row(string.format("RSS growth across %d saves", RSS_N), "n/a", "< 1 MB")
end
if startup.empty then
  row("start-up: `lua5.4 -e ''`", string.format("%.2f ms", startup.empty))
  row("start-up: `lua5.4 -e 'require \"coldsend\"'`",
      string.format("%.2f ms (+%.2f ms)", startup.require, startup.require - startup.empty))
end

local function first_line(cmd, pattern)
  local out = run(cmd) or ""
  return (pattern and out:match(pattern) or out:match("[^\n]*")) or "?"
end
local machine = {
  string.format("%s CPUs (nproc), %s, Linux %s; load average %s at the start, %s at the end",
    first_line("nproc"), first_line("grep -m1 'model name' /proc/cpuinfo", ":%s*([^\n]*)"),
    first_line("uname -r"), LOAD_AT_START, first_line("cat /proc/loadavg", "^(%S+ %S+ %S+)")),
  string.format("%s; %s; %s; Python %s, requests %s; %s",
    first_line("nginx -v", "nginx/[%d.]+"), first_line("curl-config --version"),
    first_line("lua5.4 -v", "Lua [%d.]+"),
    first_line(q(PYTHON) .. " -c 'import sys; print(sys.version.split()[0])'"),
    first_line(q(PYTHON) .. " -c 'import requests; print(requests.__version__)'"),
    first_line("luajit -v", "LuaJIT [%w.-]+")),
}

local lines = {
  "| metric | value | target | met? |",
  "|---|---|---|---|",
}
for _, rw in ipairs(rows) do lines[#lines + 1] = "| " .. table.concat(rw, " | ") .. " |" end
lines[#lines + 1] = ""
lines[#lines + 1] = string.format(
  "Medians of %d alternating rounds; N = %d sequential PUTs per contender and round over "
    .. "loopback to one local nginx (one worker) answering the documented update body. "
    .. "CPU is the client process's user + system time.", ROUNDS, N)
lines[#lines + 1] = "Request body (the one the module's save sends, names alternating): `"
  .. slurp(body_a):gsub("`", "'") .. "`"
if same_data then lines[#lines + 1] = "Build-only check (module body vs plain table): " .. same_data .. "." end
if startup_how then lines[#lines + 1] = "Start-up: " .. startup_how .. "." end
lines[#lines + 1] = ""
lines[#lines + 1] = "Machine: " .. machine[1]
lines[#lines + 1] = "Software: " .. machine[2]
local text = table.concat(lines, "\n") .. "\n"

io.write("\n", text)
F.write_section(OUT, "wall", "## Wall clock, CPU, memory, start-up\n\nReproduce with `make bench`.\n\n"
  .. text)
say("\nwritten to %s", OUT)
