-- lint_spec.lua: `make lint` fails on a luacheck warning or on C off the
-- .clang-format style, and says one line when clean; .luacheckrc gives
-- each place of the tree the names of the Luas it runs on, and no more.
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local ROOT = sandbox.root
local q = util.q

-- luacheck's findings for text checked as if it were the file at path.
local function luacheck(path, text)
  local file = util.write_tmp(text)
  local rc, out, err = util.run(("cd %s && luacheck --formatter plain --codes --filename %s - <%s")
    :format(q(ROOT), q(path), q(file)))
  assert(rc == 0 or rc == 1, "luacheck did not run (make lint installs it): " .. out .. err)
  return out
end

local function make_lint(lua_files, c_files)
  return util.run(("cd %s && make -s lint LINT_LUA=%s LINT_C=%s")
    :format(q(ROOT), q(lua_files), q(c_files)))
end

describe("make lint #once", function()
  after_each(util.cleanup)

  it("prints one line when clean", function()
    local rc, out, err = make_lint(util.write_tmp("local t = {}\nreturn t\n"), "src/util.h")
    assert.equal(0, rc, out .. err)
    assert.matches("^lint: clean %(%d+ Lua files, 1 C files%)\n$", out)
    assert.equal("", err)
  end)

  it("fails on a Lua warning, naming the file, line and finding", function()
    local bad = util.write_tmp("x = 1\n")
    local rc, out, err = make_lint(bad, "src/util.h")
    assert.equal(2, rc, out .. err)
    assert.matches(bad .. ":1:1: setting non-standard global variable 'x'", out, 1, true)
    assert.matches("lint: the findings above", err, 1, true)
  end)

  it("fails on C that clang-format would change", function()
    local bad = util.write(util.tmp_path(".c") .. ".c", "int  main( ){return 0;}\n")
    local rc, out, err = make_lint(util.write_tmp("return {}\n"), bad)
    assert.equal(2, rc, out .. err)
    assert.matches("code should be clang-formatted", err, 1, true)
  end)
end)

describe(".luacheckrc #once", function()
  after_each(util.cleanup)

  it("holds the library to what every Lua has", function()
    assert.matches("(W143) accessing undefined field 'tointeger' of global 'math'",
      luacheck("lua/coldsend/new.lua", "return math.tointeger(1)\n"), 1, true)
    assert.matches("(W113) accessing undefined variable 'unpack'",
      luacheck("lua/coldsend/new.lua", "return unpack({})\n"), 1, true)
    assert.matches("(W111) setting non-standard global variable '_'",
      luacheck("lua/coldsend/new.lua", "local a\na, _ = ('x'):find('x')\nreturn a\n"), 1, true)
    assert.matches("(W113) accessing undefined variable 'ngx'",
      luacheck("lua/coldsend/new.lua", "return ngx.now()\n"), 1, true)
    assert.equal("", luacheck("lua/coldsend/new.lua", "return (table.concat({ 'a' }))\n"))
  end)

  it("gives a host's files that host's names, misspellings still caught", function()
    assert.equal("", luacheck("examples/openresty/new.lua", "ngx.say(ngx.var.arg_x)\n"))
    assert.equal("", luacheck("examples/haproxy/new.lua",
      "core.register_service('x', 'http', function(applet) applet:start_response() end)\n"))
    assert.matches("(W143) accessing undefined field 'regster_service' of global 'core'",
      luacheck("examples/haproxy/new.lua", "core.regster_service('x', 'http', print)\n"), 1, true)
    assert.equal("", luacheck("fuzz/new_driver.lua", "return string.pack('i4', math.maxinteger)\n"))
  end)

  it("gives the specs busted and every Lua's names", function()
    assert.equal("", luacheck("spec/new_spec.lua",
      "describe('x', function() it('y', function() assert.is_true(setfenv ~= 1) end) end)\n"))
    assert.matches("(W113) accessing undefined variable 'describe'",
      luacheck("lua/coldsend/new.lua", "describe('x', print)\n"), 1, true)
  end)
end)
