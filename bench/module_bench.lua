--- module_bench.lua: the sequential-save benchmark through the module, and
-- the two helpers bench/run.lua needs from it.
--
-- usage: LUA module_bench.lua MODE BASE_URL N [OUT_DIR | LIMITER]
--   saves    N x (c.name = <one of two names>; c:save()) on a campaign with
--            2 variants and 3 follow-ups, default retries; prints
--            "<wall us/request> <cpu us/request>"
--   requests N x cs:request("PUT", "/campaigns/<id>", {name = ...}), the
--            same request and answer without the campaign object
--   limiter  N x (lim:acquire; lim:done) with the headers nginx answers,
--            no I/O: the rate limiter's own bookkeeping per request
--   LIMITER (saves, requests): "off" (the default: rate_limit = false) or
--            "on" (the default limits, on a clock that moves 10 s at every
--            reading, so the budget is never spent and nothing waits: the
--            limiter's bookkeeping is measured, not its sleeps)
--   rss      N saves after a warm-up; prints "<VmRSS KiB after warm-up> <at the end>"
--   capture  no I/O: records the request a one-field save sends (through a
--            transport function) and writes body_a.json, body_b.json and
--            headers.txt into OUT_DIR for the other contenders
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local F = require "fixture"
local coldsend = require "coldsend"

local mode, base, n, out = arg[1], arg[2], tonumber(arg[3]), arg[4]

-- The client of the timed modes: limiter off, or on with the default
-- limits and a fast clock; sleeping would mean the budget was spent.
local function client()
  if out ~= "on" then
    assert(out == nil or out == "off", "LIMITER is on or off")
    return coldsend.client{ api_key = F.KEY, base_url = base, rate_limit = false }
  end
  local t = 0
  return coldsend.client{
    api_key = F.KEY, base_url = base,
    clock = function() t = t + 10; return t end,
    sleep = function(s) error("the limiter made the bench wait " .. s .. " s") end,
  }
end

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
elseif mode == "saves" or mode == "requests" or mode == "limiter" then
  local loop
  if mode == "saves" then
    local c = campaign(client())
    loop = function(count) save_loop(c, 1, count) end
  elseif mode == "requests" then
    local cs, path, names = client(), "/campaigns/" .. F.ID, F.NAMES
    loop = function(count)
      for i = 1, count do
        local data, err = cs:request("PUT", path, { name = names[i % 2 + 1] })
        if not data then error("request failed: " .. tostring(err)) end
      end
    end
  else
    local lim = require("coldsend.ratelimit").new(F.KEY, nil, { clock = function() return 0 end })
    -- what the transport makes of nginx's answer (bench/nginx.conf)
    local headers = { ["content-type"] = "application/json", ["content-length"] = "272",
                      connection = "keep-alive", date = "Thu, 01 Jan 2026 00:00:00 GMT" }
    local t = 0
    loop = function(count)
      for _ = 1, count do
        t = t + 10
        local wait, ticket = lim:acquire(t, 60)
        if wait ~= 0 then error("the limiter made the bench wait") end
        if not lim:done(ticket, t + 1, headers, 1.7e9 + t, nil, true) then error("done failed") end
      end
    end
  end
  local now = F.clock()
  loop(math.floor(n / 20) + 1)
  local w0, c0 = now(), os.clock()
  loop(n)
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
