-- .luacheckrc: luacheck's settings for `make lint` (mk/lint.mk), which checks
-- every Lua file in the tree and allows no warning.
--
-- Each file's std is the set of Luas it truly runs on. The library, the CLI,
-- the examples and the benchmarks run on Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT,
-- so their std is "min", the names all five share: a name only some of them
-- have (math.tointeger, utf8, setfenv, jit, ...) must be declared below for
-- the one file that uses it, next to a note on how that file guards it.
-- Files that only ever run inside one host (nginx, HAProxy, the fuzz
-- harness, busted) get that host's names. The 120-column limit stays on.

std = "min"

-- HAProxy's `core` class (the Lua API of HAProxy 2.x); its fields are the
-- documented ones, so a misspelt call is still caught.
stds.haproxy = {
  read_globals = {
    core = {
      fields = {
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        "proxies", "backends", "frontends", "thread", "log",
        "Debug", "Info", "Warning", "Alert",
        "add_acl", "del_acl", "del_map", "set_map", "get_info", "get_var",
        "now", "http_date", "imf_date", "rfc850_date", "asctime_date",
        "sleep", "msleep", "yield", "done", "set_nice", "tcp", "httpclient",
        "register_action", "register_converters", "register_fetches",
        "register_filter", "register_init", "register_service",
        "register_task", "register_cli",
        "concat", "parse_addr", "match_addr", "tokenize",
      },
    },
  },
}

-- ---------------------------------------------------------------- library

-- math.tointeger and math.type are Lua 5.3+; these files look them up as
-- `math.tointeger or <fallback>` (or test `math.tointeger and ...`).
local integers = { math = { fields = { "tointeger", "type" } } }

files["lua/coldsend/json.lua"].read_globals = integers
files["lua/coldsend/single_lead.lua"].read_globals = integers
files["lua/coldsend/leads.lua"].read_globals = integers
files["bin/coldsend-sandbox"].read_globals = integers

-- The user agent names LuaJIT's version behind `rawget(_G, "jit") and`.
files["lua/coldsend/client.lua"].read_globals = { "jit" }
-- `table.unpack or unpack`.
files["lua/coldsend/doctor.lua"].read_globals = {
  "unpack", table = { fields = { "unpack" } },
}
-- A campaign file's chunk gets its environment by `if setfenv then`.
files["lua/coldsend/cli/inputs.lua"].read_globals = { "setfenv" }

-- The sandbox rock runs on Lua 5.3 and 5.4 (its rockspec says so): it
-- uses utf8, math.tointeger and coroutine.isyieldable freely.
files["sandbox/lua"].std = "lua53"
-- The nginx pieces are loaded by plain Lua too (the specs give them a fake
-- `ngx`), so the base std stays "min"; only `ngx` is added.
files["lua/coldsend/transport/ngx.lua"].read_globals = { "ngx" }
files["lua/coldsend/ratelimit_ngx.lua"].read_globals = { "ngx" }

-- The HAProxy transport is required only once `core` is seen (init.lua's
-- in_haproxy), where HAProxy's Lua is 5.3 or 5.4.
files["lua/coldsend/transport/haproxy.lua"].std = "min+haproxy"
files["lua/coldsend/transport/haproxy.lua"].read_globals = {
  coroutine = { fields = { "isyieldable" } },
}

-- ------------------------------------------------------------ host files

-- Loaded by nginx (lua_package_path / init_by_lua): OpenResty's LuaJIT.
files["examples/openresty"].std = "ngx_lua"
files["spec/helpers/ngx_seq.lua"].std = "ngx_lua"
-- Loaded by HAProxy (lua-load).
files["examples/haproxy"].std = "lua53+haproxy"
files["spec/fixtures/haproxy"].std = "lua53+haproxy"

-- The fuzz drivers run inside fuzz/*.c, which embeds liblua5.4.
files["fuzz"].std = "lua54"

-- ------------------------------------------------------------------ specs

-- The specs run under busted on every Lua; they may use any Lua's names
-- (most test one Lua's behaviour behind a version check).
files["spec"].std = "max+busted"

-- These replace a standard function for the length of one test, and put it
-- back: to capture what is printed, or to check that the C core never calls
-- a hostile table.sort.
local writable = { read_only = false }
files["spec/help_spec.lua"].globals = { io = { fields = { stdout = writable } } }
files["spec/security_spec.lua"].globals = { "print", io = { fields = { write = writable } } }
files["spec/hostile_values_spec.lua"].globals = { table = { fields = { sort = writable } } }
files["fuzz/hostile_driver.lua"].globals = { table = { fields = { sort = writable } } }

-- ------------------------------------------------------ false positives

-- `data = nil` before collectgarbage() is what lets the 50 MB string go:
-- the value is never read again on purpose (a do-block would leave the
-- string in a live register).
files["bench/leads.lua"].ignore = { "311/data" }
