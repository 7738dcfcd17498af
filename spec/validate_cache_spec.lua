-- validate_cache_spec.lua: c:validate() remembers a pass until a field it
-- reads changes (the CS_VALIDATED column of the C field table says which).
-- Seeded random runs of mutations (every field, valid and refused values,
-- clears, the editing methods, server answers, _clear_dirty, _discard)
-- compare after each step the answer validate() gives with the one
-- c:_validate_fresh() computes without the remembered pass. The same runs
-- under every Lua: the generator is its own (Park-Miller), not math.random.
local core = require "coldsend.core"

local UUID = "550e8400-e29b-41d4-a716-446655440000"
local INBOX = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

-- Park-Miller: exact in doubles and integers alike, so 5.1 and 5.4 agree.
local function generator(seed)
  local x = seed % 2147483646 + 1
  return function(n)
    x = x * 16807 % 2147483647
    return x % n + 1
  end
end

local function variant(pct, name)
  return { subject_template = "Quick question", email_content = "Hi {{first_name}}, a note",
    distribution_percent = pct, variant_name = name }
end

local function follow_up(step, variants)
  return { trigger_type = "NOT_REPLIED", wait_days = 3, step_number = step, variants = variants }
end

-- Values per field: accepted ones, ones that make validate() fail, and
-- refused ones (the assignment raises and must change nothing). nil clears.
local VALUES = {
  name = { "Q1 Product Launch", "Another campaign", "short", 42 },
  daily_limit_per_inbox = { 1, 50, 100, 0, 101, "50" },
  start_date = { "2030-01-15T10:30:00Z", 1900000000, "2030-02-30T10:00:00Z" },
  timezone = { "Europe/London", "America/New_York", "Mars/Base" },
  sending_days = { { 1, 2, 3 }, { 7 }, {}, { 8 } },
  sending_window_start = { 0, 9, 16, 17, 23, 24 },
  sending_window_start_minute = { 0, 30, 59, 60 },
  sending_window_end = { 1, 9, 17, 18, 24, 25 },
  sending_window_end_minute = { 0, 15, 59, -1 },
  enable_tracking = { true, false, "yes" },
  enable_unsubscribe = { true, false },
  ramp_up_enabled = { true, false, 1 },
  ramp_up_increment = { 1, 50, 600, 100000, 0 },
  ramp_up_max_limit = { 1, 40, 500, 100000, 100001 },
  lead_mapping = { { email = "Email" }, { email = "E", first_name = "F" }, { first_name = "F" } },
  inbox_ids = { { INBOX }, {}, { "nope" } },
  variants = {
    {}, { variant(50), variant(50) }, { variant(), variant() }, { variant(30), variant(30) },
    { variant(100) }, { variant(), variant(), variant(), variant(), variant() },
    { variant(60), variant() }, { variant(0), variant(100) }, { variant(101) },
  },
  sequences = {
    {}, { follow_up(2, { variant(100) }) }, { follow_up(2, {}) },
    { follow_up(nil, { variant() }), follow_up(nil, { variant(50), variant(40) }) },
    { follow_up(3, { variant() }), follow_up(3, { variant() }) },
    { follow_up(2), follow_up(3), follow_up(4), follow_up(nil) },
    { follow_up(5, { variant() }) },
  },
}

