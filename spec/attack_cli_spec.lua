-- attack_cli_spec: the CLI and `coldsend doctor` attacked as a new user and
-- as an attacker would: hostile server strings (invalid UTF-8, C1 controls,
-- an echoed key) in --json and text output, odd keys and base URLs, wrong
-- calls; and doc/cli.md's transcripts run as written.
local cjson = require "cjson"
local coldsend = require "coldsend"
local cli = require "coldsend.cli"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local ROOT = sandbox.root
local q = util.q
local _ -- the values a test leaves out

-- True when s is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or
-- code points past U+10FFFF).
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min
    if c < 0x80 then len, min = 1, 0
    elseif c >= 0xC2 and c <= 0xDF then len, min = 2, 0x80
    elseif c >= 0xE0 and c <= 0xEF then len, min = 3, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then len, min = 4, 0x10000
    else return false end
    local cp = len == 1 and c or c % (2 ^ (7 - len))
    for j = 1, len - 1 do
      local b = s:byte(i + j)
      if not b or b < 0x80 or b > 0xBF then return false end
      cp = cp * 64 + b % 64
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
    i = i + len
  end
  return true
end

-- cli.main in-process with env; returns the exit code, stdout and stderr.
local function main(args, env)
  local o, e = {}, {}
  local function sink(t)
    return { write = function(self, ...)
      for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
      return self
    end, flush = function() end }
  end
  local rc = cli.main(args, { stdout = sink(o), stderr = sink(e), stdin = io.open("/dev/null"),
    getenv = function(k) return env[k] end, isatty = function() return false end,
    stderr_tty = function() return false end })
  return rc, table.concat(o), table.concat(e)
end

-- A JSON document that a strict parser takes: UTF-8, and cjson decodes it.
local function strict_json(s, what)
  assert.is_true(valid_utf8(s), what .. " is not UTF-8: " .. s)
  local ok, v = pcall(cjson.decode, s)
  assert.is_true(ok, what .. " is not JSON (" .. tostring(v) .. "): " .. s)
  return v
end

