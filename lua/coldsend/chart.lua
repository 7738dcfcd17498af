--- coldsend.chart: terminal charts of campaign activity (`coldsend timeline`).
-- `chart.timeline(points, {width = 80, utf8 = true})` draws sent, opened
-- and replied per day as three bar charts over one date axis, fitted to
-- `width` columns: Unicode eighth blocks on a UTF-8 terminal, `#` and `.`
-- otherwise. When the days outnumber the columns, each column sums
-- several days (the title says how many).
-- @module coldsend.chart
local M = {}

local format, rep, concat, floor, ceil, max =
  string.format, string.rep, table.concat, math.floor, math.ceil, math.max

local SERIES = { "sent", "opened", "replied" }
local ROWS = 4 -- rows per series
local EIGHTHS = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" }

local GLYPHS = {
  utf8 = { axis = "│", corner = "└", line = "─", full = "█" },
  ascii = { axis = "|", corner = "+", line = "-", full = "#" },
}

--- 1234567 -> "1,234,567" (coldsend.text.thousands).
local thousands = require("coldsend.text").thousands
M.thousands = thousands

-- A day's count as the chart uses it: a number from 0 to 2^53, rounded;
-- anything else a server might send (a string, NaN, Infinity, a negative
-- or absurd number) counts as 0.
local function count(v)
  v = tonumber(v)
  if not v or v ~= v or v < 0 or v > 2 ^ 53 then return 0 end
  return floor(v + 0.5)
end

-- A day's date as shown: the server's string, "?" when it sent none.
local function date_of(p)
  return type(p.date) == "string" and p.date or "?"
end

local function percent(a, b)
  if b == 0 then return "-" end
  return format("%.1f%%", a / b * 100)
end

-- A line of text wrapped at spaces to `width` columns (ASCII text only).
local function wrap(text, width, out)
  while #text > width do
    local cut = text:sub(1, width + 1):match("^.*() ")
    if not cut or cut <= 1 then break end
    out[#out + 1] = text:sub(1, cut - 1)
    text = "  " .. text:sub(cut + 1)
  end
  out[#out + 1] = text
end

-- The glyph of one cell: row r (1 at the bottom) of a bar `level` eighths tall.
local function cell(level, r, g, utf8)
  local filled = level - (r - 1) * 8
  if filled >= 8 then return g.full end
  if filled <= 0 then return " " end
  if utf8 then return EIGHTHS[filled] end
  return filled >= 4 and "#" or "."
end

-- Columns: each sums `per` consecutive days.
local function buckets(points, plot)
  local n = #points
  local per = n > plot and ceil(n / plot) or 1
  local cols = {}
  for i = 1, n, per do
    local b = {}
    for _, s in ipairs(SERIES) do
      local sum = 0
      for j = i, math.min(i + per - 1, n) do sum = sum + count(points[j][s]) end
      b[s] = sum
    end
    cols[#cols + 1] = b
  end
  return cols, per
end

--- Draws the chart.
-- @tab points the API's timeline points ({date=, sent=, opened=, replied=, bounced=} ...)
-- @tab[opt] opts `width` (columns, default 80, at least 40), `utf8` (boolean)
-- @treturn string the lines, each at most `width` columns, ending in a newline
function M.timeline(points, opts)
  opts = opts or {}
  local days = {}
  for _, p in ipairs(type(points) == "table" and points or {}) do
    if type(p) == "table" then days[#days + 1] = p end
  end
  points = days
  local width = max(40, floor(tonumber(opts.width) or 80))
  local utf8 = opts.utf8 and true or false
  local g = GLYPHS[utf8 and "utf8" or "ascii"]
  local lines = {}
  local totals = { sent = 0, opened = 0, replied = 0, bounced = 0 }
  for _, p in ipairs(points) do
    for k in pairs(totals) do totals[k] = totals[k] + count(p[k]) end
  end
  local n = #points
  if n == 0 then return "no days in the range\n" end
  -- the gutter ("replied " and the largest label) leaves the plot its
  -- width; wider labels (sums of days) may take a second pass
  local label_w, gutter, plot, cols, per = 1, 0, 0, nil, nil
  for _ = 1, 3 do
    gutter = 8 + label_w
    plot = width - gutter - 1
    cols, per = buckets(points, plot)
    local top = 0
    for _, b in ipairs(cols) do
      for _, s in ipairs(SERIES) do top = max(top, b[s]) end
    end
    if #thousands(top) <= label_w then break end
    label_w = #thousands(top)
  end
  local cw = per > 1 and 1 or math.min(4, max(1, floor(plot / #cols)))
  local bar = cw > 1 and cw - 1 or 1
  local used = #cols * cw
  wrap(format("Sent, opened and replied %s, %s to %s (%d day%s)",
    per > 1 and format("per %d days", per) or "per day", date_of(points[1]), date_of(points[n]), n,
    n == 1 and "" or "s"), width, lines)
  for _, s in ipairs(SERIES) do
    local most = 0
    for _, b in ipairs(cols) do most = max(most, b[s]) end
    lines[#lines + 1] = ""
    for r = ROWS, 1, -1 do
      local row = {}
      for i, b in ipairs(cols) do
        local level = most == 0 and 0 or floor(b[s] / most * ROWS * 8 + 0.5)
        row[i] = rep(cell(level, r, g, utf8), bar) .. rep(" ", cw - bar)
      end
      local name = r == ROWS and s or ""
      local label = r == ROWS and thousands(most) or ""
      lines[#lines + 1] = format("%-7s %" .. label_w .. "s%s%s", name, label, g.axis, concat(row))
    end
    lines[#lines + 1] = format("%-7s %" .. label_w .. "s%s%s", "", "0", g.corner, rep(g.line, used))
  end
  -- the dates under the last axis: the first at the left, the last at the right
  local first, last = date_of(points[1]), date_of(points[n])
  local pad = rep(" ", gutter + 1)
  if used >= #first + #last + 2 then
    lines[#lines + 1] = pad .. first .. rep(" ", used - #first - #last) .. last
  else
    lines[#lines + 1] = pad .. first
  end
  lines[#lines + 1] = ""
  wrap(format("%s sent, %s opened (%s), %s replied (%s), %s bounced (%s)",
    thousands(totals.sent), thousands(totals.opened), percent(totals.opened, totals.sent),
    thousands(totals.replied), percent(totals.replied, totals.sent), thousands(totals.bounced),
    percent(totals.bounced, totals.sent + totals.bounced)), width, lines)
  for i, l in ipairs(lines) do lines[i] = l:gsub(" +$", "") end
  return concat(lines, "\n") .. "\n"
end

return M
