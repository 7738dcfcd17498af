--- memory_bench.lua: bytes per campaign kept alive: N campaign objects
-- (2 variants, 3 follow-ups) versus the same data as N plain Lua tables.
-- Prints "<Lua heap bytes/object> <RSS bytes/object>": the heap figure is
-- collectgarbage("count"); the RSS one also sees memory a C part might
-- allocate outside the Lua allocator.
--
-- usage: LUA memory_bench.lua module|plain N
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local F = require "fixture"

local mode, n = arg[1], tonumber(arg[2])
local make
if mode == "module" then
  local new = require("coldsend.core").campaign
  make = function(i) return F.fill(new(F.ID), i) end
elseif mode == "plain" then
  make = F.plain
else
  error("unknown mode " .. tostring(mode))
end

-- everything loaded and warm before the first reading
make(0)
local keep = {}
for i = 1, n do keep[i] = false end
collectgarbage("collect")
collectgarbage("collect")
local heap0, rss0 = collectgarbage("count"), F.rss_kb()
for i = 1, n do keep[i] = make(i) end
collectgarbage("collect")
collectgarbage("collect")
local heap1, rss1 = collectgarbage("count"), F.rss_kb()
print(string.format("%.1f %.1f", (heap1 - heap0) * 1024 / n, (rss1 - rss0) * 1024 / n))
assert(#keep == n)
