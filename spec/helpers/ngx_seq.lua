--- spec/helpers/ngx_seq.lua: loaded inside nginx by the spec/nginx specs
-- (`seq = require "spec.helpers.ngx_seq"` in init_by_lua_block).
-- seq(what) takes the next number of one counter shared by the workers
-- (the coldsend_test shared dict), records it under `what` and returns it.
return function(what)
  local d = ngx.shared.coldsend_test
  local n = d:incr("seq", 1, 0)
  d:set(what, n)
  return n
end
