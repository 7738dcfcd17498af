/* http.c: the libcurl transport: coldsend.http objects and http_perform. */
#define _POSIX_C_SOURCE 200809L /* fseeko, fileno */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core.h"

#define HTTP_TYPE "coldsend.http"
#define XFER_TYPE "coldsend.http_transfer"
/* registry key of the handle http_perform keeps per Lua state */
#define PERFORM_KEY "coldsend.http_perform"

#define DEFAULT_MAX_BODY (8 * 1024 * 1024)
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
/* A stalled transfer (under 1 byte/s) is abandoned after this long even
 * when the total timeout is longer: a dead peer should not hold a worker
 * thread for a full minute. */
#define LOW_SPEED_SECONDS 30
/* Response headers are not capped by max_body; this keeps a hostile server
 * from growing them without bound. */
#define MAX_HEAD_BYTES (256 * 1024)
/* Request limits, so a transfer's bookkeeping fits in one userdata. */
#define MAX_REQ_HEADERS 64
#define MAX_PARTS 16

/* ---- curl_global_init, once per process --------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init(void) {
  curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* curl_global_init is not thread-safe before libcurl 7.84, and nginx's
 * worker threads may load the module concurrently: pthread_once serialises
 * it. There is no matching curl_global_cleanup: another library in the
 * process may still use libcurl. */
static void ensure_curl(lua_State *L) {
  pthread_once(&curl_once, curl_init);
  if (curl_init_result != CURLE_OK)
    luaL_error(L, "cannot initialise libcurl (%s)",
               curl_easy_strerror(curl_init_result));
}

void cs_ensure_curl(lua_State *L) {
  ensure_curl(L);
}

/* ---- one transfer's C state ---------------------------------------------- */

typedef struct {
  char *p;
  size_t len, cap;
} cs_buf;

/* A multipart part. Strings point into Lua strings kept on the Lua stack
 * for the whole transfer (see opt_string). */
typedef struct {
  const char *name, *value, *path, *filename, *content_type, *prefix;
  size_t value_len, prefix_len;
  curl_off_t offset, length; /* the file range; length -1 = to the end */
  curl_off_t pos;            /* read position within prefix + range */
  FILE *fp;
  int short_read; /* the file ended before offset + length */
} cs_part;

/* A request header: name and value point into copies of the name and the
 * value (a number converted) kept on the Lua stack. */
typedef struct {
  const char *name, *value;
  size_t name_len, value_len;
} cs_header;

/* What the request table says, read before any C resource is taken: it
 * lives on the C stack, so an error raised while reading leaks nothing.
 * Only the parts in use are initialised. */
typedef struct {
  const char *method, *url, *body, *ca_file, *proxy;
  size_t body_len, max_body;
  long timeout_ms, connect_ms;
  int has_type; /* the caller set Content-Type */
  int fresh;    /* req.fresh: a new connection, so libcurl never re-sends */
  int nheaders, nparts;
  cs_header headers[MAX_REQ_HEADERS];
  cs_part parts[MAX_PARTS];
} cs_request;

/* What libcurl writes into during a transfer: kept in the coldsend.http
 * object and reused (its buffers keep their capacity), or, for a call made
 * while the object's own is still in use, in a userdata whose __gc frees
 * it. Either way a Lua error leaks nothing. slist and mime never outlive
 * the C-only window. */
typedef struct {
  cs_buf body, head;
  size_t max_body;
  int over_cap, head_over, no_memory;
  struct curl_slist *slist;
  curl_mime *mime;
  char errbuf[CURL_ERROR_SIZE];
} cs_xfer;

/* Buffers larger than this are freed after a transfer rather than kept:
 * one big answer must not pin its memory for the object's lifetime. */
#define KEEP_BUF_BYTES (64 * 1024)

