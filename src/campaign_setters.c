/* campaign_setters.c: the per-value rules checked when a field is assigned
 * (c.name = v, spec 6.4-6.6), a variant added or a follow-up added: each
 * checker pushes the normalised value or raises naming the field, the rule
 * and the value. Scalars, dates and time zones, arrays, then the records of
 * variants and follow-ups (named and numbered here).
 * Calls: the Lua API, campaign_errors.c to raise, campaign_fields.c for the
 * record tables, util.h; reads the zone database (stat, fopen). Never
 * touches a campaign's store: campaign.c stores what these push. */
#define _POSIX_C_SOURCE 200809L /* stat, getenv */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "campaign.h"
#include "request.h"
#include "util.h"

#define MAX_LETTERS 26
#define TZ_CACHE "coldsend.zones" /* registry: zone name -> true */

static const char *const triggers[] = {"NOT_OPENED", "NOT_REPLIED",
                                       "OPENED_BUT_NOT_REPLIED", NULL};

/* ---- scalars ----------------------------------------------------------- */

/* Checks a string; leaves the stack as it was. */
static void check_text(lua_State *L, const cs_field *f, int idx,
                       const cs_path *p) {
  size_t len, chars;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) cs_raise_rule(L, f, p, idx, 1);
  s = lua_tolstring(L, idx, &len);
  /* a NUL would be cut by C consumers, and marks our empty-array sentinel */
  if (memchr(s, '\0', len) != NULL)
    cs_raise_value(L, p, "string without NUL", idx);
  if (!cs_utf8_length(s, len, &chars)) cs_raise_value(L, p, "valid UTF-8", idx);
  if (chars < (size_t)f->min || chars > (size_t)f->max)
    cs_raise_rule(L, f, p, idx, 0);
}

static lua_Integer check_int(lua_State *L, const cs_field *f, int idx,
                             const cs_path *p) {
  lua_Integer v = 0;
  /* a float like 1.5 is the wrong value, a string the wrong type */
  if (!cs_tointeger(L, idx, &v))
    cs_raise_rule(L, f, p, idx, lua_type(L, idx) != LUA_TNUMBER);
  if (v < f->min || v > f->max) cs_raise_rule(L, f, p, idx, 0);
  return v;
}

static int tz_shape_ok(const char *s, size_t len) {
  size_t i;
  /* IANA names are letter-led components of [A-Za-z0-9_+-] joined by '/':
   * no "..", no leading '/', nothing a path could escape with */
  for (i = 0; i < len; i++) {
    char c = s[i];
    int letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (i == 0 || s[i - 1] == '/') {
      if (!letter) return 0;
    } else if (!(letter || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
                 c == '-' || c == '/')) {
      return 0;
    }
  }
  return len > 0 && s[len - 1] != '/';
}

/* Checks the zone database when the system has one: the name must be a
 * compiled zone file (TZif), not a directory or one of its index files. */
static int tz_known(const char *name) {
  const char *dir = getenv("TZDIR");
  char path[512], magic[4];
  struct stat st;
  FILE *fp;
  int ok;
  if (dir == NULL || *dir == '\0') dir = "/usr/share/zoneinfo";
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return 1;
  /* posix/ and right/ are copies for other clock conventions, not names */
  if (strncmp(name, "posix/", 6) == 0 || strncmp(name, "right/", 6) == 0)
    return 0;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  fp = fopen(path, "rb");
  if (fp == NULL) return 0;
  ok = fread(magic, 1, 4, fp) == 4 && memcmp(magic, "TZif", 4) == 0;
  fclose(fp);
  return ok;
}

