--- coldsend.progress: a one-line progress display for long uploads.
-- On a terminal one line is redrawn in place (\r); when the output is a
-- file or a pipe (CI logs) a plain line is printed at the start, every few
-- seconds and at the end, so logs stay readable.
--
--   local bar = require("coldsend.progress").new { label = "leads.csv" }
--   local job = c:upload_leads { file = "leads.csv", on_progress = bar }
--   bar:finish()
-- @module coldsend.progress
local format, rep, floor = string.format, string.rep, math.floor

local M = {}

local Bar = {}
Bar.__index = Bar
Bar.__name = "coldsend.progress"

--- 1234567 -> "1,234,567": whole rows, a rate cut to its whole part
-- (coldsend.text.thousands).
function M.thousands(n)
  return require("coldsend.text").thousands(floor(n or 0))
end

--- Seconds as "42s", "3m05s" or "1h02m"; "?" when unknown.
function M.duration(s)
  if type(s) ~= "number" or s ~= s or s < 0 or s == math.huge then return "?" end
  s = floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return format("%dm%02ds", floor(s / 60), s % 60) end
  return format("%dh%02dm", floor(s / 3600), floor(s % 3600 / 60))
end

local PHASES = { start = "starting", uploading = "uploading", uploaded = "uploaded",
  processing = "processing", done = "done" }

--- The text of one update p (the table c:upload_leads passes to
-- on_progress): percent, rows, rate, ETA and the phase. bar_width 0 leaves
-- the bar out; omit (optional) is a set of parts to leave out (`rate`,
-- `eta`), for a narrow terminal.
function M.format(p, bar_width, omit)
  omit = omit or {}
  local parts = {}
  local percent = p.percent or 0
  if percent < 0 then percent = 0 elseif percent > 100 then percent = 100 end
  if bar_width and bar_width > 0 then
    local filled = floor(bar_width * percent / 100)
    parts[#parts + 1] = "[" .. rep("#", filled) .. rep(".", bar_width - filled) .. "]"
  end
  parts[#parts + 1] = format("%3d%%", percent)
  parts[#parts + 1] = format("%s/%s rows", M.thousands(p.done), M.thousands(p.total))
  if p.rate and p.rate > 0 and not omit.rate then
    parts[#parts + 1] = format("%s rows/s", M.thousands(p.rate))
  end
  if p.phase ~= "done" and p.eta and not omit.eta then parts[#parts + 1] = "ETA " .. M.duration(p.eta) end
  local phase = PHASES[p.phase] or tostring(p.phase or "")
  if p.chunks and p.chunks > 1 and p.chunk then
    phase = format("%s %d/%d", phase, p.chunk, p.chunks)
  end
  parts[#parts + 1] = phase
  if p.errors and p.errors > 0 then parts[#parts + 1] = M.thousands(p.errors) .. " errors" end
  return table.concat(parts, "  ")
end

-- Whether fd 1 or 2 is a terminal: TERM set (and not "dumb") and the
-- shell's `test -t` says so. The shell inherits our descriptors.
local function detect_tty(fd)
  local term = os.getenv("TERM")
  if not term or term == "" or term == "dumb" then return false end
  local ok = os.execute("test -t " .. fd)
  return ok == true or ok == 0
end
--- Whether file descriptor fd (1 or 2) is a terminal: TERM is set and not
-- "dumb", and the shell's `test -t fd` succeeds.
-- @param fd the descriptor number
-- @return true or false
M.detect_tty = detect_tty

--- A progress display; callable, so it can be passed as on_progress.
-- opts: out (a file, default io.stderr), is_tty (default: detected for
-- stdout or stderr), label (printed first), width (terminal columns,
-- default COLUMNS or 80), interval (seconds between plain lines, default
-- 5), clock (seconds, default os.time).
function M.new(opts)
  opts = opts or {}
  local out = opts.out or io.stderr
  local is_tty = opts.is_tty
  if is_tty == nil then is_tty = detect_tty(out == io.stdout and 1 or 2) end
  return setmetatable({
    out = out, is_tty = is_tty, label = opts.label,
    width = opts.width or tonumber(os.getenv("COLUMNS") or "") or 80,
    interval = opts.interval or 5, clock = opts.clock or os.time,
    last_phase = nil, last_time = nil, drawn = 0, last = nil,
  }, Bar)
end

-- The parts left out, in turn, to fit the bar on a narrow terminal.
local NARROWER = { {}, { rate = true }, { rate = true, eta = true } }

--- Shows update p: redraws the line on a terminal; otherwise prints a line
-- for the first update, once interval seconds have passed, and when done.
function Bar:update(p)
  self.last = p
  local prefix = self.label and (self.label .. "  ") or ""
  if self.is_tty then
    local room = self.width - 1
    -- a long file name is shortened (its end kept) to leave room for the rest
    local prefixes = { prefix }
    if #prefix > 20 then
      -- from a character's first byte, not half-way through a UTF-8 one
      local tail = self.label:sub(-14):gsub("^[\128-\191]+", "")
      prefixes[2] = "..." .. tail .. "  "
    end
    -- the bar takes what is left, up to 20 columns; when that is under 5,
    -- the rate, then the ETA, make way for it
    local line
    for _, omit in ipairs(NARROWER) do
      local text = M.format(p, 0, omit)
      for _, pre in ipairs(prefixes) do
        local bar = room - #pre - #text - 4
        if bar > 20 then bar = 20 end
        if not line and bar >= 5 then line = pre .. M.format(p, bar, omit) end
      end
      if line then break end
    end
    line = (line or prefixes[#prefixes] .. M.format(p, 0, NARROWER[#NARROWER])):sub(1, room)
    -- pad over the rest of a longer previous line
    local pad = self.drawn > #line and rep(" ", self.drawn - #line) or ""
    self.out:write("\r", line, pad)
    self.out:flush()
    self.drawn = #line
    return
  end
  local now = self.clock()
  self.pending = true
  -- the first and the last update, and one per interval in between: a
  -- log gets a few lines, not one per chunk stage
  if not self.last_time or (p.phase == "done" and self.last_phase ~= "done")
      or now - self.last_time >= self.interval then
    self.out:write(prefix, M.format(p, 0), "\n")
    self.out:flush()
    self.last_phase, self.last_time, self.pending = p.phase, now, false
  end
end

Bar.__call = Bar.update

--- Ends the display: the terminal line is kept and the cursor moves to the
-- next line; in plain mode the last update is printed if it was not yet.
function Bar:finish()
  if self.is_tty then
    if self.drawn > 0 then self.out:write("\n") end
    self.drawn = 0
  elseif self.pending then
    self.last_time = nil
    self:update(self.last)
  end
  self.out:flush()
end

function Bar:__tostring()
  return format("coldsend.progress (%s)", self.is_tty and "terminal" or "plain")
end

return M