static void buf_free(cs_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Frees what the transfer holds; safe to call twice. */
static void xfer_release(cs_xfer *x) {
  buf_free(&x->body);
  buf_free(&x->head);
  if (x->mime != NULL) curl_mime_free(x->mime);
  x->mime = NULL;
  if (x->slist != NULL) curl_slist_free_all(x->slist);
  x->slist = NULL;
}

/* Ends a transfer whose state is reused: empty buffers, big ones freed. */
static void xfer_done(cs_xfer *x) {
  if (x->body.cap > KEEP_BUF_BYTES) buf_free(&x->body);
  if (x->head.cap > KEEP_BUF_BYTES) buf_free(&x->head);
  x->body.len = x->head.len = 0;
}

static void close_files(cs_request *r) {
  int i;
  for (i = 0; i < r->nparts; i++) {
    if (r->parts[i].fp != NULL) fclose(r->parts[i].fp);
    r->parts[i].fp = NULL;
  }
}

static int xfer_gc(lua_State *L) {
  xfer_release((cs_xfer *)luaL_checkudata(L, 1, XFER_TYPE));
  return 0;
}

/* Appends n bytes, growing by doubling; 0 when memory runs out. */
static int buf_add(cs_buf *b, const char *s, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 16384;
    char *p;
    while (cap - b->len < n) cap *= 2;
    p = (char *)realloc(b->p, cap);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 1;
}

/* ---- libcurl callbacks: C only, no Lua ----------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  cs_xfer *x = (cs_xfer *)ud;
  size_t n = size * nmemb;
  if (n > x->max_body - x->body.len) {
    x->over_cap = 1;
    return 0; /* aborts with CURLE_WRITE_ERROR */
  }
  if (!buf_add(&x->body, data, n)) {
    x->no_memory = 1;
    return 0;
  }
  return n;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud) {
  cs_xfer *x = (cs_xfer *)ud;
  size_t n = size * nitems;
  /* a new status line starts a new response (after a 100 Continue or
   * another interim answer): only the final one's headers count */
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) x->head.len = 0;
  if (n > MAX_HEAD_BYTES - x->head.len) {
    x->head_over = 1;
    return 0;
  }
  if (!buf_add(&x->head, data, n)) {
    x->no_memory = 1;
    return 0;
  }
  return n;
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

/* ---- reading the request table (may raise: nothing is held yet) --------- */

static const char *const METHODS[] = {"GET",    "POST",  "PUT",
                                      "DELETE", "PATCH", NULL};

static int is_token_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* An optional string field of the table at t, or def. The string stays on
 * the stack: a table's __index may compute a fresh one, and a later
 * metamethod may clear the field, so the table is no anchor. */
static const char *opt_string(lua_State *L, int t, const char *what,
                              const char *name, size_t *len, const char *def) {
  luaL_checkstack(L, 2, "too many request fields");
  lua_getfield(L, t, name);
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

/* An optional positive number of seconds, converted to milliseconds. */
static long opt_millis(lua_State *L, int t, const char *name, double def) {
  double s = def;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0))
      luaL_error(L, "bad request field '%s' (positive number expected)", name);
    s = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  if (s > 86400.0 * 24) s = 86400.0 * 24; /* keeps the product in a long */
  return s * 1000 < 1 ? 1 : (long)(s * 1000);
}

/* An optional non-negative integer field; returns def when absent. */
static lua_Integer opt_count(lua_State *L, int t, const char *what,
                             const char *name, lua_Integer def) {
  lua_Integer v = def;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1) && (!cs_tointeger(L, -1, &v) || v < 0))
    luaL_error(L, "bad %s field '%s' (non-negative integer expected)", what,
               name);
  lua_pop(L, 1);
  return v;
}

/* Checks req.headers and records each header's name and value in r. A CR
 * or LF in a header would let a value inject headers of its own: that is
 * misuse, and raises before anything is sent. The value is never quoted
 * in the message (it may be a key). Copies of each name and value (a
 * number as its string form) stay on the stack, below the headers table,
 * for the rest of the call: the table itself may change under us (a
 * finaliser run by the collector is Lua code). */