static void check_timezone(lua_State *L, const cs_field *f, int idx,
                           const cs_path *p) {
  size_t len;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) cs_raise_rule(L, f, p, idx, 1);
  s = lua_tolstring(L, idx, &len);
  /* names already found in the zone database skip the file system: a
   * script setting one zone on many campaigns pays one stat, not many.
   * Only names that passed are kept, so the cache is at most the database. */
  lua_getfield(L, LUA_REGISTRYINDEX, TZ_CACHE); /* stack: cache */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, TZ_CACHE);
  }
  lua_pushvalue(L, idx);
  lua_rawget(L, -2); /* stack: cache known */
  if (lua_isnil(L, -1)) {
    if (len > (size_t)f->max || strlen(s) != len || !tz_shape_ok(s, len) ||
        !tz_known(s))
      cs_raise_rule(L, f, p, idx, 0);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4); /* cache[name] = true; stack: cache nil */
  }
  lua_pop(L, 2);
  lua_pushvalue(L, idx); /* stack: name */
}

static int two_digits(const char *s, int *out) {
  if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') return 0;
  *out = (s[0] - '0') * 10 + (s[1] - '0');
  return 1;
}

static int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|+HH:MM|-HH:MM] with every part in
 * range (February 29 only in leap years). No offset means the campaign's
 * timezone, which the API allows. */
static int iso_datetime_ok(const char *s, size_t len) {
  int hi, lo, mo, d, h, mi, sec = 0, oh, om;
  size_t i = 16;
  if (len < 16 || len > 64) return 0;
  if (!two_digits(s, &hi) || !two_digits(s + 2, &lo) || s[4] != '-' ||
      !two_digits(s + 5, &mo) || s[7] != '-' || !two_digits(s + 8, &d) ||
      s[10] != 'T' || !two_digits(s + 11, &h) || s[13] != ':' ||
      !two_digits(s + 14, &mi))
    return 0;
  if (i < len && s[i] == ':') {
    if (len < i + 3 || !two_digits(s + i + 1, &sec)) return 0;
    i += 3;
    if (i < len && s[i] == '.') {
      size_t start = ++i;
      while (i < len && s[i] >= '0' && s[i] <= '9') i++;
      if (i == start || i - start > 9) return 0;
    }
  }
  if (i < len && s[i] == 'Z') {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    if (len < i + 6 || !two_digits(s + i + 1, &oh) || s[i + 3] != ':' ||
        !two_digits(s + i + 4, &om) || oh > 23 || om > 59)
      return 0;
    i += 6;
  }
  if (i != len || hi * 100 + lo < 1 || mo < 1 || mo > 12) return 0;
  return d >= 1 && d <= days_in_month(hi * 100 + lo, mo) && h <= 23 &&
         mi <= 59 && sec <= 59;
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm): no
 * gmtime, so no dependence on the C library's time_t range or locale. */
static void civil_from_days(long long z, int *y, int *m, int *d) {
  long long era, yy;
  unsigned doe, yoe, doy, mp;
  z += 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = (unsigned)(z - era * 146097);
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  yy = (long long)yoe + era * 400;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yy + (*m <= 2));
}

/* Pushes the value at idx as an ISO 8601 date-time string. */
static void check_date(lua_State *L, const cs_field *f, int idx,
                       const cs_path *p) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    /* epoch seconds (os.time(), a float clock) up to the year 9999 */
    lua_Number n = lua_tonumber(L, idx);
    long long secs, days;
    int y, m, d, rem;
    char buf[32];
    if (!(n >= 0 && n < 253402300800.0)) cs_raise_rule(L, f, p, idx, 0);
    secs = (long long)floor(n);
    days = secs / 86400;
    rem = (int)(secs % 86400);
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
             rem / 3600, rem / 60 % 60, rem % 60);
    lua_pushstring(L, buf);
    return;
  }
  if (lua_type(L, idx) != LUA_TSTRING) cs_raise_rule(L, f, p, idx, 1);
  {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (!iso_datetime_ok(s, len))
      cs_raise_value(L, p, "ISO 8601 date-time (YYYY-MM-DDTHH:MM:SSZ)", idx);
  }
  lua_pushvalue(L, idx);
}

