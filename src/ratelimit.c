/* ratelimit.c: the in-process rings of coldsend.ratelimit (its memory
 * store), and a request's reservation and settlement on them in one C call
 * each.
 *
 * Why C: on Lua 5.4 every VM instruction costs about 45 machine
 * instructions and the limiter's acquire + done were ~140 of them (6.6k per
 * request, the target is 3k); the Lua path had already been cut to the
 * reads it needs, so fewer VM instructions meant fewer checks, which the
 * exact sliding window cannot drop. One C call for each of acquire and
 * done does the same arithmetic: 6.5k -> 2.1k per request on Lua 5.4. Not
 * used on LuaJIT, whose compiled Lua path costs under 1k and would pay as
 * much for the calls into C alone (1.3-1.4k measured). The other stores
 * (ratelimit_ngx's shared dict, a caller's own) keep the Lua path,
 * and so does all that is rare: the server's headers (`tighten`, called
 * back from `done` only when there is something to read), `available`,
 * and the pinning of stores (ratelimit.lua's `pin`).
 *
 * A ring is a userdata that reads like the Lua path's table ring: `head`,
 * `till`, `left`, slot numbers 0 .. limit-1 (the instant each frees, nil
 * when never taken), plus the store's `busy_until` and `pinned` on the
 * key's hold ring; `till`, `left`, `busy_until` and `pinned` can be
 * written. Its slots grow as they are first taken (a ring of 1,000,000
 * slots costs nothing until used). Each slot also keeps the reservation
 * holding it (its head number and lease end), so a ticket is only that
 * head number: a slot is still the ticket's while its owner and free
 * instant are the ones the reservation wrote, which is what the Lua path's
 * comparison of the slot with the ticket's lease end tells.
 *
 * Numbers come back as integers where the Lua path's arithmetic would have
 * made integers (integer clock, lease and period), floats otherwise. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define RING_MT "coldsend.ratelimit.ring"
#define MIN_WAIT 0.001
#define UNSET (-HUGE_VAL)
#define MAX_HEAD ((lua_Integer)9007199254740992.0) /* 2^53 */

#if LUA_VERSION_NUM >= 503
#define is_int(L, i) lua_isinteger((L), (i))
#else
#define is_int(L, i) 0
#endif

/* a number and whether the Lua path would hold it as an integer */
typedef struct {
  double v;
  int i;
} num;

typedef struct {
  double free_at;    /* when the slot frees; UNSET: never taken */
  double ends;       /* the lease end of the reservation holding it */
  lua_Integer owner; /* that reservation's head number */
  int free_int;
} slot;

typedef struct {
  lua_Integer limit; /* slots (0: the key's hold, which has none) */
  lua_Integer head;  /* reservations so far */
  lua_Integer cap;   /* slots allocated */
  slot *slots;
  num till, left; /* the server's hold; till.v UNSET, left.v NaN: unset */
  num busy_until; /* the hold ring: the store's last window end */
  int pinned;     /* the hold ring: the store is in its clock's pins */
} ring;

/* one limiter: its key's hold and its windows' rings and periods */
typedef struct {
  ring *hold, *r[2];
  int n;
  num period[2];
  num longest;
  int pinning; /* its store is pinned while busy (ratelimit.lua's `pin`) */
} limiter;

static void push_num(lua_State *L, num x) {
#if LUA_VERSION_NUM >= 503
  if (x.i && x.v == floor(x.v) && fabs(x.v) < 9007199254740992.0) {
    lua_pushinteger(L, (lua_Integer)x.v);
    return;
  }
#endif
  lua_pushnumber(L, x.v);
}

static num to_num(lua_State *L, int i) {
  num x;
  x.v = luaL_checknumber(L, i);
  x.i = is_int(L, i);
  return x;
}

static num sum(num a, num b) {
  num x;
  x.v = a.v + b.v;
  x.i = a.i && b.i;
  return x;
}

static ring *check_ring(lua_State *L, int i) {
  return (ring *)luaL_checkudata(L, i, RING_MT);
}

