/* compat.h: the few Lua 5.2+ API pieces the core uses that LuaJIT 2.1 lacks.
 * LuaJIT already provides luaL_setfuncs, luaL_testudata, luaL_setmetatable,
 * luaL_newlib, lua_tointegerx and lua_copy; those are never redefined here. */
#ifndef COLDSEND_COMPAT_H
#define COLDSEND_COMPAT_H

#include <math.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

#if LUA_VERSION_NUM == 501
#define CS_LUA51 1
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_len(L, i) ((lua_Integer)lua_objlen((L), (i)))
#define lua_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
/* the user value of a full userdata is its environment table in 5.1 */
#define cs_getuservalue(L, i) lua_getfenv((L), (i))
#define cs_setuservalue(L, i) lua_setfenv((L), (i))
#define cs_newuserdata(L, sz) lua_newuserdata((L), (sz))
#else
#define CS_LUA51 0
#define cs_getuservalue(L, i) lua_getiuservalue((L), (i), 1)
#define cs_setuservalue(L, i) lua_setiuservalue((L), (i), 1)
#define cs_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#endif

/* luaL_newmetatable that also sets __name on LuaJIT, whose own does not:
 * the name is what error messages and tostring show. */
static inline void cs_newmetatable(lua_State *L, const char *name) {
  luaL_newmetatable(L, name);
#if LUA_VERSION_NUM == 501
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
#endif
}

/* An integral number on every version: 5.4 integers, or floats with no
 * fractional part that fit (LuaJIT and 5.1 would silently truncate 1.5). */
static inline int cs_tointeger(lua_State *L, int idx, lua_Integer *out) {
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    *out = lua_tointeger(L, idx);
    return 1;
  }
#endif
  {
    lua_Number n = lua_tonumber(L, idx);
    if (n != floor(n) || n < -9007199254740992.0 || n > 9007199254740992.0)
      return 0;
    *out = (lua_Integer)n;
    return 1;
  }
}

#endif
