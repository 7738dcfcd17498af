/* campaign.c: the coldsend.campaign userdata: construction, field access
 * (__index, __newindex: checked by campaign_setters.c, then stored), dirty
 * tracking and the validate() cache, add_variant/add_sequence, pairs,
 * tostring, close, and the registration of every campaign method.
 * Calls: the Lua API, the other campaign files through campaign.h, util.h.
 * The one writer of the store apart from _apply/_discard (campaign_apply.c)
 * and split_evenly (campaign_changes.c): each calls cs_store_changed. */
#include "campaign.h"

#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "request.h"
#include "util.h"

/* ---- the two accessors (liolib's tofile/checkfile) --------------------- */

cs_campaign *cs_check_campaign(lua_State *L, int idx) {
  cs_campaign *c = (cs_campaign *)luaL_checkudata(L, idx, CS_CAMPAIGN_TYPE);
  if (c->closed) luaL_error(L, "attempt to use a closed " CS_CAMPAIGN_TYPE);
  return c;
}

int cs_push_store(lua_State *L, int ud) {
  cs_getuservalue(L, ud);
  return lua_gettop(L);
}

void cs_push_slot_table(lua_State *L, int store, int slot) {
  lua_rawgeti(L, store, slot);
  /* not only nil: _apply stores server data unchecked, and the callers
   * lua_rawseti into what this pushes */
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, store, slot);
  }
}

/* [-0, +0] Marks field f changed. Its value before the first change is kept for
 * _discard; a nil one needs no entry, so a new campaign has no saved
 * table at all until it is applied from the server. */
void cs_mark_dirty(lua_State *L, cs_campaign *c, int store, int f) {
  uint32_t bit = (uint32_t)1 << f;
  if (c->dirty & bit) return;
  lua_rawgeti(L, store, CS_SLOT(f));
  if (!lua_isnil(L, -1)) {
    cs_push_slot_table(L, store, CS_SLOT_SAVED);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, CS_SLOT(f));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  c->dirty |= bit;
}

void cs_store_changed(cs_campaign *c, int f, int now_nil) {
  if (!(CS_VALIDATE_READS & ((uint32_t)1 << f))) return;
  /* validate() only asks that a campaign has an id or a name: setting
   * either cannot make it fail */
  if ((f == F_ID || f == F_NAME) && !now_nil) return;
  c->validated = 0;
}

/* Before an in-place edit (add_variant, split_evenly): the first edit keeps
 * the applied tree for _discard and edits a copy, so the tree being edited
 * is never shared. */
void cs_make_writable(lua_State *L, int ud, int store, int f) {
  cs_campaign *c = (cs_campaign *)lua_touserdata(L, ud);
  if (c->dirty & ((uint32_t)1 << f)) return;
  cs_mark_dirty(L, c, store, f);
  lua_rawgeti(L, store, CS_SLOT(f));
  cs_push_copy(L, -1);
  lua_rawseti(L, store, CS_SLOT(f));
  lua_pop(L, 1);
}

static int no_field(lua_State *L, int key) {
  return luaL_error(L, "no field '%s' in " CS_CAMPAIGN_TYPE,
                    cs_push_key_text(L, key));
}

/* [-0, +1] Pushes the server-only value named by the key at idx, or nil. */
static void push_extra(lua_State *L, int ud, int key) {
  cs_getuservalue(L, ud);
  lua_rawgeti(L, -1, CS_SLOT_EXTRA);
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) return;
  lua_pushvalue(L, key);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

/* ---- construction ------------------------------------------------------ */

