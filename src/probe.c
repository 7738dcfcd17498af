/* probe.c: core.probe, one diagnostic GET for `coldsend doctor`, and
 * core.curl_info, what the libcurl in use is built with.
 *
 * core.probe{url=, headers=, ca_file=, proxy=, timeout=, connect_timeout=}
 * performs one GET on a fresh easy handle (no connection is reused, so the
 * DNS, connect and TLS times are this request's) and always returns a
 * table: {curl_code, error, status, head, body, dns, connect, tls,
 * first_byte, total, ssl_verify_result, ca_file, ca_path, ip, port}.
 * Times are seconds since the start, as libcurl's CURLINFO_*_TIME_T.
 * `proxy` is used as CURLOPT_PROXY ("" for none: the caller decides which
 * proxy applies, the environment is not read). Only GET, no redirects,
 * TLS always verified. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define PROBE_TYPE "coldsend.probe_state"
#define PROBE_MAX_BODY (64 * 1024)
#define PROBE_MAX_HEAD (64 * 1024)
#define PROBE_MAX_HEADERS 16

typedef struct {
  char *p;
  size_t len, max;
} probe_buf;

/* What a probe holds outside Lua: in a userdata whose __gc frees it, so
 * that a Lua error while the result is built leaks nothing. */
typedef struct {
  CURL *curl;
  struct curl_slist *slist;
  probe_buf body, head;
  char errbuf[CURL_ERROR_SIZE];
} probe_state;

static void probe_free(probe_state *s) {
  if (s->curl != NULL) curl_easy_cleanup(s->curl);
  if (s->slist != NULL) curl_slist_free_all(s->slist);
  free(s->body.p);
  free(s->head.p);
  s->curl = NULL;
  s->slist = NULL;
  s->body.p = s->head.p = NULL;
  s->body.len = s->head.len = 0;
}

static int probe_gc(lua_State *L) {
  probe_free((probe_state *)luaL_checkudata(L, 1, PROBE_TYPE));
  return 0;
}

/* Keeps at most b->max bytes and drops the rest: a probe reports, it does
 * not need a whole answer. */
static size_t probe_keep(probe_buf *b, const char *data, size_t n) {
  size_t take = b->max - b->len < n ? b->max - b->len : n;
  if (take > 0) {
    char *p = (char *)realloc(b->p, b->len + take);
    if (p == NULL) return 0; /* aborts the transfer */
    memcpy(p + b->len, data, take);
    b->p = p;
    b->len += take;
  }
  return n;
}

static size_t probe_on_body(char *data, size_t size, size_t nmemb, void *ud) {
  return probe_keep(&((probe_state *)ud)->body, data, size * nmemb);
}

static size_t probe_on_header(char *data, size_t size, size_t nitems,
                              void *ud) {
  probe_state *s = (probe_state *)ud;
  size_t n = size * nitems;
  /* only the final response's headers (after a 100 or a proxy's 200) */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) s->head.len = 0;
  return probe_keep(&s->head, data, n);
}

/* An optional string field of the request table at 1, without NULs. The
 * string stays on the stack: __index may have made it, so the table is no
 * anchor. */
static const char *probe_string(lua_State *L, const char *name) {
  const char *v;
  size_t len;
  luaL_checkstack(L, 2, "probe");
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "bad probe field '%s' (string expected, got %s)", name,
               luaL_typename(L, -1));
  v = lua_tolstring(L, -1, &len);
  if (strlen(v) != len)
    luaL_error(L, "bad probe field '%s' (contains a NUL)", name);
  return v;
}

static long probe_millis(lua_State *L, const char *name, double def) {
  double s = def;
  lua_getfield(L, 1, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) ||
        lua_tonumber(L, -1) > 3600)
      luaL_error(L, "bad probe field '%s' (seconds in (0, 3600] expected)",
                 name);
    s = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return s * 1000 < 1 ? 1 : (long)(s * 1000);
}

/* Checks one "Name: value" header line of the request: a token name, no
 * CR, LF or NUL in the value (which is never quoted: it may be a key). */
static void probe_check_header(lua_State *L, const char *name, size_t nlen,
                               const char *value, size_t vlen) {
  size_t i;
  if (nlen == 0) luaL_error(L, "bad probe header name (empty)");
  for (i = 0; i < nlen; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= 0x20 || c >= 0x7f || c == ':')
      luaL_error(L, "bad probe header name '%s' (not an HTTP token)", name);
  }
  for (i = 0; i < vlen; i++)
    if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
      luaL_error(L, "bad probe header '%s' (value contains CR, LF or NUL)",
                 name);
}

