-- cli_spec.lua: bin/coldsend as a child process against the sandbox: every
-- command, --help for each, --json parsed with cjson, exit codes (0 ok,
-- 1 API error, 2 usage or validation error) and messages on stderr; the
-- confirmation prompt in-process (it needs a terminal).
local cjson = require "cjson"
local coldsend = require "coldsend"
local cli = require "coldsend.cli"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local ROOT = sandbox.root
local _ -- the values a test leaves out
local MISSING = "550e8400-e29b-41d4-a716-446655440000"

local q, write = util.q, util.write

local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute("mkdir -p " .. q(tmpdir)))

-- Runs bin/coldsend; returns exit code, stdout, stderr.
local function run(env, args, stdin)
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
  local input = stdin and write(tmpdir .. "/in", stdin) or "/dev/null"
  local rc, out, err = util.run(string.format("cd %s && env %s %s bin/coldsend %s <%s",
    q(ROOT), table.concat(vars, " "), LUA, args, q(input)))
  -- whatever the command, a table never prints as its address
  assert.is_nil(out:find("table: 0x", 1, true), out)
  assert.is_nil(err:find("table: 0x", 1, true), err)
  assert.is_nil(err:find("coldsend: coldsend:", 1, true), err)
  assert.is_nil(err:find("[attempts 0]", 1, true), err)
  return rc, out, err
end

local function campaign_file(name, text)
  return write(tmpdir .. "/" .. name, text)
end

local DEFINITION = [[
local subjects = { "Quick question, {{first_name}}", "An idea for {{company}}" }
local variants = {}
for i, s in ipairs(subjects) do
  variants[i] = { variant_name = string.char(64 + i), subject_template = s,
    email_content = "Hi {{first_name}},\n\nA short note.\n", distribution_percent = 50 }
end
return {
  %s
  name = "CLI spec campaign",
  daily_limit_per_inbox = %d,
  sending_days = { 1, 2, 3, 4, 5 },
  variants = variants,
}
]]

