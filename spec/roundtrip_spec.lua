-- roundtrip_spec: what a user sets is what the server holds, on every
-- entry path. Random valid campaign definitions (seeded, so a failure is
-- replayed by its seed) go through cs:create_campaign, cs:campaign() with
-- setters and save(), cs:plan(def):apply() and `bin/coldsend apply --yes`;
-- each is then launched, and the campaign the sandbox holds (whose create
-- ignores fields outside its schema, as the real server does) is compared
-- with the definition field by field.
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"
local coldsend = require "coldsend"
local cjson = require "cjson"

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
local PER_PATH = tonumber(os.getenv("COLDSEND_ROUNDTRIP_N")) or 200
local SEED = tonumber(os.getenv("COLDSEND_ROUNDTRIP_SEED")) or 20261202

-- A small deterministic generator (the same cases under every Lua).
local function generator(seed)
  local state = seed % 2147483647
  if state <= 0 then state = state + 2147483646 end
  local g = {}
  function g.int(lo, hi) -- Park-Miller
    state = (state * 16807) % 2147483647
    return lo + state % (hi - lo + 1)
  end
  function g.chance(p) return g.int(1, 1000) <= p * 1000 end
  function g.pick(list) return list[g.int(1, #list)] end
  return g
end

local WORDS = { "Quick", "question", "for", "{{first_name}}", "idea", "{{company}}", "Q1",
  "launch", "über", "naïve", "東京", "ação", "follow-up", "50%", "\"quoted\"", "back\\slash",
  "tab\tin", "line\nbreak", "emoji 🚀" }
local ZONES = { "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney",
  "America/Los_Angeles", "Europe/London" }
local TRIGGERS = { "NOT_OPENED", "NOT_REPLIED", "OPENED_BUT_NOT_REPLIED" }
local COLUMNS = { "Email", "E-mail", "mail address", "Adresse électronique" }

-- characters, not bytes: UTF-8 continuation bytes do not count
local function chars(s) return select(2, s:gsub("[^\128-\191]", "")) end

local function text(g, min, max)
  local parts = {}
  repeat
    parts[#parts + 1] = g.pick(WORDS)
  until chars(table.concat(parts, " ")) >= min and g.chance(0.3)
    or chars(table.concat(parts, " ")) >= max
  local s = table.concat(parts, " ")
  while chars(s) > max do parts[#parts] = nil; s = table.concat(parts, " ") end
  while chars(s) < min do s = s .. " pad" end
  return s
end

-- the percentages of n variants: nil (split evenly by the server) or n
-- numbers of at least 1 summing to 100
local function percents(g, n)
  if g.chance(0.4) then return nil end
  local out, left = {}, 100
  for i = 1, n - 1 do
    out[i] = g.int(1, left - (n - i))
    left = left - out[i]
  end
  out[n] = left
  return out
end

local function variants(g, max)
  local n = g.int(1, max)
  local pct = percents(g, n)
  local named = g.chance(0.5)
  local out = {}
  for i = 1, n do
    out[i] = { subject_template = text(g, 1, 60), email_content = text(g, 10, 400),
      distribution_percent = pct and pct[i] or nil,
      variant_name = named and string.char(64 + i) or nil }
  end
  return out
end

-- A random valid definition; inboxes are the ids it may use.
local function definition(g, i, inboxes)
  local d = { name = ("Roundtrip %d: %s"):format(i, text(g, 1, 80)) }
  if g.chance(0.7) then d.daily_limit_per_inbox = g.int(1, 100) end
  if g.chance(0.5) then d.timezone = g.pick(ZONES) end
  if g.chance(0.3) then
    d.start_date = ("2027-%02d-%02dT%02d:%02d:00Z"):format(g.int(1, 12), g.int(1, 28), g.int(0, 23),
      g.int(0, 59))
  end
  if g.chance(0.7) then
    local days = {}
    for day = 1, 7 do if g.chance(0.6) then days[#days + 1] = day end end
    if #days == 0 then days[1] = g.int(1, 7) end
    d.sending_days = days
  end
  if g.chance(0.7) then
    local s = g.int(0, 22)
    local e = g.int(s + 1, 24)
    d.sending_window_start, d.sending_window_end = s, e
    d.sending_window_start_minute = g.int(0, 59)
    d.sending_window_end_minute = e == 24 and 0 or g.int(0, 59)
  end
  if g.chance(0.5) then d.enable_tracking = g.chance(0.5) end
  if g.chance(0.5) then d.enable_unsubscribe = g.chance(0.5) end
  if g.chance(0.4) then
    d.ramp_up_enabled = true
    d.ramp_up_increment = g.int(1, 200)
    d.ramp_up_max_limit = g.int(d.ramp_up_increment, 2000)
  end
  d.variants = variants(g, 4)
  if g.chance(0.6) then
    local steps, seq = { 2, 3, 4 }, {}
    for k = 1, g.int(1, 3) do
      seq[k] = { step_number = steps[k], trigger_type = g.pick(TRIGGERS), wait_days = g.int(1, 30),
        variants = variants(g, 2) }
    end
    d.sequences = seq
  end
  local ids = {}
  for _, id in ipairs(inboxes) do if g.chance(0.5) then ids[#ids + 1] = id end end
  if #ids == 0 then ids[1] = inboxes[g.int(1, #inboxes)] end
  d.inbox_ids = ids
  d.lead_mapping = { email = g.pick(COLUMNS) }
  if g.chance(0.5) then d.lead_mapping.first_name = "First Name" end
  return d
end

-- Lua source for a definition (the campaign file of `coldsend apply`).
local function lua_source(v, indent)
  indent = indent or ""
  if type(v) == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "number" and "" or ("[%q] = "):format(k)
    parts[#parts + 1] = indent .. "  " .. key .. lua_source(v[k], indent .. "  ")
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

-- Every field of the definition, as the server holds it.
local function assert_holds(got, d, label)
  local function eq(want, have, field)
    assert.same(want, have, ("%s: field %s"):format(label, field))
  end
  for _, k in ipairs { "name", "daily_limit_per_inbox", "timezone", "sending_window_start",
      "sending_window_start_minute", "sending_window_end", "sending_window_end_minute",
      "enable_tracking", "enable_unsubscribe", "ramp_up_enabled", "ramp_up_increment",
      "ramp_up_max_limit" } do
    if d[k] ~= nil then eq(d[k], got[k], k) end
  end
  if d.start_date then
    eq(require("coldsend.writes").parse_iso_utc(d.start_date),
      require("coldsend.writes").parse_iso_utc(got.start_date), "start_date")
  end
  if d.sending_days then eq(d.sending_days, got.sending_days, "sending_days") end
  eq(d.inbox_ids, got.inbox_ids, "inbox_ids")
  for k, v in pairs(d.lead_mapping) do eq(v, got.lead_mapping[k], "lead_mapping." .. k) end
  local function step(want, have, field)
    eq(#want, #have, field .. " (count)")
    local sum = 0
    for i, v in ipairs(want) do
      local h = have[i]
      eq(v.subject_template, h.subject_template, ("%s[%d].subject_template"):format(field, i))
      eq(v.email_content, h.email_content, ("%s[%d].email_content"):format(field, i))
      if v.distribution_percent then
        eq(v.distribution_percent, h.distribution_percent, ("%s[%d].distribution_percent"):format(field, i))
      end
      if v.variant_name then eq(v.variant_name, h.variant_name, ("%s[%d].variant_name"):format(field, i)) end
      sum = sum + (h.distribution_percent or 0)
    end
    eq(100, sum, field .. " (percentages)")
  end
  step(d.variants, got.variants, "variants")
  local seq = d.sequences or {}
  eq(#seq, #(got.sequences or {}), "sequences (count)")
  for i, s in ipairs(seq) do
    local h = got.sequences[i]
    eq(s.step_number, h.step_number, ("sequences[%d].step_number"):format(i))
    eq(s.trigger_type, h.trigger_type, ("sequences[%d].trigger_type"):format(i))
    eq(s.wait_days, h.wait_days, ("sequences[%d].wait_days"):format(i))
    step(s.variants, h.variants, ("sequences[%d].variants"):format(i))
  end
end

describe("round trip: what a user sets is what the server holds", function()
  local sb, cs, inboxes, dir

  setup(function()
    sb = sandbox.start { rate_limit = false }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false }
    inboxes = {}
    for i = 1, 3 do
      local ib = assert(cs:add_smtp_inbox { email_address = ("rt%d@example.com"):format(i),
        display_name = "Roundtrip " .. i, inbox_type = "CUSTOM_SMTP", smtp_host = "smtp.example.com",
        smtp_port = 587, smtp_username = "u", smtp_password = "p", imap_host = "imap.example.com",
        imap_port = 993, imap_username = "u", imap_password = "p" })
      inboxes[i] = ib.inbox_id
    end
    dir = util.tmp_path() .. ".d"
    assert(os.execute("mkdir -p " .. util.q(dir)))
  end)

  teardown(function()
    if sb then sb:stop() end
    if dir then os.execute("rm -rf " .. util.q(dir)) end
  end)

  -- each path creates the campaign from d and returns its id
  local PATHS = {
    { "cs:create_campaign{...}", function(d)
      return assert(cs:create_campaign(d)).id
    end },
    { "cs:campaign() + setters + save()", function(d)
      local c = cs:campaign()
      for k, v in pairs(d) do c[k] = v end
      assert(c:save())
      assert.is_nil(next(c:changes()), "changes left after save")
      return c.id
    end },
    { "cs:plan(def):apply()", function(d)
      local p = assert(cs:plan(d))
      assert.equal("create", p.action)
      return assert(p:apply()).id
    end },
    { "bin/coldsend apply --yes", function(d, i)
      local file = util.write(("%s/campaign%d.lua"):format(dir, i), "return " .. lua_source(d) .. "\n")
      local rc, out, err = util.run(("cd %s && env COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s %s bin/coldsend "
        .. "apply --yes --json %s </dev/null"):format(util.q(sandbox.root), util.q(sb.key),
        util.q(sb.url), LUA, util.q(file)))
      assert.equal(0, rc, out .. err)
      return cjson.decode(out:match("%b{}")).id
    end },
  }

  for p, path in ipairs(PATHS) do
    it(("%s, then launch(): %d random definitions"):format(path[1], PER_PATH), function()
      local g = generator(SEED + p)
      for i = 1, PER_PATH do
        local d = definition(g, i, inboxes)
        local label = ("%s, definition %d (seed %d)"):format(path[1], i, SEED + p)
        local id = path[2](d, i)
        assert_holds(assert(cs:get_campaign(id)), d, label)
        local c = cs:campaign(id)
        assert(c:add_lead { email = ("lead%d@example.com"):format(i) })
        local launched, err = c:launch()
        assert.is_nil(err, label .. ": " .. tostring(err))
        assert.equal("ACTIVE", launched.status)
        local got = assert(cs:get_campaign(id))
        assert.equal("ACTIVE", got.status)
        assert_holds(got, d, label .. " (after launch)")
      end
    end)
  end
end)