/* core.campaign([id]) */
static int campaign_new(lua_State *L) {
  cs_campaign *c;
  int has_id = !lua_isnoneornil(L, 1);
  lua_settop(L, 1);
  if (has_id) {
    size_t len = 0;
    const char *id = NULL;
    if (lua_type(L, 1) == LUA_TSTRING) id = lua_tolstring(L, 1, &len);
    if (id == NULL || !cs_is_uuid(id, len)) {
      cs_push_described(L, 1);
      return luaL_argerror(
          L, 1,
          lua_pushfstring(L, "UUID expected, got %s",
                          lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                        : luaL_typename(L, 1)));
    }
  }
  /* the userdata comes first, complete: an out-of-memory error while
   * making the store leaves an object close and __gc can handle */
  c = (cs_campaign *)cs_newuserdata(L, sizeof *c);
  c->dirty = 0;
  c->closed = 0;
  c->validated = 0;
  luaL_setmetatable(L, CS_CAMPAIGN_TYPE);
  lua_createtable(L, CS_STORE_SIZE, 0);
  if (has_id) {
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, CS_SLOT(F_ID));
  }
  cs_setuservalue(L, -2);
  return 1;
}

/* ---- fields ------------------------------------------------------------ */

static int campaign_index(lua_State *L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, CS_UV_NAMES);
  if (lua_type(L, -1) == LUA_TNUMBER) { /* the common case: a field */
    int f = (int)lua_tointeger(L, -1);
    cs_check_campaign(L, 1);
    cs_getuservalue(L, 1);
    lua_rawgeti(L, -1, CS_SLOT(f));
    /* a copy: editing what was read must not bypass the checks */
    if (lua_type(L, -1) == LUA_TTABLE) cs_push_copy(L, -1);
    return 1;
  }
  /* methods are looked up now, not at open: the facade adds its own */
  lua_pushvalue(L, 2);
  lua_rawget(L, CS_UV_METHODS);
  if (!lua_isnil(L, -1)) return 1;
  cs_check_campaign(L, 1);
  push_extra(L, 1, 2);
  if (lua_isnil(L, -1)) return no_field(L, 2);
  if (lua_type(L, -1) == LUA_TTABLE) cs_push_copy(L, -1);
  return 1;
}

static int campaign_newindex(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  const cs_field *f;
  int fi, store;
  lua_settop(L, 3);
  lua_pushvalue(L, 2);
  lua_rawget(L, CS_UV_NAMES);
  if (lua_type(L, -1) != LUA_TNUMBER) {
    lua_pushvalue(L, 2);
    lua_rawget(L, CS_UV_METHODS);
    push_extra(L, 1, 2);
    if (lua_isnil(L, -1) && lua_isnil(L, -2)) return no_field(L, 2);
    return luaL_error(L, "field '%s' of " CS_CAMPAIGN_TYPE " is read-only",
                      cs_push_key_text(L, 2));
  }
  fi = (int)lua_tointeger(L, -1);
  f = &cs_campaign_fields[fi];
  if (f->flags & CS_READONLY)
    return luaL_error(L, "field '%s' of " CS_CAMPAIGN_TYPE " is read-only",
                      f->name);
  store = cs_push_store(L, 1); /* stack: c key value fieldno store */
  /* check fully before touching anything: a bad value changes nothing */
  if (lua_isnil(L, 3) || cs_is_null(L, 3)) {
    lua_pushnil(L); /* cleared: JSON null in the next PUT */
  } else {
    cs_path p = {NULL, f->name, 0};
    cs_check_field(L, f, 3, &p);
  }
  /* stack: c key value fieldno store checked (nil: cleared) */
  cs_mark_dirty(L, c, store, fi);
  cs_store_changed(c, fi, lua_isnil(L, -1));
  lua_rawseti(L, store, CS_SLOT(fi));
  return 0;
}

/* ---- variants and follow-ups ------------------------------------------- */

/* Finds the follow-up with step_number step; returns its position or 0. */
static int find_step(lua_State *L, int sequences, lua_Integer step) {
  int i, n;
  if (lua_type(L, sequences) != LUA_TTABLE) return 0;
  n = (int)lua_rawlen(L, sequences);
  for (i = 1; i <= n; i++) {
    lua_Integer s;
    int hit;
    lua_rawgeti(L, sequences, i);
    lua_getfield(L, -1, "step_number");
    hit = cs_tointeger(L, -1, &s) && s == step;
    lua_pop(L, 2);
    if (hit) return i;
  }
  return 0;
}

