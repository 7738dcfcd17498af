/* error.c: the coldsend.error type: making one (core.error, and
 * cs_push_error and cs_set_error_metatable for response.c), telling one
 * (core.is_error) and printing one (tostring(err): one line, the message
 * cut, the fields or requirements it names, never a header).
 * Calls: the Lua API and util.h (cs_utf8_cut, cs_find_nocase); no other
 * file of the module. Stack notes follow the Lua manual: [-o, +p] pops o
 * and pushes p; "stack:" lines show the slots from the function's first
 * own slot, "..." for those below. */
#include "error.h"

#include <string.h>

#include "core.h"
#include "util.h"

#define ERROR_TYPE "coldsend.error"

/* err.body keeps this much of a raw body: enough to see an HTML error
 * page's title or a proxy's message, small enough to log. */
#define BODY_KEEP 2048

/* tostring(err) shows at most this much of a message (one line). */
#define MESSAGE_SHOW 500

/* ---- making one --------------------------------------------------------- */

/* [-0, +0] (error.h) */
void cs_set_error_metatable(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_getmetatable(L, ERROR_TYPE);
  lua_setmetatable(L, idx);
}

/* [-0, +1] Pushes a new error table {code=, status=, body=<capped>}. */
void cs_push_error(lua_State *L, const char *code, lua_Integer status,
                   const char *body, size_t len) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  if (len > 0) {
    lua_pushlstring(L, body, cs_utf8_cut(body, len, BODY_KEEP));
    lua_setfield(L, -2, "body");
  }
}

/* [-0, +(0|1)] Pushes "a, b, c" from the strings of the list at idx (or
 * the `field` of its tables); returns the number of names, 0 with nothing
 * pushed. The names so far stay in one slot; each new one is joined to it:
 * stack: names name -> names ", " name (insert) -> names (concat 3). */
static int push_names(lua_State *L, int idx, const char *key) {
  int i, n, names = 0;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  n = (int)lua_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) == LUA_TTABLE && key != NULL) {
      lua_getfield(L, -1, key);
      lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      continue;
    }
    if (names > 0) {
      lua_pushliteral(L, ", ");
      lua_insert(L, -2);
      lua_concat(L, 3);
    }
    names++;
  }
  return names;
}

/* 1 when every name in the list at idx appears in message. */
static int all_named(lua_State *L, int idx, const char *key,
                     const char *message) {
  int i, n, ok = 1;
  if (lua_type(L, idx) != LUA_TTABLE) return 1;
  n = (int)lua_rawlen(L, idx);
  for (i = 1; i <= n && ok; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) == LUA_TTABLE && key != NULL) {
      lua_getfield(L, -1, key);
      lua_remove(L, -2);
    }
    if (lua_type(L, -1) == LUA_TSTRING &&
        strstr(message, lua_tostring(L, -1)) == NULL)
      ok = 0;
    lua_pop(L, 1);
  }
  return ok;
}

/* [-0, +1] A default message for errors made without one. Pushes it at
 * top + 1, where the list it names from was read:
 * stack: list names -> "campaign is missing " names -> message (concat),
 * which replaces list. */
static void push_default_message(lua_State *L, int t, const char *code) {
  int top = lua_gettop(L);
  if (!strcmp(code, "not_ready")) {
    lua_getfield(L, t, "missing_requirements");
    if (push_names(L, top + 1, NULL) > 0) {
      lua_pushliteral(L, "campaign is missing ");
      lua_insert(L, -2);
      lua_concat(L, 2);
    } else {
      lua_pushliteral(L, "campaign is not ready to launch");
    }
  } else if (!strcmp(code, "invalid")) {
    lua_getfield(L, t, "problems");
    if (push_names(L, top + 1, "field") > 0) {
      lua_pushliteral(L, "invalid fields: ");
      lua_insert(L, -2);
      lua_concat(L, 2);
    } else {
      lua_pushliteral(L, "local validation failed");
    }
  } else {
    lua_pushstring(L, code); /* already at top + 1: nothing to replace */
    return;
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/* core.error(t): t with the coldsend.error metatable. t.code is required;
 * a missing message is derived from the code and its fields. */
static int error_new(lua_State *L) {
  const char *code;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "code");
  if (lua_type(L, -1) != LUA_TSTRING)
    return luaL_argerror(L, 1, "field 'code' (string expected)");
  code = lua_tostring(L, -1);
  lua_getfield(L, 1, "message");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    push_default_message(L, 1, code);
    lua_setfield(L, 1, "message");
  } else if (lua_type(L, -1) != LUA_TSTRING) {
    return luaL_argerror(L, 1, "field 'message' (string expected)");
  }
  lua_settop(L, 1);
  cs_set_error_metatable(L, 1);
  return 1;
}

/* ---- telling and printing one ------------------------------------------ */

/* core.is_error(v) -> true when v has the coldsend.error metatable. */
static int error_is(lua_State *L) {
  int is = 0;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ERROR_TYPE);
    is = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, is);
  return 1;
}

/* A string field of any table: the value is left on the stack, which
 * anchors it; returns the string or NULL. */
static const char *anchored_field(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  return lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
}

