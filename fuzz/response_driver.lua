-- response_driver.lua: decodes a fuzz input into
-- core.parse_response(status, headers, body [, now]) and checks the result.
-- Input: bytes 1-2 the status ((b1 * 256 + b2) % 1100, so out-of-range
-- values come up too and must raise, not crash), byte 3 flags, then
-- "name:value" header lines up to a blank line, then the body.
-- flags: 1 keep the header names' case; 2 pass a wall clock; 4 give the
-- first header a value that is not a string; 8 also build an error object
-- from the headers (core.error) and print it; 16 pass no headers table.
local core = require "coldsend.core"

local ODD_VALUES = { 1e308, -1, 0 / 0, 1 / 0, true, {}, 42 }

-- user_built: made by core.error from the input's fields, of any type:
-- tostring must not crash on it, but may refuse it or print line breaks.
local function check_error(err, status, user_built)
  assert(core.is_error(err), "not an error object")
  assert(type(err.code) == "string", "code is not a string")
  assert(type(err.message) == "string", "message is not a string")
  assert(err.status == nil or err.status == status, "status differs")
  local shown, s = pcall(tostring, err)
  if user_built then return end
  assert(shown, s)
  assert(type(s) == "string", "tostring gave no string")
  assert(not s:find("[\r\n]"), "tostring is not one line")
  if err.retry_after ~= nil then
    assert(type(err.retry_after) == "number" and err.retry_after >= 0
      and err.retry_after == err.retry_after, "bad retry_after")
  end
  if err.body ~= nil then
    assert(type(err.body) == "string" and #err.body <= 4096, "error body not capped")
  end
end

return function(input)
  if #input < 3 then return end
  local b1, b2, flags = input:byte(1, 3)
  local status = (b1 * 256 + b2) % 1100
  local rest = input:sub(4)
  local head, body = rest:match("^(.-)\n\n(.*)$")
  if not head then head, body = "", rest end
  local headers, first = {}, nil
  for line in head:gmatch("[^\n]+") do
    local k, v = line:match("^([^:]*):(.*)$")
    if k then
      if flags & 1 == 0 then k = k:lower() end
      headers[k] = v
      first = first or k
    end
  end
  if flags & 4 ~= 0 and first then
    headers[first] = ODD_VALUES[b2 % #ODD_VALUES + 1]
  end
  local now = flags & 2 ~= 0 and (b1 * 16777216 + b2 * 65536) or nil
  local hdrs = flags & 16 == 0 and headers or nil

  local ok, data, err = pcall(core.parse_response, status, hdrs, body, now)
  if ok then
    assert(status >= 100 and status <= 999, "accepted an impossible status")
    if data ~= nil then
      assert(type(data) == "table", "data is not a table")
      assert(status >= 200 and status <= 299, "data from a failure status")
    else
      check_error(err, status)
    end
  end

  if flags & 8 ~= 0 then
    headers.code = headers.code or "server"
    local made_ok, made = pcall(core.error, headers)
    -- fields of any type from the input: tostring may refuse them
    if made_ok then check_error(made, made.status, true) end
  end
end
