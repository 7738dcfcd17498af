/* campaign_sync.c: what a campaign sends and receives: changes(), the
 * request tables of every campaign operation, server bodies (_apply) and
 * the dirty set (_clear_dirty, _discard). */
#include <string.h>

#include "fields.h"
#include "request.h"
#include "util.h"

/* The resume path is inferred (spec 6.9: /resume or /activate): one place
 * to change when the real one is known. */
#define CS_RESUME_PATH "/resume"

/* Pushes the follow-ups as sent: new follow-up tables (a few scalars each)
 * holding their variants as cs_push_step_out gives them. */
static void push_sequences_out(lua_State *L, int arr, int copy) {
  int i, n = (int)lua_rawlen(L, arr);
  if (n == 0) {
    cs_push_empty_array(L);
    return;
  }
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    if (lua_type(L, -1) != LUA_TTABLE) {
      lua_rawseti(L, -2, i);
      continue;
    }
    lua_createtable(L, 0, 5);
    lua_pushnil(L);
    while (lua_next(L, -3) != 0) { /* follow-up, out, key, value */
      if (lua_type(L, -1) == LUA_TTABLE) {
        int v = lua_gettop(L);
        cs_push_step_out(L, v, copy);
        lua_replace(L, v);
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
}

/* 1 when push_sequences_out would give the same JSON as the stored array
 * at arr: every table in a follow-up is a variants array sent as stored. */
static int sequences_as_stored(lua_State *L, int arr) {
  int i, n = (int)lua_rawlen(L, arr), ok = n > 0;
  for (i = 1; i <= n && ok; i++) {
    lua_rawgeti(L, arr, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      int seq = lua_gettop(L);
      lua_pushnil(L);
      while (ok && lua_next(L, seq) != 0) {
        if (lua_type(L, -1) == LUA_TTABLE)
          ok = lua_rawlen(L, -1) > 0 && cs_step_as_stored(L, lua_gettop(L));
        lua_pop(L, 1);
      }
    }
    lua_settop(L, arr);
  }
  return ok;
}

/* Pushes the body of the next save: every changed field under its API
 * name, a cleared one as JSON null. Arrays go whole (the API replaces
 * them). A campaign not yet created omits cleared fields: a create has
 * defaults, not nulls. copy 0 lets the stored tables be encoded in place
 * (the table is dropped after encoding); changes() copies. */
static void push_changes(lua_State *L, cs_campaign *c, int store, int copy,
                         uint32_t mask) {
  int f, out, has_id, n = 0;
  uint32_t d, dirty = c->dirty & mask;
  for (d = dirty; d != 0; d &= d - 1) n++;
  lua_rawgeti(L, store, CS_SLOT(F_ID));
  has_id = !lua_isnil(L, -1);
  lua_pop(L, 1);
  lua_createtable(L, 0, n + 1);
  out = lua_gettop(L);
  for (f = 0; f < F_COUNT; f++) {
    if (!(dirty & ((uint32_t)1 << f))) continue;
    lua_rawgeti(L, store, CS_SLOT(f));
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      if (!has_id) continue;
      lua_pushlightuserdata(L, NULL); /* cjson.null */
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      int v = lua_gettop(L);
      if (cs_campaign_fields[f].kind == K_VARIANTS)
        cs_push_step_out(L, v, copy);
      else if (cs_campaign_fields[f].kind == K_SEQUENCES && !copy &&
               sequences_as_stored(L, v))
        lua_pushvalue(L, v);
      else if (cs_campaign_fields[f].kind == K_SEQUENCES)
        push_sequences_out(L, v, copy);
      else if (copy)
        cs_push_copy(L, v);
      else
        lua_pushvalue(L, v);
      lua_replace(L, v);
    }
    lua_setfield(L, out, cs_campaign_fields[f].name);
  }
}

/* c:changes() -> the table the next save sends (a copy). */
int cs_campaign_changes(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  push_changes(L, c, cs_push_store(L, 1), 1, ~(uint32_t)0);
  return 1;
}

/* c:_has_changes() -> whether changes() holds anything: what a save tests
 * before sending, without building the table. */
int cs_campaign_has_changes(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int f, store, has = 0;
  if (c->dirty != 0) {
    store = cs_push_store(L, 1);
    lua_rawgeti(L, store, CS_SLOT(F_ID));
    has = !lua_isnil(L, -1); /* a campaign that exists sends clears too */
    lua_pop(L, 1);
    for (f = 0; f < F_COUNT && !has; f++) {
      if (!(c->dirty & ((uint32_t)1 << f))) continue;
      lua_rawgeti(L, store, CS_SLOT(f));
      has = !lua_isnil(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pushboolean(L, has);
  return 1;
}

enum { OP_CREATE, OP_SAVE, OP_LAUNCH, OP_GET, OP_PAUSE, OP_RESUME, OP_DELETE };

/* c:_request(op, base_url) -> {method=, url=, headers=, body=?} */
int cs_campaign_request(lua_State *L) {
  static const char *const ops[] = {"create", "save",   "launch", "get",
                                    "pause",  "resume", "delete", NULL};
  cs_campaign *c = cs_check_campaign(L, 1);
  int op = luaL_checkoption(L, 2, NULL, ops), store;
  const char *base = luaL_checkstring(L, 3);
  const char *id;
  lua_settop(L, 3);
  store = cs_push_store(L, 1);
  lua_rawgeti(L, store, CS_SLOT(F_ID));
  id = lua_tostring(L, -1); /* checked as a UUID on the way in */
  if (op == OP_CREATE) {
    if (id != NULL)
      return luaL_error(L, "cannot create campaign %s: it exists already", id);
    /* the create schema only: the server ignores the rest, which the
     * create routine sends next in one PUT */
    push_changes(L, c, store, 0, CS_CREATE_MASK);
    cs_push_request(L, base, "POST", "/campaigns", -1);
    return 1;
  }
  if (id == NULL)
    return luaL_error(L, "cannot %s a campaign without an id (create it first)",
                      ops[op]);
  lua_pushfstring(L, "/campaigns/%s%s", id,
                  op == OP_PAUSE    ? "/pause"
                  : op == OP_RESUME ? CS_RESUME_PATH
                                    : "");
  switch (op) {
    case OP_SAVE:
    case OP_LAUNCH:
      push_changes(L, c, store, 0, ~(uint32_t)0);
      if (op == OP_LAUNCH) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "launch");
      }
      cs_push_request(L, base, "PUT", lua_tostring(L, -2), -1);
      break;
    case OP_GET:
      cs_push_request(L, base, "GET", lua_tostring(L, -1), 0);
      break;
    case OP_DELETE:
      cs_push_request(L, base, "DELETE", lua_tostring(L, -1), 0);
      break;
    default:
      cs_push_request(L, base, "POST", lua_tostring(L, -1), 0);
  }
  return 1;
}

/* Keys of a server body that describe the response, not the campaign. */
static int is_envelope(const char *k) {
  return strcmp(k, "success") == 0 || strcmp(k, "message") == 0;
}

/* c:_apply(data): takes a server body (create, get, update) as the applied
 * state. A field with a pending local change keeps it: the server value
 * becomes what _discard returns to (so refresh = _discard + _apply). */
int cs_campaign_apply(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int store;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  store = cs_push_store(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) { /* key, value */
    const char *k;
    int f, v = lua_gettop(L);
    if (lua_type(L, -2) != LUA_TSTRING || is_envelope(lua_tostring(L, -2))) {
      lua_pop(L, 1);
      continue;
    }
    k = lua_tostring(L, -2);
    if (strcmp(k, "campaign_id") == 0 || strcmp(k, "id") == 0) {
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
    if (lua_isnil(L, v) || cs_is_null(L, v))
      lua_pushnil(L);
    else if (f >= 0)
      cs_push_lenient(L, &cs_campaign_fields[f], v);
    else
      cs_push_copy(L, v);
    if (f < 0) { /* kept, readable, never sent */
      cs_push_slot_table(L, store, CS_SLOT_EXTRA);
      lua_pushvalue(L, v - 1);
      lua_pushvalue(L, -3);
      lua_rawset(L, -3);
    } else if (c->dirty & ((uint32_t)1 << f)) {
      cs_push_slot_table(L, store, CS_SLOT_SAVED);
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, CS_SLOT(f));
    } else {
      cs_store_changed(c, f, lua_isnil(L, -1));
      lua_pushvalue(L, -1);
      lua_rawseti(L, store, CS_SLOT(f));
    }
    lua_settop(L, v - 1);
  }
  return 0;
}

static void clear_all(lua_State *L, cs_campaign *c, int store) {
  c->dirty = 0;
  lua_pushnil(L);
  lua_rawseti(L, store, CS_SLOT_SAVED);
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