static void check_letters(lua_State *L, const cs_field *f, int idx,
                          const cs_path *p) {
  char up[64]; /* more than variant_name's maximum */
  size_t len, i;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) cs_raise_rule(L, f, p, idx, 1);
  s = lua_tolstring(L, idx, &len);
  if (len < (size_t)f->min || len > (size_t)f->max || len >= sizeof up)
    cs_raise_rule(L, f, p, idx, 0);
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') cs_raise_rule(L, f, p, idx, 0);
    up[i] = c;
  }
  lua_pushlstring(L, up, len); /* the server upper-cases: so do we */
}

static void check_trigger(lua_State *L, const cs_field *f, int idx,
                          const cs_path *p) {
  int i;
  if (lua_type(L, idx) != LUA_TSTRING) cs_raise_rule(L, f, p, idx, 1);
  for (i = 0; triggers[i] != NULL; i++)
    if (strcmp(lua_tostring(L, idx), triggers[i]) == 0) break;
  if (triggers[i] == NULL) cs_raise_rule(L, f, p, idx, 0);
  lua_pushvalue(L, idx);
}

/* ---- arrays and tables ------------------------------------------------- */

/* Returns the length of a plain array: a table whose keys are exactly
 * 1..n. A stray key would be dropped silently by the JSON encoder. */
static lua_Integer check_array(lua_State *L, const cs_field *f, int idx,
                               const cs_path *p) {
  lua_Integer n, count = 0, k;
  if (lua_type(L, idx) != LUA_TTABLE) cs_raise_rule(L, f, p, idx, 1);
  n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (!cs_tointeger(L, -1, &k) || k < 1 || k > n) {
      cs_push_rule(L, f);
      cs_push_described(L, -2);
      lua_pushfstring(L, "table with key %s", lua_tostring(L, -1));
      cs_raise(L, p, lua_tostring(L, -3), lua_tostring(L, -1));
    }
    count++;
  }
  if (count != n) { /* holes: # is then not the element count */
    cs_push_rule(L, f);
    cs_raise(L, p, lua_tostring(L, -1), "table with holes");
  }
  return n;
}

static void check_uuids(lua_State *L, const cs_field *f, int idx,
                        const cs_path *p) {
  lua_Integer n = check_array(L, f, idx, p), i, j;
  int out;
  if (n < 1) {
    cs_push_rule(L, f);
    cs_raise(L, p, lua_tostring(L, -1), "empty table");
  }
  lua_createtable(L, (int)n, 0);
  out = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    cs_path ep = {p, NULL, i};
    char lower[36];
    size_t len, k;
    const char *s;
    lua_rawgeti(L, idx, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) cs_raise_type(L, &ep, "UUID", -1);
    s = lua_tolstring(L, -1, &len);
    if (!cs_is_uuid(s, len)) cs_raise_value(L, &ep, "UUID", -1);
    /* one spelling, so that repeats in other cases are found */
    for (k = 0; k < 36; k++)
      lower[k] = (s[k] >= 'A' && s[k] <= 'F') ? (char)(s[k] + 32) : s[k];
    lua_pushlstring(L, lower, 36);
    for (j = 1; j < i; j++) {
      lua_rawgeti(L, out, (int)j);
      if (lua_rawequal(L, -1, -2)) {
        cs_push_described(L, -2);
        lua_pushfstring(L, "%s again", lua_tostring(L, -1));
        cs_raise(L, &ep, "no repeats", lua_tostring(L, -1));
      }
      lua_pop(L, 1);
    }
    lua_rawseti(L, out, (int)i);
    lua_pop(L, 1);
  }
}

