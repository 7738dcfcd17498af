-- campaign_request_spec.lua: what a campaign sends and receives: changes(),
-- the request tables of _request, server bodies through _apply, and the
-- dirty set (_clear_dirty, _discard).
local core = require "coldsend.core"
local cjson = require "cjson"

local BASE = "https://api.coldsend.pro/api/public/v1"
local ID = "550e8400-e29b-41d4-a716-446655440000"
local INBOX = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

local function variant(t)
  local v = { subject_template = "Quick question, {{first_name}}",
              email_content = "Hi {{first_name}},..." }
  for k, x in pairs(t or {}) do v[k] = x end
  return v
end

local function body_of(req) return cjson.decode(req.body) end

describe("the docs' update example", function()
  it("is a PUT of exactly the variants array", function()
    local c = core.campaign(ID)
    c:add_variant { variant_name = "A", subject_template = "Quick question, {{first_name}}",
                    email_content = "Hi {{first_name}},...", distribution_percent = 100 }
    local req = c:_request("save", BASE)
    assert.equal("PUT", req.method)
    assert.equal(BASE .. "/campaigns/" .. ID, req.url)
    -- no headers of its own: the request loop adds them, and the JSON
    -- Content-Type for a body (client_spec checks what goes out)
    assert.is_nil(req.headers)
    assert.same({ variants = { { variant_name = "A", subject_template = "Quick question, {{first_name}}",
                                 email_content = "Hi {{first_name}},...", distribution_percent = 100 } } },
      body_of(req))
    assert.same(body_of(req), c:changes())
  end)
end)

describe("changes", function()
  it("holds only changed fields, under their API names", function()
    local c = core.campaign(ID)
    assert.same({}, c:changes())
    c.name = "Q1 Product Launch Outreach"
    c.daily_limit_per_inbox = 30
    c.sending_days = { 1, 2, 3, 4, 5 }
    c.inbox_ids = { INBOX }
    c.enable_tracking = false
    c.lead_mapping = { email = "Email", first_name = "First Name" }
    assert.same({ name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 30,
                  sending_days = { 1, 2, 3, 4, 5 }, inbox_ids = { INBOX }, enable_tracking = false,
                  lead_mapping = { email = "Email", first_name = "First Name" } }, c:changes())
    c:_clear_dirty()
    assert.same({}, c:changes())
    c.timezone = "UTC"
    assert.same({ timezone = "UTC" }, c:changes())
  end)

  it("sends a cleared field as JSON null, but leaves it out of a create", function()
    local c = core.campaign(ID)
    c:_apply { daily_limit_per_inbox = 30, start_date = "2024-01-15T10:30:00Z" }
    c.daily_limit_per_inbox = nil
    c.start_date = cjson.null
    assert.equal(cjson.null, c:changes().daily_limit_per_inbox)
    assert.same({ daily_limit_per_inbox = cjson.null, start_date = cjson.null },
      body_of(c:_request("save", BASE)))
    local new = core.campaign()
    new.name = "Q1 Product Launch Outreach"
    new.daily_limit_per_inbox = 5
    new.daily_limit_per_inbox = nil
    assert.same({ name = "Q1 Product Launch Outreach" }, new:changes())
  end)

  it("splits percentages evenly when a step gives none, without storing them", function()
    local c = core.campaign(ID)
    c:add_variant(variant())
    c:add_variant(variant())
    c:add_variant(variant())
    c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 3, variants = { variant(), variant() } }
    local body = body_of(c:_request("save", BASE))
    assert.same({ 34, 33, 33 }, { body.variants[1].distribution_percent,
      body.variants[2].distribution_percent, body.variants[3].distribution_percent })
    assert.equal(50, body.sequences[1].variants[2].distribution_percent)
    assert.same(body, c:changes())
    assert.is_nil(c.variants[1].distribution_percent)
  end)

  it("sends arrays whole, and an empty one as []", function()
    local c = core.campaign(ID)
    c.sequences = {}
    c.variants = {}
    local req = c:_request("save", BASE)
    assert.truthy(req.body:find('"sequences":[]', 1, true))
    assert.truthy(req.body:find('"variants":[]', 1, true))
    assert.equal(core.EMPTY_ARRAY, c:changes().sequences)
    c:add_sequence { trigger_type = "NOT_OPENED", wait_days = 1 }
    req = c:_request("save", BASE)
    assert.truthy(req.body:find('"variants":[]', 1, true))
    assert.equal(2, body_of(req).sequences[1].step_number)
  end)

  it("returns copies", function()
    local c = core.campaign(ID)
    c:add_variant(variant { distribution_percent = 100 })
    c.sending_days = { 1 }
    local ch = c:changes()
    ch.variants[1].subject_template = "x"
    ch.sending_days[2] = 2
    assert.same({ 1 }, c:changes().sending_days)
    assert.equal("Quick question, {{first_name}}", c:changes().variants[1].subject_template)
  end)
