/* compat.h: one C source for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1.
 *
 * The core is written against the 5.4 API; this header maps the few pieces
 * older Luas spell differently, in the way lua-compat-5.3 does:
 *  - 5.1 and LuaJIT: lua_rawlen, luaL_len, lua_absindex; a userdata's user
 *    value is its environment table (lua_getfenv/lua_setfenv).
 *  - PUC 5.1 only (LuaJIT 2.1 has them): luaL_setfuncs, luaL_setmetatable,
 *    luaL_testudata, luaL_newlib, defined here as static functions, so a
 *    build against the 5.1 headers loads in LuaJIT too.
 *  - 5.2 and 5.3: one user value per userdata (lua_getuservalue) instead of
 *    5.4's numbered ones.
 *  - before 5.3: no integer subtype, see cs_tointeger.
 * Nothing the host already defines is redefined. */
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
#elif LUA_VERSION_NUM < 504
#define CS_LUA51 0
/* 5.2 wants a table or nil there; the core stores nothing else */
#define cs_getuservalue(L, i) lua_getuservalue((L), (i))
#define cs_setuservalue(L, i) lua_setuservalue((L), (i))
#define cs_newuserdata(L, sz) lua_newuserdata((L), (sz))
#else
#define CS_LUA51 0
#define cs_getuservalue(L, i) lua_getiuservalue((L), (i), 1)
#define cs_setuservalue(L, i) lua_setiuservalue((L), (i), 1)
#define cs_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#endif

/* PUC Lua 5.1: LuaJIT's lauxlib.h defines luaL_newlib, 5.1's does not. */
#if LUA_VERSION_NUM == 501 && !defined(luaL_newlib)
static inline void cs_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

static inline void *cs_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p == NULL || !lua_getmetatable(L, ud)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}

#define luaL_setfuncs(L, l, nup) cs_setfuncs((L), (l), (nup))
#define luaL_testudata(L, ud, tname) cs_testudata((L), (ud), (tname))
#define luaL_setmetatable(L, tname) \
  (luaL_getmetatable((L), (tname)), lua_setmetatable((L), -2))
#define luaL_newlibtable(L, l) \
  lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) \
  (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif

/* luaL_newmetatable that also sets __name before 5.3 (5.1, 5.2, LuaJIT),
 * whose own does not: the name is what error messages and tostring show. */
static inline void cs_newmetatable(lua_State *L, const char *name) {
  luaL_newmetatable(L, name);
#if LUA_VERSION_NUM < 503
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
#endif
}

/* An integral number on every version: 5.3+ integers, or floats with no
 * fractional part below 2^53 in magnitude (5.1, 5.2 and LuaJIT would
 * silently truncate 1.5). Before 5.3 every number is a double, so an integer
 * above 2^53 cannot even be written: 2^53 + 1 reads as 2^53. Rather than accept
 * a value that may already have been rounded, such numbers are refused as
 * not integral, with the field's usual error. */
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
    if (n != floor(n) || n <= -9007199254740992.0 || n >= 9007199254740992.0)
      return 0;
    *out = (lua_Integer)n;
    return 1;
  }
}

#endif
