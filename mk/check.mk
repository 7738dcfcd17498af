# mk/check.mk: `make check` = the busted suite against the C module built
# with AddressSanitizer + UndefinedBehaviorSanitizer (`make asan`), then
# the suite again under valgrind (`make valgrind`), then every fuzz
# target over its corpus (`make fuzz-smoke`, ASan+UBSan too). All must be
# clean.
#
# * Lua 5.4 only: the C module is the same source for LuaJIT, and
#   LuaJIT's own allocator and JIT code confuse both tools.
# * ASan: clang -fsanitize=address,undefined -shared-libasan. lua5.4 is not
#   instrumented, so the ASan runtime is preloaded (LD_PRELOAD, inherited
#   by the children the specs start: the CLI and example scripts run under
#   it too). detect_leaks=0: lua5.4 and busted exit without closing the
#   state, so everything would count as leaked; valgrind checks leaks.
#   Every report, from any process, goes to build/asan/logs/; the target
#   fails when one appears, even if the spec that caused it passed.
# * valgrind: the module built with -O0 -g; only the busted process is
#   traced (children are not). Fails on any memory error and on
#   "definitely lost" blocks.
# * Specs tagged #once are left out of both: they run the module inside
#   nginx's LuaJIT or build it afresh with luarocks, where this build is
#   not the one loaded. CHECK_SPECS / CHECK_TAGS override.

CHECK_CC    ?= clang
CHECK_SPECS ?= spec
CHECK_TAGS  ?= --exclude-tags=once
ASAN_DIR     = build/asan
ASAN_SO54    = $(ASAN_DIR)/5.4/coldsend/core.so
ASAN_SOJIT   = $(ASAN_DIR)/jit/coldsend/core.so
VG_DIR       = build/valgrind
VG_SO54      = $(VG_DIR)/5.4/coldsend/core.so
ASAN_FLAGS   = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -shared-libasan

# The tree's modules first; cjson, socket and busted from the system.
CHECK_ENV = LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/sandbox/lua/?.lua;$(CURDIR)/sandbox/lua/?/init.lua;;" \
            LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/sandbox/lua/?.lua;$(CURDIR)/sandbox/lua/?/init.lua;;" \
            COLDSEND_TEST_LUA=lua5.4

.PHONY: check asan valgrind

check: asan valgrind fuzz-smoke

$(ASAN_SO54): $(SRCS) $(HDRS) mk/check.mk
	@sh scripts/deps.sh build check
	@mkdir -p $(dir $@)
	$(CHECK_CC) $(ASAN_FLAGS) $(WARN) $(PICFLAGS) -I$(LUA54_INC) $(CURL_CFLAGS) \
	  -shared -o $@ $(SRCS) $(CURL_LIBS) -lm

# Only for specs that start a LuaJIT child: they must find a module.
$(ASAN_SOJIT): $(SRCS) $(HDRS) mk/check.mk
	@sh scripts/deps.sh build check
	@mkdir -p $(dir $@)
	$(CHECK_CC) $(ASAN_FLAGS) $(WARN) $(PICFLAGS) -I$(LUAJIT_INC) $(CURL_CFLAGS) \
	  -shared -o $@ $(SRCS) $(CURL_LIBS) -lm

$(VG_SO54): $(SRCS) $(HDRS) mk/check.mk
	@sh scripts/deps.sh build check
	@mkdir -p $(dir $@)
	$(CC) -g -O0 $(WARN) $(PICFLAGS) -I$(LUA54_INC) $(CURL_CFLAGS) \
	  -shared -o $@ $(SRCS) $(CURL_LIBS) -lm

asan: $(ASAN_SO54) $(ASAN_SOJIT)
	@sh scripts/deps.sh test check
	@rm -rf $(ASAN_DIR)/logs && mkdir -p $(ASAN_DIR)/logs
	@echo "== busted under lua5.4 with ASan+UBSan ($(ASAN_SO54))"
	@$(CHECK_ENV) LUA_CPATH_5_4="$(CURDIR)/$(ASAN_DIR)/5.4/?.so;;" \
	  LUA_CPATH="$(CURDIR)/$(ASAN_DIR)/jit/?.so;;" BUILD="$(CURDIR)/$(ASAN_DIR)" \
	  LD_PRELOAD="$$($(CHECK_CC) -print-file-name=libclang_rt.asan-x86_64.so)" \
	  ASAN_OPTIONS="detect_leaks=0:log_path=$(CURDIR)/$(ASAN_DIR)/logs/asan:strict_string_checks=1:check_initialization_order=1" \
	  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$(CURDIR)/$(ASAN_DIR)/logs/ubsan" \
	  lua5.4 /usr/bin/busted --output=utfTerminal $(CHECK_TAGS) $(CHECK_SPECS); \
	  rc=$$?; \
	  if [ -n "$$(ls -A $(ASAN_DIR)/logs)" ]; then \
	    echo "asan: sanitizer reports:" >&2; cat $(ASAN_DIR)/logs/* >&2; exit 1; \
	  fi; \
	  [ $$rc -eq 0 ] && echo "asan: clean" || { echo "asan: busted failed ($$rc)" >&2; exit 1; }

valgrind: $(VG_SO54)
	@sh scripts/deps.sh test check
	@echo "== busted under lua5.4 in valgrind ($(VG_SO54))"
	@$(CHECK_ENV) LUA_CPATH_5_4="$(CURDIR)/$(VG_DIR)/5.4/?.so;;" BUILD="$(CURDIR)/$(VG_DIR)" \
	  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	    --show-leak-kinds=definite --track-origins=yes --num-callers=30 \
	    lua5.4 /usr/bin/busted --output=utfTerminal $(CHECK_TAGS) $(CHECK_SPECS); \
	  rc=$$?; \
	  if [ $$rc -eq 99 ]; then echo "valgrind: memory errors or definite leaks (above)" >&2; exit 1; fi; \
	  [ $$rc -eq 0 ] && echo "valgrind: clean" || { echo "valgrind: busted failed ($$rc)" >&2; exit 1; }