static void read_headers(lua_State *L, int req, cs_request *r) {
  int headers;
  lua_getfield(L, req, "headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad request field 'headers' (table expected, got %s)",
               luaL_typename(L, -1));
  headers = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, headers) != 0) { /* ..., name, value */
    size_t nlen, vlen, i;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad header name (string expected, got %s)",
                 luaL_typename(L, -2));
    name = lua_tolstring(L, -2, &nlen);
    for (i = 0; i < nlen; i++)
      if (!is_token_char((unsigned char)name[i])) break;
    if (nlen == 0 || i < nlen)
      luaL_error(L, "bad header name '%s' (not an HTTP token)", name);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "bad header '%s' (string value expected, got %s)", name,
                 luaL_typename(L, -1));
    if (r->nheaders == MAX_REQ_HEADERS)
      luaL_error(L, "too many request headers (at most %d)", MAX_REQ_HEADERS);
    /* name and value copied below the table, out of lua_next's way */
    luaL_checkstack(L, 4, "too many request headers");
    lua_pushvalue(L, -2);
    lua_insert(L, headers);
    lua_pushvalue(L, -1);
    lua_insert(L, headers + 1);
    headers += 2;
    name = lua_tolstring(L, headers - 2, &nlen);
    value = lua_tolstring(L, headers - 1, &vlen);
    for (i = 0; i < vlen; i++)
      if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
        luaL_error(L, "bad header '%s' (value contains CR, LF or NUL)", name);
    if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0)
      r->has_type = 1;
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].name_len = nlen;
    r->headers[r->nheaders].value_len = vlen;
    r->headers[r->nheaders++].value = value;
    lua_pop(L, 1); /* value */
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
    p->name = opt_string(L, t, "multipart", "name", NULL, NULL);
    if (p->name == NULL)
      luaL_error(L, "bad multipart part #%d (field 'name' missing)", i);
    p->value = opt_string(L, t, "multipart", "value", &p->value_len, NULL);
    p->path = opt_string(L, t, "multipart", "file", NULL, NULL);
    if ((p->value == NULL) == (p->path == NULL))
      luaL_error(L, "bad multipart part #%d (either 'value' or 'file')", i);
    p->filename = opt_string(L, t, "multipart", "filename", NULL, NULL);
    p->content_type = opt_string(L, t, "multipart", "content_type", NULL, NULL);
    p->prefix = opt_string(L, t, "multipart", "prefix", &p->prefix_len, "");
    p->offset = (curl_off_t)opt_count(L, t, "multipart", "offset", 0);
    p->length = (curl_off_t)opt_count(L, t, "multipart", "length", -1);
    p->pos = 0;
    p->fp = NULL;
    p->short_read = 0;
    r->nparts = i; /* the part table and its strings stay on the stack */
  }
}

/* A proxy URL: "" (none) or scheme://host[:port] with a scheme libcurl
 * tunnels through; spaces and controls refused. Raises naming what. */
