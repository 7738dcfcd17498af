/* request.c: JSON encoding/decoding through a private lua-cjson instance,
 * and the request tables {method, url, headers, body} the transports take. */
#include "request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "util.h"

/* Registry key of our cjson instance (cjson.new(): the user's own cjson
 * settings are neither used nor changed). */
static const char *const CJSON_KEY = "coldsend.cjson";

static void push_cjson(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, CJSON_KEY);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);          /* cjson */
  lua_getfield(L, -1, "new"); /* cjson, new */
  lua_call(L, 0, 1);          /* cjson, inst */
  lua_remove(L, -2);          /* inst */
  /* as many digits as cjson 2.1 keeps */
  lua_getfield(L, -1, "encode_number_precision");
  lua_pushinteger(L, 14); /* the most cjson 2.1 allows */
  lua_call(L, 1, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CJSON_KEY); /* inst */
}

/* Registry keys (by address) of the instance's encode and decode, looked
 * up once: a request encodes and decodes once each. */
static char encode_key, decode_key;

static void push_cjson_fn(lua_State *L, char *key, const char *name) {
  lua_pushlightuserdata(L, key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  push_cjson(L);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_pushlightuserdata(L, key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

static const char empty_array_marker = 0;

void cs_push_empty_array(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&empty_array_marker);
}

/* 1 when the number at idx has the integer subtype (Lua 5.3+). */
static int is_lua_integer(lua_State *L, int idx) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) return 1;
#endif
  (void)L;
  (void)idx;
  return 0;
}

/* ---- exact numbers and unforgeable markers ------------------------------
 * cjson 2.1 writes numbers with at most 14 significant digits, so a 15-digit
 * id or a float such as 0.1 + 0.2 would go out changed. Before encoding, the
 * value is walked (raw access, no metamethods): every number cjson would
 * change, every empty-array marker and every string holding the marker
 * prefix is replaced, in a copy of its table, by a marker "\0coldsend:N";
 * after encoding each marker is replaced by literal N, its exact JSON text.
 * No user string can then be read as a marker. */

#define MARKER_PREFIX "\0coldsend:"
#define MARKER_PREFIX_LEN 10
#define MARKER_JSON "\"\\u0000coldsend:"
#define MAX_DEPTH 1000 /* as cjson's encode_max_depth */

/* A value may share tables (each one walked once per path to it) but not
 * contain itself: a cycle is refused, and so is a walk past MAX_TABLES
 * tables, so two references per level cannot make it exponential. */
#define MAX_TABLES 200000

/* The tables on the path being walked: the first ANCESTORS by address in
 * a C array, deeper ones in a Lua table made only for such a nesting. */
#define ANCESTORS 64

typedef struct {
  int side;    /* stack slot of the literals table (nil until a literal) */
  int deep;    /* stack slot of {table = true} past ANCESTORS (or nil) */
  int n;       /* literals so far */
  long tables; /* tables walked */
  int depth;   /* keys on the path */
  int tables_on_path;
  const void *anc[ANCESTORS];
  int keys[MAX_DEPTH + 2]; /* stack index of each key on the path */
  char path[200];          /* written only for a message */
} prep_state;

/* Writes the finite double v in the fewest digits that read back as v. */
static void format_double(char *buf, size_t size, double v) {
  int prec;
  if (v == floor(v) && fabs(v) < 9.2e18) {
    snprintf(buf, size, "%.0f", v);
    return;
  }
  for (prec = 14; prec < 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
  snprintf(buf, size, "%.17g", v);
}

/* 1 when cjson's 14 digits write the number at idx exactly. */
static int cjson_exact(lua_State *L, int idx) {
  char buf[64];
  double v;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    return i > -100000000000000LL && i < 100000000000000LL;
  }
#endif
  v = lua_tonumber(L, idx);
  snprintf(buf, sizeof buf, "%.14g", v);
  /* an integral 10^15 is exact as 1e+15 but goes out as digits: before 5.3
   * it is how an integer is held, and a server may read 1e+15 as a float */
  if (strchr(buf, 'e') != NULL && v == floor(v) && fabs(v) < 9.2e18) return 0;
  return strtod(buf, NULL) == v;
}

