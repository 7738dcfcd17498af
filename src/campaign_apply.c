/* campaign_apply.c: what the server answers. c:_apply(body) takes a server
 * body as the applied state (lenient: server data is the authority, kept
 * in our shape, never refused), c:_clear_dirty() after a save, c:_discard()
 * back to the applied values.
 * Calls: the Lua API on the campaign's store, campaign_fields.c for the
 * record tables, util.h (UUID check, copies), request.h (cs_is_null). */
#include <string.h>

#include "campaign.h"
#include "request.h"
#include "util.h"

/* Server data is the authority: keep what it says, in our shape, without
 * rejecting anything. A variant keeps only the variant fields, so a later
 * PUT sends no server-only keys; legacy body_template becomes
 * email_content. push_lenient pushes the value at idx so: a table in a copy
 * of its own, or itself when keep (a body fresh from the decoder, which
 * nothing else holds). */
static void push_lenient(lua_State *L, const cs_field *f, int idx, int keep);

/* Replaces the string at idx by its ASCII upper-case version. */
static void upper_in_place(lua_State *L, int idx) {
  size_t len, i;
  const char *s;
  luaL_Buffer b;
  idx = lua_absindex(L, idx);
  s = lua_tolstring(L, idx, &len);
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++)
    luaL_addchar(&b, (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i]);
  luaL_pushresult(&b);
  lua_replace(L, idx);
}

static void push_lenient_record(lua_State *L, int idx, const cs_field *fields,
                                size_t nfields, int keep) {
  size_t i;
  int out;
  lua_createtable(L, 0, (int)nfields);
  out = lua_gettop(L);
  for (i = 0; i < nfields; i++) {
    lua_getfield(L, idx, fields[i].name);
    if ((lua_isnil(L, -1) || cs_is_null(L, -1)) &&
        strcmp(fields[i].name, "email_content") == 0) {
      lua_pop(L, 1);
      lua_getfield(L, idx, "body_template");
    }
    if (lua_isnil(L, -1) || cs_is_null(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    if (fields[i].kind == K_LETTERS && lua_type(L, -1) == LUA_TSTRING)
      upper_in_place(L, -1); /* like a name the user assigns */
    push_lenient(L, &fields[i], lua_gettop(L), keep);
    lua_setfield(L, out, fields[i].name);
    lua_pop(L, 1);
  }
}

static void push_lenient_array(lua_State *L, int idx, const cs_field *fields,
                               size_t nfields, int keep) {
  int i, j = 0, n = (int)lua_rawlen(L, idx);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      push_lenient_record(L, lua_gettop(L), fields, nfields, keep);
      lua_rawseti(L, -3, ++j);
    }
    lua_pop(L, 1);
  }
}

static void push_kept(lua_State *L, int idx, int keep) {
  if (keep)
    lua_pushvalue(L, idx);
  else
    cs_push_copy(L, idx);
}

static void push_lenient(lua_State *L, const cs_field *f, int idx, int keep) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE)
    lua_pushvalue(L, idx);
  else if (f->kind == K_VARIANTS)
    push_lenient_array(L, idx, cs_variant_fields, CS_VARIANT_FIELD_COUNT, keep);
  else if (f->kind == K_SEQUENCES)
    push_lenient_array(L, idx, cs_sequence_fields, CS_SEQUENCE_FIELD_COUNT,
                       keep);
  else
    push_kept(L, idx, keep);
}

/* Keys of a server body that describe the response, not the campaign. */
static int is_envelope(const char *k) {
  return (k[0] == 's' && strcmp(k, "success") == 0) ||
         (k[0] == 'm' && strcmp(k, "message") == 0);
}

/* Every field applied: the saved values of the changed ones go (a saved
 * value exists only for a changed field); the table stays for the next
 * edit, which then allocates nothing. */
static void clear_all(lua_State *L, cs_campaign *c, int store) {
  uint32_t was = c->dirty;
  int f;
  c->dirty = 0;
  if (was == 0) return;
  lua_rawgeti(L, store, CS_SLOT_SAVED);
  if (lua_istable(L, -1)) {
    for (f = 0; f < F_COUNT; f++) {
      if (!(was & ((uint32_t)1 << f))) continue;
      lua_pushnil(L);
      lua_rawseti(L, -2, CS_SLOT(f));
    }
  }
  lua_pop(L, 1);
}

