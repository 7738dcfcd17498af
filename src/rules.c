/* rules.c: the rules that span fields (c:validate()) and the even split of
 * distribution percentages (c:split_evenly(), and changes() when a step
 * gives none). */
#include "fields.h"
#include "request.h"

#define MAX_VARIANTS 4
#define MAX_FOLLOW_UPS 3

/* Server defaults (spec 6.1), used where a rule needs an unset value. */
#define DEFAULT_WINDOW_START 9
#define DEFAULT_WINDOW_END 17
#define DEFAULT_RAMP_INCREMENT 50
#define DEFAULT_RAMP_MAX 500

/* Appends {field = <at -2>, message = <at -1>} to the list; pops both. */
static void add_problem(lua_State *L, int list) {
  lua_createtable(L, 0, 2);
  lua_insert(L, -3);
  lua_setfield(L, -3, "message");
  lua_setfield(L, -2, "field");
  lua_rawseti(L, list, (int)lua_rawlen(L, list) + 1);
}

static lua_Integer int_or(lua_State *L, int store, int f, lua_Integer def) {
  lua_Integer v;
  lua_rawgeti(L, store, CS_SLOT(f));
  if (!cs_tointeger(L, -1, &v)) v = def; /* unset, or odd server data */
  lua_pop(L, 1);
  return v;
}

/* Pushes the name of a step's variants: the campaign's (seq 0) or those of
 * follow-up seq. Made only when a problem is reported. */
static void push_step_field(lua_State *L, int seq) {
  if (seq == 0)
    lua_pushliteral(L, "variants");
  else
    lua_pushfstring(L, "sequences[%d].variants", seq);
}

/* The variants of one step (the initial email or a follow-up seq, as
 * push_step_field names them). Percentages: all given and summing to 100,
 * or none given (then split evenly). */
static void check_step(lua_State *L, int list, int arr, int seq) {
  int i, n, given = 0, out_of_range = 0;
  lua_Integer sum = 0;
  n = lua_type(L, arr) == LUA_TTABLE ? (int)lua_rawlen(L, arr) : 0;
  if (n == 0) {
    push_step_field(L, seq);
    lua_pushliteral(L, "at least 1 variant expected, got none");
    add_problem(L, list);
    return;
  }
  if (n > MAX_VARIANTS) {
    push_step_field(L, seq);
    lua_pushfstring(L, "at most %d variants per step expected, got %d",
                    MAX_VARIANTS, n);
    add_problem(L, list);
  }
  for (i = 1; i <= n; i++) {
    lua_Integer pct;
    lua_rawgeti(L, arr, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "distribution_percent");
      /* a server's value may be anything: summed only when an integer
       * within 0..100, so the sum cannot overflow; any other value given
       * (2.5, "x", 2^53 where it is no exact integer) is outside, never
       * taken as absent (absent, or null, means split evenly) */
      if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TLIGHTUSERDATA) {
        given++;
        if (!cs_tointeger(L, -1, &pct) || pct < 0 || pct > 100)
          out_of_range++;
        else
          sum += pct;
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (given > 0 && given < n) {
    push_step_field(L, seq);
    lua_pushfstring(L,
                    "distribution_percent given for %d of %d variants: "
                    "give all or none (none: split evenly)",
                    given, n);
    add_problem(L, list);
  } else if (out_of_range > 0) {
    push_step_field(L, seq);
    lua_pushfstring(L,
                    "distribution_percent 0..100 expected, %d value%s "
                    "outside",
                    out_of_range, out_of_range == 1 ? " is" : "s are");
    add_problem(L, list);
  } else if (given == n && sum != 100) {
    push_step_field(L, seq);
    lua_pushfstring(L, "distribution_percent values sum to %d, 100 expected",
                    (int)sum);
    add_problem(L, list);
  }
}

static void check_follow_ups(lua_State *L, int list, int store) {
  int i, n, top = lua_gettop(L);
  unsigned steps = 0;
  lua_rawgeti(L, store, CS_SLOT(F_SEQUENCES));
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_settop(L, top);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  if (n > MAX_FOLLOW_UPS) {
    lua_pushliteral(L, "sequences");
    lua_pushfstring(L, "at most %d follow-ups expected, got %d", MAX_FOLLOW_UPS,
                    n);
    add_problem(L, list);
  }
  for (i = 1; i <= n; i++) {
    lua_Integer step;
    lua_rawgeti(L, top + 1, i); /* follow-up */
    lua_getfield(L, -1, "step_number");
    if (!cs_tointeger(L, -1, &step) || step < 2 || step > 4) {
      lua_pushfstring(L, "sequences[%d].step_number", i);
      lua_pushliteral(L, "step 2..4 expected");
      add_problem(L, list);
    } else if (steps & (1u << step)) {
      lua_pushfstring(L, "sequences[%d].step_number", i);
      lua_pushfstring(L, "step %d is used by another follow-up", (int)step);
      add_problem(L, list);
    } else {
      steps |= 1u << step;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "variants");
    check_step(L, list, lua_gettop(L), i);
    lua_settop(L, top + 1);
  }
  lua_settop(L, top);
}

/* The window is compared in minutes of the day, each unset part taking the
 * server's default (9:00-17:00), as the server would fill them. */
static void check_window(lua_State *L, int list, int store) {
  lua_Integer sh = int_or(L, store, F_WINDOW_START, DEFAULT_WINDOW_START);
  lua_Integer sm = int_or(L, store, F_WINDOW_START_MINUTE, 0);
  lua_Integer eh = int_or(L, store, F_WINDOW_END, DEFAULT_WINDOW_END);
  lua_Integer em = int_or(L, store, F_WINDOW_END_MINUTE, 0);
  if (eh == 24 && em != 0) {
    lua_pushliteral(L, "sending_window_end_minute");
    lua_pushfstring(L, "0 expected when sending_window_end is 24, got %d",
                    (int)em);
    add_problem(L, list);
  }
  /* in floating point: _apply stores the server's numbers unchecked, and
   * a huge one would overflow an integer product */
  if ((lua_Number)eh * 60 + (lua_Number)em <=
      (lua_Number)sh * 60 + (lua_Number)sm) {
    lua_pushliteral(L, "sending_window_end");
    lua_pushfstring(L, "window end %d:%d%d must be after its start %d:%d%d",
                    (int)eh, (int)em / 10, (int)em % 10, (int)sh, (int)sm / 10,
                    (int)sm % 10);
    add_problem(L, list);
  }
}

/* Ramp-up raises an inbox's daily volume by ramp_up_increment a day up to
 * ramp_up_max_limit. Its numbers only mean something when it is enabled:
 * changing them with ramp-up off is reported (the server's own defaults,
 * which come back with every campaign, are not). When enabled, the cap
 * must not be below one step. daily_limit_per_inbox is not compared: it is
 * a separate cap, the lower of the two wins, and no pair contradicts. */
static void check_ramp_up(lua_State *L, int list, int store, uint32_t dirty) {
  static const int nums[] = {F_RAMP_INCREMENT, F_RAMP_MAX};
  int enabled, i;
  lua_rawgeti(L, store, CS_SLOT(F_RAMP_ENABLED));
  enabled = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!enabled) {
    for (i = 0; i < 2; i++) {
      int f = nums[i];
      lua_rawgeti(L, store, CS_SLOT(f));
      if ((dirty & ((uint32_t)1 << f)) && !lua_isnil(L, -1)) {
        lua_pushstring(L, cs_campaign_fields[f].name);
        lua_pushliteral(L, "has no effect unless ramp_up_enabled is true");
        add_problem(L, list);
      }
      lua_pop(L, 1);
    }
  } else {
    lua_Integer inc =
        int_or(L, store, F_RAMP_INCREMENT, DEFAULT_RAMP_INCREMENT);
    lua_Integer max = int_or(L, store, F_RAMP_MAX, DEFAULT_RAMP_MAX);
    if (max < inc) {
      lua_pushliteral(L, "ramp_up_max_limit");
      lua_pushfstring(L, "at least ramp_up_increment (%d) expected, got %d",
                      (int)inc, (int)max);
      add_problem(L, list);
    }
  }
}