static int has_marker_prefix(const char *s, size_t len) {
  const char *p = memchr(s, '\0', len);
  while (p != NULL) {
    size_t left = len - (size_t)(p - s);
    if (left >= MARKER_PREFIX_LEN &&
        memcmp(p, MARKER_PREFIX, MARKER_PREFIX_LEN) == 0)
      return 1;
    p = left > 1 ? memchr(p + 1, '\0', left - 1) : NULL;
  }
  return 0;
}

/* Pushes a marker for the literal JSON text at the top (popped). */
static void push_marker(lua_State *L, prep_state *st) {
  if (st->n == 0) {
    lua_newtable(L);
    lua_replace(L, st->side);
  }
  lua_rawseti(L, st->side, ++st->n);
  lua_pushlstring(L, MARKER_PREFIX, MARKER_PREFIX_LEN);
  lua_pushfstring(L, "%d", st->n);
  lua_concat(L, 2);
}

static int prepare(lua_State *L, int idx, prep_state *st, int depth);

/* The path of the value being walked, for a message: "a.b[2]". */
static const char *path_of(lua_State *L, prep_state *st) {
  size_t used = 0;
  int i;
  st->path[0] = '\0';
  for (i = 0; i < st->depth && used < sizeof st->path - 1; i++) {
    int k = st->keys[i];
    if (lua_type(L, k) == LUA_TSTRING)
      snprintf(st->path + used, sizeof st->path - used, "%s%s", used ? "." : "",
               lua_tostring(L, k));
    else if (lua_type(L, k) == LUA_TNUMBER)
      snprintf(st->path + used, sizeof st->path - used, "[%g]",
               (double)lua_tonumber(L, k));
    used = strlen(st->path);
  }
  return used ? st->path : "(value)";
}

/* 1 when the table at idx is on the path being walked (a cycle). */
static int on_path(lua_State *L, int idx, prep_state *st, int level) {
  const void *p = lua_topointer(L, idx);
  int i, n = level < ANCESTORS ? level : ANCESTORS;
  for (i = 0; i < n; i++)
    if (st->anc[i] == p) return 1;
  if (lua_isnil(L, st->deep)) return 0;
  lua_pushvalue(L, idx);
  lua_rawget(L, st->deep);
  i = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return i;
}

/* Marks (on = 1) or unmarks the table at idx as on the path at level. */
static void mark_path(lua_State *L, int idx, prep_state *st, int level,
                      int on) {
  if (level < ANCESTORS) {
    st->anc[level] = on ? lua_topointer(L, idx) : NULL;
    return;
  }
  if (lua_isnil(L, st->deep)) {
    lua_newtable(L);
    lua_replace(L, st->deep);
  }
  lua_pushvalue(L, idx);
  if (on)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  lua_rawset(L, st->deep);
}

/* The table at idx: pushes a copy with its replaced values and returns 1,
 * or returns 0 (nothing pushed) when none of its values is replaced. */
