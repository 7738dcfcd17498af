/* http_request.c: the request side of the libcurl transport: reading the
 * request table (may raise: nothing is held yet), then what libcurl sends
 * from it: file parts, the multipart body and the header list. */
#define _POSIX_C_SOURCE 200809L /* fseeko, fileno */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "http.h"

/* ---- reading the request table (may raise: nothing is held yet) --------- */

static const char *const METHODS[] = {"GET",    "POST",  "PUT",
                                      "DELETE", "PATCH", NULL};

/* The characters of an HTTP token (RFC 9110 §5.6.2), by byte. */
static const unsigned char TCHAR[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1,
    ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
    ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
    ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,
    ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1};

/* An optional string field of the table at t, or def. The string stays on
 * the stack: a table's __index may compute a fresh one, and a later
 * metamethod may clear the field, so the table is no anchor. */
static const char *top_string(lua_State *L, const char *what, const char *name,
                              size_t *len, const char *def) {
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (len != NULL) *len = def ? strlen(def) : 0;
    return def;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "bad %s field '%s' (string expected, got %s)", what, name,
               luaL_typename(L, -1));
  return lua_tolstring(L, -1, len);
}

const char *http_opt_string(lua_State *L, int t, const char *what,
                            const char *name, size_t *len, const char *def) {
  luaL_checkstack(L, 2, "too many request fields");
  lua_getfield(L, t, name);
  return top_string(L, what, name, len, def);
}

/* The value at the top (popped) as an optional positive number of
 * seconds, converted to milliseconds. */
static long top_millis(lua_State *L, const char *name, double def) {
  double s = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0))
      luaL_error(L, "bad request field '%s' (positive number expected)", name);
    s = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  if (s > 86400.0 * 24) s = 86400.0 * 24; /* keeps the product in a long */
  return s * 1000 < 1 ? 1 : (long)(s * 1000);
}

/* The value at the top (popped) as an optional non-negative integer; def
 * when it is nil. */
static lua_Integer top_count(lua_State *L, const char *what, const char *name,
                             lua_Integer def) {
  lua_Integer v = def;
  if (!lua_isnil(L, -1) && (!cs_tointeger(L, -1, &v) || v < 0))
    luaL_error(L, "bad %s field '%s' (non-negative integer expected)", what,
               name);
  lua_pop(L, 1);
  return v;
}

lua_Integer http_opt_count(lua_State *L, int t, const char *what,
                           const char *name, lua_Integer def) {
  lua_getfield(L, t, name);
  return top_count(L, what, name, def);
}

/* Pushes the request's field name: from the table at req, or, with the
 * loop's values at ov (not 0), from the slot of those it passes. */
static void push_field(lua_State *L, int req, int ov, int slot,
                       const char *name) {
  luaL_checkstack(L, 2, "too many request fields");
  if (ov != 0)
    lua_pushvalue(L, ov + slot);
  else
    lua_getfield(L, req, name);
}

/* Checks req.headers and records each header's name and value in r. A CR
 * or LF in a header would let a value inject headers of its own: that is
 * misuse, and raises before anything is sent. The value is never quoted
 * in the message (it may be a key). Copies of each name and value (a
 * number as its string form) stay on the stack, above the headers table,
 * for the rest of the call: the table itself may change under us (a
 * finaliser run by the collector is Lua code). */
