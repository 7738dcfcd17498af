/* csv_file.c: the coldsend.csv userdata of core.csv_open(path) (read,
 * rows, row, line, offset, record_offset, close), and the registration of
 * the CSV functions of coldsend.core, core.email_problem(s) included.
 * Calls: the Lua API, the reader (csv_reader.c) over a file descriptor,
 * email_check.c; csv_preflight.c opens its reader through here. */
#define _POSIX_C_SOURCE 200809L
#include "csv_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

long cs_csv_fd_source(void *ctx, char *buf, size_t size) {
  return (long)read(*(int *)ctx, buf, size);
}

static cs_csv_file *check_csv(lua_State *L, int idx) {
  cs_csv_file *f = (cs_csv_file *)luaL_checkudata(L, idx, CS_CSV_TYPE);
  if (f->fd < 0) luaL_error(L, "attempt to use a closed " CS_CSV_TYPE);
  return f;
}

void cs_csv_release(cs_csv_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  cs_csv_free(&f->r);
  free(f->path);
  f->path = NULL;
}

static int csv_close(lua_State *L) {
  cs_csv_release((cs_csv_file *)luaL_checkudata(L, 1, CS_CSV_TYPE));
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes an open reader, or nil, message, errno (like io.open) and returns
 * 0. The userdata exists, zeroed, before the file is opened, so an error in
 * between leaves nothing for anyone but __gc. */
int cs_csv_push_reader(lua_State *L, const char *path, struct stat *st) {
  int err;
  cs_csv_file *f = (cs_csv_file *)cs_newuserdata(L, sizeof *f);
  memset(f, 0, sizeof *f);
  f->fd = -1;
  cs_csv_init(&f->r, cs_csv_fd_source, &f->fd);
  luaL_setmetatable(L, CS_CSV_TYPE);
  f->path = strdup(path);
  if (f->path == NULL) return luaL_error(L, "out of memory");
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd >= 0 && fstat(f->fd, st) == 0 && !S_ISDIR(st->st_mode)) return 1;
  err = f->fd < 0 || !S_ISDIR(st->st_mode) ? errno : EISDIR;
  cs_csv_release(f);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(err));
  lua_pushinteger(L, err);
  return 0;
}

static int csv_open(lua_State *L) {
  struct stat st;
  return cs_csv_push_reader(L, luaL_checkstring(L, 1), &st) ? 1 : 3;
}

static void push_record(lua_State *L, const cs_csv *r) {
  size_t i, len;
  lua_createtable(L, (int)r->nfields, 0);
  for (i = 0; i < r->nfields; i++) {
    const char *s = cs_csv_field(r, i, &len);
    lua_pushlstring(L, s, len);
    lua_rawseti(L, -2, (int)i + 1);
  }
}

/* Data errors are results (nil, message), like io.read: a caller looping
 * over a file wants to report them, not to catch them. */
static int csv_read(lua_State *L) {
  cs_csv_file *f = check_csv(L, 1);
  switch (cs_csv_next(&f->r)) {
    case CS_CSV_RECORD:
      push_record(L, &f->r);
      return 1;
    case CS_CSV_EOF:
      lua_pushnil(L);
      return 1;
    default:
      lua_pushnil(L);
      lua_pushstring(L, f->r.message);
      return 2;
  }
}

/* The generic-for iterator of reader:rows(): there a data error can only
 * be raised. */
static int csv_rows_step(lua_State *L) {
  cs_csv_file *f = check_csv(L, 1);
  switch (cs_csv_next(&f->r)) {
    case CS_CSV_RECORD:
      push_record(L, &f->r);
      return 1;
    case CS_CSV_EOF:
      return 0;
    default:
      return luaL_error(L, "%s", f->r.message);
  }
}

static int csv_rows(lua_State *L) {
  check_csv(L, 1);
  lua_pushcfunction(L, csv_rows_step);
  lua_pushvalue(L, 1);
  return 2;
}

static int csv_row(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_csv(L, 1)->r.record);
  return 1;
}

static int csv_line(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_csv(L, 1)->r.record_line);
  return 1;
}

static int csv_offset(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_csv(L, 1)->r.next_offset);
  return 1;
}

static int csv_record_offset(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_csv(L, 1)->r.record_offset);
  return 1;
}

static int csv_tostring(lua_State *L) {
  cs_csv_file *f = (cs_csv_file *)luaL_checkudata(L, 1, CS_CSV_TYPE);
  if (f->fd < 0)
    lua_pushliteral(L, CS_CSV_TYPE " (closed)");
  else
    lua_pushfstring(L, CS_CSV_TYPE " %s row %d", f->path, (int)f->r.record);
  return 1;
}

/* core.email_problem(s) -> nil | reason: the row check, for single leads. */
static int csv_email_problem(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *why = cs_email_problem(s, len);
  if (why == NULL) return 0;
  lua_pushstring(L, why);
  return 1;
}

static const luaL_Reg csv_methods[] = {
    {"read", csv_read},     {"rows", csv_rows},
    {"row", csv_row},       {"line", csv_line},
    {"offset", csv_offset}, {"record_offset", csv_record_offset},
    {"close", csv_close},   {NULL, NULL}};

static const luaL_Reg csv_metamethods[] = {{"__gc", csv_close},
                                           {"__close", csv_close},
                                           {"__tostring", csv_tostring},
                                           {NULL, NULL}};

static const luaL_Reg csv_funcs[] = {{"csv_open", csv_open},
                                     {"csv_preflight", cs_csv_preflight},
                                     {"email_problem", csv_email_problem},
                                     {NULL, NULL}};

void cs_csv_open(lua_State *L) {
  cs_newmetatable(L, CS_CSV_TYPE);
  luaL_setfuncs(L, csv_metamethods, 0);
  lua_newtable(L);
  luaL_setfuncs(L, csv_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, csv_funcs, 0);
}
