-- campaign_spec.lua: the coldsend.campaign userdata: fields checked at
-- assignment, variants and follow-ups, validate, split_evenly, pairs,
-- tostring and close.
local core = require "coldsend.core"

local ID = "550e8400-e29b-41d4-a716-446655440000"
local INBOX = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
local INBOX2 = "16fd2706-8baf-433b-82eb-8c7fada847da"

local function rep(n, s) return string.rep(s or "a", n) end

-- The error of f(...), with the "file:line: " position dropped.
local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

local function set(c, k, v) c[k] = v end

-- A call from Lua code, so that argument errors name the function.
local function new(id) local c = core.campaign(id) return c end

-- pairs(c) on every Lua: LuaJIT without 5.2 compatibility ignores __pairs.
local function each(c) return getmetatable(c).__pairs(c) end

local function variant(t)
  local v = { subject_template = "Quick question, {{first_name}}",
              email_content = "Hi {{first_name}},..." }
  for k, x in pairs(t or {}) do v[k] = x end
  return v
end

describe("core.campaign", function()
  it("makes a handle from a UUID or nil", function()
    local c = core.campaign(ID)
    assert.equal(ID, c.id)
    assert.is_nil(c.status)
    assert.is_nil(core.campaign().id)
    assert.equal("coldsend.campaign", getmetatable(c).__name)
  end)

  it("refuses an id that is not a UUID", function()
    assert.equal([[bad argument #1 to 'campaign' (UUID expected, got "nope")]],
      err_of(new, "nope"))
    assert.equal("bad argument #1 to 'campaign' (UUID expected, got number)",
      err_of(new, 5))
  end)
end)

-- Every field: valid values (each boundary), one past each boundary, wrong
-- types, non-integers, NUL. bad = { value, "(rule expected, got value)" }.
local NAME_RULE = "string of 8..255 characters expected"
local FIELDS = {
  name = {
    ok = { rep(8), rep(255), "Q1 Product Launch Outreach", rep(8, "é") },
    bad = {
      { rep(7), NAME_RULE .. [[, got "aaaaaaa")]] },
      { rep(256), NAME_RULE .. [[, got "]] .. rep(32) .. [[..." (256 characters))]] },
      { rep(7, "é"), NAME_RULE },
      { true, NAME_RULE .. ", got boolean)" },
      { 12345678, NAME_RULE .. ", got number)" },
      { "abcd\0efghij", [[string without NUL expected, got "abcd\0efghij")]] },
      { "abcdefgh\255", [[valid UTF-8 expected, got "abcdefgh]] .. "\255" .. [[")]] },
      { {}, NAME_RULE .. ", got table)" },
    },
  },
  daily_limit_per_inbox = {
    ok = { 1, 100, 30, 30.0 },
    bad = {
      { 0, "integer 1..100 expected, got 0)" },
      { 101, "integer 1..100 expected, got 101)" },
      { 150, "integer 1..100 expected, got 150)" },
      { 1.5, "integer 1..100 expected, got 1.5)" },
      { "30", "integer 1..100 expected, got string)" },
      { true, "integer 1..100 expected, got boolean)" },
      { 0 / 0, "integer 1..100 expected, got nan)" },
      { -(0 / 0), "integer 1..100 expected, got nan)" },
      { math.huge, "integer 1..100 expected, got inf)" },
    },
  },
  sending_window_start = {
    ok = { 0, 23, 9 },
    bad = { { -1, "integer 0..23 expected, got -1)" }, { 24, "got 24)" },
            { 8.5, "got 8.5)" }, { "9", "got string)" } },
  },
  sending_window_start_minute = {
    ok = { 0, 59 },
    bad = { { -1, "integer 0..59 expected, got -1)" }, { 60, "got 60)" },
            { 0.5, "got 0.5)" }, { false, "got boolean)" } },
  },
  sending_window_end = {
    ok = { 1, 24, 17 },
    bad = { { 0, "integer 1..24 expected, got 0)" }, { 25, "got 25)" },
            { 16.5, "got 16.5)" }, { {}, "got table)" } },
  },
  sending_window_end_minute = {
    ok = { 0, 59 },
    bad = { { -1, "integer 0..59 expected, got -1)" }, { 60, "got 60)" },
            { 1.25, "got 1.25)" } },
  },
  ramp_up_increment = {
    ok = { 1, 50, 100000 },
    bad = { { 0, "integer 1..100000 expected, got 0)" }, { 100001, "got 100001)" },
            { 2.5, "got 2.5)" }, { "50", "got string)" } },
  },
  ramp_up_max_limit = {
    ok = { 1, 500, 100000 },
    bad = { { 0, "integer 1..100000 expected, got 0)" }, { 100001, "got 100001)" },
            { 2.5, "got 2.5)" } },
  },
  enable_tracking = {
    ok = { true, false },
    bad = { { 1, "boolean expected, got number)" }, { "true", "got string)" } },
  },
  enable_unsubscribe = {
    ok = { true, false },
    bad = { { 0, "boolean expected, got number)" }, { "false", "got string)" } },
  },
  ramp_up_enabled = {
    ok = { true, false },
    bad = { { 1, "boolean expected, got number)" }, { {}, "got table)" } },
  },
  timezone = {
    ok = { "America/New_York", "UTC", "Europe/Paris", "Etc/GMT+5",
           "America/Argentina/Buenos_Aires", "America/Port-au-Prince" },
    bad = {
      { "Europe/Nowhere", [[IANA time zone name expected, got "Europe/Nowhere")]] },
      { "../etc/passwd", [[got "../etc/passwd")]] },
      { "/etc/passwd", [[got "/etc/passwd")]] },
      { "Europe/../Europe/Paris", [[got "Europe/../Europe/Paris")]] },
      { "Europe", [[got "Europe")]] },              -- a directory
      { "zone.tab", [[got "zone.tab")]] },          -- an index file
      { "posix/Europe/Paris", [[got "posix/Europe/Paris")]] },
      { "Europe/Paris\0", [[got "Europe/Paris\0")]] },
      { "", [[got "")]] },
      { rep(101, "A"), "IANA time zone name expected, got " },
      { 5, "IANA time zone name expected, got number)" },
    },
  },
  start_date = {
    ok = { "2024-01-15T10:30:00Z", "2024-01-15T10:30", "2024-01-15T10:30:59",
           "2024-02-29T00:00:00.123+05:30", "2024-01-15T10:30:00-08:00",
           "2024-12-31T23:59:59.999999999Z" },
    bad = {
      { "2023-02-29T00:00:00Z", [[ISO 8601 date-time (YYYY-MM-DDTHH:MM:SSZ) expected, got "2023-02-29T00:00:00Z")]] },
      { "2024-13-01T00:00Z", [[got "2024-13-01T00:00Z")]] },
      { "2024-00-01T00:00Z", [[got "2024-00-01T00:00Z")]] },
      { "2024-04-31T00:00Z", [[got "2024-04-31T00:00Z")]] },
      { "2024-01-15T24:00Z", [[got "2024-01-15T24:00Z")]] },
      { "2024-01-15T10:60Z", [[got "2024-01-15T10:60Z")]] },
      { "2024-01-15T10:30:60Z", [[got "2024-01-15T10:30:60Z")]] },
      { "2024-01-15", [[got "2024-01-15")]] },
      { "2024-01-15 10:30:00", [[got "2024-01-15 10:30:00")]] },
      { "2024-01-15T10:30:00+5:30", [[got "2024-01-15T10:30:00+5:30")]] },
      { "2024-01-15T10:30:00+24:00", [[got "2024-01-15T10:30:00+24:00")]] },
      { "2024-01-15T10:30:00.Z", [[got "2024-01-15T10:30:00.Z")]] },
      { "2024-01-15T10:30:00Zjunk", [[got "2024-01-15T10:30:00Zjunk")]] },
      { -1, "ISO 8601 date-time or seconds since the epoch expected, got -1)" },
      { 1 / 0, "ISO 8601 date-time or seconds since the epoch expected, got " },
      { 0 / 0, "ISO 8601 date-time or seconds since the epoch expected, got nan)" },
      { true, "ISO 8601 date-time or seconds since the epoch expected, got boolean)" },
    },
  },
  inbox_ids = {
    ok = { { INBOX }, { INBOX, INBOX2 } },
    bad = {
      { {}, "array of 1 or more UUIDs expected, got empty table)" },
      { INBOX, "array of 1 or more UUIDs expected, got string)" },
      { { INBOX, x = 1 }, [[array of 1 or more UUIDs expected, got table with key "x")]] },
    },
  },
  sending_days = {
    ok = { { 1 }, { 1, 2, 3, 4, 5, 6, 7 }, { 7, 1 } },
    bad = {
      { {}, "array of 1..7 days expected, got 0 elements)" },
      { { 1, 2, 3, 4, 5, 6, 7, 1 }, "array of 1..7 days expected, got 8 elements)" },
      { 5, "array of 1..7 days expected, got number)" },
    },
  },
  lead_mapping = {
    ok = { { email = "Email" },
           { email = "email", first_name = "First Name", custom_size = "company_size" } },
    bad = {
      { { first_name = "First" }, "with an 'email' key expected, got a table without it)" },
      { "email", "with an 'email' key expected, got string)" },
      { { email = "e", [1] = "x" }, "lead field names of letters, digits and _ expected, got key 1)" },
      { { email = "e", ["first name"] = "x" }, [[got key "first name")]] },
    },
  },
}