static void check_days(lua_State *L, const cs_field *f, int idx,
                       const cs_path *p) {
  static const cs_field day = {"day", K_INT, 0, 1, 7, NULL};
  lua_Integer n = check_array(L, f, idx, p), i;
  unsigned seen = 0;
  if (n < f->min || n > f->max) {
    cs_push_rule(L, f);
    lua_pushfstring(L, "%d elements", (int)n);
    cs_raise(L, p, lua_tostring(L, -2), lua_tostring(L, -1));
  }
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    cs_path ep = {p, NULL, i};
    lua_Integer d;
    lua_rawgeti(L, idx, (int)i);
    d = check_int(L, &day, lua_gettop(L), &ep);
    if (seen & (1u << d)) {
      lua_pushfstring(L, "%d again", (int)d);
      cs_raise(L, &ep, "no repeats", lua_tostring(L, -1));
    }
    seen |= 1u << d;
    lua_pop(L, 1);
    lua_pushinteger(L, d);
    lua_rawseti(L, -2, (int)i);
  }
}

static int lead_field_name_ok(const char *s, size_t len) {
  size_t i;
  if (len < 1 || len > 100) return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

static void check_mapping(lua_State *L, const cs_field *f, int idx,
                          const cs_path *p) {
  static const cs_field column = {"column", K_STRING, 0, 1, 255, NULL};
  int out, has_email = 0;
  if (lua_type(L, idx) != LUA_TTABLE) cs_raise_rule(L, f, p, idx, 1);
  lua_newtable(L);
  out = lua_gettop(L); /* stack: out */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) { /* stack: out key column */
    size_t len;
    const char *k = NULL;
    if (lua_type(L, -2) == LUA_TSTRING) k = lua_tolstring(L, -2, &len);
    if (k == NULL || !lead_field_name_ok(k, len)) {
      cs_push_described(L, -2);
      lua_pushfstring(L, "key %s", lua_tostring(L, -1));
      cs_raise(L, p, "lead field names of letters, digits and _",
               lua_tostring(L, -1));
    }
    {
      cs_path vp = {p, k, 0};
      check_text(L, &column, lua_gettop(L), &vp);
    }
    if (strcmp(k, "email") == 0) has_email = 1;
    lua_pushvalue(L, -2);
    lua_insert(L, -2);  /* stack: out key key column */
    lua_rawset(L, out); /* key left for lua_next */
  }
  if (!has_email) {
    cs_push_rule(L, f);
    cs_raise(L, p, lua_tostring(L, -1), "a table without it");
  }
}

/* Checks the table at idx against a record's fields: unknown keys raise
 * "no field 'x' in <what>", absent required ones "got nil". Pushes a new
 * table holding only the checked, normalised values. */
static void check_record(lua_State *L, int idx, const cs_path *p,
                         const cs_field *fields, size_t nfields,
                         const char *what) {
  size_t i, present = 0, keys = 0, kept = 0;
  unsigned char has[8]; /* one per field: records have at most 5 */
  int top = lua_gettop(L);
  if (lua_type(L, idx) != LUA_TTABLE) {
    lua_pushfstring(L, "%s table", what);
    cs_raise_type(L, p, lua_tostring(L, -1), idx);
  }
  /* the checked values wait on the stack, so the new table is made at its
   * exact size: many variants are kept, and a 5-slot hint would give 8.
   * stack: ... (top) | value of each field given, in table order */
  for (i = 0; i < nfields; i++) {
    cs_path fp = {p, fields[i].name, 0};
    lua_pushstring(L, fields[i].name);
    lua_rawget(L, idx);
    if (!lua_isnil(L, -1)) present++;
    has[i] = !(lua_isnil(L, -1) || cs_is_null(L, -1));
    if (!has[i]) {
      if (fields[i].flags & CS_REQUIRED)
        cs_raise_rule(L, &fields[i], &fp, -1, 1);
      lua_pop(L, 1);
      continue;
    }
    cs_check_field(L, &fields[i], lua_gettop(L), &fp);
    lua_remove(L, -2);
    kept++;
  }
  /* a key count beyond the fields found means a misspelt key: counting is
   * cheaper than comparing every key with every name */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    keys++;
    lua_pop(L, 1);
  }
  if (keys != present) cs_raise_unknown_key(L, idx, p, fields, nfields, what);
  lua_createtable(L, 0, (int)kept); /* stack: ... | values record */
  for (i = nfields; i-- > 0;) {     /* the last value is at top + kept */
    if (!has[i]) continue;
    lua_pushvalue(L, top + (int)kept--);
    lua_setfield(L, -2, fields[i].name);
  }
  lua_insert(L, top + 1); /* stack: ... | record values */
  lua_settop(L, top + 1); /* stack: ... | record */
}