static void check_proxy(lua_State *L, const char *what, const char *proxy,
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

/* ---- the C-only window: files, curl options, perform --------------------- */

/* Opens every file part and checks its range; 0 with errbuf set when one
 * cannot be used (nothing has been sent). */
static int open_files(cs_request *r, cs_xfer *x) {
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

static CURLcode build_mime(CURL *curl, cs_request *r, cs_xfer *x) {
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

/* The easy handle of a coldsend.http object, with what was last set on it
 * so that a request sets only what differs from the one before. */
typedef struct {
  CURL *curl; /* NULL once closed */
  size_t max_body;
  int busy;           /* x is in use by a transfer further up the C stack */
  long timeout_ms;    /* last TIMEOUT_MS (and LOW_SPEED_TIME), 0: none */
  long connect_ms;    /* last CONNECTTIMEOUT_MS, 0: none */
  char *ca_set;       /* a CAINFO set by a request (malloc'd), NULL: none */
  char *ca_default;   /* libcurl's own CAINFO, restored after one */
  int has_ca_default; /* ca_default was read (it may be NULL) */
  /* the header list of the last request made on x, kept for the next: a
   * client sends the same headers every time */
  struct curl_slist *kept;
  cs_xfer x;
} cs_http;

#define SETOPT(opt, val) \
  if (rc == CURLE_OK) rc = curl_easy_setopt(curl, opt, val)

/* The options every request shares, set once when the handle is made. */
static CURLcode set_invariant_options(CURL *curl, cs_xfer *x) {
  CURLcode rc = CURLE_OK;
  SETOPT(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for DNS timeouts in threads */
#if LIBCURL_VERSION_NUM >= 0x075500
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is an answer to report */
  /* The environment's proxy variables are never read here: a request goes
   * through the proxy it names (set_options), as a CONNECT tunnel, and
   * the facade decides which applies (only to https://, never loopback). */
  SETOPT(CURLOPT_PROXY, "");
  SETOPT(CURLOPT_NOPROXY, "");
  SETOPT(CURLOPT_HTTPPROXYTUNNEL, 1L);
  /* TLS verification is not an option of this module */
  SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
  SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
  SETOPT(CURLOPT_WRITEDATA, x);
  SETOPT(CURLOPT_HEADERDATA, x);
  return rc;
}

/* Points the transfer callbacks at x (the object's own, or a nested
 * call's). */
static CURLcode point_at(CURL *curl, cs_xfer *x) {
  CURLcode rc = CURLE_OK;
  SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
  SETOPT(CURLOPT_WRITEDATA, x);
  SETOPT(CURLOPT_HEADERDATA, x);
  return rc;
}

/* Sets the CA file of this request: its own, or libcurl's default when it
 * names none and an earlier request did. */
static CURLcode set_ca(cs_http *h, const char *ca) {
  CURL *curl = h->curl;
  CURLcode rc = CURLE_OK;
  char *copy;
  if (ca == NULL) {
    if (h->ca_set == NULL) return CURLE_OK;
    SETOPT(CURLOPT_CAINFO, h->ca_default);
    if (rc == CURLE_OK) {
      free(h->ca_set);
      h->ca_set = NULL;
    }
    return rc;
  }
  if (h->ca_set != NULL && strcmp(h->ca_set, ca) == 0) return CURLE_OK;
  if (!h->has_ca_default) {
    char *def = NULL;
#if LIBCURL_VERSION_NUM >= 0x075400
    curl_easy_getinfo(curl, CURLINFO_CAINFO, &def);
#endif
    if (def != NULL && (h->ca_default = strdup(def)) == NULL)
      return CURLE_OUT_OF_MEMORY;
    h->has_ca_default = 1;
  }
  copy = strdup(ca);
  if (copy == NULL) return CURLE_OUT_OF_MEMORY;
  SETOPT(CURLOPT_CAINFO, ca);
  if (rc != CURLE_OK) {
    free(copy);
    return rc;
  }
  free(h->ca_set);
  h->ca_set = copy;
  return rc;
}

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
static CURLcode header_list(cs_http *h, cs_xfer *x, const cs_request *r,
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

/* Sets what changes from request to request. */
static CURLcode set_options(cs_http *h, cs_xfer *x, const cs_request *r) {
  CURL *curl = h->curl;
  CURLcode rc = CURLE_OK;
  struct curl_slist *list = NULL;
  SETOPT(CURLOPT_URL, r->url);
  SETOPT(CURLOPT_PROXY, r->proxy != NULL ? r->proxy : ""); /* copied */
  if (rc == CURLE_OK) rc = set_ca(h, r->ca_file);
  if (r->timeout_ms != h->timeout_ms) {
    long low_speed = r->timeout_ms / 1000;
    if (low_speed > LOW_SPEED_SECONDS) low_speed = LOW_SPEED_SECONDS;
    if (low_speed < 1) low_speed = 1;
    h->timeout_ms = 0; /* unknown until both are set */
    SETOPT(CURLOPT_TIMEOUT_MS, r->timeout_ms);
    SETOPT(CURLOPT_LOW_SPEED_TIME, low_speed);
    if (rc == CURLE_OK) h->timeout_ms = r->timeout_ms;
  }
  if (r->connect_ms != h->connect_ms) {
    h->connect_ms = 0;
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
    if (rc == CURLE_OK) h->connect_ms = r->connect_ms;
  }
  if (rc != CURLE_OK) return rc;

  rc = header_list(h, x, r, &list);
  SETOPT(CURLOPT_HTTPHEADER, list);

  if (r->nparts > 0) {
    if (rc == CURLE_OK) rc = build_mime(curl, (cs_request *)r, x);
    SETOPT(CURLOPT_MIMEPOST, x->mime);
  } else if (strcmp(r->method, "GET") == 0) {
    /* the handle is left as a GET after every transfer */
  } else if (r->body != NULL || strcmp(r->method, "DELETE") != 0) {
    /* explicit size: bodies may hold NULs, and PUT/POST/PATCH without one
     * still send Content-Length: 0 */
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SETOPT(CURLOPT_POSTFIELDS, r->body ? r->body : "");
  }
  if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
    SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
  /* libcurl silently sends a request again when a reused keep-alive
   * connection turns out closed; for a POST that may have been processed
   * that is a duplicate write, and a re-sent DELETE (or launch: req.fresh)
   * would meet its own work and report a failure the facade could not tell
   * from a real one. A new connection is never retried. A plain PUT keeps
   * the reused connection: sent twice, it leaves the same state. */
  if (r->fresh ||
      (strcmp(r->method, "GET") != 0 && strcmp(r->method, "PUT") != 0))
    SETOPT(CURLOPT_FRESH_CONNECT, 1L);
  return rc;
}

/* Undoes every per-request option set_options may have set, so that the
 * handle holds no pointer into this transfer and the next request starts
 * from a plain GET. Connections, TLS sessions and the DNS cache stay.
 * 0 when libcurl refused one (the caller then resets the handle). */
static int clear_options(CURL *curl) {
  CURLcode rc = CURLE_OK;
  SETOPT(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  SETOPT(CURLOPT_MIMEPOST, (curl_mime *)NULL);
  SETOPT(CURLOPT_POSTFIELDS, (char *)NULL);
  SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
  SETOPT(CURLOPT_FRESH_CONNECT, 0L);
  SETOPT(CURLOPT_HTTPGET, 1L); /* after POSTFIELDS and MIMEPOST: a GET */
  return rc == CURLE_OK;
}

/* ---- results ------------------------------------------------------------- */

static int is_tls_error(CURLcode rc) {
  switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
#endif
      return 1;
    default:
      return 0;
  }
}

/* 1 when the failure surely happened before any byte of the request left:
 * only then may a POST be sent again. A timeout counts only when libcurl
 * had not yet reached the point of sending (no pretransfer time, no
 * request bytes): a timeout while waiting for the answer is ambiguous. */
static int never_sent(CURL *curl, CURLcode rc) {
  curl_off_t pretransfer = -1;
  long request_size = -1;
  switch (rc) {
    /* not CURLE_UNSUPPORTED_PROTOCOL: the scheme is checked before, so it
     * means an HTTP/0.9 answer, which comes after sending */
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
      return 1;
    case CURLE_OPERATION_TIMEDOUT:
      curl_easy_getinfo(curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
      curl_easy_getinfo(curl, CURLINFO_REQUEST_SIZE, &request_size);
      return pretransfer == 0 && request_size == 0;
    default:
      /* a TLS handshake failure comes before the request; errors of an
       * established session (shutdown) do not */
      return is_tls_error(rc);
  }
}

/* Pushes a lower-case copy of s[0..n). */
static void push_lower(lua_State *L, const char *s, size_t n) {
  char small[64];
  size_t i;
  if (n > sizeof small) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
      char c = s[i];
      luaL_addchar(&b, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
    }
    luaL_pushresult(&b);
    return;
  }
  for (i = 0; i < n; i++) {
    char c = s[i];
    small[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
  lua_pushlstring(L, small, n);
}

/* Pushes the headers of the final response as {lower-case name = value};
 * a repeated header's values are joined with ", " (RFC 9110 §5.3). */
static void push_headers(lua_State *L, const char *s, size_t len) {
  const char *end = s + len;
  int t;
  lua_createtable(L, 0, 8);
  t = lua_gettop(L);
  while (s < end) {
    const char *eol = memchr(s, '\n', (size_t)(end - s));
    const char *line_end = eol ? eol : end, *colon, *v, *ve;
    const char *next = eol ? eol + 1 : end;
    if (line_end > s && line_end[-1] == '\r') line_end--;
    colon = memchr(s, ':', (size_t)(line_end - s));
    /* the status line, the blank line and folded continuations (obsolete
     * since RFC 7230) carry no name */
    if (colon == NULL || colon == s || *s == ' ' || *s == '\t' ||
        (line_end - s >= 5 && memcmp(s, "HTTP/", 5) == 0)) {
      s = next;
      continue;
    }
    v = colon + 1;
    ve = line_end;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    push_lower(L, s, (size_t)(colon - s)); /* name */
    lua_pushvalue(L, -1);
    lua_rawget(L, t); /* name, old */
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(ve - v));
    }
    lua_rawset(L, t);
    s = next;
  }
}

/* Pushes nil, message, code, {curl_code=, sent=} and returns 4. */
static int push_failure(lua_State *L, const char *message, const char *code,
                        CURLcode rc, int sent, int too_large) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  lua_pushstring(L, code);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)rc);
  lua_setfield(L, -2, "curl_code");
  lua_pushboolean(L, sent);
  lua_setfield(L, -2, "sent");
  if (too_large) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "too_large");
  }
  return 4;
}

