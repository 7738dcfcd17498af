/* response.c: HTTP responses turned into data or coldsend.error objects:
 * core.parse_response, core.server_wait (the one reading of Retry-After and
 * X-RateLimit-Reset) and core.parse_http_date. One job: what a status,
 * its headers and its body say; the error type itself is error.c's.
 * Calls: the Lua API, request.h (cs_json_decode), error.h (cs_push_error,
 * cs_set_error_metatable) and util.h (cs_utf8_cut, cs_find_nocase,
 * cs_lower). Stack notes follow the Lua manual: [-o, +p] pops o and pushes
 * p; "stack:" lines show the slots from the function's first own slot,
 * "..." for those below. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core.h"
#include "error.h"
#include "request.h"
#include "util.h"

/* A detail list longer than this is summarised as "...; and N more". */
#define DETAILS_SHOW 5

/* ---- small string helpers ---------------------------------------------- */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The first non-blank byte of s, or 0 when s is blank. */
static char first_char(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (!is_space(s[i])) return s[i];
  return 0;
}

/* ---- headers ------------------------------------------------------------ */

/* A header value by its lower-case name, or NULL. Transports give
 * lower-case names; a user transport may not, so the canonical spelling is
 * tried as well. The value is left on the stack (nil when absent), which
 * anchors the string: a headers table may compute it in __index, so the
 * table itself is no anchor. */
static const char *header(lua_State *L, int hidx, const char *lname,
                          const char *canonical) {
  luaL_checkstack(L, 2, "headers");
  if (hidx == 0) {
    lua_pushnil(L);
    return NULL;
  }
  lua_getfield(L, hidx, lname);
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_getfield(L, hidx, canonical);
  }
  return lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
}

/* 1 when the media type of a Content-Type value is JSON: application/json
 * or any type with the +json suffix (application/problem+json). */
static int is_json_type(const char *ct) {
  size_t n = 0;
  while (ct[n] && ct[n] != ';' && !is_space(ct[n])) n++;
  if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
  return n > 5 && cs_find_nocase(ct + n - 5, 5, "+json") != NULL;
}

/* What a body that is not a JSON object looks like, for messages. */
static const char *describe_body(const char *body, size_t len, const char *ct) {
  char c = first_char(body, len);
  if (ct != NULL && cs_find_nocase(ct, strlen(ct), "html") != NULL)
    return "HTML";
  switch (c) {
    case 0:
      return "an empty body";
    case '<':
      return cs_find_nocase(body, len < 64 ? len : 64, "<?xml") ? "XML"
                                                                : "HTML";
    case '[':
      return "a JSON array";
    case '"':
      return "a JSON string";
    case 't':
    case 'f':
      return "a JSON boolean";
    case 'n':
      return "JSON null";
    case '{':
      return "a JSON object";
    default:
      return (c == '-' || (c >= '0' && c <= '9')) ? "a JSON number"
                                                  : "non-JSON text";
  }
}

