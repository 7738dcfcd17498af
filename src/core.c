/* core.c: luaopen_coldsend_core, the only exported symbol of the module.
 * Calls: each file's cs_*_open (core.h) on the module table, and dladdr and
 * dlopen once, so the library stays mapped for the life of the process. */
#define _GNU_SOURCE /* dladdr, RTLD_NODELETE */
#include "core.h"

#include <dlfcn.h>

#if defined(__GNUC__)
#define CS_EXPORT __attribute__((visibility("default")))
#else
#define CS_EXPORT
#endif

/* LuaJIT's lua_close may run the finaliser that dlcloses this library
 * before the __gc of our objects (campaigns, libcurl handles), which would
 * then jump into unmapped code. Pinning the library in memory makes the
 * order harmless on every Lua. */
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)pin_library, &info) && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

CS_EXPORT int luaopen_coldsend_core(lua_State *L) {
  pin_library();
  lua_newtable(L);
  lua_pushliteral(L, COLDSEND_VERSION);
  lua_setfield(L, -2, "_VERSION");
  cs_util_open(L);
  cs_request_open(L);
  cs_campaign_open(L);
  cs_error_open(L);
  cs_response_open(L);
  cs_http_open(L);
  cs_csv_open(L);
  cs_probe_open(L);
  cs_ratelimit_open(L);
  return 1;
}