/* ---- the transfer -------------------------------------------------------- */

/* Ends a transfer: its files closed, a nested call's state freed, the
 * object's emptied for the next, and the object free again. */
static void end_transfer(cs_http *h, cs_request *r, cs_xfer *x, int nested) {
  close_files(r);
  if (nested)
    xfer_release(x);
  else
    xfer_done(x);
  h->busy = nested;
}

/* Performs the request at req on h; returns res or nil, msg, code, info.
 * def_ca and def_proxy apply when req does not say. Every string r points
 * to is kept on the Lua stack until the call returns. */
static int http_do(lua_State *L, cs_http *h, int req, const char *def_ca,
                   const char *def_proxy) {
  CURL *curl = h->curl;
  cs_request r;
  cs_xfer *x;
  CURLcode rc;
  long status = 0;
  int i, sent = 1, usable, nested;
  size_t url_len, proxy_len;
  char message[CURL_ERROR_SIZE + 64];

  luaL_checktype(L, req, LUA_TTABLE);
  r.has_type = 0;
  r.nheaders = r.nparts = 0;
  r.method = opt_string(L, req, "request", "method", NULL, "GET");
  for (i = 0; METHODS[i] != NULL && strcmp(METHODS[i], r.method) != 0; i++) {
  }
  if (METHODS[i] == NULL)
    luaL_error(L,
               "bad request field 'method' (GET, POST, PUT, DELETE or PATCH "
               "expected, got '%s')",
               r.method);
  r.url = opt_string(L, req, "request", "url", &url_len, NULL);
  if (r.url == NULL) luaL_error(L, "bad request field 'url' (missing)");
  if (strncasecmp(r.url, "http://", 7) != 0 &&
      strncasecmp(r.url, "https://", 8) != 0)
    luaL_error(L, "bad request field 'url' (http:// or https:// expected)");
  for (i = 0; i < (int)url_len; i++) /* spaces, controls, NULs */
    if ((unsigned char)r.url[i] <= 0x20 || r.url[i] == 0x7f)
      luaL_error(L, "bad request field 'url' (contains a space or control)");
  r.body = opt_string(L, req, "request", "body", &r.body_len, NULL);
  lua_getfield(L, req, "fresh");
  r.fresh = lua_toboolean(L, -1);
  lua_pop(L, 1);
  r.timeout_ms = opt_millis(L, req, "timeout", DEFAULT_TIMEOUT);
  r.connect_ms = opt_millis(L, req, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
  r.ca_file = opt_string(L, req, "request", "ca_file", NULL, def_ca);
  r.proxy = opt_string(L, req, "request", "proxy", &proxy_len, def_proxy);
  check_proxy(L, "request field", r.proxy, proxy_len);
  r.max_body = (size_t)opt_count(L, req, "request", "max_body",
                                 (lua_Integer)h->max_body);
  read_headers(L, req, &r);
  read_parts(L, req, &r);
  if (r.nparts > 0 && r.body != NULL)
    luaL_error(L, "bad request (both 'body' and 'multipart')");
  if (r.nparts > 0 && (!strcmp(r.method, "GET") || !strcmp(r.method, "DELETE")))
    luaL_error(L, "bad request (multipart needs POST, PUT or PATCH)");
  if (r.body != NULL && !strcmp(r.method, "GET"))
    luaL_error(L, "bad request (a GET has no body)");

  /* The object's transfer state, unless a call further up the C stack
   * still uses it (a finalizer run while that one builds its result): then
   * a state of this call's own, which its __gc frees. */
  nested = h->busy;
  if (nested) {
    x = (cs_xfer *)cs_newuserdata(L, sizeof *x);
    memset(x, 0, sizeof *x);
    luaL_setmetatable(L, XFER_TYPE);
  } else {
    x = &h->x;
    x->body.len = x->head.len = 0;
  }
  x->max_body = r.max_body;
  x->over_cap = x->head_over = x->no_memory = 0;

  /* From here until the options are cleared no Lua function is called:
   * libcurl holds pointers into x and into the request's strings. */
  x->errbuf[0] = '\0';
  if (!open_files(&r, x)) {
    close_files(&r);
    if (nested) xfer_release(x);
    return push_failure(L, x->errbuf, "invalid", CURLE_OK, 0, 0);
  }
  h->busy = 1;
  rc = nested ? point_at(curl, x) : CURLE_OK;
  if (rc == CURLE_OK) rc = set_options(h, x, &r);
  usable = rc == CURLE_OK;
  if (usable) rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) sent = usable && !never_sent(curl, rc);
  if (rc != CURLE_OK && x->errbuf[0] == '\0') /* some leave it empty */
    snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_easy_strerror(rc));
  /* the handle keeps no pointer into this transfer; should libcurl refuse
   * to clear an option, a reset does it (and everything is set again) */
  if (!clear_options(curl) || (nested && point_at(curl, &h->x) != CURLE_OK)) {
    curl_easy_reset(curl);
    h->timeout_ms = h->connect_ms = 0;
    free(h->ca_set);
    h->ca_set = NULL;
    if (set_invariant_options(curl, &h->x) != CURLE_OK) {
      curl_easy_cleanup(curl); /* unusable: the object counts as closed */
      h->curl = NULL;
    }
  }
  if (x->mime != NULL) curl_mime_free(x->mime);
  x->mime = NULL;
  if (x->slist != NULL) curl_slist_free_all(x->slist);
  x->slist = NULL;

  /* libcurl 7.x reports a header line over its own limit (100 KB) as out of
   * memory: once the status line has come, that is the server's doing */
  if (rc == CURLE_OUT_OF_MEMORY && usable && !x->no_memory &&
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
      status != 0)
    x->head_over = 2;
  if (!usable || (rc == CURLE_OUT_OF_MEMORY && !x->head_over) || x->no_memory) {
    end_transfer(h, &r, x, nested);
    if (!usable && rc != CURLE_OUT_OF_MEMORY)
      return luaL_error(L, "libcurl refused an option (%s)",
                        curl_easy_strerror(rc));
    return luaL_error(L, "not enough memory for the HTTP transfer");
  }
  if (rc != CURLE_OK) {
    const char *code = "network";
    int too_large = 0;
    for (i = 0; i < r.nparts; i++)
      if (r.parts[i].short_read)
        snprintf(x->errbuf, sizeof x->errbuf,
                 "file '%s' ended before the %lld bytes of its part",
                 r.parts[i].path, (long long)r.parts[i].length);
    if (x->over_cap) {
      snprintf(message, sizeof message, "response body over the %lld-byte cap",
               (long long)x->max_body);
      code = "protocol";
      too_large = 1;
    } else if (x->head_over == 2) {
      snprintf(message, sizeof message,
               "a response header line over libcurl's limit (%s)", x->errbuf);
      code = "protocol";
    } else if (x->head_over) {
      snprintf(message, sizeof message, "response headers over the %d-byte cap",
               MAX_HEAD_BYTES);
      code = "protocol";
    } else {
      snprintf(message, sizeof message, "%s", x->errbuf);
      if (rc == CURLE_OPERATION_TIMEDOUT)
        code = "timeout";
      else if (is_tls_error(rc))
        code = "tls";
      else if (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_URL_MALFORMAT)
        code = "invalid";
      else if (rc == CURLE_WEIRD_SERVER_REPLY ||
               rc == CURLE_UNSUPPORTED_PROTOCOL ||
               rc == CURLE_BAD_CONTENT_ENCODING ||
               rc == CURLE_FILESIZE_EXCEEDED)
        code = "protocol";
    }
    end_transfer(h, &r, x, nested);
    return push_failure(L, message, code, rc, sent, too_large);
  }
  close_files(&r);

  /* A memory error from here on leaves busy set: later calls then use
   * states of their own, which is slower but still right. */
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)status);
  lua_setfield(L, -2, "status");
  push_headers(L, x->head.p ? x->head.p : "", x->head.len);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, x->body.p ? x->body.p : "", x->body.len);
  lua_setfield(L, -2, "body");
  end_transfer(h, &r, x, nested);
  return 1;
}

