/* csv_preflight.c: core.csv_preflight(path, opts): one pass over a lead
 * file finding everything the server would refuse (header, mapping, email
 * syntax, duplicate emails by hash, row caps) before anything is sent, and
 * the plan of upload chunks with their byte offsets. One concern, and one
 * function's fixed stack slots (P_*) shared by its helpers, hence its size.
 * Calls: the Lua API (the report is a Lua table), the reader, email_check.c,
 * csv_file.c to open the file, util.h (a sort that calls no Lua). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "csv_file.h"
#include "util.h"

/* Stack slots of csv_preflight, fixed so helpers can name them. */
enum {
  P_PATH = 1,
  P_OPTS,
  P_MAPPING,
  P_READER,
  P_REPORT,
  P_PROBLEMS,
  P_CHUNKS,
  P_SET,    /* userdata: the hash set of emails seen */
  P_PENDING /* {problem index, ...}: duplicates still missing first_row */
};

typedef struct preflight {
  lua_State *L;
  cs_csv *r;
  lua_Integer max_problems, chunk_rows, chunk_bytes;
  lua_Integer problem_count, nproblems;
  /* email set: open addressing over 64-bit hashes, 0 = free slot */
  uint64_t *slots;
  size_t mask, count;
  /* chunk being planned */
  int chunk_open;
  uint64_t chunk_first, chunk_last, chunk_rows_n, chunk_offset, chunk_end;
  lua_Integer duplicates;
} preflight;

/* A valid email waiting for its lookup in the set. Its slot is prefetched
 * when its row is read and probed only after the next row is parsed: the
 * set is bigger than the caches, and the parse hides the miss. */
typedef struct pending_email {
  int active;
  uint64_t hash, row, line;
  size_t len;
  char text[256]; /* a valid email has at most 254 bytes */
} pending_email;

/* Appends a problem and returns its index in the list, or 0 once the cap
 * is reached: the count goes on, the list stops. Pushes nothing. */
static int problem(preflight *p, const char *kind, uint64_t row, uint64_t line,
                   const char *column, const char *fmt, ...) {
  lua_State *L = p->L;
  va_list ap;
  char msg[400];
  p->problem_count++;
  if (p->nproblems >= p->max_problems) return 0;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, (lua_Integer)row);
  lua_setfield(L, -2, "row");
  if (line > 0) {
    lua_pushinteger(L, (lua_Integer)line);
    lua_setfield(L, -2, "line");
  }
  if (column != NULL) {
    lua_pushstring(L, column);
    lua_setfield(L, -2, "column");
  }
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  lua_rawseti(L, P_PROBLEMS, (int)++p->nproblems);
  return (int)p->nproblems;
}

