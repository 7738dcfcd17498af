--- build_bench.lua: build only, no I/O: N campaigns built, validated and
-- serialised to the JSON a create/save sends, through the module's campaign
-- object, or the same data as a plain Lua table through cjson.encode (no
-- validation). Prints "<wall us/campaign> <cpu us/campaign>".
--
-- usage: LUA build_bench.lua module|plain N
--        LUA build_bench.lua check 1   (do both send the same JSON?)
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local F = require "fixture"

local mode, n = arg[1], tonumber(arg[2])
local BASE = "https://api.coldsend.pro/api/public/v1"
local work

-- the first path where two decoded JSON values differ, or nil
local function differ(a, b, path)
  if type(a) ~= type(b) then return path end
  if type(a) ~= "table" then return a ~= b and path or nil end
  for k, v in pairs(a) do
    local d = differ(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return path .. "." .. tostring(k) end
  end
end

if mode == "check" then
  local core, cjson = require "coldsend.core", require "cjson"
  local sent = cjson.decode(F.fill(core.campaign(F.ID), 1):_request("save", BASE).body)
  local d = differ(sent, cjson.decode(cjson.encode(F.plain(1))), "body")
  print(d and ("the bodies differ at " .. d) or "both send the same JSON")
  return
elseif mode == "module" then
  local core = require "coldsend.core"
  local new, fill, id = core.campaign, F.fill, F.ID
  work = function(i)
    local c = fill(new(id), i)
    assert(c:validate())
    return c:_request("save", BASE).body
  end
elseif mode == "plain" then
  local encode, plain = require("cjson").encode, F.plain
  work = function(i) return encode(plain(i)) end
else
  error("unknown mode " .. tostring(mode))
end

local now = F.clock()
for i = 1, math.floor(n / 10) do work(i) end
local w0, c0 = now(), os.clock()
for i = 1, n do work(i) end
local wall, cpu = now() - w0, os.clock() - c0
print(string.format("%.3f %.3f", wall * 1e6 / n, cpu * 1e6 / n))