/* [-0, +1] Pushes the variants array of step 1 (the campaign's) or of
 * follow-up position pos, creating it when absent. */
static void push_step_variants(lua_State *L, int store, int pos) {
  if (pos == 0) {
    cs_push_slot_table(L, store, CS_SLOT(F_VARIANTS));
    return;
  }
  lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES));
  lua_rawgeti(L, -1, pos);
  lua_remove(L, -2);               /* stack: follow-up */
  lua_getfield(L, -1, "variants"); /* stack: follow-up variants */
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "variants");
  }
  lua_remove(L, -2); /* stack: variants */
}

/* c:add_variant(t [, step]) -> the variant's name. step 1 (default) is the
 * initial email, 2..4 a follow-up already added. */
static int campaign_add_variant(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  lua_Integer step = 1;
  int store, arr, pos = 0, n = 0, field = F_VARIANTS;
  cs_path root = {NULL, "variants", 0}, seq = {NULL, "sequences", 0};
  cs_path at = {NULL, NULL, 0}, vp = {&root, NULL, 0}, np = {&vp, NULL, 0};
  if (!lua_isnoneornil(L, 3) &&
      (!cs_tointeger(L, 3, &step) || step < 1 || step > 4))
    return luaL_argerror(L, 3, "step 1..4 expected");
  lua_settop(L, 3);
  store = cs_push_store(L, 1); /* stack: c t step store */
  if (step > 1) {
    lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES));
    pos = find_step(L, lua_gettop(L), step);
    lua_pop(L, 1);
    if (pos == 0)
      return luaL_argerror(
          L, 3, lua_pushfstring(L, "no follow-up with step %d", (int)step));
    field = F_SEQUENCES;
    at.up = &seq, at.index = pos, root.up = &at;
  }
  /* the current array (nil when none) to name against */
  if (pos == 0) {
    lua_rawgeti(L, store, CS_SLOT(F_VARIANTS));
  } else {
    lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES));
    lua_rawgeti(L, -1, pos);
    lua_getfield(L, -1, "variants"); /* stack: ... sequences seq variants */
    lua_replace(L, -3);
    lua_pop(L, 1);
  }
  arr = lua_gettop(L); /* stack: c t step store arr (nil: none yet) */
  if (lua_type(L, arr) == LUA_TTABLE) n = (int)lua_rawlen(L, arr);
  vp.index = n + 1;
  np.name = "variant_name";
  cs_check_variant(L, 2, &vp);         /* stack: ... arr variant */
  lua_getfield(L, -1, "variant_name"); /* stack: ... arr variant name */
  if (lua_isnil(L, -1)) {
    char letter = n > 0 ? (char)cs_first_free_letter(L, arr) : 'A';
    if (letter == 0) cs_raise(L, &np, "a free letter", "none left");
    lua_pop(L, 1);
    lua_pushlstring(L, &letter, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "variant_name"); /* variant, name */
  } else if (n > 0) {
    cs_check_name_unused(L, arr, n, lua_gettop(L), &np);
  }
  cs_make_writable(L, 1, store, field);
  cs_store_changed(c, field, 0);
  push_step_variants(L, store, pos); /* stack: ... variant name array */
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1); /* stack: ... variant name: the name is returned */
  return 1;
}

