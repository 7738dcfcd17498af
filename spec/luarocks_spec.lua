-- luarocks_spec.lua: two rocks from this tree. `coldsend` (the client: the
-- C core, the Lua modules, the `coldsend` command) needs lua-cjson and
-- libcurl only; `coldsend-sandbox` (the local server and its command) adds
-- LuaSocket. `luarocks make --deps-mode none` installs each from its
-- rockspec into a fresh tree, offline (lua-cjson, LuaSocket and libcurl
-- come from Debian), by the lines of doc/install.md; the client then works
-- from that tree with LuaSocket out of reach, and the installed sandbox
-- serves it. Every module and script belongs to exactly one rockspec.
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local ROOT = sandbox.root
local CLIENT = "coldsend-scm-1.rockspec"
local SANDBOX = "coldsend-sandbox-scm-1.rockspec"

local q = util.q

-- A searcher in front of the others that refuses LuaSocket's modules: what
-- a system without LuaSocket answers, though Debian's is on the paths.
local NO_SOCKET = [[
table.insert(package.searchers or package.loaders, 1, function(name)
  if name == "socket" or name == "ltn12" or name == "mime" or name:find("^socket%.") or name:find("^mime%.") then
    return function() error("LuaSocket is not installed (require " .. name .. ")", 0) end
  end
end)
]]

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

local function read_rockspec(name)
  local env = {}
  local chunk = assert(loadfile(ROOT .. "/" .. name, "t", env))
  if setfenv then setfenv(chunk, env) end
  chunk()
  return env
end