/* c:_apply(data [, fresh [, sent]]): takes a server body (create, get,
 * update) as the applied state. A field with a pending local change keeps
 * it: the server value becomes what _discard returns to (so refresh =
 * _discard + _apply). fresh: data came straight from the decoder and
 * nothing else holds it, so its tables are kept rather than copied. sent:
 * data answers a save of every change, which _clear_dirty() first marks
 * applied (one call for the two). */
int cs_campaign_apply(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int store, keep = lua_toboolean(L, 3), sent = lua_toboolean(L, 4);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  store = cs_push_store(L, 1); /* stack: c body store */
  if (sent) clear_all(L, c, store);
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) { /* stack: c body store key value */
    const char *k;
    int f, v = lua_gettop(L), vt;
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 1);
      continue;
    }
    k = lua_tostring(L, -2);
    if (is_envelope(k)) {
      lua_pop(L, 1);
      continue;
    }
    if ((k[0] == 'c' && strcmp(k, "campaign_id") == 0) ||
        (k[0] == 'i' && strcmp(k, "id") == 0)) {
      /* adopted once (after a create); a handle never changes identity */
      size_t len;
      const char *id = lua_tolstring(L, v, &len);
      lua_rawgeti(L, store, CS_SLOT(F_ID));
      if (lua_isnil(L, -1) && lua_type(L, v) == LUA_TSTRING &&
          cs_is_uuid(id, len)) {
        lua_pushvalue(L, v);
        lua_rawseti(L, store, CS_SLOT(F_ID));
      }
      lua_settop(L, v - 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, CS_UV_NAMES);
    f = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : -1;
    lua_pop(L, 1);
    vt = lua_type(L, v);
    if (vt == LUA_TNIL || (vt == LUA_TLIGHTUSERDATA && cs_is_null(L, v)))
      lua_pushnil(L);
    else if (vt != LUA_TTABLE) /* a scalar is kept as it is */
      lua_pushvalue(L, v);
    else if (f >= 0)
      push_lenient(L, &cs_campaign_fields[f], v, keep);
    else
      push_kept(L, v, keep); /* stack: ... key value kept */
    if (f < 0) {             /* kept, readable, never sent */
      cs_push_slot_table(L, store, CS_SLOT_EXTRA); /* ... kept extra */
      lua_pushvalue(L, v - 1);
      lua_pushvalue(L, -3);
      lua_rawset(L, -3); /* extra[key] = kept */
    } else if (c->dirty & ((uint32_t)1 << f)) {
      cs_push_slot_table(L, store, CS_SLOT_SAVED); /* ... kept saved */
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, CS_SLOT(f));
    } else {
      cs_store_changed(c, f, lua_isnil(L, -1));
      lua_pushvalue(L, -1);
      lua_rawseti(L, store, CS_SLOT(f));
    }
    lua_settop(L, v - 1); /* stack: c body store key, for lua_next */
  }
  return 0;
}

/* c:_clear_dirty([what]): after a successful save, what was sent is
 * applied; with "create", only the create schema's fields (what a POST
 * /campaigns sent): the others stay pending for the PUT that follows.
 * A passed validate() still holds: with fewer fields changed it can only
 * find fewer problems. */
int cs_campaign_clear_dirty(lua_State *L) {
  static const char *const whats[] = {"all", "create", NULL};
  cs_campaign *c = cs_check_campaign(L, 1);
  int what = luaL_checkoption(L, 2, "all", whats);
  int store = cs_push_store(L, 1);
  if (what == 1 && (c->dirty & ~CS_CREATE_MASK) != 0) {
    int f;
    lua_rawgeti(L, store, CS_SLOT_SAVED); /* store, saved */
    if (lua_istable(L, -1)) {
      for (f = 0; f < F_COUNT; f++) {
        if (!(CS_CREATE_MASK & ((uint32_t)1 << f))) continue;
        lua_pushnil(L);
        lua_rawseti(L, -2, CS_SLOT(f));
      }
    }
    c->dirty &= ~CS_CREATE_MASK;
    return 0;
  }
  clear_all(L, c, store);
  return 0;
}

/* c:_discard(): every changed field back to its applied value. */
int cs_campaign_discard(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int f, store = cs_push_store(L, 1);
  c->validated = 0;
  lua_rawgeti(L, store, CS_SLOT_SAVED);
  for (f = 0; f < F_COUNT; f++) {
    if (!(c->dirty & ((uint32_t)1 << f))) continue;
    if (lua_isnil(L, -1))
      lua_pushnil(L);
    else
      lua_rawgeti(L, -1, CS_SLOT(f));
    lua_rawseti(L, store, CS_SLOT(f));
  }
  clear_all(L, c, store);
  return 0;
}