local ORDER = {}
for name in pairs(FIELDS) do ORDER[#ORDER + 1] = name end
table.sort(ORDER)

for _, name in ipairs(ORDER) do
  local spec = FIELDS[name]
  describe("field " .. name, function()
    for i, v in ipairs(spec.ok) do
      it("takes valid value #" .. i, function()
        local c = core.campaign(ID)
        c[name] = v
        local got = c[name]
        if type(v) == "table" then
          assert.same(v, got)
        elseif name == "daily_limit_per_inbox" then
          assert.equal(v, got)
          assert.equal(math.type and "integer" or "number", math.type and math.type(got) or type(got))
        else
          assert.equal(v, got)
        end
        assert.not_nil(c:changes()[name])
      end)
    end
    for i, case in ipairs(spec.bad) do
      it("refuses bad value #" .. i, function()
        local c = core.campaign(ID)
        local msg = err_of(set, c, name, case[1])
        local head = "bad value for '" .. name .. "' ("
        assert.equal(head, msg:sub(1, #head))
        assert.truthy(msg:find(case[2], 1, true), msg)
        assert.is_nil(c[name])
        assert.same({}, c:changes())
      end)
    end
    it("is cleared by nil", function()
      local c = core.campaign(ID)
      c[name] = spec.ok[1]
      c:_clear_dirty()
      c[name] = nil
      assert.is_nil(c[name])
      assert.equal(1, select(2, tostring(c):gsub("%(1 unsaved%)", "")))
    end)
  end)
end

describe("array elements", function()
  it("name the element at fault", function()
    local c = core.campaign(ID)
    assert.equal([[bad value for 'inbox_ids[2]' (UUID expected, got "x")]],
      err_of(set, c, "inbox_ids", { INBOX, "x" }))
    assert.equal("bad value for 'inbox_ids[1]' (UUID expected, got number)",
      err_of(set, c, "inbox_ids", { 5 }))
    assert.equal("bad value for 'inbox_ids[2]' (no repeats expected, got \"" .. INBOX .. "\" again)",
      err_of(set, c, "inbox_ids", { INBOX, INBOX:upper() }))
    assert.equal("bad value for 'sending_days[1]' (integer 1..7 expected, got 0)",
      err_of(set, c, "sending_days", { 0 }))
    assert.equal("bad value for 'sending_days[2]' (integer 1..7 expected, got 8)",
      err_of(set, c, "sending_days", { 1, 8 }))
    assert.equal("bad value for 'sending_days[1]' (integer 1..7 expected, got 1.5)",
      err_of(set, c, "sending_days", { 1.5 }))
    assert.equal("bad value for 'sending_days[1]' (integer 1..7 expected, got string)",
      err_of(set, c, "sending_days", { "1" }))
    assert.equal("bad value for 'sending_days[3]' (no repeats expected, got 2 again)",
      err_of(set, c, "sending_days", { 1, 2, 2 }))
    assert.equal([[bad value for 'lead_mapping.email' (string of 1..255 characters expected, got "")]],
      err_of(set, c, "lead_mapping", { email = "" }))
    assert.equal("bad value for 'lead_mapping.email' (string of 1..255 characters expected, got number)",
      err_of(set, c, "lead_mapping", { email = 5 }))
    assert.equal([[bad value for 'lead_mapping.email' (string without NUL expected, got "a\0b")]],
      err_of(set, c, "lead_mapping", { email = "a\0b" }))
  end)

  it("stores UUIDs in lower case", function()
    local c = core.campaign(ID)
    c.inbox_ids = { INBOX:upper() }
    assert.same({ INBOX }, c.inbox_ids)
  end)

  it("refuses arrays with holes", function()
    local c = core.campaign(ID)
    local msg = err_of(set, c, "inbox_ids", { [1] = INBOX, [3] = INBOX2 })
    assert.truthy(msg:find("bad value for 'inbox_ids' (array of 1 or more UUIDs expected, got table", 1, true))
  end)
end)

describe("start_date", function()
  it("turns epoch seconds into a UTC ISO 8601 string", function()
    local c = core.campaign(ID)
    for secs, iso in pairs {
      [0] = "1970-01-01T00:00:00Z", [1705314600] = "2024-01-15T10:30:00Z",
      [951782400] = "2000-02-29T00:00:00Z", [1705314600.75] = "2024-01-15T10:30:00Z",
      [253402300799] = "9999-12-31T23:59:59Z",
    } do
      c.start_date = secs
      assert.equal(iso, c.start_date)
    end
    assert.truthy(err_of(set, c, "start_date", 253402300800):find("got 253402300800)", 1, true))
  end)
end)

describe("timezone without a zone database", function()
  it("falls back to a shape check", function()
    local lua = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
    local code = [[local c = require("coldsend.core").campaign()
      c.timezone = "Mars/Olympus_Mons"
      io.write(c.timezone, " ", (pcall(function() c.timezone = "../x" end)) and "ok" or "refused")]]
    local p = io.popen("TZDIR=/nonexistent " .. lua .. " -e '" .. code .. "' 2>&1")
    local out = p:read("*a")
    p:close()
    assert.equal("Mars/Olympus_Mons refused", out)
  end)
end)

describe("field names", function()
  it("raise on unknown names, read or assigned", function()
    local c = core.campaign(ID)
    assert.equal("no field 'nmae' in coldsend.campaign", err_of(set, c, "nmae", "x"))
    assert.equal("no field 'nmae' in coldsend.campaign", err_of(function() return c.nmae end))
    assert.equal("no field '1' in coldsend.campaign", err_of(set, c, 1, "x"))
    assert.equal("no field 'launch' in coldsend.campaign", err_of(set, c, "launch", true))
  end)

  it("refuse assignment to read-only fields and methods", function()
    local c = core.campaign(ID)
    for _, name in ipairs { "id", "status", "is_launch_ready", "missing_requirements", "updated_at" } do
      assert.equal("field '" .. name .. "' of coldsend.campaign is read-only",
        err_of(set, c, name, "x"))
    end
    assert.equal("field 'validate' of coldsend.campaign is read-only",
      err_of(set, c, "validate", 1))
  end)
end)

describe("a failed assignment", function()
  it("leaves the old value and the dirty set", function()
    local c = core.campaign(ID)
    c.name = "Q1 Product Launch Outreach"
    c.daily_limit_per_inbox = 30
    c:_clear_dirty()
    c.sending_days = { 1, 2 }
    err_of(set, c, "daily_limit_per_inbox", 150)
    err_of(set, c, "name", "short")
    err_of(set, c, "sending_days", { 1, 9 })
    err_of(set, c, "variants", { variant { subject_template = "" } })
    assert.equal(30, c.daily_limit_per_inbox)
    assert.equal("Q1 Product Launch Outreach", c.name)
    assert.same({ 1, 2 }, c.sending_days)
    assert.same({ sending_days = { 1, 2 } }, c:changes())
    assert.is_nil(c.variants)
  end)
end)

describe("variants", function()
  local VRULES = {
    { { variant_name = "A1" }, "variants[1].variant_name' (string of 1..50 letters expected, got \"A1\")" },
    { { variant_name = "" }, "variants[1].variant_name' (string of 1..50 letters expected, got \"\")" },
    { { variant_name = rep(51, "A") }, "string of 1..50 letters expected" },
    { { variant_name = 1 }, "variants[1].variant_name' (string of 1..50 letters expected, got number)" },
    { { variant_label = rep(101) }, "variants[1].variant_label' (string of 1..100 characters expected" },
    { { subject_template = "" }, "variants[1].subject_template' (string of 1..500 characters expected, got \"\")" },
    { { subject_template = rep(501) }, "variants[1].subject_template' (string of 1..500 characters expected" },
    { { subject_template = false },
      "variants[1].subject_template' (string of 1..500 characters expected, got boolean)" },
    { { email_content = rep(9) }, "variants[1].email_content' (string of 10..100000 characters expected" },
    { { email_content = rep(100001) }, "(100001 characters))" },
    { { email_content = "0123456789\0" }, "variants[1].email_content' (string without NUL expected" },
    { { distribution_percent = -1 }, "variants[1].distribution_percent' (integer 0..100 expected, got -1)" },
    { { distribution_percent = 101 }, "got 101)" },
    { { distribution_percent = 50.5 }, "got 50.5)" },
    { { distribution_percent = "50" }, "got string)" },
  }

  for i, case in ipairs(VRULES) do
    it("checks variant rule #" .. i .. " in add_variant and in whole arrays", function()
      local c = core.campaign(ID)
      local msg = err_of(c.add_variant, c, variant(case[1]))
      assert.truthy(msg:find(case[2], 1, true), msg)
      msg = err_of(set, c, "variants", { variant(case[1]) })
      assert.truthy(msg:find(case[2], 1, true), msg)
      assert.is_nil(c.variants)
      assert.same({}, c:changes())
    end)
  end

  it("accepts each boundary", function()
    local c = core.campaign(ID)
    c.variants = {
      variant { variant_name = "b", variant_label = rep(100), subject_template = "x",
                email_content = rep(10), distribution_percent = 0 },
      variant { subject_template = rep(500), email_content = rep(100000),
                distribution_percent = 100 },
    }
    local v = c.variants
    assert.equal("B", v[1].variant_name)
    assert.equal("A", v[2].variant_name)
    assert.equal(100000, #v[2].email_content)
  end)

  it("requires subject and content", function()
    local c = core.campaign(ID)
    assert.equal("bad value for 'variants[1].subject_template' (string of 1..500 characters expected, got nil)",
      err_of(c.add_variant, c, { email_content = rep(10) }))
    assert.equal("bad value for 'variants[1].email_content' (string of 10..100000 characters expected, got nil)",
      err_of(c.add_variant, c, { subject_template = "x" }))
    assert.equal("bad value for 'variants[1]' (variant table expected, got string)",
      err_of(c.add_variant, c, "x"))
  end)

  it("refuse unknown keys", function()
    local c = core.campaign(ID)
    local msg = err_of(c.add_variant, c, variant { subjct = "x" })
    assert.truthy(msg:find("no field 'subjct' in variant", 1, true), msg)
    msg = err_of(set, c, "variants", { variant(), variant { body_template = "0123456789" } })
    assert.equal("no field 'body_template' in variant 'variants[2]'", msg)
  end)

  it("are named A, B, C, D by default, upper-cased, unique per step", function()
    local c = core.campaign(ID)
    assert.equal("A", c:add_variant(variant()))
    assert.equal("C", c:add_variant(variant { variant_name = "c" }))
    assert.equal("B", c:add_variant(variant()))
    assert.equal("D", c:add_variant(variant()))
    assert.equal([[bad value for 'variants[5].variant_name' (name unique in the step expected, got "A" again)]],
      err_of(c.add_variant, c, variant { variant_name = "a" }))
    assert.equal(4, #c.variants)
    assert.equal([[bad value for 'variants[2].variant_name' (name unique in the step expected, got "A" again)]],
      err_of(set, c, "variants", { variant { variant_name = "A" }, variant { variant_name = "a" } }))
    -- given names keep their letter; the others take the free ones
    c.variants = { variant(), variant { variant_name = "A" }, variant() }
    local names = {}
    for i, v in ipairs(c.variants) do names[i] = v.variant_name end
    assert.same({ "B", "A", "C" }, names)
  end)

  it("are copies when read", function()
    local c = core.campaign(ID)
    local mine = { variant { distribution_percent = 100 } }
    c.variants = mine
    mine[1].subject_template = "changed after assignment"
    local v = c.variants
    v[1].subject_template = "changed a copy"
    v[2] = variant()
    assert.equal("Quick question, {{first_name}}", c.variants[1].subject_template)
    assert.equal(1, #c.variants)
    local days = { 1, 2 }
    c.sending_days = days
    days[3] = 3
    c.sending_days[3] = 4
    assert.same({ 1, 2 }, c.sending_days)
    c.lead_mapping = { email = "Email" }
    c.lead_mapping.email = nil
    assert.same({ email = "Email" }, c.lead_mapping)
  end)
end)

describe("follow-ups", function()
  local function seq(t)
    local s = { trigger_type = "NOT_REPLIED", wait_days = 3,
                variants = { variant { subject_template = "Following up" } } }
    for k, x in pairs(t or {}) do s[k] = x end
    return s
  end

  it("get steps 2, 3, 4 in order; a fourth raises", function()
    local c = core.campaign(ID)
    assert.equal(2, c:add_sequence(seq()))
    assert.equal(3, c:add_sequence(seq { trigger_type = "NOT_OPENED" }))
    assert.equal(4, c:add_sequence(seq { trigger_type = "OPENED_BUT_NOT_REPLIED" }))
    assert.equal("bad value for 'sequences' (at most 3 follow-ups expected, got 4)",
      err_of(c.add_sequence, c, seq()))
    assert.equal(3, #c.sequences)
    assert.equal("A", c.sequences[1].variants[1].variant_name)
  end)

  it("keep a given step number", function()
    local c = core.campaign(ID)
    assert.equal(3, c:add_sequence(seq { step_number = 3 }))
    assert.equal(4, c:add_sequence(seq()))
    c.sequences = { seq(), seq { step_number = 4 }, seq { step_number = 3 } }
    local steps = {}
    for i, s in ipairs(c.sequences) do steps[i] = s.step_number end
    assert.same({ 2, 4, 3 }, steps)
    assert.equal("bad value for 'sequences[3].step_number' (integer 2..4 expected, got nil (the step after 4))",
      err_of(set, c, "sequences", { seq(), seq { step_number = 4 }, seq() }))
  end)

  it("check each element with its path", function()
    local c = core.campaign(ID)
    local cases = {
      { seq { trigger_type = "NEVER" }, "bad value for 'sequences[1].trigger_type' "
        .. [[(NOT_OPENED, NOT_REPLIED or OPENED_BUT_NOT_REPLIED expected, got "NEVER")]] },
      { seq { trigger_type = false }, "bad value for 'sequences[1].trigger_type' "
        .. "(NOT_OPENED, NOT_REPLIED or OPENED_BUT_NOT_REPLIED expected, got nil)" },
      { seq { wait_days = 0 }, "bad value for 'sequences[1].wait_days' (integer 1..30 expected, got 0)" },
      { seq { wait_days = 31 }, "bad value for 'sequences[1].wait_days' (integer 1..30 expected, got 31)" },
      { seq { wait_days = 1.5 }, "bad value for 'sequences[1].wait_days' (integer 1..30 expected, got 1.5)" },
      { seq { step_number = 1 }, "bad value for 'sequences[1].step_number' (integer 2..4 expected, got 1)" },
      { seq { step_number = 5 }, "bad value for 'sequences[1].step_number' (integer 2..4 expected, got 5)" },
      { seq { enable_unsubscribe = "yes" },
        "bad value for 'sequences[1].enable_unsubscribe' (boolean expected, got string)" },
      { seq { variants = { variant { subject_template = "" } } },
        [[bad value for 'sequences[1].variants[1].subject_template' (string of 1..500 characters expected, got "")]] },
    }
    cases[2][1].trigger_type = nil
    for _, case in ipairs(cases) do
      assert.equal(case[2], err_of(c.add_sequence, c, case[1]))
    end
    assert.equal(
      [[bad value for 'sequences[2].variants[1].subject_template' (string of 1..500 characters expected, got "")]],
      err_of(set, c, "sequences", { seq(), seq { variants = { variant { subject_template = "" } } } }))
    assert.equal("no field 'trigger' in follow-up 'sequences[1]'",
      err_of(c.add_sequence, c, seq { trigger = "x" }))
    assert.equal("bad value for 'sequences' (array of follow-up tables expected, got string)",
      err_of(set, c, "sequences", "x"))
    assert.is_nil(c.sequences)
    for _, t in ipairs { "NOT_OPENED", "NOT_REPLIED", "OPENED_BUT_NOT_REPLIED" } do
      c:add_sequence(seq { trigger_type = t, wait_days = 30, enable_unsubscribe = false })
    end
  end)

  it("take variants by step with add_variant(t, step)", function()
    local c = core.campaign(ID)
    c:add_sequence(seq())
    assert.equal("B", c:add_variant(variant(), 2))
    assert.equal(2, #c.sequences[1].variants)
    assert.is_nil(c.variants)
    assert.equal("bad argument #2 to 'add_variant' (no follow-up with step 3)",
      err_of(function() local r = c:add_variant(variant(), 3) return r end))
    assert.equal(
      [[bad value for 'sequences[1].variants[3].variant_name' (name unique in the step expected, got "A" again)]],
      err_of(c.add_variant, c, variant { variant_name = "A" }, 2))
  end)
end)

describe("validate", function()
  it("is true for a valid campaign", function()
    local c = core.campaign()
    c.name = "Q1 Product Launch Outreach"
    c:add_variant(variant())
    c:add_variant(variant())
    c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 3, variants = { variant() } }
    c.sending_window_start, c.sending_window_end = 8, 24
    c.ramp_up_enabled, c.ramp_up_increment, c.ramp_up_max_limit = true, 5, 50
    assert.is_true(c:validate())
  end)

  it("lists every problem at once", function()
    local c = core.campaign()
    c.variants = {
      variant { distribution_percent = 50 }, variant { distribution_percent = 30 },
      variant { distribution_percent = 10 }, variant { distribution_percent = 5 },
      variant { distribution_percent = 5 },
    }
    c.sequences = {
      { trigger_type = "NOT_REPLIED", wait_days = 3, variants = {} },
      { step_number = 2, trigger_type = "NOT_OPENED", wait_days = 3,
        variants = { variant { distribution_percent = 50 }, variant() } },
    }
    c.sending_window_start, c.sending_window_start_minute = 17, 30
    c.sending_window_end, c.sending_window_end_minute = 24, 30
    c.ramp_up_enabled, c.ramp_up_increment, c.ramp_up_max_limit = true, 100, 50
    local ok, problems = c:validate()
    assert.is_nil(ok)
    local by = {}
    for _, p in ipairs(problems) do
      assert.equal("string", type(p.message))
      by[p.field] = (by[p.field] and by[p.field] .. " | " or "") .. p.message
    end
    assert.equal("required to create a campaign", by.name)
    assert.truthy(by.variants:find("at most 4 variants per step expected, got 5", 1, true))
    assert.truthy(by.variants:find("sum to 100, 100 expected", 1, true) == nil)
    assert.equal("at least 1 variant expected, got none", by["sequences[1].variants"])
    assert.equal("step 2 is used by another follow-up", by["sequences[2].step_number"])
    assert.truthy(by["sequences[2].variants"]:find("given for 1 of 2 variants", 1, true))
    assert.equal("0 expected when sending_window_end is 24, got 30", by.sending_window_end_minute)
    assert.is_nil(by.sending_window_end) -- 24:30 is after 17:30
    assert.equal("at least ramp_up_increment (100) expected, got 50", by.ramp_up_max_limit)
    assert.is_true(#problems >= 7)
  end)

  it("checks percentage sums, the window and follow-up counts", function()
    local c = core.campaign(ID)
    c.variants = { variant { distribution_percent = 60 }, variant { distribution_percent = 30 } }
    c.sending_window_start = 18
    local _, problems = c:validate()
    assert.same({
      { field = "variants", message = "distribution_percent values sum to 90, 100 expected" },
      { field = "sending_window_end", message = "window end 17:00 must be after its start 18:00" },
    }, problems)
    c.variants = { variant(), variant() } -- none given: split evenly
    c.sending_window_start, c.sending_window_end = 9, 9
    c.sending_window_start_minute, c.sending_window_end_minute = 30, 30
    _, problems = c:validate()
    assert.same({ { field = "sending_window_end",
                    message = "window end 9:30 must be after its start 9:30" } }, problems)
    c.sending_window_end_minute = 31
    assert.is_true(c:validate())
    -- no variants yet is a draft's state (the launch check asks for them);
    -- a follow-up needs its own
    c.variants = {}
    assert.is_true(c:validate())
    c:_apply { sequences = { { step_number = 2, trigger_type = "NOT_REPLIED", wait_days = 2,
      variants = {} } } }
    _, problems = c:validate()
    assert.same({ { field = "sequences[1].variants", message = "at least 1 variant expected, got none" } },
      problems)
  end)

  it("reports ramp-up numbers changed while ramp-up is off, not server ones", function()
    local c = core.campaign(ID)
    c:_apply { ramp_up_enabled = false, ramp_up_increment = 50, ramp_up_max_limit = 500 }
    assert.is_true(c:validate())
    c.ramp_up_increment = 10
    local _, problems = c:validate()
    assert.same({ { field = "ramp_up_increment",
                    message = "has no effect unless ramp_up_enabled is true" } }, problems)
    c.ramp_up_enabled = true
    assert.is_true(c:validate())
  end)

  it("reports more than 3 follow-ups", function()
    local c = core.campaign(ID)
    local s = {}
    for i = 1, 4 do
      s[i] = { step_number = 2 + (i % 3), trigger_type = "NOT_REPLIED", wait_days = 1,
               variants = { variant() } }
    end
    c.sequences = s
    local _, problems = c:validate()
    assert.same({ field = "sequences", message = "at most 3 follow-ups expected, got 4" }, problems[1])
    assert.equal("sequences[4].step_number", problems[2].field)
  end)

  it("never raises on odd server data", function()
    local c = core.campaign(ID)
    c:_apply { variants = { { distribution_percent = "x" }, 5 }, sequences = { 5, { variants = 3 } },
               sending_window_start = "nine", ramp_up_enabled = "yes" }
    local ok, problems = c:validate()
    assert.is_nil(ok)
    assert.equal("table", type(problems))
  end)
end)

describe("split_evenly", function()
  local WANT = { { 100 }, { 50, 50 }, { 34, 33, 33 }, { 25, 25, 25, 25 } }
  for n = 1, 4 do
    it("spreads 100 over " .. n .. " variant(s) of every step", function()
      local c = core.campaign(ID)
      local vs = {}
      for i = 1, n do vs[i] = variant { distribution_percent = i == 1 and 100 or 0 } end
      c.variants = vs
      c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 2, variants = vs }
      c:_clear_dirty()
      c:split_evenly()
      for _, step in ipairs { c.variants, c.sequences[1].variants } do
        local got, sum = {}, 0
        for i, v in ipairs(step) do got[i] = v.distribution_percent; sum = sum + got[i] end
        assert.same(WANT[n], got)
        assert.equal(100, sum)
      end
      assert.is_true(c:validate())
      local ch = c:changes()
      assert.not_nil(ch.variants)
      assert.not_nil(ch.sequences)
    end)
  end

  it("also sums to 100 for odd counts", function()
    local c = core.campaign(ID)
    for n = 5, 7 do
      local vs = {}
      for i = 1, n do vs[i] = variant() end
      c.variants = vs
      c:split_evenly()
      local sum = 0
      for _, v in ipairs(c.variants) do sum = sum + v.distribution_percent end
      assert.equal(100, sum)
    end
  end)

  it("does nothing without variants", function()
    local c = core.campaign(ID)
    c:split_evenly()
    assert.same({}, c:changes())
  end)
end)

describe("tostring", function()
  it("shows id, name, status and unsaved count", function()
    local c = core.campaign(ID)
    assert.equal("coldsend.campaign " .. ID .. " (0 unsaved)", tostring(c))
    c:_apply { status = "DRAFT", name = "Q1 Product Launch Outreach" }
    c.daily_limit_per_inbox = 30
    c.sending_days = { 1, 2, 3, 4, 5 }
    c.inbox_ids = { INBOX }
    c:add_variant(variant())
    c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 3, variants = { variant() } }
    assert.equal("coldsend.campaign " .. ID .. [[ "Q1 Product Launch Outreach" DRAFT (5 unsaved)]],
      tostring(c))
  end)

  it("shows a new campaign as (new)", function()
    local c = core.campaign()
    c.name = "Name of it"
    c.timezone = "UTC"
    c.enable_tracking = true
    assert.equal([[coldsend.campaign (new) "Name of it" (3 unsaved)]], tostring(c))
  end)
end)

describe("pairs", function()
  it("gives set fields in table order, then server keys", function()
    local c = core.campaign(ID)
    c:_apply { status = "DRAFT", updated_at = "2024-01-15T10:30:00Z", zeta = 1, alpha = { 2 } }
    c.timezone = "UTC"
    c.name = "Q1 Product Launch Outreach"
    c.sending_days = { 1 }
    local keys, values = {}, {}
    for k, v in each(c) do keys[#keys + 1] = k; values[k] = v end
    assert.same({ "id", "status", "name", "timezone", "sending_days", "updated_at", "alpha", "zeta" }, keys)
    local days, alpha = values.sending_days, values.alpha
    days[1] = 7
    alpha[1] = 3
    assert.same({ 1 }, c.sending_days)
    assert.same({ 2 }, c.alpha)
    if _VERSION == "Lua 5.4" then
      local n = 0
      for _ in pairs(c) do n = n + 1 end
      assert.equal(8, n)
    end
  end)

  it("follows campaign_fields() order", function()
    local fields = core.campaign_fields()
    local c = core.campaign(ID)
    c:_apply { status = "ACTIVE", is_launch_ready = true, missing_requirements = {},
               updated_at = "x", name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 1,
               start_date = "2024-01-15T10:30:00Z", timezone = "UTC", sending_days = { 1 },
               sending_window_start = 1, sending_window_start_minute = 1, sending_window_end = 2,
               sending_window_end_minute = 0, enable_tracking = false, enable_unsubscribe = true,
               ramp_up_enabled = false, ramp_up_increment = 1, ramp_up_max_limit = 2,
               lead_mapping = { email = "e" }, inbox_ids = { INBOX }, variants = {}, sequences = {} }
    local i = 0
    for k in each(c) do
      i = i + 1
      assert.equal(fields[i].name, k)
    end
    assert.equal(#fields, i)
  end)
end)

describe("campaign_fields", function()
  it("describes every field", function()
    local fields, by = core.campaign_fields(), {}
    for _, f in ipairs(fields) do by[f.name] = f end
    assert.equal(23, #fields)
    assert.same({ name = "daily_limit_per_inbox", type = "integer", rule = "integer 1..100",
                  readonly = false, create = true }, by.daily_limit_per_inbox)
    -- the create schema (spec 6.1): 14 fields, and nothing else
    local create = {}
    for _, f in ipairs(fields) do if f.create then create[#create + 1] = f.name end end
    assert.same({ "name", "daily_limit_per_inbox", "start_date", "timezone", "sending_days",
      "sending_window_start", "sending_window_start_minute", "sending_window_end",
      "sending_window_end_minute", "enable_tracking", "enable_unsubscribe", "ramp_up_enabled",
      "ramp_up_increment", "ramp_up_max_limit" }, create)
    assert.equal("America/New_York", by.timezone.default)
    assert.same({ 1, 2, 3, 4, 5 }, by.sending_days.default)
    assert.equal(9, by.sending_window_start.default)
    assert.equal(17, by.sending_window_end.default)
    assert.is_true(by.enable_unsubscribe.default)
    assert.is_false(by.enable_tracking.default)
    assert.is_true(by.status.readonly)
    assert.equal("string of 8..255 characters", by.name.rule)
    for _, f in ipairs(fields) do
      assert.equal("string", type(f.rule))
      assert.equal("string", type(f.type))
    end
  end)
end)

describe("campaign_methods", function()
  it("is consulted at call time", function()
    local c = core.campaign(ID)
    core.campaign_methods.__test_hello = function(self) return "hello " .. self.id end
    assert.equal("hello " .. ID, c:__test_hello())
    core.campaign_methods.__test_hello = nil
    assert.truthy(err_of(function() return c.__test_hello end):find("no field '__test_hello'", 1, true))
  end)

  it("checks self", function()
    assert.equal("bad argument #1 to 'validate' (coldsend.campaign expected, got number)",
      err_of(function() local r = core.campaign_methods.validate(5) return r end))
  end)
end)

describe("close", function()
  it("is idempotent and makes every use raise", function()
    local c = core.campaign(ID)
    c.name = "Q1 Product Launch Outreach"
    c:close()
    c:close()
    assert.equal("coldsend.campaign (closed)", tostring(c))
    local closed = "attempt to use a closed coldsend.campaign"
    assert.equal(closed, err_of(function() return c.name end))
    assert.equal(closed, err_of(set, c, "name", "Q1 Product Launch Outreach"))
    assert.equal(closed, err_of(function() return c.whatever end))
    for _, m in ipairs { "validate", "changes", "split_evenly", "_clear_dirty", "_discard" } do
      assert.equal(closed, err_of(c[m], c))
    end
    assert.equal(closed, err_of(c.add_variant, c, variant()))
    assert.equal(closed, err_of(c._request, c, "get", "http://127.0.0.1"))
    assert.equal(closed, err_of(c._apply, c, {}))
    assert.equal(closed, err_of(each, c))
  end)

  it("runs for a to-be-closed variable (Lua 5.4)", function()
    if _VERSION ~= "Lua 5.4" then return end
    local f = assert(load [[
      local core = ...
      local keep
      do
        local c <close> = core.campaign()
        keep = c
      end
      return keep
    ]])
    assert.equal("coldsend.campaign (closed)", tostring(f(core)))
  end)

  it("lets the collector take campaigns", function()
    for _ = 1, 1000 do
      local c = core.campaign(ID)
      c.name = "Q1 Product Launch Outreach"
      c:add_variant(variant())
    end
    collectgarbage()
    collectgarbage()
  end)
end)
