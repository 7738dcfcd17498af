/* csv.c: streaming RFC 4180 reader (coldsend.csv), lead-file pre-flight and
 * chunk planning, email syntax check. */
#define _POSIX_C_SOURCE 200809L
#include "csv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "util.h"

/* ---------------------------------------------------------------------- */
/* The reader                                                              */
/* ---------------------------------------------------------------------- */

/* Bytes that end a run of an unquoted field: the scan loop tests one table
 * entry per byte, which is what keeps pre-flight above 150 MB/s. */
static unsigned char unquoted_stop[256];
/* Bytes that end a run inside quotes: the closing quote, and LF so that
 * line numbers stay right across newlines inside fields. */
static unsigned char quoted_stop[256];

static void init_tables(void) {
  if (unquoted_stop[',']) return;
  unquoted_stop[','] = unquoted_stop['\r'] = unquoted_stop['\n'] = 1;
  quoted_stop['"'] = quoted_stop['\n'] = 1;
}

void cs_csv_init(cs_csv *r, cs_csv_source source, void *ctx) {
  init_tables();
  memset(r, 0, sizeof *r);
  r->bufsize = CS_CSV_BUFSIZE;
  r->max_row = CS_CSV_MAX_ROW;
  r->skip_bom = 1;
  r->source = source;
  r->ctx = ctx;
  r->line = 1;
  r->digest = 0xcbf29ce484222325ULL;
}

void cs_csv_free(cs_csv *r) {
  free(r->buf);
  free(r->data);
  free(r->ends);
  r->buf = r->data = NULL;
  r->ends = NULL;
  r->data_cap = r->ends_cap = r->len = r->pos = 0;
}

static int fail(cs_csv *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->message, sizeof r->message, fmt, ap);
  va_end(ap);
  r->failed = 1;
  return CS_CSV_ERROR;
}

/* One multiply per 8 bytes, in four independent lanes so the multiplies
 * overlap: cheap enough to run on every byte read. Each step is a
 * bijection of its lane, so a file that differs in one word always gets
 * another digest. */
static uint64_t digest_block(uint64_t h, const unsigned char *p, size_t n) {
  const uint64_t k = 0x9E3779B97F4A7C15ULL;
  uint64_t lane[4], w[4];
  int i;
  for (i = 0; i < 4; i++) lane[i] = h + (uint64_t)i;
  for (; n >= 32; p += 32, n -= 32) {
    memcpy(w, p, 32);
    for (i = 0; i < 4; i++) {
      lane[i] = (lane[i] ^ w[i]) * k;
      lane[i] ^= lane[i] >> 32;
    }
  }
  h = lane[0];
  for (i = 1; i < 4; i++) {
    h = (h ^ lane[i]) * k;
    h ^= h >> 32;
  }
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(w, p, 8);
    h = (h ^ w[0]) * k;
    h ^= h >> 32;
  }
  w[0] = 0;
  memcpy(w, p, n);
  h = (h ^ w[0] ^ ((uint64_t)n << 56)) * k;
  return h ^ (h >> 32);
}

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CS_SWAR 1
#endif

#define BYTES(c) (0x0101010101010101ULL * (unsigned char)(c))

/* The first byte of [p, e) that is a, b or c (or stop[] says so), else e.
 * Eight bytes per step where the word trick is available: fields are
 * mostly ordinary bytes, and this loop is most of a pre-flight. */
static inline const char *scan(const char *p, const char *e, uint64_t a,
                               uint64_t b, uint64_t c,
                               const unsigned char *stop) {
#ifdef CS_SWAR
  const uint64_t lo = BYTES(1), hi = BYTES(0x80);
  while (e - p >= 8) {
    uint64_t v, x, y, z, m;
    memcpy(&v, p, 8);
    x = v ^ a;
    y = v ^ b;
    z = v ^ c;
    /* a zero byte of x, y or z is a match; false hits only ever sit above
     * a true one, so the lowest flag is exact */
    m = (((x - lo) & ~x) | ((y - lo) & ~y) | ((z - lo) & ~z)) & hi;
    if (m) return p + (__builtin_ctzll(m) >> 3);
    p += 8;
  }
#else
  (void)a, (void)b, (void)c;
#endif
  while (p < e && !stop[(unsigned char)*p]) p++;
  return p;
}