static int prepare_table(lua_State *L, int idx, prep_state *st, int depth) {
  int copy, level = st->tables_on_path++;
  if (depth > MAX_DEPTH)
    luaL_error(L, "cannot encode '%s' as JSON (nested deeper than %d)",
               path_of(L, st), MAX_DEPTH);
  if (++st->tables > MAX_TABLES)
    luaL_error(L, "cannot encode '%s' as JSON (more than %d tables)",
               path_of(L, st), MAX_TABLES);
  luaL_checkstack(L, 8, "JSON encoding");
  if (on_path(L, idx, st, level))
    luaL_error(L, "cannot encode '%s' as JSON (a table that contains itself)",
               path_of(L, st));
  mark_path(L, idx, st, level, 1);
  lua_pushnil(L); /* the copy's slot, a table once a value is replaced */
  copy = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int top = lua_gettop(L);
    if (lua_type(L, top - 1) == LUA_TSTRING) {
      size_t klen;
      const char *k = lua_tolstring(L, top - 1, &klen);
      if (has_marker_prefix(k, klen)) {
        st->keys[st->depth++] = top - 1;
        luaL_error(L, "cannot encode '%s' as JSON (a key holding \\0coldsend:)",
                   path_of(L, st));
      }
    }
    st->keys[st->depth++] = top - 1;
    if (prepare(L, top, st, depth + 1)) {
      if (lua_isnil(L, copy)) {
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
          lua_pushvalue(L, -2);
          lua_insert(L, -2);
          lua_rawset(L, -4);
        }
        lua_replace(L, copy);
      }
      lua_pushvalue(L, top - 1); /* key */
      lua_insert(L, -2);
      lua_rawset(L, copy);
    }
    st->depth--;
    lua_settop(L, top - 1); /* the key, for lua_next */
  }
  mark_path(L, idx, st, level, 0);
  st->tables_on_path--;
  if (lua_isnil(L, copy)) {
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Pushes the replacement of the value at idx and returns 1, or returns 0
 * (nothing pushed) when cjson writes it as it is. */
static int prepare(lua_State *L, int idx, prep_state *st, int depth) {
  char buf[64];
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
      double v = lua_tonumber(L, idx);
      if (v != v || v == HUGE_VAL || v == -HUGE_VAL)
        luaL_error(
            L, "cannot encode '%s' as JSON (finite number expected, got %s)",
            path_of(L, st), v != v ? "nan" : (v > 0 ? "inf" : "-inf"));
      if (cjson_exact(L, idx)) return 0;
#if LUA_VERSION_NUM >= 503
      if (lua_isinteger(L, idx)) {
        lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
        push_marker(L, st);
        return 1;
      }
#endif
      format_double(buf, sizeof buf, v);
      lua_pushstring(L, buf);
      push_marker(L, st);
      return 1;
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (!has_marker_prefix(s, len)) return 0;
      push_cjson_fn(L, &encode_key, "encode");
      lua_pushvalue(L, idx);
      lua_call(L, 1, 1); /* the string's JSON text */
      push_marker(L, st);
      return 1;
    }
    case LUA_TTABLE:
      return prepare_table(L, lua_absindex(L, idx), st, depth);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) != &empty_array_marker) return 0;
      lua_pushliteral(L, "[]");
      push_marker(L, st);
      return 1;
    default:
      return 0;
  }
}

/* Replaces every marker in the JSON text at the top by its literal (the
 * literals table at side). */
