# env.sh: sourced by the scripts: module paths for the tree's own build.
# LUA_PATH/LUA_CPATH for LuaJIT (and Lua 5.1, which reads the same
# variables: run-tests.sh points LUA_CPATH at build/5.1 for it),
# LUA_PATH_5_V/LUA_CPATH_5_V for Lua 5.2, 5.3 and 5.4.
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;$top/sandbox/lua/?.lua;$top/sandbox/lua/?/init.lua;;"
LUA_CPATH="$BUILD/jit/?.so;;"
LUA_PATH_5_2="$LUA_PATH" LUA_PATH_5_3="$LUA_PATH" LUA_PATH_5_4="$LUA_PATH"
LUA_CPATH_5_2="$BUILD/5.2/?.so;;"
LUA_CPATH_5_3="$BUILD/5.3/?.so;;"
LUA_CPATH_5_4="$BUILD/5.4/?.so;;"
export LUA_PATH LUA_CPATH LUA_PATH_5_2 LUA_CPATH_5_2 LUA_PATH_5_3 LUA_CPATH_5_3 \
  LUA_PATH_5_4 LUA_CPATH_5_4 BUILD