/* ---- dates -------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): no timegm(), which is neither C99 nor POSIX. */
static long days_from_civil(long y, int m, int d) {
  long era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int days_in_month(long y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return days[m - 1] + (m == 2 && leap);
}

static int month_number(const char *mon) {
  static const char *const names = "janfebmaraprmayjunjulaugsepoctnovdec";
  int i;
  for (i = 0; i < 12; i++)
    if (cs_lower(mon[0]) == names[3 * i] &&
        cs_lower(mon[1]) == names[3 * i + 1] &&
        cs_lower(mon[2]) == names[3 * i + 2])
      return i + 1;
  return 0;
}

/* Parses the three HTTP-date forms of RFC 9110 §5.6.7 (IMF-fixdate,
 * RFC 850, asctime) into Unix seconds. Returns 0 when s is none of them.
 * Field widths bound what sscanf reads and every field is range-checked,
 * so a server's "-2147483647:00:00" is no date rather than an overflow. */
static int parse_http_date(const char *s, double *out) {
  char mon[4] = {0};
  int d, y, hh, mm, ss, m, y0 = 0, y1 = 0;
  const char *comma = strchr(s, ',');
  if (comma != NULL) {
    /* "Sun, 06 Nov 1994 08:49:37 GMT" or "Sunday, 06-Nov-94 08:49:37 GMT";
     * y0 .. y1: where the year's text is */
    if (sscanf(comma + 1, " %2d %3s %n%4d%n %2d:%2d:%2d", &d, mon, &y0, &y, &y1,
               &hh, &mm, &ss) != 6 &&
        sscanf(comma + 1, " %2d-%3[A-Za-z]-%n%4d%n %2d:%2d:%2d", &d, mon, &y0,
               &y, &y1, &hh, &mm, &ss) != 6)
      return 0;
    /* four digits, or RFC 850's two ("0050" is the year 50, not 2050;
     * "-50" or "+94" no year) */
    if (comma[1 + y0] < '0' || comma[1 + y0] > '9' ||
        (y1 - y0 != 2 && y1 - y0 != 4))
      return 0;
    if (y1 - y0 == 2) y += y < 70 ? 2000 : 1900;
  } else {
    /* "Sun Nov  6 08:49:37 1994" */
    char wday[4];
    if (sscanf(s, "%3s %3s %2d %2d:%2d:%2d %n%4d%n", wday, mon, &d, &hh, &mm,
               &ss, &y0, &y, &y1) != 7 ||
        s[y0] < '0' || s[y0] > '9' || y1 - y0 != 4)
      return 0;
  }
  m = month_number(mon);
  if (m == 0 || d < 1 || d > days_in_month(y, m) || hh < 0 || hh > 23 ||
      mm < 0 || mm > 59 || ss < 0 || ss > 60 || y < 0)
    return 0; /* "31 Feb" is no date, not 3 March */
  *out = (double)days_from_civil(y, m, d) * 86400.0 + hh * 3600 + mm * 60 + ss;
  return 1;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A whole, non-negative number of seconds: retrying early is the mistake
 * to avoid, so fractions round up. Capped at a year, so that a server's
 * absurd value (or 1e999 = inf) still converts to lua_Integer. */
#define MAX_RETRY_AFTER (366.0 * 86400)
static double whole_seconds(double s) {
  return s > 0 ? ceil(s < MAX_RETRY_AFTER ? s : MAX_RETRY_AFTER) : 0;
}

/* Parses a non-negative decimal number at s; returns the end or NULL. */
static const char *parse_number(const char *s, double *out) {
  char *end;
  double v;
  if (!(*s >= '0' && *s <= '9')) return NULL;
  v = strtod(s, &end);
  if (end == s || !(v >= 0)) return NULL;
  *out = v;
  return end;
}

/* Seconds to wait before retrying, from Retry-After (seconds or an
 * HTTP-date), else for a 429 from X-RateLimit-Reset or the "Retry after N
 * seconds" text ColdSend puts in its detail. Returns 0 when nothing says.
 * Leaves the header values it read on the stack. */
static int retry_after(lua_State *L, int hidx, lua_Integer status,
                       const char *message, double now, double *out) {
  const char *v = header(L, hidx, "retry-after", "Retry-After");
  double n;
  if (v != NULL) {
    const char *end;
    while (is_space(*v)) v++;
    end = parse_number(v, &n);
    if (end != NULL) {
      while (is_space(*end)) end++;
      if (*end == 0) {
        *out = whole_seconds(n);
        return 1;
      }
    }
    if (parse_http_date(v, &n)) {
      *out = whole_seconds(n - now);
      return 1;
    }
  }
  if (status != 429) {
    /* a success can spend the window too: its reset is then the wait */
    v = header(L, hidx, "x-ratelimit-remaining", "X-RateLimit-Remaining");
    if (v == NULL || parse_number(v, &n) == NULL || n != 0) return 0;
  }
  v = header(L, hidx, "x-ratelimit-reset", "X-RateLimit-Reset");
  if (v != NULL) {
    while (is_space(*v)) v++;
    if (parse_number(v, &n) != NULL) {
      /* the reference documents a Unix timestamp; a small number can only
       * be a delay in seconds, as some gateways send it */
      *out = whole_seconds(n > 1e9 ? n - now : n);
      return 1;
    }
  }
  if (message != NULL) {
    const char *hit = cs_find_nocase(message, strlen(message), "retry after");
    if (hit != NULL) {
      hit += 11;
      while (is_space(*hit)) hit++;
      if (parse_number(hit, &n) != NULL) {
        *out = whole_seconds(n);
        return 1;
      }
    }
  }
  return 0;
}

/* ---- what a status says ---------------------------------------------------
 */

static const char *code_for_status(lua_Integer status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "auth";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 422:
      return "unprocessable";
    case 429:
      return "rate_limited";
    default:
      return (status >= 500 && status <= 599) ? "server" : "http";
  }
}

static const char *status_text(lua_Integer status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return NULL;
  }
}

