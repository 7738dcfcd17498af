-- hostile_server_spec: a server that echoes secrets, sends huge or malformed
-- headers, escape sequences in names, empty or truncated bodies, an absurd
-- Retry-After, a long pydantic loc list, deep JSON... Every call through the
-- real libcurl transport (spec/helpers/rawhttpd.lua on 127.0.0.1) returns
-- a clear nil, err: never a raise, never a secret in the error or a hook.
local cjson = require "cjson"
local coldsend = require "coldsend"
local util = require "spec.helpers.util"

local ID = "550e8400-e29b-41d4-a716-446655440000"
local TOKEN = ("H0st1leK3y%08x"):format(math.random(0, 0x7fffffff))
local KEY = "cs_live_" .. TOKEN
local PASSWORD = "Pw-" .. TOKEN:sub(-8) .. "/x"
local INBOX = {
  email_address = "sales@example.com", display_name = "Sales", inbox_type = "CUSTOM_SMTP",
  smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = "sales",
  smtp_password = PASSWORD, imap_host = "imap.example.com", imap_port = 993,
  imap_username = "sales", imap_password = PASSWORD .. "i",
}


local function assert_hidden(v, what)
  for _, s in ipairs(util.strings(v)) do
    for _, secret in ipairs { TOKEN, PASSWORD, (cjson.encode(PASSWORD):sub(2, -2)) } do
      assert(not s:find(secret, 1, true), ("%s shows a secret: %s"):format(what, s:sub(1, 300)))
    end
  end
end