/* Replaces the whole buffer: fields were copied out, so nothing in it is
 * still needed. Reads until the buffer is full so that block boundaries,
 * and with them the digest, depend on the content only. Returns 1 with
 * bytes available, 0 at the end, -1 on failure. */
static int refill(cs_csv *r) {
  size_t n = 0;
  if (r->eof) return 0;
  if (r->buf == NULL) {
    if (r->bufsize == 0) r->bufsize = CS_CSV_BUFSIZE;
    r->buf = malloc(r->bufsize);
    /* data is never NULL under a record, even one of empty fields */
    r->data_cap = 256;
    r->data = malloc(r->data_cap);
    if (r->buf == NULL || r->data == NULL) return fail(r, "out of memory");
  }
  r->buf_base += r->len;
  r->pos = r->len = 0;
  while (n < r->bufsize) {
    long got = r->source(r->ctx, r->buf + n, r->bufsize - n);
    if (got < 0) {
      if (errno == EINTR) continue;
      return fail(r, "read error: %s", strerror(errno));
    }
    if (got == 0) {
      r->eof = 1;
      break;
    }
    n += (size_t)got;
  }
  r->len = n;
  if (n > 0) r->digest = digest_block(r->digest, (unsigned char *)r->buf, n);
  if (!r->started) {
    r->started = 1;
    if (r->skip_bom && n >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) {
      r->pos = 3;
      r->bom = 1;
      /* a buffer holding the BOM alone is not the end of the file */
      if (n == 3) return refill(r);
    }
  }
  return n > 0;
}

static int too_big(cs_csv *r, int quoted) {
  if (quoted)
    return fail(r,
                "row %llu (line %llu): the quoted field opened on line %llu "
                "runs past %zu bytes (a missing closing quote?)",
                (unsigned long long)r->record + 1,
                (unsigned long long)r->record_line,
                (unsigned long long)r->quote_line, r->max_row);
  return fail(r, "row %llu (line %llu) is longer than %zu bytes",
              (unsigned long long)r->record + 1,
              (unsigned long long)r->record_line, r->max_row);
}

/* Each separator counts one byte against the cap, so a row of a million
 * empty fields is refused like a row of a million bytes. */
static int append(cs_csv *r, const char *s, size_t n, int quoted) {
  if (n > r->max_row || r->data_len + r->nfields + n > r->max_row)
    return too_big(r, quoted);
  if (r->data_len + n > r->data_cap) {
    size_t cap = r->data_cap;
    char *p;
    while (cap < r->data_len + n) cap *= 2;
    p = realloc(r->data, cap);
    if (p == NULL) return fail(r, "out of memory");
    r->data = p;
    r->data_cap = cap;
  }
  memcpy(r->data + r->data_len, s, n);
  r->data_len += n;
  return 0;
}

static int end_field(cs_csv *r) {
  if (r->nfields >= CS_CSV_MAX_FIELDS)
    return fail(r, "row %llu (line %llu) has more than %d fields",
                (unsigned long long)r->record + 1,
                (unsigned long long)r->record_line, CS_CSV_MAX_FIELDS);
  if (r->data_len + r->nfields + 1 > r->max_row) return too_big(r, 0);
  if (r->nfields == r->ends_cap) {
    size_t cap = r->ends_cap ? r->ends_cap * 2 : 32;
    uint32_t *p = realloc(r->ends, cap * sizeof *p);
    if (p == NULL) return fail(r, "out of memory");
    r->ends = p;
    r->ends_cap = cap;
  }
  r->ends[r->nfields++] = (uint32_t)r->data_len;
  return 0;
}

/* After a CR: swallows the LF of a CRLF, refilling if the CR was the last
 * byte of the buffer, so next_offset covers the whole line end. */
static int skip_lf(cs_csv *r) {
  if (r->pos == r->len) {
    int got = refill(r);
    if (got <= 0) return got;
  }
  if (r->buf[r->pos] == '\n') r->pos++;
  return 0;
}

/* Ends the record at the line-end byte under the cursor. */
static int end_record(cs_csv *r) {
  char c = r->buf[r->pos++];
  if (end_field(r) < 0) return CS_CSV_ERROR;
  if (c == '\r' && skip_lf(r) < 0) return CS_CSV_ERROR;
  r->line++;
  r->record++;
  r->next_offset = r->buf_base + r->pos;
  return CS_CSV_RECORD;
}