/* c:validate() -> true | nil, {{field=, message=}, ...}: every problem at
 * once, so a user fixes them in one go. Never raises on a campaign whose
 * fields passed their own checks. */
int cs_campaign_validate(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int store, list;
  if (c->validated) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  cs_getuservalue(L, 1);
  store = lua_gettop(L);
  lua_newtable(L);
  list = lua_gettop(L);
  lua_rawgeti(L, store, CS_SLOT(F_ID));
  lua_rawgeti(L, store, CS_SLOT(F_NAME));
  if (lua_isnil(L, -1) && lua_isnil(L, -2)) {
    lua_pushliteral(L, "name");
    lua_pushliteral(L, "required to create a campaign");
    add_problem(L, list);
  }
  lua_settop(L, list);
  lua_rawgeti(L, store, CS_SLOT(F_VARIANTS));
  /* none yet is a draft's state (the server's launch check asks for them);
   * a follow-up always needs its own */
  if (lua_type(L, -1) == LUA_TTABLE && lua_rawlen(L, -1) > 0)
    check_step(L, list, list + 1, 0);
  lua_settop(L, list);
  check_follow_ups(L, list, store);
  check_window(L, list, store);
  check_ramp_up(L, list, store, c->dirty);
  if (lua_rawlen(L, list) == 0) {
    c->validated = 1;
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

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
int cs_step_as_stored(lua_State *L, int arr) {
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
void cs_push_step_out(lua_State *L, int arr, int copy) {
  int given;
  arr = lua_absindex(L, arr);
  if (lua_rawlen(L, arr) == 0) {
    cs_push_empty_array(L);
    return;
  }
  given = cs_step_as_stored(L, arr);
  if (given && !copy) {
    lua_pushvalue(L, arr);
    return;
  }
  cs_push_copy(L, arr);
  if (!given) spread(L, lua_gettop(L));
}