static lua_Integer opt_integer(lua_State *L, const char *name, lua_Integer def,
                               lua_Integer min) {
  lua_Integer v = 0;
  lua_getfield(L, P_OPTS, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  if (!cs_tointeger(L, -1, &v) || v < min)
    luaL_error(
        L, "bad option '%s' (integer >= %d expected, got %s)", name, (int)min,
        lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

/* Allocates the set in a userdata (Lua owns it: an error half-way leaks
 * nothing) and moves the hashes over. */
static void set_resize(preflight *p, size_t cap) {
  uint64_t *old = p->slots;
  size_t i, oldcap = old ? p->mask + 1 : 0;
  uint64_t *slots = (uint64_t *)lua_newuserdata(p->L, cap * sizeof *slots);
  memset(slots, 0, cap * sizeof *slots);
  p->slots = slots;
  p->mask = cap - 1;
  for (i = 0; i < oldcap; i++) {
    size_t j;
    if (old[i] == 0) continue;
    for (j = (size_t)old[i] & p->mask; slots[j]; j = (j + 1) & p->mask) {
    }
    slots[j] = old[i];
  }
  lua_replace(p->L, P_SET); /* the old table becomes garbage */
}

/* 1 when h is new (and now in the set), 0 when it was there already. */
static int set_add(preflight *p, uint64_t h) {
  size_t j;
  /* linear probing stays short below 3/4 full */
  if ((p->count + 1) * 4 > (p->mask + 1) * 3) set_resize(p, (p->mask + 1) * 2);
  for (j = (size_t)h & p->mask; p->slots[j]; j = (j + 1) & p->mask)
    if (p->slots[j] == h) return 0;
  p->slots[j] = h;
  p->count++;
  return 1;
}

/* Once a thousand rows show the average row size, the set is sized for the
 * whole file: one allocation instead of a series of doublings whose old
 * tables would all be alive until the next collection. */
static void set_presize(preflight *p, uint64_t file_size, uint64_t data_start,
                        uint64_t pos, uint64_t rows) {
  uint64_t per_row, estimate, cap = 1;
  if (pos <= data_start || rows == 0) return;
  per_row = (pos - data_start) / rows;
  if (per_row == 0) per_row = 1;
  estimate = (file_size - data_start) / per_row;
  estimate += estimate / 10;
  while (cap * 3 < estimate * 4) cap *= 2;
  if (cap > ((uint64_t)1 << 30)) cap = (uint64_t)1 << 30;
  if (cap > p->mask + 1) set_resize(p, (size_t)cap);
}

static void chunk_close(preflight *p) {
  lua_State *L = p->L;
  if (!p->chunk_open) return;
  p->chunk_open = 0;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)p->chunk_first);
  lua_setfield(L, -2, "first_row");
  lua_pushinteger(L, (lua_Integer)p->chunk_last);
  lua_setfield(L, -2, "last_row");
  lua_pushinteger(L, (lua_Integer)p->chunk_rows_n);
  lua_setfield(L, -2, "rows");
  lua_pushinteger(L, (lua_Integer)p->chunk_offset);
  lua_setfield(L, -2, "offset");
  lua_pushinteger(L, (lua_Integer)(p->chunk_end - p->chunk_offset));
  lua_setfield(L, -2, "length");
  lua_rawseti(L, P_CHUNKS, (int)lua_rawlen(L, P_CHUNKS) + 1);
}

/* Adds the current record to the chunk plan: a chunk is cut before the
 * record that would take it over chunk_rows or, with the header repeated
 * in front, over chunk_bytes. Cuts fall on record boundaries only. */
static void chunk_add(preflight *p, uint64_t header_bytes) {
  cs_csv *r = p->r;
  if (p->chunk_open && (p->chunk_rows_n + 1 > (uint64_t)p->chunk_rows ||
                        header_bytes + r->next_offset - p->chunk_offset >
                            (uint64_t)p->chunk_bytes))
    chunk_close(p);
  if (!p->chunk_open) {
    p->chunk_open = 1;
    p->chunk_first = r->record;
    p->chunk_offset = r->record_offset;
    p->chunk_rows_n = 0;
  }
  p->chunk_rows_n++;
  p->chunk_last = r->record;
  p->chunk_end = r->next_offset;
  if (header_bytes + r->next_offset - r->record_offset >
      (uint64_t)p->chunk_bytes)
    problem(p, "size", r->record, r->record_line, NULL,
            "row is %llu bytes: with the header it exceeds chunk_bytes "
            "(%lld)",
            (unsigned long long)(r->next_offset - r->record_offset),
            (long long)p->chunk_bytes);
}

/* Quoted for a message, shortened: a broken row can hold anything. */
static void quote_value(char *out, size_t size, const char *s, size_t len) {
  size_t i, n = 0;
  for (i = 0; i < len && n + 5 < size; i++)
    out[n++] = (s[i] >= 0x20 && s[i] != 0x7f) ? s[i] : '?';
  if (i < len && n >= 3) n -= 3, memcpy(out + n, "...", 3), n += 3;
  out[n] = '\0';
}

static int find_column(const cs_csv *r, const char *name, size_t nlen, int ci) {
  size_t i, len;
  for (i = 0; i < r->nfields; i++) {
    const char *s = cs_csv_field(r, i, &len);
    if (!ci && len == nlen && memcmp(s, name, len) == 0) return (int)i;
    if (ci) { /* ignoring case and surrounding spaces */
      size_t j;
      while (len > 0 && s[0] == ' ') s++, len--;
      while (len > 0 && s[len - 1] == ' ') len--;
      if (len != nlen) continue;
      for (j = 0; j < len; j++) {
        int a = s[j], b = name[j];
        if (a >= 'A' && a <= 'Z') a += 32;
        if (b >= 'A' && b <= 'Z') b += 32;
        if (a != b) break;
      }
      if (j == len) return (int)i;
    }
  }
  return -1;
}

/* Checks the header: repeated names, mapped columns present. A mapped
 * column is found by exact name, else ignoring case and surrounding spaces
 * (as the server does); report.mapping gets the header's own spelling, so
 * the mapping sent with the upload matches exactly either way. Returns the
 * index of the email column or -1 and leaves its name (or nil) on the
 * stack. */
static int check_header(preflight *p) {
  lua_State *L = p->L;
  cs_csv *r = p->r;
  size_t i, j, len, jlen;
  int email = -1, nkeys = 0, k;
  for (i = 0; i < r->nfields; i++) {
    const char *s = cs_csv_field(r, i, &len);
    for (j = 0; j < i; j++) {
      const char *t = cs_csv_field(r, j, &jlen);
      if (jlen == len && memcmp(s, t, len) == 0) {
        lua_pushlstring(L, s, len);
        problem(p, "header", 1, r->record_line, lua_tostring(L, -1),
                "column '%s' appears twice in the header (columns %d and %d)",
                lua_tostring(L, -1), (int)j + 1, (int)i + 1);
        lua_pop(L, 1);
        break;
      }
    }
  }
  if (lua_isnil(L, P_MAPPING)) { /* the column named "email", any case */
    email = find_column(r, "email", 5, 1);
    if (email < 0)
      problem(p, "header", 1, r->record_line, "email",
              "no email column in the header: name one with "
              "mapping = {email = \"<column>\"}");
  } else {
    /* each pair is copied as it is checked, and only the copy is read
     * after: a finaliser (run by any allocation) may change the mapping.
     * Keys sorted, so that problems come in a stable order. */
    int cols;
    luaL_checkstack(L, 8, "mapping");
    lua_newtable(L); /* cols: field -> column, as checked */
    cols = lua_gettop(L);
    lua_newtable(L); /* cols, keys */
    lua_pushnil(L);
    while (lua_next(L, P_MAPPING)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L,
                   "bad mapping (lead field = \"CSV column\" strings "
                   "expected)");
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, cols); /* cols, keys, key */
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ++nkeys);
    }
    cs_sort_strings(L, lua_gettop(L), nkeys); /* not table.sort */
    lua_newtable(L);                          /* keys, resolved */
    for (k = 1; k <= nkeys; k++) {
      const char *key, *col;
      size_t clen;
      int idx;
      lua_rawgeti(L, -2, k); /* keys, resolved, key */
      key = lua_tostring(L, -1);
      lua_pushvalue(L, -1);
      lua_rawget(L, cols); /* keys, resolved, key, col */
      col = lua_tolstring(L, -1, &clen);
      idx = find_column(r, col, clen, 0);
      if (idx < 0) idx = find_column(r, col, clen, 1);
      if (strcmp(key, "email") == 0) email = idx;
      if (idx < 0) {
        problem(p, "mapping", 1, r->record_line, col,
                "the header has no column '%s' (mapped from lead field "
                "'%s')",
                col, key);
      } else {
        const char *name = cs_csv_field(r, (size_t)idx, &len);
        lua_pushvalue(L, -2);
        lua_pushlstring(L, name, len);
        lua_rawset(L, -5);
      }
      lua_pop(L, 2);
    }
    lua_setfield(L, P_REPORT, "mapping");
    lua_pop(L, 1); /* keys */
    lua_pushliteral(L, "email");
    lua_rawget(L, cols);
    if (lua_isnil(L, -1))
      problem(p, "mapping", 1, r->record_line, NULL,
              "the mapping has no 'email' entry: map the email column, "
              "e.g. mapping = {email = \"Email\"}");
    lua_pop(L, 2); /* the entry, cols */
  }
  if (email >= 0) {
    const char *s = cs_csv_field(r, (size_t)email, &len);
    lua_pushlstring(L, s, len);
  } else {
    lua_pushnil(L);
  }
  return email;
}

