-- driver_input.lua: what the Lua fuzz drivers share: the input read a byte at a time, and the first broken invariant.
-- local input = require("driver_input")(data)
--   input.byte()          the next byte (0 past the end)
--   input.bytes(k)        the next k bytes (padded with NULs)
--   input.more()          whether bytes are left
--   input.invariant(c, w) notes w when c is false (the first one counts)
--   input.check()         raises the invariant noted, out of every pcall
return function(data)
  local pos, n, broken = 1, #data, nil
  local input = {}
  function input.byte()
    local b = data:byte(pos) or 0
    pos = pos + 1
    return b
  end
  function input.bytes(k)
    local s = data:sub(pos, pos + k - 1)
    pos = pos + k
    return s .. string.rep("\0", k - #s)
  end
  function input.more() return pos <= n end
  function input.invariant(cond, what)
    if not cond and not broken then broken = what end
  end
  function input.check()
    if broken then error(broken, 0) end
  end
  return input
end