end)

describe("_request", function()
  it("builds create, launch, get, pause, resume and delete", function()
    local new = core.campaign()
    new.name = "Q1 Product Launch Outreach"
    new.timezone = "America/New_York"
    local req = new:_request("create", BASE .. "/")
    assert.equal("POST", req.method)
    assert.equal(BASE .. "/campaigns", req.url)
    assert.same({ name = "Q1 Product Launch Outreach", timezone = "America/New_York" }, body_of(req))

    local c = core.campaign(ID)
    c.daily_limit_per_inbox = 30
    req = c:_request("launch", BASE)
    assert.equal("PUT", req.method)
    assert.same({ daily_limit_per_inbox = 30, launch = true }, body_of(req))
    assert.same({ daily_limit_per_inbox = 30 }, c:changes())

    for op, want in pairs {
      get = { "GET", "" }, pause = { "POST", "/pause" }, resume = { "POST", "/resume" },
      delete = { "DELETE", "" },
    } do
      req = c:_request(op, BASE)
      assert.equal(want[1], req.method)
      assert.equal(BASE .. "/campaigns/" .. ID .. want[2], req.url)
      assert.is_nil(req.body)
      assert.is_nil(req.headers)
    end
  end)

  it("sends {} for a save with nothing changed, and launch alone", function()
    local c = core.campaign(ID)
    assert.equal("{}", c:_request("save", BASE).body)
    assert.same({ launch = true }, body_of(c:_request("launch", BASE)))
  end)

  it("refuses operations that need an id on a new campaign, and a second create", function()
    local new = core.campaign()
    for _, op in ipairs { "save", "launch", "get", "pause", "resume", "delete" } do
      assert.equal("cannot " .. op .. " a campaign without an id (create it first)",
        err_of(new._request, new, op, BASE))
    end
    local c = core.campaign(ID)
    assert.equal("cannot create campaign " .. ID .. ": it exists already",
      err_of(c._request, c, "create", BASE))
    assert.equal("bad argument #1 to '_request' (invalid option 'frobnicate')",
      err_of(function() local r = c:_request("frobnicate", BASE) return r end))
  end)
end)

