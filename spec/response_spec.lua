-- response_spec.lua: core.parse_response, core.error and tostring(err) on
-- the bodies the API reference documents and on the ones it does not.
local core = require "coldsend.core"

local JSON = { ["content-type"] = "application/json" }
local CID = "550e8400-e29b-41d4-a716-446655440000"

local function parse(status, headers, body, now)
  return core.parse_response(status, headers, body, now)
end

-- every error prints as one line starting with "coldsend: "
local function one_line(err)
  local s = tostring(err)
  assert.is_nil(s:find("[\r\n]"))
  assert.equal("coldsend: ", s:sub(1, 10))
  return s
end

describe("parse_response, 2xx", function()
  it("decodes the documented update body", function()
    local body = '{"success": true, "message": "Campaign updated", "campaign_id": "'
      .. CID .. '", "name": "Q1 Product Launch Outreach", "status": "DRAFT",'
      .. ' "is_launch_ready": false, "updated_at": "2024-01-15T10:30:00Z",'
      .. ' "missing_requirements": ["leads", "inboxes"]}'
    local data, err = parse(200, JSON, body)
    assert.is_nil(err)
    assert.equal(CID, data.campaign_id)
    assert.equal("DRAFT", data.status)
    -- not ready is the facade's decision, not a parse error
    assert.is_false(data.is_launch_ready)
    assert.same({ "leads", "inboxes" }, data.missing_requirements)
  end)

  it("decodes the documented create body", function()
    local body = '{"success": true, "message": "Campaign created successfully",'
      .. ' "campaign_id": "' .. CID .. '", "name": "Q1 Product Launch Outreach",'
      .. ' "status": "DRAFT", "current_step": 0, "created_at": "2024-01-15T10:30:00Z"}'
    local data = assert(parse(201, { ["content-type"] = "application/json; charset=utf-8" }, body))
    assert.equal(0, data.current_step)
    assert.is_true(data.success)
  end)

  it("keeps JSON null as cjson.null", function()
    local data = assert(parse(200, JSON, '{"launched_at": null}'))
    assert.equal(require("cjson").null, data.launched_at)
  end)

  it("accepts a +json type and a missing Content-Type", function()
    assert.same({ a = 1 }, parse(200, { ["content-type"] = "application/problem+json" }, '{"a":1}'))
    assert.same({ a = 1 }, parse(200, {}, ' {"a":1}'))
    assert.same({ a = 1 }, parse(200, nil, '{"a":1}'))
  end)

  it("gives {} for 204 and for an empty body", function()
    assert.same({}, parse(204, {}, ""))
    assert.same({}, parse(204, JSON, nil))
    assert.same({}, parse(200, JSON, ""))
    assert.same({}, parse(200, {}, "  \r\n"))
  end)

  it("refuses a non-JSON 200 body as protocol", function()
    local data, err = parse(200, { ["content-type"] = "text/html" }, "<html><body>Hi</body></html>")
    assert.is_nil(data)
    assert.equal("protocol", err.code)
    assert.equal(200, err.status)
    assert.equal("expected a JSON object, got HTML (text/html)", err.message)
    assert.equal("<html><body>Hi</body></html>", err.body)
    assert.equal("coldsend: protocol (HTTP 200): expected a JSON object, got HTML (text/html)",
      one_line(err))
  end)

  it("refuses a JSON array", function()
    local _, err = parse(200, JSON, '[{"a": 1}]')
    assert.equal("protocol", err.code)
    assert.equal("expected a JSON object, got a JSON array (application/json)", err.message)
    one_line(err)
  end)

  it("refuses truncated and invalid JSON", function()
    local _, err = parse(200, JSON, '{"campaign_id": "550e')
    assert.equal("protocol", err.code)
    assert.matches("^expected a JSON object, got invalid JSON %(", err.message)
    one_line(err)
    _, err = parse(200, {}, "OK")
    assert.equal("expected a JSON object, got non-JSON text", err.message)
  end)

  it("refuses a JSON object under a wrong Content-Type", function()
    local _, err = parse(200, { ["content-type"] = "text/plain" }, '{"a": 1}')
    assert.equal("protocol", err.code)
    assert.equal("expected Content-Type application/json, got text/plain", err.message)
    one_line(err)
  end)
end)

