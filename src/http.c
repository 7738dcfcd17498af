/* http.c: the libcurl transport: coldsend.http objects and http_perform:
 * the easy handle, its options, and the transfer (http_request.c reads the
 * request, http_response.c collects the answer; http.h joins them). */
#define _POSIX_C_SOURCE 200809L
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the easy handle's options ------------------------------------------ */

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
  SETOPT(CURLOPT_WRITEFUNCTION, http_on_body);
  SETOPT(CURLOPT_HEADERFUNCTION, http_on_header);
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

/* The per-request options a request set (cs_http.set). */
enum { SET_MIME = 1, SET_BODY = 2, SET_LIST = 4, SET_FRESH = 8 };

/* The method libcurl is to name in place of GET or POST, as a literal
 * (the handle remembers it across requests), or NULL. */
static const char *custom_method(const char *m) {
  static const char *const custom[] = {"PUT", "DELETE", "PATCH", NULL};
  int i;
  for (i = 0; custom[i] != NULL; i++)
    if (strcmp(custom[i], m) == 0) return custom[i];
  return NULL;
}

/* Sets what changes from request to request. */
static CURLcode set_options(cs_http *h, cs_xfer *x, const cs_request *r) {
  CURL *curl = h->curl;
  CURLcode rc = CURLE_OK;
  struct curl_slist *list = NULL;
  SETOPT(CURLOPT_URL, r->url);
  if (r->proxy != NULL && r->proxy[0] != '\0') {
    h->proxy_none = 0;
    SETOPT(CURLOPT_PROXY, r->proxy); /* copied */
  } else if (!h->proxy_none) {
    SETOPT(CURLOPT_PROXY, "");
    if (rc == CURLE_OK) h->proxy_none = 1;
  }
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

  rc = http_header_list(h, x, r, &list);
  /* a list of this transfer's own is cleared after it; the kept one lives
   * as long as the handle, or until a request sets another */
  if (list != h->kept) h->set |= SET_LIST;
  SETOPT(CURLOPT_HTTPHEADER, list);

  if (r->nparts > 0) {
    h->set |= SET_MIME;
    if (rc == CURLE_OK) rc = http_build_mime(curl, (cs_request *)r, x);
    SETOPT(CURLOPT_MIMEPOST, x->mime);
  } else if (strcmp(r->method, "GET") == 0) {
    /* the handle is left as a GET after every transfer */
  } else if (r->body != NULL || strcmp(r->method, "DELETE") != 0) {
    /* explicit size: bodies may hold NULs, and PUT/POST/PATCH without one
     * still send Content-Length: 0 */
    h->set |= SET_BODY;
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SETOPT(CURLOPT_POSTFIELDS, r->body ? r->body : "");
  }
  { /* PUT, DELETE or PATCH: kept from one request to the next */
    const char *custom = custom_method(r->method);
    if (custom != h->custom) {
      h->custom = NULL; /* unknown until set */
      SETOPT(CURLOPT_CUSTOMREQUEST, custom);
      if (rc == CURLE_OK) h->custom = custom;
    }
  }
  /* libcurl silently sends a request again when a reused keep-alive
   * connection turns out closed; for a POST that may have been processed
   * that is a duplicate write, and a re-sent DELETE (or launch: req.fresh)
   * would meet its own work and report a failure the facade could not tell
   * from a real one. A new connection is never retried. A plain PUT keeps
   * the reused connection: sent twice, it leaves the same state. */
  if (r->fresh ||
      (strcmp(r->method, "GET") != 0 && strcmp(r->method, "PUT") != 0)) {
    h->set |= SET_FRESH;
    SETOPT(CURLOPT_FRESH_CONNECT, 1L);
  }
  return rc;
}

/* Undoes every per-request option set_options set (h->set says which),
 * so that the handle holds no pointer into this transfer and the next
 * request starts from a GET (with the custom method of the last one, a
 * literal, which set_options changes when the next differs). Connections,
 * TLS sessions and the DNS cache stay. 0 when libcurl refused one (the caller
 * then resets the handle). */