static void replace_markers(lua_State *L, int side) {
  size_t len, mlen = sizeof(MARKER_JSON) - 1;
  const char *s = lua_tolstring(L, -1, &len), *end = s + len;
  const char *hit = strstr(s, MARKER_JSON);
  luaL_Buffer b;
  if (hit == NULL) return;
  luaL_buffinit(L, &b);
  while (hit != NULL) {
    const char *p = hit + mlen;
    long n = 0;
    luaL_addlstring(&b, s, (size_t)(hit - s));
    while (p < end && *p >= '0' && *p <= '9' && n < 100000000)
      n = n * 10 + (*p++ - '0');
    /* every marker in the text is ours: the walk replaced the others */
    lua_rawgeti(L, side, (lua_Integer)n);
    if (lua_type(L, -1) != LUA_TSTRING) /* only a stand-in cjson writes one */
      luaL_error(L, "cjson.encode wrote a marker it was not given");
    luaL_addvalue(&b);
    s = p + 1; /* past the closing quote */
    hit = strstr(s, MARKER_JSON);
  }
  luaL_addlstring(&b, s, (size_t)(end - s));
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

/* ---- a flat object, written here ----------------------------------------
 * The usual body (a save of a few fields) is an object of strings,
 * booleans and small integers. It is written here, byte for byte as cjson
 * writes it (its escapes, its key order: lua_next's), without the walk and
 * the cjson call; anything else (a nested table, a float, a big integer,
 * no key or a key that is not a string, more than CS_FLAT_MAX bytes) goes the
 * general way. */
static int flat_add(cs_flat *o, const char *s, size_t len) {
  if (len > CS_FLAT_MAX - o->n) return 0;
  memcpy(o->buf + o->n, s, len);
  o->n += len;
  return 1;
}

/* 1 for a byte cjson escapes in a string: controls, DEL, '"', '\\', '/'. */
static const unsigned char FLAT_ESCAPED[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static int flat_escaped(unsigned char c) {
  return FLAT_ESCAPED[c];
}

/* s as a JSON string, with cjson's escapes. */
static int flat_string(cs_flat *o, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  if (!flat_add(o, "\"", 1)) return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[6];
    const char *e = NULL;
    size_t elen = 2;
    switch (c) {
      case '"':
        e = "\\\"";
        break;
      case '\\':
        e = "\\\\";
        break;
      case '/':
        e = "\\/";
        break;
      case '\b':
        e = "\\b";
        break;
      case '\f':
        e = "\\f";
        break;
      case '\n':
        e = "\\n";
        break;
      case '\r':
        e = "\\r";
        break;
      case '\t':
        e = "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          memcpy(esc, "\\u00", 4);
          esc[4] = hex[c >> 4];
          esc[5] = hex[c & 15];
          e = esc;
          elen = 6;
        }
    }
    if (e == NULL) { /* a run of bytes written as they are */
      size_t j = i + 1;
      while (j < len && !flat_escaped((unsigned char)s[j])) j++;
      if (!flat_add(o, s + i, j - i)) return 0;
      i = j - 1;
    } else if (!flat_add(o, e, elen)) {
      return 0;
    }
  }
  return flat_add(o, "\"", 1);
}

/* The value at the top, or 0 when it is not one flat_encode writes. */
static int flat_value(lua_State *L, cs_flat *o) {
  char num[32];
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      return flat_string(o, s, len);
    }
    case LUA_TBOOLEAN:
      return lua_toboolean(L, -1) ? flat_add(o, "true", 4)
                                  : flat_add(o, "false", 5);
    case LUA_TNUMBER: {
      /* what cjson's 14 digits write exactly, as it writes them */
#if LUA_VERSION_NUM >= 503
      lua_Integer i;
      if (!lua_isinteger(L, -1)) return 0;
      i = lua_tointeger(L, -1);
      if (i <= -100000000000000LL || i >= 100000000000000LL) return 0;
      snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)i);
#else
      double v = lua_tonumber(L, -1);
      if (v != floor(v) || fabs(v) >= 1e14 || (v == 0 && 1 / v < 0)) return 0;
      snprintf(num, sizeof num, "%.0f", v);
#endif
      return flat_add(o, num, strlen(num));
    }
    default:
      return 0;
  }
}

void cs_flat_begin(cs_flat *o) {
  o->n = 0;
  o->members = 0;
  flat_add(o, "{", 1);
}

/* key[0..klen): the value at the top, or null. */
static int flat_member(lua_State *L, cs_flat *o, const char *key, size_t klen,
                       int null) {
  if ((o->members++ > 0 && !flat_add(o, ",", 1)) ||
      !flat_string(o, key, klen) || !flat_add(o, ":", 1))
    return 0;
  return null ? flat_add(o, "null", 4) : flat_value(L, o);
}

int cs_flat_member(lua_State *L, cs_flat *o, const char *key, int null) {
  return flat_member(L, o, key, strlen(key), null);
}

int cs_flat_push(lua_State *L, cs_flat *o) {
  if (o->members == 0 || !flat_add(o, "}", 1)) return 0;
  lua_pushlstring(L, o->buf, o->n);
  return 1;
}

/* Pushes the JSON text of the table at idx and returns 1 when it is a
 * flat object; else returns 0, nothing pushed ({}: cjson decides). */