/* ---- the coldsend.http type ---------------------------------------------- */

static cs_http *check_open(lua_State *L, int i) {
  cs_http *h = (cs_http *)luaL_checkudata(L, i, HTTP_TYPE);
  if (h->curl == NULL) luaL_error(L, "attempt to use a closed " HTTP_TYPE);
  return h;
}

/* Pushes a new handle object. The userdata exists, zeroed and with its
 * metatable, before the easy handle: a failure leaves nothing to leak. */
static cs_http *new_http(lua_State *L, size_t max_body) {
  cs_http *h;
  ensure_curl(L);
  h = (cs_http *)cs_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  h->max_body = max_body;
  luaL_setmetatable(L, HTTP_TYPE);
  h->curl = curl_easy_init();
  if (h->curl == NULL) luaL_error(L, "cannot create a libcurl handle");
  if (set_invariant_options(h->curl, &h->x) != CURLE_OK) {
    curl_easy_cleanup(h->curl);
    h->curl = NULL;
    luaL_error(L, "cannot set up a libcurl handle");
  }
  return h;
}

/* core.http{ca_file=, max_body=, proxy=} -> a callable transport object.
 * proxy: the one every request goes through (none when absent). */
static int http_new(lua_State *L) {
  const char *ca_file = NULL, *proxy = NULL;
  size_t proxy_len = 0;
  lua_Integer max_body = DEFAULT_MAX_BODY;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    ca_file = opt_string(L, 1, "option", "ca_file", NULL, NULL);
    proxy = opt_string(L, 1, "option", "proxy", &proxy_len, NULL);
    check_proxy(L, "option", proxy, proxy_len);
    max_body = opt_count(L, 1, "option", "max_body", DEFAULT_MAX_BODY);
    if (ca_file != NULL) {
      /* a wrong path is a setup mistake: say so now, not as a TLS error
       * on the first request */
      FILE *f = fopen(ca_file, "rb");
      if (f == NULL)
        return luaL_error(L, "bad option 'ca_file' (cannot read '%s': %s)",
                          ca_file, strerror(errno));
      fclose(f);
    }
  }
  new_http(L, (size_t)max_body);
  lua_createtable(L, 0, 2); /* the options the object keeps */
  if (ca_file != NULL) {
    lua_pushstring(L, ca_file);
    lua_setfield(L, -2, "ca_file");
  }
  if (proxy != NULL) {
    lua_pushlstring(L, proxy, proxy_len);
    lua_setfield(L, -2, "proxy");
  }
  cs_setuservalue(L, -2);
  return 1;
}

