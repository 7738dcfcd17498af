/* request.h: JSON through lua-cjson and request tables, shared by the C files.
 */
#ifndef COLDSEND_REQUEST_H
#define COLDSEND_REQUEST_H

#include <stddef.h>

#include "compat.h"

/* lua-cjson 2.1 (Debian's) has no empty-array value: an empty array is
 * pushed as this marker, a light userdata no Lua code can make (cjson.null
 * is the NULL one), and encoded as [] (core.EMPTY_ARRAY). */
void cs_push_empty_array(lua_State *L);

/* Pushes the JSON text of the value at idx. Raises on values cjson refuses. */
void cs_json_encode(lua_State *L, int idx);

/* Pushes the decoded value and returns 1, or pushes cjson's message and
 * returns 0. JSON null decodes to cjson.null (a NULL light userdata). */
int cs_json_decode(lua_State *L, const char *s, size_t len, int str_idx);

/* 1 when the value at idx is cjson.null. */
int cs_is_null(lua_State *L, int idx);

/* Pushes {method=, url=base_url..path, body=?}. When body_idx is not 0 the
 * value there is JSON-encoded into body. Such a request has no headers
 * table: Client:_send gives every request its headers, and a body without
 * headers its Content-Type, application/json. */
void cs_push_request(lua_State *L, const char *base_url, const char *method,
                     const char *path, int body_idx);

/* Pushes base_url .. path with one slash between them whatever the base
 * ends with. */
void cs_push_url(lua_State *L, const char *base_url, const char *path);

/* As cs_push_request, with the URL string at url_idx; encoded: the value
 * at body_idx is the body's JSON text already. */
void cs_push_request_to(lua_State *L, const char *method, int url_idx,
                        int body_idx, int encoded);

/* A flat JSON object (strings, booleans, integers cjson writes exactly,
 * nulls) written into a buffer, byte for byte as cjson writes it. Every
 * call answers 0 once something does not fit: the caller then goes the
 * general way (cs_json_encode). */
#define CS_FLAT_MAX 1024
typedef struct {
  char buf[CS_FLAT_MAX];
  size_t n;
  int members;
} cs_flat;
void cs_flat_begin(cs_flat *o);
/* [-0, +0] key: the value at the top (a string, boolean or integer), or
 * null when null is not 0. */
int cs_flat_member(lua_State *L, cs_flat *o, const char *key, int null);
/* [-0, +(0|1)] The object's text pushed, 1; 0 for one with no member. */
int cs_flat_push(lua_State *L, cs_flat *o);

#endif
