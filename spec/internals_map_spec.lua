-- internals_map_spec.lua: doc/internals.md's map is the tree. Every source
-- file (C, the client's and the sandbox's Lua, the scripts, make fragments
-- and fuzz targets) is named in "## The map", and every path the map names
-- exists, so a file added, moved or removed without its line fails here.

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The first cell of each table row in the map section: its backticked
-- names, a bare name ("util.h") taken in the directory of the one before.
local function map_entries(doc)
  local section = doc:match("\n## The map\n(.-)\n## ")
  assert(section, "doc/internals.md has no '## The map' section")
  local entries = {}
  for line in section:gmatch("[^\n]+") do
    local cell = line:match("^|%s*(`[^|]+)|")
    if cell then
      local dir = ""
      for name in cell:gmatch("`([^`]+)`") do
        if name:find("/", 1, true) then
          dir = name:match("^(.*/)") or ""
        else
          name = dir .. name
        end
        entries[#entries + 1] = name
      end
    end
  end
  return entries
end

-- A map name as a Lua pattern: `*` stands for any run of name characters.
local function covers(name, path)
  if name:sub(-1) == "/" then return path:sub(1, #name) == name end
  local pattern = "^" .. name:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", "[^/]*") .. "$"
  return path:match(pattern) ~= nil
end

local function exists(name)
  if name:find("*", 1, true) then return true end -- a glob: checked by what it covers
  local f = io.open(name:sub(-1) == "/" and name .. "." or name, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The files the map must name.
local function source_files()
  local cmd = "find src lua sandbox/lua bin mk scripts fuzz -maxdepth 5 -type f"
    .. " \\( -name '*.c' -o -name '*.h' -o -name '*.lua' -o -name '*.mk' -o -name '*.sh'"
    .. " -o -path 'bin/*' \\) -not -path 'fuzz/build/*' -not -path 'fuzz/corpus/*' | LC_ALL=C sort"
  local p = assert(io.popen(cmd))
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

describe("doc/internals.md's map", function()
  local entries = map_entries(read("doc/internals.md"))

  it("names every source file of the tree", function()
    local files = source_files()
    assert.is_true(#files > 60, "found only " .. #files .. " source files")
    local missing = {}
    for _, path in ipairs(files) do
      local named = false
      for _, name in ipairs(entries) do
        if covers(name, path) then named = true break end
      end
      if not named then missing[#missing + 1] = path end
    end
    assert.are.same({}, missing)
  end)

  it("names no file that is gone", function()
    local gone = {}
    for _, name in ipairs(entries) do
      if not exists(name) then gone[#gone + 1] = name end
    end
    assert.are.same({}, gone)
  end)

  it("reads a row's bare second name in the first one's directory, and globs by name", function()
    local got = map_entries("\n## The map\n| `src/util.c`, `util.h` | x |\n| `mk/*.mk` | y |\n## next\n")
    assert.are.same({ "src/util.c", "src/util.h", "mk/*.mk" }, got)
    assert.is_true(covers("mk/*.mk", "mk/lint.mk"))
    assert.is_false(covers("mk/*.mk", "mk/sub/lint.mk"))
    assert.is_false(covers("src/util.c", "src/util.cc"))
  end)
end)
