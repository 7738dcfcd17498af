/* util.h: small helpers shared by the C files of coldsend.core. */
#ifndef COLDSEND_UTIL_H
#define COLDSEND_UTIL_H

#include <stddef.h>

#include "compat.h"

/* 1 when s (length len) is a canonical 8-4-4-4-12 hexadecimal UUID. */
int cs_is_uuid(const char *s, size_t len);

/* Seconds on a monotonic clock, for deadlines and rate limiting. */
double cs_monotonic(void);

/* Sorts the strings at 1..n of the plain list at t byte-wise, in C: C
 * never calls a function a user can replace, such as table.sort. */
void cs_sort_strings(lua_State *L, int t, int n);

/* Pushes a deep copy of the value at idx (a non-table as it is). A table
 * met twice is copied once and shared; a cycle, or nesting past 1000
 * levels, raises. */
void cs_push_copy(lua_State *L, int idx);

/* c lower-cased when it is an ASCII capital, else c itself. */
static inline char cs_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Length of the longest prefix of s no longer than max that does not end in
 * the middle of a UTF-8 sequence. */
size_t cs_utf8_cut(const char *s, size_t len, size_t max);

/* Case-insensitive (ASCII) search of needle, written in lower case, in
 * s[0..len); the first match or NULL. */
const char *cs_find_nocase(const char *s, size_t len, const char *needle);

#endif