/* Looks the pending email up in the set: a duplicate is a problem, listed
 * with its email so that find_first_rows can fill in first_row. */
static void add_pending(preflight *p, pending_email *pe, const char *column) {
  lua_State *L = p->L;
  char shown[100];
  int at;
  if (!pe->active) return;
  pe->active = 0;
  if (set_add(p, pe->hash)) return;
  p->duplicates++;
  quote_value(shown, sizeof shown, pe->text, pe->len);
  at = problem(p, "duplicate", pe->row, pe->line, column,
               "duplicate email '%s'", shown);
  if (at > 0) {
    lua_rawgeti(L, P_PROBLEMS, at);
    lua_pushlstring(L, pe->text, pe->len);
    lua_setfield(L, -2, "email");
    lua_pop(L, 1);
    lua_pushinteger(L, at);
    lua_rawseti(L, P_PENDING, (int)lua_rawlen(L, P_PENDING) + 1);
  }
}

/* Second pass, only when duplicates were listed: the set keeps hashes, not
 * rows, so the first occurrences are found by reading again up to the last
 * listed duplicate. Costs nothing for clean files. */
static void find_first_rows(preflight *p, cs_csv_file *f, int email) {
  lua_State *L = p->L;
  lua_Integer n = (lua_Integer)lua_rawlen(L, P_PENDING), i;
  uint64_t last = 0, *hashes, *firsts;
  size_t cap = 16, mask, j, len;
  cs_csv *r = &f->r;
  if (n == 0) return;
  while (cap < (size_t)n * 2) cap *= 2;
  mask = cap - 1;
  hashes = (uint64_t *)lua_newuserdata(L, cap * 2 * sizeof *hashes);
  memset(hashes, 0, cap * 2 * sizeof *hashes);
  firsts = hashes + cap;
  for (i = 1; i <= n; i++) {
    uint64_t h;
    lua_rawgeti(L, P_PENDING, (int)i);
    lua_rawgeti(L, P_PROBLEMS, (int)lua_tointeger(L, -1));
    lua_getfield(L, -1, "row");
    if ((uint64_t)lua_tointeger(L, -1) > last)
      last = (uint64_t)lua_tointeger(L, -1);
    lua_getfield(L, -2, "email");
    {
      const char *s = lua_tolstring(L, -1, &len);
      h = cs_email_hash(s, len);
    }
    for (j = (size_t)h & mask; hashes[j] && hashes[j] != h;
         j = (j + 1) & mask) {
    }
    hashes[j] = h;
    lua_pop(L, 4);
  }
  /* read again from the top */
  if (lseek(f->fd, 0, SEEK_SET) != 0) {
    lua_pop(L, 1);
    return;
  }
  cs_csv_free(r);
  cs_csv_init(r, cs_csv_fd_source, &f->fd);
  if (cs_csv_next(r) != CS_CSV_RECORD) { /* the header */
    lua_pop(L, 1);
    return;
  }
  while (r->record < last && cs_csv_next(r) == CS_CSV_RECORD) {
    const char *s;
    uint64_t h;
    if ((size_t)email >= r->nfields) continue;
    s = cs_csv_field(r, (size_t)email, &len);
    h = cs_email_hash(s, len);
    for (j = (size_t)h & mask; hashes[j]; j = (j + 1) & mask) {
      if (hashes[j] != h) continue;
      if (firsts[j] == 0) firsts[j] = r->record;
      break;
    }
  }
  for (i = 1; i <= n; i++) {
    uint64_t h;
    char shown[100];
    const char *s;
    lua_rawgeti(L, P_PENDING, (int)i);
    lua_rawgeti(L, P_PROBLEMS, (int)lua_tointeger(L, -1));
    lua_getfield(L, -1, "email");
    s = lua_tolstring(L, -1, &len);
    h = cs_email_hash(s, len);
    for (j = (size_t)h & mask; hashes[j] != h; j = (j + 1) & mask) {
    }
    quote_value(shown, sizeof shown, s, len);
    if (firsts[j] != 0) {
      lua_pushinteger(L, (lua_Integer)firsts[j]);
      lua_setfield(L, -3, "first_row");
      lua_pushfstring(L, "duplicate email '%s' (first in row %d)", shown,
                      (int)firsts[j]);
      lua_setfield(L, -3, "message");
    }
    lua_pop(L, 3);
  }
  lua_pop(L, 1); /* hashes */
}