/* Builds the header list from the n name, value pairs at first; 0 when
 * memory runs out. */
static int probe_headers(lua_State *L, int first, int n, probe_state *s) {
  int i;
  for (i = 0; i < n; i++) {
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, first + 2 * i, &nlen);
    const char *value = lua_tolstring(L, first + 2 * i + 1, &vlen);
    luaL_Buffer b;
    struct curl_slist *l;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, name, nlen);
    luaL_addstring(&b, ": ");
    luaL_addlstring(&b, value, vlen);
    luaL_pushresult(&b);
    l = curl_slist_append(s->slist, lua_tostring(L, -1));
    lua_pop(L, 1); /* the line */
    if (l == NULL) return 0;
    s->slist = l;
  }
  return 1;
}

/* Reads and checks req.headers (a table of string names to string values)
 * before anything is allocated. Each name and value is copied onto the
 * stack below the table as it is checked, and only the copies are read
 * later: a finaliser (Lua code run by any allocation) may change the
 * table once the walk is over. Returns the number of pairs, the first at
 * *first. Nothing here allocates, so nothing runs during the walk. */
static int probe_check_headers(lua_State *L, int *first) {
  int t, n = 0;
  lua_getfield(L, 1, "headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad probe field 'headers' (table expected, got %s)",
               luaL_typename(L, -1));
  t = *first = lua_gettop(L);
  luaL_checkstack(L, 2 * PROBE_MAX_HEADERS + 4, "probe headers");
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    size_t nlen, vlen;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L,
                 "bad probe field 'headers' (string names and values "
                 "expected)");
    name = lua_tolstring(L, -2, &nlen);
    value = lua_tolstring(L, -1, &vlen);
    probe_check_header(L, name, nlen, value, vlen);
    if (++n > PROBE_MAX_HEADERS)
      luaL_error(L, "bad probe field 'headers' (at most %d)",
                 PROBE_MAX_HEADERS);
    lua_pushvalue(L, -2); /* ..., copies, table, name, value, name */
    lua_insert(L, t);
    lua_insert(L, t + 1); /* the value after its name */
    t += 2;
  }
  return n;
}

#define PROBE_SET(opt, val) \
  if (rc == CURLE_OK) rc = curl_easy_setopt(curl, opt, val)

static void push_seconds(lua_State *L, CURL *curl, CURLINFO info,
                         const char *name) {
  curl_off_t us = 0;
  if (curl_easy_getinfo(curl, info, &us) != CURLE_OK) us = 0;
  lua_pushnumber(L, (lua_Number)us / 1e6);
  lua_setfield(L, -2, name);
}

static void push_info_string(lua_State *L, CURL *curl, CURLINFO info,
                             const char *name) {
  char *v = NULL;
  if (curl_easy_getinfo(curl, info, &v) == CURLE_OK && v != NULL) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, name);
  }
}