/* [-0, +1] Pushes the message on one line, shortened to MESSAGE_SHOW bytes.
 * Each luaL_gsub pushes its result, so before the cut
 * stack: no_crlf no_lf no_cr cut; cut replaces the first (-4), and the two
 * between are popped. */
static void push_one_line(lua_State *L, const char *s) {
  size_t len, keep;
  luaL_gsub(L, s, "\r\n", " ");
  s = luaL_gsub(L, lua_tostring(L, -1), "\n", " ");
  s = luaL_gsub(L, s, "\r", " ");
  len = strlen(s);
  keep = cs_utf8_cut(s, len, MESSAGE_SHOW);
  lua_pushlstring(L, s, keep);
  if (keep < len) {
    lua_pushliteral(L, "...");
    lua_concat(L, 2);
  }
  lua_replace(L, -4);
  lua_pop(L, 2);
}

/* coldsend: code (HTTP n) METHOD url: message (extra) [attempts n]
 * Only the parts present are shown. Headers are never part of an error,
 * so the API key cannot be printed from here.
 * Each part is pushed above top and all are joined by one lua_concat at
 * the end; a field read for a part is replaced by the part, or popped:
 * stack: t code message | "coldsend: code" [" (HTTP n)"] [" METHOD"]
 *        [" url"] ": " line [" (fields: ...)"] [" (retry after n s)"]
 *        [" [attempts n]"]
 * At most 9 parts above top; with the few temporaries of push_one_line
 * and push_names, well within the 26 slots luaL_checkstack asks for. */
static int error_tostring(lua_State *L) {
  const char *code, *message;
  lua_Integer n;
  int top;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_checkstack(L, 26, "tostring");
  /* code and message stay on the stack (2, 3): the table may be any
   * table, its fields computed by __index or changed by the metamethods
   * read below */
  code = anchored_field(L, 1, "code");
  message = anchored_field(L, 1, "message");
  top = lua_gettop(L); /* stack: t code message */
  lua_pushfstring(L, "coldsend: %s", code ? code : "error");
  lua_getfield(L, 1, "status"); /* stack: ... head status */
  if (cs_tointeger(L, -1, &n)) {
    lua_pushfstring(L, " (HTTP %d)", (int)n);
    lua_replace(L, -2);
  } else {
    lua_pop(L, 1);
  }
  if (anchored_field(L, 1, "method") != NULL) {
    lua_pushfstring(L, " %s", lua_tostring(L, -1));
    lua_replace(L, -2);
  } else {
    lua_pop(L, 1);
  }
  if (anchored_field(L, 1, "url") != NULL) {
    lua_pushfstring(L, " %s", lua_tostring(L, -1));
    lua_replace(L, -2);
  } else {
    lua_pop(L, 1);
  }
  lua_pushliteral(L, ": ");
  push_one_line(L, message ? message : (code ? code : "error")); /* line */
  if (code != NULL && message != NULL) {
    int list;
    lua_getfield(
        L, 1, !strcmp(code, "invalid") ? "problems" : "missing_requirements");
    list = lua_gettop(L); /* stack: ... line list */
    if (!strcmp(code, "invalid") && !all_named(L, list, "field", message) &&
        push_names(L, list, "field") > 0) {
      lua_pushliteral(L, " (fields: "); /* stack: ... list names " (fields: " */
      lua_insert(L, -2);
      lua_pushliteral(L, ")");
      lua_concat(L, 3);     /* stack: ... list part */
      lua_replace(L, list); /* stack: ... line part */
    } else if (!strcmp(code, "not_ready") &&
               !all_named(L, list, NULL, message) &&
               push_names(L, list, NULL) > 0) {
      lua_pushliteral(L, " (missing: ");
      lua_insert(L, -2);
      lua_pushliteral(L, ")");
      lua_concat(L, 3);
      lua_replace(L, list);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_getfield(L, 1, "retry_after");
  /* ColdSend's own text already says "Retry after N seconds" */
  if (lua_type(L, -1) == LUA_TNUMBER &&
      !(message && cs_find_nocase(message, strlen(message), "retry after"))) {
    lua_pushfstring(L, " (retry after %s s)", lua_tostring(L, -1));
    lua_replace(L, -2);
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "attempts");
  lua_getfield(L, 1, "ambiguous"); /* stack: ... attempts ambiguous */
  /* attempts 0: nothing reached the server; no count to show */
  if ((cs_tointeger(L, -2, &n) && n > 0) || lua_toboolean(L, -1)) {
    int ambiguous = lua_toboolean(L, -1);
    lua_pop(L, 2);
    lua_getfield(L, 1, "attempts"); /* read again: __index may answer anew */
    if (cs_tointeger(L, -1, &n) && n > 0)
      lua_pushfstring(L, " [attempts %d%s]", (int)n,
                      ambiguous ? ", ambiguous" : "");
    else
      lua_pushliteral(L, " [ambiguous]");
    lua_replace(L, -2);
  } else {
    lua_pop(L, 2);
  }
  lua_concat(L, lua_gettop(L) - top); /* stack: t code message text */
  return 1;
}
static const luaL_Reg error_funcs[] = {
    {"error", error_new}, {"is_error", error_is}, {NULL, NULL}};

void cs_error_open(lua_State *L) {
  cs_newmetatable(L, ERROR_TYPE);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, error_funcs, 0);
}