/* obj(req) -> res | nil, message, code, info */
static int http_call(lua_State *L) {
  cs_http *h = check_open(L, 1);
  const char *ca = NULL, *proxy = NULL;
  lua_settop(L, 2);
  cs_getuservalue(L, 1); /* the options; both strings stay on the stack */
  if (lua_istable(L, -1)) {
    lua_getfield(L, 3, "ca_file");
    ca = lua_tostring(L, -1);
    lua_getfield(L, 3, "proxy");
    proxy = lua_tostring(L, -1);
  }
  return http_do(L, h, 2, ca, proxy);
}

/* Frees the easy handle and what the object keeps; idempotent. The
 * transfer buffers stay while a transfer further up the C stack (busy)
 * may still read them; __gc frees them whatever busy says, as nothing can
 * be using an object the collector found unreachable. */
static void http_free(cs_http *h, int all) {
  if (h->curl != NULL) curl_easy_cleanup(h->curl);
  h->curl = NULL;
  if (all || !h->busy) xfer_release(&h->x);
  free(h->ca_set);
  free(h->ca_default);
  h->ca_set = h->ca_default = NULL;
  if (all || !h->busy) {
    curl_slist_free_all(h->kept);
    h->kept = NULL;
  }
}

/* One close for :close() and __close; idempotent. */
static int http_close(lua_State *L) {
  http_free((cs_http *)luaL_checkudata(L, 1, HTTP_TYPE), 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int http_gc(lua_State *L) {
  http_free((cs_http *)luaL_checkudata(L, 1, HTTP_TYPE), 1);
  return 0;
}

static int http_tostring(lua_State *L) {
  cs_http *h = (cs_http *)luaL_checkudata(L, 1, HTTP_TYPE);
  lua_pushstring(L, h->curl ? HTTP_TYPE " (open)" : HTTP_TYPE " (closed)");
  return 1;
}

/* core.http_perform(req): a handle cached per Lua state (nginx runs each
 * worker thread's tasks in a Lua state of its own), taking and returning
 * only plain values so ngx.run_worker_thread can pass them. */
static int http_perform(lua_State *L) {
  cs_http *h;
  lua_getfield(L, LUA_REGISTRYINDEX, PERFORM_KEY);
  h = (cs_http *)luaL_testudata(L, -1, HTTP_TYPE);
  if (h == NULL || h->curl == NULL) {
    lua_pop(L, 1);
    h = new_http(L, DEFAULT_MAX_BODY);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, PERFORM_KEY);
  }
  lua_pop(L, 1); /* the registry keeps it */
  return http_do(L, h, 1, NULL, NULL);
}

/* core.is_http(v) -> true when v is a coldsend.http object (whose answers
 * carry lower-case header names). */
static int http_is_http(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, HTTP_TYPE) != NULL);
  return 1;
}

/* core.curl_version() -> "libcurl/7.88.1", for the User-Agent. */
static int http_curl_version(lua_State *L) {
  ensure_curl(L);
  lua_pushfstring(L, "libcurl/%s", curl_version_info(CURLVERSION_NOW)->version);
  return 1;
}

static const luaL_Reg http_meth[] = {{"close", http_close}, {NULL, NULL}};

static const luaL_Reg http_metameth[] = {{"__call", http_call},
                                         {"__gc", http_gc},
                                         {"__close", http_close},
                                         {"__tostring", http_tostring},
                                         {NULL, NULL}};

static const luaL_Reg http_funcs[] = {{"http", http_new},
                                      {"http_perform", http_perform},
                                      {"curl_version", http_curl_version},
                                      {"is_http", http_is_http},
                                      {NULL, NULL}};

void cs_http_open(lua_State *L) {
  cs_newmetatable(L, HTTP_TYPE);
  luaL_setfuncs(L, http_metameth, 0);
  luaL_newlib(L, http_meth);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, XFER_TYPE);
  lua_pushcfunction(L, xfer_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, http_funcs, 0);
}
