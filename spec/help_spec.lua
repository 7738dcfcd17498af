-- help_spec.lua: coldsend.help: the overview, a field's type/rule/default
-- from core.campaign_fields(), methods, errors, and close matches for an
-- unknown topic.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local help = require "coldsend.help"

-- Runs f with io.stdout captured; returns what was written and f's results.
local function captured(f, ...)
  local buf, real = {}, io.stdout
  io.stdout = { write = function(self, ...)
    for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
    return self
  end }
  local ok, a, b = pcall(f, ...)
  io.stdout = real
  assert(ok, a)
  return table.concat(buf), a, b
end

describe("coldsend.help", function()
  it("lists client methods, campaign methods and every field", function()
    local printed, text = captured(coldsend.help)
    assert.equal(text .. "\n", printed)
    for _, name in ipairs { "create_campaign", "get_campaign", "each_campaign", "plan", "request" } do
      assert.matches(name, text, 1, true)
    end
    for _, name in ipairs { "save", "launch", "validate", "split_evenly", "upload_leads", "diff" } do
      assert.matches(name, text, 1, true)
    end
    for _, f in ipairs(core.campaign_fields()) do
      assert.matches(f.name, text, 1, true)
    end
    for line in text:gmatch("[^\n]+") do assert.truthy(#line <= 80, line) end
  end)

  it("gives a field's type, rule and default", function()
    local printed, text = captured(coldsend.help, "daily_limit_per_inbox")
    assert.equal(text .. "\n", printed)
    assert.matches("daily_limit_per_inbox", text, 1, true)
    assert.matches("type: +integer", text)
    assert.matches("1..100", text, 1, true)
    assert.matches("default: +none", text)
    local _, days = captured(help.help, "sending_days")
    assert.matches("default: [1, 2, 3, 4, 5]", days, 1, true)
    local _, tz = captured(help.help, "timezone")
    assert.matches('default: "America/New_York"', tz, 1, true)
    local _, id = captured(help.help, "id")
    assert.matches("read-only", id, 1, true)
  end)

  it("describes every field and every method it lists", function()
    for _, f in ipairs(core.campaign_fields()) do
      local text, known = help.text(f.name)
      assert.is_true(known)
      assert.matches("type:", text, 1, true)
    end
    for _, list in ipairs { help.CLIENT_METHODS, help.CAMPAIGN_METHODS } do
      for _, e in ipairs(list) do
        local text, known = help.text(e[1])
        assert.is_true(known, e[1])
        assert.truthy(#text > 30)
      end
    end
  end)

  it("describes methods, with or without a receiver", function()
    local _, save = captured(help.help, "save")
    assert.matches("c:save", save, 1, true)
    assert.matches("changed fields", save, 1, true)
    assert.equal(save, (help.text("c:save")))
    assert.equal((help.text("get_campaign")), (help.text("cs:get_campaign")))
    assert.matches("GET /campaigns/{id}", help.text("get_campaign"), 1, true)
  end)

  it("explains the error codes", function()
    local text = help.text("errors")
    for _, code in ipairs { "invalid", "not_ready", "rate_limited", "protocol" } do
      assert.matches(code, text, 1, true)
    end
  end)

  it("says so for an unknown topic and lists close matches", function()
    local printed, text = captured(help.help, "dialy_limit")
    assert.equal(text .. "\n", printed)
    assert.matches("no help for 'dialy_limit'", text, 1, true)
    assert.matches("did you mean: daily_limit_per_inbox", text, 1, true)
    assert.matches("did you mean: launch", (help.text("lanch")), 1, true)
    local none, known = help.text("xyzzy")
    assert.is_false(known)
    assert.matches("coldsend.help()", none, 1, true)
  end)

  it("refuses a topic that is not a string", function()
    assert.has_error(function() help.text(42) end,
      "bad argument #1 to 'help' (string expected, got number)")
  end)
end)
