/* http_response.c: the answer side of the libcurl transport: the buffers
 * libcurl writes the answer into (its callbacks: C only, no Lua), and the
 * answer's headers or the failure pushed to Lua. */
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* ---- what libcurl writes into ------------------------------------------ */

/* Buffers larger than this are freed after a transfer rather than kept:
 * one big answer must not pin its memory for the object's lifetime. */
#define KEEP_BUF_BYTES (64 * 1024)

static void buf_free(cs_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Frees what the transfer holds; safe to call twice. */
void http_xfer_release(cs_xfer *x) {
  buf_free(&x->body);
  buf_free(&x->head);
  if (x->mime != NULL) curl_mime_free(x->mime);
  x->mime = NULL;
  if (x->slist != NULL) curl_slist_free_all(x->slist);
  x->slist = NULL;
}

/* Ends a transfer whose state is reused: empty buffers, big ones freed. */
void http_xfer_done(cs_xfer *x) {
  if (x->body.cap > KEEP_BUF_BYTES) buf_free(&x->body);
  if (x->head.cap > KEEP_BUF_BYTES) buf_free(&x->head);
  x->body.len = x->head.len = 0;
}

int http_xfer_gc(lua_State *L) {
  http_xfer_release((cs_xfer *)luaL_checkudata(L, 1, XFER_TYPE));
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

size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud) {
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

size_t http_on_header(char *data, size_t size, size_t nitems, void *ud) {
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

/* ---- results ------------------------------------------------------------- */

int http_is_tls_error(CURLcode rc) {
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
int http_never_sent(CURL *curl, CURLcode rc) {
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
      return http_is_tls_error(rc);
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

/* 1 when a and b, n bytes each, are the same header name: ASCII letters
 * in either case, as push_lower lowers them (whatever the C locale). */
static int same_name(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
    if (x != y) return 0;
  }
  return 1;
}

/* Remembers the block s[0..len) and its header lines (off/lens, n of
 * them) in kh for the next answer; on a failed allocation it forgets. */
static void keep_head(cs_kept_head *kh, const char *s, size_t len,
                      const size_t *off, const size_t *lens, int n) {
  if (len > kh->cap) {
    char *p = (char *)realloc(kh->block, len);
    if (p == NULL) {
      kh->n = 0;
      return;
    }
    kh->block = p;
    kh->cap = len;
  }
  if (len > 0) memcpy(kh->block, s, len);
  memcpy(kh->off, off, (size_t)n * sizeof *off);
  memcpy(kh->len, lens, (size_t)n * sizeof *lens);
  kh->n = n;
}

/* Pushes the headers of the final response as {lower-case name = value};
 * a repeated header's values are joined with ", " (RFC 9110 §5.3). With
 * kh (and kept, the stack index of the object's user value), a line the
 * last answer had at the same place takes the strings made for it then. */
void http_push_headers(lua_State *L, const char *s, size_t len,
                       cs_kept_head *kh, int kept) {
  /* the names so far, so that only a repeated one is looked up and joined
   * (past SEEN of them, every one is) */
  enum { SEEN = 32 };
  const char *seen[SEEN];
  size_t seen_len[SEEN], off[CS_KEPT_LINES], lens[CS_KEPT_LINES];
  const char *start = s, *end = s + len;
  int t, nseen = 0, li = 0;
  if (kept == 0) kh = NULL;
  lua_createtable(L, 0, 8);
  t = lua_gettop(L);
  while (s < end) {
    const char *eol = memchr(s, '\n', (size_t)(end - s));
    const char *line_end = eol ? eol : end, *colon, *v, *ve;
    const char *next = eol ? eol + 1 : end;
    size_t nlen, llen;
    int i, repeated = nseen == SEEN, hit;
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
    nlen = (size_t)(colon - s);
    llen = (size_t)(line_end - s);
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (i = 0; i < nseen && !repeated; i++)
      repeated = seen_len[i] == nlen && same_name(seen[i], s, nlen);
    if (!repeated) {
      seen[nseen] = s;
      seen_len[nseen++] = nlen;
    }
    hit = kh != NULL && li < kh->n && kh->len[li] == llen &&
          memcmp(kh->block + kh->off[li], s, llen) == 0;
    if (hit) {
      lua_rawgeti(L, kept, 2 * li + 1); /* name, as made last time */
      hit = lua_type(L, -1) == LUA_TSTRING;
      if (!hit) lua_pop(L, 1);
    }
    if (!hit) push_lower(L, s, nlen); /* name */
    if (repeated) {
      lua_pushvalue(L, -1);
      lua_rawget(L, t); /* name, old */
    } else {
      lua_pushnil(L);
    }
    if (hit) {
      lua_rawgeti(L, kept, 2 * li + 2); /* name, old, value */
      if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
    } else {
      lua_pushlstring(L, v, (size_t)(ve - v));
      if (kh != NULL && li < CS_KEPT_LINES) { /* kept for the next answer */
        /* the old line no longer matches, even should an error stop us
         * before keep_head describes the new ones */
        if (li < kh->n) kh->len[li] = (size_t)-1;
        lua_pushvalue(L, -3);
        lua_rawseti(L, kept, 2 * li + 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, kept, 2 * li + 2);
      }
    }
    if (lua_isstring(L, -2)) { /* name, old, value */
      lua_pushliteral(L, ", ");
      lua_insert(L, -2);
      lua_concat(L, 3);
    } else {
      lua_remove(L, -2);
    }
    lua_rawset(L, t);
    if (li < CS_KEPT_LINES) {
      off[li] = (size_t)(s - start);
      lens[li] = llen;
    }
    li++;
    s = next;
  }
  if (kh != NULL)
    keep_head(kh, start, len, off, lens,
              li < CS_KEPT_LINES ? li : CS_KEPT_LINES);
}

/* Pushes nil, message, code, {curl_code=, sent=} and returns 4. */
int http_push_failure(lua_State *L, const char *message, const char *code,
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
