-- json_spec.lua: JSON through lua-cjson on both sides: empty arrays encode
-- as [], decoded integral numbers are integers again on Lua 5.3+, and
-- integral numbers go out as digits on every Lua.
local core = require "coldsend.core"
local json = require "coldsend.json"
local cjson = require "cjson"

describe("JSON", function()
  it("decodes integral numbers of a response as integers", function()
    local data = assert(core.parse_response(200, { ["content-type"] = "application/json" },
      '{"total_leads": 3, "rate": 0.25, "nested": {"pages": [1, 2, 3e0]}, "big": 1e300}'))
    assert.equal(3, data.total_leads)
    assert.equal("3", tostring(data.total_leads))
    assert.equal(0.25, data.rate)
    assert.equal("3", tostring(data.nested.pages[3]))
    if math.type then
      assert.equal("integer", math.type(data.total_leads))
      assert.equal("integer", math.type(data.nested.pages[1]))
      assert.equal("float", math.type(data.rate))
      assert.equal("float", math.type(data.big)) -- beyond 2^53: stays a float
    end
  end)

  it("encodes empty arrays as [] from C and from Lua", function()
    local req = core.build_request("https://x.test/v1", "PUT", "/a",
      { ids = core.EMPTY_ARRAY, nested = { core.EMPTY_ARRAY } })
    local back = json.decode(req.body)
    assert.same({}, back.ids)
    assert.matches('"ids":%[%]', req.body)
    assert.matches('"nested":%[%[%]%]', req.body)
    local s = json.encode { a = json.array(), b = { c = json.array() }, d = {} }
    assert.matches('"a":%[%]', s)
    assert.matches('"c":%[%]', s)
    assert.matches('"d":{}', s)
  end)

  it("leaves the caller's tables untouched when it marks empty arrays", function()
    local t = { a = json.array(), b = "x" }
    json.encode(t)
    assert.equal("table", type(t.a))
    assert.is_nil(next(t.a))
  end)

  it("builds query strings in a stable order with escaping", function()
    local req = core.build_request("https://x.test/v1/", "GET", "/campaigns", nil,
      { search = "Q1 & Q2", page = 2, days = 7, flag = true })
    assert.equal("https://x.test/v1/campaigns?days=7&flag=true&page=2&search=Q1%20%26%20Q2", req.url)
    local ok, err = pcall(core.build_request, "https://x.test", "GET", "/c", nil, { bad = {} })
    assert.is_false(ok)
    assert.matches("bad query value for 'bad'", err, 1, true)
  end)
  it("writes an integral number as digits on every Lua, from C and from Lua", function()
    -- Lua 5.1, 5.2 and LuaJIT hold 10^15 as a double: it goes out as an
    -- integer, as the same literal does from an integer under 5.3 and 5.4
    for _, n in ipairs { 100000000000000, 1000000000000000, 1e15, -4915112345678901, 2 ^ 52 } do
      local digits = string.format("%.0f", n)
      assert.equal('{"n":' .. digits .. '}', core.json_encode { n = n })
      assert.equal('{"n":' .. digits .. '}', json.encode { n = n })
      assert.equal('{"n":' .. digits .. '}', json.encode_sorted { n = n })
    end
    assert.equal('{"n":1e+300}', core.json_encode { n = 1e300 })
    assert.equal('{"n":0.5}', json.encode { n = 0.5 })
  end)

  it("decodes every integer a response holds exactly on Lua 5.3+", function()
    local data = assert(core.parse_response(200, { ["content-type"] = "application/json" },
      '{"id": 123456789012345678, "neg": -9007199254740993, "list": [9223372036854775807],'
        .. ' "s": "123456789012345678", "f": 12345678901234567.5, "e": 1234567890123456e3}'))
    assert.equal("123456789012345678", data.s)
    if math.type then
      assert.equal("integer", math.type(data.id))
      assert.equal(math.tointeger("123456789012345678"), data.id)
      assert.equal(math.tointeger("-9007199254740993"), data.neg)
      assert.equal(math.maxinteger, data.list[1])
      assert.equal("float", math.type(data.f))
      assert.equal("float", math.type(data.e))
    end
    -- a string that spells the marker stays a string
    local forged = assert(core.parse_response(200, { ["content-type"] = "application/json" },
      '{"s": "\\u0000coldsend:int:5", "id": 1234567890123456789}'))
    assert.equal("string", type(forged.s))
    assert.equal(":int:5", forged.s:sub(-6))
  end)

  it("finds a big integer at any offset and of any length from 16 digits", function()
    if not math.type then return end
    local ct = { ["content-type"] = "application/json" }
    for pad = 0, 33 do
      for len = 15, 19 do
        local digits = len == 19 and "9223372036854775807" or ("9"):rep(len) -- over 2^53 from 16
        local data = assert(core.parse_response(200, ct,
          '{"' .. ("p"):rep(pad) .. '":0,"n":' .. digits .. ',"m":1.5}'))
        local want = len < 16 and math.tointeger(tonumber(digits)) or math.tointeger(digits)
        assert.equal(want, data.n, "offset " .. pad .. ", " .. len .. " digits")
        assert.equal("integer", math.type(data.n))
      end
    end
  end)
end)

