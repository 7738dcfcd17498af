/* request.c: JSON encoding/decoding through a private lua-cjson instance,
 * and the request tables {method, url, headers, body} the transports take. */
#include "request.h"

#include <math.h>
#include <string.h>

#include "core.h"

/* Registry key of our cjson instance (cjson.new(): the user's own cjson
 * settings are neither used nor changed). */
static const char *const CJSON_KEY = "coldsend.cjson";

static void push_cjson(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CJSON_KEY);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);               /* cjson */
  lua_getfield(L, -1, "new");      /* cjson, new */
  lua_call(L, 0, 1);               /* cjson, inst */
  lua_remove(L, -2);               /* inst */
  /* as many digits as cjson 2.1 keeps */
  lua_getfield(L, -1, "encode_number_precision");
  lua_pushinteger(L, 14); /* the most cjson 2.1 allows */
  lua_call(L, 1, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CJSON_KEY); /* inst */
}

void cs_push_empty_array(lua_State *L) {
  lua_pushlstring(L, CS_EMPTY_ARRAY, CS_EMPTY_ARRAY_LEN);
}

/* Replaces every marker in the JSON text at the top of the stack by []. */
static void replace_empty_arrays(lua_State *L) {
  size_t len, mlen = sizeof(CS_EMPTY_ARRAY_JSON) - 1;
  const char *s = lua_tolstring(L, -1, &len);
  const char *hit = strstr(s, CS_EMPTY_ARRAY_JSON);
  luaL_Buffer b;
  if (hit == NULL) return;
  luaL_buffinit(L, &b);
  while (hit != NULL) {
    luaL_addlstring(&b, s, (size_t)(hit - s));
    luaL_addstring(&b, "[]");
    s = hit + mlen;
    hit = strstr(s, CS_EMPTY_ARRAY_JSON);
  }
  luaL_addstring(&b, s);
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

void cs_json_encode(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  push_cjson(L);
  lua_getfield(L, -1, "encode");
  lua_remove(L, -2);
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  replace_empty_arrays(L);
}

#if LUA_VERSION_NUM >= 503
/* cjson 2.1 decodes every number as a float: 3 would show as 3.0 and fail
 * math.type checks. Integral values that a double holds exactly become
 * integers again, all through the decoded value at the top. */
static void integers_back(lua_State *L, int depth) {
  if (depth > 1000) return; /* cjson refuses deeper nesting anyway */
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number n = lua_tonumber(L, -1);
      if (n == floor(n) && n >= -9007199254740992.0 &&
          n <= 9007199254740992.0) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)n);
        lua_rawset(L, -5); /* replacing a key's value keeps next valid */
      }
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      integers_back(L, depth + 1);
    }
    lua_pop(L, 1);
  }
}
#endif

int cs_json_decode(lua_State *L, const char *s, size_t len) {
  push_cjson(L);
  lua_getfield(L, -1, "decode");
  lua_remove(L, -2);
  lua_pushlstring(L, s, len);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    return 0;
  }
#if LUA_VERSION_NUM >= 503
  if (lua_type(L, -1) == LUA_TTABLE) integers_back(L, 0);
#endif
  return 1;
}

int cs_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

void cs_push_request(lua_State *L, const char *base_url, const char *method,
                     const char *path, int body_idx) {
  size_t blen = strlen(base_url);
  if (body_idx != 0) body_idx = lua_absindex(L, body_idx);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, method);
  lua_setfield(L, -2, "method");
  /* one slash between base and path whatever the base ends with */
  while (blen > 0 && base_url[blen - 1] == '/') blen--;
  lua_pushlstring(L, base_url, blen);
  lua_pushstring(L, path);
  lua_concat(L, 2);
  lua_setfield(L, -2, "url");
  lua_createtable(L, 0, 1);
  if (body_idx != 0) {
    lua_pushliteral(L, "application/json");
    lua_setfield(L, -2, "Content-Type");
  }
  lua_setfield(L, -2, "headers");
  if (body_idx != 0) {
    cs_json_encode(L, body_idx);
    lua_setfield(L, -2, "body");
  }
}

/* Pushes s percent-encoded (RFC 3986 unreserved characters kept). */
static void push_escaped(lua_State *L, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      luaL_addchar(&b, (char)c);
    } else {
      luaL_addchar(&b, '%');
      luaL_addchar(&b, hex[c >> 4]);
      luaL_addchar(&b, hex[c & 15]);
    }
  }
  luaL_pushresult(&b);
}

/* Pushes path followed by the query at idx, encoded in sorted name order so
 * the same query always gives the same URL. */
static void push_path_with_query(lua_State *L, const char *path, int idx) {
  int i, n = 0;
  lua_newtable(L); /* names */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int t = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad query (string names expected, got %s)",
                 luaL_typename(L, -2));
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
      luaL_error(L,
                 "bad query value for '%s' (string, number or boolean "
                 "expected, got %s)",
                 lua_tostring(L, -2), luaL_typename(L, -1));
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++n);
  }
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_remove(L, -2);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0); /* names, sorted */
  lua_pushstring(L, path);
  for (i = 1; i <= n; i++) {
    size_t klen, vlen;
    const char *k, *v;
    lua_pushstring(L, i == 1 ? "?" : "&");
    lua_rawgeti(L, -3, i);
    k = lua_tolstring(L, -1, &klen);
    push_escaped(L, k, klen);
    lua_pushliteral(L, "=");
    lua_rawgeti(L, -6, i);
    lua_gettable(L, idx);
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
      v = lua_toboolean(L, -1) ? "true" : "false";
      vlen = strlen(v);
    } else {
      v = lua_tolstring(L, -1, &vlen);
    }
    push_escaped(L, v, vlen);
    lua_remove(L, -2);    /* drop raw value */
    lua_remove(L, -4);    /* drop raw name */
    lua_concat(L, 5);     /* names, path-so-far */
  }
  lua_remove(L, -2);
}

/* core.build_request(base_url, method, path [, body [, query]]) -> req. */
static int request_build(lua_State *L) {
  const char *base = luaL_checkstring(L, 1);
  const char *method = luaL_checkstring(L, 2);
  const char *path = luaL_checkstring(L, 3);
  int has_body = !lua_isnoneornil(L, 4);
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    push_path_with_query(L, path, 5);
    path = lua_tostring(L, -1);
  }
  cs_push_request(L, base, method, path, has_body ? 4 : 0);
  return 1;
}

static int json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  cs_json_encode(L, 1);
  return 1;
}

static const luaL_Reg request_funcs[] = {{"build_request", request_build},
                                         {"json_encode", json_encode},
                                         {NULL, NULL}};

void cs_request_open(lua_State *L) {
  luaL_setfuncs(L, request_funcs, 0);
  cs_push_empty_array(L);
  lua_setfield(L, -2, "EMPTY_ARRAY");
}
