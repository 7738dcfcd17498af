--- module_bench.lua: the sequential-save benchmark through the module, and
-- the two helpers bench/run.lua needs from it.
--
-- usage: LUA module_bench.lua MODE BASE_URL N [OUT_DIR]
--   saves    N x (c.name = <one of two names>; c:save()) on a campaign with
--            2 variants and 3 follow-ups, rate_limit = false, default
--            retries; prints "<wall us/request> <cpu us/request>"
--   rss      N saves after a warm-up; prints "<VmRSS KiB after warm-up> <at the end>"
--   capture  no I/O: records the request a one-field save sends (through a
--            transport function) and writes body_a.json, body_b.json and
--            headers.txt into OUT_DIR for the other contenders
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local F = require "fixture"
local coldsend = require "coldsend"

local mode, base, n, out = arg[1], arg[2], tonumber(arg[3]), arg[4]

local function campaign(cs)
  local c = F.fill(cs:campaign(F.ID), 0)
  assert(c:save()) -- the first save sends the whole campaign
  return c
end

local function save_loop(c, first, count)
  local names = F.NAMES
  for i = first, first + count - 1 do
    c.name = names[i % 2 + 1]
    local ok, err = c:save()
    if not ok then error("save failed: " .. tostring(err)) end
  end
end

if mode == "capture" then
  local conf = assert(io.open(out .. "/nginx.conf")):read("a")
  local answer = assert(conf:match("return 200 '(.-)';"), "no answer in nginx.conf")
  local seen
  local cs = coldsend.client{
    api_key = F.KEY, base_url = base, rate_limit = false,
    transport = function(req)
      seen = req
      return { status = 200, headers = { ["content-type"] = "application/json" }, body = answer }
    end,
  }
  local c = campaign(cs)
  for k = 1, 2 do
    c.name = F.NAMES[k]
    assert(c:save())
    assert(seen.method == "PUT", "save sent " .. tostring(seen.method))
    local f = assert(io.open(out .. (k == 1 and "/body_a.json" or "/body_b.json"), "wb"))
    f:write(seen.body)
    f:close()
  end
  local names = {}
  for name in pairs(seen.headers) do names[#names + 1] = name end
  table.sort(names)
  local f = assert(io.open(out .. "/headers.txt", "wb"))
  for _, name in ipairs(names) do f:write(name, ": ", seen.headers[name], "\n") end
  f:close()
  print(seen.url)
elseif mode == "saves" then
  local cs = coldsend.client{ api_key = F.KEY, base_url = base, rate_limit = false }
  local c = campaign(cs)
  local now = F.clock()
  save_loop(c, 1, math.floor(n / 20) + 1)
  local w0, c0 = now(), os.clock()
  save_loop(c, 1, n)
  local wall, cpu = now() - w0, os.clock() - c0
  print(string.format("%.3f %.3f", wall * 1e6 / n, cpu * 1e6 / n))
elseif mode == "rss" then
  local cs = coldsend.client{ api_key = F.KEY, base_url = base, rate_limit = false }
  local c = campaign(cs)
  save_loop(c, 1, 2000)
  collectgarbage("collect")
  local before = F.rss_kb()
  save_loop(c, 1, n)
  collectgarbage("collect")
  print(before, F.rss_kb())
else
  error("unknown mode " .. tostring(mode))
end
