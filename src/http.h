/* http.h: the libcurl transport's shared parts: one transfer's C state
 * and what its three files call in each other. http.c holds the easy
 * handle, its options and the transfer; http_request.c reads the request
 * table and builds what libcurl sends (header list, multipart, file
 * parts); http_response.c collects the answer and pushes it to Lua. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <curl/curl.h>
#include <stdio.h>

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

/* The header lines of the last answer, and where each lay in a copy of
 * its header block: a line the next answer repeats byte for byte takes
 * the name and value strings made for it then (kept in the object's user
 * value, at 2i - 1 and 2i for line i), not new ones. */
#define CS_KEPT_LINES 32
typedef struct {
  char *block; /* malloc'd copy of the last header block */
  size_t cap;
  int n; /* lines described below */
  size_t off[CS_KEPT_LINES], len[CS_KEPT_LINES];
} cs_kept_head;

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
  int has_opts;       /* the object has a ca_file or proxy of its own */
  int proxy_none;     /* PROXY is "" (no proxy, whatever the environment) */
  unsigned set;       /* the per-request options the last request set */
  const char *custom; /* the CUSTOMREQUEST set (a literal), NULL: none */
  /* the header list of the last request made on x, kept for the next: a
   * client sends the same headers every time */
  struct curl_slist *kept;
  cs_kept_head head; /* the last answer's header lines */
  cs_xfer x;
} cs_http;

/* http_request.c: reading the request table (may raise: nothing is held
 * yet), and the parts of the request libcurl sends */
const char *http_opt_string(lua_State *L, int t, const char *what,
                            const char *name, size_t *len, const char *def);
lua_Integer http_opt_count(lua_State *L, int t, const char *what,
                           const char *name, lua_Integer def);
void http_check_proxy(lua_State *L, const char *what, const char *proxy,
                      size_t len);
void http_read_request(lua_State *L, int req, cs_request *r,
                       size_t def_max_body, const char *def_ca,
                       const char *def_proxy, int ov);
int http_open_files(cs_request *r, cs_xfer *x);
void http_close_files(cs_request *r);
CURLcode http_build_mime(CURL *curl, cs_request *r, cs_xfer *x);
CURLcode http_header_list(cs_http *h, cs_xfer *x, const cs_request *r,
                          struct curl_slist **list);

/* http_response.c: what libcurl writes into (C only, no Lua), and the
 * answer or failure pushed to Lua */
void http_xfer_release(cs_xfer *x);
void http_xfer_done(cs_xfer *x);
int http_xfer_gc(lua_State *L);
size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud);
size_t http_on_header(char *data, size_t size, size_t nitems, void *ud);
int http_is_tls_error(CURLcode rc);
int http_never_sent(CURL *curl, CURLcode rc);
void http_push_headers(lua_State *L, const char *s, size_t len,
                       cs_kept_head *kh, int kept);
int http_push_failure(lua_State *L, const char *message, const char *code,
                      CURLcode rc, int sent, int too_large);

#endif