/* The slot `s` (< limit), allocated if `grow`; NULL when it never was. */
static slot *ring_slot(lua_State *L, ring *g, lua_Integer s, int grow) {
  if (s < g->cap) return &g->slots[s];
  if (!grow) return NULL;
  {
    lua_Integer cap = g->cap ? g->cap * 2 : 16, k;
    slot *p;
    if (cap <= s) cap = s + 1;
    if (cap > g->limit) cap = g->limit;
    p = (slot *)realloc(g->slots, (size_t)cap * sizeof(slot));
    if (p == NULL)
      luaL_error(L, "coldsend.ratelimit: out of memory for a ring");
    for (k = g->cap; k < cap; k++) {
      p[k].free_at = UNSET;
      p[k].ends = UNSET;
      p[k].owner = -1;
      p[k].free_int = 0;
    }
    g->slots = p;
    g->cap = cap;
    return &p[s];
  }
}

/* core.ratelimit_ring(limit): an empty ring of `limit` slots (0: a hold) */
static int l_ring(lua_State *L) {
  lua_Integer limit;
  ring *g;
  if (!cs_tointeger(L, 1, &limit) || limit < 0)
    return luaL_argerror(L, 1, "slot count (integer >= 0) expected");
  g = (ring *)lua_newuserdata(L, sizeof(ring));
  memset(g, 0, sizeof *g);
  g->limit = limit;
  g->till.v = UNSET;
  g->left.v = NAN;
  g->busy_until.v = -HUGE_VAL;
  luaL_setmetatable(L, RING_MT);
  return 1;
}

static int ring_gc(lua_State *L) {
  ring *g = check_ring(L, 1);
  free(g->slots);
  g->slots = NULL;
  g->cap = 0;
  return 0;
}

static int ring_index(lua_State *L) {
  ring *g = check_ring(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer s;
    slot *p;
    if (!cs_tointeger(L, 2, &s) || s < 0 || s >= g->limit) return 0;
    p = ring_slot(L, g, s, 0);
    if (p == NULL || p->free_at == UNSET) return 0;
    push_num(L, (num){p->free_at, p->free_int});
    return 1;
  } else {
    const char *k = lua_tostring(L, 2);
    if (k == NULL) return 0;
    if (strcmp(k, "head") == 0) {
      lua_pushinteger(L, g->head);
    } else if (strcmp(k, "till") == 0) {
      if (g->till.v == UNSET) return 0;
      push_num(L, g->till);
    } else if (strcmp(k, "left") == 0) {
      if (isnan(g->left.v)) return 0;
      push_num(L, g->left);
    } else if (strcmp(k, "busy_until") == 0) {
      push_num(L, g->busy_until);
    } else if (strcmp(k, "pinned") == 0) {
      lua_pushboolean(L, g->pinned);
    } else {
      return 0;
    }
    return 1;
  }
}

/* Writes of the Lua path (a store wrapping the memory store's rings): a
 * slot written there has no owner, so no C ticket settles it. */
static int ring_newindex(lua_State *L) {
  ring *g = check_ring(L, 1);
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer s;
    slot *p;
    if (!cs_tointeger(L, 2, &s) || s < 0 || s >= g->limit) {
      lua_pushinteger(L, g->limit); /* (an int would cut 3e9 slots) */
      return luaL_error(L, "coldsend.ratelimit: no slot %s in a ring of %s",
                        lua_tostring(L, 2), lua_tostring(L, -1));
    }
    p = ring_slot(L, g, s, 1);
    p->free_at = luaL_checknumber(L, 3);
    p->free_int = is_int(L, 3);
    p->ends = UNSET;
    p->owner = -1;
  } else if (strcmp(k, "pinned") == 0) {
    g->pinned = lua_toboolean(L, 3);
  } else if (strcmp(k, "till") == 0) {
    g->till = to_num(L, 3);
  } else if (strcmp(k, "left") == 0) {
    g->left = to_num(L, 3);
  } else if (strcmp(k, "busy_until") == 0) {
    g->busy_until = to_num(L, 3);
  } else if (strcmp(k, "head") == 0) {
    /* a slot is head % limit: a negative head would be before the slots,
     * one near the integers' end would overflow on the next acquire */
    lua_Integer h;
    if (!cs_tointeger(L, 3, &h) || h < 0 || h > MAX_HEAD)
      return luaL_error(L,
                        "coldsend.ratelimit: bad ring head (integer 0 .. "
                        "2^53 expected, got %s)",
                        lua_type(L, 3) == LUA_TNUMBER ? lua_tostring(L, 3)
                                                      : luaL_typename(L, 3));
    g->head = h;
  } else {
    return luaL_error(
        L, "coldsend.ratelimit: a ring's '%s' is written by C only", k);
  }
  return 0;
}

