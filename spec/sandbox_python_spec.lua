-- Fidelity: the ColdSend docs' own Python `requests` calls against the
-- sandbox (spec/fixtures/coldsend_docs_client.py), checked against the
-- documented answers.
local json = require "coldsend.json"
local sandbox = require "spec.helpers.sandbox"

local function find_python()
  for _, py in ipairs { "python3", "/usr/bin/python3" } do
    local r = os.execute(py .. " -c 'import requests' >/dev/null 2>&1")
    if r == true or r == 0 then return py end
  end
end

describe("the docs' Python requests calls against the sandbox", function()
  local sb, out
  local python = find_python()

  setup(function()
    if not python then return end
    sb = sandbox.start{}
    local script = sandbox.root .. "/spec/fixtures/coldsend_docs_client.py"
    -- the key goes through the environment, not the command line
    local p = io.popen(("COLDSEND_BASE_URL='%s' COLDSEND_API_KEY='%s' %s '%s' 2>&1")
      :format(sb.url, sb.key, python, script))
    local text = p:read("*a")
    p:close()
    out = json.decode(text)
    assert(type(out) == "table", "the Python client failed: " .. text)
  end)
  teardown(function() if sb then sb:stop() end end)

  local function step(name)
    if not python then return pending("python3 with requests is not installed") end
    local s = out[name]
    assert.is_table(s, "no step " .. name)
    return s.status, s.body, s.headers
  end

  it("creates a campaign with the documented answer", function()
    local st, b, h = step("create")
    if not st then return end
    assert.equal(201, st)
    assert.is_true(b.success)
    assert.equal("Campaign created successfully", b.message)
    assert.equal("Q1 Product Launch Outreach", b.name)
    assert.equal("DRAFT", b.status)
    assert.equal(0, b.current_step)
    assert.matches("^%x+%-", b.campaign_id)
    assert.equal("application/json", h["content-type"])
    assert.truthy(h["x-ratelimit-limit"] and h["x-ratelimit-remaining"] and h["x-ratelimit-reset"])
  end)

  it("answers a variants update with is_launch_ready false, missing leads and inboxes", function()
    local st, b = step("variants")
    if not st then return end
    assert.equal(200, st)
    assert.is_true(b.success)
    assert.equal("DRAFT", b.status)
    assert.is_false(b.is_launch_ready)
    assert.same({ "leads", "inboxes" }, b.missing_requirements)
  end)

  it("keeps an unready campaign in DRAFT on launch", function()
    local st, b = step("launch_unready")
    if not st then return end
    assert.equal(200, st)
    assert.equal("DRAFT", b.status)
    assert.is_false(b.is_launch_ready)
    assert.same({ "leads", "inboxes" }, b.missing_requirements)
  end)

  it("takes the documented sequences, SMTP inbox, CSV upload and manual lead", function()
    local st = step("sequences")
    if not st then return end
    assert.equal(200, st)
    local b
    st, b = step("smtp")
    assert.equal(201, st)
    assert.equal("SMTP inbox created successfully", b.message)
    assert.equal("john@yourcompany.com", b.email_address)
    st, b = step("inboxes")
    assert.equal(200, st)
    assert.same({ "leads" }, b.missing_requirements)
    st, b = step("upload")
    assert.equal(200, st)
    assert.equal("PENDING", b.status)
    st, b = step("progress")
    assert.equal(200, st)
    assert.equal("COMPLETED", b.status)
    assert.equal(2, b.success_count)
    assert.equal(0, b.error_count)
    st, b = step("manual_lead")
    assert.equal(201, st)
    assert.equal("john.doe@example.com", b.email)
    assert.same({ industry = "Technology", source = "LinkedIn" }, b.custom_fields)
    st, b = step("update_lead")
    assert.equal(200, st)
    assert.equal("Jane", b.first_name)
    assert.same({ industry = "SaaS", source = "LinkedIn" }, b.custom_fields)
  end)

  it("launches once ready", function()
    local st, b = step("launch_ready")
    if not st then return end
    assert.equal(200, st)
    assert.equal("ACTIVE", b.status)
    assert.is_true(b.is_launch_ready)
    assert.same({}, b.missing_requirements)
    st, b = step("get")
    assert.equal(200, st)
    assert.equal("ACTIVE", b.status)
    assert.equal(3, b.total_leads)
    assert.equal(2, #b.sequences)
    assert.equal(30, b.daily_limit_per_inbox)
    assert.equal(30, b.sending_window_start_minute)
    st, b = step("list")
    assert.equal(200, st)
    assert.equal(1, b.pagination.total)
  end)

  it("answers the documented errors", function()
    local st, b = step("no_key")
    if not st then return end
    assert.equal(401, st)
    assert.equal("API key required. Include your API key in X-API-Key header.", b.detail)
    st, b = step("invalid")
    assert.equal(422, st)
    local by = {}
    for _, d in ipairs(b.detail) do by[d.loc[2]] = d end
    assert.equal("ensure this value has at least 8 characters", by.name.msg)
    assert.equal("value_error.any_str.min_length", by.name.type)
    assert.equal("ensure this value is less than or equal to 100", by.daily_limit_per_inbox.msg)
    st, b = step("active_update")
    assert.equal(400, st)
    assert.matches("[Pp]ause", b.detail)
    st, b = step("pause")
    assert.equal(200, st)
    assert.equal("PAUSED", b.status)
    st, b = step("analytics")
    assert.equal(200, st)
    assert.equal(1, b.workspace_kpis.total_campaigns)
  end)
end)
