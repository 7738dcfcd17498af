-- export_spec.lua: `coldsend export` against the sandbox over loopback
-- (libcurl): random campaigns (hostile strings, nulls, variants,
-- follow-ups) round-trip through export and plan with no changes; the
-- command's file, stdout, --all, --force, --json and exit codes.
local cjson = require "cjson"
local coldsend = require "coldsend"
local cli = require "coldsend.cli"
local export = require "coldsend.export"
local clih = require "spec.helpers.cli"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local q = util.q
local _ -- the values a test leaves out

local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute("mkdir -p " .. q(tmpdir)))

local run = clih.run

-- Random campaigns: every field, strings built of the characters a file
-- must escape (quotes, backslashes, newlines, CR, tabs, control
-- characters, "]]" and "]=]" that end long strings) and UTF-8.
local PIECES = { "a", "Z", " ", "'", '"', "\\", "\n", "\r\n", "\t", "\1", "\27[31m", "]]", "]=]",
  "[[", "é", "日本", "😀", "{{first_name}}", "--", "%s", "\127", "0", "\194\133" }

-- and, one time in two, text a person writes: no control character but
-- newlines and tabs (a long string in the file)
local PLAIN = { "a", "Z", " ", "'", '"', "\\", "\n", "\t", "]]", "]=]", "[[", "é", "😀",
  "{{first_name}}", "--" }

