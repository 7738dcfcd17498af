/* setters_fuzz.c: libFuzzer target for the validating setters and methods
 * of the coldsend.campaign userdata. fuzz/setters_driver.lua decodes the
 * input into a sequence of operations: assign a value of any Lua type (nil,
 * booleans, integers, floats with NaN and infinities, strings with NUL,
 * long or broken UTF-8, nested tables, tables whose metamethods raise,
 * functions, userdata, threads) to a field, read a field, or call a method
 * (add_variant, add_sequence, validate, changes, split_evenly, tostring,
 * pairs, _apply, _request, close) with such values, each under pcall.
 * After every operation validate()'s remembered answer must equal a fresh
 * run's (c:_validate_fresh()). */
#define DRIVER "setters_driver.lua"
#include "lua_harness.h"
