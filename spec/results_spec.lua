-- results_spec.lua: the sandbox's simulated sending (POST /__sandbox/simulate
-- {"days": N}) and `coldsend stats` / `coldsend timeline` over it, against
-- the sandbox over loopback (libcurl): deterministic with a seed, sending
-- days, daily limit, window and ramp-up respected, follow-ups after their
-- wait, tracking, completion; the commands' text, --json, widths, the
-- ASCII fallback and exit codes.
local cjson = require "cjson"
local coldsend = require "coldsend"
local clih = require "spec.helpers.cli"
local sandbox = require "spec.helpers.sandbox"

-- 2027-01-04 is a Monday.
local MONDAY = "2027-01-04"

describe("simulated results", function()
  local sb, env, cs, inbox

  local function simulate(body)
    return sb:control("POST", "/simulate", body)
  end

  -- An ACTIVE campaign with n leads; fields override the defaults.
  local function active(name, n, fields)
    local def = { name = name, inbox_ids = { inbox }, enable_tracking = true, daily_limit_per_inbox = 20,
      variants = { { subject_template = "Hello", email_content = "Hi {{first_name}}, a note." } } }
    for k, v in pairs(fields or {}) do def[k] = v end
    local c = assert(cs:create_campaign(def))
    for i = 1, n do assert(c:add_lead { email = ("lead%03d@example.org"):format(i) }) end
    assert(c:launch())
    return c
  end

  local function daily(id)
    local t = assert(cs:timeline { from_date = MONDAY, to_date = "2027-01-31" })
    local by_date = {}
    for _, p in ipairs(t.timeline) do by_date[p.date] = p end
    local a = assert(cs:campaign_analytics())
    for _, c in ipairs(a.campaigns) do
      if c.campaign_id == id then return by_date, c end
    end
    return by_date
  end

  before_each(function()
    sb:reset()
    inbox = clih.inbox(cs, "sender@example.com").inbox_id
  end)

  setup(function()
    sb = sandbox.start { rate_limit = false }
    env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0, rate_limit = false }
  end)

  teardown(function() sb:stop() end)

  it("sends on the campaign's days up to its daily limit per inbox", function()
    local c = active("Limit and days campaign", 300, { sending_days = { 1, 3, 5 } })
    local r = simulate { days = 7, seed = 3, start = MONDAY }
    assert.equal(MONDAY, r.from_date)
    assert.equal("2027-01-10", r.to_date)
    local by_date = daily(c.id)
    for date, want in pairs { ["2027-01-04"] = 20, ["2027-01-05"] = 0, ["2027-01-06"] = 20,
      ["2027-01-07"] = 0, ["2027-01-08"] = 20, ["2027-01-09"] = 0, ["2027-01-10"] = 0 } do
      local p = by_date[date]
      assert.equal(want, p.sent + p.bounced, date)
    end
    -- no limit on the campaign: the inbox's own (100 a day), cut by a
    -- one-hour window to 15 (one email per inbox every 4 minutes)
    local w = active("Window campaign here", 300, { daily_limit_per_inbox = coldsend.null,
      sending_window_start = 9, sending_window_end = 10 })
    simulate { days = 1, start = "2027-01-11" }
    local t = assert(cs:timeline { from_date = "2027-01-11", to_date = "2027-01-11" })
    local _, row = daily(w.id)
    assert.equal(15, row.total_sent + row.total_bounced)
    assert.equal(35, t.timeline[1].sent + t.timeline[1].bounced) -- 20 + 15, both campaigns
  end)

  it("ramps up, sends follow-ups after their wait, and completes", function()
    local c = active("Ramped campaign here", 40, { daily_limit_per_inbox = 100, ramp_up_enabled = true,
      ramp_up_increment = 5, ramp_up_max_limit = 12, sending_days = { 1, 2, 3, 4, 5, 6, 7 },
      sequences = { { trigger_type = "NOT_REPLIED", wait_days = 2,
        variants = { { subject_template = "Again", email_content = "Following up on my note." } } } } })
    simulate { days = 30, seed = 9, start = MONDAY }
    local by_date, row = daily(c.id)
    local function n(d) return by_date[d].sent + by_date[d].bounced end
    assert.equal(5, n("2027-01-04"))  -- ramp-up: 5, 10, then the 12 cap
    assert.equal(10, n("2027-01-05"))
    assert.equal(12, n("2027-01-06"))
    -- every lead: one first email, then a follow-up unless it replied,
    -- bounced or unsubscribed; then nothing is left to send
    local got = assert(cs:get_campaign(c.id))
    assert.equal("COMPLETED", got.status)
    assert.truthy(row.total_sent + row.total_bounced > 40)
    assert.truthy(row.total_sent + row.total_bounced <= 80)
    local leads = assert(cs:request("GET", "/campaigns/" .. c.id .. "/leads", nil, { limit = 100 })).leads
    local steps = {}
    for _, l in ipairs(leads) do
      steps[l.sequence_step] = (steps[l.sequence_step] or 0) + 1
      assert.truthy(({ SENT = 1, OPENED = 1, REPLIED = 1, BOUNCED = 1, UNSUBSCRIBED = 1 })[l.status], l.status)
    end
    assert.truthy((steps[2] or 0) > 20, "most leads had their follow-up")
  end)

  it("is deterministic with a seed; opens need tracking", function()
    local function run(seed, tracking)
      sb:reset()
      inbox = clih.inbox(cs, "sender@example.com").inbox_id
      local c = active("Seeded campaign here", 200, { enable_tracking = tracking })
      simulate { days = 10, seed = seed, start = MONDAY }
      local _, row = daily(c.id)
      return { row.total_sent, row.total_opened, row.total_replied, row.total_bounced }
    end
    local a, b, other = run(42, true), run(42, true), run(43, true)
    assert.same(a, b)
    assert.are_not.same(a, other)
    -- plausible rates: about 45% opened, a few percent replied and bounced
    assert.truthy(a[2] / a[1] > 0.3 and a[2] / a[1] < 0.6, a[2] / a[1])
    assert.truthy(a[3] / a[1] > 0.01 and a[3] / a[1] < 0.15)
    local untracked = run(42, false)
    assert.equal(0, untracked[2])
    assert.truthy(untracked[3] > 0)
  end)

  it("refuses bad control calls and simulates only ACTIVE campaigns", function()
    for _, body in ipairs { { days = 0 }, { days = 367 }, { days = 1.5 }, { days = 1, seed = 0 },
      { days = 1, start = "2027-02-30" } } do
      local status, res = sb:request("POST", "/__sandbox/simulate", body, { ["X-API-Key"] = sb.key })
      assert.equal(422, status)
      assert.truthy(res.detail)
    end
    local draft = assert(cs:create_campaign { name = "Draft stays silent" })
    simulate { days = 5, start = MONDAY }
    local _, row = daily(draft.id)
    assert.equal(0, row.total_sent)
    -- the counts form: a refused call changes nothing; no body at all is
    -- a 422 saying what is expected
    for _, body in ipairs { { campaign_id = draft.id, sent = 5, opened = -1 },
      { campaign_id = draft.id, sent = 5, replied = 1.5 }, { campaign_id = draft.id, sent = 1e300 },
      { days = 1, seed = 1e300 }, {} } do
      local status, res = sb:request("POST", "/__sandbox/simulate", body, { ["X-API-Key"] = sb.key })
      assert.equal(422, status, cjson.encode(body))
      assert.truthy(res.detail)
    end
    local status, res = sb:request("POST", "/__sandbox/simulate", {}, { ["X-API-Key"] = sb.key })
    assert.equal(422, status)
    assert.matches("days or campaign_id", res.detail, 1, true)
    _, row = daily(draft.id)
    assert.equal(0, row.total_sent)
  end)

  it("make demo ends with the stats of the campaign it launched", function()
    local util = require "spec.helpers.util"
    local rc, out, err = util.run("cd " .. util.q(sandbox.root) .. " && sh scripts/demo.sh")
    assert.equal(0, rc, out .. err)
    assert.matches("\ndemo: two weeks of simulated sending, then: coldsend stats\n"
      .. "Workspace: 1 campaign, %d+ sent;", out)
    assert.matches("\nQ1 Product Launch Outreach +ACTIVE +3 +%d+ +[%d.]+%% +[%d.]+%% +[%d.]+%%\n$", out)
  end)

  it("escapes what a server puts in names and dates", function()
    sb:fault { kind = "status", status = 200, path = "^/analytics/campaigns$", body = {
      workspace_kpis = { total_campaigns = 1, total_sends = 1, avg_open_rate = 0, avg_reply_rate = 0,
        avg_bounce_rate = 0 },
      campaigns = { { campaign_id = "x", campaign_name = "Evil \27]0;owned\7 name", status = "ACTIVE",
        total_leads = 1, total_sent = 1, open_rate = 0, reply_rate = 0, bounce_rate = 0 } } } }
    local rc, out = clih.run(env, "stats")
    assert.equal(0, rc)
    assert.is_nil(out:find("\27", 1, true))
    assert.matches("Evil \\x1B]0;owned\\x07 name", out, 1, true)
    sb:fault { kind = "status", status = 200, path = "^/analytics/campaigns/timeline$", body = {
      from_date = "2027-01-04", to_date = "2027-01-04",
      timeline = { { date = "\27[2J2027-01-04", sent = 1, opened = 0, replied = 0, bounced = 0 } } } }
    rc, out = clih.run(env, "timeline", { LANG = "C" })
    assert.equal(0, rc)
    assert.is_nil(out:find("\27", 1, true))
    assert.matches("\\x1B[2J2027-01-04", out, 1, true)
  end)

  it("shows a server's NaN, Infinity, huge and fractional numbers without failing; --json stays JSON", function()
    -- lua-cjson reads NaN and Infinity, which JSON has not
    sb:fault { kind = "status", status = 200, path = "^/analytics/campaigns$", times = 2, body =
      '{"workspace_kpis": {"total_campaigns": NaN, "total_sends": 1e20, "avg_open_rate": NaN, '
      .. '"avg_reply_rate": -Infinity, "avg_bounce_rate": 0.5}, "campaigns": [5, {"campaign_id": "x", '
      .. '"campaign_name": "Odd numbers campaign", "status": "ACTIVE", "total_leads": 2.5, '
      .. '"total_sent": 1e300, "open_rate": Infinity, "reply_rate": 0.25, "bounce_rate": NaN}]}' }
    local rc, out, err = clih.run(env, "stats")
    assert.equal(0, rc, err)
    assert.equal("", err)
    assert.matches("^Workspace: %? campaigns, 100,000,000,000,000,000,000 sent; average open %-, "
      .. "reply %-, bounce 50%.0%%\n", out)
    assert.matches("\nOdd numbers campaign +ACTIVE +3 +1,000,[%d,]+ +%- +25%.0%% +%-\n$", out)
    rc, out, err = clih.run(env, "--json stats")
    assert.equal(0, rc, err)
    local t = cjson.decode(out)
    assert.equal(cjson.null, t.workspace_kpis.total_campaigns)
    assert.equal(1e20, t.workspace_kpis.total_sends)
    assert.equal(5, t.campaigns[1]) -- not an object: --json prints it as sent, the table skips it
    assert.equal(0.25, t.campaigns[2].reply_rate)
    assert.equal(cjson.null, t.campaigns[2].open_rate)
    sb:fault { kind = "status", status = 200, path = "^/analytics/campaigns/timeline$", times = 2, body =
      '{"from_date": "2027-01-04", "to_date": "2027-01-05", "timeline": [{"date": "2027-01-04", '
      .. '"sent": 1.5, "opened": NaN, "replied": 1e300, "bounced": -Infinity}, {"sent": 3}]}' }
    rc, out, err = clih.run(env, "timeline --width 40", { LANG = "C" })
    assert.equal(0, rc, err)
    assert.matches("2027%-01%-04 to %? %(2 days%)", out)
    assert.matches("\n5 sent, 0 opened %(0%.0%%%), 0 replied\n", out)
    rc, out, err = clih.run(env, "--json timeline")
    assert.equal(0, rc, err)
    assert.equal(cjson.null, cjson.decode(out).timeline[1].opened)
  end)

  describe("coldsend stats and timeline", function()
    before_each(function()
      active("Q1 Product Launch Outreach", 120)
      active("Partners in Europe, a second wave of emails", 60, { daily_limit_per_inbox = 30, enable_tracking = false })
      assert(cs:create_campaign { name = "Draft not launched" })
      simulate { days = 14, seed = 1, start = MONDAY }
    end)

    it("stats prints the workspace and a table; --json the API's answer", function()
      local rc, out, err = clih.run(env, "stats")
      assert.equal(0, rc, err)
      assert.matches("^Workspace: 3 campaigns, [%d,]+ sent; average open %d+%.%d%%, "
        .. "reply %d+%.%d%%, bounce %d+%.%d%%\n\n", out)
      assert.matches("\nCAMPAIGN +STATUS +LEADS +SENT +OPEN +REPLY +BOUNCE\n", out)
      assert.matches("\nQ1 Product Launch Outreach +[A-Z]+ +120 +%d+ +%d+%.%d%% +%d+%.%d%% +%d+%.%d%%\n", out)
      assert.matches("\nPartners in Europe, a secon%.%.%. [A-Z]+ +60 ", out) -- cut to 30 characters
      for line in out:gmatch("[^\n]+") do assert.truthy(#line <= 80, line) end
      rc, out = clih.run(env, "--json stats --status COMPLETED") -- each lead had its one email
      assert.equal(0, rc)
      local t = cjson.decode(out)
      assert.equal(2, t.workspace_kpis.total_campaigns)
      assert.equal(2, #t.campaigns)
      rc, out = clih.run(env, "--json stats --from 2030-01-01")
      assert.equal(0, rc)
      assert.equal(0, cjson.decode(out).workspace_kpis.total_campaigns)
      for args, msg in pairs {
        ["stats --status SLEEPING"] = "bad value for --status",
        ["stats --from 2027-02-30"] = "bad value for --from (a real date YYYY-MM-DD expected",
        ["stats --to yesterday"] = "bad value for --to",
        ["stats extra"] = "'stats' takes no arguments",
      } do
        local rc2, out2, err2 = clih.run(env, args)
        assert.equal(2, rc2, args)
        assert.equal("", out2)
        assert.matches(msg, err2, 1, true)
      end
      local dead = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = "http://127.0.0.1:1/api/public/v1" }
      rc = clih.run(dead, "stats")
      assert.equal(1, rc)
    end)

    it("timeline draws the days fitted to the terminal, Unicode or ASCII; --json the data", function()
      local range = "--from " .. MONDAY .. " --to 2027-01-17"
      local rc, out, err = clih.run(env, "timeline " .. range, { COLUMNS = "120", LANG = "C.UTF-8" })
      assert.equal(0, rc, err)
      assert.matches("^Sent, opened and replied per day, 2027%-01%-04 to 2027%-01%-17 %(14 days%)\n", out)
      assert.matches("█", out, 1, true)
      local widest = 0
      for line in out:gmatch("[^\n]+") do
        local n = 0
        for _ in line:gmatch("[%z\1-\127\194-\244][\128-\191]*") do n = n + 1 end
        widest = math.max(widest, n)
      end
      assert.truthy(widest <= 120 and widest > 60, widest)
      rc, out = clih.run(env, "timeline " .. range, { COLUMNS = "80", LANG = "C", LC_ALL = "C" })
      assert.equal(0, rc)
      assert.is_nil(out:find("[\128-\255]"))
      assert.matches("\nsent +%d+|", out)
      rc, out = clih.run(env, "timeline --width 40 " .. range, { LANG = "C" })
      assert.equal(0, rc)
      for line in out:gmatch("[^\n]+") do assert.truthy(#line <= 40, line) end
      rc, out = clih.run(env, "--json timeline " .. range)
      assert.equal(0, rc)
      local t = cjson.decode(out)
      assert.equal(14, #t.timeline)
      assert.equal(MONDAY, t.timeline[1].date)
      assert.truthy(t.timeline[1].sent > 0)
      assert.equal(0, t.timeline[6].sent) -- a Saturday
      -- the default range ends on the sandbox's today: the last simulated day
      rc, out = clih.run(env, "--json timeline")
      assert.equal(0, rc)
      assert.equal("2027-01-17", cjson.decode(out).to_date)
      for _, width in ipairs { "20", "0x40", "1e2", "50.0", "inf" } do
        rc, _, err = clih.run(env, "timeline --width " .. width)
        assert.equal(2, rc, width)
        assert.matches('bad --width "' .. width .. '" (an integer >= 40 expected)', err, 1, true)
      end
      -- a range that ends before it starts: refused before any request
      for _, cmd in ipairs { "timeline", "stats" } do
        local before = #sb:log()
        rc, out, err = clih.run(env, cmd .. " --from 2027-01-17 --to 2027-01-04")
        assert.equal(2, rc, cmd)
        assert.equal("", out)
        assert.matches("--from 2027-01-17 is after --to 2027-01-04", err, 1, true)
        assert.equal(before, #sb:log())
      end
    end)
  end)
end)
