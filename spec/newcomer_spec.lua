-- newcomer_spec.lua: the errors a new user meets first say where and what:
-- a misspelt option gets a suggestion, a bad option points at the caller's
-- line, a key that is only a prefix is refused, a refused connection to a
-- loopback URL hints at the sandbox, a 404 from a base URL without the
-- API's path says which path was expected; and what the REPL shows of a
-- campaign's pending changes is the JSON body a save sends.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local cjson = require "cjson"
local sandbox = require "spec.helpers.sandbox"

local ID = "550e8400-e29b-41d4-a716-446655440000"
local KEY = "cs_live_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0"
local DEAD = "http://127.0.0.1:1/api/public/v1"

-- The message raised by f, which must raise.
local function raised(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return tostring(err)
end

local THIS = "newcomer_spec%.lua:%d+: "

describe("a misspelt or bad option", function()
  it("suggests the option meant, at the caller's line", function()
    local msg = raised(function()
      local _ = coldsend.client { api_key = KEY, base_ulr = DEAD }
    end)
    assert.matches(THIS, msg)
    assert.matches("unknown option 'base_ulr' for coldsend.client; did you mean 'base_url'?", msg, 1, true)
    msg = raised(function() local _ = coldsend.client { api_key = KEY, base_url = DEAD, zzz = 1 } end)
    assert.matches("unknown option 'zzz' for coldsend.client", msg, 1, true)
    assert.is_nil(msg:find("did you mean", 1, true))
  end)

  it("reports a bad per-call option at the caller's line, not inside the library", function()
    local cs = coldsend.client { api_key = KEY, base_url = DEAD, max_retries = 0 }
    local msg = raised(function() local _ = cs:get_campaign(ID, { timeuot = 1 }) end)
    assert.matches(THIS .. "unknown option 'timeuot' for call; did you mean 'timeout'%?", msg)
    msg = raised(function() local _ = cs:get_campaign(ID, { timeout = -1 }) end)
    assert.matches(THIS .. "bad option 'timeout' for call", msg)
    msg = raised(function() local _ = cs:list_campaigns({}, "fast") end)
    assert.matches(THIS .. "bad call options", msg)
    local c = cs:campaign(ID)
    msg = raised(function() local _ = c:refresh { deadlin = 1 } end)
    assert.matches(THIS .. "unknown option 'deadlin' for call; did you mean 'deadline'%?", msg)
    msg = raised(function() local _ = c:upload_leads { fiel = "x.csv" } end)
    assert.matches("unknown option 'fiel' for upload_leads; did you mean 'file'?", msg, 1, true)
    assert.matches(THIS, msg)
    -- hostile names: not strings, huge
    msg = raised(function() local _ = cs:get_campaign(ID, { [true] = 1 }) end)
    assert.matches("unknown option 'true' for call", msg, 1, true)
    msg = raised(function() local _ = cs:get_campaign(ID, { [string.rep("x", 5000)] = 1 }) end)
    assert.matches("unknown option", msg, 1, true)
  end)
end)

describe("the caller's line", function()
  it("is the exact line of the call, for the client, a call and an upload", function()
    local cs = coldsend.client { api_key = KEY, base_url = DEAD, max_retries = 0 }
    local c = cs:campaign(ID)
    -- one case a line; `local x ... return x`, not a tail call, keeps the frame
    local cases = {
      function() local x = coldsend.client { api_key = KEY, timeuot = 1 } return x end,
      function() local x = cs:get_campaign(ID, { timeuot = 1 }) return x end,
      function() local x = c:refresh { max_retries = -1 } return x end,
      function() local x = c:upload_leads { fiel = "x.csv" } return x end,
      function() local x = c:add_lead({ email = "a@example.org" }, { deadline = "soon" }) return x end,
    }
    local first = debug.getinfo(cases[1], "S").linedefined
    for i, f in ipairs(cases) do
      local ok, msg = pcall(f)
      assert.is_false(ok, i)
      assert.matches("newcomer_spec%.lua:" .. (first + i - 1) .. ": ", tostring(msg))
    end
  end)
end)

describe("the API key", function()
  it("refuses a key that is only the prefix, never echoing a real key", function()
    for _, key in ipairs { "cs_live_", "cs_test_" } do
      local msg = raised(function() local _ = coldsend.client { api_key = key, base_url = DEAD } end)
      assert.matches(THIS, msg)
      assert.matches("the token after it is missing", msg, 1, true)
    end
    assert(coldsend.client { api_key = "cs_live_x1", base_url = DEAD })
    local msg = raised(function()
      local _ = coldsend.client { api_key = KEY .. " ", base_url = DEAD }
    end)
    assert.is_nil(msg:find(KEY, 1, true))
  end)
end)

describe("errors that say their likely cause", function()
  it("hints at the sandbox when nothing listens on a loopback URL", function()
    local cs = coldsend.client { api_key = KEY, base_url = DEAD, max_retries = 0 }
    local c, err = cs:get_campaign(ID)
    assert.is_nil(c)
    assert.equal("network", err.code)
    assert.matches("is the sandbox running? `make sandbox`", tostring(err), 1, true)
    assert.matches("sandbox", err.hint, 1, true)
    assert.is_nil(tostring(err):find(KEY, 1, true))
    -- once only, however often the error passes through
    coldsend._hint(err, err.url)
    local _, n = tostring(err):gsub("sandbox running", "")
    assert.equal(1, n)
  end)

  it("says which path was expected when a base URL without /api/public/v1 gets a 404", function()
    local sb = sandbox.start { rate_limit = false }
    finally(function() sb:stop() end)
    local cs = coldsend.client { api_key = sb.key, base_url = sb.base, max_retries = 0 }
    local c, err = cs:get_campaign(ID)
    assert.is_nil(c)
    assert.equal("not_found", err.code)
    assert.matches("base_url should end with /api/public/v1", tostring(err), 1, true)
    -- a real 404 under the right path has no such hint
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0 }
    c, err = cs:get_campaign(ID)
    assert.is_nil(c)
    assert.equal("not_found", err.code)
    assert.is_nil(err.hint)
    assert.is_nil(tostring(err):find("base_url should", 1, true))
  end)

  it("shows no attempt count for an error that never reached the server", function()
    local e = core.error { code = "rate_limited", message = "client-side rate limit", attempts = 0 }
    assert.is_nil(tostring(e):find("attempts", 1, true))
    e = core.error { code = "server", message = "boom", attempts = 2 }
    assert.matches("[attempts 2]", tostring(e), 1, true)
    e = core.error { code = "network", message = "reset", attempts = 0, ambiguous = true }
    assert.matches("[ambiguous]", tostring(e), 1, true)
  end)
end)

