/* error.h: what the other files of coldsend.core use of the coldsend.error
 * type (error.c) to build errors of their own. */
#ifndef COLDSEND_ERROR_H
#define COLDSEND_ERROR_H

#include <stddef.h>

#include "compat.h"

/* [-0, +1] Pushes a new plain error table {code=, status=, body=}, the body
 * cut on a character after 2048 bytes and left out when empty; the caller
 * adds its fields, then calls cs_set_error_metatable. */
void cs_push_error(lua_State *L, const char *code, lua_Integer status,
                   const char *body, size_t len);

/* [-0, +0] Gives the table at idx the coldsend.error metatable. */
void cs_set_error_metatable(lua_State *L, int idx);

#endif
