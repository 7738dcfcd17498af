--- coldsend.retry: the retry policy, as pure functions the facade's request loop calls.
--
-- Nothing here does I/O, reads a clock or sleeps: the caller passes the
-- server's stated wait and the random source, so every rule is testable.
--
--   local p = retry.policy(client_opts, call_opts)      -- validated, merged
--   local again, reason, ambiguous = retry.decide(method, outcome, attempt, p)
--   local wait = retry.delay(attempt, p, err.retry_after, math.random)
--
-- `attempt` is the number of the try that just failed: 1 is the first try.
-- A failure is retried only while attempt <= max_retries, so max_retries = 3
-- allows 4 tries in all.
--
-- What is retried (`outcome` is `{status=, headers=}` for an HTTP answer, or
-- `{code=, info={sent=, curl_code=}}` for a transport failure; an HTTP
-- answer whose body failed to parse may carry both `status` and
-- `code = "protocol"`):
--
-- | outcome                         | GET/HEAD   | PUT/DELETE | POST (and other non-idempotent) |
-- |---------------------------------|------------|------------|---------------------------------|
-- | 429                             | retry      | retry      | retry                           |
-- | 500, 502, 503, 504              | retry      | retry      | no, ambiguous                   |
-- | other status                    | no         | no         | no                              |
-- | network / timeout, sent = false | retry      | retry      | retry                           |
-- | network / timeout, sent = true  | retry      | retry      | no, ambiguous                   |
-- | tls handshake (curl 35)         | retry      | retry      | retry if sent = false           |
-- | tls, any other (verification)   | no         | no         | no                              |
-- | protocol (unreadable answer,    | retry      | no         | no, ambiguous if sent           |
-- |   or a 2xx whose body is not)   |            |            |                                 |
-- | protocol, body over the cap     | no         | no         | no, ambiguous if sent           |
--
-- Why:
-- * 429 means the server refused the request before acting on it (rate
--   limiting happens in front of the handlers), so even a POST is safe.
-- * A POST is re-sent only when it certainly had no effect: it never left
--   (DNS, connect, TLS handshake) or the server refused it before acting
--   (429). Any 5xx may come after the server acted: a gateway answers 502,
--   503 or 504 for a request its backend already handled, and a 500 can
--   follow a commit. Such a POST is marked ambiguous and the caller checks
--   whether the write happened before it re-sends (coldsend.writes).
-- * PUT and DELETE put the server in the same state however often they
--   arrive: they are retried freely (a retried launch or delete that finds
--   its own earlier attempt's work is reconciled by the caller).
-- * A certificate that fails verification will fail again: not retried.
-- * protocol: an answer we cannot read (truncated or non-JSON body). A GET
--   or HEAD is re-read, as a read has no effect; a write was acted on, and
--   sending it again would not make the answer readable. A body over the
--   size cap is not retried at all: it would be as big the next time.
--
-- Reasons (second result, a token for logs and metrics): "rate_limited",
-- "unavailable", "server_error", "network", "timeout", "tls_handshake",
-- "protocol" when retried; "exhausted" (retryable, but max_retries is
-- reached), "not_idempotent" (the request may have been acted on),
-- "final" (the status or error is not one to retry) otherwise.
--
-- delay: the server's stated wait when it gave one (`core.server_wait`, the
-- one reading of Retry-After, X-RateLimit-Reset and the 429 body, which is
-- also `err.retry_after`: the error says exactly what the client waits),
-- else full jitter, `random() * min(cap, base * 2^(attempt-1))`. The caller
-- caps any single wait with `max_wait` and the deadline.
-- @module coldsend.retry
local M = {}

local floor, huge = math.floor, math.huge
local server_wait = require("coldsend.core").server_wait
local options = require "coldsend.options"

--- The policy's defaults, under the options `policy` merges: 3 retries, a backoff
-- base of 0.5 s capped at 30 s, and no deadline.
M.DEFAULTS = { max_retries = 3, base = 0.5, cap = 30, deadline = nil }

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local SAFE = { GET = true, HEAD = true, OPTIONS = true }

-- Statuses retried for every method, and for idempotent ones only.
local RETRY_ANY = { [429] = "rate_limited" }
local RETRY_IDEMPOTENT = { [500] = "server_error", [502] = "server_error", [503] = "unavailable",
  [504] = "server_error" }

-- curl codes: the TLS handshake failed (may be transient); the body
-- outgrew the cap (write callback refused it, or the declared size did).
local CURLE_SSL_CONNECT_ERROR = 35
local CURLE_WRITE_ERROR, CURLE_FILESIZE_EXCEEDED = 23, 63

-- Each option's rule (coldsend.options); nil means "not given".
-- `deadline = false` switches a client deadline off for one call.
local rule = options.rule
local RULES = {
  max_retries = rule("integer >= 0", function(v)
    return type(v) == "number" and v == floor(v) and v >= 0 and v < huge end),
  base = rule("number > 0", function(v) return type(v) == "number" and v > 0 and v < huge end),
  cap = rule("number > 0", function(v) return type(v) == "number" and v > 0 end),
  deadline = rule("number > 0 or false", function(v)
    return v == false or (type(v) == "number" and v > 0) end),
}

