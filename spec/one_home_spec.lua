-- one_home_spec.lua: facts the Lua side keeps in one place. HTTP dates are
-- read by the C core alone (core.parse_http_date, the reading
-- core.server_wait gives Retry-After); the other dates are coldsend.dates';
-- the empty array is one fact whether the C core's marker
-- (core.EMPTY_ARRAY, in c:changes()) or a table marked by json.array.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local dates = require "coldsend.dates"
local json = require "coldsend.json"
local retry = require "coldsend.retry"
local writes = require "coldsend.writes"

local ID = "550e8400-e29b-41d4-a716-446655440000"

describe("one home per fact", function()
  it("HTTP dates: one reading, the one server_wait uses", function()
    local forms = {
      "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
    }
    for _, s in ipairs(forms) do
      assert.equal(784111777, core.parse_http_date(s), s)
      assert.equal(60, core.server_wait(503, { ["retry-after"] = s }, nil, 784111777 - 60), s)
    end
    for _, bad in ipairs { "soon", "", "2026-12-02T21:31:16Z", "Sun, 06 Foo 1994 08:49:37 GMT" } do
      assert.is_nil(core.parse_http_date(bad), bad)
      assert.is_nil(core.server_wait(503, { ["retry-after"] = bad }, nil, 0), bad)
    end
    assert.is_nil(core.parse_http_date(nil))
    assert.is_nil(core.parse_http_date(784111777))
    -- the name the retry module gave it is the core's function, not a copy
    assert.equal(core.parse_http_date, retry.parse_http_date)
  end)

  -- Only RFC 850's two digits are a two-digit year: a four-digit year
  -- below 100 was read as one ("0000" as 2000, a wait of decades), and a
  -- sign before two digits passed ("-50" as 1950, "+94" as 1994).
  it("HTTP dates: a year is four digits, or RFC 850's two", function()
    local years = {
      ["Sun, 06 Nov 2094 08:49:37 GMT"] = 3939871777, ["Sunday, 06-Nov-69 08:49:37 GMT"] = 3150953377,
      ["Sunday, 06-Nov-70 08:49:37 GMT"] = 26729377, ["Sat, 01 Jan 0000 00:00:00 GMT"] = -62167219200,
      ["Tue, 01 Jan 0050 00:00:00 GMT"] = -60589296000, ["Fri, 31 Dec 9999 23:59:59 GMT"] = 253402300799,
      ["Tue, 29 Feb 2000 00:00:00 GMT"] = 951782400, ["Fri Dec 31 23:59:59 9999"] = 253402300799,
    }
    for s, at in pairs(years) do assert.equal(at, core.parse_http_date(s), s) end
    for _, bad in ipairs {
      "Sun, 06 Nov -50 08:49:37 GMT", "Sun, 06 Nov +94 08:49:37 GMT", "Sunday, 06-Nov--5 08:49:37 GMT",
      "Sun, 06 Nov 994 08:49:37 GMT", "Sun, 06 Nov 5 08:49:37 GMT", "Sun, 06 Nov 19940 08:49:37 GMT",
      "Sun Nov  6 08:49:37 94", "Sun Nov  6 08:49:37 -994", "Mon, 29 Feb 1900 00:00:00 GMT",
    } do
      assert.is_nil(core.parse_http_date(bad), bad)
    end
    -- a Retry-After of the year 50 is in the past: no wait, not one of decades
    assert.equal(0, core.server_wait(503, { ["retry-after"] = "Tue, 01 Jan 0050 00:00:00 GMT" }, nil, 0))
  end)

  it("ISO 8601 date-times and calendar dates live in coldsend.dates", function()
    assert.equal(dates.parse_iso_utc, writes.parse_iso_utc)
    assert.equal(1705314600, dates.parse_iso_utc("2024-01-15T12:30:00+02:00"))
    assert.equal(0, dates.days_from_civil(1970, 1, 1))
    assert.equal(11016, dates.days_from_civil(2000, 2, 29))
    assert.is_true(dates.real_date("2024-02-29"))
    assert.is_false(dates.real_date("2023-02-29"))
    assert.is_false(dates.real_date("2024-13-01"))
    -- the analytics calls check with it
    local cs = coldsend.client { api_key = "cs_live_0neH0me0neH0me", base_url = "http://127.0.0.1:1/api/public/v1" }
    local ok, msg = pcall(cs.timeline, cs, { from_date = "2023-02-29" })
    assert.is_false(ok)
    assert.matches("bad value for 'from_date' %(a real date YYYY%-MM%-DD expected", msg)
  end)

  it("the empty array: the core's marker and json.array are one fact", function()
    assert.is_true(json.is_empty_array(core.EMPTY_ARRAY))
    assert.is_true(json.is_empty_array(json.array()))
    assert.is_false(json.is_empty_array({}))
    assert.is_false(json.is_empty_array(json.array { 1 }))
    assert.is_false(json.is_empty_array(nil))
    assert.equal('{"a":[],"b":[]}', json.encode_sorted { a = core.EMPTY_ARRAY, b = json.array() })
    assert.same({ a = {} }, json.decode(json.encode { a = core.EMPTY_ARRAY }))
    assert.is_true(writes.holds({}, core.EMPTY_ARRAY))
    assert.is_true(writes.holds({}, json.array()))
    assert.is_false(writes.holds({ 1 }, core.EMPTY_ARRAY))
  end)

  it("c:changes() with an emptied list prints as the JSON body it becomes", function()
    local cs = coldsend.client { api_key = "cs_live_0neH0me0neH0me", base_url = "http://127.0.0.1:1/api/public/v1" }
    local c = cs:campaign(ID)
    c.sequences = {}
    local changes = c:changes()
    assert.equal(core.EMPTY_ARRAY, changes.sequences)
    assert.equal('{"sequences":[]}', tostring(changes))
  end)
end)
