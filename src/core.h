/* core.h: how the files of coldsend.core register themselves. Each
 * cs_*_open adds its functions to the module table at the top of the stack. */
#ifndef COLDSEND_CORE_H
#define COLDSEND_CORE_H

#include "compat.h"

#define COLDSEND_VERSION "0.1.0"

void cs_util_open(lua_State *L);      /* util.c: clock, sleep, uuid check */
void cs_campaign_open(lua_State *L);  /* campaign.c: coldsend.campaign */
void cs_error_open(lua_State *L);     /* error.c: coldsend.error type */
void cs_response_open(lua_State *L);  /* response.c: response parsing */
void cs_http_open(lua_State *L);      /* http.c: libcurl transport */
void cs_csv_open(lua_State *L);       /* csv_file.c: CSV reader, pre-flight */
void cs_request_open(lua_State *L);   /* request.c: JSON and request tables */
void cs_probe_open(lua_State *L);     /* probe.c: one diagnostic GET */
void cs_ratelimit_open(lua_State *L); /* ratelimit.c: limiter rings */
void cs_ensure_curl(lua_State *L);    /* http.c: curl_global_init, once */

#endif
