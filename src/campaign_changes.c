/* campaign_changes.c: what a save sends. c:changes(), c:_has_changes(),
 * c:_request(op, base) for every campaign operation, and the even split of
 * distribution percentages (c:split_evenly(), and the request of a step
 * that gives none).
 * Calls: the Lua API, request.h (cs_push_request, the empty-array marker),
 * util.h (cs_push_copy), c:validate() (campaign_validate.c) before a
 * request that asks for it; reads the store (and keeps the URL in it), and
 * edits it only in split_evenly (through cs_make_writable and
 * cs_store_changed). */
#include <string.h>

#include "campaign.h"
#include "request.h"
#include "util.h"

/* The resume path is inferred (spec 6.9: /resume or /activate): one place
 * to change when the real one is known. */
#define CS_RESUME_PATH "/resume"

/* 100 over n variants, the remainder to the first ones: 34/33/33. */
static void spread(lua_State *L, int arr) {
  int i, n = (int)lua_rawlen(L, arr);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushinteger(L, 100 / n + (i <= 100 % n));
      lua_setfield(L, -2, "distribution_percent");
    }
    lua_pop(L, 1);
  }
}

static int has_variants(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) > 0;
}

/* c:split_evenly(): every step's variants, initial email and follow-ups. */
int cs_campaign_split_evenly(lua_State *L) {
  int store, i, n;
  cs_campaign *c = cs_check_campaign(L, 1);
  lua_settop(L, 1);
  cs_getuservalue(L, 1);
  store = 2;
  lua_rawgeti(L, store, CS_SLOT(F_VARIANTS));
  if (has_variants(L, -1)) {
    cs_make_writable(L, 1, store, F_VARIANTS);
    cs_store_changed(c, F_VARIANTS, 0);
    lua_rawgeti(L, store, CS_SLOT(F_VARIANTS));
    spread(L, lua_gettop(L));
  }
  lua_settop(L, store);
  lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES));
  if (lua_type(L, -1) != LUA_TTABLE) return 0;
  n = (int)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) { /* any follow-up with variants to split? */
    lua_rawgeti(L, 3, i);
    if (lua_type(L, -1) == LUA_TTABLE) lua_getfield(L, -1, "variants");
    if (has_variants(L, -1)) break;
    lua_settop(L, 3);
  }
  if (i > n) return 0;
  cs_make_writable(L, 1, store, F_SEQUENCES);
  cs_store_changed(c, F_SEQUENCES, 0);
  lua_settop(L, store);
  lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES)); /* the writable copy */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "variants");
      if (has_variants(L, -1)) spread(L, lua_gettop(L));
    }
    lua_settop(L, 3);
  }
  return 0;
}

/* 1 when the request sends the step's variants array at arr as it is
 * stored: it has variants and one of them gives a percentage (all then
 * do: validate() sees to it). */
static int step_as_stored(lua_State *L, int arr) {
  int i, n = (int)lua_rawlen(L, arr), given = 0;
  for (i = 1; i <= n && !given; i++) {
    lua_rawgeti(L, arr, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "distribution_percent");
      given = !lua_isnil(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return given;
}

/* Pushes a step's variants as the next request sends them: the stored
 * array itself when it may be shared (copy 0, encoded at once), else a
 * copy; evenly split when no variant gives a percentage; the empty-array
 * marker when empty. */
static void push_step_out(lua_State *L, int arr, int copy) {
  int given;
  arr = lua_absindex(L, arr);
  if (lua_rawlen(L, arr) == 0) {
    cs_push_empty_array(L);
    return;
  }
  given = step_as_stored(L, arr);
  if (given && !copy) {
    lua_pushvalue(L, arr);
    return;
  }
  cs_push_copy(L, arr);
  if (!given) spread(L, lua_gettop(L));
}

/* [-0, +1] Pushes the follow-ups as sent: new follow-up tables (a few
 * scalars each) holding their variants as push_step_out gives them. */
static void push_sequences_out(lua_State *L, int arr, int copy) {
  int i, n = (int)lua_rawlen(L, arr);
  if (n == 0) {
    cs_push_empty_array(L);
    return;
  }
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i); /* stack: list follow-up */
    if (lua_type(L, -1) != LUA_TTABLE) {
      lua_rawseti(L, -2, i);
      continue;
    }
    lua_createtable(L, 0, 5); /* stack: list follow-up out */
    lua_pushnil(L);
    while (lua_next(L, -3) != 0) { /* stack: list follow-up out key value */
      if (lua_type(L, -1) == LUA_TTABLE) {
        int v = lua_gettop(L);
        push_step_out(L, v, copy);
        lua_replace(L, v);
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2); /* stack: ... out key key value */
      lua_rawset(L, -4); /* stack: ... out key, for lua_next */
    }
    lua_rawseti(L, -3, i); /* list[i] = out; stack: list follow-up */
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
          ok = lua_rawlen(L, -1) > 0 && step_as_stored(L, lua_gettop(L));
        lua_pop(L, 1);
      }
    }
    lua_settop(L, arr);
  }
  return ok;
}

