-- folder_spec.lua: `coldsend plan DIR` / `apply DIR` against the sandbox
-- over loopback (libcurl): one plan for every file, one confirmation, the
-- writes in order stopping at the first failure, the id record that makes
-- the next plan an update, --write-id, and 100 files under a server rate
-- limit with progress on a terminal.
local cjson = require "cjson"
local coldsend = require "coldsend"
local cli = require "coldsend.cli"
local clih = require "spec.helpers.cli"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local q = util.q
local _ -- the values a test leaves out

local function fresh_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  return dir
end

local function campaign(dir, file, name, limit, extra)
  return util.write(dir .. "/" .. file, string.format(
    "return {\n  %sname = %q,\n  daily_limit_per_inbox = %d,\n}\n", extra or "", name, limit))
end

describe("coldsend plan/apply DIR", function()
  local sb, env, cs, dirs = nil, nil, nil, {}

  local function run(args, other_env)
    return clih.run(other_env or env, args)
  end

  local function dir()
    local d = fresh_dir()
    dirs[#dirs + 1] = d
    return d
  end

  setup(function()
    sb = sandbox.start { rate_limit = false }
    env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0, rate_limit = false }
  end)

  teardown(function()
    sb:stop()
    for _, d in ipairs(dirs) do os.execute("rm -rf " .. q(d)) end
  end)

  it("plans a folder of new campaigns offline, every file in name order", function()
    local d = dir()
    campaign(d, "b.lua", "Folder campaign B", 20)
    campaign(d, "a.lua", "Folder campaign A", 10)
    util.write(d .. "/notes.txt", "not a campaign")
    util.write(d .. "/.hidden.lua", "error('never loaded')")
    local rc, out, err = run("plan " .. q(d), {})
    assert.equal(0, rc, err)
    local a = out:find(d .. "/a.lua\n+ create campaign \"Folder campaign A\"\n", 1, true)
    local b = out:find(d .. "/b.lua\n", 1, true)
    assert.truthy(a and b and a < b, out)
    assert.matches("\nFolder: 2 to create, 0 to update, 0 unchanged %(2 campaign files%)%.\n$", out)
    rc, out = run("--json plan " .. q(d), {})
    assert.equal(0, rc)
    local t = cjson.decode(out)
    assert.equal(2, t.create)
    assert.equal(d .. "/a.lua", t.campaigns[1].file)
    assert.equal("create", t.campaigns[2].action)
  end)

  it("applies a folder once confirmed, records the ids, and the next plan is an update", function()
    local d = dir()
    campaign(d, "a.lua", "Applied campaign A", 10)
    campaign(d, "b.lua", "Applied campaign B", 20)
    local posts = sb:count("POST", "^/campaigns$")
    -- no terminal, no --yes: nothing sent
    local rc, out, err = run("apply " .. q(d))
    assert.equal(2, rc)
    assert.matches("Folder: 2 to create", out, 1, true)
    assert.matches("--yes", err, 1, true)
    assert.equal(posts, sb:count("POST", "^/campaigns$"))
    rc, out, err = run("apply --yes " .. q(d))
    assert.equal(0, rc, err)
    assert.equal(posts + 2, sb:count("POST", "^/campaigns$"))
    local record = cjson.decode((assert(util.slurp(d .. "/.coldsend-ids.json"))))
    assert.equal(1, record.version)
    local id_a = record.ids["a.lua"]
    assert.truthy(require("coldsend.core").is_uuid(id_a))
    assert.matches("created a.lua: campaign " .. id_a .. "\n  recorded the id of a.lua in "
      .. d .. "/.coldsend-ids.json", out, 1, true)
    assert.equal("Applied campaign A", assert(cs:get_campaign(id_a)).name)
    -- no hand edit: the next plan is "no changes", then an update
    rc, out = run("plan " .. q(d))
    assert.equal(0, rc)
    assert.matches("Folder: 0 to create, 0 to update, 2 unchanged", out, 1, true)
    campaign(d, "b.lua", "Applied campaign B", 25)
    rc, out = run("plan " .. q(d))
    assert.equal(0, rc)
    assert.matches("~ daily_limit_per_inbox: 20 -> 25", out, 1, true)
    assert.matches("Folder: 0 to create, 1 to update, 1 unchanged", out, 1, true)
    -- one file of a recorded folder plans against the record too
    rc, out = run("plan " .. q(d .. "/b.lua"))
    assert.equal(0, rc)
    assert.matches("~ update campaign " .. record.ids["b.lua"], out, 1, true)
    rc, out, err = run("--json apply --yes " .. q(d))
    assert.equal(0, rc, err)
    local t = cjson.decode(out)
    assert.equal("unchanged", t.campaigns[1].result)
    assert.equal("updated", t.campaigns[2].result)
    assert.equal(cjson.null, t.failed)
    assert.equal(25, assert(cs:get_campaign(record.ids["b.lua"])).daily_limit_per_inbox)
  end)

  it("stops at the first failure, saying what was and was not applied", function()
    local d = dir()
    for i, n in ipairs { "a", "b", "c", "d" } do campaign(d, n .. ".lua", "Stopping campaign " .. n, i) end
    sb:fault { kind = "status", status = 400, method = "POST", path = "^/campaigns$", skip = 1,
      body = { detail = "Campaign quota reached" } }
    local rc, out, err = run("apply --yes " .. q(d))
    assert.equal(1, rc, err)
    assert.matches("created a.lua: campaign", out, 1, true)
    assert.matches("coldsend: " .. d .. "/b.lua: apply failed\ncoldsend: bad_request (HTTP 400)", err, 1, true)
    assert.matches("Campaign quota reached", err, 1, true)
    assert.matches("\napplied: a.lua\nnot applied: c.lua, d.lua\n$", out)
    local record = cjson.decode((assert(util.slurp(d .. "/.coldsend-ids.json"))))
    assert.truthy(record.ids["a.lua"])
    assert.is_nil(record.ids["b.lua"])
    -- the re-run picks up where it stopped
    rc, out, err = run("apply --yes " .. q(d))
    assert.equal(0, rc, err)
    assert.matches("Folder: 3 to create, 0 to update, 1 unchanged", out, 1, true)
  end)

  it("loads and checks every file before sending anything (exit 2)", function()
    local d = dir()
    campaign(d, "a.lua", "Good campaign one", 10)
    campaign(d, "b.lua", "Bad campaign", 150)
    util.write(d .. "/c.lua", "return {")
    campaign(d, "d.lua", "Good campaign two", 10, 'id = "550e8400-e29b-41d4-a716-446655440000",\n  ')
    local before = #sb:log()
    local rc, out, err = run("plan " .. q(d))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches("b.lua: bad value for 'daily_limit_per_inbox' (integer 1..100 expected, got 150)", err, 1, true)
    assert.matches("c.lua:1:", err, 1, true)
    assert.matches("2 of 4 campaign files have problems; nothing was sent", err, 1, true)
    assert.equal(before, #sb:log())
    -- a campaign that is gone: exit 1, naming the file
    os.remove(d .. "/b.lua")
    os.remove(d .. "/c.lua")
    rc, out, err = run("plan " .. q(d))
    assert.equal(1, rc)
    assert.equal("", out)
    assert.matches(d .. "/d.lua: the plan failed; nothing was sent", err, 1, true)
    assert.matches("not_found", err, 1, true)
    rc, _, err = run("apply --launch --yes " .. q(d))
    assert.equal(2, rc)
    assert.matches("apply --launch takes one campaign file, not a folder", err, 1, true)
    rc, _, err = run("plan " .. q(dir()))
    assert.equal(2, rc)
    assert.matches("holds no campaign files", err, 1, true)
  end)

  it("takes files of any name, and names the file whose error cannot be shown", function()
    local d = dir()
    campaign(d, "new\nline.lua", "Newline in the file name", 10)
    campaign(d, "it's -x.lua", "Quote in the file name", 10)
    campaign(d, "-dash.lua", "Dash first in the file name", 10)
    campaign(d, "not-lua.txt", "Not a campaign file", 10)
    campaign(d, ".hidden.lua", "Hidden campaign file", 10)
    local rc, out, err = run("--json plan " .. q(d))
    assert.equal(0, rc, err)
    local names = {}
    for _, c in ipairs(cjson.decode(out).campaigns) do names[#names + 1] = c.name end
    assert.same({ "Dash first in the file name", "Quote in the file name", "Newline in the file name" }, names)
    util.write(d .. "/bad.lua", 'error(setmetatable({}, { __tostring = function() error("no text") end }))\n')
    rc, out, err = run("plan " .. q(d))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches(d .. "/bad.lua: an error whose __tostring failed (no text)", err, 1, true)
    assert.matches("1 of 4 campaign files have problems", err, 1, true)
  end)

  it("says so when a created campaign's id cannot be recorded, and stops", function()
    local d = dir()
    campaign(d, "a.lua", "Unrecorded campaign A", 10)
    campaign(d, "b.lua", "Unrecorded campaign B", 10)
    assert(os.execute("mkdir " .. q(d .. "/.coldsend-ids.json"))) -- a folder: it cannot be written
    local rc, out, err = run("apply --yes " .. q(d))
    assert.equal(1, rc)
    local id = err:match(": created campaign ([%x-]+) but could not record its id: cannot write ")
    assert.truthy(id, err)
    assert.matches('add  id = "' .. id .. '"  to the file', err, 1, true)
    assert.matches("\napplied: a.lua\nnot applied: b.lua\n$", out)
    assert.equal("Unrecorded campaign A", assert(cs:get_campaign(id)).name)
  end)

  it("refuses two files that manage one campaign", function()
    local d = dir()
    local c = assert(cs:create_campaign { name = "Managed twice campaign" })
    campaign(d, "a.lua", "Managed twice campaign", 10, ("id = %q,\n  "):format(c.id))
    campaign(d, "b.lua", "Managed twice campaign", 20)
    util.write(d .. "/.coldsend-ids.json", ('{"version": 1, "ids": {"b.lua": "%s"}}'):format(c.id))
    local before = #sb:log()
    local rc, out, err = run("apply --yes " .. q(d))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches(d .. "/a.lua and " .. d .. "/b.lua both manage campaign " .. c.id .. " (see "
      .. d .. "/.coldsend-ids.json)", err, 1, true)
    assert.equal(before, #sb:log())
    -- the same UUID in upper case is the same campaign
    util.write(d .. "/.coldsend-ids.json", ('{"version": 1, "ids": {"b.lua": "%s"}}'):format(c.id))
    campaign(d, "a.lua", "Managed twice campaign", 10, ("id = %q,\n  "):format(c.id:upper()))
    rc, out, err = run("apply --yes " .. q(d))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches(d .. "/a.lua and " .. d .. "/b.lua both manage campaign " .. c.id, err, 1, true)
    assert.equal(before, #sb:log())
  end)

  it("names the record when a recorded campaign is gone, and refuses a bad record", function()
    local d = dir()
    campaign(d, "a.lua", "Recorded then deleted", 10)
    util.write(d .. "/.coldsend-ids.json",
      '{"version": 1, "ids": {"a.lua": "550e8400-e29b-41d4-a716-446655440000"}}')
    local rc, _, err = run("plan " .. q(d))
    assert.equal(1, rc)
    assert.matches("the id of a.lua comes from " .. d .. "/.coldsend-ids.json; remove its entry", err, 1, true)
    -- a recorded file that is gone (renamed?): a warning naming it
    os.rename(d .. "/a.lua", d .. "/a-renamed.lua")
    local out
    rc, out, err = run("plan " .. q(d))
    assert.equal(0, rc, err)
    assert.matches("create campaign", out, 1, true)
    assert.matches("coldsend: warning: " .. d .. "/.coldsend-ids.json records a.lua (campaign "
      .. "550e8400-e29b-41d4-a716-446655440000), which is not in the folder; if it was renamed, "
      .. "move its entry to the new name", err, 1, true)
    util.write(d .. "/.coldsend-ids.json", '{"ids": []}')
    rc, _, err = run("plan " .. q(d))
    assert.equal(2, rc)
    assert.matches(".coldsend-ids.json is not an id record of this version", err, 1, true)
  end)

  it("--write-id puts the id into the file, keeping its mode", function()
    local d = dir()
    local file = util.write(d .. "/one.lua",
      "-- a campaign\nlocal x = 5\nreturn {\n  name = \"Written id campaign\",\n  daily_limit_per_inbox = x,\n}\n")
    os.execute("chmod 644 " .. q(file))
    local rc, out, err = run("apply --yes --write-id " .. q(file))
    assert.equal(0, rc, err)
    local id = out:match('wrote id = "([%x-]+)" into ')
    assert.truthy(id, out)
    assert.equal("-- a campaign\nlocal x = 5\nreturn {\n  id = \"" .. id
      .. "\",\n  name = \"Written id campaign\",\n  daily_limit_per_inbox = x,\n}\n",
      util.slurp(file))
    local p = io.popen("stat -c %a " .. q(file))
    assert.equal("644", p:read("*l"))
    p:close()
    rc, out = run("plan " .. q(file))
    assert.equal(0, rc)
    assert.matches("no changes", out, 1, true)
    -- a loose file without --write-id: the id is printed, nothing recorded
    file = campaign(d, "two.lua", "Loose file campaign", 10)
    os.remove(d .. "/.coldsend-ids.json")
    rc, out = run("apply --yes " .. q(file))
    assert.equal(0, rc)
    assert.matches('add  id = "[%x-]+"  to ' .. d:gsub("%p", "%%%0") .. "/two.lua", out)
    assert.is_nil(util.slurp(d .. "/.coldsend-ids.json"))
  end)

  it("--write-id writes through a symlink, keeps CRLF lines and leaves a read-only file alone", function()
    local d = dir()
    assert(os.execute("mkdir " .. q(d .. "/shared")))
    local target = util.write(d .. "/shared/real.lua", "return {\n  name = \"Symlinked campaign file\",\n}\n")
    os.execute("chmod 640 " .. q(target))
    assert(os.execute("ln -s shared/real.lua " .. q(d .. "/link.lua")))
    local rc, out, err = run("apply --yes --write-id " .. q(d .. "/link.lua"))
    assert.equal(0, rc, err)
    local id = assert(out:match('wrote id = "([%x-]+)" into '), out)
    -- the link is still a link, its target holds the id and keeps its mode
    local lp = io.popen("test -L " .. q(d .. "/link.lua") .. " && echo link")
    assert.equal("link", lp:read("*l"))
    lp:close()
    assert.equal('return {\n  id = "' .. id .. '",\n  name = "Symlinked campaign file",\n}\n', util.slurp(target))
    local p = io.popen("stat -c %a " .. q(target))
    assert.equal("640", p:read("*l"))
    p:close()
    -- CRLF: the inserted line ends as the others do
    local crlf = util.write(d .. "/crlf.lua", "return {\r\n  name = \"CRLF campaign file\",\r\n}\r\n")
    rc, out, err = run("apply --yes --write-id " .. q(crlf))
    assert.equal(0, rc, err)
    id = assert(out:match('wrote id = "([%x-]+)" into '), out)
    assert.equal('return {\r\n  id = "' .. id .. '",\r\n  name = "CRLF campaign file",\r\n}\r\n', util.slurp(crlf))
    -- a `return {` in a comment after the file's own is passed over
    local commented = util.write(d .. "/commented.lua",
      'return {\n  name = "Commented campaign file",\n}\n-- e.g. return { name = "Other" }\n')
    rc, out, err = run("apply --yes --write-id " .. q(commented))
    assert.equal(0, rc, err)
    id = assert(out:match('wrote id = "([%x-]+)" into '), out)
    assert.equal('return {\n  id = "' .. id .. '",\n  name = "Commented campaign file",\n}\n'
      .. '-- e.g. return { name = "Other" }\n', util.slurp(commented))
    -- read-only: created, the file untouched, the id printed, exit 1
    local ro = util.write(d .. "/ro.lua", "return {\n  name = \"Read-only campaign file\",\n}\n")
    os.execute("chmod 444 " .. q(ro))
    rc, out, err = run("apply --yes --write-id " .. q(ro))
    assert.equal(1, rc)
    assert.matches(ro .. " is read-only", err, 1, true)
    id = assert(out:match("created: coldsend.campaign ([%x-]+)"), out)
    assert.matches('add  id = "' .. id .. '"  to ' .. ro, err, 1, true)
    assert.equal("Read-only campaign file", assert(cs:get_campaign(id)).name)
    assert.equal("return {\n  name = \"Read-only campaign file\",\n}\n", util.slurp(ro))
  end)

  it("writes a symlinked id record through its link", function()
    local d = dir()
    campaign(d, "a.lua", "Symlinked record campaign", 10)
    assert(os.execute("mkdir " .. q(d .. "/state")))
    util.write(d .. "/state/ids.json", '{"version": 1, "ids": {}}\n')
    assert(os.execute("ln -s state/ids.json " .. q(d .. "/.coldsend-ids.json")))
    local rc, out, err = run("apply --yes " .. q(d))
    assert.equal(0, rc, err)
    local id = assert(out:match("created a.lua: campaign ([%x-]+)"), out)
    local p = io.popen("test -L " .. q(d .. "/.coldsend-ids.json") .. " && echo link")
    assert.equal("link", p:read("*l"))
    p:close()
    assert.equal(id, cjson.decode(util.slurp(d .. "/state/ids.json")).ids["a.lua"])
  end)

  it("asks once for the whole folder", function()
    local d = dir()
    campaign(d, "a.lua", "Prompted campaign A", 10)
    campaign(d, "b.lua", "Prompted campaign B", 10)
    local io_, _, err = clih.fake_io(env, "n")
    local posts = sb:count("POST", "^/campaigns$")
    assert.equal(1, cli.main({ "apply", d }, io_))
    local asked = select(2, table.concat(err):gsub("Apply%? %[y/N%]", ""))
    assert.equal(1, asked)
    assert.equal(posts, sb:count("POST", "^/campaigns$"))
  end)

  describe("a hundred campaign files", function()
    local big

    setup(function()
      big = fresh_dir()
      dirs[#dirs + 1] = big
      for i = 1, 100 do
        local c = assert(cs:create_campaign { name = ("Bulk campaign %03d"):format(i), daily_limit_per_inbox = 10 })
        campaign(big, ("c%03d.lua"):format(i), ("Bulk campaign %03d"):format(i), i % 7 == 0 and 11 or 10,
          ("id = %q,\n  "):format(c.id))
      end
    end)

    it("plan in one run under the server's rate limit, with progress on a terminal", function()
      -- the API's own budget, 100 a minute: the 100 GETs use all of it and
      -- the client (its bucket, and the X-RateLimit headers it reads) never
      -- goes over it
      sb:config { rate_limit = 100, rate_window = 60 }
      local before = sb:log()
      local seq = before[#before] and before[#before].seq or 0
      local io_, out, err = clih.fake_io(env, nil, true)
      local code = cli.main({ "plan", big }, io_)
      sb:config { rate_limit = false }
      local text = table.concat(out)
      assert.equal(0, code, table.concat(err))
      assert.matches("Folder: 0 to create, 14 to update, 86 unchanged (100 campaign files).", text, 1, true)
      local progress = table.concat(err)
      assert.matches("planning 1/100 c001.lua", progress, 1, true)
      assert.matches("planning 100/100 c100.lua", progress, 1, true)
      local gets, limited = 0, 0
      for _, entry in ipairs(sb:log(seq)) do
        if entry.method == "GET" and entry.path:match("^/campaigns/") then
          gets = gets + 1
          if entry.status == 429 then limited = limited + 1 end
        end
      end
      assert.equal(100, gets)
      assert.equal(0, limited)
    end)
  end)
end)