enum { S_START, S_FIELD, S_UNQUOTED, S_QUOTED, S_QUOTE };

static int at_end(cs_csv *r, int state) {
  switch (state) {
    case S_START:
      return CS_CSV_EOF;
    case S_QUOTED:
      return fail(r,
                  "row %llu (line %llu): unterminated quoted field: the "
                  "quote opened on line %llu is never closed",
                  (unsigned long long)r->record + 1,
                  (unsigned long long)r->record_line,
                  (unsigned long long)r->quote_line);
    default: /* the last record has no line end */
      if (end_field(r) < 0) return CS_CSV_ERROR;
      r->record++;
      r->next_offset = r->buf_base + r->len;
      return CS_CSV_RECORD;
  }
}

int cs_csv_next(cs_csv *r) {
  int state = S_START;
  if (r->failed) return CS_CSV_ERROR;
  /* ends[] holds 32-bit offsets */
  if (r->max_row > 0x7fffffff) r->max_row = 0x7fffffff;
  r->data_len = r->nfields = 0;
  for (;;) {
    const char *p, *q, *e;
    if (r->pos == r->len) {
      int got = refill(r);
      if (got < 0) return CS_CSV_ERROR;
      if (got == 0) return at_end(r, state);
    }
    p = r->buf + r->pos;
    e = r->buf + r->len;
    switch (state) {
      case S_START: /* empty lines are skipped, not records */
        if (*p == '\n' || *p == '\r') {
          r->pos++;
          r->line++;
          if (*p == '\r' && skip_lf(r) < 0) return CS_CSV_ERROR;
          continue;
        }
        r->record_offset = r->buf_base + r->pos;
        r->record_line = r->line;
        /* fallthrough */
      case S_FIELD:
        if (*p == '"') {
          r->pos++;
          r->quote_line = r->line;
          state = S_QUOTED;
          continue;
        }
        /* fallthrough */
      case S_UNQUOTED:
        /* a quote inside an unquoted field is kept as data, as most
         * producers and readers (Python's csv, Excel) do */
        state = S_UNQUOTED;
        q = scan(p, e, BYTES(','), BYTES('\n'), BYTES('\r'), unquoted_stop);
        if (append(r, p, (size_t)(q - p), 0) < 0) return CS_CSV_ERROR;
        r->pos += (size_t)(q - p);
        if (q == e) continue;
        if (*q != ',') return end_record(r);
        r->pos++;
        if (end_field(r) < 0) return CS_CSV_ERROR;
        state = S_FIELD;
        continue;
      case S_QUOTED:
        q = scan(p, e, BYTES('"'), BYTES('\n'), BYTES('\n'), quoted_stop);
        while (q < e && *q == '\n') { /* LF inside quotes: data, new line */
          r->line++;
          q = scan(q + 1, e, BYTES('"'), BYTES('\n'), BYTES('\n'), quoted_stop);
        }
        if (append(r, p, (size_t)(q - p), 1) < 0) return CS_CSV_ERROR;
        r->pos += (size_t)(q - p);
        if (q < e) { /* the quote: closing, or the first of a pair */
          r->pos++;
          state = S_QUOTE;
        }
        continue;
      case S_QUOTE:
        if (*p == '"') {
          if (append(r, p, 1, 1) < 0) return CS_CSV_ERROR;
          r->pos++;
          state = S_QUOTED;
          continue;
        }
        if (*p == ',') {
          r->pos++;
          if (end_field(r) < 0) return CS_CSV_ERROR;
          state = S_FIELD;
          continue;
        }
        if (*p == '\r' || *p == '\n') return end_record(r);
        return fail(r,
                    "row %llu (line %llu), field %zu: unexpected character "
                    "after a closing quote (a quote inside a quoted field "
                    "is written twice: \"\")",
                    (unsigned long long)r->record + 1,
                    (unsigned long long)r->line, r->nfields + 1);
    }
  }
}

/* ---------------------------------------------------------------------- */
/* Emails                                                                  */
/* ---------------------------------------------------------------------- */

/* Byte classes for the email check: one pass, and letters and digits (the
 * bulk of an address) take a single table test. */