/* [-0, +2] Returns nil, protocol error for a 2xx answer that is not a JSON
 * object. */
static int protocol_error(lua_State *L, lua_Integer status, const char *body,
                          size_t len, const char *what, const char *ct) {
  cs_push_error(L, "protocol", status, body, len);
  if (ct != NULL)
    lua_pushfstring(L, "expected a JSON object, got %s (%s)", what, ct);
  else
    lua_pushfstring(L, "expected a JSON object, got %s", what);
  lua_setfield(L, -2, "message");
  cs_set_error_metatable(L, -1);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* ---- success ------------------------------------------------------------ */

/* 2xx: the decoded object; {} for 204 or an empty body. JSON nulls inside
 * stay cjson.null (a NULL light userdata) so a field explicitly null is not
 * confused with one absent. */
static int parse_success(lua_State *L, lua_Integer status, int hidx, int bidx,
                         const char *body, size_t len) {
  const char *ct = header(L, hidx, "content-type", "Content-Type");
  char c = first_char(body, len);
  if (status == 204 || c == 0) {
    lua_newtable(L);
    return 1;
  }
  if (ct != NULL && !is_json_type(ct)) {
    if (c == '{') {
      cs_push_error(L, "protocol", status, body, len);
      lua_pushfstring(L, "expected Content-Type application/json, got %s", ct);
      lua_setfield(L, -2, "message");
      cs_set_error_metatable(L, -1);
      lua_pushnil(L);
      lua_insert(L, -2);
      return 2;
    }
    return protocol_error(L, status, body, len, describe_body(body, len, ct),
                          ct);
  }
  if (c != '{')
    return protocol_error(L, status, body, len, describe_body(body, len, ct),
                          ct);
  if (!cs_json_decode(L, body, len, bidx)) {
    const char *why =
        lua_pushfstring(L, "invalid JSON (%s)", lua_tostring(L, -1));
    protocol_error(L, status, body, len, why, ct);
    return 2;
  }
  if (lua_type(L, -1) != LUA_TTABLE) { /* cannot happen after '{' */
    lua_pop(L, 1);
    return protocol_error(L, status, body, len, "a JSON value", ct);
  }
  return 1;
}

/* ---- failures ----------------------------------------------------------- */

/* Pushes the field named by a pydantic loc list, or nil: the leading
 * "body"/"query"/"path"/"header"/"cookie" says where, not what, and is
 * dropped; names are joined by "." and indexes written [n]. A server may
 * send any list: at most LOC_PIECES pieces and about LOC_BYTES bytes are
 * kept, then "...", so a long one costs neither the stack nor memory. */
#define LOC_PIECES 32
#define LOC_BYTES 256
static void push_field(lua_State *L, int loc) {
  char out[LOC_BYTES + 32]; /* room for the last piece's start and "..." */
  size_t used = 0;
  int i, n, pieces = 0, cut = 0;
  if (lua_type(L, loc) != LUA_TTABLE) {
    lua_pushnil(L);
    return;
  }
  n = (int)lua_rawlen(L, loc);
  for (i = 1; i <= n; i++) {
    lua_Integer k;
    char num[32];
    size_t len, room;
    const char *s;
    if (cut || pieces == LOC_PIECES || used >= LOC_BYTES) {
      cut = 1;
      break;
    }
    lua_rawgeti(L, loc, i);
    if (lua_type(L, -1) == LUA_TNUMBER && cs_tointeger(L, -1, &k)) {
      len = (size_t)snprintf(num, sizeof num, "[%lld]", (long long)k);
      s = num;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      s = lua_tolstring(L, -1, &len);
      if (i == 1 && n > 1 &&
          (!strcmp(s, "body") || !strcmp(s, "query") || !strcmp(s, "path") ||
           !strcmp(s, "header") || !strcmp(s, "cookie"))) {
        lua_pop(L, 1);
        continue;
      }
      if (pieces > 0) out[used++] = '.';
    } else {
      lua_pop(L, 1); /* pydantic never sends others; ignore them */
      continue;
    }
    room = LOC_BYTES + 1 - used; /* used <= LOC_BYTES here */
    if (len > room) {            /* cut on a character; "..." follows */
      len = cs_utf8_cut(s, len, room);
      cut = 1;
    }
    memcpy(out + used, s, len);
    used += len;
    lua_pop(L, 1);
    pieces++;
  }
  if (cut) {
    memcpy(out + used, "...", 3);
    used += 3;
  }
  if (pieces == 0)
    lua_pushnil(L);
  else
    lua_pushlstring(L, out, used);
}

/* A string field of the table at idx, or NULL, for tables the module
 * made itself (decoded JSON, an error being built): no metatable, nothing
 * else holds them, so the table anchors the string. */
static const char *string_field(lua_State *L, int idx, const char *name) {
  const char *s = NULL;
  lua_getfield(L, idx, name);
  if (lua_type(L, -1) == LUA_TSTRING) s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s;
}

/* [-0, +1] Sets err.details from a pydantic detail list at didx (v1 or v2:
 * extra keys such as input, ctx and url are ignored) and pushes the summary
 * "field: message; field: message". The summary is built in its slot, one
 * detail at a time, so the stack stays at four slots whatever n is; item,
 * the index of the detail being read, names the slots below it:
 * item - 2 details, item - 1 summary. */
static void map_details(lua_State *L, int err, int didx) {
  int i, n = (int)lua_rawlen(L, didx), shown = 0;
  lua_createtable(L, n, 0); /* stack: details */
  lua_pushliteral(L, "");   /* stack: details summary */
  for (i = 1; i <= n; i++) {
    const char *msg = NULL, *type = NULL;
    int item;
    lua_rawgeti(L, didx, i); /* stack: details summary item */
    item = lua_gettop(L);
    lua_createtable(L, 0, 3); /* stack: details summary item entry */
    if (lua_type(L, item) == LUA_TTABLE) {
      lua_getfield(L, item, "loc"); /* stack: ... item entry loc */
      push_field(L, lua_gettop(L)); /* stack: ... item entry loc field */
      lua_setfield(L, -3, "field"); /* entry.field = field (nil: none) */
      lua_pop(L, 1);                /* stack: ... item entry */
      /* the strings stay anchored by item, which the stack holds */
      msg = string_field(L, item, "msg");
      if (msg == NULL) msg = string_field(L, item, "message");
      type = string_field(L, item, "type");
    } else if (lua_type(L, item) == LUA_TSTRING) {
      msg = lua_tostring(L, item);
    }
    if (msg == NULL) msg = type != NULL ? type : "invalid value";
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (type != NULL) {
      lua_pushstring(L, type);
      lua_setfield(L, -2, "type");
    }
    if (shown < DETAILS_SHOW) {
      /* sep is "; " after the first shown detail, else absent: field is
       * then at -2 - (shown > 0), below summary and sep */
      lua_getfield(L, -1, "field"); /* stack: ... item entry field */
      lua_pushvalue(L, item - 1);   /* stack: ... entry field summary */
      if (shown > 0) lua_pushliteral(L, "; "); /* ... summary sep */
      if (lua_isnil(L, -2 - (shown > 0))) {
        lua_pushstring(L, msg); /* stack: ... field summary [sep] msg */
        lua_concat(L, 1 + (shown > 0) + 1);
      } else { /* stack: ... field summary [sep] field ": " msg */
        lua_pushvalue(L, -2 - (shown > 0));
        lua_pushliteral(L, ": ");
        lua_pushstring(L, msg);
        lua_concat(L, 1 + (shown > 0) + 3);
      }                         /* stack: ... item entry field summary' */
      lua_replace(L, item - 1); /* stack: details summary' item entry field */
      lua_pop(L, 1);            /* stack: details summary' item entry */
      shown++;
    }
    lua_rawseti(L, item - 2, i); /* details[i] = entry; stack: ... item */
    lua_pop(L, 1);               /* stack: details summary */
  }
  if (n > shown) {
    lua_pushfstring(L, "; and %d more", n - shown);
    lua_concat(L, 2); /* stack: details summary */
  }
  lua_insert(L, -2);               /* stack: summary details */
  lua_setfield(L, err, "details"); /* stack: summary */
}

/* Copies the field name of the decoded body at src into err when it has the
 * given Lua type. */
static void copy_field(lua_State *L, int src, int err, const char *name,
                       int type) {
  lua_getfield(L, src, name);
  if (lua_type(L, -1) == type)
    lua_setfield(L, err, name);
  else
    lua_pop(L, 1);
}

/* Non-2xx: nil, err with the status-based code and whatever the body says. */
static int parse_failure(lua_State *L, lua_Integer status, int hidx,
                         const char *body, size_t len, double now) {
  const char *ct = header(L, hidx, "content-type", "Content-Type");
  char c = first_char(body, len);
  int err, data = 0;
  const char *message = NULL;
  double wait;
  cs_push_error(L, code_for_status(status), status, body, len);
  err = lua_gettop(L); /* stack: err */
  /* FastAPI errors are JSON objects; a proxy's 502 page is not, and a JSON
   * body under a non-JSON type is not trusted either */
  if (c == '{' && (ct == NULL || is_json_type(ct))) {
    if (cs_json_decode(L, body, len, 0) && lua_type(L, -1) == LUA_TTABLE)
      data = lua_gettop(L); /* stack: err data */
    else
      lua_pop(L, 1);
  }
  if (data != 0) {
    lua_getfield(L, data, "detail"); /* stack: err data detail */
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_setfield(L, err, "message");
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      map_details(L, err, lua_gettop(L)); /* stack: err data detail summary */
      if (lua_rawlen(L, -1) > 0)
        lua_setfield(L, err, "message");
      else
        lua_pop(L, 1); /* an empty list says nothing */
      lua_pop(L, 1);   /* detail */
    } else {
      lua_pop(L, 1);
      /* not ColdSend's shape; other APIs' keys give a message still */
      message = string_field(L, data, "message");
      if (message == NULL) message = string_field(L, data, "error");
      if (message != NULL) {
        lua_pushstring(L, message);
        lua_setfield(L, err, "message");
      }
    }
    copy_field(L, data, err, "required", LUA_TTABLE);
    copy_field(L, data, err, "granted", LUA_TTABLE);
    copy_field(L, data, err, "error", LUA_TSTRING);
    copy_field(L, data, err, "missing_requirements", LUA_TTABLE);
    copy_field(L, data, err, "is_launch_ready", LUA_TBOOLEAN);
  }
  message = string_field(L, err, "message");
  if (message == NULL) {
    const char *text = status_text(status);
    if (data != 0)
      lua_pushfstring(L, "HTTP %d%s%s", (int)status, text ? " " : "",
                      text ? text : "");
    else if (c == 0)
      lua_pushfstring(L, "HTTP %d (empty body)", (int)status);
    else if (ct != NULL)
      lua_pushfstring(L, "HTTP %d (non-JSON body: %s)", (int)status, ct);
    else
      lua_pushfstring(L, "HTTP %d (non-JSON body)", (int)status);
    lua_setfield(L, err, "message");
    message = string_field(L, err, "message");
  }
  if (retry_after(L, hidx, status, message, now, &wait)) {
    lua_pushinteger(L, (lua_Integer)wait);
    lua_setfield(L, err, "retry_after");
  }
  lua_settop(L, err); /* stack: err */
  cs_set_error_metatable(L, err);
  lua_pushnil(L);
  lua_insert(L, -2); /* stack: nil err */
  return 2;
}

