-- http_spec.lua: the libcurl transport (core.http, core.http_perform)
-- against spec/helpers/rawhttpd.lua on 127.0.0.1.
local core = require "coldsend.core"
local cjson = require "cjson"

local LUA54 = _VERSION == "Lua 5.4"

local srv = {}

local function start_server()
  local f = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 60", "r"))
  local line = assert(f:read("*l"), "rawhttpd printed no port")
  local port, closed, silent = line:match("^(%d+) (%d+) (%d+)$")
  assert(port, "rawhttpd said: " .. line)
  srv.pipe = f
  srv.base = "http://127.0.0.1:" .. port
  srv.closed = "http://127.0.0.1:" .. closed
  srv.silent = "127.0.0.1:" .. silent
end

local function url(path) return srv.base .. path end

local function get(path, extra)
  local req = { method = "GET", url = url(path), headers = {}, timeout = 10, connect_timeout = 5 }
  for k, v in pairs(extra or {}) do req[k] = v end
  return req
end

local function stats()
  local res = assert(core.http_perform(get("/__stats")))
  return cjson.decode(res.body)
end

local function tmpfile(content)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

setup(start_server)

teardown(function()
  if srv.pipe then
    local h = core.http()
    h(get("/__quit"))
    h:close()
    srv.pipe:close() -- waits for the child to exit
  end
end)

describe("core.http objects", function()
  it("reports libcurl's version", function()
    assert.matches("^libcurl/%d+%.%d+%.%d+", core.curl_version())
  end)

  it("prints, closes idempotently and refuses use once closed", function()
    local h = core.http()
    assert.equal("coldsend.http (open)", tostring(h))
    assert.equal("coldsend.http", getmetatable(h).__name)
    assert.is_true(h:close())
    assert.is_true(h:close())
    assert.equal("coldsend.http (closed)", tostring(h))
    assert.has_error(function() h(get("/json")) end, "attempt to use a closed coldsend.http")
  end)

  it("closes on leaving a to-be-closed scope", function()
    if not LUA54 then return pending("Lua 5.4 only") end
    local h = assert(load([[
      local core = ...
      local h <close> = core.http()
      return h
    ]]))(core)
    assert.equal("coldsend.http (closed)", tostring(h))
  end)

  it("checks its options", function()
    assert.has_error(function() core.http { max_body = -1 } end)
    assert.has_error(function() core.http { ca_file = 5 } end)
    assert.has_error(function() core.http "x" end)
    local ok, err = pcall(core.http, { ca_file = "/nonexistent/ca.pem" })
    assert.is_false(ok)
    assert.matches("bad option 'ca_file'", err)
  end)
end)