describe("the CLI attacked", function()
  local sb

  setup(function()
    sb = sandbox.start { rate_limit = false }
  end)

  teardown(function()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
  end)

  describe("hostile strings from the server", function()
    -- a campaign whose name holds invalid UTF-8, a C1 control (U+0085) and
    -- an OSC title sequence; the sandbox stores what the body says
    local HOSTILE = '"bad \255\254 name \194\133 c1 \27]0;title\7 end"'
    local function hostile_campaign()
      local st, body = sandbox.http { url = sb.url .. "/campaigns", method = "POST",
        headers = { ["X-API-Key"] = sb.key }, body = '{"name":' .. HOSTILE .. '}' }
      assert.equal(201, st, body)
      return assert(body:match('"campaign_id":"([^"]+)"'))
    end

    it("--json of list and status is UTF-8 JSON, the bad bytes replaced", function()
      local id = hostile_campaign()
      local env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url }
      local rc, out, err = main({ "--json", "list" }, env)
      assert.equal(0, rc, err)
      local t = strict_json(out, "list --json")
      assert.equal("bad \239\191\189\239\191\189 name \194\133 c1 \27]0;title\7 end", t[1].name)
      rc, out, err = main({ "--json", "status", id }, env)
      assert.equal(0, rc, err)
      t = strict_json(out, "status --json")
      assert.equal("bad \239\191\189\239\191\189 name \194\133 c1 \27]0;title\7 end", t.name)
    end)

    it("text output shows the bad bytes and controls escaped, never raw", function()
      hostile_campaign()
      local rc, out, err = main({ "list" }, { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url })
      assert.equal(0, rc, err)
      assert.is_true(valid_utf8(out), out)
      assert.matches("bad \\xFF\\xFE name \\u{85} c1 \\x1B]0;title\\x07 end", out, 1, true)
    end)

    it("doctor --json stays JSON when the server's words hold controls and bad bytes", function()
      sb:fault { kind = "status", status = 401, path = "^/campaigns$",
        body = '{"detail":"revoked \194\133 \255 \27[2J"}' }
      local rc, out = main({ "doctor", "--json" }, { COLDSEND_API_KEY = "cs_live_" .. ("k"):rep(20),
        COLDSEND_BASE_URL = sb.url })
      assert.equal(1, rc)
      local t = strict_json(out, "doctor --json")
      assert.is_false(t.ok)
    end)

    it("doctor never shows a key the server echoes, whatever its shape", function()
      -- cs_ and a token without a second underscore: well formed for the
      -- client, but not shaped like cs_live_...
      local key = "cs_PLAINtokenWITHOUTunderscore42"
      sb:fault { kind = "status", status = 401, path = "^/campaigns$",
        body = { detail = "unknown key " .. key .. " (\"" .. key .. "\")" } }
      local r = coldsend.doctor { api_key = key, base_url = sb.url }
      local all = tostring(r) .. r:text(true) .. r:json()
      assert.is_nil(all:find("PLAINtoken", 1, true), all)
      assert.matches("unknown key [redacted]", all, 1, true)
      sb:fault { kind = "status", status = 401, path = "^/campaigns$",
        body = { detail = "unknown key " .. key } }
      local _, out, err = main({ "doctor", "--json" }, { COLDSEND_API_KEY = key, COLDSEND_BASE_URL = sb.url })
      assert.is_nil((out .. err):find("PLAINtoken", 1, true), out .. err)
    end)
  end)

  describe("doctor against a server of chosen headers", function()
    -- A child on a free 127.0.0.1 port that answers every GET with 200, an
    -- empty campaign list and the given extra header lines; it serves at
    -- most 8 connections, stops at GET /__quit and lives at most 20 s.
    local SERVER = [[
local socket = require "socket"
local s = assert(socket.bind("127.0.0.1", 0))
io.stdout:write((select(2, s:getsockname())), "\n") io.stdout:flush()
local extra = arg[1]:gsub("|", "\r\n")
s:settimeout(20)
for _ = 1, 8 do
  local c = s:accept()
  if not c then break end
  c:settimeout(5)
  local first = c:receive("*l")
  if not first or first:match("^GET /__quit ") then c:close() break end
  repeat local l = c:receive("*l") until not l or l == ""
  local body = '{"campaigns":[],"pagination":{}}'
  c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
    .. #body .. "\r\n" .. extra .. "\r\n\r\n" .. body)
  c:close()
end
]]
    local script = util.write_tmp(SERVER)

    local function doctor_with(headers)
      local f = assert(io.popen(("lua5.4 %s %s"):format(q(script), q(headers))))
      local port = assert(tonumber(f:read("*l")))
      local r = coldsend.doctor { api_key = "cs_live_" .. ("h"):rep(16),
        base_url = ("http://127.0.0.1:%d/api/public/v1"):format(port), now = function() return 1796277600 end }
      -- the server lives until told to go, not until its accept times out
      local quit = require("socket").connect("127.0.0.1", port)
      if quit then quit:send("GET /__quit HTTP/1.0\r\n\r\n") quit:close() end
      f:close()
      return r, r.checks[12], r.checks[13]
    end

    teardown(function() util.cleanup() end)

    it("numbers that are not whole in X-RateLimit-* are a warning, not a crash", function()
      for _, h in ipairs { "X-RateLimit-Limit: 1e999|X-RateLimit-Remaining: 5",
        "X-RateLimit-Limit: 100|X-RateLimit-Remaining: 2.5",
        "X-RateLimit-Limit: 0x10|X-RateLimit-Remaining: 5",
        "X-RateLimit-Limit: 99999999999999999999|X-RateLimit-Remaining: 5" } do
        local r, rate = doctor_with(h .. "|Date: Thu, 03 Dec 2026 06:00:00 GMT")
        assert.equal("rate_limit", rate.name)
        assert.equal("warn", rate.status, h)
        assert.matches("^unreadable X%-RateLimit%-%* headers %(limit \"", rate.summary)
        assert.is_true(r.ok)
        assert.truthy(cjson.decode(r:json()))
      end
      local _, rate = doctor_with("X-RateLimit-Limit: 100|X-RateLimit-Remaining: 5|X-RateLimit-Reset: 1e999")
      assert.equal("ok", rate.status)
      assert.equal("100 requests per window, 5 left", rate.summary)
    end)

    it("a Date that does not exist is unreadable, not a skew", function()
      local _, _, clock = doctor_with("X-RateLimit-Limit: 100|X-RateLimit-Remaining: 5"
        .. "|Date: Thu, 31 Feb 2026 06:00:00 GMT")
      assert.equal("clock", clock.name)
      assert.equal("warn", clock.status)
      assert.equal('unreadable Date header "Thu, 31 Feb 2026 06:00:00 GMT"', clock.summary)
      assert.is_nil(require("coldsend.doctor").parse_http_date("Sun, 29 Feb 2100 06:00:00 GMT"))
      assert.equal(1961647200, require("coldsend.doctor").parse_http_date("Sun, 29 Feb 2032 06:00:00 GMT"))
    end)
  end)

  describe("odd keys and base URLs", function()
    it("a key that is blank or only the prefix garbles no message", function()
      for _, key in ipairs { " ", "  ", "cs_live_", "cs_test_" } do
        local rc, out, err = main({ "list" }, { COLDSEND_API_KEY = key, COLDSEND_BASE_URL = sb.url })
        assert.equal(2, rc, key)
        assert.equal("", out)
        assert.is_nil(err:find("[redacted]", 1, true), err)
        assert.matches("^coldsend: coldsend%.client: bad API key %(cs_live_<token> expected; ", err)
      end
    end)

    it("doctor shows no part of a short key's token", function()
      for _, key in ipairs { "cs_live_abcdEFGH", "cs_live_0123456789abWXYZ" } do
        local r = coldsend.doctor { api_key = key, base_url = sb.url }
        local c = r.checks[2]
        assert.equal("key", c.name)
        if #key < 24 then
          assert.is_nil((tostring(r) .. r:json()):find("EFGH", 1, true))
          assert.matches("ending in ...????", c.summary, 1, true)
        else
          assert.matches("ending in ...WXYZ", c.summary, 1, true)
        end
      end
    end)

    it("doctor takes an upper-case scheme as the client does", function()
      local url = sb.url:gsub("^http:", "HTTP:")
      assert.truthy(coldsend.client { api_key = sb.key, base_url = url })
      local rc, out, err = main({ "doctor" }, { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = url })
      assert.equal(0, rc, out .. err)
      assert.matches("all checks passed", out, 1, true)
      local r = coldsend.doctor { api_key = sb.key, base_url = sb.url:gsub("^http:", "Http:") }
      assert.is_true(r.ok, tostring(r))
    end)

    it("a base URL with a query, a fragment or a bad port is refused, naming it", function()
      for _, suffix in ipairs { "?x=1", "#top", "?" } do
        local url = sb.url .. suffix
        local ok, msg = pcall(coldsend.client, { api_key = sb.key, base_url = url })
        assert.is_false(ok, url)
        assert.matches("bad option 'base_url' for coldsend.client (no query or fragment expected, got "
          .. ("%q"):format(url) .. ")", msg, 1, true)
        local r = coldsend.doctor { api_key = sb.key, base_url = url }
        assert.is_false(r.ok, url)
        assert.equal("fail", r.checks[3].status, url)
        assert.matches("a query or fragment", r.checks[3].summary, 1, true)
      end
      for _, port in ipairs { "0", "65536", "99999", "x" } do
        local url = "http://127.0.0.1:" .. port .. "/api/public/v1"
        local ok, msg = pcall(coldsend.client, { api_key = sb.key, base_url = url })
        assert.is_false(ok, url)
        assert.matches("bad option 'base_url' for coldsend.client (port 1..65535 expected, got "
          .. ("%q"):format(url) .. ")", msg, 1, true)
      end
      -- no host: a message, not "attempt to index a nil value"
      local ok, msg = pcall(coldsend.client, { api_key = sb.key, base_url = "http://:80/api/public/v1" })
      assert.is_false(ok)
      -- at the caller's line, here, even through pcall
      assert.matches("^[^\n]*attack_cli_spec%.lua:%d+: ", msg)
      assert.equal("bad option 'base_url' for coldsend.client (a host expected, got \"http://:80/api/public/v1\")",
        msg:match("^[^\n]-:%d+: (.*)$"))
      -- what is allowed stays allowed
      for _, url in ipairs { sb.url, sb.url .. "/", "http://localhost:1/api/public/v1",
        "http://[::1]:65535/api/public/v1", "https://api.coldsend.pro/api/public/v1" } do
        assert.truthy(coldsend.client { api_key = sb.key, base_url = url }, url)
      end
    end)
  end)

  describe("wrong calls", function()
    it("a campaign file that raises a table names the file, not an address", function()
      local file = util.write_tmp("error({})\n")
      local rc, out, err = main({ "plan", file }, {})
      assert.equal(2, rc)
      assert.equal("", out)
      assert.is_nil(err:find("table: 0x", 1, true), err)
      assert.equal("coldsend: " .. file .. ": the file raised an error (a table value)\n", err)
      file = util.write_tmp("error(setmetatable({}, { __tostring = function() return 'custom' end }))\n")
      rc, _, err = main({ "plan", file }, {})
      assert.equal(2, rc)
      assert.equal("coldsend: " .. file .. ": custom\n", err)
      util.cleanup()
    end)

    it("an upload's progress shows a file name's escape sequences escaped", function()
      local cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0 }
      local c = assert(cs:create_campaign { name = "Attack CLI upload" })
      local dir = os.tmpname()
      os.remove(dir)
      assert.equal(0, (util.run("mkdir -p " .. q(dir))))
      local csv = util.write(dir .. "/evil\27]0;pwned\7\27[2J.csv", "Email\nada@example.org\n")
      local rc, _, err = main({ "upload", c.id, csv, "--map", "email=Email" },
        { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url })
      os.execute("rm -rf " .. q(dir))
      assert.equal(0, rc, err)
      assert.is_nil(err:find("\27", 1, true), err)
      assert.matches("evil\\x1B]0;pwned\\x07\\x1B[2J.csv  100%", err, 1, true)
    end)

    it("an empty option value is a usage error, not the default URL", function()
      for _, args in ipairs { { "--base-url", "", "list" }, { "--base-url=", "doctor" },
        { "list", "--status", "" }, { "upload", "x", "y", "--map=" } } do
        local rc, out, err = main(args, { COLDSEND_API_KEY = sb.key })
        assert.equal(2, rc, table.concat(args, " "))
        assert.equal("", out)
        assert.matches("^coldsend: option %-%-[%w-]+ needs a value %(got an empty string%)\n$", err)
      end
      assert.equal(0, #sb:log())
    end)

    it("pause, resume, delete and refresh of an unsaved handle raise at the caller's line", function()
      local cs = coldsend.client { api_key = sb.key, base_url = sb.url }
      for _, op in ipairs { "pause", "resume", "delete", "refresh" } do
        local c = cs:campaign()
        local line = debug.getinfo(1, "l").currentline + 1
        local ok, why = pcall(function() return c[op](c) end)
        assert.is_false(ok)
        assert.equal(("spec/attack_cli_spec.lua:%d: %s: the campaign has no id yet (save it first)")
          :format(line, op), tostring(why):match("spec/attack_cli_spec%.lua:.*$"))
      end
      assert.equal(0, #sb:log())
    end)

    it("plan of a create breaking a rule across fields lists it and exits 2, offline", function()
      -- a child process: in-process, the spec's own require "coldsend" hides it
      local file = util.write_tmp('return { name = "Hello world campaign", variants = { { variant_name = "A", '
        .. 'subject_template = "Hi", email_content = "Hello {{first_name}}", distribution_percent = 60 } } }\n')
      local rc, out, err = util.run(("cd %s && env -u COLDSEND_API_KEY %s bin/coldsend plan %s"):format(q(ROOT),
        LUA, q(file)))
      util.cleanup()
      assert.equal(2, rc, err)
      assert.equal("", out)
      assert.equal("coldsend: invalid: campaign is not valid: 1 problem   variants: distribution_percent values "
        .. "sum to 60, 100 expected\n", err)
    end)

    it("a misspelt command suggests the one meant", function()
      for typo, meant in pairs { lsit = "list", statuss = "status", doctr = "doctor", aply = "apply",
        uplod = "upload" } do
        local rc, out, err = main({ typo }, {})
        assert.equal(2, rc)
        assert.equal("", out)
        assert.matches("unknown command '" .. typo .. "' .*; did you mean '" .. meant .. "'%?\n$", err)
      end
      local _, _, err = main({ "frobnicate" }, {})
      assert.is_nil(err:find("did you mean", 1, true), err)
    end)
  end)

  describe("doc/cli.md as written", function()
    local tmpdir

    setup(function()
      tmpdir = os.tmpname()
      os.remove(tmpdir)
      assert.equal(0, (util.run("mkdir -p " .. q(tmpdir))))
    end)

    teardown(function()
      os.execute("rm -rf " .. q(tmpdir))
    end)

    -- Runs `coldsend ARGS` from the checkout's bin in tmpdir.
    local function run(args)
      return util.run(("root=$(cd %s && pwd) && cd %s && env COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s %s "
        .. '"$root/bin/coldsend" %s'):format(q(ROOT), q(tmpdir), q(sb.key), q(sb.url), LUA, args))
    end

    local doc = assert(util.slurp(ROOT .. "/doc/cli.md"))

    it("the campaign file of the guide plans as shown", function()
      local file = assert(doc:match("\n```lua\n(.-)```"))
      util.write(tmpdir .. "/campaign.lua", file)
      local rc, out, err = run("plan campaign.lua")
      assert.equal(0, rc, err)
      assert.matches('^%+ create campaign "Q1 Product Launch Outreach"\n', out)
    end)

    it("a bad value exits 2 with the line shown", function()
      local block = assert(doc:match("\n```\n(%$ coldsend plan campaign%.lua\ncoldsend: [^\n]*\n)```"))
      local expected = block:match("\n(.*)$")
      util.write(tmpdir .. "/campaign.lua",
        'return { name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 150 }\n')
      local rc, out, err = run("plan campaign.lua")
      assert.equal(2, rc)
      assert.equal("", out)
      assert.equal(expected, err)
    end)

    it("the update plan is what plan prints for the campaign it describes", function()
      local block = assert(doc:match("\n```\n%$ coldsend plan campaign%.lua\n(~ update .-Plan: [^\n]*\n)"))
      -- the campaign on the server: A and B at 50 %, daily limit 20, one follow-up
      local cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0 }
      local function v(name, subject, pct)
        return { variant_name = name, subject_template = subject,
          email_content = "Hi {{first_name}}, ...", distribution_percent = pct }
      end
      local c = assert(cs:create_campaign {
        name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 20,
        variants = { v("A", "Quick question, {{first_name}}", 50), v("B", "An idea for {{company}}", 50) },
        sequences = { { step_number = 2, trigger_type = "NOT_REPLIED", wait_days = 3,
          variants = { v("A", "Following up", 100) } } },
      })
      util.write(tmpdir .. "/campaign.lua", ([[
local function v(name, subject, pct)
  return { variant_name = name, subject_template = subject,
           email_content = "Hi {{first_name}}, ...", distribution_percent = pct }
end
return {
  id = %q,
  name = "Q1 Product Launch Outreach",
  daily_limit_per_inbox = 30,
  variants = { v("A", "Quick question, {{first_name}}", 34), v("B", "An idea for {{company}}", 33),
               v("C", "15 minutes next week?", 33) },
  sequences = {
    { step_number = 2, trigger_type = "NOT_REPLIED", wait_days = 3, variants = { v("A", "Following up", 100) } },
    { step_number = 3, trigger_type = "NOT_REPLIED", wait_days = 4, variants = { v("A", "Last note", 100) } },
  },
}
]]):format(c.id))
      local rc, out, err = run("plan campaign.lua")
      assert.equal(0, rc, err)
      assert.equal(block:gsub("550e8400%-e29b%-41d4%-a716%-446655440000", c.id), out)
    end)
  end)
end)