/* core.parse_response(status, headers, body [, now]) -> data | nil, err.
 * now (wall-clock seconds) is for tests of HTTP-date Retry-After values. */
static int response_parse(lua_State *L) {
  lua_Integer status;
  size_t len = 0;
  const char *body = "";
  int hidx = 0, bidx = 0;
  double now;
  if (!cs_tointeger(L, 1, &status) || status < 100 || status > 999)
    return luaL_argerror(L, 1, "HTTP status (integer 100..999) expected");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    hidx = 2;
  }
  if (!lua_isnoneornil(L, 3)) {
    body = luaL_checklstring(L, 3, &len); /* (a number becomes a string) */
    bidx = 3;
  }
  now = lua_isnoneornil(L, 4) ? wall_now() : luaL_checknumber(L, 4);
  if (status >= 200 && status <= 299)
    return parse_success(L, status, hidx, bidx, body, len);
  return parse_failure(L, status, hidx, body, len, now);
}

/* core.server_wait(status, headers [, message [, now]]) -> seconds | nil:
 * the one reading of the server's stated wait (Retry-After, else
 * X-RateLimit-Reset when the window is spent, else a 429's "Retry after N
 * seconds"), as err.retry_after gives it; the retry loop and the rate
 * limiter use it for answers that are not errors. */
