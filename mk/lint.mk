# mk/lint.mk: `make lint` = luacheck over every Lua file of the tree, with
# the checked-in .luacheckrc (which Luas or host each file runs on), and
# clang-format --dry-run -Werror over every C file, with the checked-in
# .clang-format. Any warning fails it; when all is clean it prints one line.
# `make test` runs it first.
#
# * The Lua files: every *.lua outside build output and .git, the Lua
#   scripts of bin/ (no .lua suffix: found by their #! line), the
#   .luacheckrc, config.ld (LDoc's, in Lua) and the rockspecs (read on
#   stdin: given as a file, luacheck would check the modules they list
#   instead). LINT_LUA / LINT_C override the lists.
# * luacheck keeps a cache of its findings per file in $(BUILD)/lint.

LINT_PRUNE = \( -path ./.git -o -path ./build -o -path './build-*' -o -path ./fuzz/build \
               -o -path ./luarocks-tree -o -path ./docs \) -prune
LINT_LUA  ?= $(patsubst ./%,%,$(shell find . $(LINT_PRUNE) -o -name '*.lua' -print | sort)) \
             $(shell grep -l '^\#!.*lua' bin/* 2>/dev/null) .luacheckrc config.ld
LINT_SPECS = $(wildcard *.rockspec)
LINT_C    ?= $(patsubst ./%,%,$(shell find src fuzz bench $(LINT_PRUNE) -o -name '*.[ch]' -print | sort))

.PHONY: lint

lint:
	@sh scripts/deps.sh lint
	@mkdir -p $(BUILD)/lint
	@fail=0; \
	luacheck --formatter plain --cache $(BUILD)/lint/luacheck.cache $(LINT_LUA) || fail=1; \
	for f in $(LINT_SPECS); do \
	  luacheck --formatter plain --filename "$$f" - <"$$f" || fail=1; \
	done; \
	clang-format --dry-run -Werror $(LINT_C) || fail=1; \
	if [ $$fail -ne 0 ]; then \
	  echo "lint: the findings above (Lua: .luacheckrc; C: make format)" >&2; exit 1; \
	fi; \
	echo "lint: clean ($(words $(LINT_LUA) $(LINT_SPECS)) Lua files, $(words $(LINT_C)) C files)"