local FIELDS = {}
for _, f in ipairs(core.campaign_fields()) do
  if not f.readonly then FIELDS[#FIELDS + 1] = f.name end
end

-- A server answer: a few fields, some outside what a setter allows (the
-- server is the authority), some with a pending local change.
local SERVER = {
  { sending_window_end = 1e300 }, { sending_window_start = 8, sending_window_end = 8 },
  { ramp_up_increment = 50, ramp_up_max_limit = 500 }, { ramp_up_enabled = true },
  { name = "From the server" }, { campaign_id = UUID, status = "DRAFT" },
  { variants = { { variant_name = "a", distribution_percent = 2.5 } } },
  { sequences = { { step_number = 9, variants = {} } } }, { name = "x", success = true },
}

-- One mutation of c chosen by rnd; returns a line for the log.
local function mutate(c, rnd)
  local what = rnd(20)
  if what <= 12 then
    local name = FIELDS[rnd(#FIELDS)]
    local list = VALUES[name]
    local i = rnd(#list + 1)
    local ok = pcall(function() c[name] = list[i] end) -- i past the list: nil
    return ("%s = value %d (%s)"):format(name, i, ok and "taken" or "refused")
  elseif what == 13 then
    local step = rnd(4)
    local ok = pcall(c.add_variant, c, variant(rnd(2) == 1 and 50 or nil), step)
    return ("add_variant(step %d) %s"):format(step, ok and "taken" or "refused")
  elseif what == 14 then
    local ok = pcall(c.add_sequence, c, follow_up(nil, { variant() }))
    return "add_sequence " .. (ok and "taken" or "refused")
  elseif what == 15 then
    c:split_evenly()
    return "split_evenly"
  elseif what == 16 then
    local i = rnd(#SERVER)
    c:_apply(SERVER[i])
    return "_apply server answer " .. i
  elseif what == 17 then
    c:_clear_dirty()
    return "_clear_dirty()"
  elseif what == 18 then
    c:_clear_dirty("create")
    return "_clear_dirty('create')"
  elseif what == 19 then
    c:_discard()
    return "_discard()"
  end
  c:validate() -- remember a pass when there is one
  return "validate()"
end

local function answer(c, method)
  local ok, problems = method(c)
  return { ok = ok, problems = problems }
end

describe("validate()'s remembered pass", function()
  it("always equals a fresh validate() after every mutation, in seeded random runs", function()
    local passes, fails, flips, steps = 0, 0, 0, 0
    for seed = 1, 150 do
      local rnd = generator(seed)
      local c = core.campaign(seed % 3 == 0 and UUID or nil)
      local log, before = {}, nil
      for step = 1, 60 do
        log[#log + 1] = mutate(c, rnd)
        local remembered = answer(c, c.validate)
        local fresh = answer(c, c._validate_fresh)
        assert.same(fresh, remembered, ("seed %d, step %d; steps:\n  %s"):format(seed, step,
          table.concat(log, "\n  ")))
        if fresh.ok then passes = passes + 1 else fails = fails + 1 end
        if before == true and not fresh.ok then flips = flips + 1 end
        before = fresh.ok
        steps = steps + 1
      end
    end
    -- the runs reach both answers, and a remembered pass is often undone
    assert.equal(150 * 60, steps)
    assert.is_true(passes > 500, "passes: " .. passes)
    assert.is_true(fails > 500, "fails: " .. fails)
    assert.is_true(flips > 100, "pass then fail: " .. flips)
  end)

  it("is undone by each field validate() reads, and kept by the others", function()
    -- a campaign that passes, then each field set to a value that fails
    local breaks = {
      name = false, -- setting a name never fails a campaign
      sending_window_start = 17, sending_window_start_minute = false,
      sending_window_end = 9, sending_window_end_minute = false,
      ramp_up_enabled = false, ramp_up_increment = 600, ramp_up_max_limit = 40,
      variants = { variant(30), variant(30) },
      sequences = { follow_up(2, {}) },
    }
    for field, bad in pairs(breaks) do
      if bad then
        local c = core.campaign()
        c.name = "Q1 Product Launch"
        c.ramp_up_enabled = true
        assert.is_true(c:validate())
        c[field] = bad
        local ok, problems = c:validate()
        assert.is_nil(ok, field)
        assert.same({ c:_validate_fresh() }, { ok, problems })
      end
    end
    -- fields validate() does not read leave the pass standing, correctly
    local c = core.campaign()
    c.name = "Q1 Product Launch"
    assert.is_true(c:validate())
    c.daily_limit_per_inbox = 1
    c.timezone = "Europe/London"
    c.inbox_ids = { INBOX }
    assert.is_true(c:validate())
    assert.is_true(c:_validate_fresh())
  end)

  it("is left as it was by _validate_fresh()", function()
    local c = core.campaign()
    c.name = "Q1 Product Launch"
    assert.is_true(c:_validate_fresh())
    c.sending_window_end = 9 -- fails now
    assert.is_nil(c:validate())
    assert.is_nil(c:_validate_fresh())
    c.sending_window_end = 18
    assert.is_true(c:validate())
  end)
end)