describe("parse_response, errors", function()
  it("maps a 422 detail list to details and a summary", function()
    local body = '{"detail": ['
      .. '{"loc": ["body", "name"], "msg": "ensure this value has at least 8 characters",'
      .. ' "type": "value_error.any_str.min_length"},'
      .. '{"loc": ["body", "variants", 0, "subject_template"], "msg": "Field required",'
      .. ' "type": "missing", "input": {}, "url": "https://errors.pydantic.dev/2.5/v/missing"},'
      .. '{"loc": ["query", "limit"], "msg": "ensure this value is less than or equal to 100",'
      .. ' "type": "value_error.number.not_le", "ctx": {"limit_value": 100}}]}'
    local data, err = parse(422, JSON, body)
    assert.is_nil(data)
    assert.equal("unprocessable", err.code)
    assert.equal(422, err.status)
    assert.same({
      { field = "name", message = "ensure this value has at least 8 characters",
        type = "value_error.any_str.min_length" },
      { field = "variants[0].subject_template", message = "Field required", type = "missing" },
      { field = "limit", message = "ensure this value is less than or equal to 100",
        type = "value_error.number.not_le" },
    }, err.details)
    assert.equal("name: ensure this value has at least 8 characters; "
      .. "variants[0].subject_template: Field required; "
      .. "limit: ensure this value is less than or equal to 100", err.message)
    assert.equal(body, err.body)
  end)

  it("prints the documented tostring line once the facade adds its fields", function()
    local _, err = parse(422, JSON, '{"detail": [{"loc": ["body", "name"],'
      .. ' "msg": "ensure this value has at least 8 characters", "type": "x"}]}')
    err.method, err.url, err.attempts = "PUT", "https://api.coldsend.pro/api/public/v1/campaigns/" .. CID, 1
    assert.equal("coldsend: unprocessable (HTTP 422) PUT https://api.coldsend.pro/api/public/v1/campaigns/"
      .. CID .. ": name: ensure this value has at least 8 characters [attempts 1]", one_line(err))
  end)

  it("summarises a long detail list", function()
    local items = {}
    for i = 1, 8 do
      items[i] = ('{"loc": ["body", "f%d"], "msg": "bad", "type": "t"}'):format(i)
    end
    local _, err = parse(400, JSON, '{"detail": [' .. table.concat(items, ",") .. "]}")
    assert.equal("bad_request", err.code)
    assert.equal(8, #err.details)
    assert.equal("f1: bad; f2: bad; f3: bad; f4: bad; f5: bad; and 3 more", err.message)
  end)

  it("maps both documented 401 messages", function()
    local _, err = parse(401, JSON,
      '{"detail": "API key required. Include your API key in X-API-Key header."}')
    assert.equal("auth", err.code)
    assert.equal("API key required. Include your API key in X-API-Key header.", err.message)
    assert.equal("coldsend: auth (HTTP 401): API key required. Include your API key in X-API-Key header.",
      one_line(err))
    _, err = parse(401, JSON, '{"detail": "Invalid or revoked API key"}')
    assert.equal("auth", err.code)
    assert.equal("coldsend: auth (HTTP 401): Invalid or revoked API key", one_line(err))
  end)

  it("keeps required and granted scopes of a 403", function()
    local _, err = parse(403, JSON, '{"detail": "Missing required scopes: campaigns:write",'
      .. ' "error": "insufficient_scopes", "required": ["campaigns:write"],'
      .. ' "granted": ["sender_accounts:read"]}')
    assert.equal("forbidden", err.code)
    assert.equal("Missing required scopes: campaigns:write", err.message)
    assert.same({ "campaigns:write" }, err.required)
    assert.same({ "sender_accounts:read" }, err.granted)
    assert.equal("insufficient_scopes", err.error)
    one_line(err)
    -- the legacy body has only detail
    _, err = parse(403, JSON, '{"detail": "Missing API key scopes: campaigns:write"}')
    assert.equal("forbidden", err.code)
    assert.is_nil(err.required)
  end)

  it("maps 404 and 409", function()
    local _, err = parse(404, JSON, '{"detail": "Campaign not found"}')
    assert.equal("not_found", err.code)
    assert.equal("coldsend: not_found (HTTP 404): Campaign not found", one_line(err))
    _, err = parse(409, JSON, '{"detail": "Sender email already exists"}')
    assert.equal("conflict", err.code)
    assert.equal(409, err.status)
    one_line(err)
  end)

  it("keeps launch requirements from an error body", function()
    local _, err = parse(400, JSON, '{"detail": "Missing launch requirements",'
      .. ' "is_launch_ready": false, "missing_requirements": ["leads"]}')
    assert.equal("bad_request", err.code)
    assert.same({ "leads" }, err.missing_requirements)
    assert.is_false(err.is_launch_ready)
  end)

  describe("429", function()
    local now = 1700000000

    it("takes Retry-After in seconds", function()
      local _, err = parse(429, { ["content-type"] = "application/json", ["retry-after"] = "17" },
        '{"detail": "Rate limit exceeded. Retry after 60 seconds."}', now)
      assert.equal("rate_limited", err.code)
      assert.equal(17, err.retry_after)
      one_line(err)
    end)

    it("takes Retry-After as an HTTP date relative to now", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", now + 30)
      local _, err = parse(429, { ["retry-after"] = date }, '{"detail": "slow down"}', now)
      assert.equal(30, err.retry_after)
      assert.equal("coldsend: rate_limited (HTTP 429): slow down (retry after 30 s)", one_line(err))
      -- the obsolete RFC 850 and asctime forms too
      _, err = parse(429, { ["retry-after"] = "Tuesday, 14-Nov-23 22:14:20 GMT" }, "", now)
      assert.equal(60, err.retry_after)
      _, err = parse(429, { ["retry-after"] = "Tue Nov 14 22:14:20 2023" }, "", now)
      assert.equal(60, err.retry_after)
      -- a date in the past means now
      _, err = parse(429, { ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", now - 5) }, "", now)
      assert.equal(0, err.retry_after)
    end)

    it("uses the wall clock when no now is given", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 120)
      local _, err = parse(429, { ["retry-after"] = date }, "")
      assert.is_true(err.retry_after >= 118 and err.retry_after <= 121)
    end)

    it("falls back on X-RateLimit-Reset", function()
      local _, err = parse(429, { ["content-type"] = "application/json",
        ["x-ratelimit-limit"] = "100", ["x-ratelimit-remaining"] = "0",
        ["x-ratelimit-reset"] = tostring(now + 42) }, '{"detail": "Rate limit exceeded."}', now)
      assert.equal(42, err.retry_after)
    end)

    it("falls back on the seconds in the documented detail", function()
      local _, err = parse(429, JSON, '{"detail": "Rate limit exceeded. Retry after 60 seconds."}', now)
      assert.equal(60, err.retry_after)
      assert.equal("Rate limit exceeded. Retry after 60 seconds.", err.message)
      assert.equal("coldsend: rate_limited (HTTP 429): Rate limit exceeded. Retry after 60 seconds.",
        one_line(err))
    end)

    it("has no retry_after when nothing says", function()
      local _, err = parse(429, JSON, '{"detail": "Too many"}', now)
      assert.is_nil(err.retry_after)
    end)
  end)

  it("maps 500 and honours Retry-After on a 503", function()
    local _, err = parse(500, JSON, '{"detail": "Internal server error"}')
    assert.equal("server", err.code)
    assert.equal("coldsend: server (HTTP 500): Internal server error", one_line(err))
    _, err = parse(503, { ["retry-after"] = "5" }, "")
    assert.equal("server", err.code)
    assert.equal(5, err.retry_after)
    assert.equal("HTTP 503 (empty body)", err.message)
  end)

  it("keeps the status-based code for an HTML 502 page", function()
    local page = "<html><head><title>502 Bad Gateway</title></head><body>"
      .. string.rep("<p>nginx</p>", 400) .. "</body></html>"
    local _, err = parse(502, { ["content-type"] = "text/html" }, page)
    assert.equal("server", err.code)
    assert.equal(502, err.status)
    assert.equal("HTTP 502 (non-JSON body: text/html)", err.message)
    assert.equal(2048, #err.body) -- capped
    assert.equal(page:sub(1, 2048), err.body)
    assert.equal("coldsend: server (HTTP 502): HTTP 502 (non-JSON body: text/html)", one_line(err))
  end)

  it("does not cut the capped body inside a UTF-8 character", function()
    local body = string.rep("a", 2047) .. "é" .. "tail"
    local _, err = parse(500, { ["content-type"] = "text/plain" }, body)
    assert.equal(string.rep("a", 2047), err.body)
  end)

  it("keeps any other status under code http", function()
    local _, err = parse(418, JSON, '{"detail": "I am a teapot"}')
    assert.equal("http", err.code)
    assert.equal(418, err.status)
    _, err = parse(301, { location = "https://elsewhere/" }, "")
    assert.equal("http", err.code)
    assert.equal("coldsend: http (HTTP 301): HTTP 301 (empty body)", one_line(err))
  end)

  it("falls back to the status text for a JSON body without detail", function()
    local _, err = parse(404, JSON, '{"foo": 1}')
    assert.equal("HTTP 404 Not Found", err.message)
    _, err = parse(400, JSON, '{"message": "bad thing"}')
    assert.equal("bad thing", err.message)
  end)

  it("checks its arguments", function()
    assert.has_error(function() core.parse_response("200", {}, "") end)
    assert.has_error(function() core.parse_response(99, {}, "") end)
    assert.has_error(function() core.parse_response(200, "x", "") end)
  end)
end)

describe("error objects", function()
  it("sets the coldsend.error metatable", function()
    local t = { code = "network", message = "Connection refused" }
    local e = core.error(t)
    assert.equal(t, e)
    assert.is_true(core.is_error(e))
    assert.is_false(core.is_error({ code = "x" }))
    assert.is_false(core.is_error("coldsend: x"))
    assert.is_false(core.is_error(nil))
    assert.equal("coldsend.error", getmetatable(e).__name)
    assert.equal("coldsend: network: Connection refused", one_line(e))
  end)

  it("requires a code", function()
    assert.has_error(function() core.error {} end)
    assert.has_error(function() core.error { code = "x", message = 1 } end)
    assert.has_error(function() core.error "x" end)
  end)

  it("derives the not_ready message from the requirements", function()
    local e = core.error { code = "not_ready", missing_requirements = { "leads", "inboxes" },
      method = "PUT", url = "https://h/api/public/v1/campaigns/" .. CID, attempts = 1, status = 200 }
    assert.equal("campaign is missing leads, inboxes", e.message)
    assert.equal("coldsend: not_ready (HTTP 200) PUT https://h/api/public/v1/campaigns/" .. CID
      .. ": campaign is missing leads, inboxes [attempts 1]", one_line(e))
    -- a message that does not name them gets them appended
    e = core.error { code = "not_ready", message = "launch refused", missing_requirements = { "leads" } }
    assert.equal("coldsend: not_ready: launch refused (missing: leads)", one_line(e))
  end)

  it("lists the fields of an invalid error", function()
    local e = core.error { code = "invalid", attempts = 0,
      problems = { { field = "variants", message = "percentages sum to 90, not 100" },
                   { field = "sending_window_end", message = "must be after the start" } } }
    assert.equal("invalid fields: variants, sending_window_end", e.message)
    -- nothing was sent: no attempt count
    assert.equal("coldsend: invalid: invalid fields: variants, sending_window_end", one_line(e))
    e = core.error { code = "invalid", message = "campaign is not valid: 1 problem",
      problems = { { field = "name" } } }
    assert.equal("coldsend: invalid: campaign is not valid: 1 problem (fields: name)", one_line(e))
  end)

  it("prints one line and marks ambiguous failures", function()
    local e = core.error { code = "timeout", message = "Operation timed out\nafter 5000 ms",
      method = "POST", url = "https://h/campaigns", attempts = 1, ambiguous = true }
    assert.equal("coldsend: timeout POST https://h/campaigns: Operation timed out after 5000 ms"
      .. " [attempts 1, ambiguous]", one_line(e))
  end)

  it("shortens a huge message", function()
    local e = core.error { code = "server", message = string.rep("x", 5000) }
    assert.is_true(#one_line(e) < 600)
  end)

  it("never prints headers", function()
    local e = core.error { code = "auth", message = "Invalid or revoked API key",
      headers = { ["x-api-key"] = "cs_live_secret" }, request = { headers = { ["X-API-Key"] = "cs_live_secret" } } }
    assert.is_nil(tostring(e):find("cs_live_secret", 1, true))
  end)
end)