/* the upvalues of the acquire and done closures: the limiter, the rings
 * it points into (so that they live as long) and `tighten`. Not the store:
 * LuaJIT's compiled traces keep the closures they call, and the store must
 * be garbage once its limiters are (its rings then are unreachable). */
enum { UP_LIMITER = 1, UP_TIGHTEN = 5, N_UP = UP_TIGHTEN };

/* The store's requests end no sooner than `busy`: it stays pinned (see
 * ratelimit.lua's `pin`) until then: store.pins[store.fp] = store, with
 * self.store read off the limiter at 1. */
static void keep_pinned(lua_State *L, limiter *m, num busy) {
  ring *hold = m->hold;
  if (!m->pinning || !(busy.v > hold->busy_until.v)) return;
  hold->busy_until = busy;
  if (hold->pinned) return;
  lua_getfield(L, 1, "store");
  lua_getfield(L, -1, "pins");
  if (!lua_toboolean(L, -1)) { /* the Lua path's `if pins` */
    lua_pop(L, 2);
    return;
  }
  lua_getfield(L, -2, "fp");
  lua_pushvalue(L, -3);
  lua_settable(L, -3); /* as the Lua path's pins[store.fp] = store */
  lua_pop(L, 2);
  hold->pinned = 1;
}

/* lim:acquire(now, lease): ratelimit.lua's `reserve` on these rings. */
static int l_acquire(lua_State *L) {
  limiter *m = (limiter *)lua_touserdata(L, lua_upvalueindex(UP_LIMITER));
  num now = to_num(L, 2), lease = {0, 1}, wait = {0, 1}, ends;
  lua_Integer heads[2];
  int i;
  if (lua_toboolean(L, 3)) lease = to_num(L, 3);
  if (m->hold->till.v > now.v)
    wait = (num){m->hold->till.v - now.v, m->hold->till.i && now.i};
  for (i = 0; i < m->n; i++) {
    ring *g = m->r[i];
    slot *p = ring_slot(L, g, g->head % g->limit, 0);
    if (p != NULL && p->free_at > now.v) {
      /* a slot still in flight: ask again after one period at most */
      num w = {p->free_at - now.v, p->free_int && now.i};
      if (w.v > m->period[i].v) w = m->period[i];
      if (w.v > wait.v) wait = w;
    }
    if (g->till.v > now.v) {
      double left = isnan(g->left.v) ? 0 : g->left.v;
      if (left < 1 && g->till.v - now.v > wait.v)
        wait = (num){g->till.v - now.v, g->till.i && now.i};
    }
  }
  if (wait.v > 0) {
    if (wait.v < MIN_WAIT)
      lua_pushnumber(L, MIN_WAIT);
    else
      push_num(L, wait);
    return 1;
  }
  ends = sum(now, lease);
  for (i = 0; i < m->n; i++) {
    ring *g = m->r[i];
    slot *p = ring_slot(L, g, g->head % g->limit, 1);
    p->free_at = ends.v + m->period[i].v;
    p->free_int = ends.i && m->period[i].i;
    p->ends = ends.v;
    p->owner = g->head;
    heads[i] = g->head++;
    if (g->till.v > now.v) {
      /* the allowance the server left this window */
      if (isnan(g->left.v)) g->left = (num){0, 1};
      g->left.v -= 1;
    }
  }
  keep_pinned(L, m, sum(ends, m->longest));
  lua_pushinteger(L, 0);
  if (m->n == 1 || heads[0] == heads[1]) {
    lua_pushinteger(L, heads[0]);
  } else {
    /* rings of one store written by limiters of other windows */
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, heads[0]);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, heads[1]);
    lua_rawseti(L, -2, 2);
  }
  return 2;
}

/* lim:done(ticket, now, headers, now_wall, stated, lowered): ratelimit.lua's
 * `settle` on these rings; the headers go to its `tighten`. */