enum {
  E_PLAIN = 1,     /* letters, digits, UTF-8 bytes: fine on either side */
  E_LOCAL = 2,     /* other printable ASCII: fine before the @ only */
  E_NOT_LOCAL = 4, /* "(),:;<>[\] : not before the @ (nor after) */
  E_SPACE = 8,
  E_CONTROL = 16,
  E_AT = 32,
  E_DOT = 64,
  E_DASH = 128
};
static unsigned char email_class[256];

static void init_email_class(void) {
  int c;
  const char *s;
  if (email_class['a']) return;
  for (c = 0x21; c < 0x7f; c++) email_class[c] = E_LOCAL;
  for (c = 0; c < 0x20; c++) email_class[c] = E_CONTROL;
  email_class[0x7f] = E_CONTROL;
  email_class[' '] = email_class['\t'] = E_SPACE;
  for (s = "\"(),:;<>[\\]"; *s; s++)
    email_class[(unsigned char)*s] = E_NOT_LOCAL;
  /* bytes >= 0x80: internationalised addresses, sent as UTF-8 */
  for (c = 0x80; c < 0x100; c++) email_class[c] = E_PLAIN;
  for (c = '0'; c <= '9'; c++) email_class[c] = E_PLAIN;
  for (c = 'a'; c <= 'z'; c++) email_class[c] = email_class[c - 32] = E_PLAIN;
  email_class['@'] = E_AT;
  email_class['.'] = E_DOT;
  email_class['-'] = E_DASH;
}

/* Ends a domain label of label bytes just before position i. */
static const char *end_label(const unsigned char *u, size_t i, size_t label) {
  if (label == 0) return "empty label in the domain";
  if (label > 63) return "domain label longer than 63 bytes";
  if (u[i - 1] == '-' || u[i - label] == '-')
    return "domain label starts or ends with '-'";
  return NULL;
}

/* Syntax only, deliberately permissive inside the local part: the server
 * (and the receiving MTA) are the judges of deliverability; this catches
 * the shapes that are surely wrong before an upload is spent on them. */
const char *cs_email_problem(const char *s, size_t len) {
  size_t i, at = len, label = 0, last_dot = 0;
  const unsigned char *u = (const unsigned char *)s;
  const char *why;
  init_email_class();
  if (len == 0) return "empty";
  if (len > 254) return "longer than 254 bytes";
  for (i = 0; i < len; i++) {
    unsigned char c = email_class[u[i]];
    if (c & E_PLAIN) {
      label++;
      continue;
    }
    if (c & E_SPACE) return "contains spaces";
    if (c & E_CONTROL) return "contains control characters";
    if (at == len) { /* before the @ */
      if (c & E_NOT_LOCAL) return "character not allowed before the @";
      if ((c & E_DOT) && i + 1 < len && u[i + 1] == '.')
        return "two dots in a row";
      if (c & E_AT) {
        if (i == 0) return "nothing before the @";
        if (i > 64) return "part before the @ longer than 64 bytes";
        if (u[0] == '.' || u[i - 1] == '.') return "misplaced dot before the @";
        at = i;
        label = 0;
      }
      continue;
    }
    if (c & E_AT) return "more than one @";
    if (c & E_DASH) {
      label++;
    } else if (c & E_DOT) {
      if ((why = end_label(u, i, label)) != NULL) return why;
      label = 0;
      last_dot = i;
    } else {
      return "character not allowed in the domain";
    }
  }
  if (at == len) return "no @";
  if (at + 1 == len) return "nothing after the @";
  if ((why = end_label(u, len, label)) != NULL) return why;
  if (last_dot == 0) return "no dot in the domain (local@domain.tld expected)";
  for (i = last_dot + 1; i < len && u[i] >= '0' && u[i] <= '9'; i++) {
  }
  if (i == len) return "numeric top-level domain";
  if (len - last_dot - 1 < 2)
    return "top-level domain shorter than 2 characters";
  return NULL;
}

/* ASCII letters of eight bytes lower-cased at once (other bytes kept). */
static uint64_t lower8(uint64_t v) {
  uint64_t low7 = v & BYTES(0x7f);
  uint64_t from_a = low7 + BYTES(0x80 - 'A');     /* top bit: >= 'A' */
  uint64_t past_z = low7 + BYTES(0x80 - 'Z' - 1); /* top bit: > 'Z' */
  return v | ((from_a & ~past_z & ~v & BYTES(0x80)) >> 2);
}

