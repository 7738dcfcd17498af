-- lifecycle_spec.lua: `coldsend resume`, `delete`, `leads` and `inboxes`
-- as child processes against the sandbox over loopback (libcurl): text
-- and --json output, exit codes (0 done, 1 API, 2 usage with nothing
-- sent), the delete prompt (refused without a terminal, in-process on one)
-- and inbox passwords taken from the environment, never shown.
local cjson = require "cjson"
local coldsend = require "coldsend"
local cli = require "coldsend.cli"
local clih = require "spec.helpers.cli"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local _ -- the values a test leaves out
local MISSING = "550e8400-e29b-41d4-a716-446655440000"
local q = util.q

local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute("mkdir -p " .. q(tmpdir)))

local INBOX = [[
return {
  email_address = "%s", display_name = "Ada Lovelace", inbox_type = "GOOGLE_WORKSPACE",
  smtp_host = "%s", smtp_port = 587, smtp_username = "ada",
  imap_host = "imap.gmail.com", imap_port = 993, imap_username = "ada",
  daily_limit = 50,%s
}
]]

describe("coldsend lifecycle commands", function()
  local sb, env, cs

  local function run(args, more_env)
    local rc, out, err = clih.run(env, args, more_env)
    assert.is_nil(err:find("[attempts 0]", 1, true), err)
    return rc, out, err
  end

  local function ready_campaign(name)
    local inbox = clih.inbox(cs, name:lower():gsub("%W", "") .. "@example.com")
    local c = assert(cs:create_campaign { name = name, inbox_ids = { inbox.inbox_id },
      variants = { { subject_template = "Hello", email_content = "Hi {{first_name}}, a note." } } })
    assert(c:add_lead { email = "ada@example.org", first_name = "Ada", last_name = "Lovelace", company = "Engines" })
    return c
  end

  setup(function()
    sb = sandbox.start { rate_limit = false }
    env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0, rate_limit = false }
  end)

  teardown(function()
    sb:stop()
    os.execute("rm -rf " .. q(tmpdir))
  end)

  it("has --help for each command", function()
    for _, cmd in ipairs { "resume", "delete", "leads", "inboxes", "export" } do
      local rc, out = run(cmd .. " --help")
      assert.equal(0, rc, cmd)
      assert.matches("usage: coldsend " .. cmd, out, 1, true)
    end
  end)

  it("resume resumes a paused campaign; a draft is refused with exit 1", function()
    local c = ready_campaign("Resumed campaign")
    local rc, _, err = run("resume " .. c.id)
    assert.equal(1, rc)
    assert.matches("bad_request (HTTP 400)", err, 1, true)
    assert.matches("Only PAUSED campaigns can be resumed", err, 1, true)
    assert(c:launch())
    assert(c:pause())
    local out
    rc, out, err = run("resume " .. c.id)
    assert.equal(0, rc, err)
    assert.equal("resumed: coldsend.campaign " .. c.id .. ' "Resumed campaign" ACTIVE (0 unsaved)\n', out)
    assert(c:pause())
    rc, out = run("--json resume " .. c.id)
    assert.equal(0, rc)
    assert.equal("ACTIVE", cjson.decode(out).status)
    rc, _, err = run("resume not-an-id")
    assert.equal(2, rc)
    assert.matches("bad campaign id", err, 1, true)
  end)

  it("delete asks, refuses without a terminal, and deletes with --yes", function()
    local c = assert(cs:create_campaign { name = "Deleted campaign" })
    local requests = #sb:log()
    local rc, out, err = run("delete " .. c.id)
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches("delete asks for confirmation: pass --yes when stdin is not a terminal", err, 1, true)
    -- refused before any request: not even the GET that shows the campaign
    assert.equal(requests, #sb:log())
    -- on a terminal: declined, then accepted
    local io_, _, errs = clih.fake_io(env, "n")
    assert.equal(1, cli.main({ "delete", c.id }, io_))
    assert.matches('Delete campaign ' .. c.id .. ' "Deleted campaign" (DRAFT)? [y/N] ', table.concat(errs), 1, true)
    assert.matches("delete declined; nothing changed", table.concat(errs), 1, true)
    assert.equal(0, sb:count("DELETE"))
    local outs
    io_, outs = clih.fake_io(env, "y")
    assert.equal(0, cli.main({ "delete", c.id }, io_))
    assert.equal('deleted campaign ' .. c.id .. ' "Deleted campaign" (DRAFT)\n', table.concat(outs))
    assert.equal(1, sb:count("DELETE"))
    rc, _, err = run("delete --yes " .. c.id)
    assert.equal(1, rc)
    assert.matches("not_found", err, 1, true)
    -- an ACTIVE campaign cannot be deleted
    local active = ready_campaign("Active campaign kept")
    assert(active:launch())
    rc, _, err = run("delete --yes " .. active.id)
    assert.equal(1, rc)
    assert.matches("can only be deleted in DRAFT or PAUSED", err, 1, true)
    local d = assert(cs:create_campaign { name = "Deleted as JSON" })
    rc, out = run("--json delete -y " .. d.id)
    assert.equal(0, rc)
    assert.same({ id = d.id, name = "Deleted as JSON", deleted = true }, cjson.decode(out))
  end)

  it("leads lists every page, or one, as text and JSON", function()
    local c = assert(cs:create_campaign { name = "Campaign with leads" })
    for i = 1, 105 do
      assert(c:add_lead { email = ("lead%03d@example.org"):format(i), first_name = "Lead", company = "Co " .. i })
    end
    local before = sb:count("GET", "/leads$")
    local rc, out, err = run("leads " .. c.id)
    assert.equal(0, rc, err)
    assert.equal(2, sb:count("GET", "/leads$") - before) -- 100 a page
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(105, #lines)
    assert.matches("^lead001@example%.org +PENDING +Lead +Co 1$", lines[1])
    assert.equal("105 leads\n", err)
    rc, out, err = run("leads " .. c.id .. " --page 2 --limit 50 --search lead1")
    assert.equal(0, rc, err)
    assert.equal("", out) -- the 6 matches (lead100..lead105) fit on page 1
    assert.equal("page 2 of 1: 0 of 6 leads\n", err)
    rc, out, err = run("leads " .. c.id .. " --page 3 --limit 50")
    assert.equal(0, rc)
    assert.matches("^lead101@", out)
    assert.equal("page 3 of 3: 5 of 105 leads\n", err)
    rc, out = run("--json leads " .. c.id .. " --page 1 --limit 2")
    assert.equal(0, rc)
    local t = cjson.decode(out)
    assert.equal(2, #t.leads)
    assert.equal(105, t.pagination.total)
    rc, out = run("--json leads " .. c.id .. " --search lead10")
    assert.equal(0, rc)
    assert.equal(6, #cjson.decode(out)) -- lead100..lead105
    for args, msg in pairs {
      ["leads " .. c.id .. " --limit 0"] = 'bad --limit "0" (an integer 1..100 expected)',
      ["leads " .. c.id .. " --page x"] = 'bad --page "x" (an integer >= 1 expected)',
      ["leads " .. c.id .. " --page 0x2"] = 'bad --page "0x2" (an integer >= 1 expected)',
      ["leads " .. c.id .. " --limit 1e1"] = 'bad --limit "1e1" (an integer 1..100 expected)',
      ["leads nope"] = "bad campaign id",
    } do
      local rc2, out2, err2 = run(args)
      assert.equal(2, rc2, args)
      assert.equal("", out2)
      assert.matches(msg, err2, 1, true)
    end
    rc, _, err = run("leads " .. MISSING)
    assert.equal(1, rc)
    assert.matches("not_found", err, 1, true)
  end)

  it("leads and inboxes stop when a server repeats a page that says it has a next", function()
    local c = ready_campaign("Repeated pages campaign")
    local page = { success = true, pagination = { page = 1, limit = 100, has_next = true },
      leads = { { lead_id = "l1", email = "ada@example.org", status = "PENDING" } } }
    sb:fault { kind = "status", status = 200, method = "GET", path = "/leads$", times = -1, body = page }
    local rc, out, err = util.run(("cd %s && env COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s timeout 60 %s "
      .. "bin/coldsend leads %s </dev/null"):format(q(sandbox.root), q(sb.key), q(sb.url),
      os.getenv("COLDSEND_TEST_LUA") or "lua5.4", c.id))
    assert.equal(1, rc, err)
    assert.equal("", out)
    assert.matches("page 2 repeats what the server sent before", err, 1, true)
    sb:reset()
    sb:fault { kind = "status", status = 200, method = "GET", path = "^/sender%-accounts$", times = -1, body = {
      success = true, pagination = { page = 1, limit = 100, has_next = true },
      sender_accounts = { { inbox_id = "i1", email_address = "a@example.com" } } } }
    rc, out, err = run("--json inboxes")
    sb:reset() -- the fault hits every request until cleared
    assert.equal(1, rc, err)
    assert.equal("", out)
    assert.matches("page 2 repeats what the server sent before", err, 1, true)
    -- items that are not objects: shown as nothing, never a failure
    sb:fault { kind = "status", status = 200, method = "GET", path = "/leads$", body = {
      success = true, pagination = { page = 1, limit = 100, has_next = false },
      leads = { 5, "text", { lead_id = "l1", email = "ada@example.org", status = "PENDING" } } } }
    rc, out, err = run("leads " .. c.id)
    assert.equal(0, rc, err)
    assert.equal("ada@example.org                  PENDING   -                        -\n", out)
    sb:fault { kind = "status", status = 200, method = "GET", path = "^/sender%-accounts$", body = {
      success = true, pagination = { page = 1, limit = 100, has_next = false }, sender_accounts = { 7, false } } }
    rc, out, err = run("inboxes")
    assert.equal(0, rc, err)
    assert.equal("", out)
  end)

  it("inboxes add takes the fields from a file and the passwords from the environment", function()
    local file = util.write(tmpdir .. "/inbox.lua", INBOX:format("ada@example.com", "smtp.gmail.com", ""))
    local before = sb:count("POST", "/sender%-accounts/smtp$")
    local rc, out, err = run("inboxes add " .. q(file))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches("COLDSEND_SMTP_PASSWORD is not set (the smtp_password of ada@example.com)", err, 1, true)
    local secret = "app-password-4f2a"
    rc, out, err = run("inboxes add " .. q(file), { COLDSEND_SMTP_PASSWORD = secret })
    assert.equal(0, rc, err)
    assert.matches("^added inbox [%x-]+ ada@example%.com %(GOOGLE_WORKSPACE, 50/day, ACTIVE%)\n$", out)
    assert.equal(before + 1, sb:count("POST", "/sender%-accounts/smtp$"))
    -- the IMAP password fell back to the SMTP one; both were sent, shown nowhere
    local sent = sb:log()[#sb:log()]
    assert.equal(secret, sent.body.smtp_password)
    assert.equal(secret, sent.body.imap_password)
    -- again: 409, exit 1, the password not echoed
    rc, out, err = run("inboxes add " .. q(file), { COLDSEND_SMTP_PASSWORD = secret })
    assert.equal(1, rc)
    assert.matches("conflict (HTTP 409)", err, 1, true)
    assert.is_nil((out .. err):find(secret, 1, true))
    -- a password in the file is refused; _env names another variable
    file = util.write(tmpdir .. "/inline.lua",
      INBOX:format("bob@example.com", "smtp.gmail.com", '\n  smtp_password = "plain"'))
    rc, _, err = run("inboxes add " .. q(file), { COLDSEND_SMTP_PASSWORD = secret })
    assert.equal(2, rc)
    assert.matches("'smtp_password' is in the file; put the password in the environment", err, 1, true)
    file = util.write(tmpdir .. "/named.lua", INBOX:format("bob@example.com", "smtp.gmail.com",
      '\n  smtp_password_env = "BOB_SMTP", imap_password_env = "BOB_IMAP"'))
    rc, _, err = run("inboxes add " .. q(file), { BOB_SMTP = "bob-smtp-pass" })
    assert.equal(2, rc)
    assert.matches("BOB_IMAP is not set (the imap_password of bob@example.com)", err, 1, true)
    rc, out, err = run("--json inboxes add " .. q(file), { BOB_SMTP = "bob-smtp-pass", BOB_IMAP = "bob-imap-pass" })
    assert.equal(0, rc, err)
    assert.equal("bob@example.com", cjson.decode(out)[1].email_address)
    assert.equal("bob-imap-pass", sb:log()[#sb:log()].body.imap_password)
    -- a list: every inbox checked before the first is sent
    before = sb:count("POST", "/sender%-accounts/smtp$")
    local function two(a, b) return "return { " .. a:gsub("^return ", "") .. ", " .. b:gsub("^return ", "") .. " }" end
    file = util.write(tmpdir .. "/list.lua", two(INBOX:format("cy@example.com", "smtp.gmail.com", ""),
      INBOX:format("dee@example.com", "smtp.gmail.com", "\n  smtp_port = 70000,")))
    rc, _, err = run("inboxes add " .. q(file), { COLDSEND_SMTP_PASSWORD = secret })
    assert.equal(2, rc)
    assert.matches("inbox 2: bad value for 'smtp_port'", err, 1, true)
    assert.equal(before, sb:count("POST", "/sender%-accounts/smtp$"))
    -- a list with a gap or with fields beside it: refused, nothing sent
    for _, shape in ipairs { { "[3] = ", "3" }, { "extra = ", '"extra"' } } do
      file = util.write(tmpdir .. "/shape.lua", "return { " .. INBOX:format("cy@example.com", "smtp.gmail.com", "")
        :gsub("^return ", "") .. ", " .. shape[1] .. INBOX:format("dee@example.com", "smtp.gmail.com", "")
        :gsub("^return ", "") .. " }")
      rc, _, err = run("inboxes add " .. q(file), { COLDSEND_SMTP_PASSWORD = secret })
      assert.equal(2, rc, err)
      assert.matches("a table of inbox fields, or a list of them, expected (the list has a key " .. shape[2] .. ")",
        err, 1, true)
      assert.equal(before, sb:count("POST", "/sender%-accounts/smtp$"))
    end
    -- the first failure stops the rest
    file = util.write(tmpdir .. "/fails.lua", two(INBOX:format("eve@example.com", "smtp.host.invalid", ""),
      INBOX:format("fay@example.com", "smtp.gmail.com", "")))
    rc, _, err = run("inboxes add " .. q(file), { COLDSEND_SMTP_PASSWORD = secret })
    assert.equal(1, rc)
    assert.matches("inbox 1 (eve@example.com) was not added", err, 1, true)
    assert.matches("SMTP connection failed", err, 1, true)
    assert.equal(before + 1, sb:count("POST", "/sender%-accounts/smtp$"))
  end)

  it("inboxes lists every sender account, as text and JSON", function()
    local rc, out, err = run("inboxes")
    assert.equal(0, rc, err)
    assert.matches("[%x-]+  ada@example%.com +GOOGLE_WORKSPACE +50/day  ACTIVE\n", out)
    assert.matches("^%d+ inboxes\n$", err)
    rc, out = run("--json inboxes")
    assert.equal(0, rc)
    local found
    for _, ib in ipairs(cjson.decode(out)) do
      if ib.email_address == "bob@example.com" then found = ib end
    end
    assert.truthy(found)
    assert.is_nil(found.smtp_password)
    rc, _, err = run("inboxes list")
    assert.equal(2, rc)
    assert.matches("'inboxes' takes no arguments, or add FILE", err, 1, true)
  end)
end)
