/* lua_harness.h: what the Lua-driven fuzz targets share: a fresh lua_State
 * per input with coldsend.core preloaded, an allocator that fails on cue,
 * and a Lua driver (fuzz/<target>_driver.lua) run under lua_pcall.
 *
 * A fresh state per input keeps every crash reproducible from its input
 * alone, and lets LeakSanitizer see C memory the module forgets to free
 * once lua_close has run every finaliser.
 *
 * Input: byte 0 >= 0xF0 turns on allocation failure: the (1 + ((b0 & 0x0F)
 * << 8 | b1))th allocation that grows memory fails, and every later one, so
 * "not enough memory" is raised in the middle of the module's C code (the
 * pattern it must survive: no leak, no half-built object). Otherwise byte 0
 * is skipped. The rest goes to the driver.
 *
 * The driver returns a function(input, userdata); a Lua error raised by the
 * module is fine (the driver catches those with pcall), an error escaping
 * the driver is an invariant it found broken: abort, so libFuzzer keeps the
 * input. */
#ifndef COLDSEND_LUA_HARNESS_H
#define COLDSEND_LUA_HARNESS_H

#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_coldsend_core(lua_State *L);

/* the tree's fuzz/ (mk/fuzz.mk sets it) */
#ifndef FUZZ_DIR
#define FUZZ_DIR "fuzz"
#endif

typedef struct harness_alloc {
  size_t used, limit;
  long fail_after; /* < 0: never */
  int failed;      /* an allocation was refused */
} harness_alloc;

/* Lua's allocator contract: ptr NULL means osize is a type tag, not a size;
 * shrinking and freeing never fail. */
static void *harness_realloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  harness_alloc *a = (harness_alloc *)ud;
  size_t old = ptr ? osize : 0;
  void *p;
  if (nsize == 0) {
    a->used -= old;
    free(ptr);
    return NULL;
  }
  if (nsize > old) {
    if (a->used + (nsize - old) > a->limit) {
      a->failed = 1;
      return NULL;
    }
    if (a->fail_after == 0) {
      a->failed = 1;
      return NULL;
    }
    if (a->fail_after > 0) a->fail_after--;
  }
  p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  a->used = a->used - old + nsize;
  return p;
}

static char *harness_driver;
static size_t harness_driver_len;

/* lua-cjson's decoder keeps its scratch buffer in malloc'd memory and
 * loses it when a Lua error (here: an injected allocation failure) cuts a
 * decode short. That leak is cjson's, not ours: it is suppressed by module
 * name, which needs cjson.so to stay loaded (and named in the stacks)
 * after lua_close has dlclose'd it; RTLD_NODELETE does that, and spares
 * reloading it for every input. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:cjson.so\n";
}

static void pin_cjson(void) {
  lua_State *L = luaL_newstate();
  const char *path;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushliteral(L, "cjson");
  lua_getfield(L, -3, "cpath");
  lua_call(L, 2, 1);
  path = lua_tostring(L, -1);
  if (path == NULL || dlopen(path, RTLD_NOW | RTLD_NODELETE) == NULL) {
    fprintf(stderr, "fuzz: lua-cjson not found in package.cpath\n");
    exit(2);
  }
  lua_close(L);
}

/* Reads the driver once, at start-up. */
static void harness_init(const char *path) {
  FILE *f = fopen(path, "rb");
  long n;
  pin_cjson();
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "fuzz: cannot read the driver %s\n", path);
    exit(2);
  }
  harness_driver = (char *)malloc((size_t)n + 1);
  if (harness_driver == NULL ||
      fread(harness_driver, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "fuzz: cannot read the driver %s\n", path);
    exit(2);
  }
  harness_driver_len = (size_t)n;
  fclose(f);
}

static int harness_run(const uint8_t *data, size_t size) {
  harness_alloc a = {0, (size_t)256 << 20, -1, 0};
  lua_State *L;
  int rc;
  long fail_after = -1;
  if (size < 1) return 0;
  if (data[0] >= 0xF0) {
    if (size < 2) return 0;
    fail_after = 1 + (long)(((data[0] & 0x0F) << 8) | data[1]);
    data += 2, size -= 2;
  } else {
    data += 1, size -= 1;
  }
  L = lua_newstate(harness_realloc, &a);
  if (L == NULL) abort();
  luaL_openlibs(L);
  /* the drivers' shared helpers (fuzz/driver_input.lua) */
  lua_getglobal(L, "package");
  lua_pushliteral(L, FUZZ_DIR "/?.lua");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_coldsend_core);
  lua_setfield(L, -2, "coldsend.core");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, harness_driver, harness_driver_len, "=driver") !=
          LUA_OK ||
      lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: driver failed to load: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pushlstring(L, (const char *)data, size);
  lua_newuserdatauv(L, 16, 1); /* a plain userdata for the drivers' values */
  a.fail_after = fail_after;
  rc = lua_pcall(L, 2, 0, 0);
  a.fail_after = -1;
  /* with memory failing, the driver's own checks may fail too */
  if (rc != LUA_OK && !a.failed) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "fuzz: invariant broken: %s\n", msg ? msg : "(no message)");
    abort();
  }
  lua_close(L);
  return 0;
}

/* The libFuzzer entry points; the target file defines DRIVER (a file
 * name under FUZZ_DIR, which mk/fuzz.mk sets to the tree's fuzz/). */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  harness_init(FUZZ_DIR "/" DRIVER);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return harness_run(data, size);
}

#endif