describe("_apply", function()
  -- spec 6.1 (create response), 6.3 (get) and 6.4 (update response)
  local CREATED = { success = true, message = "Campaign created successfully",
    campaign_id = ID, name = "Q1 Product Launch Outreach", status = "DRAFT",
    current_step = 0, created_at = "2024-01-15T10:30:00Z" }
  local GOT = {
    campaign_id = ID, name = "Q1 Product Launch Outreach", status = "DRAFT", current_step = 0,
    daily_limit_per_inbox = cjson.null, start_date = cjson.null, timezone = "America/New_York",
    sending_days = { 1, 2, 3, 4, 5 }, sending_window_start = 9, sending_window_start_minute = 30,
    sending_window_end = 17, sending_window_end_minute = 0, enable_tracking = true,
    enable_unsubscribe = true, lead_mapping = { email = "email" },
    ramp_up_enabled = false, ramp_up_increment = 50, ramp_up_max_limit = 500,
    variants = { { variant_name = "a", subject_template = "Quick question, {{first_name}}",
                   body_template = "Hi {{first_name}},...", distribution_percent = 100,
                   variant_id = "v1", sent_count = 3 } },
    sequences = { { step_number = 2, trigger_type = "NOT_OPENED", wait_days = 3,
                    variants = { { variant_name = "A", subject_template = "Following up",
                                   email_content = "Hi {{first_name}},\n\n...", distribution_percent = 100 } } } },
    inboxes = { { inbox_id = INBOX, email = "a@example.com" } },
    total_leads = 0, sent_count = 0, created_at = "2024-01-15T10:30:00Z",
    updated_at = "2024-01-15T10:30:00Z", launched_at = cjson.null,
  }
  local UPDATED = { success = true, campaign_id = ID, name = "Q1 Product Launch Outreach",
    status = "DRAFT", is_launch_ready = false, updated_at = "2024-01-16T08:00:00Z",
    missing_requirements = { "leads", "inboxes" } }

  it("adopts the id of a create and its status", function()
    local c = core.campaign()
    c.name = "Q1 Product Launch Outreach"
    c:_clear_dirty()
    c:_apply(CREATED)
    assert.equal(ID, c.id)
    assert.equal("DRAFT", c.status)
    assert.equal(0, c.current_step)
    assert.equal("2024-01-15T10:30:00Z", c.created_at)
    assert.equal([[coldsend.campaign ]] .. ID .. [[ "Q1 Product Launch Outreach" DRAFT (0 unsaved)]],
      tostring(c))
    assert.equal("no field 'success' in coldsend.campaign", err_of(function() return c.success end))
    assert.equal("no field 'message' in coldsend.campaign", err_of(function() return c.message end))
  end)

  it("takes a GET body: every field, legacy body_template, unknown keys readable", function()
    local c = core.campaign(ID)
    c:_apply(GOT)
    assert.same({}, c:changes())
    assert.equal(30, c.sending_window_start_minute)
    assert.is_nil(c.daily_limit_per_inbox)
    assert.same({ email = "email" }, c.lead_mapping)
    assert.same({ { variant_name = "A", subject_template = "Quick question, {{first_name}}",
                    email_content = "Hi {{first_name}},...", distribution_percent = 100 } }, c.variants)
    assert.equal("Following up", c.sequences[1].variants[1].subject_template)
    assert.same(GOT.inboxes, c.inboxes)
    assert.equal(0, c.total_leads)
    assert.is_true(c:validate())
    assert.equal("field 'inboxes' of coldsend.campaign is read-only",
      err_of(function() c.inboxes = {} end))
    -- a split after a GET sends the server's variants in our shape
    c:split_evenly()
    assert.same({ { variant_name = "A", subject_template = "Quick question, {{first_name}}",
                    email_content = "Hi {{first_name}},...", distribution_percent = 100 } },
      c:changes().variants)
  end)

  it("takes an update body", function()
    local c = core.campaign(ID)
    c:_apply(UPDATED)
    assert.is_false(c.is_launch_ready)
    assert.same({ "leads", "inboxes" }, c.missing_requirements)
    assert.equal("2024-01-16T08:00:00Z", c.updated_at)
    c:_apply { status = "ACTIVE", is_launch_ready = true, missing_requirements = {} }
    assert.equal("ACTIVE", c.status)
    assert.same({}, c.missing_requirements)
  end)

  it("never changes the id of a handle", function()
    local c = core.campaign(ID)
    c:_apply { campaign_id = INBOX }
    assert.equal(ID, c.id)
    local new = core.campaign()
    new:_apply { campaign_id = "not-a-uuid" }
    assert.is_nil(new.id)
  end)

  it("clears fields on null, is lenient with odd values", function()
    local c = core.campaign(ID)
    c:_apply { timezone = "UTC", daily_limit_per_inbox = 30, future_flag = true }
    c:_apply { timezone = cjson.null, daily_limit_per_inbox = 1000, future_flag = cjson.null }
    assert.is_nil(c.timezone)
    assert.equal(1000, c.daily_limit_per_inbox)
    assert.equal("no field 'future_flag' in coldsend.campaign", err_of(function() return c.future_flag end))
    assert.same({}, c:changes())
    assert.equal("bad argument #1 to '_apply' (table expected, got string)",
      err_of(function() local r = c:_apply("x") return r end))
  end)

  it("keeps pending local changes and makes the server value what _discard returns to", function()
    local c = core.campaign(ID)
    c:_apply { name = "Server name here", daily_limit_per_inbox = 10 }
    c.name = "Local name here"
    c:_apply { name = "Newer server name", daily_limit_per_inbox = 20 }
    assert.equal("Local name here", c.name)
    assert.equal(20, c.daily_limit_per_inbox)
    assert.same({ name = "Local name here" }, c:changes())
    c:_discard()
    assert.equal("Newer server name", c.name)
    assert.same({}, c:changes())
  end)
end)

