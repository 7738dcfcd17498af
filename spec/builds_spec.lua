-- builds_spec.lua: each build under build/V loads in its own Lua and, put
-- in front of another Lua, fails `require` with a catchable error naming
-- the file (never a crash); the 5.1 build also loads in LuaJIT.
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local q = util.q
local BUILD = os.getenv("BUILD") or (sandbox.root .. "/build")
if BUILD:sub(1, 1) ~= "/" then BUILD = sandbox.root .. "/" .. BUILD end
local LUAS = { ["5.1"] = "lua5.1", ["5.2"] = "lua5.2", ["5.3"] = "lua5.3", ["5.4"] = "lua5.4", jit = "luajit" }
local ORDER = { "5.1", "5.2", "5.3", "5.4", "jit" }

-- require "coldsend.core" from build v under lua; returns the line it
-- printed ("ok <encoded>" or "error <message>") and the exit status.
local function load(v, lua)
  local cpath = BUILD .. "/" .. v .. "/?.so;;"
  local code = [[local ok, m = pcall(require, "coldsend.core")
io.write(ok and ("ok " .. m.json_encode { n = 1000000000000000 }) or ("error " .. tostring(m)))]]
  local rc, out, err = util.run(string.format("env -u LUA_PATH -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4 "
    .. "LUA_CPATH=%s LUA_CPATH_5_2=%s LUA_CPATH_5_3=%s LUA_CPATH_5_4=%s %s -e %s",
    q(cpath), q(cpath), q(cpath), q(cpath), lua, q(code)))
  return out .. err, rc
end

describe("builds #once", function()
  for _, v in ipairs(ORDER) do
    for _, l in ipairs(ORDER) do
      local lua = LUAS[l]
      local fits = v == l or (v == "5.1" and l == "jit")
      it(("build/%s under %s %s"):format(v, lua, fits and "loads" or "fails require cleanly"), function()
        local out, rc = load(v, lua)
        assert.equal(0, rc, out)
        if fits then
          assert.equal('ok {"n":1000000000000000}', out)
        else
          assert.matches("^error error loading module 'coldsend.core' from file '[^']*/" .. v:gsub("%.", "%%.")
            .. "/coldsend/core%.so'", out)
        end
      end)
    end
  end
end)
