--- luasocket_bench.lua: the sequential-save benchmark through LuaSocket's
-- socket.http, used the way its users do: http.request with a table, an
-- ltn12 source for the cjson-encoded body and a table sink, cjson.decode on
-- the answer. socket.http opens a new connection for every request (it
-- sends "Connection: close" and offers no keep-alive), so this contender
-- also pays a TCP connect per request: that is what socket.http costs.
-- Prints "<wall us/request> <cpu us/request>" for the timed part.
--
-- usage: lua5.4 luasocket_bench.lua URL N BODY_FILE_A BODY_FILE_B HEADER_FILE
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local F = require "fixture"
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"

local url, n = arg[1], tonumber(arg[2])

local payloads = { cjson.decode(F.slurp(arg[3])), cjson.decode(F.slurp(arg[4])) }
local base_headers = {}
for line in io.lines(arg[5]) do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  base_headers[name:lower()] = value
end

local function put(i)
  local body = cjson.encode(payloads[i % 2 + 1])
  local headers = {}
  for k, v in pairs(base_headers) do headers[k] = v end
  headers["content-length"] = tostring(#body)
  local out = {}
  local ok, status = http.request{
    url = url, method = "PUT", headers = headers,
    source = ltn12.source.string(body), sink = ltn12.sink.table(out),
  }
  if not ok or status ~= 200 then
    error("luasocket: " .. tostring(status))
  end
  return cjson.decode(table.concat(out))
end

for i = 1, math.floor(n / 20) + 1 do put(i) end
local w0, c0 = socket.gettime(), os.clock()
for i = 1, n do put(i) end
local wall, cpu = socket.gettime() - w0, os.clock() - c0
print(string.format("%.3f %.3f", wall * 1e6 / n, cpu * 1e6 / n))
