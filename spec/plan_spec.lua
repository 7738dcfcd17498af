-- plan_spec.lua: c:diff and cs:plan: field-by-field differences (scalars,
-- sets, lead_mapping, variants by name, follow-ups by step), the summary
-- lines, and plans (create / update / none) applied against the sandbox.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local plan = require "coldsend.plan"
local sandbox = require "spec.helpers.sandbox"

local ID = "550e8400-e29b-41d4-a716-446655440000"
local BODY = "Hi {{first_name}},\n\nA short note.\n"

local function variant(subject, extra)
  local v = { subject_template = subject, email_content = BODY }
  for k, x in pairs(extra or {}) do v[k] = x end
  return v
end

local function lines(changes)
  local out = {}
  for i, ch in ipairs(changes) do out[i] = tostring(ch) end
  return out
end

-- A campaign as the server would hold it, without a server.
local function server_campaign()
  local c = core.campaign(ID)
  c:_apply {
    campaign_id = ID, status = "DRAFT", name = "Q1 Product Launch Outreach",
    daily_limit_per_inbox = 20, timezone = "America/New_York", sending_days = { 1, 2, 3, 4, 5 },
    lead_mapping = { email = "Email", company = "Company" },
    inbox_ids = { "7c9e6679-7425-40de-944b-e07fc1f90ae7" },
    variants = {
      variant("Quick question", { variant_name = "A", distribution_percent = 34 }),
      variant("An idea", { variant_name = "B", distribution_percent = 33 }),
      variant("15 minutes?", { variant_name = "C", distribution_percent = 33 }),
    },
    sequences = {
      { step_number = 2, trigger_type = "NOT_REPLIED", wait_days = 3,
        variants = { variant("Following up", { variant_name = "A", distribution_percent = 100 }) } },
    },
  }
  c:_clear_dirty()
  return c
end

