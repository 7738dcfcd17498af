# env.sh: sourced by the scripts: module paths for the tree's own build.
# LUA_PATH/LUA_CPATH for LuaJIT, LUA_PATH_5_4/LUA_CPATH_5_4 for Lua 5.4.
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
LUA_CPATH="$BUILD/jit/?.so;;"
LUA_PATH_5_4="$LUA_PATH"
LUA_CPATH_5_4="$BUILD/5.4/?.so;;"
export LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 BUILD
