--- coldsend.doctor.report: the report `coldsend.doctor` returns and how
-- it reads. Each check's line (name, status, summary, the advice for a
-- failure or a warning), the key cut out of what the server said, and the
-- report as text (one line a check, ✓/✗ marks on a UTF-8 terminal) or as
-- JSON with sorted keys.
-- @module coldsend.doctor.report
local M = {}

local format, concat = string.format, table.concat

local Report = {}
Report.__index = Report
Report.__name = "coldsend.doctor.report"

-- The key's forms to cut out of what the server says (a report's own key:
-- not a string field, so never in its JSON).
local SECRETS = {}

--- A new report: no checks yet, ok.
function M.new()
  return setmetatable({ ok = true, checks = {} }, Report)
end

--- From now on, key (and its echoed forms) is cut out of what r says.
function M.hide(r, key)
  r[SECRETS] = require("coldsend.redact").secrets_of { headers = { ["X-API-Key"] = key } }
end

--- Adds a check to r: its name, status ("ok", "fail", "warn", "skip"),
-- summary, advice (for a failure or a warning) and the fields of extra
-- (`time`, `details`); a failure makes r not ok. Returns the check.
function M.add(r, name, status, summary, advice, extra)
  local secrets = r[SECRETS]
  if secrets then
    local redact = require "coldsend.redact"
    summary, advice = redact.string(summary, secrets), redact.string(advice, secrets)
  end
  local c = { name = name, status = status, summary = summary, advice = advice }
  for k, v in pairs(extra or {}) do c[k] = v end
  r.checks[#r.checks + 1] = c
  if status == "fail" then r.ok = false end
  return c
end

local MARKS = {
  utf8 = { ok = "✓", fail = "✗", warn = "!", skip = "-", arrow = "→" },
  ascii = { ok = "ok", fail = "FAIL", warn = "WARN", skip = "skip", arrow = "->" },
}

local LABELS = { versions = "versions", key = "key", base_url = "base URL", proxy = "proxy",
  connection = "connection", tls = "TLS", api = "API", rate_limit = "rate limit", clock = "clock" }

--- The report as text, one line per check and, for a ✗ or a warning, the
-- next step on the line below.
-- @bool utf8 ✓/✗ marks (else ok/FAIL)
function Report:text(utf8)
  local m = utf8 and MARKS.utf8 or MARKS.ascii
  local lines = {}
  local width = utf8 and 1 or 4
  for _, c in ipairs(self.checks) do
    local mark = m[c.status]
    local label = LABELS[c.name] or c.name
    lines[#lines + 1] = format("%s%s %-22s %s", mark, (" "):rep(width - #mark:gsub("[\128-\191]", "")),
      label, c.summary)
    if c.advice and (c.status == "fail" or c.status == "warn") then
      lines[#lines + 1] = format("%s %s %s", (" "):rep(width), m.arrow, c.advice)
    end
  end
  local fails, warns = 0, 0
  for _, c in ipairs(self.checks) do
    if c.status == "fail" then fails = fails + 1 elseif c.status == "warn" then warns = warns + 1 end
  end
  if fails == 0 then
    lines[#lines + 1] = warns == 0 and "all checks passed"
      or format("all checks passed, %d warning%s", warns, warns == 1 and "" or "s")
  else
    lines[#lines + 1] = format("%d check%s failed", fails, fails == 1 and "" or "s")
  end
  return concat(lines, "\n")
end

function Report:__tostring()
  return self:text(false)
end

--- The report as one JSON object: `{"checks": [{"advice", "details",
-- "name", "status", "summary", "time"}...], "ok": bool}`, keys sorted;
-- `time` in seconds (null when a check took none), `advice` null unless
-- the check failed or warns.
function Report:json()
  local json = require "coldsend.json"
  local checks = {}
  for i, c in ipairs(self.checks) do
    checks[i] = { name = c.name, status = c.status, summary = c.summary,
      advice = (c.status == "fail" or c.status == "warn") and c.advice or json.null,
      time = c.time or json.null, details = c.details or {} }
  end
  return json.encode_sorted { ok = self.ok, checks = json.array(checks) }
end

return M