describe("c:diff", function()
  it("is empty between a campaign and itself or an identical definition", function()
    local c = server_campaign()
    assert.same({}, c:diff(c))
    assert.same({}, plan.diff(c, { name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 20 }))
  end)

  it("reports scalars as one line each, in the field order", function()
    local c = server_campaign()
    local changes = c:diff { daily_limit_per_inbox = 30, name = "Q2 Product Launch Outreach",
      enable_tracking = true }
    assert.same({
      '~ name: "Q1 Product Launch Outreach" -> "Q2 Product Launch Outreach"',
      "~ daily_limit_per_inbox: 20 -> 30",
      "+ enable_tracking: true",
    }, lines(changes))
    local ch = changes[2]
    assert.equal("daily_limit_per_inbox", ch.path)
    assert.equal(20, ch.from)
    assert.equal(30, ch.to)
    assert.equal("~", ch.op)
  end)

  it("leaves out fields the definition does not name", function()
    local c = server_campaign()
    assert.same({}, c:diff { timezone = "America/New_York" })
  end)

  it("compares sending_days and inbox_ids as sets", function()
    local c = server_campaign()
    assert.same({}, c:diff { sending_days = { 5, 4, 3, 2, 1 } })
    assert.same({ "~ sending_days: [1, 2, 3, 4, 5] -> [1, 2, 3]" },
      lines(c:diff { sending_days = { 1, 2, 3 } }))
    local other = "9b2f6f5e-2b4d-4c8a-9f3e-1a2b3c4d5e6f"
    local changes = c:diff { inbox_ids = { other } }
    assert.equal(1, #changes)
    assert.equal("inbox_ids", changes[1].path)
    assert.same({ other }, changes[1].to)
  end)

  it("diffs lead_mapping key by key, sorted", function()
    local c = server_campaign()
    assert.same({
      "- lead_mapping.company: \"Company\"",
      "~ lead_mapping.email: \"Email\" -> \"email\"",
      "+ lead_mapping.first_name: \"First\"",
    }, lines(c:diff { lead_mapping = { email = "email", first_name = "First" } }))
  end)

  it("matches variants by name and reports added and removed ones whole", function()
    local c = server_campaign()
    local changes = c:diff { variants = {
      variant("Quick question, {{first_name}}", { variant_name = "A", distribution_percent = 50 }),
      variant("An idea", { variant_name = "b", distribution_percent = 50 }),
    } }
    assert.same({
      "~ variants[A].subject_template: \"Quick question\" -> \"Quick question, {{first_name}}\"",
      "~ variants[A].distribution_percent: 34 -> 50",
      "~ variants[B].distribution_percent: 33 -> 50",
      "- variants[C]",
    }, lines(changes))
    assert.equal("variants", changes[4].field)
    assert.equal("15 minutes?", changes[4].from.subject_template)
    assert.is_nil(changes[4].to)
  end)

  it("names unnamed variants A, B, ... by position", function()
    local c = server_campaign()
    local changes = c:diff { variants = {
      variant("Quick question"), variant("An idea"), variant("15 minutes?"), variant("Worth a look?"),
    } }
    -- percentages are not given: not compared; D is new
    assert.same({ "+ variants[D]" }, lines(changes))
    assert.equal("Worth a look?", changes[1].to.subject_template)
  end)

  it("matches follow-ups by step and their variants by name", function()
    local c = server_campaign()
    local changes = c:diff { sequences = {
      { step_number = 2, trigger_type = "NOT_OPENED", wait_days = 3, variants = {
        variant("Following up", { variant_name = "A", distribution_percent = 50 }),
        variant("Bumping this", { variant_name = "B", distribution_percent = 50 }) } },
      { step_number = 3, trigger_type = "NOT_REPLIED", wait_days = 5,
        variants = { variant("Last thought") } },
    } }
    assert.same({
      "~ sequences[step 2].trigger_type: \"NOT_REPLIED\" -> \"NOT_OPENED\"",
      "~ sequences[step 2].variants[A].distribution_percent: 100 -> 50",
      "+ sequences[step 2].variants[B]",
      "+ sequences[step 3]",
    }, lines(changes))
    changes = c:diff { sequences = {} }
    assert.same({ "- sequences[step 2]" }, lines(changes))
  end)

  it("gives the same order every time", function()
    local c = server_campaign()
    local def = { lead_mapping = { z = "Z", a = "A", email = "E", m = "M" },
      variants = { variant("x1", { variant_name = "D" }), variant("x2", { variant_name = "B" }) },
      name = "Another campaign name" }
    local first = lines(c:diff(def))
    for _ = 1, 5 do assert.same(first, lines(c:diff(def))) end
    assert.matches("^~ name", first[1])
  end)

  it("compares two campaigns", function()
    local a, b = server_campaign(), server_campaign()
    b.daily_limit_per_inbox = 40
    b:add_variant(variant("Worth a look?"))
    assert.same({ "~ daily_limit_per_inbox: 20 -> 40", "+ variants[D]" }, lines(a:diff(b)))
  end)

  it("shows strings escaped and long ones cut", function()
    local c = server_campaign()
    local long = ("x"):rep(200)
    local changes = c:diff { variants = { variant("Quick\nquestion", { variant_name = "A" }),
      variant(long, { variant_name = "B" }), variant("15 minutes?", { variant_name = "C" }) } }
    assert.equal('~ variants[A].subject_template: "Quick question" -> "Quick\\nquestion"',
      tostring(changes[1]))
    assert.truthy(#tostring(changes[2]) < 120)
    assert.matches('%.%.%."$', tostring(changes[2]))
  end)

  it("checks a definition as the setters do, naming the field", function()
    local c = server_campaign()
    local ok, err = pcall(c.diff, c, { daily_limit_per_inbox = 150 })
    assert.is_false(ok)
    assert.matches("daily_limit_per_inbox", err, 1, true)
    assert.matches("150", err, 1, true)
    ok, err = pcall(c.diff, c, { nme = "Q1 Product Launch" })
    assert.is_false(ok)
    assert.matches("nme", err, 1, true)
  end)

  it("refuses what is neither a campaign nor a table", function()
    local c = server_campaign()
    assert.has_error(function() c:diff(42) end,
      "bad argument #2 to 'diff' (coldsend.campaign or table expected, got number)")
    assert.has_error(function() plan.diff({}, {}) end)
  end)
end)

describe("cs:plan", function()
  local sb, cs

  setup(function()
    sb = sandbox.start { rate_limit = false }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0 }
  end)

  teardown(function() sb:stop() end)

  local function definition(extra)
    local def = {
      name = "Plan spec campaign", daily_limit_per_inbox = 20, sending_days = { 1, 2, 3 },
      variants = { variant("Quick question", { variant_name = "A", distribution_percent = 50 }),
                   variant("An idea", { variant_name = "B", distribution_percent = 50 }) },
    }
    for k, v in pairs(extra or {}) do def[k] = v end
    return def
  end

  it("plans a create with every field, offline", function()
    local p = assert(plan.plan(nil, definition()))
    assert.equal("create", p.action)
    assert.is_nil(p.campaign)
    assert.same({
      '+ name: "Plan spec campaign"', "+ daily_limit_per_inbox: 20",
      "+ sending_days: [1, 2, 3]", "+ variants[A]", "+ variants[B]",
    }, lines(p.changes))
    local text = tostring(p)
    assert.matches('^%+ create campaign "Plan spec campaign"\n', text)
    assert.matches("\n    %+ variants%[B%]\n", text)
    assert.matches("Plan: 5 to add, 0 to change, 0 to remove%.$", text)
  end)

  it("creates, then plans nothing, then an update, and applies it", function()
    local p = assert(cs:plan(definition()))
    local c = assert(p:apply())
    assert.truthy(core.is_uuid(c.id))

    local def = definition { id = c.id }
    p = assert(cs:plan(def))
    assert.equal("none", p.action)
    assert.same({}, p.changes)
    assert.matches("no changes", tostring(p))

    def.daily_limit_per_inbox = 30
    def.variants[3] = variant("15 minutes?", { variant_name = "C" })
    def.variants[1].distribution_percent, def.variants[2].distribution_percent,
      def.variants[3].distribution_percent = 34, 33, 33
    local before = #sb:log()
    p = assert(cs:plan(def))
    assert.equal(before + 1, #sb:log()) -- one GET, no writes
    assert.equal("update", p.action)
    assert.same({
      "~ daily_limit_per_inbox: 20 -> 30",
      "~ variants[A].distribution_percent: 50 -> 34",
      "~ variants[B].distribution_percent: 50 -> 33",
      "+ variants[C]",
    }, lines(p.changes))
    assert.equal(1, tostring(p):find("~ update campaign " .. c.id, 1, true))
    assert.matches("Plan: 1 to add, 3 to change, 0 to remove%.$", tostring(p))

    assert(p:apply())
    local puts = {}
    for _, e in ipairs(sb:log()) do
      if e.method == "PUT" then puts[#puts + 1] = e end
    end
    local body = puts[#puts].body
    if type(body) == "string" then body = require("cjson").decode(body) end
    assert.equal(30, body.daily_limit_per_inbox)
    assert.equal(3, #body.variants)
    assert.is_nil(body.name) -- only what changed

    assert.equal("none", assert(cs:plan(def)).action)
  end)

  it("returns an invalid error for rules that span fields, sending nothing", function()
    local before = #sb:log()
    local def = definition()
    def.variants[1].distribution_percent = 70
    local p, err = cs:plan(def)
    assert.is_nil(p)
    assert.equal("invalid", err.code)
    assert.matches("variants", tostring(err))
    assert.equal(before, #sb:log())
  end)

  it("passes on the error of the GET", function()
    local p, err = cs:plan(definition { id = ID })
    assert.is_nil(p)
    assert.equal("not_found", err.code)
  end)

  it("raises for a bad id", function()
    assert.has_error(function() cs:plan(definition { id = "nope" }) end,
      "bad value for 'id' (UUID expected, got \"nope\")")
  end)
end)