/* [-0, +1] Pushes the body of the next save: every changed field under its API
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
  out = lua_gettop(L); /* stack: out */
  for (f = 0; f < F_COUNT; f++) {
    if (!(dirty & ((uint32_t)1 << f))) continue;
    lua_rawgeti(L, store, CS_SLOT(f)); /* stack: out value */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      if (!has_id) continue;
      lua_pushlightuserdata(L, NULL); /* cjson.null */
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      int v = lua_gettop(L);
      if (cs_campaign_fields[f].kind == K_VARIANTS)
        push_step_out(L, v, copy);
      else if (cs_campaign_fields[f].kind == K_SEQUENCES && !copy &&
               sequences_as_stored(L, v))
        lua_pushvalue(L, v);
      else if (cs_campaign_fields[f].kind == K_SEQUENCES)
        push_sequences_out(L, v, copy);
      else if (copy)
        cs_push_copy(L, v);
      else
        lua_pushvalue(L, v);
      lua_replace(L, v); /* stack: out value-as-sent */
    }
    lua_setfield(L, out, cs_campaign_fields[f].name); /* stack: out */
  }
}

/* [-0, +(0|1)] The body of a save (and launch = true when launch) as
 * JSON text, straight from the store in the field table's order, when
 * every changed value is one cs_flat writes: pushed, and 1. Else nothing
 * pushed, and 0: push_changes and the general encoding then. */
static int push_flat_changes(lua_State *L, cs_campaign *c, int store,
                             int launch) {
  cs_flat o;
  int f, has_id, ok = 1;
  lua_rawgeti(L, store, CS_SLOT(F_ID));
  has_id = !lua_isnil(L, -1);
  lua_pop(L, 1);
  cs_flat_begin(&o);
  for (f = 0; f < F_COUNT && ok; f++) {
    const char *name = cs_campaign_fields[f].name;
    if (!(c->dirty & ((uint32_t)1 << f))) continue;
    lua_rawgeti(L, store, CS_SLOT(f)); /* stack: value */
    if (lua_isnil(L, -1)) /* a clear: null (none before a create) */
      ok = !has_id || cs_flat_member(L, &o, name, 1);
    else
      ok = lua_type(L, -1) != LUA_TTABLE && cs_flat_member(L, &o, name, 0);
    lua_pop(L, 1);
  }
  if (ok && launch) {
    lua_pushboolean(L, 1);
    ok = cs_flat_member(L, &o, "launch", 0);
    lua_pop(L, 1);
  }
  return ok && cs_flat_push(L, &o);
}

/* c:changes() -> the table the next save sends (a copy). */
int cs_campaign_changes(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  push_changes(L, c, cs_push_store(L, 1), 1, ~(uint32_t)0);
  return 1;
}

/* c:_has_changes() -> whether changes() holds anything, and whether the
 * campaign has an id: what a save tests before sending, without building
 * the table. */