-- The luarocks line of doc/install.md for a Lua version ("5.4", "5.1") and
-- a rockspec (the client's by default).
local function doc_line(version, rockspec)
  rockspec = rockspec or CLIENT
  local f = assert(io.open(ROOT .. "/doc/install.md"))
  local text = f:read("*a")
  f:close()
  local line = text:match("\n    (luarocks %-%-lua%-version " .. version:gsub("%.", "%%.") .. " make [^\n]- "
    .. rockspec:gsub("%-", "%%-"):gsub("%.", "%%.") .. "[^\n]*)")
  assert(line, "no luarocks line for " .. rockspec .. " and Lua " .. version .. " in doc/install.md")
  return line
end

-- Runs a Lua chunk under lua5.4 from / with only the tree's paths and the
-- system's (";;"), none of this checkout's, and LuaSocket refused.
local function run_in_tree(tree, vars, script)
  local prelude = {}
  for k, v in pairs(vars) do prelude[#prelude + 1] = string.format("%s=%q ", k, v) end
  return sh(string.format("cd / && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT -u LUA_INIT_5_4 "
    .. "LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s",
    q(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;"),
    q(tree .. "/lib/lua/5.4/?.so;;"),
    q(NO_SOCKET .. table.concat(prelude) .. script)))
end

-- The installed commands find the tree's modules themselves, from anywhere,
-- with no LUA_PATH and no `luarocks path`; LUA_INIT refuses LuaSocket.
local function clean(env)
  return "cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT_5_4 "
    .. "LUA_INIT=" .. q(NO_SOCKET) .. " " .. (env or "")
end

describe("luarocks #once", function()
  local work, tree

  setup(function()
    work = os.tmpname()
    os.remove(work)
    tree = work .. "/tree"
    -- build from a copy, so the tree's own src/ gets no objects
    assert.equal(0, (sh(string.format("mkdir -p %s/src && cd %s && cp -r %s %s src lua sandbox bin %s/src/",
      q(work), q(ROOT), CLIENT, SANDBOX, q(work)))))
  end)

  teardown(function()
    if work then os.execute("rm -rf " .. q(work)) end
  end)

  it("every module, C file and script is in exactly one rockspec: sandbox/lua/ and its script in coldsend-sandbox's",
    function()
    local rocks = { coldsend = read_rockspec(CLIENT), ["coldsend-sandbox"] = read_rockspec(SANDBOX) }
    -- the client's builtin build installs all of lua/; the sandbox's
    -- (type "none") exactly its build.install.lua
    assert.equal("builtin", rocks.coldsend.build.type)
    assert.equal("none", rocks["coldsend-sandbox"].build.type)
    assert.is_nil(rocks["coldsend-sandbox"].build.modules)
    local lists = {
      coldsend = rocks.coldsend.build.modules,
      ["coldsend-sandbox"] = rocks["coldsend-sandbox"].build.install.lua,
    }
    local entries = {} -- file -> { "rock: module" ... }
    local problems = {}
    for rock, list in pairs(lists) do
      for name, m in pairs(list) do
        if type(m) == "string" then
          entries[m] = entries[m] or {}
          table.insert(entries[m], rock .. ": " .. name)
          if not util.slurp(ROOT .. "/" .. m) then
            problems[#problems + 1] = string.format("%s names %s, which is not in the tree", rock, m)
          end
        end
      end
    end
    for rock, root in pairs { coldsend = "lua", ["coldsend-sandbox"] = "sandbox/lua" } do
      for _, path in ipairs(files(root, "%.lua$")) do
        local want = path:sub(#root + 2):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
        local got = entries[path] or {}
        if #got ~= 1 or got[1] ~= rock .. ": " .. want then
          problems[#problems + 1] = string.format("%s: want [%q] = %q in %s only, have {%s}",
            path, want, path, rock, table.concat(got, ", "))
        end
      end
    end
    -- no sandbox module left among the client's files
    for _, path in ipairs(files("lua", "%.lua$")) do
      if path:find("^lua/coldsend/sandbox") then problems[#problems + 1] = "a sandbox module in lua/: " .. path end
    end
    local sources = {}
    for _, s in ipairs(rocks.coldsend.build.modules["coldsend.core"].sources) do sources[s] = true end
    for _, path in ipairs(files("src", "%.c$")) do
      if not sources[path] then problems[#problems + 1] = "coldsend.core source " .. path end
    end
    local owner = { coldsend = "coldsend", ["coldsend-sandbox"] = "coldsend-sandbox" }
    for _, path in ipairs(files("bin", ".")) do
      local name = path:gsub("^bin/", "")
      for rock, spec in pairs(rocks) do
        local bins = spec.build.install and spec.build.install.bin or {}
        local want = (owner[name] or "coldsend") == rock and path or nil
        if bins[name] ~= want then
          problems[#problems + 1] = string.format("%s: install.bin[%q] = %s", rock, name, tostring(want))
        end
      end
    end
    assert.same({}, problems)
  end)

  it("the client rock needs lua, lua-cjson and libcurl; the sandbox rock the same coldsend and LuaSocket", function()
    local client, sbx = read_rockspec(CLIENT), read_rockspec(SANDBOX)
    local function names(deps)
      local out = {}
      for _, d in ipairs(deps) do out[#out + 1] = d:match("^%S+") end
      table.sort(out)
      return out
    end
    assert.same({ "lua", "lua-cjson" }, names(client.dependencies))
    assert.same({ CURL = { library = "curl" } }, client.external_dependencies)
    assert.same({ "coldsend", "lua", "lua-cjson", "luasocket" }, names(sbx.dependencies))
    local pinned
    for _, d in ipairs(sbx.dependencies) do
      if d:match("^coldsend ") then pinned = d end
    end
    assert.equal("coldsend == " .. client.version, pinned)
    assert.equal(client.version, sbx.version)
  end)

  it("README.md and doc/sandbox.md give doc/install.md's luarocks lines for the two rocks, as run here", function()
    local want = { doc_line("5.4", CLIENT), doc_line("5.4", SANDBOX) }
    for _, doc in ipairs { "README.md", "doc/sandbox.md" } do
      local got = {}
      for line in util.slurp(ROOT .. "/" .. doc):gmatch("\n    (luarocks [^\n]+)") do got[#got + 1] = line end
      assert.same(want, got, doc)
    end
  end)

  it("installs the client alone by doc/install.md's line; coldsend and require work without LuaSocket", function()
    local line = doc_line("5.4")
    assert.matches("--tree /opt/coldsend --deps-mode none " .. CLIENT, line, 1, true)
    line = line:gsub("/opt/coldsend", tree)
    local rc, out = sh(string.format("cd %s/src && %s", q(work), line))
    assert.equal(0, rc, out)
    -- nothing of the sandbox in the tree
    assert.is_nil(util.slurp(tree .. "/bin/coldsend-sandbox"))
    assert.is_nil(util.slurp(tree .. "/share/lua/5.4/coldsend/sandbox.lua"))
    assert.is_nil(util.slurp(tree .. "/share/lua/5.4/coldsend/sandbox/init.lua"))
    -- the refusal itself works, in a script and through LUA_INIT
    rc, out = run_in_tree(tree, {}, [[require "socket"]])
    assert.not_equal(0, rc)
    assert.matches("LuaSocket is not installed (require socket)", out, 1, true)
    rc, out = sh(clean() .. "lua5.4 -e 'require \"socket.core\"'")
    assert.not_equal(0, rc)
    assert.matches("LuaSocket is not installed (require socket.core)", out, 1, true)
    local sb = sandbox.start { rate_limit = false }
    finally(function() sb:stop() end)
    rc, out = run_in_tree(tree, { TREE = tree, KEY = sb.key, URL = sb.url }, [[
      local coldsend = require "coldsend"
      assert(package.searchpath("coldsend", package.path):find(TREE, 1, true))
      assert(package.searchpath("coldsend.core", package.cpath):find(TREE, 1, true))
      assert(not package.searchpath("coldsend.sandbox", package.path), "a sandbox module on the path")
      local cs = coldsend.client { api_key = KEY, base_url = URL }
      local c = assert(cs:create_campaign { name = "Installed from luarocks" })
      assert(assert(cs:get_campaign(c.id)).name == "Installed from luarocks")
      for _, m in ipairs { "coldsend.plan", "coldsend.help", "coldsend.cli", "coldsend.json", "coldsend.doctor",
          "coldsend.leads", "coldsend.export", "coldsend.chart", "coldsend.progress" } do
        require(m)
      end
      print("ok " .. coldsend._VERSION)
    ]])
    assert.equal(0, rc, out)
    assert.matches("ok %d+%.%d+%.%d+", out)
    rc, out = sh(clean() .. q(tree .. "/bin/coldsend") .. " --help")
    assert.equal(0, rc, out)
    assert.matches("usage: coldsend", out, 1, true)
    rc, out = sh(clean(string.format("COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s ", q(sb.key), q(sb.url)))
      .. q(tree .. "/bin/coldsend") .. " list")
    assert.equal(0, rc, out)
    assert.matches("Installed from luarocks", out, 1, true)
  end)

  it("installs the sandbox rock into the same tree by doc/install.md's line; the installed client talks to it",
    function()
    assert(util.slurp(tree .. "/bin/coldsend"), "the client rock is installed by the test before")
    local line = doc_line("5.4", SANDBOX)
    assert.matches("--tree /opt/coldsend --deps-mode none " .. SANDBOX, line, 1, true)
    line = line:gsub("/opt/coldsend", tree)
    local rc, out = sh(string.format("cd %s/src && %s", q(work), line))
    assert.equal(0, rc, out)
    local command = tree .. "/bin/coldsend-sandbox"
    rc, out = sh("cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 " .. q(command) .. " --help")
    assert.equal(0, rc, out)
    assert.matches("usage: coldsend-sandbox", out, 1, true)
    local sb = sandbox.start { rate_limit = false, command = command }
    finally(function() sb:stop() end)
    -- the server runs the tree's modules, not this checkout's
    local _, cmdline = sh("tr '\\0' ' ' < /proc/" .. sb.pid .. "/cmdline")
    assert.matches(tree .. "/lib/luarocks/rocks-5.4/coldsend-sandbox/", cmdline, 1, true)
    rc, out = run_in_tree(tree, { KEY = sb.key, URL = sb.url }, [[
      local cs = require("coldsend").client { api_key = KEY, base_url = URL }
      local c = cs:campaign()
      c.name = "Served by the installed sandbox"
      assert(c:save())
      assert(assert(cs:get_campaign(c.id)).name == "Served by the installed sandbox")
      print("ok")
    ]])
    assert.equal(0, rc, out)
    rc, out = sh(clean(string.format("COLDSEND_API_KEY=%s COLDSEND_BASE_URL=%s ", q(sb.key), q(sb.url)))
      .. q(tree .. "/bin/coldsend") .. " list")
    assert.equal(0, rc, out)
    assert.matches("Served by the installed sandbox", out, 1, true)
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
