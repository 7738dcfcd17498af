-- examples_spec.lua: every example runs, as a child process, against a
-- sandbox (COLDSEND_BASE_URL / COLDSEND_API_KEY set to it, LUA_PATH and
-- LUA_CPATH inherited) and prints what it promises; the OpenResty example
-- is syntax-checked and its handler run with a stand-in `ngx`.
local cjson = require "cjson"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local ROOT = sandbox.root

local q = util.q

-- Runs a command in the repository root; returns exit code, stdout, stderr.
local function run(sb, command)
  return util.run(string.format("cd %s && COLDSEND_BASE_URL=%s COLDSEND_API_KEY=%s %s </dev/null",
    q(ROOT), q(sb.url), q(sb.key), command))
end

describe("examples", function()
  local sb

  setup(function() sb = sandbox.start { rate_limit = false } end)
  teardown(function() sb:stop() end)
  before_each(function() sb:reset() end)

  it("quickstart.lua creates and launches a campaign, and runs again against the same sandbox", function()
    local rc, out, err = run(sb, LUA .. " examples/quickstart.lua")
    assert.equal(0, rc, out .. err)
    assert.matches("launched", out, 1, true)
    assert.matches("ACTIVE", out, 1, true)
    -- again, against the same sandbox: the inbox exists (409), it is reused
    local rc2, out2, err2 = run(sb, LUA .. " examples/quickstart.lua")
    assert.equal(0, rc2, out2 .. err2)
    assert.matches("launched", out2, 1, true)
    local inbox = out:match("inbox%s+(%x+%-[%x%-]+)")
    assert.truthy(inbox, out)
    assert.equal(inbox, out2:match("inbox%s+(%x+%-[%x%-]+)"))
    assert.equal(2, sb:count("POST", "^/sender%-accounts/smtp$")) -- one each run, the second refused
  end)

  it("ab_test.lua builds one variant per subject line, split evenly, then plans a fourth", function()
    local rc, out, err = run(sb, LUA .. " examples/ab_test.lua")
    assert.equal(0, rc, out .. err)
    assert.matches("variant A   34%  Quick question, {{first_name}}", out, 1, true)
    assert.matches("variant B   33%", out, 1, true)
    assert.matches("variant C   33%", out, 1, true)
    assert.matches("~ update campaign", out, 1, true)
    assert.matches("+ variants[D]", out, 1, true)
    assert.matches("~ variants[A].distribution_percent: 34 -> 25", out, 1, true)
    local puts = sb:count("PUT", "^/campaigns/")
    assert.equal(2, puts) -- the three variants, then the plan's apply
  end)

  it("followups.lua saves three follow-ups with their triggers", function()
    local rc, out, err = run(sb, LUA .. " examples/followups.lua")
    assert.equal(0, rc, out .. err)
    assert.matches("step 2    after 3 days if NOT_OPENED: A 50%, B 50%", out, 1, true)
    assert.matches("step 3    after 4 days if NOT_REPLIED: A 100%", out, 1, true)
    assert.matches("step 4    after 7 days if OPENED_BUT_NOT_REPLIED: A 100%", out, 1, true)
  end)

  it("retries_and_rate_limits.lua prints a line per request and per retry", function()
    sb:fault { kind = "status", status = 503, times = 2, method = "GET", path = "/campaigns" }
    local rc, out, err = run(sb, LUA .. " examples/retries_and_rate_limits.lua")
    assert.equal(0, rc, out .. err)
    local _, retries = out:gsub("\nretry ", "")
    assert.equal(2, retries, out)
    assert.matches("request   GET http://127.0.0.1:%d+/api/public/v1/campaigns%?limit=10 %(attempt 3%)", out)
    assert.matches("listed    0 campaigns", out, 1, true)
    assert.matches("not found not_found", out, 1, true)
    assert.is_nil(out:find(sb.key, 1, true))
  end)

  it("retries_and_rate_limits.lua fails with one line when the deadline passes", function()
    sb:fault { kind = "status", status = 503, times = 50, method = "GET", path = "/campaigns",
      retry_after = 30 }
    local rc, out = run(sb, LUA .. " examples/retries_and_rate_limits.lua")
    assert.equal(1, rc)
    assert.matches("\nfailed    [^\n]*server", out)
  end)

  it("upload_leads.lua uploads a CSV", function()
    local rc, out, err = run(sb, LUA .. " examples/upload_leads.lua")
    assert.equal(0, rc, out .. err)
  end)

  it("campaign.lua plans and applies with the CLI", function()
    local rc, out, err = run(sb, LUA .. " bin/coldsend plan examples/campaign.lua")
    assert.equal(0, rc, err)
    assert.matches('+ create campaign "Q1 Product Launch Outreach"', out, 1, true)
    assert.matches("+ sequences[step 2]", out, 1, true)
    rc, out, err = run(sb, LUA .. " bin/coldsend --json apply --yes examples/campaign.lua")
    assert.equal(0, rc, err)
    local result = cjson.decode(out)
    assert.equal("create", result.action)
    assert.equal("Q1 Product Launch Outreach", result.campaign.name)
  end)

  describe("openresty", function()
    it("nginx.conf and handler.lua are well-formed", function()
      assert(loadfile(ROOT .. "/examples/openresty/handler.lua"))
      local conf = util.slurp(ROOT .. "/examples/openresty/nginx.conf", "")
      assert.matches("thread_pool coldsend", conf, 1, true)
      assert.matches("lua_shared_dict coldsend", conf, 1, true)
      assert.matches('require("handler").new_lead()', conf, 1, true)
      local depth = 0
      for ch in conf:gsub("#[^\n]*", ""):gmatch("[{}]") do
        depth = depth + (ch == "{" and 1 or -1)
        assert.truthy(depth >= 0)
      end
      assert.equal(0, depth)
    end)

    it("handler.lua adds a lead, with a stand-in ngx", function()
      local cs = require("coldsend").client { api_key = sb.key, base_url = sb.url }
      local c = assert(cs:create_campaign { name = "OpenResty example campaign" })
      local saved_ngx = rawget(_G, "ngx")
      local function request(campaign, body)
        local said, status = {}, nil
        _G.ngx = {
          var = { arg_campaign = campaign }, header = {}, ERR = 4,
          req = { read_body = function() end, get_body_data = function() return body end },
          say = function(s) said[#said + 1] = s end,
          log = function() end,
          exit = function(st) status = st end,
        }
        package.loaded.handler = nil
        local handler = dofile(ROOT .. "/examples/openresty/handler.lua")
        -- the handler's client reads the key from the environment, which
        -- this process does not have: give it one made here
        handler.cs = cs
        handler.new_lead()
        return status or _G.ngx.status, table.concat(said)
      end
      finally(function() _G.ngx = saved_ngx end)
      local status, body = request(c.id, '{"email":"ada@example.org","name":"Ada"}')
      assert.equal(200, status, body)
      local t = cjson.decode(body)
      assert.equal(c.id, t.campaign)
      assert.equal("ada@example.org", t.email)
      status = request("not-a-uuid", '{"email":"ada@example.org"}')
      assert.equal(400, status)
      status = request(c.id, "not json")
      assert.equal(400, status)
      status = request("550e8400-e29b-41d4-a716-446655440000", '{"email":"ada@example.org"}')
      assert.equal(404, status)
    end)
  end)
end)
