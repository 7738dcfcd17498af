/* util.c: clock, sleep and UUID check, exposed to the Lua facade. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <time.h>

#include "core.h"

int cs_is_uuid(const char *s, size_t len) {
  size_t i;
  if (len != 36) return 0;
  for (i = 0; i < 36; i++) {
    char ch = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (ch != '-') return 0;
    } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                 (ch >= 'A' && ch <= 'F'))) {
      return 0;
    }
  }
  return 1;
}

double cs_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int util_now(lua_State *L) {
  lua_pushnumber(L, cs_monotonic());
  return 1;
}

static int util_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

/* Sleeps the whole duration even when a signal interrupts it. */
static int util_sleep(lua_State *L) {
  lua_Number secs = luaL_checknumber(L, 1);
  struct timespec req, rem;
  if (!(secs > 0)) return 0; /* also rejects NaN */
  if (secs > 86400) secs = 86400;
  req.tv_sec = (time_t)secs;
  req.tv_nsec = (long)((secs - (lua_Number)req.tv_sec) * 1e9);
  while (nanosleep(&req, &rem) == -1 && errno == EINTR) req = rem;
  return 0;
}

static int util_is_uuid(lua_State *L) {
  size_t len;
  const char *s;
  if (lua_type(L, 1) != LUA_TSTRING) {
    lua_pushboolean(L, 0);
    return 1;
  }
  s = lua_tolstring(L, 1, &len);
  lua_pushboolean(L, cs_is_uuid(s, len));
  return 1;
}

static const luaL_Reg util_funcs[] = {{"now", util_now},
                                      {"time", util_time},
                                      {"sleep", util_sleep},
                                      {"is_uuid", util_is_uuid},
                                      {NULL, NULL}};

void cs_util_open(lua_State *L) { luaL_setfuncs(L, util_funcs, 0); }