describe("requests", function()
  local h
  before_each(function() h = core.http() end)
  after_each(function() h:close() end)

  it("GETs a JSON answer with lower-case header names", function()
    local res = assert(h(get("/json")))
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.equal(tostring(#res.body), res.headers["content-length"])
    assert.same({ ok = true }, cjson.decode(res.body))
    assert.is_nil(getmetatable(res))
  end)

  it("reuses one connection for successive requests (keep-alive)", function()
    local a = cjson.decode(assert(h(get("/echo"))).body)
    local b = cjson.decode(assert(h(get("/echo"))).body)
    local c = cjson.decode(assert(h(get("/echo"))).body)
    assert.equal(a.conn, b.conn)
    assert.equal(a.conn, c.conn)
    assert.equal(a.n + 2, c.n)
  end)

  it("reuses the per-state handle of http_perform", function()
    local a = cjson.decode(assert(core.http_perform(get("/echo"))).body)
    local b = cjson.decode(assert(core.http_perform(get("/echo"))).body)
    assert.equal(a.conn, b.conn)
    assert.equal(a.n + 1, b.n)
  end)

  it("sends method, headers and body as given", function()
    local body = '{"name": "Q1 \0 launch"}'
    local res = assert(h {
      method = "POST", url = url("/echo"), body = body,
      headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = "cs_test_abc",
        ["X-Empty"] = "", ["X-Number"] = 5 },
    })
    local e = cjson.decode(res.body)
    assert.equal("POST", e.method)
    assert.equal(body, e.body) -- explicit size: the NUL goes through
    assert.equal("application/json", e.headers["content-type"])
    assert.equal("cs_test_abc", e.headers["x-api-key"])
    assert.equal("", e.headers["x-empty"])
    assert.equal("5", e.headers["x-number"])
    assert.is_nil(e.headers.expect)
  end)

  it("adds no form Content-Type of its own", function()
    local e = cjson.decode(assert(h { method = "POST", url = url("/echo") }).body)
    assert.equal("POST", e.method)
    assert.is_nil(e.headers["content-type"])
    assert.equal("0", e.headers["content-length"])
  end)

  it("does PUT, PATCH and DELETE", function()
    local e = cjson.decode(assert(h { method = "PUT", url = url("/echo"), body = "{}" }).body)
    assert.equal("PUT", e.method)
    assert.equal("{}", e.body)
    e = cjson.decode(assert(h { method = "PUT", url = url("/echo") }).body)
    assert.equal("0", e.headers["content-length"])
    e = cjson.decode(assert(h { method = "PATCH", url = url("/echo"), body = "[1]" }).body)
    assert.equal("PATCH", e.method)
    assert.equal("[1]", e.body)
    e = cjson.decode(assert(h { method = "DELETE", url = url("/echo") }).body)
    assert.equal("DELETE", e.method)
    assert.equal("", e.body)
    -- and a GET after them is a GET again on the same handle
    e = cjson.decode(assert(h(get("/echo"))).body)
    assert.equal("GET", e.method)
  end)

  it("reads a chunked body; joins repeated headers", function()
    local res = assert(h(get("/chunked")))
    assert.same({ chunks = { "a", "b", "c" } }, cjson.decode(res.body))
    assert.equal("Yes", res.headers["x-mixed-case"])
    assert.equal("one, two", res.headers["x-multi"])
    assert.equal("padded value", res.headers["x-spaces"])
    assert.equal("chunked", res.headers["transfer-encoding"])
  end)

  it("reads a request's fields whatever else its table holds, with a metatable or none", function()
    local function odd(req)
      req[1], req[2.5], req[true] = "x", "y", "z"
      req.METHOD, req.urls, req.bodyx, req.header = "DELETE", "nope", "nope", { Bad = "\n" }
      return req
    end
    local e = cjson.decode(assert(h(odd { method = "POST", url = url("/echo"), body = "[7]",
      headers = { ["Content-Type"] = "application/json" }, timeout = 10 })).body)
    assert.equal("POST", e.method)
    assert.equal("[7]", e.body)
    local plain = setmetatable({ method = "PUT", url = url("/echo"), body = "[8]" }, {})
    e = cjson.decode(assert(h(plain)).body)
    assert.equal("PUT", e.method)
    assert.equal("[8]", e.body)
    assert.matches("bad request field 'timeout'", select(2, pcall(h,
      odd { method = "GET", url = url("/echo"), timeout = "soon" })))
  end)

  it("joins a repeated header in any case, also after many other names", function()
    local lines = {}
    for i = 1, 40 do lines[#lines + 1] = "X-H" .. i .. ": v" .. i end
    lines[#lines + 1] = "x-h1: again"
    lines[#lines + 1] = "X-H40: again"
    lines[#lines + 1] = "X-h35: z"
    lines[#lines + 1] = "X-Last: only"
    local q = table.concat(lines, "\n"):gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end)
    local res = assert(h(get("/headers?h=" .. q)))
    assert.equal("v1, again", res.headers["x-h1"])
    assert.equal("v40, again", res.headers["x-h40"])
    assert.equal("v35, z", res.headers["x-h35"])
    assert.equal("v2", res.headers["x-h2"])
    assert.equal("only", res.headers["x-last"])
    local n = 0
    for name in pairs(res.headers) do
      if name:match("^x%-h%d+$") then n = n + 1 end
    end
    assert.equal(40, n)
  end)

  it("gives each answer its own header values when the lines of the last one come again", function()
    local function q(lines)
      return (table.concat(lines, "\n"):gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end))
    end
    local seq = {
      { { "X-A: 1", "X-B: same" }, { ["x-a"] = "1", ["x-b"] = "same" } },
      { { "X-A: 2", "X-B: same" }, { ["x-a"] = "2", ["x-b"] = "same" } },
      { { "X-A: 1", "X-B: same" }, { ["x-a"] = "1", ["x-b"] = "same" } },
      { { "x-a: 1", "X-B: same", "X-B: more" }, { ["x-a"] = "1", ["x-b"] = "same, more" } },
      { { "X-B: same", "X-A: 1" }, { ["x-a"] = "1", ["x-b"] = "same" } },
      { { "X-A: 1" }, { ["x-a"] = "1" } },
      { { "X-A: 1", "X-B: same", "X-B: more" }, { ["x-a"] = "1", ["x-b"] = "same, more" } },
      { { "X-A: 1", "X-B: same", "X-B: more" }, { ["x-a"] = "1", ["x-b"] = "same, more" } },
    }
    for round = 1, 2 do
      for i, step in ipairs(seq) do
        local res = assert(h(get("/headers?h=" .. q(step[1]))))
        for name, want in pairs(step[2]) do
          assert.equal(want, res.headers[name], ("round %d step %d %s"):format(round, i, name))
        end
        if not step[2]["x-b"] then assert.is_nil(res.headers["x-b"]) end
        res.headers["x-a"] = "changed by the caller" -- not what the next answer holds
      end
    end
  end)

  it("takes headers, timeouts, CA file and body cap as arguments instead of the request's fields", function()
    -- what the request loop does: the five values beside req, none read from it
    local req = { method = "POST", url = url("/echo"), body = "[1]", timeout = "not read",
                  headers = { Bad = "not\nread" }, max_body = "not read" }
    local e = cjson.decode(assert(h(req, { ["Content-Type"] = "application/json", ["X-Arg"] = "yes" },
      10, 5, nil, nil)).body)
    assert.equal("yes", e.headers["x-arg"])
    assert.equal("[1]", e.body)
    local res, _, code, info = h(get("/big?n=5000"), {}, 10, 5, nil, 1000)
    assert.is_nil(res)
    assert.equal("protocol", code)
    assert.is_true(info.too_large)
    local t0 = core.now()
    res, _, code = h(get("/slow?ms=1500"), {}, 0.3, 0.3, nil, nil)
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.is_true(core.now() - t0 < 1.2)
    assert.matches("bad request field 'timeout' %(positive number expected%)",
      select(2, pcall(h, get("/json"), {}, -1, 5, nil, nil)))
    assert.matches("bad header 'X' %(value contains CR, LF or NUL%)",
      select(2, pcall(h, get("/json"), { X = "a\r\nInjected: 1" }, 10, 5, nil, nil)))
    assert.matches("bad request field 'ca_file' %(string expected, got number%)",
      select(2, pcall(h, get("/json"), {}, 10, 5, 7, nil)))
    assert.equal(200, assert(h(get("/json"))).status) -- and req alone again
  end)

  it("returns error statuses and does not follow redirects", function()
    local res = assert(h(get("/status?code=302&location=http://127.0.0.1:1/elsewhere")))
    assert.equal(302, res.status)
    assert.equal("http://127.0.0.1:1/elsewhere", res.headers.location)
    res = assert(h(get("/status?code=502&type=text/html&body=%3Chtml%3Ebad%3C/html%3E")))
    assert.equal(502, res.status)
    assert.equal("<html>bad</html>", res.body)
    assert.equal("text/html", res.headers["content-type"])
  end)

  it("carries a 1 MiB body under the default cap", function()
    local res = assert(h(get("/big?n=1048576")))
    assert.equal(1048576, #res.body)
  end)
end)

describe("failures", function()
  local h
  before_each(function() h = core.http() end)
  after_each(function() h:close() end)

  it("times out on a slow answer, as possibly sent", function()
    local t0 = core.now()
    local res, msg, code, info = h(get("/slow?ms=1500", { timeout = 0.3 }))
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.equal(28, info.curl_code)
    assert.is_true(info.sent)
    assert.matches("timed out", msg)
    assert.is_true(core.now() - t0 < 1.2)
    -- the handle is still good afterwards
    assert.equal(200, assert(h(get("/json"))).status)
  end)

  it("times out on a stalled body", function()
    local res, _, code, info = h(get("/stall?ms=1500", { timeout = 0.4 }))
    assert.is_nil(res)
    assert.equal("timeout", code)
    assert.is_true(info.sent)
  end)

  it("reports a refused connection as never sent", function()
    local res, msg, code, info = h { method = "POST", url = srv.closed .. "/campaigns", body = "{}" }
    assert.is_nil(res)
    assert.equal("network", code)
    assert.equal(7, info.curl_code)
    assert.is_false(info.sent)
    assert.matches("onnect", msg)
  end)

  it("reports a reset before the answer as possibly sent", function()
    local res, msg, code, info = h { method = "POST", url = url("/reset"), body = "{}" }
    assert.is_nil(res)
    assert.equal("network", code)
    assert.is_true(info.sent)
    assert.is_true(info.curl_code == 52 or info.curl_code == 56, msg)
  end)

  it("reports a reset half-way through the body", function()
    local res, msg, code, info = h(get("/reset-mid"))
    assert.is_nil(res)
    assert.equal("network", code)
    assert.is_true(info.sent)
    assert.is_true(info.curl_code == 18 or info.curl_code == 56, msg)
  end)

  it("reports an answer that is not HTTP as protocol, possibly sent", function()
    local res, msg, code, info = h { method = "POST", url = url("/garbage"), body = "{}" }
    assert.is_nil(res)
    assert.equal("protocol", code, msg)
    assert.is_true(info.sent)
  end)

  it("caps the body (object option and per request)", function()
    local small = core.http { max_body = 1000 }
    local res = assert(small(get("/big?n=1000")))
    assert.equal(1000, #res.body)
    local msg, code, info
    res, msg, code, info = small(get("/big?n=5000"))
    assert.is_nil(res)
    assert.equal("response body over the 1000-byte cap", msg)
    assert.equal("protocol", code)
    assert.is_true(info.too_large)
    assert.is_true(info.sent)
    assert.equal(23, info.curl_code)
    small:close()
    res, msg, code = h(get("/big?n=5000", { max_body = 1000 }))
    assert.is_nil(res)
    assert.equal("response body over the 1000-byte cap", msg)
    assert.equal("protocol", code)
    res, msg, code = core.http_perform(get("/big?n=5000", { max_body = 1000 }))
    assert.is_nil(res)
    assert.equal("response body over the 1000-byte cap", msg)
    assert.equal("protocol", code)
    -- the default is 8 MiB
    res, msg = h(get("/big?n=8388609"))
    assert.is_nil(res)
    assert.equal("response body over the 8388608-byte cap", msg)
  end)

  it("maps a TLS handshake failure to tls, never sent", function()
    -- rawhttpd speaks plain HTTP: the TLS hello fails
    local res, msg, code, info = h(get("/json", { url = url("/json"):gsub("^http:", "https:") }))
    assert.is_nil(res)
    assert.equal("tls", code, msg)
    assert.is_false(info.sent)
  end)

  it("times out in a TLS handshake as never sent, waiting for an answer as sent", function()
    local res, msg, code, info = h { method = "POST", url = "https://" .. srv.silent .. "/x",
      body = "{}", timeout = 0.3 }
    assert.is_nil(res)
    assert.equal("timeout", code, msg)
    assert.is_false(info.sent)
    res, msg, code, info = h { method = "POST", url = "http://" .. srv.silent .. "/x",
      body = "{}", timeout = 0.3 }
    assert.is_nil(res)
    assert.equal("timeout", code, msg)
    assert.is_true(info.sent)
  end)

  it("keeps headers out of failure messages", function()
    local _, msg = h(get("/slow?ms=1000", { timeout = 0.2, headers = { ["X-API-Key"] = "cs_live_SECRET" } }))
    assert.is_nil(msg:find("SECRET", 1, true))
    _, msg = h { method = "GET", url = srv.closed .. "/x", headers = { ["X-API-Key"] = "cs_live_SECRET" } }
    assert.is_nil(msg:find("SECRET", 1, true))
  end)
end)

describe("misuse", function()
  local h
  before_each(function() h = core.http() end)
  after_each(function() h:close() end)

  it("refuses CR or LF in a header before sending, without quoting the value", function()
    local before = stats().requests
    local ok, err = pcall(h, { method = "GET", url = url("/echo"),
      headers = { ["X-API-Key"] = "cs_live_SECRET\r\nX-Evil: 1" } })
    assert.is_false(ok)
    assert.matches("bad header 'X%-API%-Key' %(value contains CR, LF or NUL%)", err)
    assert.is_nil(err:find("SECRET", 1, true))
    assert.has_error(function() h { url = url("/echo"), headers = { ["X-A"] = "a\nb" } } end)
    assert.has_error(function() h { url = url("/echo"), headers = { ["Bad Name"] = "x" } } end)
    assert.has_error(function() h { url = url("/echo"), headers = { ["X:Y"] = "x" } } end)
    assert.equal(before + 1, stats().requests) -- only the stats call itself
  end)

  it("refuses bad methods, URLs and shapes", function()
    assert.has_error(function() h { method = "TRACE", url = url("/echo") } end)
    assert.has_error(function() h { method = "get", url = url("/echo") } end)
    assert.has_error(function() h { method = "GET" } end)
    assert.has_error(function() h { method = "GET", url = "ftp://127.0.0.1/x" } end)
    assert.has_error(function() h { method = "GET", url = "file:///etc/passwd" } end)
    assert.has_error(function() h { method = "GET", url = url("/a b") } end)
    assert.has_error(function() h { method = "GET", url = url("/echo"), body = "x" } end)
    assert.has_error(function() h { method = "GET", url = url("/echo"), timeout = 0 } end)
    assert.has_error(function() h { method = "GET", url = url("/echo"), timeout = "5" } end)
    assert.has_error(function() h { method = "GET", url = url("/echo"), headers = "x" } end)
    assert.has_error(function() h "x" end)
    assert.has_error(function() core.http_perform() end)
  end)
end)

describe("multipart", function()
  local h, path
  local content = {}
  for i = 1, 5000 do content[i] = ("row%05d,user%d@example.com\n"):format(i, i) end
  content = table.concat(content)

  before_each(function()
    h = core.http()
    path = tmpfile(content)
  end)
  after_each(function()
    h:close()
    os.remove(path)
  end)

  it("streams prefix plus a range of the file, with value parts", function()
    local offset, length = 1000, 54321
    local res = assert(h { method = "POST", url = url("/echo"),
      headers = { ["X-API-Key"] = "cs_test_x" },
      multipart = {
        { name = "mapping", value = '{"email": "email"}' },
        { name = "file", file = path, filename = "leads-2.csv", content_type = "text/csv",
          offset = offset, length = length, prefix = "id,email\n" },
      } })
    local e = cjson.decode(res.body)
    assert.equal("POST", e.method)
    assert.matches("^multipart/form%-data; boundary=", e.headers["content-type"])
    local expected = "id,email\n" .. content:sub(offset + 1, offset + length)
    assert.truthy(e.body:find(expected, 1, true))
    assert.truthy(e.body:find('name="mapping"\r\n\r\n{"email": "email"}\r\n', 1, true))
    assert.truthy(e.body:find('name="file"; filename="leads-2.csv"\r\nContent-Type: text/csv\r\n', 1, true))
    -- exactly the range: the byte after it is not there
    local after = e.body:find(expected, 1, true) + #expected
    assert.equal("\r\n--", e.body:sub(after, after + 3))
    assert.equal(tostring(#e.body), e.headers["content-length"])
  end)

  it("defaults to the whole file from offset", function()
    local res = assert(h { method = "PUT", url = url("/echo"),
      multipart = { { name = "file", file = path, offset = #content - 10 } } })
    local e = cjson.decode(res.body)
    assert.equal("PUT", e.method)
    assert.truthy(e.body:find("\r\n\r\n" .. content:sub(-10) .. "\r\n--", 1, true))
  end)

  it("leaves nothing of a multipart or body request to the next on the handle", function()
    local function echo(req)
      req.url = url("/echo")
      local e = cjson.decode(assert(h(req)).body)
      return e.method, e.body, e.headers["content-type"], e.headers["content-length"]
    end
    local parts = { { name = "mapping", value = "{}" } }
    for _ = 1, 2 do
      local m, b, ct = echo { method = "POST", multipart = parts }
      assert.equal("POST", m)
      assert.matches("^multipart/form%-data", ct)
      assert.truthy(b:find('name="mapping"', 1, true))
      local cl
      m, b, ct, cl = echo { method = "PUT" }
      assert.same({ "PUT", "", nil, "0" }, { m, b, ct, cl })
      m, b, ct, cl = echo { method = "GET" }
      assert.same({ "GET", "", nil, nil }, { m, b, ct, cl })
      m, b = echo { method = "DELETE", body = "{}", headers = { ["Content-Type"] = "application/json" } }
      assert.same({ "DELETE", "{}" }, { m, b })
      m, b, ct, cl = echo { method = "DELETE" }
      assert.same({ "DELETE", "", nil, nil }, { m, b, ct, cl })
      m, b, ct, cl = echo { method = "POST", fresh = true }
      assert.same({ "POST", "", nil, "0" }, { m, b, ct, cl })
      m, b, _, cl = echo { method = "PATCH", body = "[1]" }
      assert.same({ "PATCH", "[1]", "3" }, { m, b, cl })
      m, b, ct, cl = echo { method = "GET" }
      assert.same({ "GET", "", nil, nil }, { m, b, ct, cl })
    end
  end)

  it("sends each request of a long mixed run on one handle as a new handle sends it", function()
    -- the same method twice (kept on the handle), after a failure, after a
    -- multipart: method, body, Content-Type and Content-Length on the wire
    local kinds = {
      function() return { method = "GET" } end,
      function() return { method = "POST", body = '{"p":1}', headers = { ["Content-Type"] = "application/json" } } end,
      function() return { method = "POST" } end,
      function() return { method = "PUT", body = '{"u":1}' } end,
      function() return { method = "PUT" } end,
      function() return { method = "DELETE" } end,
      function() return { method = "DELETE", body = "x" } end,
      function() return { method = "PATCH", body = "pa" } end,
      function() return { method = "PUT", multipart = { { name = "file", file = path, length = 5 } } } end,
      function() return { method = "PUT", url = "http://127.0.0.1:1/x", body = "zz" } end,
    }
    local function wire(hh, k)
      local req = kinds[k]()
      local failing = req.url ~= nil
      req.url = req.url or url("/echo")
      local res = hh(req)
      if failing then return assert.is_nil(res) end
      local e = cjson.decode(assert(res).body)
      return table.concat({ e.method, (e.body:gsub("%-%-%-%-+%x+", "BOUNDARY")),
        tostring(e.headers["content-type"]):sub(1, 20),
        tostring(e.headers["content-length"]), tostring(e.headers["transfer-encoding"]) }, "|")
    end
    local seq = { 4, 4, 6, 6, 10, 6, 8, 8, 1, 5, 4, 7, 6, 9, 9, 3, 10, 10, 5, 2, 7, 7, 8, 1, 9, 6, 2, 5, 5, 1 }
    for i, k in ipairs(seq) do
      assert.equal(wire(core.http(), k), wire(h, k), ("step %d (kind %d)"):format(i, k))
    end
  end)

  it("works through http_perform", function()
    local res = assert(core.http_perform { method = "POST", url = url("/echo"),
      multipart = { { name = "file", file = path, length = 100, prefix = "h\n" } } })
    assert.truthy(cjson.decode(res.body).body:find("h\n" .. content:sub(1, 100), 1, true))
  end)

  it("fails before sending when the file is missing or too short", function()
    local before = stats().requests
    local res, msg, code, info = h { method = "POST", url = url("/echo"),
      multipart = { { name = "file", file = path .. ".missing" } } }
    assert.is_nil(res)
    assert.equal("invalid", code)
    assert.is_false(info.sent)
    assert.matches("cannot read '.*%.missing': No such file", msg)
    res, msg, code, info = h { method = "POST", url = url("/echo"),
      multipart = { { name = "file", file = path, offset = 10, length = #content } } }
    assert.is_nil(res)
    assert.equal("invalid", code)
    assert.is_false(info.sent)
    assert.matches("has " .. #content .. " bytes", msg)
    assert.equal(before + 1, stats().requests)
    -- the handle works afterwards
    assert.equal(200, assert(h(get("/json"))).status)
  end)

  it("checks the parts", function()
    assert.has_error(function() h { method = "POST", url = url("/echo"), multipart = {} } end)
    assert.has_error(function() h { method = "POST", url = url("/echo"), multipart = { { value = "x" } } } end)
    assert.has_error(function()
      h { method = "POST", url = url("/echo"), multipart = { { name = "a", value = "x", file = path } } }
    end)
    assert.has_error(function()
      h { method = "POST", url = url("/echo"), body = "x", multipart = { { name = "a", value = "x" } } }
    end)
    assert.has_error(function()
      h { method = "GET", url = url("/echo"), multipart = { { name = "a", value = "x" } } }
    end)
    assert.has_error(function()
      h { method = "POST", url = url("/echo"), multipart = { { name = "a", file = path, offset = -1 } } }
    end)
  end)
end)
