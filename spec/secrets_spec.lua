-- secrets_spec: the API key and every *password*, *secret*, *token* field
-- are redacted in hook events, in error objects (where the server echoes
-- them too) and in CLI output; CLI text output escapes control characters
-- while --json stays exact. Against the sandbox with the real transport.
local cjson = require "cjson"
local coldsend = require "coldsend"
local redact = require "coldsend.redact"
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local TOKEN = ("S3cr3tK3y%08x%08x"):format(math.random(0, 0x7fffffff), os.time() % 0x7fffffff)
local KEY = "cs_live_" .. TOKEN
local SMTP_PW = "Sm7p/Pa\"ss-" .. TOKEN:sub(-6)
local IMAP_PW = "Im4p-Pass-" .. TOKEN:sub(-6)

local INBOX = {
  email_address = "sales@example.com", display_name = "Sales", inbox_type = "CUSTOM_SMTP",
  smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = "sales",
  smtp_password = SMTP_PW, imap_host = "imap.example.com", imap_port = 993,
  imap_username = "sales", imap_password = IMAP_PW,
}


-- Asserts that none of the secrets (nor the key's token) shows in v.
local function assert_hidden(v, what)
  for _, s in ipairs(util.strings(v)) do
    for _, secret in ipairs { TOKEN, SMTP_PW, IMAP_PW, (cjson.encode(SMTP_PW):sub(2, -2)),
        "S3cr3tK3y" } do
      assert(not s:find(secret, 1, true), ("%s shows a secret: %s"):format(what, s))
    end
  end
end

describe("secrets", function()
  local sb, cs, events
  local hooks = sandbox.hooks({ rate_limit = false }, function(s) sb = s end)
  setup(hooks.setup)
  teardown(function()
    hooks.teardown()
    util.cleanup()
  end)
  before_each(function()
    hooks.before_each()
    events = {}
    local function keep(kind) return function(ev) events[#events + 1] = { kind, ev } end end
    cs = coldsend.client { api_key = KEY, base_url = sb.url, rate_limit = false, max_retries = 1,
      backoff_base = 0.01, backoff_cap = 0.02,
      on_request = keep "request", on_response = keep "response", on_retry = keep "retry" }
  end)

  it("keeps SMTP and IMAP passwords and the key out of hook events", function()
    assert(cs:add_smtp_inbox(INBOX))
    assert_hidden(events, "hook events")
    local req
    for _, e in ipairs(events) do
      if e[1] == "request" and e[2].method == "POST" then req = req or e[2] end
    end
    local body = cjson.decode(req.body)
    assert.equal("[redacted]", body.smtp_password)
    assert.equal("[redacted]", body.imap_password)
    assert.equal("smtp.example.com", body.smtp_host) -- the rest is intact
    assert.equal(587, body.smtp_port)
    assert.equal("[redacted]", req.headers["X-API-Key"])
    -- the server did get the passwords
    local sent
    for _, e in ipairs(sb:log()) do if e.method == "POST" then sent = e.body end end
    assert.equal(SMTP_PW, sent.smtp_password)
  end)

  it("redacts secret fields at any depth and in the URL query", function()
    local id = "550e8400-e29b-41d4-a716-446655440000"
    sb:fault { kind = "status", status = 503, times = 5, path = "/campaigns" }
    local _, err = cs:request("PUT", "/campaigns/" .. id, {
      name = "d", config = { api_token = "tok-" .. TOKEN, list = { { client_secret = "cs-" .. TOKEN } } },
    })
    assert.equal("server", err.code)
    assert_hidden(err, "the error")
    local body = cjson.decode(events[1][2].body)
    assert.equal("[redacted]", body.config.api_token)
    assert.equal("[redacted]", body.config.list[1].client_secret)
    assert.equal("d", body.name)

    events = {}
    sb:fault { kind = "status", status = 503, times = 5, path = "/campaigns" }
    _, err = cs:request("GET", "/campaigns", nil, { access_token = "q-" .. TOKEN, page = 2 })
    assert.equal("server", err.code)
    assert_hidden(err, "the error")
    assert.matches("access_token=[redacted]", err.url, 1, true)
    local kinds = {}
    for _, e in ipairs(events) do kinds[e[1]] = true end
    assert.is_true(kinds.request and kinds.response and kinds.retry)
    assert_hidden(events, "hook events")
    local ev = events[1][2]
    assert.matches("access_token=[redacted]", ev.url, 1, true)
    assert.matches("page=2", ev.url, 1, true)
  end)

  it("hides a key or a password the server echoes in its error", function()
    sb:fault { kind = "status", status = 401, times = 1,
      body = { detail = "Invalid or revoked API key " .. KEY } }
    local _, err = cs:list_campaigns()
    assert.equal("auth", err.code)
    assert.matches("Invalid or revoked API key [redacted]", tostring(err), 1, true)
    assert_hidden(err, "the error")

    sb:fault { kind = "status", status = 422, times = 1, body = { detail = {
      { loc = { "body", "smtp_password" }, msg = "password " .. SMTP_PW .. " rejected by "
        .. INBOX.smtp_host, type = "value_error" } } } }
    _, err = cs:add_smtp_inbox(INBOX)
    assert.equal("unprocessable", err.code)
    assert.matches("rejected by smtp.example.com", tostring(err), 1, true)
    assert_hidden(err, "the error")
    assert_hidden(events, "hook events")

    -- a body cut at 2 KB just inside the key: its start is hidden too
    local pad = string.rep("x", 2048 - #'{"detail":"' - 12)
    sb:fault { kind = "status", status = 400, times = 1, body = '{"detail":"' .. pad .. KEY .. '"}' }
    _, err = cs:list_campaigns()
    assert.is_true(#err.body <= 2048)
    assert.is_nil(err.body:find(KEY:sub(1, 12), 1, true))
    assert_hidden(err, "the error")
  end)

  it("hides a secret the server echoes URL-encoded or in base64", function()
    local function b64(data)
      local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
      return (data:gsub("..?.?", function(g)
        local a, b, c = g:byte(1, 3)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local out = ""
        for i = 3, 0, -1 do
          local k = math.floor(n / 64 ^ i) % 64
          out = out .. A:sub(k + 1, k + 1)
        end
        return out:sub(1, #g + 1) .. ("="):rep(3 - #g)
      end))
    end
    local function urlenc(v)
      return (v:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
    end
    local echoes = { urlenc(SMTP_PW), (urlenc(SMTP_PW):gsub("%%%x%x", string.lower)), b64(SMTP_PW), b64(IMAP_PW),
      -- a Basic credential: the key after a user name, at each alignment
      b64("u:" .. KEY), b64("us:" .. KEY), b64("use:" .. KEY),
      (b64("x" .. SMTP_PW):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" })) }
    for _, echo in ipairs(echoes) do
      sb:fault { kind = "status", status = 400, times = 1, method = "POST",
        body = { detail = "smtp login refused for credential " .. echo .. " at smtp.example.com" } }
      local _, err = cs:add_smtp_inbox(INBOX)
      assert.equal("bad_request", err.code)
      local text = tostring(err)
      assert.matches("at smtp.example.com", text, 1, true)
      -- what stays of a base64 echo is at most the group at each edge
      local plain = echo:gsub("=+$", "")
      local left = text:match("credential (.-) at ")
      assert(#left < #plain, ("the echo %s shows whole: %s"):format(echo, text))
      assert.is_nil(text:find(plain:sub(5, -5), 1, true), text)
      assert.is_nil(err.body:find(plain:sub(5, -5), 1, true), err.body)
    end
    assert_hidden(events, "hook events")
  end)

  it("hides a key the server echoes split in parts, in the body and a header", function()
    local cut = 14
    sb:fault { kind = "status", status = 401, times = 1,
      content_type = "application/json; echo=" .. KEY:sub(cut + 1),
      body = { detail = "key starts " .. KEY:sub(1, cut) .. " and ends " .. KEY:sub(cut + 1) } }
    events = {}
    local _, err = cs:list_campaigns()
    assert.equal("auth", err.code)
    assert.matches("key starts [redacted] and ends [redacted]", tostring(err), 1, true)
    assert_hidden(err, "the error")
    assert_hidden(events, "hook events")
    for _, s in ipairs(util.strings { err, events }) do
      assert.is_nil(s:find(KEY:sub(-10), 1, true), s)
    end
    -- a piece shorter than 10 characters, or text merely like the key, stays
    assert.equal("id 1b4e28ba-2fa1 and " .. KEY:sub(-9), redact.string("id 1b4e28ba-2fa1 and " .. KEY:sub(-9),
      redact.secrets_of { headers = { ["X-API-Key"] = KEY } }))
  end)

  it("hides anything shaped like a key, and nothing else", function()
    assert.equal("key [redacted], ok", redact.string("key cs_test_abc123XYZ, ok", {}))
    assert.equal("docs_page_1 cs_live_<token> cs_live_...",
      redact.string("docs_page_1 cs_live_<token> cs_live_...", {}))
    assert.is_true(redact.is_secret_name("SMTP_Password"))
    assert.is_true(redact.is_secret_name("refresh_token"))
    assert.is_false(redact.is_secret_name("smtp_host"))
  end)

  describe("the CLI", function()
    local function run_env(env, args)
      return util.run(("cd %s && env COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s %s %s bin/coldsend %s </dev/null")
        :format(util.q(sandbox.root), util.q(KEY), util.q(sb.url), env,
          os.getenv("COLDSEND_TEST_LUA") or "lua5.4", args))
    end
    local function run(args) return run_env("", args) end

    local EVIL = "Harmless\27]52;c;Y3VybA==\7\27]0;pwned\7\27[2K\rACTIVE\n\194\155fake " .. KEY

    it("escapes control characters and hides the key in text output; --json stays exact", function()
      local c = assert(cs:create_campaign { name = "Secrets spec campaign" })
      -- the name setter refuses control characters: the server sends them
      sb:fault { kind = "status", status = 200, times = 2, path = "/campaigns", method = "GET",
        body = { campaigns = { { campaign_id = c.id, name = EVIL, status = "DRAFT\27[31m" } },
          pagination = { page = 1, limit = 100, total = 1, has_next = false } } }
      local rc, out, err = run("list")
      assert.equal(0, rc, err)
      assert.is_nil(out:find("[\1-\9\11-\31\127]"))
      assert.is_nil(out:find("\194\155", 1, true))
      assert.matches("Harmless\\x1B]52;c;Y3VybA==\\x07", out, 1, true)
      assert.matches("\\x0DACTIVE\\x0A\\u{9B}fake [redacted]", out, 1, true) -- on its line
      assert.equal(1, select(2, out:gsub("\n", "")))
      assert.is_nil(out:find(TOKEN, 1, true))
      rc, out = run("--json list")
      assert.equal(0, rc)
      local items = cjson.decode(out)
      assert.equal(EVIL:sub(1, -#KEY - 1) .. "[redacted]", items[1].name)
      assert.equal("DRAFT\27[31m", items[1].status)
    end)

    it("hides a password the server echoes in an answer that --json prints JSON-escaped", function()
      local fields = {}
      for k, v in pairs(INBOX) do
        if not k:find("password", 1, true) then
          fields[#fields + 1] = ("%s = %s"):format(k, type(v) == "string" and ("%q"):format(v) or v)
        end
      end
      local file = util.write_tmp("return { " .. table.concat(fields, ", ") .. " }")
      sb:fault { kind = "status", status = 201, times = 1, method = "POST",
        body = { inbox_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427", email_address = INBOX.email_address,
          inbox_type = "CUSTOM_SMTP", smtp_password = "echo:" .. SMTP_PW, note = "imap " .. IMAP_PW } }
      local function add(args)
        return run_env(("COLDSEND_SMTP_PASSWORD=%s COLDSEND_IMAP_PASSWORD=%s"):format(util.q(SMTP_PW),
          util.q(IMAP_PW)), args .. " inboxes add " .. util.q(file))
      end
      local rc, out, err = add("--json")
      assert.equal(0, rc, err)
      assert.matches("CUSTOM_SMTP", out, 1, true)
      assert_hidden(out, "--json output")
      assert.is_nil(out:find(SMTP_PW:gsub("[/\"]", "\\%0"), 1, true), out)
      -- text output: the first password stays hidden once the key is known
      sb:fault { kind = "status", status = 201, times = 1, method = "POST",
        body = { inbox_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427", email_address = INBOX.email_address,
          inbox_type = "CUSTOM_SMTP", overall_status = SMTP_PW } }
      rc, out, err = add("")
      assert.equal(0, rc, err)
      assert.matches("added inbox", out, 1, true)
      assert_hidden(out, "text output")
    end)

    it("escapes what status prints and hides an echoed key in errors", function()
      local c = assert(cs:create_campaign { name = "Secrets spec campaign" })
      sb:fault { kind = "status", status = 200, times = 1, path = "/campaigns/" .. c.id,
        body = { campaign_id = c.id, name = "St\27[1matus", status = "DRAFT",
          timezone = "UTC\27]0;t\7" } }
      local rc, out, err = run("status " .. c.id)
      assert.equal(0, rc, err)
      assert.is_nil(out:find("[\1-\9\11-\31\127]"))
      assert.matches("St\\027[1matus", out, 1, true)
      sb:fault { kind = "status", status = 403, times = 1, path = "/campaigns/" .. c.id,
        body = { detail = "key " .. KEY .. " lacks \27[2Jscope" } }
      rc, out, err = run("status " .. c.id)
      assert.equal(1, rc)
      assert.is_nil(out:find(TOKEN, 1, true))
      assert.is_nil(err:find(TOKEN, 1, true))
      assert.is_nil(err:find("\27", 1, true))
      assert.matches("key [redacted] lacks \\x1B[2Jscope", err, 1, true)
    end)
  end)
end)
