-- luarocks_spec.lua: `luarocks make --deps-mode none` installs the module
-- from the rockspec into a fresh tree, offline (lua-cjson, LuaSocket and
-- libcurl come from Debian), and `require "coldsend"` then works from that
-- tree alone under lua5.4. The rockspec names every module and script.
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local ROOT = sandbox.root
local ROCKSPEC = "coldsend-scm-1.rockspec"

local q = util.q

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- Files below dir (relative to ROOT) matching a Lua pattern.
local function files(dir, pattern)
  local _, out = sh(string.format("cd %s && find %s -type f | sort", q(ROOT), q(dir)))
  local list = {}
  for line in out:gmatch("[^\n]+") do
    if line:find(pattern) then list[#list + 1] = line end
  end
  return list
end

local function read_rockspec()
  local env = {}
  local chunk = assert(loadfile(ROOT .. "/" .. ROCKSPEC, "t", env))
  if setfenv then setfenv(chunk, env) end
  chunk()
  return env
end

-- The luarocks line of doc/install.md for a Lua version ("5.4", "5.1").
local function doc_line(version)
  local f = assert(io.open(ROOT .. "/doc/install.md"))
  local text = f:read("*a")
  f:close()
  local line = text:match("\n    (luarocks %-%-lua%-version " .. version:gsub("%.", "%%.") .. " make [^\n]+)")
  assert(line, "no luarocks line for " .. version .. " in doc/install.md")
  return line
end

describe("luarocks #once", function()
  local work, tree

  setup(function()
    work = os.tmpname()
    os.remove(work)
    tree = work .. "/tree"
    -- build from a copy, so the tree's own src/ gets no objects
    assert.equal(0, (sh(string.format("mkdir -p %s/src && cd %s && cp -r %s src lua bin %s/src/",
      q(work), q(ROOT), ROCKSPEC, q(work)))))
  end)

  teardown(function()
    if work then os.execute("rm -rf " .. q(work)) end
  end)

  it("the rockspec lists every module under lua/coldsend, every C file and every script", function()
    local spec = read_rockspec()
    local by_file = {}
    for name, m in pairs(spec.build.modules) do
      if type(m) == "string" then by_file[m] = name end
    end
    local missing = {}
    for _, path in ipairs(files("lua/coldsend", "%.lua$")) do
      local want = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      if by_file[path] ~= want then missing[#missing + 1] = string.format("[%q] = %q", want, path) end
    end
    local sources = {}
    for _, s in ipairs(spec.build.modules["coldsend.core"].sources) do sources[s] = true end
    for _, path in ipairs(files("src", "%.c$")) do
      if not sources[path] then missing[#missing + 1] = "coldsend.core source " .. path end
    end
    local bins = spec.build.install and spec.build.install.bin or {}
    for _, path in ipairs(files("bin", ".")) do
      local name = path:gsub("^bin/", "")
      if bins[name] ~= path then missing[#missing + 1] = string.format("install.bin[%q] = %q", name, path) end
    end
    assert.same({}, missing)
  end)

  it("installs offline into a fresh tree by doc/install.md's line, and require works from it under lua5.4", function()
    local line = doc_line("5.4")
    assert.matches("--tree /opt/coldsend --deps-mode none " .. ROCKSPEC, line, 1, true)
    line = line:gsub("/opt/coldsend", tree)
    local rc, out = sh(string.format("cd %s/src && %s", q(work), line))
    assert.equal(0, rc, out)
    local sb = sandbox.start { rate_limit = false }
    finally(function() sb:stop() end)
    -- only the tree and the system's paths (";;"), none of this checkout's
    local script = [[
      local coldsend = require "coldsend"
      assert(package.searchpath("coldsend", package.path):find(TREE, 1, true))
      assert(package.searchpath("coldsend.core", package.cpath):find(TREE, 1, true))
      local cs = coldsend.client { api_key = KEY, base_url = URL }
      local c = assert(cs:create_campaign { name = "Installed from luarocks" })
      assert(assert(cs:get_campaign(c.id)).name == "Installed from luarocks")
      for _, m in ipairs { "coldsend.plan", "coldsend.help", "coldsend.cli", "coldsend.json" } do
        require(m)
      end
      print("ok " .. coldsend._VERSION)
    ]]
    local cmd = string.format("cd / && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "
      .. "LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s",
      q(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;"),
      q(tree .. "/lib/lua/5.4/?.so;;"),
      q(string.format("TREE=%q KEY=%q URL=%q ", tree, sb.key, sb.url) .. script))
    rc, out = sh(cmd)
    assert.equal(0, rc, out)
    assert.matches("ok %d+%.%d+%.%d+", out)
    -- the installed commands find the tree's modules themselves, from
    -- anywhere, with no LUA_PATH and no `luarocks path`
    local clean = "cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "
    rc, out = sh(clean .. q(tree .. "/bin/coldsend") .. " --help")
    assert.equal(0, rc, out)
    assert.matches("usage: coldsend", out, 1, true)
    rc, out = sh(clean .. string.format("COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s %s list",
      q(sb.key), q(sb.url), q(tree .. "/bin/coldsend")))
    assert.equal(0, rc, out)
    assert.matches("Installed from luarocks", out, 1, true)
    rc, out = sh(clean .. q(tree .. "/bin/coldsend-sandbox") .. " --help")
    assert.equal(0, rc, out)
    assert.matches("usage: coldsend-sandbox", out, 1, true)
  end)

  it("installs for LuaJIT by doc/install.md's OpenResty line, and the module loads in luajit", function()
    local line = doc_line("5.1")
    assert.matches("LUA_INCDIR=/usr/include/luajit-2.1", line, 1, true)
    local jit_tree = work .. "/hooks/lua_modules"
    line = line:gsub("/srv/hooks/lua_modules", jit_tree)
    assert.matches(jit_tree, line, 1, true)
    -- no objects of the 5.4 build left to reuse
    local rc, out = sh(string.format("cd %s/src && rm -rf src/*.o coldsend && %s", q(work), line))
    assert.equal(0, rc, out)
    assert.matches("-I/usr/include/luajit-2.1", out, 1, true)
    local script = [[
      local coldsend = require "coldsend"
      assert(package.searchpath("coldsend.core", package.cpath):find(TREE, 1, true))
      local cs = coldsend.client { api_key = "cs_test_sandbox", base_url = "http://127.0.0.1:1/api/public/v1" }
      local c = cs:campaign()
      c.name = "Built for LuaJIT"
      assert(c.name == "Built for LuaJIT")
      print("ok " .. coldsend._VERSION)
    ]]
    rc, out = sh(string.format("cd / && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=%s LUA_CPATH=%s luajit -e %s",
      q(jit_tree .. "/share/lua/5.1/?.lua;" .. jit_tree .. "/share/lua/5.1/?/init.lua;;"),
      q(jit_tree .. "/lib/lua/5.1/?.so;;"),
      q(string.format("TREE=%q ", jit_tree) .. script)))
    assert.equal(0, rc, out)
    assert.matches("ok %d+%.%d+%.%d+", out)
  end)

  it("eval $(make -s env) of doc/install.md points lua5.2, 5.3, 5.4 and LuaJIT at their own builds", function()
    local doc = util.slurp(ROOT .. "/doc/install.md")
    assert.matches("eval $(make -s env)", doc, 1, true)
    for _, lua in ipairs { "lua5.2", "lua5.3", "lua5.4", "luajit" } do
      local dir = lua == "luajit" and "jit" or lua:sub(4)
      local rc, out = sh(string.format("cd %s && eval $(make -s env) && cd / && %s -e %s", q(ROOT), lua,
        q([[require "coldsend"
          local f = package.searchpath or function() return "?" end
          print(f("coldsend.core", package.cpath))]])))
      assert.equal(0, rc, out)
      assert.matches("/" .. dir .. "/coldsend/core.so", out, 1, true)
    end
  end)

  -- doc/install.md's "Lua 5.1, 5.2 and 5.3" lines, as written but for the tree
  for _, v in ipairs { "5.1", "5.2", "5.3" } do
    it("installs for Lua " .. v .. " by doc/install.md's line, and the module works under lua" .. v, function()
      local f = assert(io.open(ROOT .. "/doc/install.md"))
      local text = f:read("*a")
      f:close()
      local line = text:match("\n    (luarocks %-%-lua%-version " .. v:gsub("%.", "%%.")
        .. " make %-%-tree /opt/coldsend%-[^\n]+)")
      assert(line, "no luarocks line for the /opt/coldsend-" .. v .. " tree in doc/install.md")
      local vtree = work .. "/tree-" .. v
      line = line:gsub("/opt/coldsend%-" .. v:gsub("%.", "%%."), vtree)
      local rc, out = sh(string.format("cd %s/src && rm -rf src/*.o coldsend && %s", q(work), line))
      assert.equal(0, rc, out)
      assert.matches("-I/usr/include/lua" .. v, out, 1, true)
      local sb = sandbox.start { rate_limit = false }
      finally(function() sb:stop() end)
      local script = [[
        local coldsend = require "coldsend"
        local searchpath = package.searchpath or function(name, path) -- not in 5.1
          for t in path:gmatch("[^;]+") do
            local file = t:gsub("%?", (name:gsub("%.", "/")))
            local f = io.open(file)
            if f then f:close() return file end
          end
        end
        assert(searchpath("coldsend.core", package.cpath):find(TREE, 1, true))
        local cs = coldsend.client { api_key = KEY, base_url = URL }
        local c = cs:campaign()
        c.name = NAME
        c.daily_limit_per_inbox = 7.0 -- an integral float is an integer everywhere
        assert(c:save())
        local got = assert(cs:get_campaign(c.id))
        assert(got.name == NAME and got.daily_limit_per_inbox == 7)
        local ok, err = pcall(function() c.daily_limit_per_inbox = 7.5 end)
        assert(not ok and tostring(err):find("daily_limit_per_inbox", 1, true), tostring(err))
        print("ok " .. coldsend._VERSION .. " " .. (rawget(_G, "jit") and jit.version or _VERSION))
      ]]
      local env = string.format("TREE=%q KEY=%q URL=%q NAME=%q ", vtree, sb.key, sb.url, "Installed for Lua " .. v)
      local luas = { "lua" .. v }
      if v == "5.1" then luas[2] = "luajit" end -- OpenResty's route: one build for both
      for _, lua in ipairs(luas) do
        rc, out = sh(string.format("cd / && env -u LUA_PATH_5_2 -u LUA_CPATH_5_2 -u LUA_PATH_5_3 -u LUA_CPATH_5_3 "
          .. "LUA_PATH=%s LUA_CPATH=%s %s -e %s",
          q(vtree .. "/share/lua/" .. v .. "/?.lua;" .. vtree .. "/share/lua/" .. v .. "/?/init.lua;;"),
          q(vtree .. "/lib/lua/" .. v .. "/?.so;;"), lua,
          q((env:gsub("Lua " .. v, lua)) .. script)))
        assert.equal(0, rc, out)
        assert.matches("ok %d+%.%d+%.%d+ " .. (lua == "luajit" and "LuaJIT" or "Lua " .. v), out)
      end
    end)
  end
end)