describe("c:changes() in the REPL", function()
  it("prints as the JSON body the next save sends, keys sorted", function()
    local c = core.campaign(ID)
    c:_apply { campaign_id = ID, status = "DRAFT", name = "Q1 Product Launch Outreach" }
    c:_clear_dirty()
    assert.equal("{}", tostring(c:changes()))
    c.sending_days = { 1, 2, 3 }
    c.daily_limit_per_inbox = 30
    c.timezone = nil
    local ch = c:changes()
    local s = tostring(ch)
    assert.equal('{"daily_limit_per_inbox":30,"sending_days":[1,2,3],"timezone":null}', s)
    assert.same(cjson.decode(s).sending_days, ch.sending_days)
    -- still a plain table to read and iterate
    local n = 0
    for _ in pairs(ch) do n = n + 1 end
    assert.equal(3, n)
    -- a hostile string value is escaped, not spliced
    c.name = 'Q1 "launch"\n\\ outreach'
    assert.equal('Q1 "launch"\n\\ outreach', cjson.decode(tostring(c:changes())).name)
  end)
end)

describe("help", function()
  it("knows c:fields(), in the overview and on its own", function()
    local overview = require("coldsend.help").text()
    assert.matches("fields", overview:match("Campaign methods.-\n(.-)\nCampaign fields"), 1, true)
    local text, known = require("coldsend.help").text("fields")
    assert.is_true(known)
    assert.matches("c:fields()", text, 1, true)
    assert.matches("LuaJIT", text, 1, true)
  end)
end)

