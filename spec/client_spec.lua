-- client_spec.lua: the client against the sandbox over loopback, through the
-- real libcurl transport: the campaign flow, dirty-only saves, every error
-- code a real response can produce, and pagination.
local coldsend = require "coldsend"
local sandbox = require "spec.helpers.sandbox"

local UUID = "550e8400-e29b-41d4-a716-446655440000"
local KEY = "cs_live_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0"

local function variant(subject)
  return {
    subject_template = subject or "Quick question, {{first_name}}",
    email_content = "Hi {{first_name}},\n\nA short note.\n",
  }
end

local function inbox_fields(email)
  return {
    email_address = email or "jane@example.com", display_name = "Jane",
    inbox_type = "CUSTOM_SMTP", smtp_host = "smtp.example.com", smtp_port = 587,
    smtp_username = "jane", smtp_password = "secret-pass", imap_host = "imap.example.com",
    imap_port = 993, imap_username = "jane", imap_password = "secret-pass",
  }
end

describe("coldsend.client construction", function()
  it("refuses a missing key, showing the expected shape", function()
    local ok, err = pcall(coldsend.client, { api_key = "", base_url = "http://127.0.0.1:1" })
    assert.is_false(ok)
    assert.matches("cs_live_<token>", err, 1, true)
  end)

  it("refuses keys with whitespace or a wrong prefix without showing them", function()
    for _, bad in ipairs { "cs_live_abc def0123", "cs_live_abc\n0123", "sk_live_abcdef0123" } do
      local ok, err = pcall(coldsend.client, { api_key = bad, base_url = "http://127.0.0.1:1" })
      assert.is_false(ok)
      assert.matches("cs_live_<token>", err, 1, true)
      assert.is_nil(err:find(bad, 1, true))
      assert.is_nil(err:find("abc", 1, true))
    end
  end)

  it("accepts http:// only for loopback hosts", function()
    assert.truthy(coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:9/api" })
    assert.truthy(coldsend.client { api_key = KEY, base_url = "http://localhost:9/api" })
    local ok, err = pcall(coldsend.client, { api_key = KEY, base_url = "http://api.coldsend.pro/x" })
    assert.is_false(ok)
    assert.matches("only allowed for loopback", err, 1, true)
    ok, err = pcall(coldsend.client, { api_key = KEY, base_url = "ftp://127.0.0.1/" })
    assert.is_false(ok)
    assert.matches("base_url", err, 1, true)
    -- no address: the resolver would ask DNS for it (the key in clear to
    -- wherever the answer points)
    for _, url in ipairs { "http://127.0.0.999:9/api", "http://127.1.1.99999999/", "http://127.0.0.1.example.com/",
      "http://127.0.0.0256/" } do
      ok, err = pcall(coldsend.client, { api_key = KEY, base_url = url })
      assert.is_false(ok, url)
      assert.matches("only allowed for loopback", err, 1, true)
    end
    for _, url in ipairs { "http://127.255.255.254:9/api", "HTTP://[::1]:9/", "http://LOCALHOST:9" } do
      assert.truthy(coldsend.client { api_key = KEY, base_url = url }, url)
    end
  end)

  it("takes key and URL from the environment-style defaults and never prints the key", function()
    local cs = coldsend.client { api_key = KEY, base_url = "https://api.coldsend.pro/api/public/v1/" }
    assert.equal("https://api.coldsend.pro/api/public/v1", cs.base_url)
    assert.is_nil(tostring(cs):find(KEY, 1, true))
    for k, v in pairs(cs) do
      assert.is_nil(tostring(k):find(KEY, 1, true))
      assert.is_nil(tostring(v):find(KEY, 1, true))
    end
  end)

  it("refuses unknown options and bad values", function()
    local ok, err = pcall(coldsend.client, { api_key = KEY, timeot = 3 })
    assert.is_false(ok)
    assert.matches("unknown option 'timeot'", err, 1, true)
    ok, err = pcall(coldsend.client, { api_key = KEY, timeout = -1 })
    assert.is_false(ok)
    assert.matches("bad option 'timeout'", err, 1, true)
    ok, err = pcall(coldsend.client, { api_key = KEY, max_retries = 1.5 })
    assert.is_false(ok)
    assert.matches("max_retries", err, 1, true)
  end)

  it("sends the key, Accept, Content-Type and User-Agent on every request", function()
    local seen = {}
    local cs = coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:9", rate_limit = false,
      transport = function(req)
        seen[#seen + 1] = req
        return { status = 200, headers = { ["content-type"] = "application/json" },
          body = '{"campaigns": [], "pagination": {"page": 1, "has_next": false}}' }
      end }
    assert(cs:list_campaigns())
    assert(cs:request("POST", "/anything", { a = 1 }))
    local get, post = seen[1].headers, seen[2].headers
    assert.equal(KEY, get["X-API-Key"])
    assert.equal("application/json", get["Accept"])
    assert.is_nil(get["Content-Type"])
    assert.equal("application/json", post["Content-Type"])
    -- a campaign's save (a body) and delete (none), then a GET again: the
    -- two kept sets do not mix
    seen[3], seen[4], seen[5] = nil, nil, nil
    local c = cs:campaign("550e8400-e29b-41d4-a716-446655440000")
    c.name = "Renamed campaign"
    cs.transport = function(req)
      seen[#seen + 1] = req
      return { status = 200, headers = { ["content-type"] = "application/json" },
        body = req.method == "PUT" and '{"campaign_id": "550e8400-e29b-41d4-a716-446655440000"}'
          or '{"campaigns": [], "pagination": {"page": 1, "has_next": false}}' }
    end
    assert(c:save())
    assert(c:delete())
    assert(cs:list_campaigns())
    assert.equal("PUT", seen[3].method)
    assert.equal("application/json", seen[3].headers["Content-Type"])
    assert.equal(KEY, seen[3].headers["X-API-Key"])
    assert.equal("DELETE", seen[4].method)
    assert.is_nil(seen[4].headers["Content-Type"])
    assert.equal(KEY, seen[4].headers["X-API-Key"])
    assert.is_nil(seen[5].headers["Content-Type"])
    local lua = rawget(_G, "jit") and jit.version or _VERSION
    assert.equal(string.format("lua-coldsend/%s %s %s", coldsend._VERSION,
      require("coldsend.core").curl_version(), lua), get["User-Agent"])
    assert.matches("^lua%-coldsend/%d+%.%d+%.%d+ libcurl/%d+%.%d+%.%d+ ", get["User-Agent"])
  end)

  it("checks the answer of a transport swapped in after the libcurl one", function()
    local cs = coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:1/api/public/v1",
      rate_limit = false, max_retries = 0 }
    local data, err = cs:request("GET", "/campaigns")
    assert.is_nil(data)
    assert.equal("network", err.code)
    cs.transport = function() return "not a response" end
    data, err = cs:request("GET", "/campaigns")
    assert.is_nil(data)
    assert.equal("protocol", err.code)
    assert.matches("the transport answered a string", err.message)
  end)

  it("sends through the transport a hook swapped in, and checks its answer", function()
    local cs = coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:1/api/public/v1",
      rate_limit = false, max_retries = 0 }
    cs.on_request = function()
      cs.transport = function()
        return { status = 200, headers = { ["content-type"] = "application/json" }, body = '{"ok": true}' }
      end
    end
    local data, err = cs:request("GET", "/campaigns")
    assert.is_table(data, err and err.message)
    assert.is_true(data.ok)
    -- the libcurl one first, then a swap in the hook to one answering junk
    cs = coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:1/api/public/v1",
      rate_limit = false, max_retries = 0 }
    assert.equal("network", select(2, cs:request("GET", "/campaigns")).code)
    cs.on_request = function() cs.transport = function() return "junk" end end
    data, err = cs:request("GET", "/campaigns")
    assert.is_nil(data)
    assert.equal("protocol", err.code)
    assert.matches("the transport answered a string", err.message)
  end)

  it("reads the server's ISO 8601 times as UTC epoch seconds (create recovery)", function()
    assert.equal(1705314600, require("coldsend.writes").parse_iso_utc("2024-01-15T10:30:00Z"))
    assert.equal(1705314600, require("coldsend.writes").parse_iso_utc("2024-01-15T12:30:00+02:00"))
    assert.equal(951782400, require("coldsend.writes").parse_iso_utc("2000-02-29T00:00:00Z"))
    assert.is_nil(require("coldsend.writes").parse_iso_utc("yesterday"))
  end)

  it("checks ids as UUIDs before anything is sent", function()
    local cs = coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:9" }
    local ok, err = pcall(cs.get_campaign, cs, "../../etc/passwd")
    assert.is_false(ok)
    assert.matches("UUID expected", err, 1, true)
    ok, err = pcall(cs.campaign, cs, "not-a-uuid")
    assert.is_false(ok)
    assert.matches("UUID expected", err, 1, true)
  end)
