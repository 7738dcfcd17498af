/* csv_reader.c: the streaming RFC 4180 reader (csv.h): a fixed read
 * buffer, records copied out field by field, line and byte offsets of each
 * record, a digest of every byte read, and errors naming row and line.
 * Calls: libc only (no Lua calls here): csv_fuzz.c and any C program can
 * use it as it is. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

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