void cs_check_variant(lua_State *L, int idx, const cs_path *p) {
  check_record(L, lua_absindex(L, idx), p, cs_variant_fields,
               CS_VARIANT_FIELD_COUNT, "variant");
}

void cs_check_sequence(lua_State *L, int idx, const cs_path *p) {
  check_record(L, lua_absindex(L, idx), p, cs_sequence_fields,
               CS_SEQUENCE_FIELD_COUNT, "follow-up");
}

/* The first letter no variant of the array at idx is named, or 0. */
int cs_first_free_letter(lua_State *L, int variants) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, variants);
  unsigned long used = 0;
  int letter;
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, variants, (int)i);
    lua_getfield(L, -1, "variant_name");
    s = lua_tolstring(L, -1, &len);
    /* server data may name a variant anything: only A..Z take a letter */
    if (s != NULL && len == 1 && s[0] >= 'A' && s[0] < 'A' + MAX_LETTERS)
      used |= 1ul << (s[0] - 'A');
    lua_pop(L, 2);
  }
  for (letter = 0; letter < MAX_LETTERS; letter++)
    if (!(used & (1ul << letter))) return 'A' + letter;
  return 0;
}

/* Raises when a variant among the first `upto` of the array is already
 * named like the string at name_idx: names are unique within a step. */
void cs_check_name_unused(lua_State *L, int variants, int upto, int name,
                          const cs_path *p) {
  int i;
  for (i = 1; i <= upto; i++) {
    lua_rawgeti(L, variants, i);
    lua_getfield(L, -1, "variant_name");
    if (lua_rawequal(L, -1, name)) {
      cs_push_described(L, name);
      lua_pushfstring(L, "%s again", lua_tostring(L, -1));
      cs_raise(L, p, "name unique in the step", lua_tostring(L, -1));
    }
    lua_pop(L, 2);
  }
}

/* Gives each unnamed variant the first free letter (A, B, C, D...). */
static void name_variants(lua_State *L, int arr, const cs_path *p) {
  int i, n = (int)lua_rawlen(L, arr);
  for (i = 1; i <= n; i++) { /* given names first: they win their letter */
    cs_path ep = {p, NULL, i}, np = {&ep, "variant_name", 0};
    lua_rawgeti(L, arr, i);
    lua_getfield(L, -1, "variant_name");
    if (!lua_isnil(L, -1))
      cs_check_name_unused(L, arr, i - 1, lua_gettop(L), &np);
    lua_pop(L, 2);
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    lua_getfield(L, -1, "variant_name");
    if (lua_isnil(L, -1)) {
      char letter = (char)cs_first_free_letter(L, arr);
      cs_path ep = {p, NULL, i}, np = {&ep, "variant_name", 0};
      if (letter == 0) cs_raise(L, &np, "a free letter", "none left");
      lua_pushlstring(L, &letter, 1);
      lua_setfield(L, -3, "variant_name");
    }
    lua_pop(L, 2);
  }
}

/* Pushes a new array of the records of the array at idx, each checked by
 * `one` under its own path; returns its index. */
static int check_records(lua_State *L, const cs_field *f, int idx,
                         const cs_path *p,
                         void (*one)(lua_State *, int, const cs_path *)) {
  lua_Integer n = check_array(L, f, idx, p), i;
  int out;
  lua_createtable(L, (int)n, 0);
  out = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    cs_path ep = {p, NULL, i};
    lua_rawgeti(L, idx, (int)i);
    one(L, -1, &ep);
    lua_rawseti(L, out, (int)i);
    lua_pop(L, 1);
  }
  return out;
}

