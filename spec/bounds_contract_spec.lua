-- bounds_contract_spec: the client and the sandbox agree on every field
-- bound. Each bound of the sandbox's schema (and of the client's own rule
-- text) is probed on both sides with the values at and just past it:
--   * a value the client accepts, the sandbox accepts (the client never
--     sends what the server refuses), and
--   * a value the sandbox accepts, the client accepts, except where a
--     stricter client rule is listed below with its reason.
-- Campaign fields go through the setter and a PUT of that one field;
-- variant and follow-up fields through c.variants / c.sequences and a PUT of
-- a list holding one item. The real libcurl transport is not involved: the
-- PUT is a raw request, so that the client's checks cannot hide a refusal.
local sandbox = require "spec.helpers.sandbox"
local coldsend = require "coldsend"
local core = require "coldsend.core"
local api = require "coldsend.sandbox.api"
local V = require "coldsend.sandbox.validate"

-- Where the client is deliberately stricter than the sandbox: field ->
-- reason. Each entry is a bound the client refuses and the sandbox takes.
local STRICTER = {
  -- an empty label says nothing; the client asks for one character or none
  ["variant.variant_label"] = "an empty label is refused",
}

local function letters(n) return ("A"):rep(n) end
local function text(n) return ("x"):rep(n) end

-- Values around a bound: below min, at min, at max, past max.
local function around(lo, hi, make)
  local out = {}
  if lo then
    if lo - 1 >= 0 then out[#out + 1] = make(lo - 1) end
    out[#out + 1] = make(lo)
  end
  if hi then
    out[#out + 1] = make(hi)
    out[#out + 1] = make(hi + 1)
  end
  return out
end

-- The probe values of one schema field, or nil when it has no bound.
local function probes(f, client_rule)
  local lo, hi, make
  if f.check == V.int then
    lo, hi, make = f.ge, f.le, function(n) return n end
  elseif f.check == V.str then
    make = f.pattern == "^%a+$" and letters or text
    lo, hi = f.min, f.max
  else
    return nil
  end
  local out = around(lo, hi, make)
  -- the client's own bounds, read from its rule text, are probed too
  local clo, chi = tostring(client_rule or ""):match("(%d+)%.%.(%d+)")
  if clo then
    for _, v in ipairs(around(tonumber(clo), tonumber(chi), make)) do out[#out + 1] = v end
  end
  return out
end

local function shown(v)
  if type(v) == "string" then return ("string of %d characters"):format(#v) end
  return tostring(v)
end

describe("field bounds: client and sandbox", function()
  local sb, cs, id

  setup(function()
    sb = sandbox.start { rate_limit = false, latency_ms = 0 }
    cs = coldsend.client { api_key = sb.key, base_url = sb.url, rate_limit = false }
    local status, body = sb:request("POST", "/campaigns", { name = "Bounds contract" })
    assert(status == 200 or status == 201, "create: " .. tostring(status))
    id = body.campaign_id or body.id
  end)
  teardown(function() if sb then sb:stop() end end)

  local function server_takes(body)
    local status = sb:request("PUT", "/campaigns/" .. id, body)
    return status == 200
  end

  local function client_takes(fn)
    return (pcall(fn))
  end

  -- companions that keep the sandbox's cross-field rules out of the way
  local COMPANIONS = {
    sending_window_start = { sending_window_end = 24, sending_window_end_minute = 0 },
    sending_window_start_minute = { sending_window_start = 0, sending_window_end = 24,
      sending_window_end_minute = 0 },
    sending_window_end = { sending_window_start = 0, sending_window_start_minute = 0 },
    sending_window_end_minute = { sending_window_start = 0, sending_window_start_minute = 0,
      sending_window_end = 23 },
    ramp_up_max_limit = { ramp_up_increment = 1 },
    ramp_up_increment = { ramp_up_max_limit = 100000 },
  }

  local function check(where, v, by_client, by_server)
    if by_client then
      assert(by_server, ("%s = %s: the client accepts it, the sandbox refuses it"):format(where, shown(v)))
    elseif by_server and not STRICTER[where] then
      error(("%s = %s: the sandbox accepts it, the client refuses it"):format(where, shown(v)))
    end
  end

  local rules = {}
  for _, f in ipairs(core.campaign_fields()) do rules[f.name] = f.rule end

  it("agree on every server default: the client's field table is what a new campaign holds", function()
    local status, body = sb:request("POST", "/campaigns", { name = "Defaults contract" })
    assert(status == 200 or status == 201, "create: " .. tostring(status))
    local got
    status, got = sb:request("GET", "/campaigns/" .. (body.campaign_id or body.id))
    assert.are.equal(200, status)
    local compared = 0
    for _, f in ipairs(core.campaign_fields()) do
      if f.default ~= nil then
        assert.are.same(f.default, got[f.name], f.name .. ": the client's default and the sandbox's differ")
        compared = compared + 1
      end
    end
    assert.is_true(compared >= 10, "compared " .. compared)
  end)

  it("agree on every campaign field's bounds", function()
    local probed = 0
    for _, f in ipairs(api.SCHEMA.campaign) do
      for _, v in ipairs(probes(f, rules[f.name]) or {}) do
        local body = { [f.name] = v }
        for k, w in pairs(COMPANIONS[f.name] or {}) do body[k] = w end
        local by_client = client_takes(function() local c = cs:campaign(); c[f.name] = v end)
        check("campaign." .. f.name, v, by_client, server_takes(body))
        probed = probed + 1
      end
    end
    assert.is_true(probed >= 40, "probed " .. probed)
  end)

  local VARIANT = { variant_name = "A", subject_template = "Hello there",
    email_content = "A body long enough to pass." }
  local function with(base, k, v)
    local t = {}
    for a, b in pairs(base) do t[a] = b end
    t[k] = v
    return t
  end

  it("agree on every variant field's bounds", function()
    local probed = 0
    for _, f in ipairs(api.SCHEMA.variant) do
      for _, v in ipairs(probes(f) or {}) do
        local list = { with(VARIANT, f.name, v) }
        -- the percentages of a step add up to 100: a second variant takes the rest
        if f.name == "distribution_percent" and v >= 0 and v <= 100 then
          list[2] = with(with(VARIANT, "variant_name", "B"), f.name, 100 - v)
        end
        local by_client = client_takes(function() cs:campaign().variants = list end)
        check("variant." .. f.name, v, by_client, server_takes { variants = list })
        probed = probed + 1
      end
    end
    assert.is_true(probed >= 12, "probed " .. probed)
  end)

  it("agree on every follow-up field's bounds", function()
    local probed = 0
    local step = { step_number = 2, trigger_type = "NOT_OPENED", wait_days = 3, variants = { VARIANT } }
    for _, f in ipairs(api.SCHEMA.sequence) do
      for _, v in ipairs(probes(f) or {}) do
        local item = with(step, f.name, v)
        local by_client = client_takes(function() cs:campaign().sequences = { item } end)
        check("sequence." .. f.name, v, by_client,
          server_takes { variants = { VARIANT }, sequences = { item } })
        probed = probed + 1
      end
    end
    assert.is_true(probed >= 8, "probed " .. probed)
  end)

  it("every listed exception is a real difference", function()
    -- an entry here that no longer differs must go: probe it
    local label = with(VARIANT, "variant_label", "")
    assert.is_false(client_takes(function() cs:campaign().variants = { label } end))
    assert.is_true(server_takes { variants = { label } })
  end)
end)