local function rand_string(rnd, min, max)
  local parts, len = {}, 0
  local want = rnd(0, max - min)
  local pieces = rnd(1, 2) == 1 and PLAIN or PIECES
  while len < want do
    local p = pieces[rnd(1, #pieces)]
    parts[#parts + 1] = p
    len = len + #p
  end
  -- min counts characters: start with as many plain ones
  return ("x"):rep(min) .. table.concat(parts)
end

local function split100(rnd, n)
  local t, left = {}, 100
  for i = 1, n - 1 do
    t[i] = rnd(0, left)
    left = left - t[i]
  end
  t[n] = left
  return t
end

local function rand_variants(rnd)
  local n = rnd(1, 4)
  local pct = split100(rnd, n)
  local vs = {}
  for i = 1, n do
    local v = { subject_template = rand_string(rnd, 1, 40), email_content = rand_string(rnd, 10, 200),
      distribution_percent = pct[i] }
    if rnd(1, 2) == 1 then v.variant_name = string.char(64 + i) end
    if rnd(1, 3) == 1 then v.variant_label = rand_string(rnd, 1, 30) end
    vs[i] = v
  end
  return vs
end

local ZONES = { "America/New_York", "Europe/Paris", "Asia/Tokyo", "UTC" }
local TRIGGERS = { "NOT_OPENED", "NOT_REPLIED", "OPENED_BUT_NOT_REPLIED" }

local function rand_campaign(rnd, inbox_ids)
  local start = rnd(0, 22)
  local t = {
    name = rand_string(rnd, 8, 80),
    timezone = ZONES[rnd(1, #ZONES)],
    sending_window_start = start, sending_window_start_minute = rnd(0, 59),
    sending_window_end = rnd(start + 1, 23), sending_window_end_minute = rnd(0, 59),
    enable_tracking = rnd(1, 2) == 1, enable_unsubscribe = rnd(1, 2) == 1,
    variants = rand_variants(rnd),
  }
  if rnd(1, 2) == 1 then
    t.ramp_up_enabled, t.ramp_up_increment = true, rnd(1, 500)
    t.ramp_up_max_limit = rnd(t.ramp_up_increment, 10000)
  end
  if rnd(1, 2) == 1 then t.daily_limit_per_inbox = rnd(1, 100) end
  if rnd(1, 2) == 1 then
    t.start_date = string.format("2027-%02d-%02dT%02d:%02d:00Z", rnd(1, 12), rnd(1, 28), rnd(0, 23), rnd(0, 59))
  end
  local days, seen = {}, {}
  for _ = 1, rnd(1, 7) do
    local d = rnd(1, 7)
    if not seen[d] then seen[d] = true; days[#days + 1] = d end
  end
  t.sending_days = days
  if rnd(1, 2) == 1 then
    t.lead_mapping = { email = rand_string(rnd, 1, 20), first_name = rand_string(rnd, 1, 20),
      custom_size = rand_string(rnd, 1, 20) }
  end
  if rnd(1, 2) == 1 then t.inbox_ids = { inbox_ids[rnd(1, #inbox_ids)] } end
  local seqs = {}
  for i = 1, rnd(0, 3) do
    local s = { trigger_type = TRIGGERS[rnd(1, 3)], wait_days = rnd(1, 30), variants = rand_variants(rnd) }
    if rnd(1, 2) == 1 then s.step_number = i + 1 end
    if rnd(1, 3) == 1 then s.enable_unsubscribe = rnd(1, 2) == 1 end
    seqs[i] = s
  end
  if #seqs > 0 then t.sequences = seqs end
  return t
end

-- A Park-Miller generator: the same campaigns on every Lua.
local function generator(seed)
  local state = seed
  return function(a, b)
    state = (state * 16807) % 2147483647
    return a + state % (b - a + 1)
  end
end

describe("coldsend export", function()
  local sb, env, cs, inbox_ids

  setup(function()
    sb = sandbox.start { rate_limit = false }
    env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0, rate_limit = false }
    inbox_ids = {}
    for i = 1, 2 do inbox_ids[i] = clih.inbox(cs, "export" .. i .. "@example.com").inbox_id end
  end)

  teardown(function()
    sb:stop()
    os.execute("rm -rf " .. q(tmpdir))
  end)

  it("round-trips random campaigns: export, then plan shows no changes", function()
    local rnd = generator(20261203)
    local path = tmpdir .. "/roundtrip.lua"
    local long_strings, escaped = 0, 0
    for i = 1, 40 do
      local fields = rand_campaign(rnd, inbox_ids)
      local c = assert(cs:create_campaign(fields))
      local server = assert(cs:get_campaign(c.id))
      local text = export.campaign_file(server)
      util.write(path, text)
      local def, lerr = cli.load_file(path)
      assert(def, tostring(lerr) .. "\n" .. text)
      assert.equal(c.id, def.id)
      local p = assert(cs:plan(def))
      assert.equal("none", p.action, ("campaign %d:\n%s\n%s"):format(i, tostring(p), text))
      -- the file manages what the server holds: a change to it shows
      def.daily_limit_per_inbox = (server.daily_limit_per_inbox or 0) % 100 + 1
      assert.equal("update", assert(cs:plan(def)).action)
      -- bodies with a newline and no other control character are long strings
      for _, v in ipairs(server.variants) do
        local body = v.email_content
        if body:find("\n") and not body:find("[%z\1-\8\11-\31\127]") then
          assert.truthy(text:find("\n" .. body .. "]", 1, true), body)
          long_strings = long_strings + 1
        elseif body:find("[\r\1\27]") then
          escaped = escaped + 1
        end
      end
    end
    -- the generator made both kinds often
    assert.truthy(long_strings >= 5, long_strings)
    assert.truthy(escaped >= 20, escaped)
  end)

  it("writes a hostile server's values as data, never as code", function()
    local id = "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
    local evil = 'x"]] error("injected") --[[\n]==] error("injected")'
    sb:fault { kind = "status", status = 200, method = "GET", path = "/campaigns/" .. id, body = {
      campaign_id = id, name = evil, status = "DRAFT", daily_limit_per_inbox = 30,
      ramp_up_enabled = false, ramp_up_increment = "1\nerror('injected')",
      lead_mapping = { email = "Email", ["x]]\nerror('injected')"] = evil,
        opener = "an opening [[ and no closing\nsecond line" }, -- Lua 5.1 refuses [[ in [[...]]
      variants = { { variant_name = "A", subject_template = evil, email_content = evil .. "\n\r",
        distribution_percent = 100 } },
      sequences = {}, inbox_ids = {}, sending_days = { 1 } } }
    local rc, out, err = run(env, "export " .. id)
    assert.equal(0, rc, err)
    local file = util.write(tmpdir .. "/hostile.lua", out)
    local def, lerr = cli.load_file(file)
    assert.truthy(def, lerr)
    assert.equal(evil, def.name)
    assert.equal(evil .. "\n\r", def.variants[1].email_content)
    assert.equal(evil, def.lead_mapping["x]]\nerror('injected')"])
    assert.equal("an opening [[ and no closing\nsecond line", def.lead_mapping.opener)
    assert.is_nil(def.ramp_up_increment) -- left as a comment, on one line
  end)

  it("writes NaN and infinities as numbers the file loads (never as the names nan and inf)", function()
    local nan, inf = 0 / 0, 1 / 0
    local text = export.campaign_file { id = "6ba7b810-9dad-41d1-80b4-00c04fd430c8", name = "Odd numbers",
      daily_limit_per_inbox = nan, sending_window_start = inf, sending_window_end = -inf,
      lead_mapping = { a = nan, b = inf, c = -inf, d = 1e300, e = -2.5e-300, f = 2 ^ 53 + 2 } }
    local file = util.write(tmpdir .. "/odd-numbers.lua", text)
    local def, lerr = cli.load_file(file)
    assert(def, tostring(lerr) .. "\n" .. text)
    assert.is_nil(text:find("nan", 1, true), text)
    assert.is_nil(text:find("inf", 1, true), text)
    assert.truthy(def.daily_limit_per_inbox ~= def.daily_limit_per_inbox)
    assert.equal(inf, def.sending_window_start)
    assert.equal(-inf, def.sending_window_end)
    assert.truthy(def.lead_mapping.a ~= def.lead_mapping.a)
    assert.equal(inf, def.lead_mapping.b)
    assert.equal(-inf, def.lead_mapping.c)
    assert.equal(1e300, def.lead_mapping.d)
    assert.equal(-2.5e-300, def.lead_mapping.e)
    assert.equal(2 ^ 53 + 2, def.lead_mapping.f)
  end)

  it("exports a file that plan shows unchanged, through the command", function()
    local c = assert(cs:create_campaign {
      name = "Export through the CLI", daily_limit_per_inbox = 25,
      variants = { { variant_name = "A", subject_template = "Hello {{first_name}}",
        email_content = "Hi {{first_name}},\n\nA short note.\n", distribution_percent = 100 } },
    })
    local file = tmpdir .. "/exported.lua"
    local rc, out, err = run(env, "export " .. c.id .. " " .. q(file))
    assert.equal(0, rc, err)
    assert.equal("exported campaign " .. c.id .. ' "Export through the CLI" to ' .. file .. "\n", out)
    local written = assert(util.slurp(file))
    assert.matches('email_content = [[\nHi {{first_name}},\n\nA short note.\n]],', written, 1, true)
    rc, out, err = run(env, "plan " .. q(file))
    assert.equal(0, rc, err)
    assert.equal("  campaign " .. c.id .. ' "Export through the CLI": no changes\n', out)
    -- stdout without FILE: the same text
    local rc2, out2 = run(env, "export " .. c.id)
    assert.equal(0, rc2)
    assert.equal(written, out2)
    -- an existing file is kept unless --force
    rc, out, err = run(env, "export " .. c.id .. " " .. q(file))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches("exists; --force replaces it", err, 1, true)
    rc = run(env, "export --force " .. c.id .. " " .. q(file))
    assert.equal(0, rc)
    -- --json
    rc, out = run(env, "--json export " .. c.id)
    assert.equal(0, rc)
    local t = cjson.decode(out)
    assert.equal(c.id, t.id)
    assert.equal(written, t.campaign_file)
  end)

  it("exits 2 for a bad id and 1 for a campaign that does not exist", function()
    local rc, _, err = run(env, "export not-a-uuid")
    assert.equal(2, rc)
    assert.matches("bad campaign id", err, 1, true)
    rc, _, err = run(env, "export 550e8400-e29b-41d4-a716-446655440000")
    assert.equal(1, rc)
    assert.matches("not_found", err, 1, true)
    rc, _, err = run(env, "export")
    assert.equal(2, rc)
    assert.matches("'export' takes ID [FILE] (or --all DIR)", err, 1, true)
  end)

  it("--all writes one file per campaign, each planning unchanged", function()
    sb:reset()
    local names = { "Q1 Outreach: CTOs", "Q1 Outreach: CTOs", "Partners / EU 2027" }
    for _, name in ipairs(names) do assert(cs:create_campaign { name = name }) end
    local dir = tmpdir .. "/all"
    local rc, out, err = run(env, "--json export --all " .. q(dir))
    assert.equal(0, rc, err)
    local list = cjson.decode(out)
    assert.equal(3, #list)
    local files = {}
    for _, item in ipairs(list) do files[#files + 1] = item.file:match("[^/]+$") end
    table.sort(files)
    assert.same({ "partners-eu-2027.lua", "q1-outreach-ctos-2.lua", "q1-outreach-ctos.lua" }, files)
    for _, item in ipairs(list) do
      local rc2, out2, err2 = run(env, "plan " .. q(item.file))
      assert.equal(0, rc2, err2)
      assert.matches("no changes", out2, 1, true)
    end
    -- again: the files exist
    rc, _, err = run(env, "export --all " .. q(dir))
    assert.equal(2, rc)
    assert.matches("exists; --force replaces it (nothing exported)", err, 1, true)
    rc = run(env, "export --all --force " .. q(dir))
    assert.equal(0, rc)
    -- a list item without a UUID: a protocol error, exit 1, nothing written
    local bad_dir = tmpdir .. "/bad-ids"
    sb:fault { kind = "status", status = 200, method = "GET", path = "^/campaigns$", body = {
      success = true, pagination = { page = 1, limit = 100, has_next = false },
      campaigns = { { campaign_id = list[1].id, name = "Fine" }, { campaign_id = "../../x", name = "Bad id" } } } }
    rc, out, err = run(env, "export --all " .. q(bad_dir))
    assert.equal(1, rc)
    assert.equal("", out)
    assert.matches('campaign 2 of the list has no UUID ("../../x"); nothing exported', err, 1, true)
    assert.is_nil(util.slurp(bad_dir .. "/fine.lua"))
    -- one file of three exists: nothing is written, whichever it is
    for _, keep in ipairs(list) do
      for _, item in ipairs(list) do os.remove(item.file) end
      util.write(keep.file, "-- mine\n")
      rc, out, err = run(env, "export --all " .. q(dir))
      assert.equal(2, rc)
      assert.equal("", out)
      assert.matches(keep.file .. " exists; --force replaces it (nothing exported)", err, 1, true)
      for _, item in ipairs(list) do
        assert.equal(item == keep and "-- mine\n" or nil, util.slurp(item.file))
      end
    end
  end)
end)
