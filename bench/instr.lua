--- instr.lua: user-space instructions per request under callgrind, which
-- the load of a shared machine does not move (wall-clock ratios swing from
-- 1.08x to 1.6x with it; these counts hold to about 1%). Run by
-- `make bench-instr` (alone, a few minutes) and `make bench` (first),
-- through bench/run.sh, which starts and stops the nginx it talks to.
--
-- Every case runs twice under `valgrind --tool=callgrind`, with N and 2N
-- requests; the difference of the two totals, divided by the requests it
-- holds (N plus the difference of the warm-ups), is the cost of one
-- request with start-up cancelled. Cases: the libcurl floor
-- (bench/floor.c), `c:save()` and `cs:request("PUT", ...)` under each Lua
-- with the default limiter and with `rate_limit = false`, and the limiter's
-- own acquire + done without I/O (bench/module_bench.lua says how each
-- is driven).
--
-- Environment (run.sh sets the first four): BENCH_URL, BENCH_TMP,
-- BENCH_FLOOR, BENCH_OUT (bench/results.md: its instruction section is
-- replaced, the rest kept); BENCH_INSTR_N (500), BENCH_LUAS ("lua5.4 luajit").
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local F = require "fixture"

local URL = assert(os.getenv("BENCH_URL"), "BENCH_URL not set (run bench/run.sh)")
local TMP = assert(os.getenv("BENCH_TMP"), "BENCH_TMP not set")
local FLOOR = assert(os.getenv("BENCH_FLOOR"), "BENCH_FLOOR not set")
local OUT = os.getenv("BENCH_OUT") or dir .. "/results.md"
local N = tonumber(os.getenv("BENCH_INSTR_N") or "500")
local LUAS = {}
for lua in (os.getenv("BENCH_LUAS") or "lua5.4 luajit"):gmatch("%S+") do LUAS[#LUAS + 1] = lua end
local PUT_URL = URL .. "/campaigns/" .. F.ID
local q = F.quote

-- The targets of issue 16, per Lua: save with the default limiter against
-- the floor, and the limiter's own cost.
local SAVE_TARGET = { ["lua5.4"] = 1.7, luajit = 1.5 }
local LIMITER_TARGET = 3000

local function say(...) io.stderr:write(string.format(...), "\n") end

-- The requests of a run of n (the timed loop and its warm-up of n/20 + 1).
local function requests(n) return n + n // 20 + 1 end

-- Instructions per request of `template` (a shell command with one %d).
local function count(template)
  local total = {}
  for k, n in ipairs{ N, 2 * N } do
    local cmd = "valgrind --tool=callgrind --callgrind-out-file=/dev/null "
      .. string.format(template, n) .. " 2>&1 >/dev/null"
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    local refs = out:match("Collected%s*:%s*(%d+)")
    if not (ok and refs) then
      error("bench-instr: " .. string.format(template, n) .. " failed:\n" .. out, 0)
    end
    total[k] = tonumber(refs)
  end
  return (total[2] - total[1]) / (requests(2 * N) - requests(N))
end

-- The request every contender sends (the floor reads it from files).
local body_a, body_b, headers = TMP .. "/body_a.json", TMP .. "/body_b.json", TMP .. "/headers.txt"
assert(F.run(string.format("lua5.4 %s/module_bench.lua capture %s 0 %s", q(dir), q(URL), q(TMP))))

local results = {} -- case .. " " .. lua -> instructions per request
local function measure(name, template)
  results[name] = count(template)
  say("  %-28s %9.0f", name, results[name])
end

say("instructions per request (callgrind, N = %d and %d)", N, 2 * N)
measure("floor", string.format("%s %s %%d %s %s %s", q(FLOOR), q(PUT_URL), q(body_a), q(body_b),
                               q(headers)))
for _, lua in ipairs(LUAS) do
  for _, case in ipairs{ "saves", "requests" } do
    for _, limiter in ipairs{ "on", "off" } do
      measure(case .. " " .. limiter .. " " .. lua, string.format("%s %s/module_bench.lua %s %s %%d %s",
        lua, q(dir), case, q(URL), limiter))
    end
  end
  measure("limiter " .. lua, string.format("%s %s/module_bench.lua limiter %s %%d", lua, q(dir), q(URL)))
end

-- The table.
local floor = results.floor
local function k(v) return v and string.format("%.1fk", v / 1e3) or "n/a" end
local function x(v) return v and string.format("%.2f×", v / floor) or "n/a" end
local header, rule = { "| per request |" }, { "|---|" }
for _, lua in ipairs(LUAS) do
  header[#header + 1] = string.format(" %s | × floor |", F.lua_name(lua))
  rule[#rule + 1] = "---|---|"
end
local lines = { table.concat(header), table.concat(rule) }
local function row(label, key, ratio)
  local cells = { "| " .. label .. " |" }
  for _, lua in ipairs(LUAS) do
    local v = key and results[key(lua)] or floor
    cells[#cells + 1] = string.format(" %s | %s |", k(v), ratio and x(v) or "—")
  end
  lines[#lines + 1] = table.concat(cells)
end
row("floor: C, one reused libcurl handle", nil, true)
row("`c:save()`, default limiter", function(l) return "saves on " .. l end, true)
row("`c:save()`, `rate_limit = false`", function(l) return "saves off " .. l end, true)
row("`cs:request(\"PUT\", ...)`, default limiter", function(l) return "requests on " .. l end, true)
row("`cs:request(\"PUT\", ...)`, `rate_limit = false`", function(l) return "requests off " .. l end, true)
row("the limiter alone (`acquire` + `done`, no I/O)", function(l) return "limiter " .. l end)
lines[#lines + 1] = ""
lines[#lines + 1] = "| target | value | met? |"
lines[#lines + 1] = "|---|---|---|"
for _, lua in ipairs(LUAS) do
  local save, limit = results["saves on " .. lua], SAVE_TARGET[lua]
  if limit then
    lines[#lines + 1] = string.format("| %s: `c:save()` with the default limiter ≤ %.1f× the floor | %s | %s |",
      F.lua_name(lua), limit, x(save), save / floor <= limit and "yes" or "**no**")
  end
  local lim = results["limiter " .. lua]
  lines[#lines + 1] = string.format("| %s: the limiter ≤ %dk instructions per request | %s | %s |",
    F.lua_name(lua), LIMITER_TARGET // 1000, k(lim), lim <= LIMITER_TARGET and "yes" or "**no**")
end
lines[#lines + 1] = ""
lines[#lines + 1] = string.format("User-space instructions per request under `valgrind --tool=callgrind`: "
  .. "the difference of runs of %d and %d requests (each with a warm-up of a twentieth), "
  .. "divided by the %d requests between them; PUTs over loopback to one local nginx "
  .. "answering the documented update body. The default limiter runs on a clock that moves "
  .. "10 s at every reading, so its budget is never spent.", N, 2 * N, requests(2 * N) - requests(N))
local text = table.concat(lines, "\n") .. "\n"
io.write("\n", text)
F.write_section(OUT, "instructions", "## Instructions per request\n\nReproduce with `make bench-instr`.\n\n"
  .. text)
say("\nwritten to %s", OUT)
