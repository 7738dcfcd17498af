/* email_check.c: whether a string is a plausible email address (one pass
 * over a byte-class table) and the case-folded 64-bit hash duplicate
 * emails are found by (csv.h).
 * Calls: libc only (no Lua calls here). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "csv.h"

/* c in each of the eight bytes of a word */
#define BYTES(c) (0x0101010101010101ULL * (unsigned char)(c))

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
