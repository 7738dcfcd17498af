-- The sandbox server, driven over loopback with LuaSocket.
local socket = require "socket"
local json = require "coldsend.json"
local sandbox = require "spec.helpers.sandbox"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local NOPE = "00000000-0000-4000-8000-000000000000"
local _ -- the values a test leaves out

local VARIANT_A = { variant_name = "A", subject_template = "Quick question, {{first_name}}",
  email_content = "Hi {{first_name}},\n\nShort note.", distribution_percent = 100 }

local function inbox_body(n)
  return {
    email_address = ("sender%d@example.com"):format(n), display_name = "Sender " .. n,
    inbox_type = "GOOGLE_WORKSPACE", smtp_host = "smtp.gmail.com", smtp_port = 587,
    smtp_username = ("sender%d@example.com"):format(n), smtp_password = "app-password",
    imap_host = "imap.gmail.com", imap_port = 993,
    imap_username = ("sender%d@example.com"):format(n), imap_password = "app-password",
  }
end

-- A raw connection: send bytes, read one response (status, headers, body).
local function raw_connect(sb)
  local s = socket.tcp()
  s:settimeout(5)
  assert(s:connect("127.0.0.1", sb.port))
  return s
end

local function read_response_head(s)
  local line, err = s:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
  local h = {}
  while true do
    local l = assert(s:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.*)$")
    h[k:lower()] = v
  end
  return status, h
end

local function read_response(s)
  local status, h = read_response_head(s)
  if not status then return nil, h end
  local body = ""
  if h["content-length"] then body = assert(s:receive(tonumber(h["content-length"]))) end
  return status, h, body
end

local function loc_str(item)
  local t = {}
  for i, x in ipairs(item.loc) do
    t[i] = type(x) == "number" and ("%d"):format(x) or tostring(x)
  end
  return table.concat(t, ".")
end

local function find_detail(body, loc)
  for _, d in ipairs(body.detail) do
    if loc_str(d) == loc then return d end
  end
end

