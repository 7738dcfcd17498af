-- cli_doc_spec.lua: runs every "<!-- cli transcript: NAME -->" block of
-- doc/cli.md against a sandbox over loopback and compares the output,
-- stdout and stderr as a terminal interleaves them, line for line. Each
-- block's campaigns are made by SETUP[NAME]; the UUIDs of the block stand,
-- in order of appearance, for the ids that setup returns.
local coldsend = require "coldsend"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local ROOT = io.popen("cd " .. util.q(sandbox.root) .. " && pwd"):read("*l")
local q = util.q
local UUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"

local function plain(s) return (s:gsub("%p", "%%%0")) end
-- The sandbox's URL as the docs show it (make sandbox's).
local DOC_URL = "http://127.0.0.1:8089/api/public/v1"
-- Times (created_at...) as the docs show them.
local ISO_TIME = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ"
local DOC_TIME = "2027-01-04T09:30:00Z"

-- The transcripts of a document: { {name=, text=, steps={ {cmd=, expected=} }} }
local function transcripts(doc)
  local list = {}
  for name, block in doc:gmatch("<!%-%- cli transcript: ([%w_-]+) %-%->%s*```[^\n]*\n(.-)```") do
    local t = { name = name, text = block, steps = {} }
    for line in block:gmatch("[^\n]*\n") do
      local cmd = line:match("^%$ (.-)\n$")
      if cmd then
        t.steps[#t.steps + 1] = { cmd = cmd, expected = "" }
      else
        local step = assert(t.steps[#t.steps], name .. ": output before any command")
        step.expected = step.expected .. line
      end
    end
    list[#list + 1] = t
  end
  return list
end

local CAMPAIGN = {
  name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 30,
  lead_mapping = { email = "Email", first_name = "First name" },
  variants = {
    { variant_name = "A", subject_template = "Quick question, {{first_name}}",
      email_content = 'Hi {{first_name}},\n\nDoes "{{company}}" still pack orders by hand?\n\nAda',
      distribution_percent = 50 },
    { variant_name = "B", subject_template = "An idea for {{company}}",
      email_content = "Hi {{first_name}}, one idea for {{company}}.", distribution_percent = 50 },
  },
  sequences = { { trigger_type = "NOT_REPLIED", wait_days = 3, variants = {
    { subject_template = "Re: Quick question", email_content = "Hi {{first_name}},\n\nJust bumping this up.\n" } } } },
}

-- Per transcript: makes what it shows; returns the ids its UUIDs stand for.
local SETUP = {}

function SETUP.export(cs)
  return { assert(cs:create_campaign(CAMPAIGN)).id }
end

function SETUP.folder(_, _, dir)
  util.write(dir .. "/q1-ctos.lua", 'return {\n  name = "Q1 Outreach: CTOs",\n  daily_limit_per_inbox = 30,\n}\n')
  util.write(dir .. "/q1-founders.lua", 'return {\n  name = "Q1 Outreach: founders",\n'
    .. '  daily_limit_per_inbox = 20,\n  sending_days = { 2, 3, 4 },\n}\n')
  return {}
end

function SETUP.lifecycle(cs)
  local inbox = require("spec.helpers.cli").inbox(cs, "sender@example.com")
  local c = assert(cs:create_campaign { name = "Q1 Product Launch Outreach", inbox_ids = { inbox.inbox_id },
    variants = { { subject_template = "Hello", email_content = "Hi {{first_name}}, a note." } } })
  assert(c:add_lead { email = "ada@example.org", first_name = "Ada", last_name = "Lovelace",
    company = "Analytical Engines" })
  assert(c:add_lead { email = "grace@example.org", first_name = "Grace", last_name = "Hopper" })
  assert(c:add_lead { email = "linus@example.org", first_name = "Linus", company = "Kernel, Inc" })
  assert(c:launch())
  return { c.id }
end

function SETUP.inboxes(_, _, dir)
  util.write(dir .. "/ada.lua", [[
return {
  email_address = "ada@example.com", display_name = "Ada Lovelace",
  inbox_type = "GOOGLE_WORKSPACE", daily_limit = 50,
  smtp_host = "smtp.gmail.com", smtp_port = 587, smtp_username = "ada@example.com",
  imap_host = "imap.gmail.com", imap_port = 993, imap_username = "ada@example.com",
}
]])
  return {}
end

-- Two ACTIVE campaigns, two weeks of simulated sending from a Monday.
function SETUP.results(cs, sb)
  local inbox = require("spec.helpers.cli").inbox(cs, "sender@example.com")
  for i, name in ipairs { "Q1 Product Launch Outreach", "Partners in Europe" } do
    local c = assert(cs:create_campaign { name = name, inbox_ids = { inbox.inbox_id },
      daily_limit_per_inbox = 10 + 5 * i, enable_tracking = true,
      variants = { { subject_template = "Hello", email_content = "Hi {{first_name}}, a note." } },
      sequences = { { trigger_type = "NOT_REPLIED", wait_days = 3, variants = {
        { subject_template = "Again", email_content = "Following up on my note." } } } } })
    for j = 1, 100 * i do assert(c:add_lead { email = ("lead%03d@example.org"):format(j) }) end
    assert(c:launch())
  end
  assert(cs:create_campaign { name = "Q2 draft, not launched" })
  sb:control("POST", "/simulate", { days = 14, seed = 1, start = "2027-01-04" })
  return {}
end

function SETUP.bad_value(_, _, dir)
  util.write(dir .. "/campaign.lua", 'return { name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 150 }\n')
  return {}
end
SETUP["bad-value"] = SETUP.bad_value

-- The server holds two variants and one follow-up; the file adds a third
-- variant, a second follow-up and a higher limit.
function SETUP.plan(cs, _, dir)
  local function variant(name, pct)
    return { variant_name = name, subject_template = "Subject " .. name,
      email_content = "Hi {{first_name}}, body " .. name .. ".", distribution_percent = pct }
  end
  local function step(n)
    return { step_number = n, trigger_type = "NOT_REPLIED", wait_days = 3,
      variants = { { subject_template = "Follow-up " .. n, email_content = "Following up, step " .. n .. "." } } }
  end
  local c = assert(cs:create_campaign { name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 20,
    variants = { variant("A", 50), variant("B", 50) }, sequences = { step(2) } })
  util.write(dir .. "/campaign.lua", ([[
local function variant(name, pct)
  return { variant_name = name, subject_template = "Subject " .. name,
    email_content = "Hi {{first_name}}, body " .. name .. ".", distribution_percent = pct }
end
local function step(n)
  return { step_number = n, trigger_type = "NOT_REPLIED", wait_days = 3,
    variants = { { subject_template = "Follow-up " .. n, email_content = "Following up, step " .. n .. "." } } }
end
return {
  id = "%s",
  name = "Q1 Product Launch Outreach",
  daily_limit_per_inbox = 30,
  variants = { variant("A", 34), variant("B", 33), variant("C", 33) },
  sequences = { step(2), step(3) },
}
]]):format(c.id))
  return { c.id }
end

function SETUP.campaigns(cs)
  local a = assert(cs:create_campaign { name = "Q1 Product Launch Outreach", daily_limit_per_inbox = 30,
    variants = { { subject_template = "Quick question", email_content = "Hi {{first_name}}, a note." } } })
  local b = assert(cs:create_campaign { name = "Partners in Europe" })
  return { b.id, a.id } -- in the order the transcript first shows them (list: newest first)
end

SETUP.__index = function(_, name) error("no setup for the transcript '" .. name .. "'") end
setmetatable(SETUP, SETUP)

describe("doc/cli.md transcripts", function()
  local sb, cs
  local doc = assert(util.slurp(ROOT .. "/doc/cli.md"))
  local list = transcripts(doc)

  setup(function()
    sb = sandbox.start { rate_limit = false }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, max_retries = 0, rate_limit = false }
  end)

  teardown(function() sb:stop() end)

  it("finds the transcripts", function()
    assert.truthy(#list >= 1)
  end)

  for _, t in ipairs(list) do
    it("runs the '" .. t.name .. "' transcript", function()
      sb:reset()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. q(dir)))
      local ids = SETUP[t.name](cs, sb, dir)
      -- the block's UUIDs, in order of appearance, stand for the ids of
      -- the setup, then for the new ids the commands print, in order
      local doc_ids, seen = {}, {}
      for u in t.text:gmatch(UUID) do
        if not seen[u] then seen[u] = true; doc_ids[#doc_ids + 1] = u end
      end
      local to_real, to_doc, n = {}, {}, 0
      local function map(real)
        if not to_doc[real] then
          n = n + 1
          local u = assert(doc_ids[n], t.name .. ": more ids than the transcript shows")
          to_doc[real], to_real[u] = u, real
        end
        return to_doc[real]
      end
      for _, id in ipairs(ids or {}) do map(id) end
      for _, step in ipairs(t.steps) do
        local cmd = step.cmd:gsub(UUID, to_real)
        local rc, out = util.run(string.format(
          "( (cd %s && coldsend() { %s %s \"$@\"; } && export COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s"
            .. " LANG=C.UTF-8 && %s) 2>&1 )",
          q(dir), LUA, q(ROOT .. "/bin/coldsend"), q(sb.key), q(sb.url), cmd))
        out = out:gsub(UUID, map):gsub(plain(sb.url), DOC_URL):gsub(ISO_TIME, DOC_TIME)
        assert.equal(step.expected, out, string.format("%s: $ %s (exit %s)", t.name, step.cmd, tostring(rc)))
      end
      os.execute("rm -rf " .. q(dir))
    end)
  end

  -- the commands of `coldsend --help`
  local function commands()
    local found = {}
    local usage = require("coldsend.cli").USAGE
    for name in usage:match("Commands:\n(.-)\n\n"):gmatch("\n  (%l+)") do found[#found + 1] = name end
    local first = usage:match("Commands:\n  (%l+)")
    table.insert(found, 1, first)
    return found
  end

  it("shows every command in a transcript a test runs", function()
    local names = commands()
    assert.truthy(#names >= 17, #names)
    for _, name in ipairs(names) do
      local shown = false
      for _, t in ipairs(list) do
        for _, step in ipairs(t.steps) do
          if step.cmd:match("coldsend " .. name .. "%f[^%l]") then shown = true end
        end
      end
      -- doctor and upload --dry-run have their own (doctor_spec, cli_spec)
      shown = shown or (name == "doctor" and doc:find("<!-- doctor transcript -->", 1, true) ~= nil)
        or (name == "upload" and doc:find("\n$ coldsend upload [^\n]+ %-%-dry%-run\n") ~= nil)
      assert.is_true(shown, name)
    end
  end)

  it("names only real commands in the README", function()
    local readme = assert(util.slurp(ROOT .. "/README.md"))
    local block = assert(readme:match("## Campaigns as code[^\n]*\n\n```\n(.-)```"))
    local known = {}
    for _, name in ipairs(commands()) do known[name] = true end
    local n = 0
    for name in block:gmatch("coldsend (%l+)") do
      assert.is_true(known[name] == true, name)
      n = n + 1
    end
    for name in block:gmatch("| (%l+) ") do assert.is_true(known[name] == true, name) end
    assert.truthy(n >= 6)
  end)

  it("keeps transcripts free of this machine's paths", function()
    for _, t in ipairs(list) do
      assert.is_nil(t.text:find(plain(ROOT)), t.name)
    end
  end)
end)
