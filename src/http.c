/* http.c: placeholder until the http part lands. */
#include "core.h"

void cs_http_open(lua_State *L) { (void)L; }