describe("coldsend-sandbox", function()
  local sb

  setup(function() sb = sandbox.start{ job_step_ms = 0 } end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  local function req(method, path, body, headers) return sb:request(method, path, body, headers) end

  local function create(name, extra)
    local b = { name = name or "Campaign for tests" }
    for k, v in pairs(extra or {}) do b[k] = v end
    local st, body = req("POST", "/campaigns", b)
    assert.equal(201, st)
    return body.campaign_id, body
  end

  local function add_inbox(n)
    local st, b = req("POST", "/sender-accounts/smtp", inbox_body(n or 1))
    assert.equal(201, st)
    return b.inbox_id
  end

  local function add_lead(cid, email)
    local st, b = req("POST", "/campaigns/" .. cid .. "/leads/manual", { email = email or "john.doe@example.com" })
    assert.equal(201, st)
    return b.lead_id
  end

  local function ready_campaign()
    local cid = create("Ready to launch campaign")
    add_lead(cid)
    local iid = add_inbox(1)
    local st = req("PUT", "/campaigns/" .. cid, { inbox_ids = { iid }, variants = { VARIANT_A } })
    assert.equal(200, st)
    return cid
  end

  describe("startup", function()
    it("prints its URL and a test key, and listens only on 127.0.0.1", function()
      assert.matches("^http://127%.0%.0%.1:%d+/api/public/v1$", sb.url)
      assert.matches("^cs_test_%w+$", sb.key)
      assert.truthy(sandbox.alive(sb.pid))
    end)
  end)

  describe("C1 create", function()
    it("creates a DRAFT campaign with the documented answer", function()
      local st, b, h = req("POST", "/campaigns", { name = "Q1 Product Launch Outreach",
        timezone = "America/New_York", sending_days = { 1, 2, 3, 4, 5 }, sending_window_start = 9,
        sending_window_start_minute = 30, sending_window_end = 17, daily_limit_per_inbox = 30,
        enable_tracking = true, enable_unsubscribe = true })
      assert.equal(201, st)
      assert.is_true(b.success)
      assert.equal("Campaign created successfully", b.message)
      assert.matches(UUID, b.campaign_id)
      assert.equal("Q1 Product Launch Outreach", b.name)
      assert.equal("DRAFT", b.status)
      assert.equal(0, b.current_step)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", b.created_at)
      assert.equal("100", h["x-ratelimit-limit"])
      assert.truthy(h["x-ratelimit-remaining"])
      assert.truthy(tonumber(h["x-ratelimit-reset"]))
    end)

    it("answers 422 with pydantic detail items for field errors", function()
      local st, b = req("POST", "/campaigns", { name = "short", daily_limit_per_inbox = 150,
        sending_days = { 0, 8 }, sending_window_start = 24, enable_tracking = "yes",
        timezone = "Mars/Olympus" })
      assert.equal(422, st)
      local d = find_detail(b, "body.name")
      assert.equal("ensure this value has at least 8 characters", d.msg)
      assert.equal("value_error.any_str.min_length", d.type)
      d = find_detail(b, "body.daily_limit_per_inbox")
      assert.equal("ensure this value is less than or equal to 100", d.msg)
      assert.equal("value_error.number.not_le", d.type)
      assert.truthy(find_detail(b, "body.sending_days.0"))
      assert.truthy(find_detail(b, "body.sending_days.1"))
      assert.equal("value_error.number.not_le", find_detail(b, "body.sending_window_start").type)
      assert.equal("type_error.bool", find_detail(b, "body.enable_tracking").type)
      assert.truthy(find_detail(b, "body.timezone"))
    end)

    it("requires a name", function()
      local st, b = req("POST", "/campaigns", { timezone = "UTC" })
      assert.equal(422, st)
      assert.same({ loc = { "body", "name" }, msg = "field required", type = "value_error.missing" },
        b.detail[1])
    end)

    it("refuses strings and fractions for integers, and over-long names", function()
      local st, b = req("POST", "/campaigns", { name = ("x"):rep(256), daily_limit_per_inbox = "30",
        sending_window_end = 16.5 })
      assert.equal(422, st)
      assert.equal("value_error.any_str.max_length", find_detail(b, "body.name").type)
      assert.equal("type_error.integer", find_detail(b, "body.daily_limit_per_inbox").type)
      assert.equal("type_error.integer", find_detail(b, "body.sending_window_end").type)
    end)

    it("checks the sending window across fields", function()
      local st, b = req("POST", "/campaigns", { name = "Window campaign", sending_window_start = 18,
        sending_window_end = 17 })
      assert.equal(422, st)
      assert.truthy(find_detail(b, "body.sending_window_end"))
      st, b = req("POST", "/campaigns", { name = "Window campaign", sending_window_end = 24,
        sending_window_end_minute = 30 })
      assert.equal(422, st)
      assert.truthy(find_detail(b, "body.sending_window_end_minute"))
      st = req("POST", "/campaigns", { name = "Window campaign", sending_window_end = 24 })
      assert.equal(201, st)
    end)
  end)

  describe("C2 list", function()
    it("pages 250 campaigns with limit 100", function()
      for i = 1, 250 do create(("Campaign number %03d"):format(i)) end
      local seen = {}
      for page = 1, 3 do
        local st, b = req("GET", "/campaigns?page=" .. page .. "&limit=100")
        assert.equal(200, st)
        assert.is_true(b.success)
        local p = b.pagination
        assert.equal(page, p.page)
        assert.equal(100, p.limit)
        assert.equal(250, p.total)
        assert.equal(3, p.pages)
        assert.equal(page < 3, p.has_next)
        assert.equal(page > 1, p.has_prev)
        assert.equal(page < 3 and 100 or 50, #b.campaigns)
        for _, c in ipairs(b.campaigns) do
          assert.is_nil(seen[c.campaign_id])
          seen[c.campaign_id] = true
          assert.equal("DRAFT", c.status)
          assert.equal(0, c.total_leads)
          assert.equal(0, c.sent_count)
        end
      end
      local st, b = req("GET", "/campaigns?page=4&limit=100")
      assert.equal(200, st)
      assert.equal(0, #b.campaigns)
      -- newest first by default
      st, b = req("GET", "/campaigns?limit=1")
      assert.equal(200, st)
      assert.equal("Campaign number 250", b.campaigns[1].name)
      st, b = req("GET", "/campaigns")
      assert.equal(200, st)
      assert.equal(20, b.pagination.limit)
      assert.equal(20, #b.campaigns)
    end)

    it("filters by status, search and days, and sorts", function()
      create("Alpha outreach one")
      create("Beta outreach two")
      local cid = ready_campaign()
      assert.equal(200, (req("PUT", "/campaigns/" .. cid, { launch = true })))
      local _, b = req("GET", "/campaigns?status=ACTIVE")
      assert.equal(1, #b.campaigns)
      assert.equal(cid, b.campaigns[1].campaign_id)
      _, b = req("GET", "/campaigns?search=ALPHA")
      assert.equal(1, #b.campaigns)
      assert.equal("Alpha outreach one", b.campaigns[1].name)
      _, b = req("GET", "/campaigns?days=1")
      assert.equal(3, b.pagination.total)
      _, b = req("GET", "/campaigns?sort_by=name&sort_order=asc")
      assert.equal("Alpha outreach one", b.campaigns[1].name)
    end)

    it("validates query parameters", function()
      local st, b = req("GET", "/campaigns?page=0&limit=101")
      assert.equal(422, st)
      assert.truthy(find_detail(b, "query.page"))
      assert.truthy(find_detail(b, "query.limit"))
      st, b = req("GET", "/campaigns?limit=abc")
      assert.equal(422, st)
      assert.equal("type_error.integer", find_detail(b, "query.limit").type)
    end)
  end)

  describe("C3 get", function()
    it("returns every documented field", function()
      local cid = create("Get every field", { daily_limit_per_inbox = 25 })
      local st, b = req("GET", "/campaigns/" .. cid)
      assert.equal(200, st)
      assert.equal(cid, b.campaign_id)
      assert.equal("Get every field", b.name)
      assert.equal("DRAFT", b.status)
      assert.equal(25, b.daily_limit_per_inbox)
      assert.equal("America/New_York", b.timezone)
      assert.same({ 1, 2, 3, 4, 5 }, b.sending_days)
      assert.equal(9, b.sending_window_start)
      assert.equal(0, b.sending_window_start_minute)
      assert.equal(17, b.sending_window_end)
      assert.equal(0, b.sending_window_end_minute)
      assert.is_false(b.enable_tracking)
      assert.is_true(b.enable_unsubscribe)
      assert.is_false(b.ramp_up_enabled)
      for _, k in ipairs { "variants", "sequences", "inboxes", "inbox_ids", "lead_batches" } do
        assert.same({}, b[k], k)
      end
      assert.equal(json.null, b.lead_mapping)
      assert.equal(json.null, b.start_date)
      assert.equal(json.null, b.launched_at)
      for _, k in ipairs { "total_leads", "sent_count", "reply_count", "open_count", "bounce_count",
        "unsubscribe_count", "completion_rate", "success_rate", "current_step" } do
        assert.equal(0, b[k], k)
      end
      assert.is_false(b.is_launch_ready)
      assert.same({ "leads", "inboxes", "variants" }, b.missing_requirements)
      assert.truthy(b.created_at and b.updated_at and b.team_id)
    end)

    it("answers 404 for an unknown id and 422 for a malformed one", function()
      local st, b = req("GET", "/campaigns/" .. NOPE)
      assert.equal(404, st)
      assert.equal("Campaign not found", b.detail)
      st, b = req("GET", "/campaigns/not-a-uuid")
      assert.equal(422, st)
      assert.same({ "path", "campaign_id" }, b.detail[1].loc)
      assert.equal("type_error.uuid", b.detail[1].type)
    end)
  end)

  describe("C4 update and launch", function()
    it("applies partial updates; arrays replace", function()
      local cid = create("Partial update test", { daily_limit_per_inbox = 30 })
      local st, b = req("PUT", "/campaigns/" .. cid, { sending_days = { 1, 3 }, timezone = "Europe/Paris" })
      assert.equal(200, st)
      assert.is_true(b.success)
      assert.equal("DRAFT", b.status)
      assert.is_false(b.is_launch_ready)
      local _, g = req("GET", "/campaigns/" .. cid)
      assert.same({ 1, 3 }, g.sending_days)
      assert.equal("Europe/Paris", g.timezone)
      assert.equal(30, g.daily_limit_per_inbox)
      req("PUT", "/campaigns/" .. cid, { variants = {
        { variant_name = "a", subject_template = "S1", email_content = "Body number one",
          distribution_percent = 50 },
        { variant_name = "B", subject_template = "S2", email_content = "Body number two",
          distribution_percent = 50 } } })
      req("PUT", "/campaigns/" .. cid, { variants = { VARIANT_A } })
      _, g = req("GET", "/campaigns/" .. cid)
      assert.equal(1, #g.variants)
      assert.equal("A", g.variants[1].variant_name)
      -- null clears the daily limit
      req("PUT", "/campaigns/" .. cid, { daily_limit_per_inbox = json.null })
      _, g = req("GET", "/campaigns/" .. cid)
      assert.equal(json.null, g.daily_limit_per_inbox)
    end)

    it("uppercases variant names and keeps sequences", function()
      local cid = create("Sequences campaign")
      local st, b = req("PUT", "/campaigns/" .. cid, {
        variants = { { variant_name = "a", subject_template = "Hi", email_content = "Hello there, friend",
          distribution_percent = 100 } },
        sequences = {
          { step_number = 3, trigger_type = "NOT_REPLIED", wait_days = 5, variants = { VARIANT_A } },
          { step_number = 2, trigger_type = "NOT_OPENED", wait_days = 3, variants = { VARIANT_A } },
        } })
      assert.equal(200, st, json.encode(b))
      local _, g = req("GET", "/campaigns/" .. cid)
      assert.equal("A", g.variants[1].variant_name)
      assert.equal(2, #g.sequences)
      assert.equal(2, g.sequences[1].step_number)
      assert.equal("NOT_OPENED", g.sequences[1].trigger_type)
    end)

    it("reports readiness and launches only when ready", function()
      local cid = create("Readiness campaign")
      local st, b = req("PUT", "/campaigns/" .. cid, { variants = { VARIANT_A } })
      assert.equal(200, st)
      assert.is_false(b.is_launch_ready)
      assert.same({ "leads", "inboxes" }, b.missing_requirements)
      st, b = req("PUT", "/campaigns/" .. cid, { launch = true })
      assert.equal(200, st)
      assert.equal("DRAFT", b.status)
      assert.is_false(b.is_launch_ready)
      assert.same({ "leads", "inboxes" }, b.missing_requirements)
      add_lead(cid)
      local iid = add_inbox(7)
      st, b = req("PUT", "/campaigns/" .. cid, { inbox_ids = { iid } })
      assert.equal(200, st)
      assert.is_true(b.is_launch_ready)
      assert.same({}, b.missing_requirements)
      assert.equal("DRAFT", b.status)
      st, b = req("PUT", "/campaigns/" .. cid, { launch = true })
      assert.equal(200, st)
      assert.equal("ACTIVE", b.status)
      assert.is_true(b.is_launch_ready)
      local _, g = req("GET", "/campaigns/" .. cid)
      assert.equal("ACTIVE", g.status)
      assert.matches("Z$", g.launched_at)
      assert.equal(iid, g.inboxes[1].inbox_id)
      assert.equal("sender7@example.com", g.inboxes[1].email_address)
    end)

    it("refuses to modify an ACTIVE campaign (pause first); a repeated launch is harmless", function()
      local cid = ready_campaign()
      req("PUT", "/campaigns/" .. cid, { launch = true })
      local st, b = req("PUT", "/campaigns/" .. cid, { name = "Renamed while active" })
      assert.equal(400, st)
      assert.equal("string", type(b.detail))
      assert.matches("[Pp]ause", b.detail)
      st, b = req("PUT", "/campaigns/" .. cid, { launch = true })
      assert.equal(200, st)
      assert.equal("ACTIVE", b.status)
      assert.equal(200, (req("POST", "/campaigns/" .. cid .. "/pause")))
      st, b = req("PUT", "/campaigns/" .. cid, { name = "Renamed while paused" })
      assert.equal(200, st)
      assert.equal("PAUSED", b.status)
    end)

    it("answers 400 for rule errors", function()
      local cid = create("Rule errors campaign")
      local function v(name, pct)
        return { variant_name = name, subject_template = "Subject", email_content = "Some content here",
          distribution_percent = pct }
      end
      local st, b = req("PUT", "/campaigns/" .. cid, { variants = { v("A", 50), v("B", 40) } })
      assert.equal(400, st)
      assert.matches("sum to 100", b.detail)
      st, b = req("PUT", "/campaigns/" .. cid,
        { variants = { v("A", 20), v("B", 20), v("C", 20), v("D", 20), v("E", 20) } })
      assert.equal(400, st)
      assert.matches("4 variants", b.detail)
      st, b = req("PUT", "/campaigns/" .. cid, { variants = { v("A", 50), v("a", 50) } })
      assert.equal(400, st)
      assert.matches("Duplicate variant", b.detail)
      local seq = function(n)
        return { step_number = n, trigger_type = "NOT_REPLIED", wait_days = 2, variants = { v("A", 100) } }
      end
      st, b = req("PUT", "/campaigns/" .. cid, { sequences = { seq(2), seq(3), seq(4), seq(4) } })
      assert.equal(400, st)
      assert.matches("3 follow%-up", b.detail)
      st, b = req("PUT", "/campaigns/" .. cid, { sequences = { { step_number = 2, trigger_type = "NOT_REPLIED",
        wait_days = 2, variants = { v("A", 60) } } } })
      assert.equal(400, st)
      assert.matches("sequence step 2", b.detail)
      st, b = req("PUT", "/campaigns/" .. cid, { inbox_ids = { NOPE } })
      assert.equal(400, st)
      assert.truthy(b.detail:find(NOPE, 1, true))
    end)

    it("answers 422 for variant and sequence element errors", function()
      local cid = create("Element errors campaign")
      local st, b = req("PUT", "/campaigns/" .. cid, {
        variants = { { variant_name = "A1", subject_template = "", email_content = "short",
          distribution_percent = 101 } },
        sequences = { { step_number = 5, trigger_type = "SOMETIMES", wait_days = 31, variants = {} } },
        inbox_ids = { "nope" }, sending_days = {} })
      assert.equal(422, st)
      assert.equal("value_error.str.regex", find_detail(b, "body.variants.0.variant_name").type)
      assert.equal("value_error.any_str.min_length", find_detail(b, "body.variants.0.subject_template").type)
      assert.equal("value_error.any_str.min_length", find_detail(b, "body.variants.0.email_content").type)
      assert.equal("value_error.number.not_le", find_detail(b, "body.variants.0.distribution_percent").type)
      assert.equal("value_error.number.not_le", find_detail(b, "body.sequences.0.step_number").type)
      assert.equal("type_error.enum", find_detail(b, "body.sequences.0.trigger_type").type)
      assert.equal("value_error.number.not_le", find_detail(b, "body.sequences.0.wait_days").type)
      assert.equal("value_error.list.min_items", find_detail(b, "body.sequences.0.variants").type)
      assert.equal("type_error.uuid", find_detail(b, "body.inbox_ids.0").type)
      assert.equal("value_error.list.min_items", find_detail(b, "body.sending_days").type)
      -- nothing was applied
      local _, g = req("GET", "/campaigns/" .. cid)
      assert.same({}, g.variants)
      st, b = req("PUT", "/campaigns/" .. cid, { variants = { { subject_template = "Hello" } } })
      assert.equal(422, st)
      assert.equal("value_error.missing", find_detail(b, "body.variants.0.email_content").type)
    end)

    it("answers 404 for an unknown campaign", function()
      local st, b = req("PUT", "/campaigns/" .. NOPE, { name = "Does not exist" })
      assert.equal(404, st)
      assert.equal("Campaign not found", b.detail)
    end)
  end)

  describe("C5 pause, C6 resume, C7 delete", function()
    it("pauses an ACTIVE campaign and resumes it", function()
      local cid = ready_campaign()
      local st, b = req("POST", "/campaigns/" .. cid .. "/pause")
      assert.equal(400, st)
      assert.matches("ACTIVE", b.detail)
      req("PUT", "/campaigns/" .. cid, { launch = true })
      st, b = req("POST", "/campaigns/" .. cid .. "/pause")
      assert.equal(200, st)
      assert.equal("PAUSED", b.status)
      st, b = req("POST", "/campaigns/" .. cid .. "/resume")
      assert.equal(200, st)
      assert.equal("ACTIVE", b.status)
      st, b = req("POST", "/campaigns/" .. cid .. "/resume")
      assert.equal(200, st)
      assert.equal("ACTIVE", b.status)
    end)

    it("resumes only PAUSED campaigns", function()
      local cid = create("Never launched campaign")
      local st, b = req("POST", "/campaigns/" .. cid .. "/resume")
      assert.equal(400, st)
      assert.matches("PAUSED", b.detail)
    end)

    it("deletes only in DRAFT or PAUSED", function()
      local cid = ready_campaign()
      req("PUT", "/campaigns/" .. cid, { launch = true })
      local st, b = req("DELETE", "/campaigns/" .. cid)
      assert.equal(400, st)
      assert.matches("DRAFT or PAUSED", b.detail)
      req("POST", "/campaigns/" .. cid .. "/pause")
      st, b = req("DELETE", "/campaigns/" .. cid)
      assert.equal(200, st)
      assert.is_true(b.success)
      assert.equal(404, (req("GET", "/campaigns/" .. cid)))
      local draft = create("Draft to delete")
      assert.equal(200, (req("DELETE", "/campaigns/" .. draft)))
      assert.equal(404, (req("DELETE", "/campaigns/" .. draft)))
    end)
  end)

  describe("sender accounts", function()
    it("creates an SMTP account, lists it and refuses a duplicate email", function()
      local st, b = req("POST", "/sender-accounts/smtp", inbox_body(1))
      assert.equal(201, st)
      assert.is_true(b.success)
      assert.equal("SMTP inbox created successfully", b.message)
      assert.matches(UUID, b.inbox_id)
      assert.equal("sender1@example.com", b.email_address)
      assert.equal("GOOGLE_WORKSPACE", b.inbox_type)
      assert.equal(100, b.daily_limit)
      assert.equal("ACTIVE", b.overall_status)
      assert.is_nil(b.smtp_password)
      local dup = inbox_body(1)
      dup.email_address = "SENDER1@example.com"
      st, b = req("POST", "/sender-accounts/smtp", dup)
      assert.equal(409, st)
      assert.equal("string", type(b.detail))
      st, b = req("GET", "/sender-accounts")
      assert.equal(200, st)
      assert.equal(1, #b.sender_accounts)
      assert.equal(1, b.pagination.total)
    end)

    it("validates the SMTP body", function()
      local body = inbox_body(2)
      body.email_address = "not-an-email"
      body.smtp_port = 70000
      body.inbox_type = "YAHOO"
      body.imap_host = nil
      body.daily_limit = 5000
      local st, b = req("POST", "/sender-accounts/smtp", body)
      assert.equal(422, st)
      assert.equal("value_error.email", find_detail(b, "body.email_address").type)
      assert.equal("value_error.number.not_le", find_detail(b, "body.smtp_port").type)
      assert.equal("type_error.enum", find_detail(b, "body.inbox_type").type)
      assert.equal("value_error.missing", find_detail(b, "body.imap_host").type)
    end)

    it("enforces the provider's daily maximum and simulates a failed connection", function()
      local body = inbox_body(3)
      body.daily_limit = 2001
      local st, b = req("POST", "/sender-accounts/smtp", body)
      assert.equal(422, st)
      assert.truthy(find_detail(b, "body.daily_limit"))
      body = inbox_body(4)
      body.smtp_host = "smtp.broken.invalid"
      st, b = req("POST", "/sender-accounts/smtp", body)
      assert.equal(400, st)
      assert.matches("SMTP connection failed", b.detail)
    end)
  end)

  describe("leads", function()
    it("adds a lead manually (409 for an existing email), gets and updates it", function()
      local cid = create("Manual leads campaign")
      local st, l = req("POST", "/campaigns/" .. cid .. "/leads/manual", { email = "john.doe@example.com",
        first_name = "John", last_name = "Doe", company = "Acme Inc",
        custom_fields = { industry = "Technology", source = "LinkedIn" } })
      assert.equal(201, st)
      assert.matches(UUID, l.lead_id)
      assert.equal("john.doe@example.com", l.email)
      assert.equal("PENDING", l.status)
      assert.equal(0, l.sequence_step)
      assert.is_false(l.email_opened)
      assert.same({ industry = "Technology", source = "LinkedIn" }, l.custom_fields)
      st, l = req("POST", "/campaigns/" .. cid .. "/leads/manual", { email = "John.Doe@example.com" })
      assert.equal(409, st)
      assert.equal("string", type(l.detail))
      local _, all = req("GET", "/campaigns/" .. cid .. "/leads")
      assert.equal(1, all.pagination.total)
      local lid = all.leads[1].lead_id
      st, l = req("GET", "/campaigns/" .. cid .. "/leads/" .. lid)
      assert.equal(200, st)
      assert.same({}, l.email_interactions)
      assert.same({}, l.replies)
      st, l = req("PUT", "/campaigns/" .. cid .. "/leads/" .. lid,
        { first_name = "Jane", custom_fields = { industry = "SaaS", source = json.null, tier = "gold" } })
      assert.equal(200, st)
      assert.equal("Jane", l.first_name)
      assert.equal("Doe", l.last_name)
      assert.same({ industry = "SaaS", tier = "gold" }, l.custom_fields)
      st = req("PUT", "/campaigns/" .. cid .. "/leads/" .. lid, { email = "other@example.com" })
      assert.equal(422, st)
      assert.equal(404, (req("GET", "/campaigns/" .. cid .. "/leads/" .. NOPE)))
    end)

    it("validates a manual lead", function()
      local cid = create("Lead validation campaign")
      local st, b = req("POST", "/campaigns/" .. cid .. "/leads/manual", { email = "nope", custom_fields = "x" })
      assert.equal(422, st)
      assert.equal("value_error.email", find_detail(b, "body.email").type)
      assert.equal("type_error.dict", find_detail(b, "body.custom_fields").type)
    end)
  end)

  describe("auth", function()
    it("answers 401 without a key and with a key not starting with cs_", function()
      local st, b = req("GET", "/campaigns", nil, { ["X-API-Key"] = false })
      assert.equal(401, st)
      assert.equal("API key required. Include your API key in X-API-Key header.", b.detail)
      st, b = req("GET", "/campaigns", nil, { ["X-API-Key"] = "sk_live_123456789" })
      assert.equal(401, st)
      assert.equal("Invalid or revoked API key", b.detail)
      st = req("GET", "/campaigns", nil, { ["X-API-Key"] = "cs_live_anything_goes" })
      assert.equal(200, st)
    end)

    it("knows configured keys and their scopes (403 body of the reference)", function()
      sb:keys { cs_live_reader = { scopes = { "campaigns:read" } },
                cs_live_legacy = { scopes = { "campaigns:write" } },
                cs_live_all = { scopes = { "*" } } }
      local st, b = req("POST", "/campaigns", { name = "Scoped create" }, { ["X-API-Key"] = "cs_live_reader" })
      assert.equal(403, st)
      assert.same({ detail = "Missing required scopes: campaigns:create", error = "insufficient_scopes",
        required = { "campaigns:create" }, granted = { "campaigns:read" } }, b)
      st = req("GET", "/campaigns", nil, { ["X-API-Key"] = "cs_live_reader" })
      assert.equal(200, st)
      st = req("POST", "/campaigns", { name = "Legacy scope create" }, { ["X-API-Key"] = "cs_live_legacy" })
      assert.equal(201, st)
      st = req("POST", "/campaigns", { name = "Star scope create" }, { ["X-API-Key"] = "cs_live_all" })
      assert.equal(201, st)
      st, b = req("GET", "/campaigns", nil, { ["X-API-Key"] = "cs_live_unknown" })
      assert.equal(401, st)
      assert.equal("Invalid or revoked API key", b.detail)
      -- the sandbox's own key still works
      assert.equal(200, (req("GET", "/campaigns")))
    end)

    it("refuses the control API without the sandbox key", function()
      local st = req("GET", "/__sandbox/log", nil, { ["X-API-Key"] = "cs_live_other" })
      assert.equal(401, st)
    end)
  end)

  describe("the request log", function()
    it("records method, path, query, body, status and whether a key was sent, never the key", function()
      req("POST", "/campaigns", { name = "Logged campaign" })
      req("GET", "/campaigns?page=2&limit=5")
      req("GET", "/campaigns", nil, { ["X-API-Key"] = false })
      local log = sb:log()
      assert.equal(3, #log)
      assert.equal("POST", log[1].method)
      assert.equal("/campaigns", log[1].path)
      assert.equal("Logged campaign", log[1].body.name)
      assert.equal(201, log[1].status)
      assert.is_true(log[1].key_present)
      assert.same({ page = "2", limit = "5" }, log[2].query)
      assert.is_false(log[3].key_present)
      assert.equal(401, log[3].status)
      assert.is_nil(json.encode(log):find(sb.key, 1, true))
      assert.equal(1, sb:count("POST", "^/campaigns$"))
      assert.equal(2, sb:count("GET", "^/campaigns"))
      assert.equal(1, #sb:log(log[2].seq))
    end)

    it("lists the body fields the server ignored", function()
      local cid = create("Unknown fields campaign")
      req("PUT", "/campaigns/" .. cid, { current_step = 2, variants = { { variant_name = "A",
        subject_template = "Legacy body", body_template = "Legacy content field",
        email_content = "The current field" } } })
      local log = sb:log()
      assert.same({ "current_step", "variants.0.body_template" }, log[#log].unknown_fields)
      assert.is_nil(log[1].unknown_fields)
    end)
  end)

  describe("faults", function()
    local function raw_request(method, path, body)
      local s = raw_connect(sb)
      body = body and json.encode(body) or ""
      s:send(("%s /api/public/v1%s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
        .. "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
        :format(method, path, sb.key, #body, body))
      return s
    end

    it("status: 503 the next N times, then normal answers", function()
      sb:fault { kind = "status", status = 503, times = 2, path = "/campaigns" }
      assert.equal(503, (req("GET", "/campaigns")))
      assert.equal(503, (req("GET", "/campaigns")))
      assert.equal(200, (req("GET", "/campaigns")))
    end)

    it("status: 429 with Retry-After and the documented body", function()
      sb:fault { kind = "status", status = 429, retry_after = 2 }
      local st, b, h = req("GET", "/campaigns")
      assert.equal(429, st)
      assert.equal("2", h["retry-after"])
      assert.equal("Rate limit exceeded. Retry after 2 seconds.", b.detail)
    end)

    it("matches method and path, and can skip requests", function()
      sb:fault { kind = "status", status = 500, method = "POST", path = "^/campaigns$", skip = 1 }
      assert.equal(200, (req("GET", "/campaigns")))
      assert.equal(201, (req("POST", "/campaigns", { name = "First goes through" })))
      assert.equal(500, (req("POST", "/campaigns", { name = "Second one fails" })))
      assert.equal(201, (req("POST", "/campaigns", { name = "Third goes through" })))
    end)

    it("delay: holds one answer without holding up another connection", function()
      sb:fault { kind = "delay", delay_ms = 800, path = "/campaigns", method = "GET" }
      local t0 = socket.gettime()
      local slow = raw_request("GET", "/campaigns")
      socket.sleep(0.05)
      local st = req("GET", "/sender-accounts")
      local fast = socket.gettime() - t0
      assert.equal(200, st)
      assert.is_true(fast < 0.5, "the second connection waited " .. fast .. " s")
      local st2 = read_response(slow)
      slow:close()
      assert.equal(200, st2)
      assert.is_true(socket.gettime() - t0 >= 0.75)
    end)

    it("close_before: closes without answering", function()
      sb:fault { kind = "close_before" }
      local s = raw_request("GET", "/campaigns")
      local line, err = s:receive("*l")
      s:close()
      assert.is_nil(line)
      assert.equal("closed", err)
      assert.equal(200, (req("GET", "/campaigns")))
    end)

    it("close_before after=true: the create happened, the answer is lost", function()
      sb:fault { kind = "close_before", after = true, method = "POST", path = "^/campaigns$" }
      local s = raw_request("POST", "/campaigns", { name = "Created but unanswered" })
      local line = s:receive("*l")
      s:close()
      assert.is_nil(line)
      local _, b = req("GET", "/campaigns")
      assert.equal(1, #b.campaigns)
      assert.equal("Created but unanswered", b.campaigns[1].name)
      assert.equal(1, sb:count("POST", "^/campaigns$"))
    end)

    it("truncated and close_mid_body: Content-Length of the full body, half of it sent", function()
      for _, kind in ipairs { "truncated", "close_mid_body" } do
        sb:fault { kind = kind, after = true }
        local s = raw_request("GET", "/campaigns")
        local st, h = read_response_head(s)
        assert.equal(200, st)
        local n = tonumber(h["content-length"])
        local data, err, partial = s:receive(n)
        s:close()
        assert.is_nil(data)
        assert.truthy(err == "closed" or err:match("reset"))
        assert.is_true(#partial < n)
        assert.is_nil(json.decode(partial))
      end
    end)

    it("non_json, html, wrong_content_type and oversized bodies", function()
      sb:fault { kind = "non_json" }
      local st, b = req("GET", "/campaigns")
      assert.equal(200, st)
      assert.is_nil(json.decode(b))
      sb:fault { kind = "html" }
      local h
      st, b, h = req("GET", "/campaigns")
      assert.equal(502, st)
      assert.matches("^text/html", h["content-type"])
      assert.matches("<html>", b)
      sb:fault { kind = "wrong_content_type", after = true }
      st, b, h = req("GET", "/campaigns")
      assert.equal(200, st)
      assert.matches("^text/plain", h["content-type"])
      assert.truthy(json.decode(b).campaigns)
      local raw
      sb:fault { kind = "oversized", size = 2 * 1024 * 1024 }
      st, b, _, raw = req("GET", "/campaigns")
      assert.equal(200, st)
      assert.equal(2 * 1024 * 1024, #raw)
      assert.is_true(b.success)
      sb:fault { kind = "oversized" }
      st, _, _, raw = req("GET", "/campaigns")
      assert.equal(200, st)
      assert.equal(9 * 1024 * 1024, #raw)
    end)

    it("status after=true: the request was processed, the answer replaced", function()
      sb:fault { kind = "status", status = 502, after = true, method = "POST" }
      local st = req("POST", "/campaigns", { name = "Processed then 502" })
      assert.equal(502, st)
      local _, b = req("GET", "/campaigns")
      assert.equal(1, #b.campaigns)
      local log = sb:log()
      assert.equal("status", log[1].fault)
      assert.equal(502, log[1].status)
    end)

    it("applies a fault to one key only", function()
      sb:fault { kind = "status", status = 503, key = "cs_test_unlucky", times = 0 }
      assert.equal(200, (req("GET", "/campaigns")))
      assert.equal(503, (req("GET", "/campaigns", nil, { ["X-API-Key"] = "cs_test_unlucky" })))
      sb:control("DELETE", "/faults")
    end)

    it("lists and clears faults; rejects an unknown kind", function()
      sb:fault { kind = "status", status = 500, times = 0 }
      assert.equal(1, #sb:control("GET", "/faults"))
      assert.equal(500, (req("GET", "/campaigns")))
      assert.equal(500, (req("GET", "/campaigns")))
      sb:control("DELETE", "/faults")
      assert.equal(200, (req("GET", "/campaigns")))
      assert.has_error(function() sb:fault { kind = "explode" } end)
    end)
  end)

  describe("L1/L2 CSV upload", function()
    it("runs a job PENDING -> VALIDATING -> IN_PROGRESS -> COMPLETED with counts and row errors", function()
      local cid = create("Upload campaign one")
      local csv = table.concat({
        "email,first_name,last_name,company,company_size",
        "ann@example.com,Ann,Lee,Acme,50",
        '"bob@example.com","Bob ""Bobby""","Smith, Jr.","Multi',
        'line Inc",10',
        "not-an-email,Carl,,,",
        ",Dora,,,",
        "ANN@example.com,Ann,Again,,",
        "eve@example.com,Eve",
        "",
        "fay@example.com,Fay,Ray,Foo,7",
      }, "\r\n") .. "\r\n"
      local st, job = sb:upload(cid, csv)
      assert.equal(200, st, json.encode(job))
      assert.matches(UUID, job.job_id)
      assert.equal("PENDING", job.status)
      assert.equal(7, job.total_count)
      assert.equal(0, job.processed_count)
      local final, seen = sb:wait_job(cid, job.job_id)
      assert.same({ "VALIDATING", "IN_PROGRESS", "COMPLETED" }, seen)
      assert.equal(100, final.progress_percentage)
      assert.equal(7, final.processed_count)
      assert.equal(3, final.success_count)
      assert.equal(1, final.duplicate_count)
      assert.equal(3, final.error_count)
      assert.truthy(final.started_at ~= json.null and final.completed_at ~= json.null)
      local rows = {}
      for _, e in ipairs(final.errors) do rows[e.row] = e end
      assert.equal("not-an-email", rows[3].email)
      assert.equal("invalid email address", rows[3].message)
      assert.equal("missing email", rows[4].message)
      assert.matches("fields", rows[6].message)
      local _, leads = req("GET", "/campaigns/" .. cid .. "/leads?limit=100")
      assert.equal(3, leads.pagination.total)
      local bob
      for _, l in ipairs(leads.leads) do if l.email == "bob@example.com" then bob = l end end
      assert.equal('Bob "Bobby"', bob.first_name)
      assert.equal("Smith, Jr.", bob.last_name)
      assert.equal("Multi\r\nline Inc", bob.company)
      assert.equal("10", bob.custom_fields.company_size)
      assert.equal(final.batch_id, bob.batch_id)
      local _, g = req("GET", "/campaigns/" .. cid)
      assert.equal(3, g.total_leads)
      assert.equal(1, #g.lead_batches)
      assert.equal("COMPLETED", g.lead_batches[1].status)
    end)

    it("counts duplicates across uploads and manual adds; never a lead twice", function()
      local cid = create("Upload duplicates")
      add_lead(cid, "zed@example.com")
      local _, j1 = sb:upload(cid, "email\na@example.com\nb@example.com\n")
      sb:wait_job(cid, j1.job_id)
      local _, j2 = sb:upload(cid, "Email\nB@example.com\nc@example.com\nzed@example.com\n")
      local final = sb:wait_job(cid, j2.job_id)
      assert.equal(1, final.success_count)
      assert.equal(2, final.duplicate_count)
      local _, leads = req("GET", "/campaigns/" .. cid .. "/leads")
      assert.equal(4, leads.pagination.total)
    end)

    it("uses the mapping field, else the campaign's lead_mapping", function()
      local cid = create("Upload with mapping")
      local csv = "E-Mail Address,First Name,Size\nx@example.com,Xavier,12\n"
      local st, b = sb:upload(cid, csv)
      assert.equal(400, st)
      assert.equal("CSV file must contain an email column", b.detail)
      st, b = sb:upload(cid, csv, { email = "E-Mail Address", first_name = "First Name", custom_size = "Size" })
      assert.equal(200, st)
      sb:wait_job(cid, b.job_id)
      local _, leads = req("GET", "/campaigns/" .. cid .. "/leads")
      assert.equal("Xavier", leads.leads[1].first_name)
      assert.same({ custom_size = "12" }, leads.leads[1].custom_fields)
      local cid2 = create("Upload with lead_mapping")
      req("PUT", "/campaigns/" .. cid2, { lead_mapping = { email = "E-Mail Address", first_name = "First Name" } })
      st, b = sb:upload(cid2, csv)
      assert.equal(200, st)
      sb:wait_job(cid2, b.job_id)
      _, leads = req("GET", "/campaigns/" .. cid2 .. "/leads")
      assert.equal("Xavier", leads.leads[1].first_name)
      assert.same({ Size = "12" }, leads.leads[1].custom_fields)
      st, b = sb:upload(cid2, csv, { email = "Nope" })
      assert.equal(400, st)
      assert.matches("Nope", b.detail)
      st, b = sb:upload(cid2, csv, { first_name = "First Name" })
      assert.equal(400, st)
      assert.matches("email", b.detail)
    end)

    it("refuses more than 10,000 rows, files over 50 MB, bad CSV and a missing file", function()
      local cid = create("Upload limits campaign")
      local rows = { "email" }
      for i = 1, 10001 do rows[#rows + 1] = ("lead%d@example.com"):format(i) end
      local st, b = sb:upload(cid, table.concat(rows, "\n"))
      assert.equal(400, st)
      assert.equal("string", type(b.detail))
      assert.matches("10,000", b.detail)
      rows[#rows] = nil
      st, b = sb:upload(cid, table.concat(rows, "\n"))
      assert.equal(200, st)
      assert.equal(10000, b.total_count)
      local big = "email,notes\n" .. ("a@example.com," .. ("x"):rep(1000) .. "\n"):rep(51 * 1024)
      st, b = sb:upload(cid, big)
      assert.equal(413, st)
      assert.equal("string", type(b.detail))
      assert.matches("50 MB", b.detail)
      st, b = sb:upload(cid, 'email\n"unterminated@example.com\n')
      assert.equal(400, st)
      assert.matches("unterminated", b.detail)
      st = sb:upload(cid, "")
      assert.equal(400, st)
      st, b = req("POST", "/campaigns/" .. cid .. "/leads", { file = "nope" })
      assert.equal(422, st)
      assert.same({ "body", "file" }, b.detail[1].loc)
      -- and the server still answers
      assert.equal(200, (req("GET", "/campaigns/" .. cid)))
    end)

    it("moves jobs on a timer too", function()
      sb:config { job_step_ms = 20 }
      local cid = create("Timer job campaign")
      local _, j = sb:upload(cid, "email\nt@example.com\n")
      socket.sleep(0.3)
      local _, b = req("GET", "/campaigns/" .. cid .. "/leads/upload/" .. j.job_id)
      assert.equal("COMPLETED", b.status)
      assert.equal(1, b.success_count)
      sb:config { job_step_ms = 0 }
      assert.equal(404, (req("GET", "/campaigns/" .. cid .. "/leads/upload/" .. NOPE)))
    end)
  end)

  describe("rate limiting", function()
    it("enforces a per-key budget with 429, Retry-After and the headers", function()
      sb:config { rate_limit = 3, rate_window = 30 }
      local _, _, h = req("GET", "/campaigns")
      assert.equal("3", h["x-ratelimit-limit"])
      assert.equal("2", h["x-ratelimit-remaining"])
      local reset = tonumber(h["x-ratelimit-reset"])
      assert.is_true(reset > os.time() and reset <= os.time() + 31)
      req("GET", "/campaigns")
      req("GET", "/campaigns")
      local st, b
      st, b, h = req("GET", "/campaigns")
      assert.equal(429, st)
      assert.matches("^Rate limit exceeded%. Retry after %d+ seconds%.$", b.detail)
      assert.truthy(tonumber(h["retry-after"]) >= 1)
      assert.equal("0", h["x-ratelimit-remaining"])
      -- another key has its own budget
      st = req("GET", "/campaigns", nil, { ["X-API-Key"] = "cs_test_other_key" })
      assert.equal(200, st)
      sb:config { rate_limit = false }
      assert.equal(200, (req("GET", "/campaigns")))
    end)

    it("slides both windows on a clock the control API sets, and reports them truthfully", function()
      local T = 1700000000
      sb:config { rate_limit = 3, rate_window = 10, rate_limit_hour = 4, rate_window_hour = 100 }
      local function at(t)
        sb:clock { now = T + t }
        local st, _, h = req("GET", "/campaigns")
        return st, h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-reset"],
          h["retry-after"]
      end
      assert.same({ 200, "3", "2", tostring(T + 10) }, { at(0) })
      assert.same({ 200, "3", "1", tostring(T + 10) }, { at(4) })
      assert.same({ 200, "3", "0", tostring(T + 10) }, { at(9.5) })
      assert.same({ 429, "3", "0", tostring(T + 10), "1" }, { at(9.9) })
      -- at 10 the request of 0 has left the minute (half-open); both
      -- windows are then full, and the minute's oldest leaves first
      assert.same({ 200, "3", "0", tostring(T + 14) }, { at(10) })
      -- at 14 the minute has room, the hour none: it is the one reported
      assert.same({ 429, "4", "0", tostring(T + 100), "86" }, { at(14) })
      assert.same({ 200, "4", "0", tostring(T + 104) }, { at(100) })
      local log = sb:log()
      assert.equal(T + 100, log[#log].clock)
      assert.same({ now = T + 105, frozen = true }, sb:clock { advance = 5 })
      assert.is_false(sb:clock { real = true }.frozen)
      assert.has_error(function() sb:clock { now = "noon" } end)
      sb:config { rate_limit = false, rate_limit_hour = false, rate_window = 60, rate_window_hour = 3600 }
    end)

    it("opens a new window after rate_window seconds", function()
      sb:config { rate_limit = 1, rate_window = 1 }
      assert.equal(200, (req("GET", "/campaigns")))
      local st, _, h = req("GET", "/campaigns")
      assert.equal(429, st)
      socket.sleep(tonumber(h["retry-after"]) + 0.1)
      assert.equal(200, (req("GET", "/campaigns")))
      sb:config { rate_limit = false }
    end)
  end)

  describe("analytics", function()
    it("computes A1 and A2 from the sandbox's state", function()
      local cid = ready_campaign()
      req("PUT", "/campaigns/" .. cid, { launch = true })
      create("Quiet draft campaign")
      sb:control("POST", "/simulate", { campaign_id = cid, sent = 200, opened = 50, replied = 10, bounced = 4 })
      local st, b = req("GET", "/analytics/campaigns")
      assert.equal(200, st)
      assert.equal(2, b.workspace_kpis.total_campaigns)
      assert.equal(200, b.workspace_kpis.total_sends)
      assert.equal(0.25, b.workspace_kpis.avg_open_rate)
      assert.equal(0.05, b.workspace_kpis.avg_reply_rate)
      assert.equal(0.02, b.workspace_kpis.avg_bounce_rate)
      local c
      for _, x in ipairs(b.campaigns) do if x.campaign_id == cid then c = x end end
      assert.equal("ACTIVE", c.status)
      assert.equal(1, c.total_leads)
      assert.equal(200, c.total_sent)
      assert.equal(0.25, c.open_rate)
      _, b = req("GET", "/analytics/campaigns?status=DRAFT")
      assert.equal(1, #b.campaigns)
      local today = os.date("!%Y-%m-%d")
      _, b = req("GET", "/analytics/campaigns?from_date=" .. today)
      assert.equal(1, #b.campaigns)
      st, b = req("GET", "/analytics/campaigns?from_date=yesterday")
      assert.equal(422, st)
      assert.same({ "query", "from_date" }, b.detail[1].loc)
      st, b = req("GET", "/analytics/campaigns/timeline")
      assert.equal(200, st)
      assert.equal(91, #b.timeline)
      assert.equal(today, b.to_date)
      local last = b.timeline[#b.timeline]
      assert.equal(today, last.date)
      assert.equal(200, last.sent)
      assert.equal(0.25, last.open_rate)
      assert.equal(0, b.timeline[1].sent)
      _, b = req("GET", "/analytics/campaigns/timeline?from_date=2024-02-27&to_date=2024-03-02")
      local dates = {}
      for i, p in ipairs(b.timeline) do dates[i] = p.date end
      assert.same({ "2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02" }, dates)
      local _, g = req("GET", "/campaigns/" .. cid)
      assert.equal(200, g.sent_count)
    end)
  end)

  describe("HTTP", function()
    local function send_raw(data)
      local s = raw_connect(sb)
      s:send(data)
      return s
    end

    it("keeps a connection alive across requests", function()
      local s = raw_connect(sb)
      for _ = 1, 3 do
        s:send(("GET /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n"):format(sb.key))
        local st, h = read_response(s)
        assert.equal(200, st)
        assert.equal("keep-alive", h.connection)
      end
      s:close()
      local log = sb:log()
      assert.equal(3, #log)
      assert.equal(log[1].conn, log[3].conn)
    end)

    it("reads chunked request bodies and answers Expect: 100-continue", function()
      local body = json.encode { name = "Chunked body campaign" }
      local s = send_raw(("POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
        .. "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n")
        :format(sb.key, 10, body:sub(1, 10), #body - 10, body:sub(11)))
      local st, _, b = read_response(s)
      assert.equal(201, st)
      assert.equal("Chunked body campaign", json.decode(b).name)
      s:send(("POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\n"
        .. "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"):format(sb.key, #body))
      assert.equal("HTTP/1.1 100 Continue", s:receive("*l"))
      assert.equal("", s:receive("*l"))
      s:send(body)
      st = read_response(s)
      assert.equal(201, st)
      s:close()
    end)

    it("answers malformed requests with 400 and keeps serving", function()
      local cases = {
        "GARBAGE\r\n\r\n",
        "GET /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        "GET /api/public/v1/campaigns HTTP/1.1\r\n\r\n",
        "GET /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
      }
      for _, c in ipairs(cases) do
        local s = send_raw(c)
        local st, h, b = read_response(s)
        assert.equal(400, st, c)
        assert.equal("close", h.connection)
        assert.equal("string", type(json.decode(b).detail))
        assert.is_nil(s:receive("*l"))
        s:close()
      end
      local s = send_raw("GET / HTTP/2.0\r\nHost: x\r\n\r\n")
      assert.equal(505, (read_response(s)))
      s:close()
      s = send_raw("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(70000) .. "\r\n\r\n")
      assert.equal(431, (read_response(s)))
      s:close()
      s = send_raw(("PUT /api/public/v1/campaigns/%s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
        .. "Content-Length: %d\r\n\r\n"):format(NOPE, sb.key, 5 * 1024 * 1024))
      assert.equal(413, (read_response(s)))
      s:close()
      assert.equal(200, (req("GET", "/campaigns")))
    end)

    it("answers bad JSON with 422 json_invalid and a wrong Content-Type with 415", function()
      local st, b = req("POST", "/campaigns", '{"name": "Broken JSON",')
      assert.equal(422, st)
      assert.equal("json_invalid", b.detail[1].type)
      assert.equal("body", b.detail[1].loc[1])
      st, b = req("POST", "/campaigns", "name=Form+post", { ["Content-Type"] = "application/x-www-form-urlencoded" })
      assert.equal(415, st)
      assert.equal("string", type(b.detail))
      st, b = req("POST", "/campaigns", "[1, 2]")
      assert.equal(422, st)
      assert.equal("type_error.dict", b.detail[1].type)
      st, b = req("POST", "/campaigns", "")
      assert.equal(422, st)
      assert.equal("value_error.missing", b.detail[1].type)
      -- same connection goes on after a 422
      local s = raw_connect(sb)
      local bad = "{nope"
      s:send(("POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
        .. "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"):format(sb.key, #bad, bad))
      assert.equal(422, (read_response(s)))
      s:send(("GET /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n"):format(sb.key))
      assert.equal(200, (read_response(s)))
      s:close()
    end)

    it("answers 404 for unknown paths and 405 for other methods", function()
      local st, b = req("GET", "/nothing/here")
      assert.equal(404, st)
      assert.equal("Not Found", b.detail)
      local h
      st, _, h = req("PATCH", "/campaigns")
      assert.equal(405, st)
      assert.equal("GET, POST", h.allow)
      assert.equal("100", h["x-ratelimit-limit"])
    end)

    it("a client stalled mid-request holds up no other; an oversized upload is refused before it is sent", function()
      local stalled = raw_connect(sb)
      stalled:send("POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na")
      local t0 = socket.gettime()
      assert.equal(200, (req("GET", "/campaigns")))
      assert.is_true(socket.gettime() - t0 < 0.5)
      stalled:close()
      local s = raw_connect(sb)
      s:send(("POST /api/public/v1/campaigns/%s/leads HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
        .. "Content-Type: multipart/form-data; boundary=x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n")
        :format(NOPE, sb.key, 70 * 1024 * 1024))
      local st, h, b = read_response(s)
      s:close()
      assert.equal(413, st)
      assert.equal("close", h.connection)
      assert.equal("string", type(json.decode(b).detail))
      s = raw_connect(sb)
      s:send("POST /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "500000\r\n")
      assert.equal(413, (read_response(s)))
      s:close()
    end)

    it("serves several slow connections at once", function()
      sb:config { latency_ms = 300 }
      local socks = {}
      local t0 = socket.gettime()
      for i = 1, 5 do
        socks[i] = raw_connect(sb)
        socks[i]:send(("GET /api/public/v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n"):format(sb.key))
      end
      for i = 1, 5 do
        assert.equal(200, (read_response(socks[i])))
        socks[i]:close()
      end
      local took = socket.gettime() - t0
      sb:config { latency_ms = 0 }
      assert.is_true(took < 1.0, "5 requests with 300 ms latency took " .. took .. " s")
    end)
  end)

  describe("the helper", function()
    it("leaves nothing running when the test process dies without stop()", function()
      local lua = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
      local p = io.popen(lua .. [[ -e 'package.path = "./?.lua;./lua/?.lua;" .. package.path
        local sb = require("spec.helpers.sandbox").start{} print(sb.pid) os.exit(0, false)' ]])
      local pid = tonumber(p:read("*l"))
      p:close()
      assert.truthy(pid)
      local deadline = socket.gettime() + 5
      while sandbox.alive(pid) and socket.gettime() < deadline do socket.sleep(0.1) end
      assert.is_false(sandbox.alive(pid))
    end)

    it("passes extra arguments: faults armed from the command line", function()
      local other = sandbox.start{ key = "cs_test_fixed_key", args = { "--fault", "kind=status,status=503,times=2" } }
      assert.equal("cs_test_fixed_key", other.key)
      assert.equal(503, (other:request("GET", "/campaigns")))
      assert.equal(503, (other:request("GET", "/campaigns")))
      assert.equal(200, (other:request("GET", "/campaigns")))
      other:stop()
    end)

    it("stops the child; stop is idempotent", function()
      local other = sandbox.start{}
      assert.truthy(sandbox.alive(other.pid))
      other:stop()
      assert.is_false(sandbox.alive(other.pid))
      other:stop()
    end)
  end)
end)

describe("coldsend.sandbox in process", function()
  it("answers through a transport function, without sockets", function()
    local transport, srv = require("coldsend.sandbox").transport()
    local res = transport { method = "POST", url = "http://127.0.0.1:1/api/public/v1/campaigns",
      headers = { ["X-API-Key"] = srv.key, ["Content-Type"] = "application/json" },
      body = json.encode { name = "In-process campaign" } }
    assert.equal(201, res.status)
    assert.equal("application/json", res.headers["content-type"])
    local id = json.decode(res.body).campaign_id
    res = transport { method = "GET", url = "http://127.0.0.1:1/api/public/v1/campaigns/" .. id,
      headers = { ["X-API-Key"] = srv.key } }
    assert.equal(200, res.status)
    assert.equal("In-process campaign", json.decode(res.body).name)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("email,first_name\nskip@example.com,Skip\nin@example.com,Inna\n")
    f:close()
    res = transport { method = "POST", url = "http://127.0.0.1:1/api/public/v1/campaigns/" .. id .. "/leads",
      headers = { ["X-API-Key"] = srv.key },
      multipart = { { name = "file", file = path, offset = 39, length = 20, prefix = "email,first_name\n" } } }
    os.remove(path)
    assert.equal(200, res.status, res.body)
    local job = json.decode(res.body)
    assert.equal(1, job.total_count)
    for _ = 1, 3 do
      res = transport { method = "GET", headers = { ["X-API-Key"] = srv.key },
        url = "http://127.0.0.1:1/api/public/v1/campaigns/" .. id .. "/leads/upload/" .. job.job_id }
    end
    job = json.decode(res.body)
    assert.equal("COMPLETED", job.status)
    assert.equal(1, job.success_count)
    srv:add_fault { kind = "close_before" }
    local ok, msg, code = transport { method = "GET", url = "http://127.0.0.1:1/api/public/v1/campaigns",
      headers = { ["X-API-Key"] = srv.key } }
    assert.is_nil(ok)
    assert.equal("network", code)
    assert.truthy(msg)
  end)
end)
