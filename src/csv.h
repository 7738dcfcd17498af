/* csv.h: the streaming RFC 4180 reader behind core.csv_open (csv_reader.c)
 * and the email check of lead rows (email_check.c), both usable from C
 * without Lua. */
#ifndef COLDSEND_CSV_H
#define COLDSEND_CSV_H

#include <stddef.h>
#include <stdint.h>

/* Default size of the fixed read buffer: memory stays constant whatever the
 * file size, because records are copied out of it field by field. */
#define CS_CSV_BUFSIZE 65536
/* Default cap on one record (field bytes plus one per separator): a file
 * without a closing quote must not grow the field buffer to the file size. */
#define CS_CSV_MAX_ROW (1024 * 1024)
/* Cap on fields per record: bounds the field-end array at 256 KiB. */
#define CS_CSV_MAX_FIELDS 65536

/* A byte source: fills up to size bytes of buf, returns the count, 0 at the
 * end, -1 on failure (errno set). */
typedef long (*cs_csv_source)(void *ctx, char *buf, size_t size);

/* Results of cs_csv_next. */
enum { CS_CSV_EOF = 0, CS_CSV_RECORD = 1, CS_CSV_ERROR = -1 };

typedef struct cs_csv {
  /* settings: cs_csv_init sets defaults; change them before the first read */
  size_t bufsize; /* read buffer size */
  size_t max_row; /* record cap in bytes */
  int skip_bom;   /* 1: drop a UTF-8 BOM at offset 0 */

  cs_csv_source source;
  void *ctx;

  char *buf; /* read buffer: buf[pos..len) not yet parsed */
  size_t pos, len;
  uint64_t buf_base; /* file offset of buf[0] */
  int eof;
  int started; /* the first refill happened (BOM checked) */
  int bom;     /* a BOM was skipped */

  char *data; /* the current record's fields, back to back */
  size_t data_len, data_cap;
  uint32_t *ends; /* ends[i]: end of field i in data */
  size_t nfields, ends_cap;

  uint64_t record;        /* records returned so far (the header is 1) */
  uint64_t line;          /* line (1-based) at the parse position */
  uint64_t record_line;   /* line where the current record starts */
  uint64_t record_offset; /* offset of the current record's first byte */
  uint64_t next_offset;   /* offset just past the current record's line end */
  uint64_t quote_line;    /* line of the quote that opened the open field */
  uint64_t digest;        /* hash of every byte read so far (the BOM too) */

  int failed;        /* sticky: every later call returns the same error */
  char message[200]; /* the error of a CS_CSV_ERROR */
} cs_csv;

/* Sets defaults; allocates nothing (cs_csv_free is safe right after). */
void cs_csv_init(cs_csv *r, cs_csv_source source, void *ctx);

/* Parses the next record: CS_CSV_RECORD (fields via cs_csv_field),
 * CS_CSV_EOF, or CS_CSV_ERROR (r->message names the row and line). Empty
 * lines are skipped; LF, CRLF and a lone CR end a record outside quotes. */
int cs_csv_next(cs_csv *r);

/* Field i (0-based) of the current record; not NUL-terminated. */
static inline const char *cs_csv_field(const cs_csv *r, size_t i, size_t *len) {
  size_t start = i == 0 ? 0 : r->ends[i - 1];
  *len = r->ends[i] - start;
  return r->data + start;
}

/* Frees the buffers; the reader may be initialised again. */
void cs_csv_free(cs_csv *r);

/* email_check.c */

/* NULL when s is a plausible address (local@domain.tld, one @, no spaces or
 * controls, at most 254 bytes), else a short reason. */
const char *cs_email_problem(const char *s, size_t len);

/* 64-bit hash of s with ASCII letters lower-cased (never 0): duplicate
 * emails are found by hash, not by keeping every address. */
uint64_t cs_email_hash(const char *s, size_t len);

#endif
