/* csv_fuzz.c: libFuzzer target for the CSV reader and core.csv_preflight. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"
#include "csv.h"

/* Input layout: byte 0 picks the read-buffer size (tiny buffers put every
 * record across refills, where the state machine resumes), byte 1 the row
 * cap and the source's piece size, byte 2 the pre-flight options; the rest
 * is the file. */
typedef struct mem_source {
  const char *data;
  size_t len, pos, piece;
} mem_source;

/* Short reads on purpose: the reader must not assume a full buffer. */
static long mem_read(void *ctx, char *buf, size_t size) {
  mem_source *m = (mem_source *)ctx;
  size_t n = m->len - m->pos;
  if (n > size) n = size;
  if (n > m->piece) n = m->piece;
  memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return (long)n;
}

static void reader_init(cs_csv *r, mem_source *m, const char *data, size_t len,
                        size_t piece) {
  m->data = data;
  m->len = len;
  m->pos = 0;
  m->piece = piece;
  cs_csv_init(r, mem_read, m);
}

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "invariant broken: %s\n", what);
    abort();
  }
}

/* A record's byte range, parsed alone, must give the same fields: that is
 * what makes chunk offsets safe to upload. */
static void check_alone(const cs_csv *r, const char *data, size_t max_row) {
  cs_csv one;
  mem_source m;
  size_t i, a, b;
  reader_init(&one, &m, data + r->record_offset,
              (size_t)(r->next_offset - r->record_offset), 4096);
  one.skip_bom = 0; /* a BOM counts at offset 0 of a file only */
  one.max_row = max_row;
  check(cs_csv_next(&one) == CS_CSV_RECORD, "range parses to a record");
  check(one.nfields == r->nfields, "same field count alone");
  for (i = 0; i < r->nfields; i++) {
    const char *x = cs_csv_field(r, i, &a);
    const char *y = cs_csv_field(&one, i, &b);
    check(a == b && memcmp(x, y, a) == 0, "same field alone");
  }
  check(cs_csv_next(&one) == CS_CSV_EOF, "range holds one record");
  cs_csv_free(&one);
}

static void fuzz_reader(const char *data, size_t len, size_t bufsize,
                        size_t max_row, size_t piece) {
  cs_csv r;
  mem_source m;
  uint64_t prev_end = 0;
  int rc;
  reader_init(&r, &m, data, len, piece);
  r.bufsize = bufsize;
  r.max_row = max_row;
  while ((rc = cs_csv_next(&r)) == CS_CSV_RECORD) {
    size_t i, flen, total = 0;
    check(r.nfields >= 1, "a record has a field");
    check(r.record_offset >= prev_end, "records in order");
    check(r.next_offset > r.record_offset, "records are not empty");
    check(r.next_offset <= len, "offset inside the file");
    for (i = 0; i < r.nfields; i++) {
      const char *f = cs_csv_field(&r, i, &flen);
      uint64_t h = cs_email_hash(f, flen);
      total += flen;
      check(h != 0, "hash never 0");
      (void)cs_email_problem(f, flen);
    }
    check(total + r.nfields - 1 <= max_row, "row cap");
    check_alone(&r, data, max_row);
    prev_end = r.next_offset;
  }
  check(r.message[0] != '\0' || rc == CS_CSV_EOF, "errors have a message");
  if (rc == CS_CSV_ERROR)
    check(cs_csv_next(&r) == CS_CSV_ERROR, "errors are sticky");
  else
    check(cs_csv_next(&r) == CS_CSV_EOF, "EOF is sticky");
  cs_csv_free(&r);
}

/* Lua side: the pre-flight on the same bytes, with its plan checked. */
static const char *const checker =
    "local core, path, opts = ...\n"
    "local rep = assert(core.csv_preflight(path, opts))\n"
    "assert(#rep.problems <= rep.problem_count)\n"
    "assert(#rep.problems <= (opts.max_problems or 100))\n"
    "local rows, prev = 0, nil\n"
    "for _, c in ipairs(rep.chunks) do\n"
    "  assert(c.rows >= 1 and c.rows <= opts.chunk_rows)\n"
    "  assert(c.last_row - c.first_row + 1 == c.rows)\n"
    "  assert(c.offset >= rep.header_offset + rep.header_bytes)\n"
    "  assert(c.offset + c.length <= rep.bytes)\n"
    "  if prev then\n"
    "    assert(c.first_row == prev.last_row + 1)\n"
    "    assert(c.offset >= prev.offset + prev.length)\n"
    "  end\n"
    "  rows, prev = rows + c.rows, c\n"
    "end\n"
    "assert(rows == rep.rows)\n"
    "for _, p in ipairs(rep.problems) do\n"
    "  assert(type(p.row) == 'number' and type(p.message) == 'string')\n"
    "  if p.first_row then assert(p.first_row < p.row) end\n"
    "end\n";

static lua_State *L;

static void fuzz_preflight(const char *data, size_t len, unsigned opts) {
  char path[64];
  int fd = memfd_create("csv_fuzz", MFD_CLOEXEC);
  if (fd < 0) return;
  if (len == 0 || write(fd, data, len) == (ssize_t)len) {
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lua_pushvalue(L, 2); /* checker */
    lua_pushvalue(L, 1); /* core */
    lua_pushstring(L, path);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, 1 + (opts & 3));
    lua_setfield(L, -2, "chunk_rows");
    lua_pushinteger(L, 8 + 16 * ((opts >> 2) & 7));
    lua_setfield(L, -2, "chunk_bytes");
    lua_pushinteger(L, (opts >> 5) & 3);
    lua_setfield(L, -2, "max_problems");
    if (opts & 0x80) {
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, "email");
      lua_setfield(L, -2, "email");
      lua_setfield(L, -2, "mapping");
    }
    if (lua_pcall(L, 3, 0, 0) != 0) {
      fprintf(stderr, "preflight: %s\n", lua_tostring(L, -1));
      abort();
    }
  }
  close(fd);
  lua_gc(L, LUA_GCCOLLECT, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  static const size_t caps[4] = {16, 64, 300, CS_CSV_MAX_ROW};
  const char *data = (const char *)in + 3;
  if (size < 3) return 0;
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    cs_csv_open(L); /* 1: the csv part of coldsend.core */
    if (luaL_loadstring(L, checker) != 0) abort(); /* 2 */
  }
  fuzz_reader(data, size - 3, 1 + in[0] % 64, caps[in[1] & 3],
              1 + (in[1] >> 2));
  fuzz_preflight(data, size - 3, in[2]);
  return 0;
}