describe("_discard", function()
  it("restores every applied value, arrays included", function()
    local c = core.campaign(ID)
    c:_apply { name = "Server name here", sending_days = { 1, 2 },
               variants = { variant { variant_name = "A", distribution_percent = 100 } } }
    c.name = "Local name here"
    c.sending_days = { 3 }
    c.timezone = "UTC"
    c:add_variant(variant())
    c:split_evenly()
    c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 2 }
    assert.equal("coldsend.campaign " .. ID .. [[ "Local name here" (5 unsaved)]], tostring(c))
    c:_discard()
    assert.equal("Server name here", c.name)
    assert.same({ 1, 2 }, c.sending_days)
    assert.is_nil(c.timezone)
    assert.is_nil(c.sequences)
    assert.same({ variant { variant_name = "A", distribution_percent = 100 } }, c.variants)
    assert.same({}, c:changes())
    -- and editing again after a discard starts from the applied tree
    c:add_variant(variant())
    assert.equal(2, #c.variants)
    c:_discard()
    assert.equal(1, #c.variants)
  end)

  it("after _clear_dirty keeps what was saved", function()
    local c = core.campaign(ID)
    c.name = "Local name here"
    c:_clear_dirty()
    c:_discard()
    assert.equal("Local name here", c.name)
  end)
end)

-- The request path keeps two things between saves: the campaign's URL and
-- the table of saved values. Neither may change what a save sends or what
-- _discard returns to.
describe("what a campaign keeps between saves", function()
  it("builds its URL again for another base or once it has an id", function()
    local c = core.campaign()
    c.name = "New campaign"
    assert.equal(BASE .. "/campaigns", c:_request("create", BASE).url)
    c:_apply({ campaign_id = ID, name = "New campaign" })
    assert.equal(BASE .. "/campaigns/" .. ID, c:_request("get", BASE).url)
    c.name = "Renamed campaign"
    assert.equal(BASE .. "/campaigns/" .. ID, c:_request("save", BASE).url)
    local other = "http://127.0.0.1:8089/api/public/v1/"
    assert.equal("http://127.0.0.1:8089/api/public/v1/campaigns/" .. ID, c:_request("save", other).url)
    assert.equal("http://127.0.0.1:8089/api/public/v1/campaigns/" .. ID, c:_request("delete", other).url)
    assert.equal(BASE .. "/campaigns/" .. ID .. "/pause", c:_request("pause", BASE).url)
    assert.equal(BASE .. "/campaigns/" .. ID, c:_request("launch", BASE).url)
    -- the URL is a string of its own in every request, whoever changes one
    local a, b = c:_request("save", BASE), c:_request("save", BASE)
    a.url = "changed"
    assert.equal(BASE .. "/campaigns/" .. ID, b.url)
    assert.equal(BASE .. "/campaigns/" .. ID, c:_request("save", BASE).url)
  end)

  it("forgets a saved value once the change is applied", function()
    local c = core.campaign(ID)
    c:_apply({ name = "first name", timezone = "UTC" })
    c.timezone = "Europe/Paris"
    c:_clear_dirty() -- saved: Europe/Paris is the server's now
    c:_apply({ timezone = cjson.null })
    assert.is_nil(c.timezone)
    c.timezone = "Asia/Tokyo"
    c:_discard() -- back to what the server holds: none, not the old UTC
    assert.is_nil(c.timezone)
    assert.same({}, c:changes())
    c.timezone = "UTC"
    c.name = "second name"
    c:_discard()
    assert.is_nil(c.timezone)
    assert.equal("first name", c.name)
  end)
end)

describe("the body of a save of plain values", function()
  it("holds exactly the changes, as JSON, with clears as null and launch when launching", function()
    local c = core.campaign(ID)
    c:_apply({ name = "Original name", timezone = "UTC", daily_limit_per_inbox = 10 })
    c.name = 'Q1 "launch" / été\\ done'
    c.daily_limit_per_inbox = 30
    c.enable_tracking = false
    c.timezone = nil
    local req = c:_request("save", BASE)
    local sent = cjson.decode(req.body)
    assert.same(c:changes(), sent)
    assert.equal(cjson.null, sent.timezone)
    assert.equal('Q1 "launch" / été\\ done', sent.name)
    assert.equal(30, sent.daily_limit_per_inbox)
    assert.matches('"daily_limit_per_inbox":30[,}]', req.body)
    local launch = cjson.decode(c:_request("launch", BASE).body)
    assert.is_true(launch.launch)
    launch.launch = nil
    assert.same(sent, launch)
    -- a table among the changes: the general way, the same answer
    c.sending_days = { 1, 2, 3 }
    sent = cjson.decode(c:_request("save", BASE).body)
    assert.same(c:changes(), sent)
    assert.same({ 1, 2, 3 }, sent.sending_days)
  end)
end)
