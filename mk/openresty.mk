# mk/openresty.mk: `make bench-openresty`: /ping latency and throughput of an
# nginx worker with campaign calls in flight, thread-pool transport versus a
# blocking libcurl call (bench/openresty.lua, issue 9). Not part of `make test`.

.PHONY: bench-openresty

bench-openresty: all
	@sh scripts/deps.sh test
	@BUILD=$(BUILD) \
	  LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/sandbox/lua/?.lua;$(CURDIR)/sandbox/lua/?/init.lua;$(CURDIR)/?.lua;;" \
	  LUA_CPATH_5_4="$(abspath $(BUILD))/5.4/?.so;;" \
	  lua5.4 bench/openresty.lua

.PHONY: openresty-demo

# doc/openresty.md as written: examples/openresty/ served by nginx against a
# sandbox, the module installed by doc/install.md's luarocks route.
openresty-demo: all
	@sh scripts/deps.sh test
	@sh scripts/openresty-demo.sh