static void check_variants(lua_State *L, const cs_field *f, int idx,
                           const cs_path *p) {
  name_variants(L, check_records(L, f, idx, p, cs_check_variant), p);
}

/* The step a new follow-up gets: one past the highest of the first `upto`
 * (2 for the first), so steps follow the order they are added in. A step
 * the server gave may be any integer: past STEP_CEILING the next step is
 * STEP_CEILING + 1, which validate() refuses (2..4) without overflowing. */
#define STEP_CEILING 1000000
int cs_next_step(lua_State *L, int sequences, int upto) {
  int i, step = 1;
  for (i = 1; i <= upto; i++) {
    lua_Integer s;
    lua_rawgeti(L, sequences, i);
    lua_getfield(L, -1, "step_number");
    if (cs_tointeger(L, -1, &s) && s > step)
      step = s > STEP_CEILING ? STEP_CEILING : (int)s;
    lua_pop(L, 2);
  }
  return step + 1;
}

/* Numbers the follow-ups given without a step, in order after the ones
 * before them. */
static void check_sequences(lua_State *L, const cs_field *f, int idx,
                            const cs_path *p) {
  int out = check_records(L, f, idx, p, cs_check_sequence);
  int i, n = (int)lua_rawlen(L, out);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, out, i);
    lua_getfield(L, -1, "step_number");
    if (lua_isnil(L, -1)) {
      int step = cs_next_step(L, out, i - 1);
      if (step > 4 && n > 3) {
        lua_pushfstring(L, "%d", n);
        cs_raise(L, p, "at most 3 follow-ups", lua_tostring(L, -1));
      } else if (step > 4) { /* after a given 4 there is no step left */
        cs_path ep = {p, NULL, i}, sp = {&ep, "step_number", 0};
        cs_raise(L, &sp, "integer 2..4", "nil (the step after 4)");
      }
      lua_pushinteger(L, step);
      lua_setfield(L, -3, "step_number");
    }
    lua_pop(L, 2);
  }
}

static void check_string(lua_State *L, const cs_field *f, int idx,
                         const cs_path *p) {
  check_text(L, f, idx, p);
  lua_pushvalue(L, idx);
}

static void check_integer(lua_State *L, const cs_field *f, int idx,
                          const cs_path *p) {
  lua_pushinteger(L, check_int(L, f, idx, p));
}

static void check_boolean(lua_State *L, const cs_field *f, int idx,
                          const cs_path *p) {
  if (lua_type(L, idx) != LUA_TBOOLEAN) cs_raise_rule(L, f, p, idx, 1);
  lua_pushvalue(L, idx);
}

static void check_read_only(lua_State *L, const cs_field *f, int idx,
                            const cs_path *p) {
  cs_raise_rule(L, f, p, idx, 0); /* never reached: assignment refuses them */
}

typedef void (*checker)(lua_State *L, const cs_field *f, int idx,
                        const cs_path *p);

/* Each pushes the checked value, normalised (integers as integers, names
 * upper-cased, epoch seconds as ISO 8601, fresh tables). */
static const checker checkers[] = {
    [K_UUID] = check_read_only,      [K_TEXT] = check_read_only,
    [K_LIST] = check_read_only,      [K_STRING] = check_string,
    [K_INT] = check_integer,         [K_BOOL] = check_boolean,
    [K_TZ] = check_timezone,         [K_DATE] = check_date,
    [K_UUIDS] = check_uuids,         [K_DAYS] = check_days,
    [K_MAP] = check_mapping,         [K_VARIANTS] = check_variants,
    [K_SEQUENCES] = check_sequences, [K_LETTERS] = check_letters,
    [K_TRIGGER] = check_trigger,
};

void cs_check_field(lua_State *L, const cs_field *f, int idx,
                    const cs_path *p) {
  checkers[f->kind](L, f, lua_absindex(L, idx), p);
}
