-- hostile_values_spec: the C core stays memory-safe whatever Lua values and
-- server data it meets (issue 13; each test is one of the reproducers of
-- ../shared/repro, numbered as there). Tables whose metamethods compute
-- fresh strings while the collector runs, a replaced table.sort, cyclic
-- tables, server numbers at the integer limits, a long pydantic loc list,
-- a multipart range that overflows. Under `make asan` a use after free or
-- an overflow here is a sanitizer report; the plain build sees most of
-- them as wrong results. The transport cases go over loopback to
-- spec/helpers/rawhttpd.lua with the real libcurl transport.
local coldsend = require "coldsend"
local core = require "coldsend.core"
local cjson = require "cjson"
local util = require "spec.helpers.util"

local ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
local KEY = "cs_test_abcdefgh"

-- A client whose transport answers every request with status and body.
local function client_answering(status, body, headers)
  return coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:9/api/public/v1",
    rate_limit = false, max_retries = 0, transport = function()
      return { status = status, headers = headers or { ["content-type"] = "application/json" },
        body = body }
    end }
end

-- Runs f with the collector as eager as it gets, then restores it.
-- (The metamethods step the collector themselves: a pause of 0 over the
-- whole suite's heap kept Lua 5.3 collecting without end.)
local function eager_gc(f)
  collectgarbage("collect")
  collectgarbage("setpause", 100)
  local ok, err = pcall(f)
  collectgarbage("setpause", 200)
  collectgarbage("collect")
  if not ok then error(err, 0) end
end

-- Runs a Lua snippet in a fresh interpreter, whose collector paces the
-- finalisers of on_gc(f) into the windows these tests aim at; returns its
-- exit code, output and error output.
local function run_fresh(code)
  local lua = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
  local script = util.write_tmp([[
    local core = require "coldsend.core"
    local function on_gc(f) -- Lua 5.1 and LuaJIT finalise userdata only
      if newproxy then getmetatable(newproxy(true)).__gc = f
      else setmetatable({}, { __gc = f }) end
    end
    if not rawget(_G, "jit") and _VERSION == "Lua 5.4" then collectgarbage("generational") end
    -- runs change() at every collection until the returned function is called
    local function arm(change)
      local armed = true
      local function bomb()
        on_gc(function() if armed then change(); bomb() end end)
      end
      bomb()
      return function() armed = false end
    end
  ]] .. code)
  return util.run(lua .. " " .. util.q(script))
end

local srv = {}

setup(function()
  local f = assert(io.popen("lua5.4 spec/helpers/rawhttpd.lua 120", "r"))
  srv.pipe = f
  srv.base = "http://127.0.0.1:" .. assert(f:read("*l"):match("^(%d+)"))
end)

teardown(function()
  if srv.pipe then
    local h = core.http()
    h { url = srv.base .. "/__quit", timeout = 5 }
    h:close()
    srv.pipe:close()
  end
  util.cleanup()
end)

describe("strings read from Lua values stay anchored while C uses them", function()
  it("03: core.http sends exactly the body a request table's __index computes", function()
    local http = core.http()
    local n = 0
    local req = setmetatable({ method = "POST", url = srv.base .. "/echo", timeout = 10 }, {
      __index = function(_, k)
        if k == "body" then
          n = n + 1
          return ("B"):rep(4000) .. ("%08d"):format(n)
        end
        if k == "ca_file" or k == "proxy" or k == "multipart" then
          -- the body string is unreachable but from C: collect it, reuse its memory
          collectgarbage("collect")
          for i = 1, 200 do local _ = ("J"):rep(4000 + i) end
        end
      end })
    for i = 1, 20 do
      local res, msg = http(req)
      assert(res, msg)
      assert.equal(("B"):rep(4000) .. ("%08d"):format(i), cjson.decode(res.body).body)
    end
    http:close()
  end)

  it("03: header names and values stay whole when the collector runs mid-read", function()
    local http = core.http()
    local headers = {}
    for i = 1, 40 do headers["X-H" .. i] = ("v%d-"):format(i):rep(50) end
    local req = setmetatable({ url = srv.base .. "/echo", timeout = 10 }, {
      __index = function(_, k)
        if k == "headers" then
          -- a fresh table each time: only the C stack holds it
          local t = {}
          for name, v in pairs(headers) do t[name] = v .. "" end
          return t
        end
        collectgarbage("collect")
      end })
    local res = assert(http(req))
    local got = cjson.decode(res.body).headers
    for i = 1, 40 do assert.equal(headers["X-H" .. i], got["x-h" .. i]) end
    http:close()
  end)

  it("core.probe keeps the URL its request table's __index computes", function()
    local n = 0
    local req = setmetatable({}, { __index = function(_, k)
      if k == "url" then
        n = n + 1
        return srv.base .. "/json?" .. ("p"):rep(3000) .. n
      end
      collectgarbage("collect")
      for i = 1, 100 do local _ = ("J"):rep(3000 + i) end
    end })
    for _ = 1, 5 do
      local r = core.probe(req)
      assert.equal(200, r.status)
      assert.equal('{"ok":true}', r.body)
    end
  end)

  it("core.probe sends the headers it checked, whatever a finaliser adds to the table", function()
    -- the headers table was checked, then walked again to build the list:
    -- a finaliser run in between could add a CR LF value or a table
    -- (127.0.0.1:1 refuses at once)
    local rc, out, err = run_fresh [[
      local odd = {}
      for _ = 1, 3000 do
        local h = { ["X-A"] = "v", ["X-B"] = "w" }
        for _ = 1, 5 do on_gc(function() h["X-C"] = "a\r\nInjected: 1"; h[7] = {} end) end
        local ok, r = pcall(core.probe, { url = "http://127.0.0.1:1/", headers = h,
          timeout = 5, connect_timeout = 5 })
        if not ok and not tostring(r):find("bad probe", 1, true) then odd[tostring(r)] = true end
      end
      for k in pairs(odd) do print(k) end
      print("done")
    ]]
    assert.equal(0, rc, err)
    assert.equal("done\n", out)
  end)

  it("02: parse_response reads headers a headers table's __index computes", function()
    local raw = { ["content-type"] = { "text/html", "charset=utf-8" }, ["retry-after"] = { "7" } }
    local headers = setmetatable({}, { __index = function(_, k)
      local v = raw[k:lower()]
      collectgarbage("step", 0)
      if type(v) == "table" then return table.concat(v, "; ") .. (" "):rep(300) end
    end })
    eager_gc(function()
      for i = 1, 2000 do
        local _ = ("x"):rep(i % 257)
        local data, err = core.parse_response(503, headers, "<html>bad gateway</html>")
        assert.is_nil(data)
        assert.equal("HTTP 503 (non-JSON body: text/html; charset=utf-8" .. (" "):rep(300) .. ")",
          err.message)
        assert.equal(7, err.retry_after)
      end
    end)
  end)

  it("01: the error type's __tostring holds the fields __index computes", function()
    local tostr = getmetatable(core.error { code = "x", message = "m" }).__tostring
    local evil = setmetatable({}, { __index = function(_, k)
      if k == "code" or k == "message" or k == "method" or k == "url" then
        collectgarbage("step", 0)
        return (k .. "-"):rep(200) .. tostring(math.random())
      end
    end })
    eager_gc(function()
      for _ = 1, 2000 do
        local s = tostr(evil)
        assert.truthy(s:find(("code-"):rep(200), 1, true))
        assert.truthy(s:find(" " .. ("method-"):rep(200), 1, true))
        assert.truthy(s:find(" " .. ("url-"):rep(200), 1, true))
      end
    end)
  end)
end)

describe("C calls no function a user can replace", function()
  it("04: csv_preflight sorts the mapping itself when table.sort is replaced", function()
    local path = util.write_tmp("Email,Name,Zip\na@example.com,A,1\n")
    local real_sort, calls = table.sort, 0
    table.sort = function(t, cmp) calls = calls + 1; real_sort(t, cmp); t[1] = false end
    local ok, report = pcall(core.csv_preflight, path,
      { mapping = { zip = "Zip", email = "Email", first_name = "Name", city = "Nowhere" } })
    table.sort = real_sort
    assert(ok, report)
    assert.equal(0, calls)
    assert.same({ zip = "Zip", email = "Email", first_name = "Name" }, report.mapping)
    -- problems in key order: the missing column is found and named
    assert.equal("the header has no column 'Nowhere' (mapped from lead field 'city')",
      report.problems[1].message)
  end)

  it("build_request orders a query itself when table.sort is replaced", function()
    local real_sort = table.sort
    table.sort = function() error("table.sort called") end
    local touched = false
    local query = setmetatable({ b = 1, a = "x y", c = true },
      { __index = function() touched = true end })
    local ok, req = pcall(core.build_request, "http://127.0.0.1:9/api", "GET", "/campaigns", nil, query)
    table.sort = real_sort
    assert(ok, req)
    assert.equal("http://127.0.0.1:9/api/campaigns?a=x%20y&b=1&c=true", req.url)
    assert.is_false(touched)
  end)

  it("a cjson that package.loaded or require hands over is checked, not trusted", function()
    -- the core loads its cjson instance on first use; whatever stands in
    -- for it there, a wrong answer is an error, never a crash
    local lua = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"
    for answer, type_name in pairs { ["nil"] = "nil", ["{}"] = "table", ["true"] = "boolean" } do
      local script = util.write_tmp(([[
        local core = require "coldsend.core"
        package.loaded.cjson = { new = function() return { encode_number_precision = function() end,
          encode = function() return %s end, decode = function() return %s end } end }
        -- (nested: a flat object is written without cjson)
        local ok, err = pcall(core.json_encode, { a = { 1 } })
        print(ok, err)
        print(pcall(core.parse_response, 200, nil, '{"a":1}'))
      ]]):format(answer, answer))
      local rc, out, err = util.run(lua .. " " .. util.q(script))
      assert.equal(0, rc, err)
      assert.matches("^false\t[^\n]*cjson.encode returned " .. type_name .. " %(a string expected%)\n", out)
    end
  end)

  it("csv_preflight uses the mapping it checked, whatever a finaliser changes after", function()
    -- the mapping was checked, then each column read again from the table:
    -- a finaliser run in between left C a NULL column name
    local path = util.write_tmp("Email,First,Last\na@example.com,A,B\n")
    local rc, out, err = run_fresh(([[
      local odd, fired = {}, 0
      for _ = 1, 200 do
        local m = { email = "Email" }
        for j = 1, 2000 do m["f" .. j] = "C" .. j end
        local disarm = arm(function() m.f777, m.f1500 = nil, {} end)
        local ok, r = pcall(core.csv_preflight, %q, { mapping = m, max_problems = 100000 })
        disarm()
        if ok then
          if m.f777 == nil then fired = fired + 1 end
          for _, pr in ipairs(r.problems) do
            if pr.kind == "mapping" and type(pr.column) ~= "string" then odd[pr.message] = true end
          end
        elseif not tostring(r):find("bad mapping", 1, true) then
          odd[tostring(r)] = true
        end
      end
      for k in pairs(odd) do print(k) end
      print(fired > 0 and "done" or "no finaliser ran in a call")
    ]]):format(path))
    assert.equal(0, rc, err)
    assert.equal("done\n", out)
  end)

  it("build_request sends the query values it checked, whatever a finaliser changes after", function()
    local rc, out, err = run_fresh [[
      local odd, fired = {}, 0
      for _ = 1, 200 do
        local q = {}
        for j = 1, 2000 do q["f" .. j] = j end
        local disarm = arm(function() q.f777, q.f1500 = nil, {} end)
        local ok, r = pcall(core.build_request, "http://127.0.0.1:9/api", "GET", "/x", nil, q)
        disarm()
        if ok then
          if q.f777 == nil then fired = fired + 1 end
          if not (r.url:find("&f777=777&", 1, true) and r.url:find("&f1500=1500&", 1, true)) then
            odd["a changed value went out: " .. (r.url:match("f777=[^&]*") or "no f777")] = true
          end
        elseif not tostring(r):find("bad query", 1, true) then
          odd[tostring(r)] = true
        end
      end
      for k in pairs(odd) do print(k) end
      print(fired > 0 and "done" or "no finaliser ran in a call")
    ]]
    assert.equal(0, rc, err)
    assert.equal("done\n", out)
  end)

  it("04: a mapping table's metamethods are not called", function()
    local path = util.write_tmp("Email\na@example.com\n")
    local touched = false
    local mapping = setmetatable({ email = "Email" }, {
      __index = function() touched = true end, __pairs = function() touched = true end })
    local report = assert(core.csv_preflight(path, { mapping = mapping }))
    assert.is_false(touched)
    assert.same({ email = "Email" }, report.mapping)
  end)
end)

describe("nesting and numbers from anywhere end in a clean result", function()
  it("14: _apply refuses a cyclic table with an error, and keeps deep server data", function()
    local cyc = {}
    cyc.self = cyc
    local c = core.campaign()
    local ok, err = pcall(c._apply, c, { extra = cyc })
    assert.is_false(ok)
    assert.matches("table contains itself (a cycle)", err, 1, true)
    local deep = {}
    local t = deep
    for _ = 1, 900 do t.x = {}; t = t.x end
    c:_apply { extra = deep }
    local n, v = 0, c.extra
    while type(v) == "table" and v.x do n, v = n + 1, v.x end
    assert.equal(900, n)
  end)

  it("a table chain past 1000 levels, and tables that share tables, copy or fail in linear time", function()
    local c = core.campaign()
    local deep = {}
    local t = deep
    for _ = 1, 1500 do t.x = {}; t = t.x end
    local ok, err = pcall(c._apply, c, { extra = deep })
    assert.is_false(ok)
    assert.matches("table nested deeper than 1000 levels", err, 1, true)
    -- 80 levels with two references each: 2^80 paths, 80 tables
    local top = {}
    t = top
    for _ = 1, 80 do
      local nxt = {}
      t.a, t.b = nxt, nxt
      t = nxt
    end
    c:_apply { extra = top }
    local extra = c.extra
    assert.equal(extra.a, extra.b)
    ok, err = pcall(core.json_encode, top)
    assert.is_false(ok)
    assert.matches("(more than 200000 tables)", err, 1, true)
  end)

  it("server JSON nested 999 deep decodes whole, every level's numbers made integers", function()
    -- cjson takes up to 1000 levels; the walk that gives integers back
    -- holds two stack slots per level, past the 20 a C function starts with
    for _, open in ipairs { "[", '{"x":' } do
      local close = open == "[" and "]" or "}"
      local body = '{"campaign_id":"' .. ID .. '","x":' .. open:rep(998) .. "7" .. close:rep(998) .. "}"
      local data = assert(core.parse_response(200, { ["content-type"] = "application/json" }, body))
      local n, v = 0, data.x
      while type(v) == "table" do n, v = n + 1, v[1] or v.x end
      assert.equal(998, n)
      assert.equal(7, v)
      if math.type then assert.equal("integer", math.type(v)) end
    end
  end)

  it("json_encode refuses a table that contains itself, naming where", function()
    local cyc = { list = {} }
    cyc.list[1] = cyc
    cyc.self = cyc
    local ok, err = pcall(core.json_encode, { body = cyc })
    assert.is_false(ok)
    assert.matches("as JSON (a table that contains itself)", err, 1, true)
  end)

  it("05: a server's variant named \"1\" takes no letter; add_variant names the next A", function()
    local cs = client_answering(200, cjson.encode { campaign_id = ID, name = "n", status = "DRAFT",
      variants = { { variant_name = "1", subject_template = "s", email_content = "0123456789" } } })
    local c = assert(cs:get_campaign(ID))
    assert.equal("A", c:add_variant { subject_template = "Hi", email_content = "Hello there" })
  end)

  it("05: a server's step_number 2147483647 gives the next follow-up no overflowed step", function()
    local cs = client_answering(200, ('{"campaign_id":"%s","name":"n","status":"DRAFT","sequences":'
      .. '[{"step_number":2147483647,"trigger_type":"NOT_REPLIED","wait_days":1}]}'):format(ID))
    local c = assert(cs:get_campaign(ID))
    local ok, err = pcall(c.add_sequence, c, { trigger_type = "NOT_OPENED", wait_days = 2 })
    assert.is_false(ok)
    assert.matches("bad value for 'sequences' (a next step 2..4 (one past the highest) expected,"
      .. " got 1000001)", err, 1, true)
  end)

  it("a Retry-After date with a negative or overlong field is no date, not an overflow", function()
    local date = 784111777 -- Sun, 06 Nov 1994 08:49:37 GMT
    assert.equal(60, core.server_wait(503, { ["retry-after"] = "Sun, 06 Nov 1994 08:49:37 GMT" }, nil, date - 60))
    assert.equal(60, core.server_wait(503, { ["retry-after"] = "Sun Nov  6 08:49:37 1994" }, nil, date - 60))
    for _, v in ipairs { "Sun, 06 Nov 1994 -2147483647:49:37 GMT", "Sun, 06 Nov 1994 -1:49:37 GMT",
        "Sun, 06 Nov 1994 08:-2147483647:37 GMT", "Sun, 06 Nov 1994 08:49:-2147483647 GMT",
        "Sunday, 06-Nov-94 08:49:-1 GMT", "Sun Nov  6 -8:49:37 1994", "Sun, 06 Nov 99999999999 08:49:37 GMT",
        "Sun, 06 Nov 1994 0000000008:49:37 GMT" } do
      assert.is_nil(core.server_wait(503, { ["retry-after"] = v }, nil, date - 60), v)
    end
  end)

  it("06: server percentages at 2^53 are a problem, not an overflowing sum", function()
    local v = {}
    for i = 1, 3 do
      v[i] = '{"distribution_percent":9007199254740992,"subject_template":"s","email_content":"0123456789"}'
    end
    local cs = client_answering(200, ('{"campaign_id":"%s","name":"n","status":"DRAFT","variants":[%s]}')
      :format(ID, table.concat(v, ",")))
    local c = assert(cs:get_campaign(ID))
    local ok, err = c:validate()
    assert.is_nil(ok)
    assert.equal(1, #err.problems)
    assert.equal("variants", err.problems[1].field)
    assert.equal("distribution_percent 0..100 expected, 3 values are outside", err.problems[1].message)
  end)

  it("server percentages that are no integers (50.5, \"50\") are a problem, never taken as absent", function()
    local v = {}
    for i, p in ipairs { '50.5', '49.5', '"0"' } do
      v[i] = ('{"distribution_percent":%s,"subject_template":"s","email_content":"0123456789"}'):format(p)
    end
    local cs = client_answering(200, ('{"campaign_id":"%s","name":"n","status":"DRAFT","variants":[%s]}')
      :format(ID, table.concat(v, ",")))
    local c = assert(cs:get_campaign(ID))
    local ok, err = c:validate()
    assert.is_nil(ok)
    assert.equal("variants", err.problems[1].field)
    assert.equal("distribution_percent 0..100 expected, 3 values are outside", err.problems[1].message)
  end)

  it("07: a long pydantic loc list gives nil, err with the field cut short", function()
    local n = rawget(_G, "jit") and 40000 or 600000
    local loc = {}
    for i = 1, n do loc[i] = '"a"' end
    local cs = client_answering(422, '{"detail":[{"loc":["body",' .. table.concat(loc, ",")
      .. '],"msg":"bad","type":"x"},{"loc":["body","' .. ("é"):rep(400) .. '"],"msg":"long"}]}')
    local ok, c, err = pcall(cs.get_campaign, cs, ID)
    assert(ok, c)
    assert.is_nil(c)
    assert.equal("unprocessable", err.code)
    local field = err.details[1].field
    assert.equal(("a."):rep(32):sub(1, -2) .. "...", field)
    -- one long name is cut on a character boundary
    local long = err.details[2].field
    assert.is_true(#long <= 259)
    assert.equal("...", long:sub(-3))
    assert.truthy(utf8 == nil or utf8.len(long))
  end)

  it("20: a multipart range whose offset + length overflows is refused, not sent", function()
    local path = util.write_tmp("email\na@example.com\n")
    local http = core.http()
    local max = math.maxinteger or 2 ^ 53 - 1 -- LuaJIT, 5.1, 5.2: the largest integer taken
    for _, r in ipairs { { 1, max }, { max, 1 }, { 21, nil } } do
      local res, msg, code = http { method = "POST", url = srv.base .. "/echo", timeout = 10,
        multipart = { { name = "file", file = path, filename = "x.csv", offset = r[1], length = r[2] } } }
      assert.is_nil(res)
      assert.equal("invalid", code)
      assert.matches("has 20 bytes, the part needs", msg, 1, true)
    end
    http:close()
  end)

  it("21: a CSV header cell with a long run of blanks is read in linear time", function()
    -- 400,000 blanks: a quadratic trim would take hours, so finishing is the check
    local path = util.write_tmp("email,a" .. (" "):rep(400000) .. "b\na@example.com,1\n")
    local cs = coldsend.client { api_key = KEY, base_url = "http://127.0.0.1:9/api/public/v1",
      rate_limit = false, transport = function() error("dry_run sends nothing") end }
    local report = assert(cs:campaign(ID):upload_leads { file = path, dry_run = true, state_file = false })
    assert.equal(1, report.rows)
  end)
end)
