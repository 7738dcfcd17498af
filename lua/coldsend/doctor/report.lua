--- coldsend.doctor.report: the report `coldsend.doctor` returns and how
-- it reads. Each check's line (name, status, summary, the advice for a
-- failure or a warning), the key cut out of what the server said, and the
-- report as text (one line a check, ✓/✗ marks on a UTF-8 terminal) or as
-- JSON with sorted keys.
-- @module coldsend.doctor.report
local M = {}

local format, concat, floor = string.format, table.concat, math.floor

-- JSON: a list that encodes as [] even when empty, and null.
local ARRAY = { __name = "coldsend.doctor.array" }
local NULL = setmetatable({}, { __name = "coldsend.doctor.null" })
local function array(t) return setmetatable(t, ARRAY) end
M.NULL, M.array = NULL, array

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

-- JSON with object keys in sorted order, so the output is stable.
local function encode(v, out)
  local cjson = require "cjson"
  local t = type(v)
  if t == "table" then
    if v == NULL then
      out[#out + 1] = "null"
      return
    end
    if #v > 0 or getmetatable(v) == ARRAY then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        encode(x, out)
      end
      out[#out + 1] = "]"
      return
    end
    local keys = {}
    for k in pairs(v) do
      if type(k) == "string" then keys[#keys + 1] = k end
    end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = cjson.encode(k)
      out[#out + 1] = ":"
      encode(v[k], out)
    end
    out[#out + 1] = "}"
  elseif t == "number" then
    out[#out + 1] = v == floor(v) and math.abs(v) < 2 ^ 53 and format("%d", v) or format("%.6f", v)
  elseif t == "string" or t == "boolean" then
    out[#out + 1] = cjson.encode(v)
  else
    out[#out + 1] = "null"
  end
end
--- The report as one JSON object: `{"checks": [{"advice", "details",
-- "name", "status", "summary", "time"}...], "ok": bool}`, keys sorted;
-- `time` in seconds (absent when a check took none), `advice` null unless
-- the check failed or warns.
function Report:json()
  local checks = {}
  for i, c in ipairs(self.checks) do
    checks[i] = { name = c.name, status = c.status, summary = c.summary,
      advice = (c.status == "fail" or c.status == "warn") and c.advice or NULL,
      time = c.time or NULL, details = c.details or {} }
  end
  local out = {}
  encode({ ok = self.ok, checks = checks }, out)
  return concat(out)
end

return M