static int response_server_wait(lua_State *L) {
  lua_Integer status;
  double now, wait;
  const char *message = luaL_optstring(L, 3, NULL);
  if (!cs_tointeger(L, 1, &status))
    return luaL_argerror(L, 1, "HTTP status (integer) expected");
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  now = lua_isnoneornil(L, 4) ? wall_now() : luaL_checknumber(L, 4);
  if (!retry_after(L, lua_isnoneornil(L, 2) ? 0 : 2, status, message, now,
                   &wait))
    return 0;
  lua_pushinteger(L, (lua_Integer)wait);
  return 1;
}

/* core.parse_http_date(s) -> Unix seconds | nil: the reading of an HTTP
 * date that server_wait uses for Retry-After (nil for anything else,
 * a value that is not a string included). */
static int response_parse_http_date(lua_State *L) {
  double t;
  if (lua_type(L, 1) != LUA_TSTRING || !parse_http_date(lua_tostring(L, 1), &t))
    return 0;
  lua_pushinteger(L, (lua_Integer)t);
  return 1;
}

static const luaL_Reg response_funcs[] = {
    {"parse_response", response_parse},
    {"server_wait", response_server_wait},
    {"parse_http_date", response_parse_http_date},
    {NULL, NULL}};

void cs_response_open(lua_State *L) {
  luaL_setfuncs(L, response_funcs, 0);
}