describe("coldsend CLI", function()
  local sb, env, cs

  setup(function()
    sb = sandbox.start { rate_limit = false }
    env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0 }
  end)

  teardown(function()
    sb:stop()
    os.execute("rm -rf " .. q(tmpdir))
  end)

  describe("usage", function()
    it("prints --help for the tool and for every command", function()
      local rc, out = run(env, "--help")
      assert.equal(0, rc)
      assert.matches("usage: coldsend", out, 1, true)
      for _, cmd in ipairs { "plan", "apply", "status", "list", "launch", "pause", "upload" } do
        rc, out = run(env, cmd .. " --help")
        assert.equal(0, rc, cmd)
        assert.matches("usage: coldsend " .. cmd, out, 1, true)
        local rc2, out2 = run(env, "help " .. cmd)
        assert.equal(0, rc2)
        assert.equal(out, out2)
      end
    end)

    it("exits 2 with a message on stderr for a usage error", function()
      for args, msg in pairs {
        [""] = "no command given",
        ["frob"] = "unknown command 'frob'",
        ["list --frob"] = "unknown option --frob",
        ["upload " .. MISSING .. " x.csv --dryrun"] = "unknown option --dryrun for 'upload'; did you mean --dry-run?",
        ["--jsno list"] = "unknown option --jsno; did you mean --json?",
        ["status"] = "'status' takes ID",
        ["status a b"] = "'status' takes ID",
        ["status not-a-uuid"] = "bad campaign id",
        ["list --status"] = "option --status needs a value",
        ["list --status SLEEPING"] = "bad --status",
        ["upload " .. MISSING .. " x.csv"] = "upload needs --map",
      } do
        local rc, out, err = run(env, args)
        assert.equal(2, rc, args)
        assert.equal("", out, args)
        assert.matches(msg, err, 1, true)
      end
    end)

    it("exits 2 without an API key", function()
      local rc, _, err = run({ COLDSEND_BASE_URL = sb.url }, "list")
      assert.equal(2, rc)
      assert.matches("COLDSEND_API_KEY", err, 1, true)
    end)

    it("exits 1 when the server refuses the key, never printing it", function()
      local bad = "cs_live_0000000000000000000000000000000000000000"
      sb:fault { kind = "status", status = 401, times = 1 }
      local rc, _, err = run({ COLDSEND_API_KEY = bad, COLDSEND_BASE_URL = sb.url }, "list")
      assert.equal(1, rc)
      assert.matches("auth", err, 1, true)
      assert.is_nil(err:find(bad, 1, true))
    end)

    it("takes --base-url before or after the command", function()
      local rc = run({ COLDSEND_API_KEY = sb.key }, "--base-url " .. sb.url .. " list")
      assert.equal(0, rc)
      rc = run({ COLDSEND_API_KEY = sb.key }, "list --base-url=" .. sb.url)
      assert.equal(0, rc)
    end)
  end)

  describe("campaign files", function()
    it("plans a create offline, as text and as JSON", function()
      local file = campaign_file("new.lua", DEFINITION:format("", 30))
      local rc, out, err = run({}, "plan " .. q(file))
      assert.equal(0, rc, err)
      assert.matches('+ create campaign "CLI spec campaign"', out, 1, true)
      assert.matches("+ daily_limit_per_inbox: 30", out, 1, true)
      assert.matches("+ variants[B]", out, 1, true)
      rc, out = run({}, "--json plan " .. q(file))
      assert.equal(0, rc)
      local p = cjson.decode(out)
      assert.equal("create", p.action)
      assert.equal("name", p.changes[1].path)
      assert.equal("+", p.changes[1].op)
      assert.equal("CLI spec campaign", p.changes[1].to)
    end)

    it("exits 2 naming the field for a bad value, a bad rule or a bad file", function()
      local rc, out, err = run(env, "plan " .. q(campaign_file("bad.lua", DEFINITION:format("", 150))))
      assert.equal(2, rc)
      assert.equal("", out)
      assert.matches("daily_limit_per_inbox", err, 1, true)
      assert.matches("150", err, 1, true)
      local sum = DEFINITION:format("", 30):gsub("distribution_percent = 50", "distribution_percent = 70")
      rc, _, err = run(env, "apply --yes " .. q(campaign_file("sum.lua", sum)))
      assert.equal(2, rc)
      assert.matches("variants", err, 1, true)
      -- two bad values: the first in the field table's order, on every run
      -- (each run is a new Lua, whose pairs() order may differ)
      local two = campaign_file("two.lua", DEFINITION:format("", 150):gsub('"CLI spec campaign"', '"x"'))
      for _ = 1, 6 do
        rc, _, err = run(env, "plan " .. q(two))
        assert.equal(2, rc)
        assert.matches("bad value for 'name'", err, 1, true)
      end
      rc, _, err = run(env, "plan " .. q(campaign_file("num.lua", "return 42")))
      assert.equal(2, rc)
      assert.matches("must return a table", err, 1, true)
      rc, _, err = run(env, "plan " .. q(campaign_file("syntax.lua", "return {")))
      assert.equal(2, rc)
      assert.matches("syntax.lua", err, 1, true)
      rc, _, err = run(env, "plan " .. q(tmpdir .. "/nowhere.lua"))
      assert.equal(2, rc)
      assert.matches("nowhere.lua", err, 1, true)
    end)

    it("refuses to apply without --yes when stdin is not a terminal", function()
      local before = #sb:log()
      local rc, out, err = run(env, "apply " .. q(campaign_file("new.lua", DEFINITION:format("", 30))))
      assert.equal(2, rc)
      assert.matches("+ create campaign", out, 1, true) -- the plan came first
      assert.matches("--yes", err, 1, true)
      assert.equal(before, #sb:log())
    end)

    it("applies: create, then no changes, then an update", function()
      local rc, out, err = run(env, "--json apply --yes " .. q(campaign_file("new.lua", DEFINITION:format("", 30))))
      assert.equal(0, rc, err)
      local result = cjson.decode(out)
      assert.equal("create", result.action)
      local id = result.id
      assert.truthy(require("coldsend.core").is_uuid(id))
      assert.equal("DRAFT", result.campaign.status)

      local file = campaign_file("existing.lua", DEFINITION:format(("id = %q,"):format(id), 30))
      rc, out = run(env, "plan " .. q(file))
      assert.equal(0, rc)
      assert.matches("no changes", out, 1, true)
      rc = run(env, "apply " .. q(file)) -- nothing to do: no prompt needed
      assert.equal(0, rc)

      file = campaign_file("existing.lua", DEFINITION:format(("id = %q,"):format(id), 40))
      rc, out = run(env, "plan " .. q(file))
      assert.equal(0, rc)
      assert.matches("~ update campaign " .. id, out, 1, true)
      assert.matches("~ daily_limit_per_inbox: 30 -> 40", out, 1, true)
      rc, out, err = run(env, "apply --yes " .. q(file))
      assert.equal(0, rc, err)
      assert.matches("updated", out, 1, true)
      assert.equal(40, assert(cs:get_campaign(id)).daily_limit_per_inbox)
      rc, out = run(env, "--json plan " .. q(file))
      assert.equal(0, rc)
      assert.equal("none", cjson.decode(out).action)
    end)

    it("exits 1 when the campaign of a file does not exist", function()
      local file = campaign_file("gone.lua", DEFINITION:format(("id = %q,"):format(MISSING), 30))
      local rc, out, err = run(env, "plan " .. q(file))
      assert.equal(1, rc)
      assert.equal("", out)
      assert.matches("not_found", err, 1, true)
    end)

    it("loads the file in its own environment", function()
      local file = campaign_file("env.lua", "leaked_global = 1\n" .. DEFINITION:format("", 30))
      local def = assert(cli.load_file(file))
      assert.equal("CLI spec campaign", def.name)
      assert.is_nil(rawget(_G, "leaked_global"))
    end)
  end)

  describe("in-process prompt", function()
    local function fake_io(answer)
      local out, err = {}, {}
      local function sink(buf)
        return { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end return self end,
                 flush = function() end }
      end
      return {
        stdout = sink(out), stderr = sink(err),
        stdin = { read = function() return answer end },
        isatty = function() return true end,
        getenv = function(k) return ({ COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url })[k] end,
      }, out, err
    end

    it("changes nothing when the answer is not yes", function()
      local file = campaign_file("new.lua", DEFINITION:format("", 30))
      local before = #sb:log()
      for _, answer in ipairs { "n", "", "nope" } do
        local io_, _, err = fake_io(answer)
        assert.equal(1, cli.main({ "apply", file }, io_))
        assert.matches("Apply? [y/N]", table.concat(err), 1, true)
        assert.matches("declined", table.concat(err), 1, true)
      end
      local io_ = fake_io(nil) -- end of input
      assert.equal(1, cli.main({ "apply", file }, io_))
      assert.equal(before, #sb:log())
    end)

    it("applies on y", function()
      local io_, out = fake_io("y")
      assert.equal(0, cli.main({ "apply", campaign_file("new.lua", DEFINITION:format("", 30)) }, io_))
      assert.matches("created", table.concat(out), 1, true)
    end)
  end)

  describe("campaign commands", function()
    local id

    setup(function()
      local c = assert(cs:create_campaign { name = "CLI spec status campaign", daily_limit_per_inbox = 25 })
      id = c.id
    end)

    it("status prints the campaign, and its fields as JSON", function()
      local rc, out, err = run(env, "status " .. id)
      assert.equal(0, rc, err)
      assert.matches(id, out, 1, true)
      assert.matches("DRAFT", out, 1, true)
      assert.matches("daily_limit_per_inbox +25", out)
      rc, out = run(env, "status --json " .. id)
      assert.equal(0, rc)
      local t = cjson.decode(out)
      assert.equal(id, t.id)
      assert.equal("DRAFT", t.status)
      assert.equal(25, t.daily_limit_per_inbox)
      rc, _, err = run(env, "status " .. MISSING)
      assert.equal(1, rc)
      assert.matches("not_found", err, 1, true)
    end)

    it("list shows every campaign, filtered by status, as text and JSON", function()
      local rc, out = run(env, "list")
      assert.equal(0, rc)
      assert.matches(id .. "  DRAFT", out, 1, true)
      rc, out = run(env, "--json list --status DRAFT")
      assert.equal(0, rc)
      local items = cjson.decode(out)
      local found = false
      for _, item in ipairs(items) do
        assert.equal("DRAFT", item.status)
        if item.campaign_id == id then found = true end
      end
      assert.is_true(found)
      rc, out = run(env, "--json list --status ACTIVE")
      assert.equal(0, rc)
      assert.equal("[]", out:gsub("%s+$", ""))
    end)

    it("launch says what is missing (exit 1), then launches; pause pauses", function()
      local rc, _, err = run(env, "launch " .. id)
      assert.equal(1, rc)
      assert.matches("not_ready", err, 1, true)
      assert.matches("leads", err, 1, true)

      local inbox = assert(cs:add_smtp_inbox {
        email_address = "cli@example.com", display_name = "CLI", inbox_type = "CUSTOM_SMTP",
        smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = "cli",
        smtp_password = "secret-pass", imap_host = "imap.example.com", imap_port = 993,
        imap_username = "cli", imap_password = "secret-pass",
      })
      local c = assert(cs:get_campaign(id))
      c.inbox_ids = { inbox.inbox_id }
      c:add_variant { subject_template = "Hello {{first_name}}", email_content = "Hi {{first_name}}, a note." }
      assert(c:save())
      assert(c:add_lead { email = "ada@example.org", first_name = "Ada" })

      local out
      rc, out, err = run(env, "launch " .. id)
      assert.equal(0, rc, err)
      assert.matches("launched", out, 1, true)
      assert.equal("ACTIVE", assert(cs:get_campaign(id)).status)
      rc, out, err = run(env, "--json pause " .. id)
      assert.equal(0, rc, err)
      assert.equal("PAUSED", cjson.decode(out).status)
    end)

    it("upload sends a CSV with the mapping", function()
      local csv = write(tmpdir .. "/leads.csv",
        "Email,First\ngrace@example.org,Grace\nlinus@example.org,Linus\n")
      local rc, out, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email,first_name=First")
      assert.equal(0, rc, err)
      assert.truthy(#out > 0)
      rc, _, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map first_name=First")
      assert.equal(2, rc)
      assert.matches("email", err, 1, true)
      rc, _, err = run(env, "upload " .. id .. " " .. q(tmpdir .. "/none.csv") .. " --map email=Email")
      assert.equal(2, rc)
      assert.matches("none.csv", err, 1, true)
    end)
  end)

  describe("what a newcomer meets", function()
    local id

    before_each(function()
      id = assert(cs:create_campaign { name = "CLI newcomer campaign" }).id
    end)

    it("upload shows a progress bar labelled with the file's name", function()
      local csv = write(tmpdir .. "/people.csv", "Email,First\nada@example.org,Ada\nbob@example.org,Bob\n")
      os.remove(csv .. ".coldsend-upload")
      local rc, out, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email,first_name=First")
      assert.equal(0, rc, err)
      assert.matches("COMPLETED", out, 1, true)
      assert.matches("people.csv  100%  2/2 rows", err, 1, true)
      assert.matches("done", err, 1, true)
    end)

    it("upload --dry-run lists the problems as row N, column C and exits 2, sending nothing", function()
      local csv = write(tmpdir .. "/bad.csv",
        "Email,First\nada@example.org,Ada\nnot-an-email,Bob\nada@example.org,Ada again\n")
      local before = sb:count("POST", "/leads$")
      local rc, out, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email --dry-run")
      assert.equal(2, rc, err)
      assert.matches("3 rows", out, 1, true)
      assert.matches("2 problems", out, 1, true)
      assert.matches("\n  row 3, column Email: invalid email 'not-an-email'", err, 1, true)
      assert.matches("\n  row 4, column Email: duplicate email 'ada@example.org'", err, 1, true)
      -- without --dry-run: the same list, exit 2, nothing sent
      rc, _, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email")
      assert.equal(2, rc, err)
      assert.matches("\n  row 3, column Email: invalid email", err, 1, true)
      assert.equal(before, sb:count("POST", "/leads$"))
      -- a good file: exit 0, still nothing sent
      local good = write(tmpdir .. "/good.csv", "Email\nada@example.org\n")
      rc, out, err = run(env, "upload " .. id .. " " .. q(good) .. " --map email=Email --dry-run")
      assert.equal(0, rc, err)
      assert.matches("0 problems; nothing sent", out, 1, true)
      rc, out = run(env, "--json upload " .. id .. " " .. q(csv) .. " --map email=Email --dry-run")
      assert.equal(2, rc)
      local t = cjson.decode(out)
      assert.equal(2, t.problem_count)
      assert.equal(3, t.problems[1].row)
      assert.equal(before, sb:count("POST", "/leads$"))
    end)

    it("upload with another --map refuses to reuse the saved state; --restart starts over", function()
      local rc, _, err = run(env, "upload --help")
      assert.equal(0, rc, err)
      local _, help = run(env, "upload --help")
      assert.matches("CSV.coldsend-upload", help, 1, true)
      assert.matches("--restart", help, 1, true)
      local csv = write(tmpdir .. "/remap.csv", "Email,First\nada@example.org,Ada\n")
      os.remove(csv .. ".coldsend-upload")
      rc, _, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email")
      assert.equal(0, rc, err)
      local posts = sb:count("POST", "/leads$")
      rc, _, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email,first_name=First")
      assert.equal(1, rc, err)
      assert.matches("^coldsend: conflict: ", err)
      assert.matches("another mapping (email=Email)", err, 1, true)
      assert.matches(csv .. ".coldsend-upload", err, 1, true)
      assert.matches("--restart", err, 1, true)
      assert.equal(posts, sb:count("POST", "/leads$"))
      rc, _, err = run(env, "upload " .. id .. " " .. q(csv) .. " --map email=Email,first_name=First --restart")
      assert.equal(0, rc, err)
      assert.equal(posts + 1, sb:count("POST", "/leads$"))
      os.remove(csv .. ".coldsend-upload")
    end)

    it("apply --launch of an unready campaign says what was saved and what is missing", function()
      local file = campaign_file("unready.lua", DEFINITION:format('id = "' .. id .. '",', 35))
      local rc, out, err = run(env, "apply " .. q(file) .. " --yes --launch")
      assert.equal(1, rc, err)
      assert.matches("saved: 4 changes to campaign " .. id
        .. " (name, daily_limit_per_inbox, variants[A], variants[B])", out, 1, true)
      assert.matches("daily_limit_per_inbox", out, 1, true)
      assert.matches("coldsend: not launched: campaign " .. id .. " is missing leads, inboxes", err, 1, true)
      local c = assert(cs:get_campaign(id))
      assert.equal(35, c.daily_limit_per_inbox)
      assert.equal("DRAFT", c.status)
      rc, out = run(env, "--json apply " .. q(file) .. " --yes --launch")
      assert.equal(1, rc)
      local t = cjson.decode(out)
      assert.is_false(t.launched)
      assert.same({ "leads", "inboxes" }, t.missing_requirements)
    end)

    it("prints an error object once prefixed, and hints at the sandbox when nothing listens", function()
      local rc, _, err = run(env, "status " .. MISSING)
      assert.equal(1, rc)
      assert.matches("^coldsend: not_found %(HTTP 404%)", err)
      local dead = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = "http://127.0.0.1:1/api/public/v1" }
      rc, _, err = run(dead, "status " .. MISSING)
      assert.equal(1, rc)
      assert.matches("^coldsend: network ", err)
      assert.matches("is the sandbox running? `make sandbox`", err, 1, true)
      -- a base URL without the API's path
      rc, _, err = run({ COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.base }, "status " .. MISSING)
      assert.equal(1, rc)
      assert.matches("base_url should end with /api/public/v1", err, 1, true)
    end)

    it("--json prints sorted keys, the same text on every run", function()
      local rc, a = run(env, "--json status " .. id)
      assert.equal(0, rc)
      local _, b = run(env, "--json status " .. id)
      assert.equal(a, b)
      local keys = {}
      for k in a:gmatch('[{,]"([%w_]+)":') do keys[#keys + 1] = k end
      assert.truthy(#keys > 10)
      local top = {}
      for k in pairs(cjson.decode(a)) do top[#top + 1] = k end
      table.sort(top)
      -- the nested objects (variants...) are empty here: every key is top-level
      assert.same(top, keys)
    end)

    it("prints doc/cli.md's upload --dry-run and apply --launch transcripts", function()
      local doc = assert(util.slurp(ROOT .. "/doc/cli.md"))
      local function mask(text)
        return (text:gsub("%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x", "<id>"))
      end
      -- upload --dry-run: run in a directory holding the doc's leads.csv
      local block = assert(doc:match("\n```\n(%$ coldsend upload [^\n]+ %-%-dry%-run\n.-)```"))
      local command, expected = block:match("^%$ coldsend ([^\n]+)\n(.*)$")
      write(tmpdir .. "/leads.csv",
        "Email,First\nada@example.org,Ada\nnot-an-email,Bob\nada@example.org,Ada2\n")
      command = command:gsub("%x+%-%x+%-%x+%-%x+%-%x+", id)
      local rc, out, err = util.run(string.format("root=$(cd %s && pwd) && cd %s && env %s %s %s %s",
        q(ROOT), q(tmpdir), "COLDSEND_API_KEY=" .. q(sb.key) .. " COLDSEND_BASE_URL=" .. q(sb.url),
        LUA, '"$root/bin/coldsend"', command))
      assert.equal(2, rc, err)
      assert.equal(expected, out .. err)
      -- apply --launch of a campaign that lacks leads and inboxes
      block = assert(doc:match("\n```\n(saved: [^`]+)```"))
      local c = assert(cs:get_campaign(id))
      local file = campaign_file("launch.lua", string.format(
        'return { id = %q, daily_limit_per_inbox = 42 }', id))
      c:add_variant { subject_template = "Hello", email_content = "Hi {{first_name}}, a note." }
      assert(c:save())
      rc, out, err = run(env, "apply " .. q(file) .. " --yes --launch")
      assert.equal(1, rc, err)
      assert.equal(mask(block), mask(out:match("\n(saved: .*)$") .. err))
    end)

    it("runs from outside the checkout without LUA_PATH", function()
      local rc, out, err = util.run(string.format("root=$(cd %s && pwd) && cd / && "
        .. "env -u LUA_PATH -u LUA_PATH_5_4 %s \"$root/bin/coldsend\" --help", q(ROOT), LUA))
      assert.equal(0, rc, err)
      assert.matches("usage: coldsend", out, 1, true)
    end)
  end)

  it("parses --map", function()
    assert.same({ email = "Email", first_name = "First Name" },
      cli.parse_map("email=Email, first_name = First Name"))
    assert.is_nil((cli.parse_map("first_name=First")))
    assert.is_nil((cli.parse_map("email")))
  end)
end)