static int flat_encode(lua_State *L, int idx) {
  cs_flat o;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  cs_flat_begin(&o);
  luaL_checkstack(L, 3, "JSON encoding");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) { /* key, value */
    size_t klen = 0;
    const char *k = NULL;
    if (lua_type(L, -2) == LUA_TSTRING) k = lua_tolstring(L, -2, &klen);
    /* (a marked key: the general way raises) */
    if (k == NULL || has_marker_prefix(k, klen) ||
        !flat_member(L, &o, k, klen, 0)) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  return cs_flat_push(L, &o);
}

void cs_json_encode(lua_State *L, int idx) {
  prep_state st;
  int replaced, side;
  idx = lua_absindex(L, idx);
  if (flat_encode(L, idx)) return;
  st.n = 0;
  st.tables = 0;
  st.depth = 0;
  st.tables_on_path = 0;
  lua_pushnil(L); /* the literals, made at the first */
  side = st.side = lua_gettop(L);
  lua_pushnil(L); /* the ancestors past ANCESTORS, made for such a nesting */
  st.deep = lua_gettop(L);
  replaced = prepare(L, idx, &st, 0);
  lua_remove(L, st.deep); /* the copy, if any, moves to side + 1 */
  push_cjson_fn(L, &encode_key, "encode");
  lua_pushvalue(L, replaced ? side + 1 : idx);
  lua_call(L, 1, 1);
  /* the instance is whatever require gave: its answer is checked */
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "cjson.encode returned %s (a string expected)",
               luaL_typename(L, -1));
  /* with no literal, no marker can be in the text: every string that held
   * the prefix would have been one */
  if (st.n > 0) replace_markers(L, side);
  lua_replace(L, side);
  lua_settop(L, side);
}

#if LUA_VERSION_NUM >= 503
/* cjson 2.1 decodes every number as a float: 3 would show as 3.0 and fail
 * math.type checks, and an integer of 16 digits or more (a CRM id in
 * custom_fields) could lose digits. Integers of 16 digits or more that fit
 * a lua_Integer are quoted with a marker before decoding; after it, each
 * marker, and each integral value a double holds exactly, is an integer
 * again, all through the decoded value at the top. */
#define INT_MARKER "\\u0000coldsend:int:"
#define INT_MARKER_TEXT MARKER_PREFIX "int:"
#define INT_MARKER_TEXT_LEN (MARKER_PREFIX_LEN + 4)

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* 1 when s holds a run of 16 or more digits (a big integer needs one).
 * Every such run covers one of the positions 15, 31, 47, ...: only those
 * are probed, and the run around a digit found there measured. */
static int has_digit_run(const char *s, size_t len) {
  size_t p, a, b;
  for (p = 15; p < len; p += 16) {
    if (!is_digit(s[p])) continue;
    for (a = p; a > 0 && is_digit(s[a - 1]); a--) {
    }
    for (b = p + 1; b < len && is_digit(s[b]); b++) {
    }
    if (b - a >= 16) return 1;
  }
  return 0;
}

/* Pushes s with its big integers quoted and returns 1, or returns 0
 * (nothing pushed) when it has none, or holds a \u0000 escape (a decoded
 * string could then pass for a marker). */
