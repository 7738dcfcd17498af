-- spec/nginx/example_spec.lua: examples/openresty/handler.lua served by a
-- real Debian nginx against the sandbox, as its nginx.conf sets it up.
local helper = require "spec.nginx.helper"
local sandbox = require "spec.helpers.sandbox"
local cjson = require "cjson"

describe("examples/openresty in nginx #once", function()
  local sb, srv, campaign_id

  setup(function()
    assert(helper.usable(), "Debian nginx with libnginx-mod-http-lua is needed")
    sb = sandbox.start { rate_limit = false }
    local status, body = sb:request("POST", "/campaigns", { name = "Example hook campaign" })
    assert(status == 200 or status == 201, tostring(status))
    campaign_id = body.campaign_id
    srv = helper.start {
      env = { COLDSEND_API_KEY = sb.key, COLDSEND_BASE_URL = sb.url },
      server = [[
    location = /hooks/new-lead {
      content_by_lua_block { require("examples.openresty.handler").new_lead() }
    }
]] }
  end)

  teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)

  local function hook(query, lead)
    local status, body = srv:request("POST", "/hooks/new-lead?" .. query, cjson.encode(lead))
    return status, cjson.decode(body)
  end

  it("adds the posted lead to the campaign", function()
    local status, out = hook("campaign=" .. campaign_id, { email = "ada@example.org", name = "Ada" })
    assert.are.equal(200, status)
    assert.are.equal(campaign_id, out.campaign)
    assert.are.equal("ada@example.org", out.email)
    assert.is_string(out.lead)
    assert.are.equal(1, sb:count("POST", "/leads/manual$"))
  end)

  it("takes a null name as none and answers 400 for a name that is not a string", function()
    -- a bad value raises in add_lead: unchecked, it was a 500 and a traceback
    local status, out = hook("campaign=" .. campaign_id, { email = "nul@example.org", name = cjson.null })
    assert.are.equal(200, status)
    assert.are.equal("nul@example.org", out.email)
    for _, name in ipairs { 5, { "x" }, true } do
      status, out = hook("campaign=" .. campaign_id, { email = "num@example.org", name = name })
      assert.are.equal(400, status)
      assert.are.equal("name, when given, must be a string", out.error)
    end
  end)

  it("answers 400 for a bad id and 404 for an unknown campaign", function()
    local status, out = hook("campaign=nope", { email = "b@example.org" })
    assert.are.equal(400, status)
    assert.matches("UUID", out.error)
    status, out = hook("campaign=550e8400-e29b-41d4-a716-446655440000", { email = "b@example.org" })
    assert.are.equal(404, status)
    assert.are.equal("not_found", out.error)
  end)
end)
