-- data_safety_spec: nothing lost, nothing written twice, nothing overwritten.
-- The reproducers of shared/repro (08, 10, 11, 18, 23) as regression tests,
-- against the sandbox with the real libcurl transport, plus the rules behind
-- them: the create routine's look-up never adopts a campaign that existed
-- before the call, the server's stated waits are what the client waits and
-- what err.retry_after says, and no single wait is longer than max_wait.
local sandbox = require "spec.helpers.sandbox"
local cases = require "spec.helpers.fault_cases"
local util = require "spec.helpers.util"
local coldsend = require "coldsend"
local cjson = require "cjson"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

describe("data safety", function()
  local sb, env

  local hooks = sandbox.hooks({ rate_limit = false }, function(s)
    sb = s
    env = cases.env(sb)
  end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  local function named(cs, name)
    local out = {}
    for _, c in ipairs(assert(cs:list_campaigns { search = name, limit = 100 }).campaigns) do
      if c.name == name then out[#out + 1] = c end
    end
    return out
  end

  describe("a saved local definition", function()
    it("keeps its variants, follow-ups, inboxes and mapping: POST, then one PUT", function()
      local cs = env.client()
      local ib = assert(cs:add_smtp_inbox { email_address = "local@example.com", display_name = "L",
        inbox_type = "CUSTOM_SMTP", smtp_host = "smtp.example.com", smtp_port = 587,
        smtp_username = "u", smtp_password = "p", imap_host = "imap.example.com", imap_port = 993,
        imap_username = "u", imap_password = "p" })
      local c = cs:campaign()
      c.name = "Local Definition Saved"
      c.daily_limit_per_inbox = 25
      c.inbox_ids = { ib.inbox_id }
      c.lead_mapping = { email = "Email", first_name = "First" }
      c:add_variant { subject_template = "A", email_content = "The body of A" }
      c:add_variant { subject_template = "B", email_content = "The body of B" }
      c:split_evenly()
      c:add_sequence { trigger_type = "NOT_REPLIED", wait_days = 3,
        variants = { { subject_template = "Again", email_content = "Following up" } } }
      local since = #sb:log() > 0 and sb:log()[#sb:log()].seq or 0
      assert(c:save())
      assert.matches(UUID, c.id)
      assert.is_nil(next(c:changes()))
      -- the POST carried the create schema only; the PUT the rest
      local post, put
      for _, e in ipairs(sb:log(since)) do
        if e.method == "POST" and e.path == "/campaigns" then post = e.body end
        if e.method == "PUT" then put = e.body end
      end
      assert.is_nil(post.variants)
      assert.is_nil(post.inbox_ids)
      assert.equal(25, post.daily_limit_per_inbox)
      assert.equal(2, #put.variants)
      assert.same({ ib.inbox_id }, put.inbox_ids)
      local got = assert(cs:get_campaign(c.id))
      assert.equal(2, #got.variants)
      assert.same({ 50, 50 }, { got.variants[1].distribution_percent, got.variants[2].distribution_percent })
      assert.equal(1, #got.sequences)
      assert.equal("Following up", got.sequences[1].variants[1].email_content)
      assert.same({ ib.inbox_id }, got.inbox_ids)
      assert.equal("First", got.lead_mapping.first_name)
      assert.equal(25, got.daily_limit_per_inbox)
    end)

    it("reports a PUT that failed after the create with the campaign, changes still pending", function()
      local cs = env.client()
      local c = cs:campaign()
      c.name = "Created Then Refused"
      c:add_variant { subject_template = "A", email_content = "The body of A" }
      sb:fault { kind = "status", status = 400, method = "PUT", times = 1,
        body = { detail = "refused for the test" } }
      local ok, err = c:save()
      assert.is_nil(ok)
      assert.equal("bad_request", err.code)
      assert.equal(c, err.campaign)
      assert.matches(UUID, c.id)
      assert.is_table(c:changes().variants) -- still pending: the next save sends it
      assert(c:save())
      assert.equal(1, #assert(cs:get_campaign(c.id)).variants)
    end)
  end)

  describe("repro 10: a 503 after the server acted", function()
    it("makes one campaign and one lead, and returns them", function()
      local cs = env.client()
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = "Q3 outreach (503 after acting)" }
      assert.is_nil(err)
      assert.matches(UUID, c.id)
      assert.equal(1, sb:count("POST", "^/campaigns$"))
      assert.equal(1, #named(cs, "Q3 outreach (503 after acting)"))
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads/manual$", after = true }
      local lead, lerr = c:add_lead { email = "jane@example.com", first_name = "Jane" }
      assert.is_nil(lerr)
      assert.equal("jane@example.com", lead.email)
      assert.equal(1, sb:count("POST", "/leads/manual$"))
      assert.equal(1, assert(cs:get_campaign(c.id)).total_leads)
    end)

    it("a lead that exists with other fields is a conflict, not adopted", function()
      local cs = env.client()
      local c = assert(cs:create_campaign { name = "Lead Conflict Campaign" })
      assert(c:add_lead { email = "jane@example.com", first_name = "Janet" })
      sb:fault { kind = "close_before", method = "POST", path = "/leads/manual$" }
      local lead, err = c:add_lead { email = "jane@example.com", first_name = "Jane" }
      assert.is_nil(lead)
      assert.equal("conflict", err.code)
      assert.equal("Janet", err.existing.first_name)
    end)
  end)

  describe("repro 11: the create's look-up", function()
    it("never adopts a campaign of the same name made before the call", function()
      local cs = env.client()
      local theirs = assert(cs:create_campaign { name = "Weekly newsletter",
        variants = { { subject_template = "Their subject", email_content = "Their careful body" } } })
      sb:fault { kind = "close_before", reset = true, method = "POST", path = "^/campaigns$", times = 1 }
      local ours, err = cs:create_campaign { name = "Weekly newsletter",
        variants = { { subject_template = "OUR subject", email_content = "OUR body, sent to our leads" } } }
      assert.is_nil(err)
      assert.are_not.equal(theirs.id, ours.id)
      assert.equal("Their subject", assert(cs:get_campaign(theirs.id)).variants[1].subject_template)
      assert.equal("OUR subject", assert(cs:get_campaign(ours.id)).variants[1].subject_template)
      assert.equal(2, #named(cs, "Weekly newsletter"))
    end)

    it("answers ambiguous with the candidates when two new campaigns could be ours", function()
      local other
      local cs = env.client {
        on_response = function(e)
          -- another client makes a campaign of the same name while ours
          -- is in flight: its answer lost, the look-up finds two
          if e.method == "POST" and e.url:match("/campaigns$") and not other then
            local status, body = sb:request("POST", "/campaigns", { name = "Raced Campaign Name" })
            assert.equal(201, status)
            other = body.campaign_id
          end
        end,
      }
      sb:fault { kind = "status", status = 502, method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = "Raced Campaign Name" }
      assert.is_nil(c)
      assert.equal("ambiguous", err.code)
      assert.equal(2, #err.candidates)
      local ids = {}
      for _, x in ipairs(named(cs, "Raced Campaign Name")) do ids[#ids + 1] = x.campaign_id end
      table.sort(ids)
      assert.same(ids, err.candidates)
      assert.matches("2 campaigns could be the one it made", tostring(err), 1, true)
      assert.equal(2, sb:count("POST", "^/campaigns$")) -- ours, once, and the other client's
    end)

    it("past the snapshot's page cap, leaves out a same-named campaign older than all it saw", function()
      -- a busy workspace: the snapshot stops at its page cap, so a
      -- same-named campaign beyond it is told apart by the server's own
      -- created_at (older than the oldest the snapshot saw): not ours
      local lists, posts = 0, 0
      local function answer(status, body)
        return { status = status, headers = { ["content-type"] = "application/json" },
          body = cjson.encode(body) }
      end
      local cs = coldsend.client { api_key = "cs_test_abcdefgh", base_url = "http://127.0.0.1:9/api/public/v1",
        rate_limit = false, backoff_base = 0.001, backoff_cap = 0.001,
        transport = function(req)
          if req.method == "GET" and req.url:match("/campaigns%?") then
            lists = lists + 1
            local page = tonumber(req.url:match("[?&]page=(%d+)"))
            local items = { { campaign_id = ("%08x-2fa1-41d2-883f-0016d3cca427"):format(lists),
              name = "Old Name Campaign, another", created_at = ("2026-12-02T11:%02d:00Z"):format(60 - page) } }
            if posts > 0 then
              items[2] = { campaign_id = ID, name = "Old Name Campaign", created_at = "2026-12-01T12:00:00Z" }
            end
            return answer(200, { success = true, campaigns = items,
              pagination = { page = page, has_next = posts == 0 } })
          elseif req.method == "POST" then
            posts = posts + 1
            if posts == 1 then return answer(502, { detail = "Bad gateway" }) end
            return answer(201, { success = true, campaign_id = "2b4e28ba-2fa1-41d2-883f-0016d3cca427",
              name = "Old Name Campaign", status = "DRAFT" })
          end
          return answer(404, { detail = "Not Found" })
        end }
      local c = assert(cs:create_campaign { name = "Old Name Campaign" })
      assert.equal("2b4e28ba-2fa1-41d2-883f-0016d3cca427", c.id) -- not the old one: sent again
      assert.equal(2, posts)
      assert.equal(21, lists) -- the snapshot's 20 pages, then the look-up
    end)

    it("does not adopt a new same-named campaign that does not hold what was sent", function()
      local made = false
      local cs = env.client {
        api_key = "cs_test_colleague_spec_key",
        on_request = function(e)
          if e.method == "POST" and e.url:match("/campaigns$") and not made then
            made = true
            local st = sb:request("POST", "/campaigns", { name = "Colleague Made It", daily_limit_per_inbox = 10 })
            assert.equal(201, st)
          end
        end,
      }
      sb:fault { kind = "close_before", method = "POST", path = "^/campaigns$", times = 1,
        key = "cs_test_colleague_spec_key" }
      local c = assert(cs:create_campaign { name = "Colleague Made It", daily_limit_per_inbox = 50 })
      local ours, theirs = 0, 0
      for _, x in ipairs(named(cs, "Colleague Made It")) do
        local got = assert(cs:get_campaign(x.campaign_id))
        if got.daily_limit_per_inbox == 50 then ours = ours + 1 else theirs = theirs + 1 end
        if x.campaign_id ~= c.id then assert.equal(10, got.daily_limit_per_inbox) end
      end
      assert.same({ 1, 1 }, { ours, theirs })
    end)
  end)

  describe("repro 18: a re-sent launch or delete that meets its own work", function()
    local function ready(cs)
      local ib = assert(cs:add_smtp_inbox { email_address = "s@example.com", display_name = "S",
        inbox_type = "CUSTOM_SMTP", smtp_host = "smtp.example.com", smtp_port = 587,
        smtp_username = "s", smtp_password = "pw", imap_host = "imap.example.com", imap_port = 993,
        imap_username = "s", imap_password = "pw" })
      local c = assert(cs:create_campaign { name = "Launch retry test", inbox_ids = { ib.inbox_id },
        variants = { { subject_template = "Hi", email_content = "Hello there, friend" } } })
      assert(c:add_lead { email = "lead@example.com" })
      return c
    end

    it("launch() succeeds when the first try launched (502 after acting), with its changes", function()
      local cs = env.client()
      local c = ready(cs)
      c.daily_limit_per_inbox = 40 -- a pending change, sent with the launch
      sb:fault { kind = "status", status = 502, method = "PUT", after = true, times = 1 }
      local ok, err = c:launch()
      assert.is_nil(err)
      assert.equal(c, ok)
      assert.equal("ACTIVE", c.status)
      local got = assert(cs:get_campaign(c.id))
      assert.equal("ACTIVE", got.status)
      assert.equal(40, got.daily_limit_per_inbox)
    end)

    it("launch() succeeds when the connection closed after the server launched", function()
      local cs = env.client()
      local c = ready(cs)
      sb:fault { kind = "close_before", method = "PUT", after = true, times = 1 }
      assert(c:launch())
      assert.equal("ACTIVE", assert(cs:get_campaign(c.id)).status)
    end)

    it("delete() succeeds when the first try deleted and the answer was lost", function()
      local cs = env.client()
      local d = assert(cs:create_campaign { name = "Delete retry test" })
      sb:fault { kind = "close_before", method = "DELETE", after = true, times = 1 }
      assert.is_true(d:delete())
      local _, err = cs:get_campaign(d.id)
      assert.equal("not_found", err.code)
    end)

    it("delete() of a campaign that never existed is still not_found", function()
      local cs = env.client()
      local ok, err = cs:campaign(ID):delete()
      assert.is_nil(ok)
      assert.equal("not_found", err.code)
    end)
  end)

  describe("repro 08: waits the server states", function()
    it("a year of Retry-After is not slept through: rate_limited with retry_after", function()
      local ft = env.fake_time()
      local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock,
        max_retries = 3 }
      local id = env.campaign()
      sb:fault { kind = "status", status = 429, retry_after = 31536000, times = 0, method = "GET" }
      local c, err = cs:get_campaign(id)
      assert.is_nil(c)
      assert.equal("rate_limited", err.code)
      assert.equal(31536000, err.retry_after)
      assert.equal(0, ft.total())
    end)

    it("an X-RateLimit-Reset ten years ahead likewise, with the default options", function()
      local t, slept = 0, {}
      local reset = os.time() + 10 * 365 * 86400
      local cs = coldsend.client { api_key = "cs_test_abcdefgh", base_url = "http://127.0.0.1:9/api/public/v1",
        clock = function() return t end, wall_clock = function() return os.time() + t end,
        sleep = function(s) slept[#slept + 1] = s; t = t + s end,
        transport = function()
          return { status = 429, headers = { ["content-type"] = "application/json",
            ["x-ratelimit-remaining"] = "0", ["x-ratelimit-reset"] = tostring(reset) },
            body = '{"detail":"slow down"}' }
        end }
      local c, err = cs:get_campaign(ID)
      assert.is_nil(c)
      assert.equal("rate_limited", err.code)
      assert.is_true(err.retry_after > 60)
      assert.same({}, slept)
    end)

    it("the documented 429 (X-RateLimit-Reset N s ahead, body text): waits N, not a minute", function()
      local t, slept, calls = 0, {}, 0
      local base = 1.7e9
      local cs = coldsend.client { api_key = "cs_test_abcdefgh", base_url = "http://127.0.0.1:9/api/public/v1",
        clock = function() return t end, wall_clock = function() return base + t end,
        sleep = function(s) slept[#slept + 1] = s; t = t + s end,
        transport = function()
          calls = calls + 1
          if calls == 1 then
            return { status = 429, headers = { ["content-type"] = "application/json",
              ["x-ratelimit-limit"] = "100", ["x-ratelimit-remaining"] = "0",
              ["x-ratelimit-reset"] = tostring(math.floor(base + t) + 5) },
              body = '{"detail":"Rate limit exceeded. Retry after 5 seconds."}' }
          end
          return { status = 200, headers = { ["content-type"] = "application/json",
            ["x-ratelimit-limit"] = "100", ["x-ratelimit-remaining"] = "99" },
            body = cjson.encode { campaign_id = ID, name = "Waited Campaign", status = "DRAFT" } }
        end }
      assert(cs:get_campaign(ID))
      local total = 0
      for _, s in ipairs(slept) do total = total + s end
      assert.equal(5, total)
      -- and the next call goes at once: the window has reopened
      assert(cs:get_campaign(ID))
      total = 0
      for _, s in ipairs(slept) do total = total + s end
      assert.equal(5, total)
    end)

    it("a 503's Retry-After date is read on the client's wall clock, as the limiter reads it", function()
      local t, slept = 0, {}
      local base = 2.5e9 -- far from the real time: a reading on the real clock would be years
      local cs = coldsend.client { api_key = "cs_test_abcdefgh", base_url = "http://127.0.0.1:9/api/public/v1",
        max_retries = 0, clock = function() return t end, wall_clock = function() return base + t end,
        sleep = function(s) slept[#slept + 1] = s; t = t + s end,
        transport = function()
          return { status = 503, headers = { ["content-type"] = "application/json",
            ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", base + 7) },
            body = '{"detail":"busy"}' }
        end }
      local c, err = cs:get_campaign(ID)
      assert.is_nil(c)
      assert.equal(7, err.retry_after)
    end)

    it("err.retry_after is the wait the client takes", function()
      local ft = env.fake_time()
      local waits = {}
      local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock,
        max_retries = 2, on_retry = function(e) waits[#waits + 1] = e.delay end }
      local id = env.campaign()
      sb:fault { kind = "status", status = 429, retry_after = 42, times = 0, method = "GET" }
      local _, err = cs:get_campaign(id)
      assert.equal("rate_limited", err.code)
      assert.same({ 42, 42 }, waits)
      assert.same({ 42, 42 }, ft.slept)
      assert.equal(42, err.retry_after)
    end)
  end)

  describe("repro 23: an upload job that never finishes", function()
    it("stops waiting after wait_timeout and returns the job's last state", function()
      local JOB = "2b4e28ba-2fa1-41d2-883f-0016d3cca427"
      local t, polls = 0, 0
      local cs = coldsend.client { api_key = "cs_test_abcdefgh", base_url = "http://127.0.0.1:9/api/public/v1",
        rate_limit = false,
        clock = function() return t end, wall_clock = function() return 1.7e9 + t end,
        sleep = function(s) t = t + s; assert(t < 30 * 86400, "still polling") end,
        transport = function(req)
          if req.method == "GET" and req.url:match("/upload/") then polls = polls + 1 end
          if req.method == "GET" and not req.url:match("/upload/") then
            return { status = 200, headers = { ["content-type"] = "application/json" },
              body = cjson.encode { campaign_id = ID, lead_batches = {} } }
          end
          return { status = 200, headers = { ["content-type"] = "application/json" },
            body = ('{"job_id":"%s","status":"PENDING","total_count":1,"processed_count":0}'):format(JOB) }
        end }
      local path = util.write_tmp("email\na@example.com\n")
      local job, err = cs:campaign(ID):upload_leads { file = path, state_file = false }
      assert.is_nil(job)
      assert.equal("timeout", err.code)
      assert.equal("PENDING", err.job.status)
      local limit = require("coldsend.leads").DEFAULT_WAIT_TIMEOUT
      assert.is_true(t >= limit - 1 and t <= limit + 1, "waited " .. t)
      assert.is_true(polls > 1)
      -- wait_timeout chooses another limit
      t = 0
      job, err = cs:campaign(ID):upload_leads { file = path, state_file = false, wait_timeout = 10,
        poll_interval = 1 }
      assert.is_nil(job)
      assert.equal("timeout", err.code)
      assert.is_true(t <= 11)
    end)
  end)

  describe("create_campaign{...}", function()
    it("reports a bad field at the caller's line and creates nothing", function()
      local cs = env.client()
      local log = #sb:log()
      local ok, why = pcall(function()
        local c = cs:create_campaign { name = "Bad Field Campaign", daily_limit_per_inbox = 150 }
        return c -- not a tail call: the line is this one
      end)
      assert.is_false(ok)
      assert.matches("^spec/data_safety_spec%.lua:%d+: bad value for 'daily_limit_per_inbox' "
        .. "%(integer 1%.%.100 expected, got 150%)$", why)
      assert.equal(log, #sb:log())
    end)
  end)

  describe("validate()", function()
    it("returns an invalid error whose text lists every problem", function()
      local cs = env.client()
      local c = cs:campaign()
      c.name = "Invalid Campaign Name"
      c.variants = { { subject_template = "A", email_content = "The body of A", distribution_percent = 60 },
                     { subject_template = "B", email_content = "The body of B", distribution_percent = 30 } }
      c.sending_window_start = 18
      local ok, err = c:validate()
      assert.is_nil(ok)
      assert.is_true(coldsend.is_error(err))
      assert.equal("invalid", err.code)
      assert.equal(2, #err.problems)
      local text = tostring(err)
      assert.matches("variants: distribution_percent values sum to 90, 100 expected", text, 1, true)
      assert.matches("sending_window_end: window end 17:00 must be after its start 18:00", text, 1, true)
      local raised = select(2, pcall(function() assert(c:validate()) end))
      assert.matches("sum to 90", tostring(raised), 1, true)
      -- save() sends nothing and says the same
      local since = #sb:log()
      local saved, serr = c:save()
      assert.is_nil(saved)
      assert.matches("sum to 90", tostring(serr), 1, true)
      assert.equal(since, #sb:log())
    end)
  end)
end)