int cs_campaign_has_changes(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int f, store = cs_push_store(L, 1), has, exists;
  lua_rawgeti(L, store, CS_SLOT(F_ID));
  exists = !lua_isnil(L, -1);
  lua_pop(L, 1);
  /* a campaign that exists sends clears too */
  has = c->dirty != 0 && exists;
  for (f = 0; f < F_COUNT && !has && c->dirty != 0; f++) {
    if (!(c->dirty & ((uint32_t)1 << f))) continue;
    lua_rawgeti(L, store, CS_SLOT(f));
    has = !lua_isnil(L, -1);
    lua_pop(L, 1);
  }
  lua_pushboolean(L, has);
  lua_pushboolean(L, exists);
  return 2;
}

/* Pushes the campaign's URL, base (at base_idx) .. "/campaigns/" .. id (at
 * id_idx), kept in the store for the next request with the same two. */
static void push_campaign_url(lua_State *L, int store, int base_idx,
                              int id_idx) {
  lua_rawgeti(L, store, CS_SLOT_URL_BASE);
  lua_rawgeti(L, store, CS_SLOT_URL_ID);
  if (lua_rawequal(L, -2, base_idx) && lua_rawequal(L, -1, id_idx)) {
    lua_pop(L, 2);
    lua_rawgeti(L, store, CS_SLOT_URL);
    if (lua_type(L, -1) == LUA_TSTRING) return;
    lua_pop(L, 1);
  } else {
    lua_pop(L, 2);
  }
  lua_pushliteral(L, "/campaigns/");
  lua_pushvalue(L, id_idx);
  lua_concat(L, 2);
  cs_push_url(L, lua_tostring(L, base_idx), lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_pushvalue(L, base_idx);
  lua_rawseti(L, store, CS_SLOT_URL_BASE);
  lua_pushvalue(L, id_idx);
  lua_rawseti(L, store, CS_SLOT_URL_ID);
  lua_pushvalue(L, -1);
  lua_rawseti(L, store, CS_SLOT_URL);
}

enum { OP_CREATE, OP_SAVE, OP_LAUNCH, OP_GET, OP_PAUSE, OP_RESUME, OP_DELETE };

/* c:_request(op, base_url [, validate]) -> {method=, url=, body=?}, or
 * with validate, when validate() finds problems: nil, problems (no
 * second call for the usual remembered pass). */
int cs_campaign_request(lua_State *L) {
  static const char *const ops[] = {"create", "save",   "launch", "get",
                                    "pause",  "resume", "delete", NULL};
  cs_campaign *c = cs_check_campaign(L, 1);
  int op = luaL_checkoption(L, 2, NULL, ops), store;
  const char *base = luaL_checkstring(L, 3);
  const char *id;
  if (lua_toboolean(L, 4) && !c->validated) {
    lua_pushcfunction(L, cs_campaign_validate);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2); /* true | nil, problems */
    if (!lua_toboolean(L, -2)) return 2;
  }
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
  if (op == OP_PAUSE || op == OP_RESUME) {
    lua_pushfstring(L, "/campaigns/%s%s", id,
                    op == OP_PAUSE ? "/pause" : CS_RESUME_PATH);
    cs_push_request(L, base, "POST", lua_tostring(L, -1), 0);
    return 1;
  }
  push_campaign_url(L, store, 3, store + 1); /* stack: c op base store id url */
  switch (op) {
    case OP_SAVE:
    case OP_LAUNCH:
      if (push_flat_changes(L, c, store, op == OP_LAUNCH)) {
        cs_push_request_to(L, "PUT", -2, -1, 1);
        break;
      }
      push_changes(L, c, store, 0, ~(uint32_t)0);
      if (op == OP_LAUNCH) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "launch");
      }
      cs_push_request_to(L, "PUT", -2, -1, 0);
      break;
    case OP_GET:
      cs_push_request_to(L, "GET", -1, 0, 0);
      break;
    default:
      cs_push_request_to(L, "DELETE", -1, 0, 0);
  }
  return 1;
}
