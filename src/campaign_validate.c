/* campaign_validate.c: the rules that span fields, c:validate() -> true |
 * nil, problems: a name or an id, variants per step and their percentages,
 * follow-up steps, the sending window, ramp-up. A passed answer is cached
 * (c->validated) until a field it reads changes: it reads the store only
 * through read_field(), which refuses a field the table does not mark
 * CS_VALIDATED, so the mask cs_store_changed tests cannot fall behind.
 * Calls: the Lua API on the campaign's store (reads only); no check of a
 * single value (campaign_setters.c) and no request. */
#include <stdlib.h>

#include "campaign.h"
#include "request.h"

#define MAX_VARIANTS 4
#define MAX_FOLLOW_UPS 3

/* [-0, +1] Pushes store[field f]. validate() reads the store through here
 * alone, so a field read without CS_VALIDATED in the table is an error at
 * the first run of the rule, not a cached "pass" that outlives a change. */
static void read_field(lua_State *L, int store, int f) {
  if (!(CS_VALIDATE_READS & ((uint32_t)1 << f)))
    luaL_error(L, "validate() reads '%s', not marked CS_VALIDATED",
               cs_campaign_fields[f].name);
  lua_rawgeti(L, store, CS_SLOT(f));
}

/* [-2, +0] Appends {field = <at -2>, message = <at -1>} to the list:
 * stack: field message -> problem field message (insert) -> problem. */
static void add_problem(lua_State *L, int list) {
  lua_createtable(L, 0, 2);
  lua_insert(L, -3);
  lua_setfield(L, -3, "message");
  lua_setfield(L, -2, "field");
  lua_rawseti(L, list, (int)lua_rawlen(L, list) + 1);
}

static lua_Integer int_or_default(lua_State *L, int store, int f) {
  lua_Integer v;
  read_field(L, store, f);
  if (!cs_tointeger(L, -1, &v)) { /* unset, or odd server data */
    /* the server's default (spec 6.1): the field table's, the one place
     * it is written */
    const char *def = cs_campaign_fields[f].def;
    v = def ? (lua_Integer)strtol(def, NULL, 10) : 0;
  }
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
  read_field(L, store, F_SEQUENCES);
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
    lua_rawgeti(L, top + 1, i);         /* stack: sequences follow-up */
    lua_getfield(L, -1, "step_number"); /* stack: ... follow-up step */
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
    lua_getfield(L, -1, "variants"); /* stack: ... follow-up variants */
    check_step(L, list, lua_gettop(L), i);
    lua_settop(L, top + 1);
  }
  lua_settop(L, top);
}

/* The window is compared in minutes of the day, each unset part taking the
 * server's default (9:00-17:00), as the server would fill them. */
static void check_window(lua_State *L, int list, int store) {
  lua_Integer sh = int_or_default(L, store, F_WINDOW_START);
  lua_Integer sm = int_or_default(L, store, F_WINDOW_START_MINUTE);
  lua_Integer eh = int_or_default(L, store, F_WINDOW_END);
  lua_Integer em = int_or_default(L, store, F_WINDOW_END_MINUTE);
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
  read_field(L, store, F_RAMP_ENABLED);
  enabled = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!enabled) {
    for (i = 0; i < 2; i++) {
      int f = nums[i];
      read_field(L, store, f);
      if ((dirty & ((uint32_t)1 << f)) && !lua_isnil(L, -1)) {
        lua_pushstring(L, cs_campaign_fields[f].name);
        lua_pushliteral(L, "has no effect unless ramp_up_enabled is true");
        add_problem(L, list);
      }
      lua_pop(L, 1);
    }
  } else {
    lua_Integer inc = int_or_default(L, store, F_RAMP_INCREMENT);
    lua_Integer max = int_or_default(L, store, F_RAMP_MAX);
    if (max < inc) {
      lua_pushliteral(L, "ramp_up_max_limit");
      lua_pushfstring(L, "at least ramp_up_increment (%d) expected, got %d",
                      (int)inc, (int)max);
      add_problem(L, list);
    }
  }
}

/* Runs every rule on the campaign at 1: [-0, +1] true, or [-0, +2] nil
 * and the list of problems. A pass is remembered in c->validated. */
static int validate(lua_State *L, cs_campaign *c) {
  int store, list;
  lua_settop(L, 1);
  cs_getuservalue(L, 1);
  store = lua_gettop(L);
  lua_newtable(L);
  list = lua_gettop(L); /* stack: c store list */
  read_field(L, store, F_ID);
  read_field(L, store, F_NAME); /* stack: c store list id name */
  if (lua_isnil(L, -1) && lua_isnil(L, -2)) {
    lua_pushliteral(L, "name");
    lua_pushliteral(L, "required to create a campaign");
    add_problem(L, list);
  }
  lua_settop(L, list);
  read_field(L, store, F_VARIANTS); /* stack: c store list variants */
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
  lua_insert(L, -2); /* stack: c store nil list */
  return 2;
}

/* c:validate() -> true | nil, {{field=, message=}, ...}: every problem at
 * once, so a user fixes them in one go. Never raises on a campaign whose
 * fields passed their own checks. A remembered pass answers at once. */
int cs_campaign_validate(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  if (c->validated) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return validate(L, c);
}

/* c:_validate_fresh(): validate() run afresh whatever it remembers, and
 * leaving what it remembers as it was. The cache spec and the setters
 * fuzzer compare the two after every change. */
int cs_campaign_validate_fresh(lua_State *L) {
  cs_campaign *c = cs_check_campaign(L, 1);
  int remembered = c->validated, n = validate(L, c);
  c->validated = remembered;
  return n;
}
