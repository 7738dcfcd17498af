-- bench_instr_spec: doc/performance.md's `make bench-instr` runs and writes
-- its table. A tiny run (10 and 20 requests, Lua 5.4 alone): the shape of
-- the output is asserted, never a count (tests time nothing).
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("make bench-instr", function()
  -- one run is enough: the bench drives its own interpreters
  local run_it = _VERSION == "Lua 5.4" and not rawget(_G, "jit")

  ;(run_it and it or pending)("counts instructions and writes the table into the results file", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local out = dir .. "/results.md"
    -- a results file with a section of its own, which the run keeps
    local f = assert(io.open(out, "wb"))
    f:write("# lua-coldsend benchmark results\n\n<!-- begin wall -->\nkept\n<!-- end wall -->\n")
    f:close()
    local build = os.getenv("BUILD") or "build"
    local p = io.popen(string.format("make -s bench-instr BUILD=%s BENCH_INSTR_N=10 BENCH_LUAS=lua5.4"
      .. " BENCH_OUT=%s 2>%s", q(build), q(out), q(dir .. "/err")))
    local printed = p:read("a")
    local ok = p:close()
    assert(ok, "make bench-instr failed:\n" .. printed .. slurp(dir .. "/err"))
    for _, row in ipairs{
      "| per request | Lua 5.4 | × floor |",
      "| floor: C, one reused libcurl handle |",
      "| `c:save()`, default limiter |",
      "| `c:save()`, `rate_limit = false` |",
      "| `cs:request(\"PUT\", ...)`, default limiter |",
      "| `cs:request(\"PUT\", ...)`, `rate_limit = false` |",
      "| the limiter alone (`acquire` + `done`, no I/O) |",
      "| Lua 5.4: `c:save()` with the default limiter ≤ 1.7× the floor |",
      "| Lua 5.4: the limiter ≤ 3k instructions per request |",
    } do
      assert.truthy(printed:find(row, 1, true), row)
    end
    -- every count a number of thousands, every ratio a factor
    local save = printed:match("| `c:save%(%)`, default limiter | ([%d.]+)k | ([%d.]+)× |")
    assert.truthy(save, printed)
    local written = slurp(out)
    assert.truthy(written:find("<!-- begin instructions -->\n## Instructions per request", 1, true))
    assert.truthy(written:find("<!-- begin wall -->\nkept\n<!-- end wall -->", 1, true))
    assert.truthy(written:find("| floor: C, one reused libcurl handle |", 1, true))
  end)
end)