static int l_done(lua_State *L) {
  limiter *m = (limiter *)lua_touserdata(L, lua_upvalueindex(UP_LIMITER));
  num now;
  int i;
  lua_settop(L, 7);
  now = to_num(L, 3);
  if (lua_toboolean(L, 2)) {
    lua_Integer heads[2];
    /* a ticket that is no head number (1e300: lua_tointeger's cast is
     * undefined before Lua 5.3) settles nothing */
    if (lua_type(L, 2) == LUA_TTABLE) {
      for (i = 0; i < m->n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (!cs_tointeger(L, -1, &heads[i])) heads[i] = -1;
        lua_pop(L, 1);
      }
    } else {
      luaL_checknumber(L, 2);
      if (!cs_tointeger(L, 2, &heads[0])) heads[0] = -1;
      heads[1] = heads[0];
    }
    for (i = 0; i < m->n; i++) {
      ring *g = m->r[i];
      slot *p = heads[i] >= 0 ? ring_slot(L, g, heads[i] % g->limit, 0) : NULL;
      /* a period after the answer, sooner or later, while the slot is
       * still this reservation's */
      if (p != NULL && p->owner == heads[i] && now.v != p->ends &&
          p->free_at == p->ends + m->period[i].v) {
        p->free_at = now.v + m->period[i].v;
        p->free_int = now.i && m->period[i].i;
      }
    }
  }
  if (lua_toboolean(L, 4)) {
    int tighten = !lua_isnil(L, 6) || !lua_toboolean(L, 7);
    if (!tighten) {
      lua_getfield(L, 4, "x-ratelimit-remaining");
      tighten = !lua_isnil(L, -1);
      lua_pop(L, 1);
    }
    if (tighten) {
      lua_pushvalue(L, lua_upvalueindex(UP_TIGHTEN));
      lua_pushvalue(L, 1); /* self */
      lua_pushvalue(L, 4); /* headers */
      lua_pushvalue(L, 3); /* now */
      lua_pushvalue(L, 5); /* now_wall */
      lua_pushvalue(L, 6); /* stated */
      lua_pushvalue(L, 2); /* ticket */
      lua_pushvalue(L, 7); /* lowered */
      lua_call(L, 7, 0);
    }
  }
  keep_pinned(L, m, sum(now, m->longest));
  lua_pushboolean(L, 1);
  return 1;
}

/* core.ratelimit_limiter(hold, r1, p1, r2, p2, longest, pinning, tighten):
 * the acquire and done of one limiter. r2 and p2 are nil with one window;
 * pinning true when its store has pins (ratelimit.lua's `pin`). */
static int l_limiter(lua_State *L) {
  limiter *m;
  int i;
  lua_settop(L, 8);
  m = (limiter *)lua_newuserdata(L, sizeof(limiter));
  memset(m, 0, sizeof *m);
  m->hold = check_ring(L, 1);
  m->n = lua_isnil(L, 4) ? 1 : 2;
  for (i = 0; i < m->n; i++) {
    m->r[i] = check_ring(L, 2 + 2 * i);
    if (m->r[i]->limit < 1)
      return luaL_argerror(L, 2 + 2 * i, "a ring with slots expected");
    m->period[i] = to_num(L, 3 + 2 * i);
  }
  m->longest = to_num(L, 6);
  m->pinning = lua_toboolean(L, 7);
  luaL_checktype(L, 8, LUA_TFUNCTION);
  for (i = 0; i < 2; i++) {
    lua_pushvalue(L, 9); /* the limiter */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 8);
    lua_pushcclosure(L, i == 0 ? l_acquire : l_done, N_UP);
  }
  return 2;
}

void cs_ratelimit_open(lua_State *L) {
  static const luaL_Reg ring_methods[] = {{"__index", ring_index},
                                          {"__newindex", ring_newindex},
                                          {"__gc", ring_gc},
                                          {NULL, NULL}};
  cs_newmetatable(L, RING_MT);
  luaL_setfuncs(L, ring_methods, 0);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_ring);
  lua_setfield(L, -2, "ratelimit_ring");
  lua_pushcfunction(L, l_limiter);
  lua_setfield(L, -2, "ratelimit_limiter");
}