static int probe(lua_State *L) {
  const char *url, *ca_file, *proxy;
  long timeout_ms, connect_ms, status = 0, verify = 0, port = 0;
  int headers = 0, nheaders, i;
  size_t url_len;
  probe_state *s;
  CURL *curl;
  CURLcode rc = CURLE_OK;

  luaL_checktype(L, 1, LUA_TTABLE);
  url = probe_string(L, "url");
  if (url == NULL) return luaL_error(L, "bad probe field 'url' (missing)");
  url_len = strlen(url);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return luaL_error(L,
                      "bad probe field 'url' (http:// or https:// "
                      "expected)");
  for (i = 0; i < (int)url_len; i++)
    if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
      return luaL_error(L,
                        "bad probe field 'url' (contains a space or "
                        "control)");
  ca_file = probe_string(L, "ca_file");
  proxy = probe_string(L, "proxy");
  timeout_ms = probe_millis(L, "timeout", 20);
  connect_ms = probe_millis(L, "connect_timeout", 10);
  nheaders = probe_check_headers(L, &headers);

  cs_ensure_curl(L);
  s = (probe_state *)cs_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, PROBE_TYPE);
  s->body.max = PROBE_MAX_BODY;
  s->head.max = PROBE_MAX_HEAD;
  s->curl = curl = curl_easy_init();
  if (curl == NULL) return luaL_error(L, "cannot create a libcurl handle");
  if (nheaders > 0 && !probe_headers(L, headers, nheaders, s))
    return luaL_error(L, "not enough memory for the probe");

  PROBE_SET(CURLOPT_URL, url);
  PROBE_SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  PROBE_SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  PROBE_SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  PROBE_SET(CURLOPT_FOLLOWLOCATION, 0L);
  PROBE_SET(CURLOPT_SSL_VERIFYPEER, 1L);
  PROBE_SET(CURLOPT_SSL_VERIFYHOST, 2L);
  PROBE_SET(CURLOPT_TIMEOUT_MS, timeout_ms);
  PROBE_SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  PROBE_SET(CURLOPT_FRESH_CONNECT, 1L);
  PROBE_SET(CURLOPT_FORBID_REUSE, 1L);
  PROBE_SET(CURLOPT_PROXY, proxy != NULL ? proxy : "");
  if (proxy != NULL && proxy[0] != '\0') PROBE_SET(CURLOPT_HTTPPROXYTUNNEL, 1L);
  if (ca_file != NULL) PROBE_SET(CURLOPT_CAINFO, ca_file);
  PROBE_SET(CURLOPT_HTTPHEADER, s->slist);
  PROBE_SET(CURLOPT_WRITEFUNCTION, probe_on_body);
  PROBE_SET(CURLOPT_WRITEDATA, s);
  PROBE_SET(CURLOPT_HEADERFUNCTION, probe_on_header);
  PROBE_SET(CURLOPT_HEADERDATA, s);
  PROBE_SET(CURLOPT_ERRORBUFFER, s->errbuf);
  if (rc != CURLE_OK)
    return luaL_error(L, "libcurl refused an option (%s)",
                      curl_easy_strerror(rc));
  rc = curl_easy_perform(curl);
  if (rc == CURLE_OUT_OF_MEMORY)
    return luaL_error(L, "not enough memory for the probe");
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(curl, CURLINFO_SSL_VERIFYRESULT, &verify);
  curl_easy_getinfo(curl, CURLINFO_PRIMARY_PORT, &port);

  lua_createtable(L, 0, 16);
  lua_pushinteger(L, (lua_Integer)rc);
  lua_setfield(L, -2, "curl_code");
  if (rc != CURLE_OK) {
    lua_pushstring(L, s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    lua_setfield(L, -2, "error");
  }
  lua_pushinteger(L, (lua_Integer)status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, s->head.p ? s->head.p : "", s->head.len);
  lua_setfield(L, -2, "head");
  lua_pushlstring(L, s->body.p ? s->body.p : "", s->body.len);
  lua_setfield(L, -2, "body");
  push_seconds(L, curl, CURLINFO_NAMELOOKUP_TIME_T, "dns");
  push_seconds(L, curl, CURLINFO_CONNECT_TIME_T, "connect");
  push_seconds(L, curl, CURLINFO_APPCONNECT_TIME_T, "tls");
  push_seconds(L, curl, CURLINFO_STARTTRANSFER_TIME_T, "first_byte");
  push_seconds(L, curl, CURLINFO_TOTAL_TIME_T, "total");
  lua_pushinteger(L, (lua_Integer)verify);
  lua_setfield(L, -2, "ssl_verify_result");
  push_info_string(L, curl, CURLINFO_PRIMARY_IP, "ip");
  if (port > 0) {
    lua_pushinteger(L, (lua_Integer)port);
    lua_setfield(L, -2, "port");
  }
  if (ca_file != NULL) {
    lua_pushstring(L, ca_file);
    lua_setfield(L, -2, "ca_file");
  } else {
#if LIBCURL_VERSION_NUM >= 0x075400
    push_info_string(L, curl, CURLINFO_CAINFO, "ca_file");
    push_info_string(L, curl, CURLINFO_CAPATH, "ca_path");
#endif
  }
  probe_free(s);
  return 1;
}

/* core.curl_info() -> {version=, ssl_version=, host=, features = {...}} */
static int curl_info(lua_State *L) {
  const curl_version_info_data *d;
  cs_ensure_curl(L);
  d = curl_version_info(CURLVERSION_NOW);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, d->version);
  lua_setfield(L, -2, "version");
  if (d->ssl_version != NULL) {
    lua_pushstring(L, d->ssl_version);
    lua_setfield(L, -2, "ssl_version");
  }
  lua_pushstring(L, d->host);
  lua_setfield(L, -2, "host");
  lua_pushboolean(L, (d->features & CURL_VERSION_SSL) != 0);
  lua_setfield(L, -2, "tls");
  return 1;
}

static const luaL_Reg probe_funcs[] = {
    {"probe", probe}, {"curl_info", curl_info}, {NULL, NULL}};

void cs_probe_open(lua_State *L) {
  luaL_newmetatable(L, PROBE_TYPE);
  lua_pushcfunction(L, probe_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, probe_funcs, 0);
}