/* c:add_sequence(t) -> the follow-up's step number. */
static int campaign_add_sequence(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  cs_path root = {NULL, "sequences", 0}, ep = {&root, NULL, 0};
  int store, arr, n = 0;
  lua_settop(L, 2);
  store = cs_push_store(L, 1);
  lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES));
  arr = lua_gettop(L); /* stack: c t store arr (nil: none yet) */
  if (lua_type(L, arr) == LUA_TTABLE) n = (int)lua_rawlen(L, arr);
  ep.index = n + 1;
  cs_check_sequence(L, 2, &ep);       /* stack: ... arr follow-up */
  lua_getfield(L, -1, "step_number"); /* stack: ... arr follow-up step */
  if (lua_isnil(L, -1)) {
    int step = n > 0 ? cs_next_step(L, arr, n) : 2;
    if (step > 4 && n >= 3) {
      lua_pushfstring(L, "%d", n + 1);
      cs_raise(L, &root, "at most 3 follow-ups", lua_tostring(L, -1));
    } else if (step > 4) { /* the server gave a step past 4 */
      lua_pushfstring(L, "%d", step);
      cs_raise(L, &root, "a next step 2..4 (one past the highest)",
               lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    lua_pushinteger(L, step);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "step_number"); /* follow-up, step */
  }
  cs_make_writable(L, 1, store, F_SEQUENCES);
  cs_store_changed(c, F_SEQUENCES, 0);
  cs_push_slot_table(L, store, CS_SLOT(F_SEQUENCES)); /* ... step array */
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1); /* stack: ... follow-up step: the step is returned */
  return 1;
}

/* ---- pairs, tostring, close -------------------------------------------- */

static int key_less(const char *a, size_t al, const char *b, size_t bl) {
  int cmp = memcmp(a, b, al < bl ? al : bl);
  return cmp < 0 || (cmp == 0 && al < bl);
}

/* The iterator of pairs(c): set fields in table order, then the server's
 * other keys in byte order. Stateless (the key says where it was), so the
 * order is the same every time. */
static int campaign_next(lua_State *L) {
  int f = 0, store;
  const char *after = NULL, *best = NULL;
  size_t after_len = 0, best_len = 0;
  cs_check_campaign(L, 1);
  lua_settop(L, 2);
  store = cs_push_store(L, 1); /* stack: c key store */
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, CS_UV_NAMES);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      f = (int)lua_tointeger(L, -1) + 1;
    } else {
      f = F_COUNT;
      after = lua_tolstring(L, 2, &after_len);
    }
    lua_pop(L, 1);
  }
  for (; f < F_COUNT; f++) {
    lua_rawgeti(L, store, CS_SLOT(f));
    if (!lua_isnil(L, -1)) {
      lua_pushstring(L, cs_campaign_fields[f].name);
      cs_push_copy(L, -2); /* stack: ... value name copy */
      return 2;
    }
    lua_pop(L, 1);
  }
  lua_rawgeti(L, store, CS_SLOT_EXTRA); /* stack: c key store extra */
  if (lua_isnil(L, -1)) return 0;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) { /* stack: ... extra k v */
    size_t len;
    const char *k = lua_tolstring(L, -2, &len);
    if ((after == NULL || key_less(after, after_len, k, len)) &&
        (best == NULL || key_less(k, len, best, best_len)))
      best = k, best_len = len; /* the key stays alive in the table */
    lua_pop(L, 1);
  }
  if (best == NULL) return 0;
  lua_pushlstring(L, best, best_len); /* stack: ... extra best */
  lua_pushvalue(L, -1);
  lua_rawget(L, -3); /* stack: ... extra best value */
  if (lua_type(L, -1) == LUA_TTABLE) cs_push_copy(L, -1), lua_remove(L, -2);
  return 2;
}

static int campaign_pairs(lua_State *L) {
  cs_check_campaign(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static int popcount(uint32_t x) {
  int n = 0;
  for (; x != 0; x &= x - 1) n++;
  return n;
}

/* coldsend.campaign <id> "<name>" <STATUS> (<n> unsaved)
 * The parts are pushed above top and joined by one lua_concat:
 * stack: c store | "coldsend.campaign " id|"(new)" [" " name] [" " STATUS]
 *        " (n unsaved)" */
static int campaign_tostring(lua_State *L) {
  cs_campaign *c = (cs_campaign *)luaL_checkudata(L, 1, CS_CAMPAIGN_TYPE);
  int store, top;
  if (c->closed) {
    lua_pushliteral(L, CS_CAMPAIGN_TYPE " (closed)");
    return 1;
  }
  store = cs_push_store(L, 1);
  top = lua_gettop(L);
  lua_pushliteral(L, CS_CAMPAIGN_TYPE " ");
  lua_rawgeti(L, store, CS_SLOT(F_ID));
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "(new)");
  }
  lua_rawgeti(L, store, CS_SLOT(F_NAME));
  if (!lua_isnil(L, -1)) {
    lua_pushliteral(L, " ");
    cs_push_described(L, -2);
    lua_remove(L, -3);
  } else {
    lua_pop(L, 1);
  }
  lua_rawgeti(L, store, CS_SLOT(F_STATUS));
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_pushliteral(L, " ");
    lua_insert(L, -2);
  } else {
    lua_pop(L, 1);
  }
  lua_pushfstring(L, " (%d unsaved)", popcount(c->dirty));
  lua_concat(L, lua_gettop(L) - top);
  return 1;
}