uint64_t cs_email_hash(const char *s, size_t len) {
  const uint64_t k = 0x9E3779B97F4A7C15ULL;
  uint64_t h = (uint64_t)len * k, w;
  for (; len >= 8; s += 8, len -= 8) {
    memcpy(&w, s, 8);
    h = (h ^ lower8(w)) * k;
    h ^= h >> 29;
  }
  w = 0;
  memcpy(&w, s, len);
  h = (h ^ lower8(w)) * k;
  /* murmur3's finaliser: every input bit reaches the slot index */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h ? h : 1; /* 0 marks an empty slot */
}

/* ---------------------------------------------------------------------- */
/* coldsend.csv userdata                                                   */
/* ---------------------------------------------------------------------- */

#define CSV_TYPE "coldsend.csv"

typedef struct csv_file {
  cs_csv r;
  int fd; /* -1 once closed */
  char *path;
} csv_file;

static long fd_source(void *ctx, char *buf, size_t size) {
  return (long)read(*(int *)ctx, buf, size);
}

static csv_file *check_csv(lua_State *L, int idx) {
  csv_file *f = (csv_file *)luaL_checkudata(L, idx, CSV_TYPE);
  if (f->fd < 0) luaL_error(L, "attempt to use a closed " CSV_TYPE);
  return f;
}

static void csv_release(csv_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  cs_csv_free(&f->r);
  free(f->path);
  f->path = NULL;
}

static int csv_close(lua_State *L) {
  csv_release((csv_file *)luaL_checkudata(L, 1, CSV_TYPE));
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes an open reader, or nil, message, errno (like io.open) and returns
 * 0. The userdata exists, zeroed, before the file is opened, so an error in
 * between leaves nothing for anyone but __gc. */
static int push_reader(lua_State *L, const char *path, struct stat *st) {
  int err;
  csv_file *f = (csv_file *)cs_newuserdata(L, sizeof *f);
  memset(f, 0, sizeof *f);
  f->fd = -1;
  cs_csv_init(&f->r, fd_source, &f->fd);
  luaL_setmetatable(L, CSV_TYPE);
  f->path = strdup(path);
  if (f->path == NULL) return luaL_error(L, "out of memory");
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd >= 0 && fstat(f->fd, st) == 0 && !S_ISDIR(st->st_mode)) return 1;
  err = f->fd < 0 || !S_ISDIR(st->st_mode) ? errno : EISDIR;
  csv_release(f);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(err));
  lua_pushinteger(L, err);
  return 0;
}

static int csv_open(lua_State *L) {
  struct stat st;
  return push_reader(L, luaL_checkstring(L, 1), &st) ? 1 : 3;
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
  csv_file *f = check_csv(L, 1);
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
  csv_file *f = check_csv(L, 1);
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
  csv_file *f = (csv_file *)luaL_checkudata(L, 1, CSV_TYPE);
  if (f->fd < 0)
    lua_pushliteral(L, CSV_TYPE " (closed)");
  else
    lua_pushfstring(L, CSV_TYPE " %s row %d", f->path, (int)f->r.record);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Pre-flight                                                              */
/* ---------------------------------------------------------------------- */

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
static void find_first_rows(preflight *p, csv_file *f, int email) {
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
  cs_csv_init(r, fd_source, &f->fd);
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
static int csv_preflight(lua_State *L) {
  preflight p;
  struct stat st;
  csv_file *f;
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

  if (!push_reader(L, lua_tostring(L, P_PATH), &st)) return 3;
  f = (csv_file *)lua_touserdata(L, P_READER);
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
  csv_release(f);

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
                                     {"csv_preflight", csv_preflight},
                                     {"email_problem", csv_email_problem},
                                     {NULL, NULL}};

void cs_csv_open(lua_State *L) {
  init_tables();
  cs_newmetatable(L, CSV_TYPE);
  luaL_setfuncs(L, csv_metamethods, 0);
  lua_newtable(L);
  luaL_setfuncs(L, csv_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, csv_funcs, 0);
}
