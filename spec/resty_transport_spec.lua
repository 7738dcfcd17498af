-- spec/resty_transport_spec.lua: coldsend.transport.resty's glue, against a
-- stand-in `resty.http` (package.loaded) that records every call.

local calls, script

-- The stand-in: a lua-resty-http client whose answers come from `script`.
local function stand_in()
  local httpc = {}
  local function record(name, ...)
    calls[#calls + 1] = { name = name, args = { ... } }
  end
  function httpc.set_timeouts(_, c, s, r) record("set_timeouts", c, s, r) end
  function httpc.set_timeout(_, t) record("set_timeout", t) end
  function httpc.connect(_, o)
    record("connect", o)
    if script.connect_err then return nil, script.connect_err end
    return true
  end
  function httpc.request(_, p)
    local body = p.body
    if type(body) == "function" then -- drain the iterator like the socket would
      local parts = {}
      while true do
        local chunk, err = body()
        if err then return nil, err end
        if not chunk then break end
        parts[#parts + 1] = chunk
      end
      body = table.concat(parts)
    end
    record("request", { method = p.method, path = p.path, headers = p.headers, body = body })
    if script.request_err then return nil, script.request_err end
    local r = script.response or { status = 200, headers = {}, chunks = {} }
    local i = 0
    return {
      status = r.status, headers = r.headers,
      body_reader = function(size)
        record("read", size)
        i = i + 1
        if r.read_err and i > #r.chunks then return nil, r.read_err end
        return r.chunks[i]
      end,
    }
  end
  function httpc.set_keepalive(_, t, n) record("set_keepalive", t, n) return true end
  function httpc.close(_) record("close") return true end
  return httpc
end

local function find(name)
  for _, c in ipairs(calls) do if c.name == name then return c.args end end
end

describe("coldsend.transport.resty", function()
  local resty, transport

  before_each(function()
    calls, script = {}, {}
    package.loaded["resty.http"] = { new = function() return stand_in() end }
    package.loaded["coldsend.transport.resty"] = nil
    resty = require "coldsend.transport.resty"
    transport = resty.new()
  end)

  after_each(function()
    package.loaded["resty.http"] = nil
    _G.ngx = nil
  end)

  it("sends the request and returns status, lower-case headers and body", function()
    script.response = { status = 201, headers = { ["Content-Type"] = "application/json",
      ["X-Multi"] = { "a", "b" } }, chunks = { '{"a"', ':1}' } }
    local res = assert(transport {
      method = "POST", url = "https://api.example.test/api/public/v1/campaigns?page=2",
      headers = { ["X-API-Key"] = "cs_live_x", Accept = "application/json" },
      body = "{}", timeout = 20, connect_timeout = 5,
    })
    assert.are.same({ status = 201, body = '{"a":1}',
      headers = { ["content-type"] = "application/json", ["x-multi"] = "a, b" } }, res)
    local c = find("connect")[1]
    assert.are.same({ scheme = "https", host = "api.example.test", port = 443, ssl_verify = true,
      ssl_server_name = "api.example.test" }, c)
    local r = find("request")[1]
    assert.are.equal("POST", r.method)
    assert.are.equal("/api/public/v1/campaigns?page=2", r.path)
    assert.are.equal("cs_live_x", r.headers["X-API-Key"])
    assert.are.equal("{}", r.body)
    assert.are.same({ 5000, 20000, 20000 }, find("set_timeouts"))
    assert.are.same({ 60000 }, find("set_keepalive"))
    assert.is_nil(find("close"))
  end)

  it("uses the port of the URL, no SNI for an IP, and may close instead of pooling", function()
    transport = resty.new { keepalive_timeout = false }
    assert(transport { method = "GET", url = "http://127.0.0.1:8089/x" })
    local c = find("connect")[1]
    assert.are.equal("http", c.scheme)
    assert.are.equal(8089, c.port)
    assert.is_nil(c.ssl_server_name)
    assert.are.equal("/x", find("request")[1].path)
    assert.is_nil(find("set_keepalive"))
    assert.is_not_nil(find("close"))
  end)

  it("maps connect failures to network, timeout and tls, marked never sent", function()
    local cases = {
      { "connection refused", "network" },
      { "no resolver defined to resolve \"api.example.test\"", "network" },
      { "timeout", "timeout" },
      { "20: unable to get local issuer certificate", "tls" },
      { "handshake failed", "tls" },
      { "certificate host mismatch", "tls" },
    }
    for _, case in ipairs(cases) do
      calls, script = {}, { connect_err = case[1] }
      local res, msg, code, info = transport { method = "POST", url = "https://api.example.test/x" }
      assert.is_nil(res)
      assert.are.equal(case[1], msg)
      assert.are.equal(case[2], code, case[1])
      assert.is_false(info.sent)
      assert.is_nil(find("request"))
      assert.is_not_nil(find("close"))
    end
  end)

  it("marks failures after the request went out as maybe sent", function()
    script.request_err = "closed"
    local res, msg, code, info = transport { method = "POST", url = "https://api.example.test/x" }
    assert.is_nil(res)
    assert.are.same({ "closed", "network", true }, { msg, code, info.sent })
    script.request_err = "timeout"
    res, msg, code, info = transport { method = "GET", url = "https://api.example.test/x" }
    assert.is_nil(res)
    assert.are.same({ "timeout", "timeout", true }, { msg, code, info.sent })
  end)

  it("maps a read failure in the body to network, not a half body", function()
    script.response = { status = 200, headers = {}, chunks = { "half" }, read_err = "closed" }
    local res, msg, code, info = transport { method = "GET", url = "https://api.example.test/x" }
    assert.is_nil(res)
    assert.are.same({ "closed", "network", true }, { msg, code, info.sent })
    assert.is_not_nil(find("close"))
    assert.is_nil(find("set_keepalive"))
  end)

  it("caps the body: a declared length over the cap is refused unread", function()
    transport = resty.new { max_body = 10 }
    script.response = { status = 200, headers = { ["Content-Length"] = "11" }, chunks = { "01234567890" } }
    local res, msg, code = transport { method = "GET", url = "https://api.example.test/x" }
    assert.is_nil(res)
    assert.are.equal("protocol", code)
    assert.matches("10%-byte cap", msg)
    assert.is_nil(find("read"))
  end)

  it("caps the body while streaming, and req.max_body wins over the option", function()
    script.response = { status = 200, headers = {}, chunks = { "12345", "67890", "x" } }
    local res, _, code = transport { method = "GET", url = "https://api.example.test/x", max_body = 10 }
    assert.is_nil(res)
    assert.are.equal("protocol", code)
    calls = {}
    script.response = { status = 200, headers = {}, chunks = { "12345", "67890" } }
    res = assert(transport { method = "GET", url = "https://api.example.test/x", max_body = 10 })
    assert.are.equal("1234567890", res.body)
  end)

  it("streams a multipart file part from disk with an exact Content-Length", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("email,name\na@x.test,A\nb@x.test,B\nc@x.test,C\n")
    f:close()
    assert(transport {
      method = "POST", url = "https://api.example.test/leads/upload",
      headers = { ["X-API-Key"] = "k" },
      multipart = {
        { name = "mapping", value = '{"email":"email"}' },
        { name = "file", file = path, filename = "leads.csv", content_type = "text/csv",
          prefix = "email,name\n", offset = 22, length = 11 },
      },
    })
    os.remove(path)
    local r = find("request")[1]
    local boundary = r.headers["Content-Type"]:match("^multipart/form%-data; boundary=(.+)$")
    assert.is_not_nil(boundary)
    assert.are.equal(tostring(#r.body), r.headers["Content-Length"])
    assert.are.equal(
      "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"mapping\"\r\n\r\n"
      .. '{"email":"email"}\r\n'
      .. "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"leads.csv\"\r\n"
      .. "Content-Type: text/csv\r\n\r\nemail,name\nb@x.test,B\n\r\n"
      .. "--" .. boundary .. "--\r\n", r.body)
  end)

  it("refuses a bad URL without connecting", function()
    local res, msg, code, info = transport { method = "GET", url = "ftp://x/y" }
    assert.is_nil(res)
    assert.matches("bad URL", msg)
    assert.are.equal("network", code)
    assert.is_false(info.sent)
    assert.is_nil(find("connect"))
  end)

  it("fails at once in an nginx phase that cannot wait, naming it", function()
    _G.ngx = { get_phase = function() return "init_worker" end }
    local ok, err = pcall(transport, { method = "GET", url = "https://api.example.test/x" })
    assert.is_false(ok)
    assert.matches("'init_worker' phase", err, 1, true)
    assert.matches("ngx.timer.at", err, 1, true)
    assert.is_nil(find("connect"))
  end)

  it("says lua-resty-http is missing when it is", function()
    package.loaded["resty.http"] = nil
    local saved = package.preload["resty.http"]
    package.preload["resty.http"] = function() error("module 'resty.http' not found") end
    local ok, err = pcall(resty.new)
    package.preload["resty.http"] = saved
    assert.is_false(ok)
    assert.matches("needs lua%-resty%-http", err)
  end)
end)
