-- attack_writes_spec: attacks on the write-once rules (issue 12): the one
-- create routine (coldsend.writes.create_campaign), the write-once post()
-- of leads, inboxes and state changes, the launch reconciliation, and the
-- waits of the request loop (max_wait, deadline). Against the sandbox with
-- the real libcurl transport; where a server must misbehave in a way the
-- sandbox cannot (a skewed Date header), the real transport is wrapped.
--
-- Tests marked `-- Regression (was a defect):` failed before the fix they
-- describe (the file:line references are to the code as it was then). The
-- others are attacks the code survived.
local sandbox = require "spec.helpers.sandbox"
local cases = require "spec.helpers.fault_cases"
local util = require "spec.helpers.util"
local coldsend = require "coldsend"
local core = require "coldsend.core"
local retry = require "coldsend.retry"
local cjson = require "cjson"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"

local VARIANT = { subject_template = "Our subject", email_content = "Our body, for our leads" }

describe("attacks on the write-once rules", function()
  local sb, env

  local hooks = sandbox.hooks({ rate_limit = false }, function(s)
    sb = s
    env = cases.env(sb)
  end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  -- campaigns whose name is exactly `name`, by the sandbox's own list
  local function named(name)
    local out, page = {}, 1
    while true do
      local status, body = sb:request("GET", "/campaigns?limit=100&page=" .. page .. "&search="
        .. name:gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end))
      assert.equal(200, status)
      for _, c in ipairs(body.campaigns) do
        if c.name == name then out[#out + 1] = c.campaign_id end
      end
      if not body.pagination.has_next then break end
      page = page + 1
    end
    return out
  end

  local function made(name, fields)
    local body = { name = name }
    for k, v in pairs(fields or {}) do body[k] = v end
    local status, got = sb:request("POST", "/campaigns", body)
    assert.equal(201, status, cjson.encode(got))
    return got.campaign_id
  end

  local function server_campaign(id)
    local status, body = sb:request("GET", "/campaigns/" .. id)
    assert.equal(200, status)
    return body
  end

  -- the last log entry's seq: what happened before the call under attack
  local function mark()
    local log = sb:log()
    return #log > 0 and log[#log].seq or 0
  end

  -- requests the API acted on (since seq `since`)
  local function processed(method, pattern, since)
    local n = 0
    for _, e in ipairs(sb:log(since)) do
      if e.method == method and (e.path or ""):find(pattern) and e.processed then n = n + 1 end
    end
    return n
  end

  local INBOX = {
    email_address = "sender@example.com", display_name = "Sender", inbox_type = "CUSTOM_SMTP",
    smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = "sender",
    smtp_password = "old-password", imap_host = "imap.example.com", imap_port = 993,
    imap_username = "sender", imap_password = "old-password",
  }

  -- the real libcurl transport, its answers passed through `edit(req, res)`
  local function wrapped(edit)
    local real = core.http {}
    return function(req)
      local res, msg, code, info = real(req)
      if res then edit(req, res) end
      return res, msg, code, info
    end
  end

  describe("the create's look-up", function()
    it("adopts only its own campaign among names that differ in case, spacing, unicode or length", function()
      local name = "Weekly Newsletter"
      local others = {
        made("weekly newsletter", { daily_limit_per_inbox = 7 }),
        made("Weekly Newsletter ", { daily_limit_per_inbox = 7 }),
        made(" Weekly Newsletter", { daily_limit_per_inbox = 7 }),
        made("Weekly Newsletter 2", { daily_limit_per_inbox = 7 }),
        made("Weekly Newsletter\204\129" --[[ U+0301 ]], { daily_limit_per_inbox = 7 }),
        made("WEEKLY NEWSLETTER", { daily_limit_per_inbox = 7 }),
      }
      local cs = env.client()
      local since = mark()
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = name, daily_limit_per_inbox = 30, variants = { VARIANT } }
      assert.is_nil(err)
      assert.equal(1, processed("POST", "^/campaigns$", since))
      assert.same({ c.id }, named(name))
      for _, id in ipairs(others) do
        assert.are_not.equal(id, c.id)
        local got = server_campaign(id)
        assert.equal(7, got.daily_limit_per_inbox)
        assert.equal(0, #got.variants)
      end
      assert.equal(30, server_campaign(c.id).daily_limit_per_inbox)
    end)

    it("pages through more than 100 same-named campaigns and still adopts only its own", function()
      local name = "Paged Same Name"
      local old = {}
      for i = 1, 130 do old[i] = made(name, { daily_limit_per_inbox = 5 }) end
      local cs = env.client()
      local since = mark()
      sb:fault { kind = "close_before", method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = name, daily_limit_per_inbox = 40, variants = { VARIANT } }
      assert.is_nil(err)
      assert.equal(1, processed("POST", "^/campaigns$", since))
      assert.equal(131, #named(name))
      for _, id in ipairs(old) do assert.are_not.equal(id, c.id) end
      assert.equal(0, sb:count("PUT", "^/campaigns/" .. old[1]))
      local got = server_campaign(c.id)
      assert.equal(40, got.daily_limit_per_inbox)
      assert.equal(1, #got.variants)
    end)

    it("works without a Date header (the clock cannot decide; the snapshot does)", function()
      local name = "No Date Header Campaign"
      local old = made(name)
      local cs = env.client { transport = wrapped(function(_, res) res.headers.date = nil end) }
      local since = mark()
      sb:fault { kind = "status", status = 504, method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = name, variants = { VARIANT } }
      assert.is_nil(err)
      assert.are_not.equal(old, c.id)
      assert.equal(1, processed("POST", "^/campaigns$", since))
      assert.equal(0, #server_campaign(old).variants)
    end)

    it("does not create a second campaign when the Date header runs a few seconds ahead of created_at", function()
      -- Regression (was a defect): made_since (lua/coldsend/writes.lua:145-148) drops a new
      -- campaign whose created_at is before the snapshot's Date. A gateway
      -- (load balancer, CDN) that sets Date from a clock 5 s ahead of the
      -- application's makes our own new campaign look older than the
      -- snapshot: the look-up finds "nothing", the POST is sent again and
      -- the server holds two campaigns. Input: Date = true time + 5 s, a 503
      -- after the server created the campaign. Expected: 1 campaign, 1
      -- processed POST. Actual: 2 of each.
      local name = "Skewed Date Campaign"
      local cs = env.client { transport = wrapped(function(_, res)
        local t = retry.parse_http_date(res.headers.date)
        if t then res.headers.date = os.date("!%a, %d %b %Y %H:%M:%S GMT", t + 5) end
      end) }
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$", after = true }
      local c = cs:create_campaign { name = name }
      assert.equal(1, processed("POST", "^/campaigns$"))
      assert.equal(1, #named(name))
      assert.is_not_nil(c)
    end)

    it("does not adopt and overwrite a colleague's campaign made while its own POST failed", function()
      -- Regression (was a defect): the look-up (writes.lua:166-176) takes any single
      -- same-named campaign not in the snapshot as the one its POST made,
      -- without checking that it holds what the POST sent. Input: our POST
      -- is lost before the server acts (connection closed, not processed);
      -- meanwhile a colleague creates "Shared Name Campaign" with
      -- daily_limit_per_inbox = 10. Expected: the colleague's campaign is
      -- left alone (ours is created, or an `ambiguous` error). Actual: it is
      -- adopted, returned as ours, and our PUT overwrites its settings and
      -- variants (daily_limit 50 and our variant on the colleague's campaign).
      local name = "Shared Name Campaign"
      local theirs
      local cs = env.client {
        api_key = "cs_test_our_own_client_key",
        on_request = function(e)
          if e.method == "POST" and e.url:match("/campaigns$") and not theirs then
            theirs = made(name, { daily_limit_per_inbox = 10 })
          end
        end,
      }
      sb:fault { kind = "close_before", method = "POST", path = "^/campaigns$",
        key = "cs_test_our_own_client_key" }
      local c = cs:create_campaign { name = name, daily_limit_per_inbox = 50, variants = { VARIANT } }
      assert.is_string(theirs)
      local got = server_campaign(theirs)
      assert.equal(10, got.daily_limit_per_inbox)
      assert.equal(0, #got.variants)
      if c then assert.are_not.equal(theirs, c.id) end
    end)

    it("looks up (or reports the campaign) when a 2xx after the create lacks campaign_id", function()
      -- Regression (was a defect): writes.lua:189-192 turns a 2xx answer without a
      -- campaign_id into a plain `protocol` error: no look-up, no
      -- err.ambiguous, no err.campaign, although the server created the
      -- campaign (issue 12: "an unreadable 2xx" makes a POST ambiguous).
      -- Input: a 201 {"success": true} after the server acted. Expected:
      -- the campaign found and returned (or err.ambiguous / its id in the
      -- error). Actual: protocol error carrying nothing; a retry by the
      -- caller creates a second campaign.
      local name = "Answer Without Id Campaign"
      local cs = env.client()
      sb:fault { kind = "status", status = 201, body = { success = true }, method = "POST",
        path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = name, variants = { VARIANT } }
      local ids = named(name)
      assert.equal(1, #ids)
      if c then
        assert.equal(ids[1], c.id)
        assert.equal(1, #server_campaign(c.id).variants)
      else
        assert.is_true(err.ambiguous == true or (err.campaign and err.campaign.id == ids[1])
          or (err.candidates and err.candidates[1] == ids[1]), tostring(err))
      end
    end)

    it("a save() retried on the same handle after an undecided create does not create a second campaign", function()
      -- Regression (was a defect): when the look-up after an ambiguous POST fails, save()
      -- returns the POST's error (code `unavailable`, err.ambiguous) and the
      -- handle forgets its snapshot; retrying c:save() (what a caller does
      -- with an `unavailable`) takes a new snapshot that already holds the
      -- first campaign, so the second POST makes a second one
      -- (writes.lua:163, a new snapshot per call). Input: POST 503
      -- after acting, the look-up's list GET failing 4 times (max_retries
      -- 3), then c:save() again. Expected: 1 campaign of that name.
      -- Actual: 2.
      local name = "Retried Save Campaign"
      local cs = env.client()
      local c = cs:campaign()
      c.name = name
      c:add_variant(VARIANT)
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$", after = true }
      -- the snapshot's list passes, the look-up's fails every try
      sb:fault { kind = "status", status = 500, method = "GET", path = "^/campaigns$", skip = 1, times = 4 }
      local ok, err = c:save()
      assert.is_nil(ok)
      assert.is_true(err.ambiguous)
      assert.equal(1, #named(name))
      local again = c:save()
      assert.equal(1, #named(name))
      if again then assert.equal(named(name)[1], again.id) end
    end)

    it("an error after the look-up found the campaign names it", function()
      -- Regression (was a defect): after the look-up found the one campaign the POST made,
      -- the GET of it (writes.lua:183-185) failing returns that GET's
      -- error alone: no err.campaign, no err.candidates, no id, and the
      -- handle has no id. The caller cannot know a campaign was made.
      -- Input: POST 503 after acting, GET /campaigns/{id} failing 4 times.
      -- Expected: the error names the campaign (err.campaign.id or
      -- err.candidates). Actual: a `server` error with neither.
      local name = "Found Then Unreadable"
      local cs = env.client()
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$", after = true }
      sb:fault { kind = "status", status = 500, method = "GET", path = "^/campaigns/[%x%-]+$", times = 4 }
      local c, err = cs:create_campaign { name = name, variants = { VARIANT } }
      assert.is_nil(c)
      local id = named(name)[1]
      assert.is_string(id)
      local named_in_err = (err.campaign and err.campaign.id == id)
        or (type(err.candidates) == "table" and err.candidates[1] == id)
      assert.is_true(named_in_err, tostring(err))
    end)

    it("save() of one local definition from two coroutines makes one campaign", function()
      -- Regression (was a defect): nothing marks a local definition as being created, so a
      -- second save() while the first is in flight (a transport that
      -- yields, as under OpenResty; here the real libcurl transport behind
      -- a coroutine.yield) runs the whole create routine again
      -- (init.lua:727-731, writes.lua:159-165): both take a snapshot, both
      -- POST. Input: c:save() started in two coroutines, resumed in turn.
      -- Expected: one campaign (the second save waits, returns the first's
      -- result, or fails). Actual: two campaigns; the handle keeps the
      -- second id, the first campaign is orphaned.
      -- (under PUC Lua 5.1 too, which cannot yield across pcall: the create
      -- runs in a coroutine of its own whose yields are passed on)
      local real = core.http {}
      local cs = env.client { transport = function(req)
        coroutine.yield()
        return real(req)
      end }
      local c = cs:campaign()
      c.name = "Two Coroutines Save"
      c:add_variant(VARIANT)
      local cos = { coroutine.create(function() return c:save() end),
                    coroutine.create(function() return c:save() end) }
      for _ = 1, 100 do
        local live = false
        for _, co in ipairs(cos) do
          if coroutine.status(co) == "suspended" then
            live = true
            assert(coroutine.resume(co))
          end
        end
        if not live then break end
      end
      assert.equal(1, #named("Two Coroutines Save"))
    end)

    it("the create's PUT failing every try: err.campaign, then a save with more changes completes it", function()
      local cs = env.client()
      local c = cs:campaign()
      c.name = "Put Fails Campaign"
      c:add_variant(VARIANT)
      sb:fault { kind = "status", status = 503, method = "PUT", times = 4 }
      local ok, err = c:save()
      assert.is_nil(ok)
      assert.equal(c, err.campaign)
      assert.matches(UUID, c.id)
      c.daily_limit_per_inbox = 33 -- changed between the failure and the retry
      assert(c:save())
      local got = server_campaign(c.id)
      assert.equal(1, #got.variants)
      assert.equal(33, got.daily_limit_per_inbox)
      assert.equal(1, #named("Put Fails Campaign"))
      assert.equal(1, sb:count("POST", "^/campaigns$"))
    end)

    it("launch() and save() of local definitions fail clearly and send nothing", function()
      local cs = env.client()
      local c = cs:campaign()
      c.name = "Never Created Launch"
      local ok, why = pcall(c.launch, c)
      assert.is_false(ok)
      assert.matches("without an id", tostring(why), 1, true)
      local d = cs:campaign()
      d:add_variant(VARIANT) -- only a field outside the create schema
      local saved, err = d:save()
      assert.is_nil(saved)
      assert.equal("invalid", err.code)
      assert.matches("name", tostring(err), 1, true)
      assert.equal(0, #sb:log())
    end)
  end)

  describe("created_at in other formats", function()
    -- our campaign's created_at in the list answers rewritten to the same
    -- instant in UTC-5, in the given format
    local function offset_created_at(fmt)
      return wrapped(function(req, res)
        if req.method == "GET" and req.url:match("/campaigns%?") then
          local body = cjson.decode(res.body)
          for _, item in ipairs(body.campaigns) do
            local at = require("coldsend.writes").parse_iso_utc(item.created_at)
            if at then item.created_at = os.date("!" .. fmt, at - 5 * 3600) end
          end
          res.body = cjson.encode(body)
        end
      end)
    end

    it("with fractional seconds and a -05:00 offset: adopts its own, sends once", function()
      local name = "Offset Created At Campaign"
      local old = made(name)
      local cs = env.client { transport = offset_created_at("%Y-%m-%dT%H:%M:%S.250-05:00") }
      local since = mark()
      sb:fault { kind = "status", status = 502, method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = name }
      assert.is_nil(err)
      assert.are_not.equal(old, c.id)
      assert.equal(1, processed("POST", "^/campaigns$", since))
      assert.equal(2, #named(name))
    end)

    it("with an hours-only offset (ISO 8601 '-05', PostgreSQL's text form): sends once", function()
      -- Regression (was a defect): writes.parse_iso_utc (writes.lua:90-100, the offset at 95) reads an offset
      -- only as +hh:mm or +hhmm; "2026-12-02T16:47:59-05" (valid ISO 8601,
      -- what PostgreSQL prints) is read as 16:47:59 UTC, five hours early.
      -- The campaign our POST made then looks older than the snapshot, the
      -- look-up drops it and the POST is sent again. Input: created_at in
      -- the "-05" form, a 502 after the server acted. Expected: 1 campaign,
      -- 1 processed POST. Actual: 2 of each.
      local name = "Hours Offset Campaign"
      local cs = env.client { transport = offset_created_at("%Y-%m-%dT%H:%M:%S-05") }
      local since = mark()
      sb:fault { kind = "status", status = 502, method = "POST", path = "^/campaigns$", after = true }
      cs:create_campaign { name = name }
      assert.equal(1, processed("POST", "^/campaigns$", since))
      assert.equal(1, #named(name))
    end)

    it("a look-up answered with garbage: the error stays ambiguous and nothing is sent again", function()
      local name = "Garbage Look-up Campaign"
      local cs = env.client()
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/campaigns$", after = true }
      sb:fault { kind = "status", status = 200, body = { success = true, campaigns = "none" },
        method = "GET", path = "^/campaigns$", skip = 1, times = 1 }
      local c, err = cs:create_campaign { name = name }
      assert.is_nil(c)
      assert.is_true(err.ambiguous)
      assert.equal("protocol", err.check_error.code)
      assert.matches("checking whether it happened failed", tostring(err), 1, true)
      assert.equal(1, processed("POST", "^/campaigns$"))
    end)
  end)

  describe("upload chunk reconciliation", function()
    local CSV = "email,first_name\na@example.com,A\nb@example.com,B\n"

    local function batches_as(shape)
      return wrapped(function(req, res)
        if req.method == "GET" and req.url:match("/campaigns/[%x%-]+$") then
          local body = cjson.decode(res.body)
          if shape == "absent" then body.lead_batches = nil
          else body.lead_batches = { by_id = body.lead_batches } end
          res.body = cjson.encode(body)
        end
      end)
    end

    it("lead_batches absent: an ambiguous chunk is reported, not sent again", function()
      local cs = env.client { transport = batches_as("absent") }
      local c = assert(cs:create_campaign { name = "Upload Without Batches" })
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads$", after = true }
      local job, err = c:upload_leads { file = util.write_tmp(CSV), state_file = false, poll_interval = 0.01 }
      assert.is_nil(job)
      assert.is_true(err.ambiguous)
      assert.equal(1, processed("POST", "/leads$"))
    end)

    it("lead_batches that is an object, not a list: the chunk is not sent twice", function()
      -- Regression (was a defect): writes.lead_batches (writes.lua:326-339, line 330) reads a
      -- lead_batches that is a table but not an array (here an object
      -- {"by_id": [...]}) as "the server lists batches, and there are
      -- none", where an absent one means "cannot tell". After a 503 that
      -- followed the server's work, the look-up finds no batch and the
      -- chunk is sent again: the server processes the upload twice (a
      -- second batch, every row a duplicate). Expected: 1 processed
      -- upload (reported ambiguous, like an absent lead_batches). Actual: 2.
      local cs = env.client { transport = batches_as("object") }
      local c = assert(cs:create_campaign { name = "Upload Odd Batches" })
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads$", after = true }
      c:upload_leads { file = util.write_tmp(CSV), state_file = false, poll_interval = 0.01 }
      assert.equal(1, processed("POST", "/leads$"))
    end)
  end)

  describe("plan():apply() and the CLI under the same faults", function()
    it("plan():apply() makes one campaign holding the whole definition after a 502 after acting", function()
      local cs = env.client()
      sb:fault { kind = "status", status = 502, method = "POST", path = "^/campaigns$", after = true }
      local p = assert(cs:plan { name = "Planned Under Fault", daily_limit_per_inbox = 12, variants = { VARIANT } })
      local c, err = p:apply()
      assert.is_nil(err)
      assert.same({ c.id }, named("Planned Under Fault"))
      assert.equal(1, processed("POST", "^/campaigns$"))
      local got = server_campaign(c.id)
      assert.equal(12, got.daily_limit_per_inbox)
      assert.equal(1, #got.variants)
    end)

    it("bin/coldsend apply --yes makes one campaign after a connection closed after acting", function()
      sb:fault { kind = "close_before", method = "POST", path = "^/campaigns$", after = true }
      local file = util.write_tmp(
        'return { name = "CLI Under Fault", daily_limit_per_inbox = 14, variants = { { subject_template = '
        .. '"Our subject", email_content = "Our body, for our leads" } } }\n')
      local rc, out, err = util.run(("cd %s && env COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s %s bin/coldsend "
        .. "apply --yes --json %s </dev/null"):format(util.q(sandbox.root), util.q(sb.key),
        util.q(sb.url), LUA, util.q(file)))
      assert.equal(0, rc, out .. err)
      local ids = named("CLI Under Fault")
      assert.equal(1, #ids)
      assert.equal(1, processed("POST", "^/campaigns$"))
      local got = server_campaign(ids[1])
      assert.equal(14, got.daily_limit_per_inbox)
      assert.equal(1, #got.variants)
    end)
  end)

  describe("leads and inboxes", function()
    it("add_smtp_inbox does not return an inbox that existed before the call", function()
      -- Regression (was a defect): writes.add_inbox's look-up (writes.lua:262-276) takes an
      -- inbox of that address whose visible fields match as the one its
      -- POST made, even when it existed before the call. Input: the
      -- address is already connected with the old password; our POST with
      -- a new password is answered 503 before the server acts. Expected:
      -- `conflict` (what the server says without the fault: 409), nothing
      -- changed. Actual: success, the old inbox returned; the new password
      -- was never stored and the caller is told it was.
      local cs = env.client()
      assert(cs:add_smtp_inbox(INBOX))
      local fields = {}
      for k, v in pairs(INBOX) do fields[k] = v end
      fields.smtp_password, fields.imap_password = "new-password", "new-password"
      sb:fault { kind = "status", status = 503, method = "POST", path = "^/sender%-accounts/smtp$" }
      local ib, err = cs:add_smtp_inbox(fields)
      assert.is_nil(ib)
      assert.equal("conflict", err and err.code)
    end)

    it("add_lead does not return a lead that existed before the call", function()
      -- Regression (was a defect): writes.add_lead's look-up (writes.lua:236-250) returns a
      -- lead of that email with the same fields as its own, even when it
      -- was there before the call (the invariant of writes.lua:24-25).
      -- Input: jane@example.com exists; add_lead of it again, answered 503
      -- before the server acts. Expected: `conflict` (the answer without
      -- the fault). Actual: success with the old lead.
      local cs = env.client()
      local c = assert(cs:create_campaign { name = "Lead Exists Before" })
      local old = assert(c:add_lead { email = "jane@example.com", first_name = "Jane" })
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads/manual$" }
      local lead, err = c:add_lead { email = "jane@example.com", first_name = "Jane" }
      assert.is_nil(lead, lead and ("returned lead " .. tostring(lead.lead_id) .. ", made before: "
        .. tostring(old.lead_id)))
      assert.equal("conflict", err.code)
    end)

    it("add_lead finds its own lead among more than 100 whose email contains it", function()
      -- Regression (was a defect): writes.add_lead looks its lead up with one page of 100
      -- (writes.lua:239-240, no paging), and the list's search is a
      -- substring match. Input: 120 leads "x<i>jo@example.com" (each
      -- contains "jo@example.com"), then add_lead{email="jo@example.com"}
      -- answered 503 after the server added it. Expected: the lead,
      -- returned once. Actual: the look-up misses it, the POST is sent
      -- again, the server answers 409, and the caller gets `conflict` for
      -- the lead it just made.
      local cs = env.client()
      local c = assert(cs:create_campaign { name = "Many Similar Leads" })
      local rows = { "email" }
      for i = 1, 120 do rows[#rows + 1] = ("x%djo@example.com"):format(i) end
      local st, job = sb:upload(c.id, table.concat(rows, "\n") .. "\n")
      assert.equal(200, st)
      assert.equal("COMPLETED", (sb:wait_job(c.id, job.job_id)).status)
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads/manual$", after = true }
      local lead, err = c:add_lead { email = "jo@example.com", first_name = "Jo" }
      assert.is_nil(err)
      assert.equal("jo@example.com", lead.email)
      assert.equal(1, processed("POST", "/leads/manual$"))
    end)

    it("add_lead finds its own lead when a custom field is a number with more than 14 digits", function()
      -- Regression (was a defect): the look-up's holds() (writes.lua:210-225) compares the
      -- lead the server returns with the Lua values sent, but the request
      -- body is encoded with 14 significant digits (src/request.c:25-27):
      -- custom_fields = { ratio = 1/3 } is stored as 0.33333333333333,
      -- which is not 1/3. Input: that lead, a 503 after the server added
      -- it. Expected: the lead returned, 1 processed POST. Actual:
      -- `conflict` "lead p@example.com exists already with other fields",
      -- err.existing being the lead this call made.
      local cs = env.client()
      local c = assert(cs:create_campaign { name = "Float Custom Field" })
      local since = mark()
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads/manual$", after = true }
      local lead, err = c:add_lead { email = "p@example.com", custom_fields = { ratio = 1 / 3 } }
      assert.is_nil(err and tostring(err))
      assert.equal("p@example.com", lead.email)
      assert.equal(1, processed("POST", "/leads/manual$", since))
    end)

    it("add_lead with a mixed-case email and custom fields, 503 after acting: once, returned", function()
      local cs = env.client()
      local c = assert(cs:create_campaign { name = "Mixed Case Lead" })
      sb:fault { kind = "status", status = 503, method = "POST", path = "/leads/manual$", after = true }
      local lead, err = c:add_lead { email = "Jane.Doe+q3@Example.COM", first_name = "Jane",
        custom_fields = { score = 5, vip = true, note = "x" } }
      assert.is_nil(err)
      assert.equal(1, processed("POST", "/leads/manual$"))
      assert.equal("Jane", lead.first_name)
      assert.equal(1, server_campaign(c.id).total_leads)
    end)

    it("pause of a DRAFT is refused, not reconciled into success; a lost resume is found by state", function()
      local cs = env.client()
      local ib = assert(cs:add_smtp_inbox(INBOX))
      local c = assert(cs:create_campaign { name = "Pause Resume Attack", inbox_ids = { ib.inbox_id },
        variants = { VARIANT } })
      local ok, err = c:pause()
      assert.is_nil(ok)
      assert.equal("bad_request", err.code)
      assert(c:add_lead { email = "lead@example.com" })
      assert(c:launch())
      assert(c:pause())
      sb:fault { kind = "close_before", method = "POST", path = "/resume$", after = true }
      assert(c:resume())
      assert.equal("ACTIVE", c.status)
      assert.equal(1, processed("POST", "/resume$"))
    end)
  end)

  describe("launch reconciliation", function()
    it("does not report success when its changes were never applied", function()
      -- Regression (was a defect): writes.reconcile_launch (writes.lua:309-314) calls a
      -- launch done when the campaign is ACTIVE after an earlier try may
      -- have acted, without checking that the changes sent with the launch
      -- hold; launch() (init.lua:756-770) then clears them. Input: a ready
      -- campaign, c.daily_limit_per_inbox = 40 pending, the launch's first
      -- PUT answered 503 before the server acts, and the campaign launched
      -- by someone else before the retry (which the server refuses: ACTIVE
      -- cannot be modified). Expected: an error, or the 40 on the server.
      -- Actual: success, c:changes() empty, the server still holds 25.
      local id
      local cs = env.client {
        on_retry = function(e)
          if e.method == "PUT" then
            local st = sb:request("PUT", "/campaigns/" .. id, { launch = true })
            assert.equal(200, st)
          end
        end,
      }
      local ib = assert(cs:add_smtp_inbox(INBOX))
      local c = assert(cs:create_campaign { name = "Launch Race Campaign", daily_limit_per_inbox = 25,
        inbox_ids = { ib.inbox_id }, variants = { VARIANT } })
      id = c.id
      assert(c:add_lead { email = "lead@example.com" })
      c.daily_limit_per_inbox = 40
      sb:fault { kind = "status", status = 503, method = "PUT", times = 1 }
      local ok = c:launch()
      local held = server_campaign(id).daily_limit_per_inbox
      if ok then assert.equal(40, held) end
    end)
  end)

  describe("waits", function()
    it("max_wait checks its value as client and per-call option, naming it", function()
      for _, bad in ipairs { 0 / 0, -1, 0, math.huge, "5", true } do
        local ok, why = pcall(coldsend.client, { api_key = sb.key, base_url = sb.url, max_wait = bad })
        assert.is_false(ok)
        assert.matches("max_wait", tostring(why), 1, true)
        local cs = env.client()
        ok, why = pcall(cs.get_campaign, cs, "1b4e28ba-2fa1-41d2-883f-0016d3cca427", { max_wait = bad })
        assert.is_false(ok)
        assert.matches("max_wait", tostring(why), 1, true)
      end
      assert.equal(0, #sb:log())
    end)

    it("err.retry_after is the wait slept for a 429 on the create, per-call max_wait honoured", function()
      local ft = env.fake_time()
      local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock }
      sb:fault { kind = "status", status = 429, retry_after = 90, method = "POST", path = "^/campaigns$" }
      local c, err = cs:create_campaign { name = "Rate Limited Create" }
      assert.is_nil(c)
      assert.equal("rate_limited", err.code)
      assert.equal(90, err.retry_after)
      assert.same({}, ft.slept)
      sb:fault { kind = "status", status = 429, retry_after = 90, method = "POST", path = "^/campaigns$" }
      assert(cs:create_campaign({ name = "Rate Limited Create" }, { max_wait = 120 }))
      assert.same({ 90 }, ft.slept)
      assert.equal(1, #named("Rate Limited Create"))
    end)

    it("the client's own backoff longer than max_wait is capped, not reported as the server's ask", function()
      -- Regression (was a defect): Client:_send (init.lua:458-462) compares the jittered
      -- backoff with max_wait like a server's stated wait: a GET answered
      -- 503 without any stated wait, with backoff_base = backoff_cap = 10
      -- and max_wait = 1, returns at once with the message "the server
      -- asks to wait 9 s" and err.retry_after = 9, though the server asked
      -- nothing (doc/reliability.md: max_wait caps "a server's ask or the
      -- client-side limiter"). Expected: retried after a wait of at most
      -- max_wait, success. Actual: `unavailable` error, no retry.
      local ft = env.fake_time()
      local cs = env.client { clock = ft.clock, sleep = ft.sleep, wall_clock = ft.wall_clock,
        backoff_base = 10, backoff_cap = 10, max_wait = 1, random = function() return 0.9 end }
      local id = env.campaign()
      sb:fault { kind = "status", status = 503, method = "GET", times = 1 }
      local c, err = cs:get_campaign(id)
      assert.is_nil(err and tostring(err))
      assert.equal(id, c.id)
      for _, s in ipairs(ft.slept) do assert.is_true(s <= 1, "slept " .. s) end
    end)

    it("a create call's deadline bounds the whole call, not each request of it", function()
      -- Regression (was a defect): the create routine (writes.lua) makes several requests
      -- (snapshot GET, POST, PUT), each through Client:_send, whose
      -- deadline starts anew per request (init.lua:361-362). README: the
      -- deadline is "seconds for a whole call, sleeps included". Input: a
      -- server taking 0.7 s per answer (a clock that moves 0.7 s per
      -- request), deadline = 1. Expected: the call stops with
      -- err.deadline once 1 s has passed. Actual: it succeeds after 2.1 s.
      local t = 0
      local real = core.http {}
      local cs = env.client {
        deadline = 1,
        clock = function() return t end,
        sleep = function(s) t = t + s end,
        transport = function(req)
          local res, msg, code, info = real(req)
          t = t + 0.7
          return res, msg, code, info
        end,
      }
      local c, err = cs:create_campaign { name = "Deadline Bounded Create", variants = { VARIANT } }
      if c then
        assert.is_true(t <= 1, ("the call took %.1f s with a deadline of 1 s"):format(t))
      else
        assert.is_true(err.deadline)
      end
    end)
  end)

  describe("the docs of the new options", function()
    it("doc/leads.md and the README's option lists say what the code does", function()
      -- Regression (was a defect): doc/leads.md:56 still gives `wait_timeout` the default
      -- "none" (the code: leads.DEFAULT_WAIT_TIMEOUT = 3600 s,
      -- lua/coldsend/leads.lua:25), and neither doc/leads.md:57 nor the
      -- README's option lists (README.md:66-82) name `max_wait`, which
      -- both accept (init.lua:97, 205; leads.lua:34).
      local leads_doc = assert(util.slurp(sandbox.root .. "/doc/leads.md"))
      local row = leads_doc:match("\n(| `wait_timeout` |[^\n]*)")
      assert.is_string(row)
      assert.matches(tostring(require("coldsend.leads").DEFAULT_WAIT_TIMEOUT), row, 1, true)
      local per_request = leads_doc:match("\n(| `timeout`, `connect_timeout`[^\n]*)")
      assert.matches("max_wait", per_request, 1, true)
      local readme = assert(util.slurp(sandbox.root .. "/README.md"))
      local api = readme:match("## The API(.-)| call |")
      assert.matches("max_wait", api, 1, true)
    end)
  end)

  describe("a transport answering malformed tables", function()
    it("headers that are not a table give an error, not a Lua crash", function()
      -- Regression (was a defect): Client:_send (init.lua:421) indexes res.headers before
      -- any check: a transport returning { status = 200, headers = 42 }
      -- raises "attempt to index a number value (local 'rh')" instead of
      -- a `protocol` error (or a misuse message naming res.headers).
      local cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false,
        transport = function() return { status = 200, headers = 42, body = "{}" } end }
      local ok, a, b = pcall(cs.get_campaign, cs, "1b4e28ba-2fa1-41d2-883f-0016d3cca427")
      if ok then
        assert.is_nil(a)
        assert.equal("protocol", b.code)
      else
        assert.matches("headers", tostring(a), 1, true)
        assert.not_matches("attempt to index", tostring(a), 1, true)
      end
    end)

    it("a Date header that is not a string and a list with junk items do not break the look-up", function()
      local cs = env.client { transport = wrapped(function(req, res)
        res.headers.date = { "not", "a", "date" }
        if req.method == "GET" and req.url:match("/campaigns%?") then
          local body = cjson.decode(res.body)
          table.insert(body.campaigns, 1, "junk")
          table.insert(body.campaigns, 1, { name = "Junk Tolerant Create", campaign_id = "not-a-uuid" })
          table.insert(body.campaigns, 1, { name = { "x" }, campaign_id = 7 })
          res.body = cjson.encode(body)
        end
      end) }
      sb:fault { kind = "status", status = 500, method = "POST", path = "^/campaigns$", after = true }
      local c, err = cs:create_campaign { name = "Junk Tolerant Create" }
      assert.is_nil(err)
      assert.same({ c.id }, named("Junk Tolerant Create"))
      assert.equal(1, processed("POST", "^/campaigns$"))
    end)
  end)
end)