static int quote_big_integers(lua_State *L, const char *s, size_t len) {
  const char *bs = s, *end_s = s + len;
  size_t i = 0, last = 0;
  int quoted = 0;
  luaL_Buffer b;
  /* backslashes are rare: only those are looked at */
  while ((bs = memchr(bs, '\\', (size_t)(end_s - bs))) != NULL) {
    if (end_s - bs >= 6 && memcmp(bs, "\\u0000", 6) == 0) return 0;
    bs++;
  }
  if (!has_digit_run(s, len)) return 0; /* the usual answer: one quick look */
  while (i < len) {
    if (s[i] == '"') { /* a string: to its closing quote */
      for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      i++;
    } else if (s[i] >= '0' && s[i] <= '9') {
      size_t start = (i > 0 && s[i - 1] == '-') ? i - 1 : i, end = i;
      int digits_only = 1;
      for (; end < len; end++) {
        char c = s[end];
        if (c >= '0' && c <= '9') continue;
        /* (a NUL too, as strchr("0123456789.eE+-", c) had it) */
        if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' &&
            c != '\0')
          break;
        digits_only = 0;
      }
      /* at most 19 digits: a lua_Integer holds every 18-digit one */
      if (digits_only && end - i >= 16 &&
          (end - i < 19 ||
           (end - i == 19 && memcmp(s + i,
                                    s[start] == '-' ? "9223372036854775808"
                                                    : "9223372036854775807",
                                    19) <= 0))) {
        if (!quoted) luaL_buffinit(L, &b); /* only once there is one */
        luaL_addlstring(&b, s + last, start - last);
        luaL_addstring(&b, "\"" INT_MARKER);
        luaL_addlstring(&b, s + start, end - start);
        luaL_addchar(&b, '"');
        last = end;
        quoted = 1;
      }
      i = end;
    } else {
      i++;
    }
  }
  if (!quoted) return 0;
  luaL_addlstring(&b, s + last, len - last);
  luaL_pushresult(&b);
  return 1;
}

/* 1 when s may hold a number outside its strings (a digit or a '-' there;
 * an unclosed string counts as one): 0 means cjson decoded no number. */
static int has_bare_number(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  while (p < end) {
    char c = *p;
    if (c == '"') { /* to the quote no odd run of backslashes escapes */
      p++;
      for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p)), *b;
        if (q == NULL) return 1;
        for (b = q; b > p && b[-1] == '\\'; b--) {
        }
        p = q + 1;
        if (((q - b) & 1) == 0) break;
      }
    } else if ((c >= '0' && c <= '9') || c == '-') {
      return 1;
    } else {
      p++;
    }
  }
  return 0;
}

/* Replaces the value at the top by its integer and returns 1 when it is a
 * marker (when markers) or an integral float a double holds exactly (below
 * 2^53). */
static int integer_back(lua_State *L, int markers) {
  lua_Integer i;
  if (markers && lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *v = lua_tolstring(L, -1, &len);
    if (len <= INT_MARKER_TEXT_LEN ||
        memcmp(v, INT_MARKER_TEXT, INT_MARKER_TEXT_LEN) != 0)
      return 0;
    i = (lua_Integer)strtoll(v + INT_MARKER_TEXT_LEN, NULL, 10);
  } else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (n != floor(n) || n <= -9007199254740992.0 || n >= 9007199254740992.0)
      return 0;
    i = (lua_Integer)n;
  } else {
    return 0;
  }
  lua_pop(L, 1);
  lua_pushinteger(L, i);
  return 1;
}

static void integers_back(lua_State *L, int markers, int depth) {
  if (depth > 1000) return; /* cjson refuses deeper nesting anyway */
  /* a key and a value per level: 1000 levels outgrow a C function's 20 */
  luaL_checkstack(L, 3, "JSON nested too deep");
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      integers_back(L, markers, depth + 1);
    } else if (integer_back(L, markers)) {
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, -5); /* replacing a key's value keeps next valid */
    }
    lua_pop(L, 1);
  }
}
#endif

int cs_json_decode(lua_State *L, const char *s, size_t len, int str_idx) {
#if LUA_VERSION_NUM >= 503
  int markers;
#endif
  if (str_idx != 0) str_idx = lua_absindex(L, str_idx);
  push_cjson_fn(L, &decode_key, "decode");
#if LUA_VERSION_NUM >= 503
  markers = quote_big_integers(L, s, len);
  if (!markers)
#endif
  {
    if (str_idx != 0)
      lua_pushvalue(L, str_idx);
    else
      lua_pushlstring(L, s, len);
  }
  if (lua_pcall(L, 1, 1, 0) != 0) {
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    return 0;
  }
#if LUA_VERSION_NUM >= 503
  if (lua_type(L, -1) == LUA_TTABLE) {
    /* a body without a number (most answers) has no float to turn back */
    if (markers || has_bare_number(s, len)) integers_back(L, markers, 0);
  } else {
    (void)integer_back(L, markers);
  }
#endif
  return 1;
}

