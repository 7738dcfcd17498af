/* campaign_errors.c: the words of a refused value, "bad value for
 * '<path>' (<rule> expected, got <value>)": the path rendered from the
 * cs_path chain on the C stack, the value described (strings quoted and cut
 * after SHOWN_BYTES, with their length in characters), and the UTF-8 count
 * the API's length limits use.
 * Calls: the Lua API, to build messages and raise them (luaL_error), and
 * campaign_fields.c for a rule's wording; checks nothing itself. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "campaign.h"

/* Values shown in messages are cut here: a 100,000-character email body
 * must not become a 100,000-character error. */
#define SHOWN_BYTES 40

static size_t render_path(const cs_path *p, char *buf, size_t size) {
  size_t n = 0;
  int w;
  if (p == NULL) return 0;
  n = render_path(p->up, buf, size);
  if (n >= size) return n;
  if (p->name != NULL)
    w = snprintf(buf + n, size - n, "%s%s", n > 0 ? "." : "", p->name);
  else
    w = snprintf(buf + n, size - n, "[%ld]", (long)p->index);
  return w < 0 ? n : n + (size_t)w;
}

int cs_raise(lua_State *L, const cs_path *p, const char *rule,
             const char *got) {
  char path[256];
  path[0] = '\0';
  render_path(p, path, sizeof path);
  return luaL_error(L, "bad value for '%s' (%s expected, got %s)", path, rule,
                    got);
}

/* Checks UTF-8 (no overlongs, surrogates or code points past U+10FFFF, as
 * the server's JSON parser would) and counts code points, the unit of the
 * API's length limits. Returns 0 on a bad sequence. */
int cs_utf8_length(const char *str, size_t len, size_t *chars) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, n = 0;
  while (i < len) {
    unsigned c = s[i], cp, min, j, k;
    if (c < 0x80) {
      /* ASCII runs, the common case, eight bytes at a time */
      uint64_t w;
      for (; len - i >= 8; i += 8, n += 8) {
        memcpy(&w, s + i, 8);
        if (w & UINT64_C(0x8080808080808080)) break;
      }
      if (i < len && s[i] < 0x80) i++, n++;
      continue;
    }
    if (c < 0xC2) return 0; /* stray continuation or overlong lead */
    if (c < 0xE0)
      k = 1, cp = c & 0x1F, min = 0x80;
    else if (c < 0xF0)
      k = 2, cp = c & 0x0F, min = 0x800;
    else if (c < 0xF5)
      k = 3, cp = c & 0x07, min = 0x10000;
    else
      return 0;
    if (len - i <= k) return 0;
    for (j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1, n++;
  }
  *chars = n;
  return 1;
}

/* Pushes a string the way Lua's %q would show it, cut after SHOWN_BYTES. */
static void push_quoted(lua_State *L, const char *s, size_t len) {
  size_t i, shown = len, chars;
  luaL_Buffer b;
  if (len > SHOWN_BYTES) {
    shown = SHOWN_BYTES - 8;
    /* do not cut a UTF-8 sequence in two */
    while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80) shown--;
  }
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, (char)c);
    } else if (c == '\n') {
      luaL_addstring(&b, "\\n");
    } else if (c < 0x20 || c == 0x7F) {
      snprintf(esc, sizeof esc, "\\%u", c);
      luaL_addstring(&b, esc);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  if (shown < len) {
    char tail[48];
    if (cs_utf8_length(s, len, &chars))
      snprintf(tail, sizeof tail, "...\" (%lu characters)",
               (unsigned long)chars);
    else
      snprintf(tail, sizeof tail, "...\" (%lu bytes)", (unsigned long)len);
    luaL_addstring(&b, tail);
  } else {
    luaL_addchar(&b, '"');
  }
  luaL_pushresult(&b);
}

void cs_push_described(lua_State *L, int idx) {
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      /* NaN as "nan" on every Lua (PUC Lua prints 0/0 as "-nan") */
      if (lua_tonumber(L, idx) != lua_tonumber(L, idx)) {
        lua_pushliteral(L, "nan");
        break;
      }
      /* lua_tolstring on a copy: 150, 1.5, 1e+100 as Lua prints them */
      lua_pushvalue(L, idx);
      lua_tolstring(L, -1, NULL);
      break;
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &len);
      push_quoted(L, s, len);
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
      break;
    default:
      lua_pushstring(L, luaL_typename(L, idx));
  }
}

const char *cs_push_key_text(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  lua_pushvalue(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    lua_pop(L, 1);
    lua_pushstring(L, luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}

int cs_raise_type(lua_State *L, const cs_path *p, const char *rule, int idx) {
  return cs_raise(L, p, rule, luaL_typename(L, idx));
}

int cs_raise_value(lua_State *L, const cs_path *p, const char *rule, int idx) {
  cs_push_described(L, idx);
  return cs_raise(L, p, rule, lua_tostring(L, -1));
}

int cs_raise_rule(lua_State *L, const cs_field *f, const cs_path *p, int idx,
                  int wrong_type) {
  idx = lua_absindex(L, idx);
  cs_push_rule(L, f);
  if (wrong_type) return cs_raise_type(L, p, lua_tostring(L, -1), idx);
  return cs_raise_value(L, p, lua_tostring(L, -1), idx);
}

/* Raises for the first key of the table at idx that is not a field. */
void cs_raise_unknown_key(lua_State *L, int idx, const cs_path *p,
                          const cs_field *fields, size_t nfields,
                          const char *what) {
  size_t i;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    for (i = 0; i < nfields; i++)
      if (strcmp(k, fields[i].name) == 0) break;
    if (i == nfields) {
      char path[256];
      path[0] = '\0';
      render_path(p, path, sizeof path);
      luaL_error(L, "no field '%s' in %s '%s'", cs_push_key_text(L, -2), what,
                 path);
    }
    lua_pop(L, 1);
  }
}
