/* util.c: small helpers for the C files: clock, sleep, UUID check, a string
 * sort, the deep copy of a Lua table (cycles refused, depth capped), and the
 * byte-level string helpers response.c and error.c share.
 * Calls: the Lua API and libc; no other file of the module. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Writes all of data to fd; 0 or an errno value. */
static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* core.write_private(path, data) -> true | nil, message.
 * Replaces path with data: written to a new file of a unique name beside it
 * (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: never through a planted file or
 * link, never readable by others), flushed, then renamed over path. */
static int util_write_private(lua_State *L) {
  size_t plen, dlen;
  const char *path = luaL_checklstring(L, 1, &plen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  static unsigned long counter = 0;
  int fd = -1, err = 0, tries;
  const char *tmp = NULL;
  if (strlen(path) != plen || plen == 0) {
    lua_pushnil(L);
    lua_pushliteral(L,
                    "bad path (a non-empty string without NUL bytes expected)");
    return 2;
  }
  for (tries = 0; tries < 100; tries++) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    counter++;
    lua_settop(L, 2);
    tmp =
        lua_pushfstring(L, "%s.tmp.%d.%d.%d", path, (int)getpid(),
                        (int)(counter % 1000000), (int)(ts.tv_nsec % 1000000));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              S_IRUSR | S_IWUSR);
    if (fd >= 0 || errno != EEXIST) break;
  }
  if (fd < 0) {
    err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", tmp, strerror(err));
    return 2;
  }
  err = write_all(fd, data, dlen);
  if (err == 0 && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && rename(tmp, path) != 0) err = errno;
  if (err != 0) {
    (void)unlink(tmp);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg util_funcs[] = {{"now", util_now},
                                      {"time", util_time},
                                      {"sleep", util_sleep},
                                      {"is_uuid", util_is_uuid},
                                      {"write_private", util_write_private},
                                      {NULL, NULL}};

void cs_util_open(lua_State *L) {
  luaL_setfuncs(L, util_funcs, 0);
}

/* Orders the n strings of the list at t byte-wise, in C: the global
 * table.sort is the user's to replace, and C calls no function a user can
 * replace. The strings stay anchored in the list while they are sorted. */
typedef struct {
  const char *s;
  size_t len;
  int at; /* the index it came from */
} sort_key;

static int compare_keys(const void *a, const void *b) {
  const sort_key *x = (const sort_key *)a, *y = (const sort_key *)b;
  int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  if (c != 0) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

void cs_sort_strings(lua_State *L, int t, int n) {
  sort_key *keys;
  int i;
  if (n < 2) return;
  keys = (sort_key *)lua_newuserdata(L, (size_t)n * sizeof *keys);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, t, i + 1);
    keys[i].s = lua_tolstring(L, -1, &keys[i].len);
    keys[i].at = i + 1;
    lua_pop(L, 1); /* anchored in the list until it is rewritten */
  }
  qsort(keys, (size_t)n, sizeof *keys, compare_keys);
  lua_createtable(L, n, 0); /* the sorted list, then moved over */
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, t, keys[i].at);
    lua_rawseti(L, -2, i + 1);
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, t, i);
  }
  lua_pop(L, 2);
}

/* ---- copies ------------------------------------------------------------ */

/* A table that contains itself is refused, and copies nested deeper than
 * this raise (a chain built to exhaust the C stack): an error, not a
 * crash. A table met twice is copied once and shared, so the work stays
 * linear however the tables refer to each other. JSON decoded by
 * lua-cjson is at most 1000 deep, so a server's data always fits. */
#define COPY_MAX_DEPTH 1000

/* [-0, +1] seen: stack index of {original = copy, or true while being
 * copied}. Each level holds the key, value and copy of the pair being
 * copied (stack: out key value copy -> out key copy -> out key key
 * copy -> out key), hence luaL_checkstack at each level. */
static void push_copy(lua_State *L, int idx, int depth, int seen) {
  int out, n, keys = 0;
  if (lua_type(L, idx) != LUA_TTABLE) {
    lua_pushvalue(L, idx);
    return;
  }
  if (depth > COPY_MAX_DEPTH)
    luaL_error(L, "table nested deeper than %d levels", COPY_MAX_DEPTH);
  luaL_checkstack(L, 6, "table too deep to copy");
  lua_pushvalue(L, idx);
  lua_rawget(L, seen);
  if (lua_type(L, -1) == LUA_TTABLE) return; /* copied before: shared */
  if (lua_toboolean(L, -1)) luaL_error(L, "table contains itself (a cycle)");
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  /* sized before filling: growing a record key by key rehashes it */
  n = (int)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    keys++;
  }
  lua_createtable(L, n, keys > n ? keys - n : 0);
  out = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    push_copy(L, lua_gettop(L), depth + 1, seen);
    lua_remove(L, -2);
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, out);
  }
  lua_pushvalue(L, idx);
  lua_pushvalue(L, out);
  lua_rawset(L, seen);
}

void cs_push_copy(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) {
    lua_pushvalue(L, idx);
    return;
  }
  lua_newtable(L); /* seen */
  push_copy(L, idx, 1, lua_gettop(L));
  lua_remove(L, -2);
}

size_t cs_utf8_cut(const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return max;
}

const char *cs_find_nocase(const char *s, size_t len, const char *needle) {
  size_t n = strlen(needle), i, j;
  if (n > len) return NULL;
  for (i = 0; i + n <= len; i++) {
    for (j = 0; j < n && cs_lower(s[i + j]) == needle[j]; j++) {
    }
    if (j == n) return s + i;
  }
  return NULL;
}
