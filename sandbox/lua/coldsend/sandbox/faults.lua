--- coldsend.sandbox.faults: injected faults (doc/sandbox.md): arming one,
-- picking the armed fault a request meets, and the answer it produces
-- (a status, a closed or truncated connection, a body that is not JSON...).
local json = require "coldsend.json"
local V = require "coldsend.sandbox.validate"

local M = {}

local Server = {}
--- Methods of the server, for coldsend.sandbox to mix into its Server.
M.methods = Server

local null = json.null

local FAULT_KINDS = {
  delay = true, close_before = true, close_mid_body = true, status = true,
  truncated = true, non_json = true, html = true, oversized = true,
  wrong_content_type = true,
}
--- The fault kinds `add_fault` accepts, as a set (kind = true).
M.FAULT_KINDS = FAULT_KINDS

local function path_matches(pat, path)
  if pat == nil then return true end
  if path:sub(1, #pat) == pat then return true end
  local ok, found = pcall(string.find, path, pat)
  return ok and found ~= nil
end

--- The first armed fault matching req's method, path and key, or nil.
-- A matching fault's skip count is spent first; when it fires its times
-- count goes down and it is removed at zero (times < 0: never).
-- @param req the request table
-- @param path the path relative to the API base
function Server:take_fault(req, path)
  for i, f in ipairs(self.faults) do
    if (not f.method or f.method == req.method)
      and path_matches(f.path, path)
      and (not f.key or f.key == req.headers["x-api-key"]) then
      if f.skip and f.skip > 0 then
        f.skip = f.skip - 1
      else
        f.fired = (f.fired or 0) + 1
        if f.times > 0 then
          f.times = f.times - 1
          if f.times == 0 then table.remove(self.faults, i) end
        end
        return f
      end
    end
  end
end

local function pad_json(size, fields)
  local base = json.encode(fields)
  -- {"...","padding":"xxx"} sized exactly
  local head = base:sub(1, -2) .. ',"padding":"'
  local n = size - #head - 2
  if n < 0 then n = 0 end
  return head .. ("x"):rep(n) .. '"}'
end

-- The response a fault produces. `real` is the processed response when the
-- fault applies after processing, else nil.
function Server.fault_response(_, f, real)
  local kind = f.kind
  local synthetic = function()
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
      body = json.encode { success = true, message = "sandbox fault: " .. kind,
        padding = ("x"):rep(200) } }
  end
  local res
  if kind == "close_before" then
    return { action = f.reset and "reset" or "close" }
  elseif kind == "status" then
    local st = f.status or 500
    local body = f.body
    local ct = f.content_type or "application/json"
    if body == nil then
      local msgs = {
        [429] = ("Rate limit exceeded. Retry after %d seconds."):format(f.retry_after or 60),
        [500] = "Internal server error", [502] = "Bad gateway",
        [503] = "Service temporarily unavailable", [504] = "Gateway timeout",
      }
      body = json.encode { detail = msgs[st] or ("sandbox fault: status " .. st) }
    elseif type(body) == "table" then
      body = json.encode(body)
    end
    res = { status = st, headers = { ["Content-Type"] = ct }, body = tostring(body) }
    if f.retry_after then res.headers["Retry-After"] = tostring(f.retry_after) end
    return res
  elseif kind == "truncated" or kind == "close_mid_body" then
    res = real or synthetic()
    res.action = kind == "truncated" and (f.reset and "truncate_reset" or "truncate")
      or (f.reset == false and "truncate" or "truncate_reset")
    return res
  elseif kind == "non_json" then
    return { status = f.status or 200,
      headers = { ["Content-Type"] = f.content_type or "application/json" },
      body = f.body or "OK: this body is not JSON <sandbox fault>" }
  elseif kind == "html" then
    return { status = f.status or 502, headers = { ["Content-Type"] = "text/html; charset=utf-8" },
      body = f.body or ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        .. "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n") }
  elseif kind == "oversized" then
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
      body = pad_json(f.size or 9 * 1024 * 1024, { success = true, message = "sandbox fault: oversized" }) }
  elseif kind == "wrong_content_type" then
    res = real or synthetic()
    res.headers = res.headers or {}
    res.headers["Content-Type"] = f.content_type or "text/plain; charset=utf-8"
    return res
  end
end
--- Arms a fault (doc/sandbox.md): returns the stored fault, or nil, message.
function Server:add_fault(f)
  if not FAULT_KINDS[f.kind] then
    local kinds = {}
    for k in pairs(FAULT_KINDS) do kinds[#kinds + 1] = k end
    table.sort(kinds)
    return nil, "kind must be one of: " .. table.concat(kinds, ", ")
  end
  for _, k in ipairs { "method", "path", "key", "content_type" } do
    if f[k] ~= nil and f[k] ~= null and type(f[k]) ~= "string" then return nil, k .. " must be a string" end
  end
  for _, k in ipairs { "times", "skip", "delay_ms", "status", "size", "retry_after" } do
    if f[k] ~= nil and f[k] ~= null and not V.is_int(f[k]) then return nil, k .. " must be an integer" end
  end
  if f.status and (f.status < 100 or f.status > 599) then return nil, "status must be 100..599" end
  local fault = {}
  for k, v in pairs(f) do if v ~= null then fault[k] = v end end
  fault.method = fault.method and fault.method:upper()
  fault.times = fault.times or 1
  if fault.times == 0 then fault.times = -1 end
  self.fault_seq = self.fault_seq + 1
  fault.fault_id = self.fault_seq
  self.faults[#self.faults + 1] = fault
  return fault
end

return M
