-- retries_and_rate_limits.lua: what the client does when the API is busy.
-- Hooks print one line per request and per retry; a per-call deadline caps
-- a whole call, waits included. 429s and 5xx are retried with backoff
-- (honouring Retry-After); a create (POST) is never blindly re-sent.
--
--   COLDSEND_API_KEY=cs_live_... lua5.4 examples/retries_and_rate_limits.lua
local coldsend = require "coldsend"

local cs = coldsend.client {
  max_retries = 4,                      -- per call; 0 switches retries off
  backoff_base = 0.2, backoff_cap = 2,  -- seconds: full jitter up to base * 2^attempt
  rate_limit = { per_minute = 100, per_hour = 1000 },  -- the API's limits, kept client-side
  on_request = function(e)              -- headers come redacted: never the key
    print(string.format("request   %s %s (attempt %d)", e.method, e.url, e.attempt))
  end,
  on_retry = function(e)
    print(string.format("retry     %s %s after %.2f s: %s%s", e.method, e.url, e.delay,
      tostring(e.reason), e.status and (" (HTTP " .. e.status .. ")") or ""))
  end,
}

-- one page of campaigns, at most 10 seconds for the call, retries included
local page, err = cs:list_campaigns({ limit = 10 }, { deadline = 10 })
if not page then
  print("failed    " .. tostring(err))   -- one line: code, status, method, url, attempts
  os.exit(1)
end
print(string.format("listed    %d campaigns", #page.campaigns))

-- a deadline shorter than the backoff gives up early with a clear error
-- instead of sleeping past it
local c, gerr = cs:get_campaign("550e8400-e29b-41d4-a716-446655440000",
  { deadline = 5, max_retries = 2 })
if c then
  print("found     ", c)
else
  print("not found " .. tostring(gerr.code) .. ": " .. tostring(gerr))
end