describe("the progress bar on an 80-column terminal", function()
  local progress = require "coldsend.progress"

  local function lines(label, width, p)
    local out = { text = "" }
    function out:write(...) for _, s in ipairs { ... } do self.text = self.text .. s end end
    function out.flush() end
    local bar = progress.new { out = out, is_tty = true, width = width, label = label }
    bar(p)
    bar:finish()
    return (out.text:gsub("^\r", ""):gsub("\n$", ""))
  end

  local busy = { phase = "processing", percent = 40, done = 10000, total = 25001, rate = 1234,
    eta = 185, chunk = 2, chunks = 3, errors = 12 }

  it("keeps a bar, and the file's name, within the width", function()
    for _, label in ipairs { "leads.csv", "crm-export-of-every-lead-we-ever-had-2026-12-02.csv" } do
      local line = lines(label, 80, busy)
      assert.truthy(#line <= 79, line)
      assert.matches("%[#+%.+%]", line)
      assert.matches("40%", line, 1, true)
      assert.matches("12 errors", line, 1, true)
      assert.matches("^[%w.-]*%.csv  %[", line)
    end
    -- wide: everything, the whole name
    local line = lines("leads.csv", 120, busy)
    assert.matches("^leads%.csv  %[########%.+%]", line)
    assert.matches("1,234 rows/s  ETA 3m05s", line, 1, true)
    -- a long name in UTF-8 is cut between characters, never inside one
    line = lines(string.rep("é", 30) .. "x.csv", 80, busy)
    local tail = line:match("^%.%.%.(.-)  ")
    assert.truthy(tail, line)
    assert.truthy(utf8 == nil or utf8.len(tail) ~= nil, tail)
    assert.is_nil(tail:find("^[\128-\191]"), tail)
    -- too narrow for a bar: the numbers, cut at the width
    line = lines("leads.csv", 30, busy)
    assert.truthy(#line <= 29, line)
    assert.is_nil(line:find("[", 1, true))
  end)
end)

describe("coldsend-sandbox on a port in use", function()
  local socket = require "socket"
  local util = require "spec.helpers.util"

  -- Runs bin/coldsend-sandbox under lua, with args, on a port a socket of
  -- this test holds; returns the port and the exit code, stdout, stderr.
  local function on_busy_port(lua, args)
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    finally(function() s:close() end)
    return port, util.run(string.format("cd %s && %s bin/coldsend-sandbox --port %d %s",
      util.q(sandbox.root), lua, port, args))
  end

  it("exits 1 and says how to get a free port", function()
    local port, rc, out, err = on_busy_port("lua5.4", "--idle-exit 5")
    assert.equal(1, rc, out .. err)
    assert.matches("cannot bind 127.0.0.1:" .. port, err, 1, true)
    assert.matches("make sandbox SANDBOX_PORT=0", err, 1, true)
  end)

  it("reads its whole-number options under the Lua the specs run on", function()
    -- every option is read before the bind fails (math.tointeger is Lua 5.3+)
    local port, rc, out, err = on_busy_port(os.getenv("COLDSEND_TEST_LUA") or "lua5.4",
      "--seed 3 --fault kind=status,status=503,times=2 --idle-exit 5")
    assert.equal(1, rc, out .. err)
    assert.matches("cannot bind 127.0.0.1:" .. port, err, 1, true)
  end)
end)