int cs_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA &&
         lua_touserdata(L, idx) == NULL;
}

void cs_push_url(lua_State *L, const char *base_url, const char *path) {
  size_t blen = strlen(base_url);
  luaL_Buffer b;
  while (blen > 0 && base_url[blen - 1] == '/') blen--;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, base_url, blen);
  luaL_addstring(&b, path);
  luaL_pushresult(&b);
}

void cs_push_request_to(lua_State *L, const char *method, int url_idx,
                        int body_idx, int encoded) {
  url_idx = lua_absindex(L, url_idx);
  if (body_idx != 0) body_idx = lua_absindex(L, body_idx);
  /* room for what the facade adds (headers, timeout, connect_timeout,
   * max_body, fresh; ca_file when set): no rehash on the way to the
   * transport */
  lua_createtable(L, 0, 8);
  lua_pushstring(L, method);
  lua_setfield(L, -2, "method");
  lua_pushvalue(L, url_idx);
  lua_setfield(L, -2, "url");
  /* no headers: the request loop adds its own, and a body from here is
   * JSON (its Content-Type too) */
  if (body_idx != 0) {
    if (encoded)
      lua_pushvalue(L, body_idx);
    else
      cs_json_encode(L, body_idx);
    lua_setfield(L, -2, "body");
  }
}

void cs_push_request(lua_State *L, const char *base_url, const char *method,
                     const char *path, int body_idx) {
  if (body_idx != 0) body_idx = lua_absindex(L, body_idx);
  cs_push_url(L, base_url, path);
  cs_push_request_to(L, method, -1, body_idx, 0);
  lua_remove(L, -2); /* the URL */
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
  int i, n = 0, vals;
  /* each pair is copied as it is checked, and only the copy is read after:
   * a finaliser (run by any allocation) may change the query table */
  luaL_checkstack(L, 12, "query");
  lua_newtable(L); /* vals: name -> value, as checked */
  vals = lua_gettop(L);
  lua_newtable(L); /* vals, names */
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
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, vals); /* vals, names, name */
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++n);
  }
  cs_sort_strings(L, lua_gettop(L), n); /* names, sorted */
  lua_pushstring(L, path);
  for (i = 1; i <= n; i++) {
    size_t klen, vlen;
    const char *k, *v;
    char num[64];
    lua_pushstring(L, i == 1 ? "?" : "&");
    lua_rawgeti(L, -3, i);
    k = lua_tolstring(L, -1, &klen);
    push_escaped(L, k, klen);
    lua_pushliteral(L, "=");
    lua_rawgeti(L, -6, i);
    lua_rawget(L, vals); /* as lua_next saw it, checked */
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
      v = lua_toboolean(L, -1) ? "true" : "false";
      vlen = strlen(v);
    } else if (lua_type(L, -1) == LUA_TNUMBER && !is_lua_integer(L, -1)) {
      /* 2.0 goes out as 2, 0.1 + 0.2 with all its digits, NaN not at all */
      double d = lua_tonumber(L, -1);
      if (d != d || d == HUGE_VAL || d == -HUGE_VAL)
        luaL_error(L,
                   "bad query value for '%s' (finite number expected, got %s)",
                   k, d != d ? "nan" : (d > 0 ? "inf" : "-inf"));
      format_double(num, sizeof num, d);
      v = num;
      vlen = strlen(v);
    } else {
      v = lua_tolstring(L, -1, &vlen);
    }
    push_escaped(L, v, vlen);
    lua_remove(L, -2); /* drop raw value */
    lua_remove(L, -4); /* drop raw name */
    lua_concat(L, 5);  /* vals, names, path-so-far */
  }
  lua_replace(L, vals);
  lua_pop(L, 1); /* names */
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
