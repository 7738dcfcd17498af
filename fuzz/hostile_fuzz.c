/* hostile_fuzz.c: libFuzzer target for every C entry point that reads Lua
 * values, fed hostile ones. fuzz/hostile_driver.lua decodes the input into
 * calls of core.http and http_perform (request tables; the URL and any
 * proxy are always 127.0.0.1:1, so a transfer is refused at once and
 * nothing leaves the machine), parse_response and server_wait (headers
 * tables), the error type (core.error, __tostring), the campaign setters,
 * add_variant, add_sequence, _apply (server data), csv_preflight (its
 * options and mapping), build_request (queries), json_encode and the
 * small checks, each with values that may be tables whose __index,
 * __newindex, __len and __pairs allocate, run the collector, hand out
 * fresh strings and change the tables C is reading; objects whose __gc
 * does the same; cyclic and deeply nested tables; wrong types; strings up
 * to 1 MiB. Each call runs under pcall: a Lua error is an answer; a crash
 * or a sanitizer report is a bug. */
#define DRIVER "hostile_driver.lua"
#include "lua_harness.h"
