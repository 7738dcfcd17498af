--- spec/helpers/windows.lua: counting requests in sliding windows, for the
-- rate-limit specs.
local M = {}

--- The most of `times` (seconds, any order) inside one half-open window
-- [x, x + period), over every x.
function M.busiest(times, period)
  local t = {}
  for i, v in ipairs(times) do t[i] = v end
  table.sort(t)
  local most, j = 0, 1
  for i = 1, #t do
    while t[i] - t[j] >= period do j = j + 1 end
    if i - j + 1 > most then most = i - j + 1 end
  end
  return most
end

--- A seeded generator of numbers in [0, 1): the same run on every Lua.
function M.lcg(seed)
  local x = seed
  return function()
    x = (x * 1103515245 + 12345) % 2147483648
    return x / 2147483648
  end
end

return M