/* One close for close() and __close; closing twice is harmless. No __gc:
 * every value is the collector's, and a finalizer would only make every
 * campaign cost a second collection cycle. */
static int campaign_close(lua_State *L) {
  cs_campaign *c = (cs_campaign *)luaL_checkudata(L, 1, CS_CAMPAIGN_TYPE);
  if (c->closed) return 0;
  c->closed = 1;
  c->dirty = 0;
  /* let the collector have the values now, not with the handle */
#if CS_LUA51
  lua_newtable(L); /* an environment must be a table */
#else
  lua_pushnil(L);
#endif
  cs_setuservalue(L, 1);
  return 0;
}

/* ---- registration ------------------------------------------------------ */

static const luaL_Reg meth[] = {{"validate", cs_campaign_validate},
                                {"_validate_fresh", cs_campaign_validate_fresh},
                                {"changes", cs_campaign_changes},
                                {"split_evenly", cs_campaign_split_evenly},
                                {"add_variant", campaign_add_variant},
                                {"add_sequence", campaign_add_sequence},
                                {"_request", cs_campaign_request},
                                {"_apply", cs_campaign_apply},
                                {"_clear_dirty", cs_campaign_clear_dirty},
                                {"_discard", cs_campaign_discard},
                                {"_has_changes", cs_campaign_has_changes},
                                {"close", campaign_close},
                                {NULL, NULL}};

static const luaL_Reg metameth[] = {{"__index", campaign_index},
                                    {"__newindex", campaign_newindex},
                                    {"__tostring", campaign_tostring},
                                    {"__close", campaign_close},
                                    {NULL, NULL}};

void cs_campaign_open(lua_State *L) {
  int i, module = lua_gettop(L), mt, names, methods;
  cs_newmetatable(L, CS_CAMPAIGN_TYPE);
  mt = lua_gettop(L);
  lua_createtable(L, 0, F_COUNT);
  names = lua_gettop(L);
  for (i = 0; i < F_COUNT; i++) {
    lua_pushinteger(L, i);
    lua_setfield(L, names, cs_campaign_fields[i].name);
  }
  lua_createtable(L, 0, 16);
  methods = lua_gettop(L);
  lua_pushvalue(L, methods);
  lua_pushvalue(L, names);
  lua_pushvalue(L, methods);
  luaL_setfuncs(L, meth, 2);
  lua_pop(L, 1);
  lua_pushvalue(L, mt);
  lua_pushvalue(L, names);
  lua_pushvalue(L, methods);
  luaL_setfuncs(L, metameth, 2);
  lua_pop(L, 1);
  /* __pairs returns the iterator, which needs the same upvalues */
  lua_pushvalue(L, names);
  lua_pushvalue(L, methods);
  lua_pushcclosure(L, campaign_next, 2);
  lua_pushcclosure(L, campaign_pairs, 1);
  lua_setfield(L, mt, "__pairs");
  lua_pushvalue(L, methods);
  lua_setfield(L, module, "campaign_methods");
  lua_pushcfunction(L, campaign_new);
  lua_setfield(L, module, "campaign");
  lua_pushcfunction(L, cs_campaign_fields_list);
  lua_setfield(L, module, "campaign_fields");
  lua_settop(L, module);
}