static int clear_options(cs_http *h, CURL *curl) {
  CURLcode rc = CURLE_OK;
  unsigned set = h->set;
  h->set = 0;
  if (set & SET_LIST) SETOPT(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  if (set & SET_MIME) SETOPT(CURLOPT_MIMEPOST, (curl_mime *)NULL);
  if (set & SET_BODY) {
    SETOPT(CURLOPT_POSTFIELDS, (char *)NULL);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  }
  if (set & SET_FRESH) SETOPT(CURLOPT_FRESH_CONNECT, 0L);
  /* after POSTFIELDS and MIMEPOST: a GET */
  if (set & (SET_MIME | SET_BODY)) SETOPT(CURLOPT_HTTPGET, 1L);
  return rc == CURLE_OK;
}

/* ---- the transfer -------------------------------------------------------- */

/* Ends a transfer: its files closed, a nested call's state freed, the
 * object's emptied for the next, and the object free again. */
static void end_transfer(cs_http *h, cs_request *r, cs_xfer *x, int nested) {
  http_close_files(r);
  if (nested)
    http_xfer_release(x);
  else
    http_xfer_done(x);
  h->busy = nested;
}

/* Performs the request at req on h; returns res or nil, msg, code, info.
 * def_ca and def_proxy apply when req does not say; kept (0: none) is the
 * stack index of the object's user value, where the last answer's header
 * strings are kept. Every string r points to is kept on the Lua stack
 * until the call returns. */
static int http_do(lua_State *L, cs_http *h, int req, const char *def_ca,
                   const char *def_proxy, int kept, int ov) {
  CURL *curl = h->curl;
  cs_request r;
  cs_xfer *x;
  CURLcode rc;
  long status = 0;
  int i, sent = 1, usable, nested;
  char message[CURL_ERROR_SIZE + 64];

  http_read_request(L, req, &r, h->max_body, def_ca, def_proxy, ov);

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
  if (!http_open_files(&r, x)) {
    http_close_files(&r);
    if (nested) http_xfer_release(x);
    return http_push_failure(L, x->errbuf, "invalid", CURLE_OK, 0, 0);
  }
  h->busy = 1;
  rc = nested ? point_at(curl, x) : CURLE_OK;
  if (rc == CURLE_OK) rc = set_options(h, x, &r);
  usable = rc == CURLE_OK;
  if (usable) rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) sent = usable && !http_never_sent(curl, rc);
  if (rc != CURLE_OK && x->errbuf[0] == '\0') /* some leave it empty */
    snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_easy_strerror(rc));
  /* the handle keeps no pointer into this transfer; should libcurl refuse
   * to clear an option, a reset does it (and everything is set again) */
  if (!clear_options(h, curl) ||
      (nested && point_at(curl, &h->x) != CURLE_OK)) {
    curl_easy_reset(curl);
    h->timeout_ms = h->connect_ms = 0;
    h->proxy_none = 0;
    h->custom = NULL;
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
      else if (http_is_tls_error(rc))
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
    return http_push_failure(L, message, code, rc, sent, too_large);
  }
  http_close_files(&r);

  /* A memory error from here on leaves busy set: later calls then use
   * states of their own, which is slower but still right. */
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)status);
  lua_setfield(L, -2, "status");
  http_push_headers(L, x->head.p ? x->head.p : "", x->head.len, &h->head,
                    nested ? 0 : kept);
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
    ca_file = http_opt_string(L, 1, "option", "ca_file", NULL, NULL);
    proxy = http_opt_string(L, 1, "option", "proxy", &proxy_len, NULL);
    http_check_proxy(L, "option", proxy, proxy_len);
    max_body = http_opt_count(L, 1, "option", "max_body", DEFAULT_MAX_BODY);
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
  new_http(L, (size_t)max_body)->has_opts = ca_file != NULL || proxy != NULL;
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

/* obj(req [, headers, timeout, connect_timeout, ca_file, max_body]) ->
 * res | nil, message, code, info. The request loop passes those five as
 * arguments rather than in req (none is then read from req); any other
 * caller gives req alone. */
static int http_call(lua_State *L) {
  cs_http *h = check_open(L, 1);
  const char *ca = NULL, *proxy = NULL;
  int ov = lua_gettop(L) > 2 ? 3 : 0, uv = ov ? 8 : 3;
  lua_settop(L, uv - 1);
  cs_getuservalue(L, 1); /* the options, and the kept header strings */
  if (!lua_istable(L, uv)) {
    lua_pop(L, 1);
    return http_do(L, h, 2, NULL, NULL, 0, ov);
  }
  if (h->has_opts) { /* both strings stay on the stack */
    lua_getfield(L, uv, "ca_file");
    ca = lua_tostring(L, -1);
    lua_getfield(L, uv, "proxy");
    proxy = lua_tostring(L, -1);
  }
  return http_do(L, h, 2, ca, proxy, uv, ov);
}

/* Frees the easy handle and what the object keeps; idempotent. The
 * transfer buffers stay while a transfer further up the C stack (busy)
 * may still read them; __gc frees them whatever busy says, as nothing can
 * be using an object the collector found unreachable. */
static void http_free(cs_http *h, int all) {
  if (h->curl != NULL) curl_easy_cleanup(h->curl);
  h->curl = NULL;
  if (all || !h->busy) http_xfer_release(&h->x);
  free(h->ca_set);
  free(h->ca_default);
  h->ca_set = h->ca_default = NULL;
  if (all || !h->busy) {
    curl_slist_free_all(h->kept);
    h->kept = NULL;
    free(h->head.block);
    h->head.block = NULL;
    h->head.cap = 0;
    h->head.n = 0;
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
  return http_do(L, h, 1, NULL, NULL, 0, 0);
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
  lua_pushcfunction(L, http_xfer_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, http_funcs, 0);
}