--- Merges the retry options of each table given (client options, then
-- per-call options; nil tables are skipped, other keys ignored) over the
-- defaults. Raises `bad value for 'base' (number > 0 expected, got 0)` on a
-- bad value. Returns {max_retries=, base=, cap=, deadline= (nil: none)}.
function M.policy(...)
  local p = {}
  for name, v in pairs(M.DEFAULTS) do p[name] = v end
  for i = 1, select("#", ...) do
    local opts = select(i, ...)
    if opts ~= nil then
      if type(opts) ~= "table" then
        error(string.format("bad options #%d (table expected, got %s)", i, type(opts)), 2)
      end
      for name, r in pairs(RULES) do
        local v = opts[name]
        if v ~= nil then p[name] = options.check_value(name, r, v) end
      end
    end
  end
  if p.deadline == false then p.deadline = nil end
  return p
end

--- The monotonic instant a call started at `start` must end by, or nil.
function M.deadline_at(policy, start)
  return policy.deadline and start + policy.deadline or nil
end

-- Classifies a transport failure: reason when retryable for this method,
-- else nil plus whether the failure is ambiguous.
local function classify_failure(method, outcome)
  local info = outcome.info or {}
  local sent = info.sent ~= false -- unknown counts as possibly sent
  local curl = info.curl_code
  local idempotent = IDEMPOTENT[method]
  local code = outcome.code
  if code == "network" or code == "timeout" then
    if idempotent or not sent then return code end
    return nil, true, "not_idempotent"
  elseif code == "tls" then
    if curl ~= CURLE_SSL_CONNECT_ERROR then return nil, false, "final" end
    if idempotent or not sent then return "tls_handshake" end
    return nil, true, "not_idempotent"
  elseif code == "protocol" then
    if not sent then return nil, false, "final" end
    local too_large = info.too_large or curl == CURLE_WRITE_ERROR or curl == CURLE_FILESIZE_EXCEEDED
    if SAFE[method] and not too_large then return "protocol" end
    if idempotent then return nil, false, "final" end
    return nil, true, "not_idempotent"
  end
  return nil, false, "final"
end

--- Decides whether a failed try is tried again. Returns
-- `retry (boolean), reason (string), ambiguous (boolean)`; `ambiguous` is
-- true when a non-idempotent request may have been acted on by the server.
function M.decide(method, outcome, attempt, policy)
  method = string.upper(tostring(method))
  local reason, ambiguous, why
  local status = outcome.status
  if status and outcome.code == "protocol" and status >= 200 and status < 300 then
    -- a success status with a body we could not read: the server acted
    reason, ambiguous, why = classify_failure(method, outcome)
  elseif status then
    reason = RETRY_ANY[status] or (IDEMPOTENT[method] and RETRY_IDEMPOTENT[status])
    if not reason then
      ambiguous = RETRY_IDEMPOTENT[status] ~= nil -- a non-idempotent 500/502/504
      why = ambiguous and "not_idempotent" or "final"
    end
  else
    reason, ambiguous, why = classify_failure(method, outcome)
  end
  if not reason then return false, why, ambiguous or false end
  if attempt > policy.max_retries then return false, "exhausted", false end
  return true, reason, false
end

-- A header by its lower-case name; transports lower-case names, but a
-- user transport may not.
local function header(headers, name)
  if not headers then return nil end
  local v = headers[name]
  if v ~= nil then return v end
  for k, value in pairs(headers) do
    if type(k) == "string" and k:lower() == name then return value end
  end
  return nil
end
--- A header's value by its lower-case name, matched case-insensitively when
-- the exact key is absent (a user transport may not lower-case names).
-- @param headers the response headers table, or nil
-- @param name the header name, lower-case
-- @return the value, or nil
M.header = header

--- Epoch seconds of an HTTP date, or nil: core.parse_http_date, the
-- reading core.server_wait gives Retry-After (coldsend.dates).
M.parse_http_date = require("coldsend.core").parse_http_date

-- The X-RateLimit-Reset headers alone, for core.server_wait (one table,
-- emptied after each use: no allocation per answer).
local reset_only = {}

--- Seconds until the window of the X-RateLimit-Reset in `headers` ends, or
-- nil: core.server_wait's reading of that header, as for a 429 without
-- Retry-After (a Unix time, or a small number as a delay; whole seconds,
-- rounded up), so that the rate limiter's hold, err.retry_after and the
-- retry loop's wait are one reading of the same answer.
-- @param headers the response headers table, or nil
-- @param now_wall the wall clock (epoch seconds) the answer is read at
function M.window_wait(headers, now_wall)
  if not headers then return nil end
  local lower, canonical = headers["x-ratelimit-reset"], headers["X-RateLimit-Reset"]
  if lower == nil and canonical == nil then return nil end
  reset_only["x-ratelimit-reset"], reset_only["X-RateLimit-Reset"] = lower, canonical
  local wait = server_wait(429, reset_only, nil, now_wall)
  reset_only["x-ratelimit-reset"], reset_only["X-RateLimit-Reset"] = nil, nil
  return wait
end

--- Seconds to sleep before the try after `attempt`: `asked` (the server's
-- stated wait, from core.server_wait or err.retry_after) when given, else
-- full jitter with `random` (a function returning [0, 1), default
-- math.random). A stated wait is taken as it is, so that err.retry_after
-- is exactly the wait the client takes.
function M.delay(attempt, policy, asked, random)
  if asked then return asked end
  random = random or math.random
  return random() * math.min(policy.cap, policy.base * 2 ^ (attempt - 1))
end

return M