end)

describe("coldsend.client against the sandbox", function()
  local sb, cs

  setup(function()
    sb = sandbox.start {}
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false,
      backoff_base = 0.01, backoff_cap = 0.05, timeout = 10 }
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  local function log_of(method, pattern)
    local out = {}
    for _, e in ipairs(sb:log()) do
      if e.method == method and e.path:find(pattern) then out[#out + 1] = e end
    end
    return out
  end

  it("runs create, configure, add inbox and leads, launch", function()
    local c = assert(cs:create_campaign { name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 30 })
    assert.equal("DRAFT", c.status)
    local inbox = assert(cs:add_smtp_inbox(inbox_fields()))
    c.inbox_ids = { inbox.inbox_id }
    c:add_variant(variant("A subject"))
    c:add_variant(variant("B subject"))
    c:split_evenly()
    c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 3, variants = { variant("Following up") } }

    -- no leads yet: the server says what is missing
    local ok, err = c:launch()
    assert.is_nil(ok)
    assert.equal("not_ready", err.code)
    assert.same({ "leads" }, err.missing_requirements)
    assert.equal("DRAFT", c.status)
    assert.matches("leads", tostring(err), 1, true)

    assert(c:add_lead { email = "ada@example.org", first_name = "Ada" })
    assert(c:launch())
    assert.equal("ACTIVE", c.status)
    assert.is_true(c.is_launch_ready)

    local again = assert(cs:get_campaign(c.id))
    assert.equal("ACTIVE", again.status)
    assert.equal(2, #again.variants)
    assert.equal(1, #again.sequences)
  end)

  it("saves only the fields that changed, and nothing when nothing changed", function()
    local c = assert(cs:create_campaign { name = "Only changed fields go out" })
    sb:control("DELETE", "/log")
    c.daily_limit_per_inbox = 42
    assert(c:save())
    local puts = log_of("PUT", "^/campaigns/")
    assert.equal(1, #puts)
    assert.same({ daily_limit_per_inbox = 42 }, puts[1].body)
    assert(c:save()) -- nothing pending: nothing sent
    assert.equal(1, #log_of("PUT", "^/campaigns/"))
    c.name = "A second and different name"
    c.enable_tracking = true
    assert(c:save())
    puts = log_of("PUT", "^/campaigns/")
    assert.equal(2, #puts)
    assert.same({ name = "A second and different name", enable_tracking = true }, puts[2].body)
  end)

  it("sends nothing when validation fails", function()
    local c = assert(cs:create_campaign { name = "Validation before sending" })
    sb:control("DELETE", "/log")
    c:add_variant { subject_template = "x", email_content = "0123456789", distribution_percent = 60 }
    c:add_variant { subject_template = "y", email_content = "0123456789", distribution_percent = 60 }
    local ok, err = c:save()
    assert.is_nil(ok)
    assert.equal("invalid", err.code)
    assert.truthy(#err.problems >= 1)
    assert.equal(0, #log_of("PUT", "."))
  end)

  it("pauses, resumes and deletes", function()
    local c = assert(cs:create_campaign { name = "Lifecycle of a campaign" })
    local inbox = assert(cs:add_smtp_inbox(inbox_fields("pause@example.com")))
    c.inbox_ids = { inbox.inbox_id }
    c:add_variant(variant())
    assert(c:add_lead { email = "x@example.org" })
    assert(c:launch())
    local ok, err = c:delete()
    assert.is_nil(ok)
    assert.equal("bad_request", err.code)
    assert(c:pause())
    assert.equal("PAUSED", c.status)
    assert(c:resume())
    assert.equal("ACTIVE", c.status)
    assert(c:pause())
    assert.is_true(c:delete())
    local gone
    gone, err = cs:get_campaign(c.id)
    assert.is_nil(gone)
    assert.equal("not_found", err.code)
    assert.equal(404, err.status)
  end)

  it("reaches every error code from a real response", function()
    -- 401: a key the sandbox does not know
    sb:keys { ["cs_live_readonlykey000000"] = { scopes = { "campaigns:read" } } }
    local other = coldsend.client { api_key = "cs_live_unknownkey00000000", base_url = sb.url,
      rate_limit = false }
    local r, err = other:list_campaigns()
    assert.is_nil(r)
    assert.equal("auth", err.code)
    assert.equal(401, err.status)
    assert.is_nil(tostring(err):find("cs_live_unknownkey", 1, true))

    -- 403 with required / granted
    local ro = coldsend.client { api_key = "cs_live_readonlykey000000", base_url = sb.url,
      rate_limit = false }
    r, err = ro:create_campaign { name = "Not allowed to create" }
    assert.is_nil(r)
    assert.equal("forbidden", err.code)
    assert.same({ "campaigns:create" }, err.required)
    assert.same({ "campaigns:read" }, err.granted)
    sb:reset()

    -- 404
    r, err = cs:get_campaign(UUID)
    assert.is_nil(r)
    assert.equal("not_found", err.code)

    -- 409: the same inbox twice
    assert(cs:add_smtp_inbox(inbox_fields("dup@example.com")))
    r, err = cs:add_smtp_inbox(inbox_fields("dup@example.com"))
    assert.is_nil(r)
    assert.equal("conflict", err.code)
    assert.equal(409, err.status)

    -- 422 from the server: our validation is stricter, so go around it
    r, err = cs:request("POST", "/campaigns", { name = "short" })
    assert.is_nil(r)
    assert.equal("unprocessable", err.code)
    assert.equal("name", err.details[1].field)

    -- 400: updating an ACTIVE campaign
    local c = assert(cs:create_campaign { name = "Active campaigns refuse updates" })
    local inbox = assert(cs:add_smtp_inbox(inbox_fields("active@example.com")))
    c.inbox_ids = { inbox.inbox_id }
    c:add_variant(variant())
    assert(c:add_lead { email = "y@example.org" })
    assert(c:launch())
    c.daily_limit_per_inbox = 10
    r, err = c:save()
    assert.is_nil(r)
    assert.equal("bad_request", err.code)
    assert.matches("pause", err.message)

    -- 429 after retries, 500 after retries
    sb:fault { path = "/campaigns", kind = "status", status = 429, times = 10, retry_after = 0 }
    r, err = cs:list_campaigns(nil, { max_retries = 2 })
    assert.is_nil(r)
    assert.equal("rate_limited", err.code)
    assert.equal(3, err.attempts)
    sb:reset()
    sb:fault { path = "/campaigns", kind = "status", status = 500, times = 10 }
    r, err = cs:list_campaigns(nil, { max_retries = 1 })
    assert.is_nil(r)
    assert.equal("server", err.code)
    assert.equal(500, err.status)
    assert.equal(2, err.attempts)
    sb:reset()

    -- bad JSON
    sb:fault { path = "/campaigns", kind = "non_json", times = 10 }
    r, err = cs:list_campaigns(nil, { max_retries = 0 })
    assert.is_nil(r)
    assert.equal("protocol", err.code)
    sb:reset()

    -- timeout against a delayed answer
    sb:fault { path = "/campaigns", kind = "delay", delay_ms = 1500, times = 1 }
    r, err = cs:list_campaigns(nil, { timeout = 0.3, max_retries = 0 })
    assert.is_nil(r)
    assert.equal("timeout", err.code)
    sb:reset()

    -- connection refused: a port nobody listens on
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local nowhere = coldsend.client { api_key = sb.key, base_url = "http://127.0.0.1:" .. port,
      rate_limit = false, max_retries = 0 }
    r, err = nowhere:list_campaigns()
    assert.is_nil(r)
    assert.equal("network", err.code)
    assert.equal("GET", err.method)
    assert.equal(1, err.attempts)
  end)

  it("never lets libcurl re-send a POST over a reused connection", function()
    assert(cs:list_campaigns()) -- leaves a keep-alive connection to reuse
    sb:fault { method = "POST", path = "^/campaigns$", kind = "close_before", after = true, times = 1 }
    sb:control("DELETE", "/log")
    local r, err = cs:request("POST", "/campaigns", { name = "Exactly one create, please" })
    assert.is_nil(r)
    assert.is_true(err.ambiguous)
    assert.equal(1, sb:count("POST", "^/campaigns$"))
    -- and the PUTs and GETs still share one connection
    sb:control("DELETE", "/log")
    assert(cs:list_campaigns())
    assert(cs:list_campaigns())
    local log = sb:log()
    assert.equal(log[1].conn, log[2].conn)
  end)

  it("pages through 250 campaigns with limit 100", function()
    for i = 1, 250 do
      assert(cs:request("POST", "/campaigns", { name = string.format("Paged campaign %03d", i) }))
    end
    local page = assert(cs:list_campaigns { limit = 100, page = 3 })
    assert.equal(50, #page.campaigns)
    assert.is_false(page.pagination.has_next)
    sb:control("DELETE", "/log")
    local seen, n = {}, 0
    for item in cs:each_campaign { limit = 100 } do
      assert.is_nil(seen[item.campaign_id])
      seen[item.campaign_id] = true
      n = n + 1
    end
    assert.equal(250, n)
    assert.equal(3, #log_of("GET", "^/campaigns$"))
  end)

  it("reads analytics and inboxes", function()
    assert(cs:add_smtp_inbox(inbox_fields("stats@example.com")))
    local inboxes = assert(cs:list_inboxes())
    assert.equal(1, #inboxes.sender_accounts)
    local a = assert(cs:campaign_analytics {})
    assert.is_table(a.workspace_kpis)
    local t = assert(cs:timeline { from_date = "2024-01-01", to_date = "2024-01-03" })
    assert.equal(3, #t.timeline)
  end)
end)
