-- hostile_input_spec: bad input is refused before it is sent, and what is
-- sent goes out unchanged (exact numbers, no forged markers); request paths
-- cannot leave the API base; the upload state file is never written through
-- a planted link; the sandbox survives more connections than select() can
-- watch and trims uploaded cells in linear time. Against the sandbox over
-- loopback with the real libcurl transport.
local socket = require "socket"
local coldsend = require "coldsend"
local core = require "coldsend.core"
local json = require "coldsend.json"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local is54 = math.type ~= nil

describe("hostile input", function()
  local sb, cs, c
  local hooks = sandbox.hooks({ rate_limit = false }, function(s) sb = s end)
  setup(hooks.setup)
  teardown(function()
    hooks.teardown()
    util.cleanup()
  end)
  before_each(function()
    hooks.before_each()
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false, max_retries = 0 }
    c = assert(cs:create_campaign { name = "Hostile input spec" })
  end)

  local function last()
    local log = sb:log()
    return log[#log], #log
  end

  describe("numbers", function()
    it("sends custom_fields integers and floats exactly and reads them back exactly", function()
      local fields = { phone = 4915112345678901, ratio = 0.1 + 0.2, small = 7, tiny = 1e-300 }
      if is54 then fields.crm_id = 123456789012345678 end
      local lead = assert(c:add_lead { email = "exact@example.com", custom_fields = fields })
      assert.same(fields, lead.custom_fields) -- as the client reads the answer
      if is54 then assert.equal("integer", math.type(lead.custom_fields.crm_id)) end
      local cf = last().body.custom_fields
      assert.equal(4915112345678901, cf.phone)
      assert.equal(0.1 + 0.2, cf.ratio)
      assert.equal(7, cf.small)
      assert.equal(1e-300, cf.tiny)
      if is54 then
        assert.equal(123456789012345678, cf.crm_id)
        assert.equal("integer", math.type(cf.crm_id))
      end
    end)

    it("refuses, without sending, a float integer beyond 2^53 (it has lost digits)", function()
      local _, before = last()
      local lead, err = c:add_lead { email = "big@example.com",
        custom_fields = { crm_id = 2 ^ 60 + 0.0 } }
      assert.is_nil(lead)
      assert.equal("invalid", err.code)
      assert.matches("custom_fields.crm_id", err.message, 1, true)
      assert.matches("2^53", err.message, 1, true)
      assert.matches("1152921504606846976", err.message, 1, true)
      local _, after = last()
      assert.equal(before, after)
    end)

    it("refuses a float 2^53, which 2^53 + 1 also reads as, and sends 2^53 - 1", function()
      -- Lua 5.1, 5.2 and LuaJIT read 9007199254740993 as 2^53: only values
      -- below 2^53 are known to be the number written
      local _, before = last()
      local lead, err = c:add_lead { email = "edge@example.com",
        custom_fields = { crm_id = 2 ^ 53 + 0.0 } }
      assert.is_nil(lead)
      assert.equal("invalid", err.code)
      assert.matches("custom_fields.crm_id", err.message, 1, true)
      assert.matches("9007199254740992", err.message, 1, true)
      local _, after = last()
      assert.equal(before, after)
      assert(c:add_lead { email = "edge@example.com", custom_fields = { crm_id = 2 ^ 53 - 1 } })
      assert.equal(2 ^ 53 - 1, last().body.custom_fields.crm_id)
    end)

    it("sends a float page or limit as an integer", function()
      assert(cs:list_campaigns { page = 2.0, limit = 10.0 })
      local e = last()
      assert.equal("2", e.query.page)
      assert.equal("10", e.query.limit)
      assert.matches("page=2&", core.build_request("http://x", "GET", "/a", nil,
        { page = 2.0, z = 1 }).url, 1, true)
    end)

    it("refuses NaN and infinities in a query or a body, naming where", function()
      assert.has_error(function() core.build_request("http://x", "GET", "/a", nil, { page = 0 / 0 }) end,
        "bad query value for 'page' (finite number expected, got nan)")
      local ok, msg = pcall(core.build_request, "http://x", "POST", "/a", { a = { b = math.huge } })
      assert.is_false(ok)
      assert.matches("'a.b'.*finite number expected, got inf", msg)
    end)
  end)

  describe("queries", function()
    it("checks list_inboxes' query", function()
      local _, before = last()
      for _, case in ipairs {
          { { page = 0 / 0 }, "bad value for 'page' (integer >= 1 expected, got nan)" },
          { { limit = 1e9 }, "bad value for 'limit' (integer 1..100 expected, got 1" },
          { { page = 0 }, "bad value for 'page' (integer >= 1 expected, got 0)" },
          { { bogus = "x\r\n" }, "unknown query field 'bogus' for list_inboxes" },
          { { page = "2" }, "bad value for 'page' (integer >= 1 expected, got 2)" } } do
        local ok, msg = pcall(cs.list_inboxes, cs, case[1])
        assert.is_false(ok)
        assert.matches(case[2], msg, 1, true)
      end
      local _, after = last()
      assert.equal(before, after)
      assert(cs:list_inboxes { page = 1.0, limit = 5 })
      assert.same({ page = "1", limit = "5" }, last().query)
    end)

    it("takes only real dates for analytics", function()
      for _, d in ipairs { "2024-13-45", "2023-02-29", "2024-04-31", "0000-01-01", "2024-00-10" } do
        local ok, msg = pcall(cs.timeline, cs, { from_date = d })
        assert.is_false(ok)
        assert.matches("bad value for 'from_date' (a real date YYYY-MM-DD expected, got \"" .. d .. "\")",
          msg, 1, true)
      end
      assert(cs:timeline { from_date = "2024-02-29", to_date = "2024-03-01" })
      assert(cs:campaign_analytics { from_date = "2024-12-31" })
    end)
  end)

  describe("lead fields", function()
    it("refuses invalid UTF-8 without sending it", function()
      local _, before = last()
      for _, bad in ipairs { "Jos\233", "\192\175", "\237\160\128", "\244\144\128\128", "ok\226\130" } do
        local lead, err = c:add_lead { email = "utf@example.com", first_name = bad }
        assert.is_nil(lead)
        assert.equal("invalid", err.code)
        assert.matches("bad value for 'first_name' (valid UTF-8 expected", err.message, 1, true)
        lead, err = c:add_lead { email = "utf@example.com", custom_fields = { note = bad } }
        assert.is_nil(lead)
        assert.matches("custom_fields.note", err.message, 1, true)
        local _, uerr = cs:update_lead(c.id, "550e8400-e29b-41d4-a716-446655440000",
          { company = bad })
        assert.equal("invalid", uerr.code)
      end
      local _, after = last()
      assert.equal(before, after)
      assert(c:add_lead { email = "utf@example.com", first_name = "José 日本 🎉" })
      assert.equal("José 日本 🎉", last().body.first_name)
    end)

    it("sends strings that look like the internal markers unchanged", function()
      local strange = { a = "\0coldsend:[]", b = "\0coldsend:1", c = 'x"\0coldsend:2"', d = "[]" }
      assert(c:add_lead { email = "marker@example.com", custom_fields = strange })
      assert.same(strange, last().body.custom_fields)
      -- the campaign's own empty arrays still go out as []
      local req = c:_request("save", sb.url)
      assert.is_nil(req.body:find("coldsend:", 1, true))
      c.sequences = {}
      req = c:_request("save", sb.url)
      assert.truthy(req.body:find('"sequences":[]', 1, true))
      assert.same(strange, json.decode(json.encode(strange)))
    end)

    it("checks add_lead's call options", function()
      assert.has_error(function() c:add_lead({ email = "o@example.com" }, { timout = 1 }) end,
        "unknown option 'timout' for call; did you mean 'timeout'?")
      assert.has_error(function() c:add_lead({ email = "o@example.com" }, { max_retries = -1 }) end)
      assert.has_error(function() c:add_lead({ email = "o@example.com" }, "fast") end)
    end)
  end)

  describe("answers", function()
    it("takes a 200 with an empty body as a protocol error, not as a campaign", function()
      sb:fault { kind = "status", status = 200, body = "", times = 1, path = "/campaigns/" .. c.id }
      local got, err = cs:get_campaign(c.id)
      assert.is_nil(got)
      assert.equal("protocol", err.code)
      assert.matches("an empty body", err.message, 1, true)
    end)
  end)

  describe("cs:request paths", function()
    it("refuses encoded dot segments, path parameters, ? and # before sending", function()
      local _, before = last()
      for _, p in ipairs { "/campaigns/../../__sandbox/log", "/campaigns/%2e%2e/%2e%2e/__sandbox/log",
          "/campaigns/%2E%2E%2F%2E%2E%2Fadmin", "/domains/x?admin=true#", "/domains/..;/admin",
          "/domains/.;x/a", "/a/%252e%252e/b", "/a#frag", "/a%", "/a%g1", "/a\\..\\b", "/a/%00" } do
        local ok, msg = pcall(cs.request, cs, "GET", p)
        assert.is_false(ok, p)
        assert.matches("bad argument #2 to 'request'", msg, 1, true)
      end
      local _, after = last()
      assert.equal(before, after)
      assert(cs:request("GET", "/campaigns", nil, { limit = 1 }))
      assert(cs:request("GET", "/campaigns/" .. c.id))
    end)
  end)

  describe("the upload state file", function()
    it("is never written through a planted .tmp link and is private", function()
      local dir = util.tmp_path()
      os.remove(dir)
      assert(os.execute("mkdir " .. util.q(dir)))
      local csv = util.write(dir .. "/leads.csv", "Email\nz@example.com\n")
      local victim = util.write(dir .. "/victim.txt", "precious\n")
      local state = csv .. ".coldsend-upload"
      assert(os.execute(("ln -s %s %s"):format(util.q(victim), util.q(state .. ".tmp"))))
      assert(c:upload_leads { file = csv, mapping = { email = "Email" }, poll_interval = 0.05 })
      assert.equal("precious\n", util.slurp(victim))
      local st = json.decode(assert(util.slurp(state)))
      assert.equal(1, st.version)
      local _, out = util.run("stat -c %a " .. util.q(state))
      assert.equal("600", out:match("%d+"))
      -- nothing left behind but the link and our files
      local _, ls = util.run("ls -A " .. util.q(dir))
      local names = {}
      for n in ls:gmatch("[^\n]+") do names[#names + 1] = n end
      table.sort(names)
      assert.same({ "leads.csv", "leads.csv.coldsend-upload", "leads.csv.coldsend-upload.tmp",
        "victim.txt" }, names)
      os.execute("rm -rf " .. util.q(dir))
    end)

    it("reports a state file it cannot write as an io error", function()
      local csv = util.write(util.tmp_path(), "Email\nq@example.com\n")
      local job, err = c:upload_leads { file = csv, mapping = { email = "Email" },
        state_file = "/nonexistent-dir/state" }
      assert.is_nil(job)
      assert.equal("io", err.code)
      assert.matches("/nonexistent-dir/state", err.message, 1, true)
    end)

    it("writes through core.write_private only by name, never through a link", function()
      local dir = util.tmp_path()
      os.remove(dir)
      assert(os.execute("mkdir " .. util.q(dir)))
      local victim = util.write(dir .. "/victim", "keep")
      assert(os.execute(("ln -s %s %s"):format(util.q(victim), util.q(dir .. "/target"))))
      assert.is_true(core.write_private(dir .. "/target", "new"))
      assert.equal("keep", util.slurp(victim))
      assert.equal("new", util.slurp(dir .. "/target"))
      local ok, msg = core.write_private(dir .. "/no/such/dir/x", "y")
      assert.is_nil(ok)
      assert.matches("No such file", msg, 1, true)
      assert.is_nil((core.write_private("a\0b", "y")))
      os.execute("rm -rf " .. util.q(dir))
    end)
  end)

  describe("the sandbox", function()
    it("keeps serving with more open connections than select() can watch", function()
      -- 300 connected sockets the sandbox inherits: its own descriptors
      -- then start high, and reach select()'s limit before max_connections
      local inherited, lsock = {}, assert(socket.bind("127.0.0.1", 0))
      local _, lport = lsock:getsockname()
      for _ = 1, 150 do
        local s = socket.tcp()
        assert(s:connect("127.0.0.1", lport))
        inherited[#inherited + 1] = s
        inherited[#inherited + 1] = assert(lsock:accept())
      end
      local own = sandbox.start { rate_limit = false }
      for _, s in ipairs(inherited) do s:close() end
      lsock:close()
      local socks = {}
      finally(function()
        for _, s in ipairs(socks) do s:close() end
        own:stop()
      end)
      for i = 1, 1100 do
        local s = socket.tcp()
        s:settimeout(5)
        if not s:connect("127.0.0.1", own.port) then s:close() break end
        socks[i] = s
      end
      assert.equal(1100, #socks)
      socket.sleep(0.5)
      local status = own:request("GET", "/campaigns")
      assert.equal(200, status)
      assert.is_true(sandbox.alive(own.pid))
      for _, s in ipairs(socks) do s:close() end
      socks = {}
      status = own:request("GET", "/campaigns")
      assert.equal(200, status)
    end)

    it("trims an uploaded cell with a long run of blanks, and so answers others meanwhile", function()
      local csvmod = require "coldsend.sandbox.csv"
      assert.equal("a b", csvmod.trim("  a b \t "))
      assert.equal("", csvmod.trim("   "))
      assert.equal("x", csvmod.trim("x"))
      -- 200,000 blanks: the quadratic trim took minutes here; the upload,
      -- the job and a GET in between all complete
      local cell = "a" .. string.rep(" ", 200000) .. "b"
      assert.equal(cell, csvmod.trim("  " .. cell .. "  "))
      local st, body = sb:upload(c.id, "email\n" .. cell .. "\n", { email = "email" })
      assert.equal(200, st)
      local done = sb:wait_job(c.id, body.job_id, 200)
      assert.equal("COMPLETED", done.status)
      assert.equal(1, done.error_count)
      assert.equal(200, (sb:request("GET", "/campaigns")))
    end)
  end)
end)