static void set_integer(lua_State *L, int t, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, t, k);
}

/* core.csv_preflight(path, opts) -> report | nil, msg: everything the server
 * would refuse, found before anything is sent, and the chunk plan. */
int cs_csv_preflight(lua_State *L) {
  preflight p;
  struct stat st;
  cs_csv_file *f;
  cs_csv *r;
  int rc, email;
  uint64_t header_bytes = 0, data_start = 0, rows = 0, ncols = 0;
  lua_Integer invalid = 0, ragged = 0;
  pending_email pending;
  const char *email_name;

  luaL_checkstring(L, P_PATH);
  lua_settop(L, P_OPTS);
  if (lua_isnil(L, P_OPTS)) {
    lua_newtable(L);
    lua_replace(L, P_OPTS);
  }
  luaL_checktype(L, P_OPTS, LUA_TTABLE);
  memset(&p, 0, sizeof p);
  pending.active = 0;
  p.L = L;
  p.max_problems = opt_integer(L, "max_problems", 100, 0);
  p.chunk_rows = opt_integer(L, "chunk_rows", 10000, 1);
  /* 50 MB read as 50,000,000: under the limit whichever way the server
   * counts a megabyte */
  p.chunk_bytes = opt_integer(L, "chunk_bytes", 50000000, 1);
  lua_getfield(L, P_OPTS, "mapping"); /* P_MAPPING */
  if (!lua_isnil(L, P_MAPPING)) luaL_checktype(L, P_MAPPING, LUA_TTABLE);

  if (!cs_csv_push_reader(L, lua_tostring(L, P_PATH), &st)) return 3;
  f = (cs_csv_file *)lua_touserdata(L, P_READER);
  r = &f->r;
  p.r = r;
  lua_newtable(L); /* P_REPORT */
  lua_newtable(L); /* P_PROBLEMS */
  lua_newtable(L); /* P_CHUNKS */
  lua_pushnil(L);  /* P_SET, replaced by the table */
  set_resize(&p, 2048);
  lua_newtable(L); /* P_PENDING */

  rc = cs_csv_next(r);
  if (rc == CS_CSV_RECORD) {
    lua_createtable(L, (int)r->nfields, 0);
    {
      size_t i, len;
      for (i = 0; i < r->nfields; i++) {
        const char *s = cs_csv_field(r, i, &len);
        lua_pushlstring(L, s, len);
        lua_rawseti(L, -2, (int)i + 1);
      }
    }
    lua_setfield(L, P_REPORT, "header");
    ncols = r->nfields;
    header_bytes = r->next_offset - r->record_offset;
    data_start = r->next_offset;
    set_integer(L, P_REPORT, "header_offset", (lua_Integer)r->record_offset);
    set_integer(L, P_REPORT, "header_bytes", (lua_Integer)header_bytes);
    email = check_header(&p); /* email column name */
  } else {
    email = -1;
    lua_pushnil(L);
    if (rc == CS_CSV_EOF)
      problem(&p, "empty", 1, 0, NULL, "the file is empty (no header row)");
  }
  email_name = lua_tostring(L, -1); /* kept on the stack until the end */
  lua_pushboolean(L, r->bom);
  lua_setfield(L, P_REPORT, "bom");

  while (rc == CS_CSV_RECORD && (rc = cs_csv_next(r)) == CS_CSV_RECORD) {
    add_pending(&p, &pending, email_name); /* the previous row's email */
    rows++;
    if (r->nfields != ncols) {
      ragged++;
      problem(&p, "fields", r->record, r->record_line, NULL,
              "row has %d field%s, the header has %d", (int)r->nfields,
              r->nfields == 1 ? "" : "s", (int)ncols);
    }
    if (email >= 0 && (size_t)email < r->nfields) {
      size_t len;
      const char *s = cs_csv_field(r, (size_t)email, &len);
      const char *why = cs_email_problem(s, len);
      if (why != NULL) {
        char shown[100];
        invalid++;
        quote_value(shown, sizeof shown, s, len);
        problem(&p, "email", r->record, r->record_line, email_name,
                "invalid email '%s': %s", shown, why);
      } else {
        pending.active = 1;
        pending.hash = cs_email_hash(s, len);
        pending.row = r->record;
        pending.line = r->record_line;
        pending.len = len;
        memcpy(pending.text, s, len);
#if defined(__GNUC__)
        __builtin_prefetch(&p.slots[pending.hash & p.mask]);
#endif
      }
    }
    chunk_add(&p, header_bytes);
    if (rows == 1024)
      set_presize(&p, (uint64_t)st.st_size, data_start, r->next_offset, rows);
  }
  add_pending(&p, &pending, email_name);
  chunk_close(&p);
  if (rc == CS_CSV_ERROR) {
    problem(&p, "syntax", r->record + 1, r->record_line, NULL, "%s",
            r->message);
    lua_pushstring(L, r->message);
    lua_setfield(L, P_REPORT, "error");
  } else if (rows == 0 && r->record == 1) {
    problem(&p, "empty", 2, 0, NULL, "the file has a header but no data rows");
  }
  lua_pushboolean(L, rc != CS_CSV_ERROR);
  lua_setfield(L, P_REPORT, "complete");
  if (rc != CS_CSV_ERROR) {
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->digest);
    lua_pushstring(L, hex);
    lua_setfield(L, P_REPORT, "fingerprint");
  }
  if (email >= 0) find_first_rows(&p, f, email);
  cs_csv_release(f);

  set_integer(L, P_REPORT, "rows", (lua_Integer)rows);
  set_integer(L, P_REPORT, "bytes", (lua_Integer)st.st_size);
  set_integer(L, P_REPORT, "mtime", (lua_Integer)st.st_mtime);
  set_integer(L, P_REPORT, "columns", (lua_Integer)ncols);
  set_integer(L, P_REPORT, "problem_count", p.problem_count);
  set_integer(L, P_REPORT, "duplicates", p.duplicates);
  set_integer(L, P_REPORT, "invalid_emails", invalid);
  set_integer(L, P_REPORT, "ragged_rows", ragged);
  if (email_name != NULL) {
    lua_pushstring(L, email_name);
    lua_setfield(L, P_REPORT, "email_column");
  }
  lua_pushvalue(L, P_PROBLEMS);
  lua_setfield(L, P_REPORT, "problems");
  lua_pushvalue(L, P_CHUNKS);
  lua_setfield(L, P_REPORT, "chunks");
  lua_pushvalue(L, P_REPORT);
  return 1;
}
