--- coldsend.text: server strings made safe to print. A terminal must not
-- read them as commands (control characters, the C1 range a terminal may
-- take as CSI), and JSON must be UTF-8 (RFC 8259), whatever bytes the
-- server sent. Used by the CLI and by `coldsend doctor`.
-- @module coldsend.text
local M = {}

local format, concat, byte = string.format, table.concat, string.byte

-- The length of the well-formed UTF-8 sequence at i of s (a byte >= 0x80
-- there), or nil: no overlongs, no surrogates, nothing past U+10FFFF.
local function seq_len(s, i)
  local c, b = byte(s, i), byte(s, i + 1)
  if not b or b < 0x80 or b > 0xBF then return nil end
  if c >= 0xC2 and c <= 0xDF then return 2 end
  local lo, hi = 0x80, 0xBF
  if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F
  elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
  if b < lo or b > hi then return nil end
  local b3 = byte(s, i + 2)
  if not b3 or b3 < 0x80 or b3 > 0xBF then return nil end
  if c >= 0xE0 and c <= 0xEF then return 3 end
  if c < 0xF0 or c > 0xF4 then return nil end
  local b4 = byte(s, i + 3)
  if not b4 or b4 < 0x80 or b4 > 0xBF then return nil end
  return 4
end

--- s with every byte that is not part of well-formed UTF-8 replaced by
-- bad(byte) (default: U+FFFD, the replacement character).
-- @string s the text
-- @func[opt] bad the replacement of one byte
function M.utf8(s, bad)
  if not s:find("[\128-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local j = s:find("[\128-\255]", i)
    if not j then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, j - 1)
    local len = seq_len(s, j)
    if len then
      out[#out + 1] = s:sub(j, j + len - 1)
      i = j + len
    else
      out[#out + 1] = bad and bad(byte(s, j)) or "\239\191\189"
      i = j + 1
    end
  end
  return concat(out)
end

local function hex(c) return format("\\x%02X", type(c) == "number" and c or byte(c)) end

--- s for a terminal: bytes that are not UTF-8 and control characters (C0,
-- DEL) as \xNN, the C1 range as \u{NN}. Newlines and tabs stay unless
-- one_line.
-- @string s the text
-- @bool[opt] one_line escape newlines and tabs too
function M.escape(s, one_line)
  s = M.utf8(s, hex)
  s = s:gsub(one_line and "[%z\1-\31\127]" or "[%z\1-\8\11-\31\127]", hex)
  return (s:gsub("\194([\128-\159])", function(c) return format("\\u{%X}", byte(c)) end))
end

--- 1234567 -> "1,234,567"; a fraction rounded, "?" for what is not a
-- finite number (a server's NaN or Infinity). The one way the CLI, its
-- charts and the upload's progress write a count.
-- @param n the number
function M.thousands(n)
  n = tonumber(n)
  if not n or n ~= n or n == math.huge or n == -math.huge then return "?" end
  -- %.0f: "%d" refuses (5.3+) or garbles (5.1) what is not a small integer
  local s = format("%.0f", math.floor(n + 0.5))
  if s == "-0" then s = "0" end
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(-?),", "%1"))
end

--- Whether the locale of the environment is UTF-8 (LC_ALL, else LC_CTYPE,
-- else LANG: the first one set decides, as setlocale does), so that a
-- terminal shows the marks and blocks of a report or a chart.
-- @func getenv the environment (os.getenv or a replacement)
function M.utf8_locale(getenv)
  for _, name in ipairs { "LC_ALL", "LC_CTYPE", "LANG" } do
    local v = getenv(name)
    if v and v ~= "" then
      return v:lower():gsub("-", ""):find("utf8", 1, true) ~= nil
    end
  end
  return false
end

return M