describe("a hostile server", function()
  local pipe, base

  setup(function()
    -- 600 s: under valgrind the spec outlasts two minutes; teardown stops it
    pipe = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 600", "r"))
    local line = assert(pipe:read("*l"), "rawhttpd printed no port")
    base = "http://127.0.0.1:" .. assert(line:match("^(%d+) "), line)
  end)

  teardown(function()
    pcall(require("coldsend.core").http_perform, { method = "GET", url = base .. "/__quit",
      headers = {}, timeout = 5, connect_timeout = 5 })
    pipe:close()
  end)

  -- Runs the usual calls against mode; returns {name = {ok, a, b}} and the
  -- hook events and sleeps seen.
  local function calls(mode)
    local events, slept = {}, {}
    local function keep(ev) events[#events + 1] = ev end
    local cs = coldsend.client { api_key = KEY, base_url = base .. "/h/" .. mode, rate_limit = false,
      max_retries = 2, timeout = 10, deadline = 30, sleep = function(s) slept[#slept + 1] = s end,
      on_request = keep, on_response = keep, on_retry = keep }
    local c = cs:campaign(ID)
    local got = {}
    local function try(name, fn, ...)
      got[name] = table.pack and table.pack(pcall(fn, ...)) or { pcall(fn, ...) }
    end
    try("get_campaign", cs.get_campaign, cs, ID)
    try("list_campaigns", cs.list_campaigns, cs)
    try("add_smtp_inbox", cs.add_smtp_inbox, cs, INBOX)
    try("request", cs.request, cs, "GET", "/campaigns/" .. ID)
    try("add_lead", c.add_lead, c, { email = "a@example.com", custom_fields = { api_token = PASSWORD } })
    try("pause", c.pause, c)
    return got, events, slept
  end

  local function check(mode, expect)
    local got, events, slept = calls(mode)
    for name, r in pairs(got) do
      assert(r[1], ("%s raised on %s: %s"):format(name, mode, tostring(r[2])))
      local err = r[3]
      if expect and expect[name] ~= "ok" then
        assert(r[2] == nil and coldsend.is_error(err),
          ("%s on %s gave %s, %s"):format(name, mode, tostring(r[2]), tostring(err)))
        assert.is_string(err.code)
        assert.is_string(err.message)
        local shown = tostring(err)
        assert.is_nil(shown:find("[\r\n]"), shown) -- one line
        if expect[name] then assert.equal(expect[name], err.code, name .. ": " .. shown) end
      end
      assert_hidden(r, name .. " on " .. mode)
    end
    assert_hidden(events, "hook events on " .. mode)
    for _, s in ipairs(slept) do assert.is_true(s <= 30, "slept " .. s) end
    return got
  end

  local ALL = function(code)
    return { get_campaign = code, list_campaigns = code, add_smtp_inbox = code, request = code,
      add_lead = code, pause = code }
  end

  it("echoes the key back in its error body and headers", function()
    local got = check("echo_key", ALL "auth")
    assert.matches("Invalid or revoked API key [redacted]", tostring(got.get_campaign[3]), 1, true)
  end)

  it("echoes the request body, passwords included, in a 422", function()
    local got = check("echo_body", ALL "unprocessable")
    -- add_smtp_inbox looks the address up before its POST (coldsend.writes):
    -- that GET's 422 ends it, and no password is in it (check above)
    assert.equal("GET", got.add_smtp_inbox[3].method)
    assert.equal("GET", got.add_lead[3].method)
    -- a POST's own body echoed back: its passwords are redacted
    local cs = coldsend.client { api_key = KEY, base_url = base .. "/h/echo_body", rate_limit = false,
      max_retries = 0 }
    local _, err = cs:request("POST", "/sender-accounts/smtp", INBOX)
    assert.equal("unprocessable", err.code)
    assert.matches("[redacted]", tostring(err), 1, true)
    assert_hidden(err, "the POST's error")
  end)

  it("sends a 200 KB header", function()
    local got = check("huge_header", ALL "protocol")
    assert.matches("header", got.get_campaign[3].message, 1, true)
  end)
  it("sends 5,000 headers", function()
    local got = check("many_headers", nil)
    assert.equal(ID, got.get_campaign[2].id)
  end)
  it("sends malformed header lines", function() check("bad_header", nil) end)

  it("puts escape sequences in names and lists", function()
    local got = check("escape_name", nil)
    local r = got.get_campaign
    if r[2] then -- taken: the escapes stay data, the CLI escapes them when printing
      assert.is_string(r[2].name)
    end
  end)

  it("answers 200 with an empty body", function()
    local got = check("empty_200", { get_campaign = "protocol", pause = "protocol",
      add_lead = "protocol", request = "ok" }) -- a generic call may get {}
    assert.matches("empty body", got.get_campaign[3].message, 1, true)
  end)

  it("asks to retry after 10^20 seconds", function()
    check("retry_after_huge", ALL())
  end)

  it("cuts the body short", function() check("truncated", ALL()) end)

  it("sends a long pydantic loc list and 20,000 details", function()
    -- (500 entries: a loc list long enough to overflow the Lua stack is the
    -- C core's cap, tested with it)
    check("long_loc", ALL "unprocessable")
    check("many_details", ALL "unprocessable")
  end)

  it("sends JSON nested 5,000 deep, a JSON array, invalid UTF-8, NUL bytes", function()
    check("deep_json", { get_campaign = "protocol" })
    check("json_array", { get_campaign = "protocol", list_campaigns = "protocol" })
    check("bad_utf8", ALL "bad_request")
    check("nul_body", ALL())
  end)

  it("redirects elsewhere: not followed", function()
    local got = check("redirect_away", ALL())
    assert.equal(302, got.get_campaign[3].status)
  end)

  it("answers with status 999", function() check("status_999", ALL()) end)

  it("meets a client's timeout and body cap as they are at each call, whatever transport each try takes", function()
    local core = require "coldsend.core"
    local http = core.http()
    local cs = coldsend.client { api_key = KEY, base_url = base, rate_limit = false, transport = http,
      sleep = function() end }
    -- changed after the client was made: the libcurl transport takes them as arguments
    cs.timeout = 0.3
    local t0 = core.now()
    local ok, err = cs:request("GET", "/slow", nil, { ms = 3000 }, { max_retries = 0 })
    assert.is_nil(ok)
    assert.equal("timeout", err.code)
    assert.is_true(core.now() - t0 < 2)
    cs.timeout, cs.max_body = 10, 10
    ok, err = cs:request("GET", "/big", nil, { n = 100 }, { max_retries = 0 })
    assert.is_nil(ok)
    assert.matches("over the 10%-byte cap", err.message)
    -- a hook swaps a Lua transport (which reads them from req) and the
    -- libcurl one in turn between tries
    cs.max_body = 5000
    local seen, tries = {}, 0
    local function wrapper(req)
      seen[#seen + 1] = { req.timeout, req.max_body, req.headers["X-API-Key"] == KEY }
      return http(req)
    end
    cs.on_request = function()
      tries = tries + 1
      cs.transport = tries % 2 == 1 and wrapper or http
    end
    ok, err = cs:request("GET", "/status", nil, { code = 503 }, { max_retries = 3 })
    assert.is_nil(ok)
    assert.equal("server", err.code)
    assert.equal(4, tries)
    assert.same({ { 10, 5000, true }, { 10, 5000, true } }, seen)
    cs.max_body = 10
    ok, err = cs:request("GET", "/big", nil, { n = 100 }, { max_retries = 1 })
    assert.is_nil(ok)
    assert.matches("over the 10%-byte cap", err.message)
    assert.equal(5, tries) -- through the Lua transport; a body over the cap is not tried again
    assert.same({ 10, 10, true }, seen[3])
  end)
end)
