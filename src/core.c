/* core.c: luaopen_coldsend_core, the only exported symbol of the module. */
#include "core.h"

#if defined(__GNUC__)
#define CS_EXPORT __attribute__((visibility("default")))
#else
#define CS_EXPORT
#endif

CS_EXPORT int luaopen_coldsend_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, COLDSEND_VERSION);
  lua_setfield(L, -2, "_VERSION");
  cs_util_open(L);
  cs_request_open(L);
  cs_campaign_open(L);
  cs_response_open(L);
  cs_http_open(L);
  cs_csv_open(L);
  return 1;
}
