--- coldsend.dates: the Lua side's dates, in one place. HTTP dates
-- (Retry-After, Date) are read by the C core alone (core.parse_http_date,
-- which core.server_wait uses); here are the calendar arithmetic, the ISO
-- 8601 date-times the API answers with (created_at, start_date) and the
-- YYYY-MM-DD dates the analytics calls take. Parsed by hand, in UTC, so
-- neither the locale nor the local time zone (os.time) matters.
-- @module coldsend.dates
local floor = math.floor

local M = {}

--- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
-- days_from_civil), exact for every year in floating point too.
function M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400                                   -- [0, 399]
  local mp = (m + 9) % 12                                     -- March = 0
  local doy = floor((153 * mp + 2) / 5) + d - 1               -- [0, 365]
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy -- [0, 146096]
  return era * 146097 + doe - 719468
end

--- Epoch seconds of an ISO 8601 date-time: Z, +hh, +hhmm or +hh:mm, with or
-- without seconds and their fraction; nil for anything else.
function M.parse_iso_utc(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, rest = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)[T ](%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local sec, zone = rest:match("^:(%d%d%.?%d*)(.*)$")
  if not sec then sec, zone = "0", rest end
  local offset
  if zone == "" or zone == "Z" or zone == "z" then
    offset = 0
  else
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d?%d?)$")
    if not sign or (#om ~= 0 and #om ~= 2) then return nil end
    offset = (tonumber(oh) * 3600 + (tonumber(om) or 0) * 60) * (sign == "-" and -1 or 1)
  end
  return M.days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) - offset
end

--- True for a real calendar date YYYY-MM-DD (2024-02-29 yes, 2023-02-29 no).
function M.real_date(v)
  local y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return false end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if y < 1 or m < 1 or m > 12 or d < 1 then return false end
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  local days = ({ 31, leap and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
  return d <= days
end

return M
