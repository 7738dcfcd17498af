# lua-coldsend: build, demo, test, check, bench.
# `make demo` and `make test` install missing Debian packages when run as root.

BUILD    ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=c99 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
PICFLAGS  = -fPIC -fvisibility=hidden
CURL_CFLAGS = $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   = $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
LUA51_INC  ?= /usr/include/lua5.1
LUA52_INC  ?= /usr/include/lua5.2
LUA53_INC  ?= /usr/include/lua5.3
LUA54_INC  ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1

SRCS = $(wildcard src/*.c)
HDRS = $(wildcard src/*.h)

# One source, one build per Lua: build/V/coldsend/core.so for V in 5.1 5.2
# 5.3 5.4 jit (src/compat.h bridges the APIs). The 5.1 build loads in
# LuaJIT too; build/jit is the one for LuaJIT's own headers.
LUA_VERSIONS = 5.1 5.2 5.3 5.4 jit
LUA_INC_5.1 = $(LUA51_INC)
LUA_INC_5.2 = $(LUA52_INC)
LUA_INC_5.3 = $(LUA53_INC)
LUA_INC_5.4 = $(LUA54_INC)
LUA_INC_jit = $(LUAJIT_INC)
SO54  = $(BUILD)/5.4/coldsend/core.so
SOJIT = $(BUILD)/jit/coldsend/core.so
SOS   = $(foreach v,$(LUA_VERSIONS),$(BUILD)/$(v)/coldsend/core.so)

.PHONY: all env deps demo test test-51 test-52 test-53 test-54 test-jit check valgrind asan fuzz bench docs sandbox clean format lint

all: deps-build $(SOS)

deps-build:
	@sh scripts/deps.sh build

$(BUILD)/%/coldsend/core.so: $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(PICFLAGS) -I$(LUA_INC_$*) $(CURL_CFLAGS) -shared -o $@ $(SRCS) $(CURL_LIBS) -lm

# The main job: the example campaign against a local sandbox (Lua 5.4: its
# build alone; make test builds the rest).
demo: deps-build $(SO54)
	@sh scripts/deps.sh test
	@BUILD=$(BUILD) sh scripts/demo.sh

# The linters (make lint), the fuzz targets over their seeds (sanitizers
# on), then the busted suite under Lua 5.4, LuaJIT, 5.1, 5.2 and 5.3 (three
# at a time: JOBS=n), which ends with the "N passed, N failed" line.
# LUAS="lua5.3" picks Luas.
test: lint all
	@sh scripts/deps.sh test check
	@$(MAKE) -s fuzz-smoke
	@BUILD=$(BUILD) sh scripts/run-tests.sh $(SPECS)

test-54: all
	@BUILD=$(BUILD) LUAS=lua5.4 sh scripts/run-tests.sh $(SPECS)

test-jit: all
	@BUILD=$(BUILD) LUAS=luajit sh scripts/run-tests.sh $(SPECS)

test-51 test-52 test-53: test-%: all
	@BUILD=$(BUILD) LUAS=lua$(subst 5,5.,$*) sh scripts/run-tests.sh $(SPECS)

# The README's walk-through uses this URL and key:
# http://127.0.0.1:8089/api/public/v1 and cs_test_sandbox. Another port or
# key: make sandbox SANDBOX_PORT=0 SANDBOX_KEY=cs_test_mine (0: a free port).
SANDBOX_PORT ?= 8089
SANDBOX_KEY  ?= cs_test_sandbox

sandbox: all
	@sh scripts/deps.sh test
	@LUA_PATH="lua/?.lua;lua/?/init.lua;sandbox/lua/?.lua;sandbox/lua/?/init.lua;;" LUA_CPATH="$(BUILD)/5.4/?.so;;" lua5.4 bin/coldsend-sandbox --port $(SANDBOX_PORT) --key $(SANDBOX_KEY)

# Paths for using this tree from a shell: eval $(make -s env). LuaJIT and
# Lua 5.1 read LUA_PATH/LUA_CPATH (the jit build; for lua5.1 point
# LUA_CPATH at build/5.1); 5.2, 5.3 and 5.4 their LUA_*_5_V.
ENV_PATH = $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/sandbox/lua/?.lua;$(CURDIR)/sandbox/lua/?/init.lua;;
env:
	@echo 'export LUA_PATH="$(ENV_PATH)" LUA_CPATH="$(abspath $(BUILD))/jit/?.so;;"'$(foreach v,2 3 4, 'LUA_PATH_5_$(v)="$(ENV_PATH)" LUA_CPATH_5_$(v)="$(abspath $(BUILD))/5.$(v)/?.so;;"')

clean:
	rm -rf build build-* fuzz/build

# Every C file make lint checks (mk/lint.mk), in the .clang-format style.
format:
	clang-format -i $(LINT_C)

# Further targets (lint, check, fuzz, bench, docs, ...) live in mk/*.mk.
-include mk/*.mk
