--- coldsend.transport.curl: the default blocking libcurl transport.
-- `curl.new{ca_file=, max_body=}` returns a callable transport with one
-- reused easy handle (keep-alive, TLS session reuse); `curl.perform(req)`
-- is the same with a handle cached per Lua state. Both are in C
-- (src/http.c); see doc/internals.md for the request and response tables.
-- @module coldsend.transport.curl
local core = require "coldsend.core"

return {
  new = core.http,
  perform = core.http_perform,
}
