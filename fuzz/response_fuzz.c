/* response_fuzz.c: libFuzzer target for core.parse_response(status,
 * headers, body) and the error objects it returns. The input is decoded and
 * checked by fuzz/response_driver.lua: bytes 1-2 the status, byte 3 flags,
 * then "name:value" header lines up to a blank line, then the body. */
#define DRIVER "response_driver.lua"
#include "lua_harness.h"