static void read_headers(lua_State *L, cs_request *r) {
  int headers; /* the value of req.headers, pushed by the caller */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad request field 'headers' (table expected, got %s)",
               luaL_typename(L, -1));
  headers = lua_gettop(L);
  lua_pushnil(L);
  /* each name and value lua_next gives stays where it is, out of the
   * table's reach; a copy of the name is the key of the next lua_next */
  while (lua_next(L, headers) != 0) { /* ..., name, value */
    size_t nlen, vlen, i;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad header name (string expected, got %s)",
                 luaL_typename(L, -2));
    name = lua_tolstring(L, -2, &nlen);
    for (i = 0; i < nlen; i++)
      if (!TCHAR[(unsigned char)name[i]]) break;
    if (nlen == 0 || i < nlen)
      luaL_error(L, "bad header name '%s' (not an HTTP token)", name);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "bad header '%s' (string value expected, got %s)", name,
                 luaL_typename(L, -1));
    if (r->nheaders == MAX_REQ_HEADERS)
      luaL_error(L, "too many request headers (at most %d)", MAX_REQ_HEADERS);
    luaL_checkstack(L, 3, "too many request headers");
    value = lua_tolstring(L, -1, &vlen); /* a number: its string, here */
    if (memchr(value, '\r', vlen) != NULL ||
        memchr(value, '\n', vlen) != NULL || memchr(value, '\0', vlen) != NULL)
      luaL_error(L, "bad header '%s' (value contains CR, LF or NUL)", name);
    if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0)
      r->has_type = 1;
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].name_len = nlen;
    r->headers[r->nheaders].value_len = vlen;
    r->headers[r->nheaders++].value = value;
    lua_pushvalue(L, -2); /* the key for lua_next */
  }
}

static void read_parts(lua_State *L, int req, cs_request *r) {
  int i, n, list;
  lua_getfield(L, req, "multipart");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad request field 'multipart' (table expected, got %s)",
               luaL_typename(L, -1));
  list = lua_gettop(L);
  n = (int)lua_rawlen(L, list);
  if (n == 0) luaL_error(L, "bad request field 'multipart' (no parts)");
  if (n > MAX_PARTS)
    luaL_error(L, "bad request field 'multipart' (at most %d parts)",
               MAX_PARTS);
  for (i = 1; i <= n; i++) {
    cs_part *p = &r->parts[i - 1];
    int t;
    luaL_checkstack(L, 2, "too many multipart parts");
    lua_rawgeti(L, list, i);
    t = lua_gettop(L);
    if (!lua_istable(L, t))
      luaL_error(L, "bad multipart part #%d (table expected, got %s)", i,
                 luaL_typename(L, t));
    p->name = http_opt_string(L, t, "multipart", "name", NULL, NULL);
    if (p->name == NULL)
      luaL_error(L, "bad multipart part #%d (field 'name' missing)", i);
    p->value = http_opt_string(L, t, "multipart", "value", &p->value_len, NULL);
    p->path = http_opt_string(L, t, "multipart", "file", NULL, NULL);
    if ((p->value == NULL) == (p->path == NULL))
      luaL_error(L, "bad multipart part #%d (either 'value' or 'file')", i);
    p->filename = http_opt_string(L, t, "multipart", "filename", NULL, NULL);
    p->content_type =
        http_opt_string(L, t, "multipart", "content_type", NULL, NULL);
    p->prefix =
        http_opt_string(L, t, "multipart", "prefix", &p->prefix_len, "");
    p->offset = (curl_off_t)http_opt_count(L, t, "multipart", "offset", 0);
    p->length = (curl_off_t)http_opt_count(L, t, "multipart", "length", -1);
    p->pos = 0;
    p->fp = NULL;
    p->short_read = 0;
    r->nparts = i; /* the part table and its strings stay on the stack */
  }
}

/* A proxy URL: "" (none) or scheme://host[:port] with a scheme libcurl
 * tunnels through; spaces and controls refused. Raises naming what. */
void http_check_proxy(lua_State *L, const char *what, const char *proxy,
                      size_t len) {
  static const char *const schemes[] = {"http://", "https://", "socks5://",
                                        "socks5h://", NULL};
  size_t i;
  int k;
  if (proxy == NULL || len == 0) return;
  for (i = 0; i < len; i++)
    if ((unsigned char)proxy[i] <= 0x20 || proxy[i] == 0x7f)
      luaL_error(L, "bad %s 'proxy' (contains a space or control)", what);
  for (k = 0; schemes[k] != NULL; k++)
    if (strncasecmp(proxy, schemes[k], strlen(schemes[k])) == 0 &&
        len > strlen(schemes[k]))
      return;
  luaL_error(L,
             "bad %s 'proxy' (http://, https://, socks5:// or socks5h:// "
             "host[:port] expected)",
             what);
}

