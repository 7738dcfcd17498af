/* response.c: placeholder until the response part lands. */
#include "core.h"

void cs_response_open(lua_State *L) { (void)L; }