describe("JSON encoding's walk", function()
  local function nest(depth)
    local top = {}
    local cur = top
    for _ = 1, depth do
      cur.x = {}
      cur = cur.x
    end
    return top, cur
  end

  it("finds a table that contains itself at any depth", function()
    for _, depth in ipairs{ 0, 1, 63, 64, 65, 70, 200 } do
      local top, leaf = nest(depth)
      leaf.y = top
      local ok, err = pcall(core.json_encode, top)
      assert.is_false(ok, "depth " .. depth)
      assert.matches("a table that contains itself", err)
      if depth <= 70 then -- (a path is cut at 200 characters)
        assert.matches("'" .. string.rep("x.", depth) .. "y'", err, 1, true)
      end
      -- a leaf that holds itself, below the first 64 levels too
      top, leaf = nest(depth)
      leaf.self = leaf
      assert.matches("contains itself", select(2, pcall(core.json_encode, top)))
    end
  end)

  it("finds a cycle back to an ancestor of any level, and takes the same chain again after it", function()
    for _, depth in ipairs{ 10, 64, 65, 130 } do
      for _, back in ipairs{ 1, 32, 63, 64, 65, 100 } do
        if back < depth then
          local top = {}
          local levels, cur = { [0] = top }, top
          for i = 1, depth do
            cur.x = {}
            cur = cur.x
            levels[i] = cur
          end
          cur.y = levels[back]
          assert.matches("contains itself", select(2, pcall(core.json_encode, top)),
            ("depth %d, back to %d"):format(depth, back))
          -- without the back edge, the chain twice side by side is no cycle
          cur.y = nil
          local s = core.json_encode { top, top, { levels[back] } }
          assert.equal(3, #cjson.decode(s))
        end
      end
    end
  end)

  it("takes a table twice when neither holds the other, at any depth", function()
    local shared = { 1, 2 }
    for _, depth in ipairs{ 1, 64, 100 } do
      local top, leaf = nest(depth)
      leaf.a, leaf.b, leaf.c = shared, shared, { shared }
      local back = cjson.decode(core.json_encode(top))
      local cur = back
      for _ = 1, depth do cur = cur.x end
      assert.same({ 1, 2 }, cur.a)
      assert.same({ { 1, 2 } }, cur.c)
    end
  end)

  it("names the path of a bad number and refuses nesting past 1000", function()
    assert.matches("'a%.b%[2%]' as JSON %(finite number expected, got nan%)",
      select(2, pcall(core.json_encode, { a = { b = { 1, 0 / 0 } } })))
    local deep = {}
    local cur = deep
    for _ = 1, 1005 do
      cur[1] = {}
      cur = cur[1]
    end
    assert.matches("nested deeper than 1000", select(2, pcall(core.json_encode, deep)))
  end)
end)

describe("JSON decoding of numbers beside strings", function()
  it("turns numbers back to integers after strings with escaped quotes and backslashes", function()
    local data = assert(core.parse_response(200, { ["content-type"] = "application/json" },
      '{"a":"x\\"1","b":2,"c":"1\\\\","d":[3,"\\\\\\"",4],"e":"-5"}'))
    assert.equal(2, data.b)
    assert.equal("x\"1", data.a)
    assert.equal("1\\", data.c)
    assert.equal("-5", data.e)
    assert.same({ 3, "\\\"", 4 }, data.d)
    if math.type then
      assert.equal("integer", math.type(data.b))
      assert.equal("integer", math.type(data.d[1]))
      assert.equal("integer", math.type(data.d[3]))
    end
  end)
end)

-- A flat object (strings, booleans, integers cjson writes exactly) is
-- written by the module itself; byte for byte it must be what cjson writes.
describe("JSON encoding of a flat object", function()
  local cj = require("cjson").new()
  cj.encode_number_precision(14)

  it("escapes every byte in keys and values as cjson does", function()
    for b = 0, 255 do
      local s = string.char(b) .. "a/b" .. string.char(b, b)
      for _, t in ipairs { { k = s }, { [s] = true }, { [s] = s, other = "x" .. s } } do
        assert.equal(cj.encode(t), core.json_encode(t), "byte " .. b)
      end
    end
  end)

  it("writes booleans and integers below 10^14 as cjson does; a marked string as its bytes", function()
    for _, v in ipairs { 0, 1, -1, 42, 99999999999999, -99999999999999, true, false, "",
                         "\0coldsend:1", "\0coldsend:int:5" } do
      local t = { v = v, w = "x", z = false }
      assert.equal(cj.encode(t), core.json_encode(t), tostring(v))
      assert.same(t, cjson.decode(core.json_encode(t)))
    end
  end)

  it("leaves every other value to the exact general way", function()
    assert.equal('{"v":100000000000000}', core.json_encode { v = 1e14 })
    assert.equal('{"v":0.30000000000000004}', core.json_encode { v = 0.1 + 0.2 })
    assert.equal('{"v":[]}', core.json_encode { v = core.EMPTY_ARRAY })
    assert.equal('{"v":{"w":1}}', core.json_encode { v = { w = 1 } })
    assert.matches("a key holding", select(2, pcall(core.json_encode, { ["\0coldsend:1"] = 1 })))
    local long = string.rep("é/\"", 400) -- past the module's 1 KiB buffer
    assert.equal(cj.encode { v = long }, core.json_encode { v = long })
    assert.equal(cj.encode { [1] = "a", [2] = "b" }, core.json_encode { "a", "b" })
  end)
end)