/* Reads the request table at req into r (def_ca, def_proxy and def_max_body
 * apply when it does not say); raises on a bad field. With ov (not 0),
 * the headers, timeout, connect_timeout, ca_file and max_body are the five
 * values from stack index ov (the request loop passes them so, not in the
 * table). Every string r points to stays on the Lua stack until the
 * caller returns. */
void http_read_request(lua_State *L, int req, cs_request *r,
                       size_t def_max_body, const char *def_ca,
                       const char *def_proxy, int ov) {
  int i;
  size_t url_len, proxy_len;
  luaL_checktype(L, req, LUA_TTABLE);
  r->has_type = 0;
  r->nheaders = r->nparts = 0;
  r->method = http_opt_string(L, req, "request", "method", NULL, "GET");
  for (i = 0; METHODS[i] != NULL && strcmp(METHODS[i], r->method) != 0; i++) {
  }
  if (METHODS[i] == NULL)
    luaL_error(L,
               "bad request field 'method' (GET, POST, PUT, DELETE or PATCH "
               "expected, got '%s')",
               r->method);
  r->url = http_opt_string(L, req, "request", "url", &url_len, NULL);
  if (r->url == NULL) luaL_error(L, "bad request field 'url' (missing)");
  if (strncasecmp(r->url, "http://", 7) != 0 &&
      strncasecmp(r->url, "https://", 8) != 0)
    luaL_error(L, "bad request field 'url' (http:// or https:// expected)");
  { /* spaces, controls, NULs */
    const unsigned char *u = (const unsigned char *)r->url, *end = u + url_len;
    while (u<end && * u> 0x20 && *u != 0x7f) u++;
    if (u < end)
      luaL_error(L, "bad request field 'url' (contains a space or control)");
  }
  r->body = http_opt_string(L, req, "request", "body", &r->body_len, NULL);
  lua_getfield(L, req, "fresh");
  r->fresh = lua_toboolean(L, -1);
  lua_pop(L, 1);
  push_field(L, req, ov, 1, "timeout");
  r->timeout_ms = top_millis(L, "timeout", DEFAULT_TIMEOUT);
  push_field(L, req, ov, 2, "connect_timeout");
  r->connect_ms = top_millis(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
  push_field(L, req, ov, 3, "ca_file");
  r->ca_file = top_string(L, "request", "ca_file", NULL, def_ca);
  r->proxy = http_opt_string(L, req, "request", "proxy", &proxy_len, def_proxy);
  http_check_proxy(L, "request field", r->proxy, proxy_len);
  push_field(L, req, ov, 4, "max_body");
  r->max_body =
      (size_t)top_count(L, "request", "max_body", (lua_Integer)def_max_body);
  push_field(L, req, ov, 0, "headers");
  read_headers(L, r);
  read_parts(L, req, r);
  if (r->nparts > 0 && r->body != NULL)
    luaL_error(L, "bad request (both 'body' and 'multipart')");
  if (r->nparts > 0 &&
      (!strcmp(r->method, "GET") || !strcmp(r->method, "DELETE")))
    luaL_error(L, "bad request (multipart needs POST, PUT or PATCH)");
  if (r->body != NULL && !strcmp(r->method, "GET"))
    luaL_error(L, "bad request (a GET has no body)");
}

/* ---- file parts and the multipart body --------------------------------- */

void http_close_files(cs_request *r) {
  int i;
  for (i = 0; i < r->nparts; i++) {
    if (r->parts[i].fp != NULL) fclose(r->parts[i].fp);
    r->parts[i].fp = NULL;
  }
}

/* Streams a file part: the prefix, then the file's range, read in the
 * pieces libcurl asks for, never whole into memory. */
static size_t on_part_read(char *out, size_t size, size_t nitems, void *arg) {
  cs_part *p = (cs_part *)arg;
  size_t want = size * nitems, done = 0;
  curl_off_t plen = (curl_off_t)p->prefix_len, total = plen + p->length;
  while (done < want && p->pos < total) {
    size_t n = want - done;
    if (p->pos < plen) {
      if ((curl_off_t)n > plen - p->pos) n = (size_t)(plen - p->pos);
      memcpy(out + done, p->prefix + p->pos, n);
    } else {
      if ((curl_off_t)n > total - p->pos) n = (size_t)(total - p->pos);
      n = fread(out + done, 1, n, p->fp);
      if (n == 0) {
        /* the file shrank since it was opened: sending fewer bytes than
         * announced would corrupt the upload */
        p->short_read = 1;
        return CURL_READFUNC_ABORT;
      }
    }
    done += n;
    p->pos += (curl_off_t)n;
  }
  return done;
}

/* libcurl rewinds parts before sending them (and again should it have to
 * resend); only absolute positions within prefix + range are possible. */
static int on_part_seek(void *arg, curl_off_t offset, int origin) {
  cs_part *p = (cs_part *)arg;
  curl_off_t plen = (curl_off_t)p->prefix_len, in_file;
  if (origin != SEEK_SET || offset < 0 || offset > plen + p->length)
    return CURL_SEEKFUNC_CANTSEEK;
  in_file = offset > plen ? offset - plen : 0;
  if (fseeko(p->fp, (off_t)(p->offset + in_file), SEEK_SET) != 0)
    return CURL_SEEKFUNC_FAIL;
  p->pos = offset;
  return CURL_SEEKFUNC_OK;
}

/* Opens every file part and checks its range; 0 with errbuf set when one
 * cannot be used (nothing has been sent). */
int http_open_files(cs_request *r, cs_xfer *x) {
  int i;
  for (i = 0; i < r->nparts; i++) {
    cs_part *p = &r->parts[i];
    struct stat st;
    if (p->path == NULL) continue;
    p->fp = fopen(p->path, "rb");
    if (p->fp == NULL || fstat(fileno(p->fp), &st) != 0) {
      snprintf(x->errbuf, sizeof x->errbuf, "cannot read '%s': %s", p->path,
               strerror(errno));
      return 0;
    }
    if (!S_ISREG(st.st_mode)) {
      snprintf(x->errbuf, sizeof x->errbuf, "cannot read '%s': not a file",
               p->path);
      return 0;
    }
    /* offset + length could overflow: compared one at a time */
    if (p->length < 0) p->length = (curl_off_t)st.st_size - p->offset;
    if (p->length < 0 || p->offset > (curl_off_t)st.st_size ||
        p->length > (curl_off_t)st.st_size - p->offset) {
      snprintf(x->errbuf, sizeof x->errbuf,
               "file '%s' has %lld bytes, the part needs %lld from offset %lld",
               p->path, (long long)st.st_size, (long long)p->length,
               (long long)p->offset);
      return 0;
    }
    if (fseeko(p->fp, (off_t)p->offset, SEEK_SET) != 0) {
      snprintf(x->errbuf, sizeof x->errbuf, "cannot seek in '%s': %s", p->path,
               strerror(errno));
      return 0;
    }
  }
  return 1;
}

CURLcode http_build_mime(CURL *curl, cs_request *r, cs_xfer *x) {
  int i;
  CURLcode rc = CURLE_OK;
  x->mime = curl_mime_init(curl);
  if (x->mime == NULL) return CURLE_OUT_OF_MEMORY;
  for (i = 0; i < r->nparts && rc == CURLE_OK; i++) {
    cs_part *p = &r->parts[i];
    curl_mimepart *part = curl_mime_addpart(x->mime);
    if (part == NULL) return CURLE_OUT_OF_MEMORY;
    rc = curl_mime_name(part, p->name);
    if (rc == CURLE_OK && p->value != NULL)
      rc = curl_mime_data(part, p->value, p->value_len);
    if (rc == CURLE_OK && p->path != NULL)
      rc = curl_mime_data_cb(part, (curl_off_t)p->prefix_len + p->length,
                             on_part_read, on_part_seek, NULL, p);
    if (rc == CURLE_OK && p->filename != NULL)
      rc = curl_mime_filename(part, p->filename);
    if (rc == CURLE_OK && p->content_type != NULL)
      rc = curl_mime_type(part, p->content_type);
  }
  return rc;
}

/* ---- the header list ---------------------------------------------------- */

/* Appends "Name: value" (or "Name;" for an empty value, libcurl's syntax
 * for it) to the list; 0 when memory runs out. */
static int append_header(cs_xfer *x, const cs_header *hd) {
  char small[512], *line = small;
  size_t n = hd->name_len + 2 + hd->value_len + 1;
  struct curl_slist *s;
  if (n > sizeof small && (line = (char *)malloc(n)) == NULL) return 0;
  memcpy(line, hd->name, hd->name_len);
  n = hd->name_len;
  if (hd->value_len == 0) {
    line[n++] = ';';
  } else {
    line[n++] = ':';
    line[n++] = ' ';
    memcpy(line + n, hd->value, hd->value_len);
    n += hd->value_len;
  }
  line[n] = '\0';
  s = curl_slist_append(x->slist, line);
  if (line != small) free(line);
  if (s == NULL) return 0;
  x->slist = s;
  return 1;
}

/* 1 when line is "Name: value" (or "Name;") as append_header writes hd.
 * Neither holds a NUL (read_headers), so strncmp compares them exactly. */
static int line_is(const char *line, const cs_header *hd) {
  if (strncmp(line, hd->name, hd->name_len) != 0) return 0;
  line += hd->name_len;
  if (hd->value_len == 0) return line[0] == ';' && line[1] == '\0';
  if (line[0] != ':' || line[1] != ' ') return 0;
  line += 2;
  return strncmp(line, hd->value, hd->value_len) == 0 &&
         line[hd->value_len] == '\0';
}

/* 1 when the list l holds exactly the lines set_options would build for r
 * (after "Expect:" and no_type's "Content-Type:"). */
static int list_is(const struct curl_slist *l, const cs_request *r,
                   int no_type) {
  int i;
  if (l == NULL || strcmp(l->data, "Expect:") != 0) return 0;
  l = l->next;
  if (no_type) {
    if (l == NULL || strcmp(l->data, "Content-Type:") != 0) return 0;
    l = l->next;
  }
  for (i = 0; i < r->nheaders; i++, l = l->next)
    if (l == NULL || !line_is(l->data, &r->headers[i])) return 0;
  return l == NULL;
}

/* The request's header list: the object's kept one when it is the same,
 * else built into x->slist (and kept, when x is the object's own). */
CURLcode http_header_list(cs_http *h, cs_xfer *x, const cs_request *r,
                          struct curl_slist **list) {
  int i, own = x == &h->x;
  /* "Expect:" drops the 100-continue round trip libcurl adds to big
   * uploads; "Content-Type:" drops the form type it adds to POSTFIELDS */
  int no_type = !r->has_type && r->nparts == 0 &&
                strcmp(r->method, "GET") != 0 &&
                strcmp(r->method, "DELETE") != 0;
  if (own && list_is(h->kept, r, no_type)) {
    *list = h->kept;
    return CURLE_OK;
  }
  x->slist = curl_slist_append(NULL, "Expect:");
  if (x->slist == NULL) return CURLE_OUT_OF_MEMORY;
  if (no_type) {
    struct curl_slist *s = curl_slist_append(x->slist, "Content-Type:");
    if (s == NULL) return CURLE_OUT_OF_MEMORY;
    x->slist = s;
  }
  for (i = 0; i < r->nheaders; i++)
    if (!append_header(x, &r->headers[i])) return CURLE_OUT_OF_MEMORY;
  *list = x->slist;
  if (own) {
    curl_slist_free_all(h->kept);
    h->kept = x->slist;
    x->slist = NULL;
  }
  return CURLE_OK;
}
