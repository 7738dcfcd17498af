-- chart_spec.lua: coldsend.chart's timeline chart. Snapshots at 80 and 120
-- columns, UTF-8 and ASCII (spec/fixtures/timeline/*.txt; rewrite them
-- with COLDSEND_UPDATE_SNAPSHOTS=1 after a deliberate change, and look at
-- them), and for every width and range: no line wider than the terminal.
local chart = require "coldsend.chart"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local DIR = sandbox.root .. "/spec/fixtures/timeline/"

-- Days from 2027-01-04 (a Monday): weekdays send, weekends do not; the
-- counts follow a fixed pattern (no random numbers).
local function points(n)
  local list = {}
  local t0 = os.time { year = 2027, month = 1, day = 4, hour = 12 }
  for i = 0, n - 1 do
    local weekend = i % 7 >= 5
    local sent = weekend and 0 or 20 + (i * 37) % 41
    list[#list + 1] = {
      date = os.date("%Y-%m-%d", t0 + i * 86400), sent = sent,
      opened = math.floor(sent * (0.3 + (i % 5) * 0.05)), replied = (i * 7) % 5 == 0 and 0 or (i * 3) % 4,
      bounced = weekend and 0 or i % 3,
    }
  end
  return list
end

-- Columns of a line (UTF-8 characters).
local function columns(line)
  local n = 0
  for _ in line:gmatch("[%z\1-\127\194-\244][\128-\191]*") do n = n + 1 end
  return n
end

describe("coldsend.chart.timeline", function()
  for _, case in ipairs {
    { days = 14, width = 80, utf8 = true }, { days = 14, width = 80, utf8 = false },
    { days = 90, width = 80, utf8 = true }, { days = 90, width = 80, utf8 = false },
    { days = 14, width = 120, utf8 = true }, { days = 14, width = 120, utf8 = false },
    { days = 90, width = 120, utf8 = true }, { days = 90, width = 120, utf8 = false },
  } do
    local name = ("%d-days-%d-cols-%s.txt"):format(case.days, case.width, case.utf8 and "utf8" or "ascii")
    it("matches the snapshot " .. name, function()
      local got = chart.timeline(points(case.days), { width = case.width, utf8 = case.utf8 })
      if os.getenv("COLDSEND_UPDATE_SNAPSHOTS") then util.write(DIR .. name, got) end
      assert.equal(util.slurp(DIR .. name, "(no snapshot " .. name .. ")"), got)
      if not case.utf8 then assert.is_nil(got:find("[\128-\255]"), "ASCII only") end
    end)
  end

  it("fits every line to the width, for any width and range", function()
    for _, width in ipairs { 40, 41, 57, 80, 99, 120, 200 } do
      for _, n in ipairs { 1, 2, 7, 30, 31, 90, 180, 366 } do
        for _, utf8 in ipairs { true, false } do
          local text = chart.timeline(points(n), { width = width, utf8 = utf8 })
          for line in text:gmatch("[^\n]*") do
            assert.truthy(columns(line) <= width, ("%d days at %d: %q"):format(n, width, line))
          end
          -- the title says when one column sums several days
          local title = text:match("^[^\n]*\n[^\n]*")
          if n <= width - 20 then assert.matches("per day", title, 1, true) end
          if n > width then assert.matches("per %d+ days", title) end
        end
      end
    end
  end)

  it("draws the tallest day full and an empty day blank; totals and rates below", function()
    local text = chart.timeline({
      { date = "2027-01-04", sent = 10, opened = 5, replied = 1, bounced = 0 },
      { date = "2027-01-05", sent = 0, opened = 0, replied = 0, bounced = 0 },
      { date = "2027-01-06", sent = 5, opened = 0, replied = 0, bounced = 2 },
    }, { width = 40, utf8 = false })
    -- the 5 is half the 10: 2 of the 4 rows; the empty day blank
    assert.matches("\nsent    10|###\n          |###\n          |###     ###\n          |###     ###\n", text, 1, true)
    assert.matches("\n15 sent, 5 opened (33.3%), 1 replied\n  (6.7%), 2 bounced (11.8%)\n", text, 1, true)
    assert.equal("no days in the range\n", chart.timeline({}, { width = 80 }))
  end)

  it("draws whatever numbers a server sends: fractions, huge, negative, NaN, no date", function()
    local huge, nan = 1e300, 0 / 0
    for _, utf8 in ipairs { true, false } do
      for _, width in ipairs { 40, 80 } do
        local text = chart.timeline({
          { date = "2027-01-04", sent = 1.5, opened = 0.25, replied = nan, bounced = 1 / 0 },
          { date = "2027-01-05", sent = huge, opened = -3, replied = 2, bounced = -1 / 0 },
          { sent = 4, opened = "x", replied = {}, bounced = nan }, -- no date
          { date = 20270107, sent = 1e16, opened = 1, replied = 1, bounced = 0 },
          "not a day",
        }, { width = width, utf8 = utf8 })
        for line in text:gmatch("[^\n]*") do
          assert.truthy(columns(line) <= width, ("%d: %q"):format(width, line))
          assert.is_nil(line:find("nan", 1, true), line)
          assert.is_nil(line:find("inf", 1, true), line)
        end
        -- a count that is not a number from 0 to 2^53 counts as 0; 1.5
        -- rounds to 2; an entry that is not a table is no day
        assert.matches("\n6 sent, 1 opened %(16%.7%%%), 3 replied", text)
        assert.matches("(4 days)", text, 1, true)
      end
    end
    assert.equal("1,234,567", chart.thousands(1234567))
    assert.equal("-1,234", chart.thousands(-1234))
    assert.equal("2", chart.thousands(1.5))
    assert.equal("?", chart.thousands(0 / 0))
    assert.equal("?", chart.thousands(1 / 0))
    assert.equal("100,000,000,000,000,000,000", chart.thousands(1e20))
  end)
end)
