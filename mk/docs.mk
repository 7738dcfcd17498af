# mk/docs.mk: `make docs`: the API reference in docs/ (git-ignored), made by
# Debian's lua-ldoc from config.ld. It fails on any ldoc warning and on a
# public function or field of lua/coldsend/*.lua without a doc comment.

DOCS_SRC = docs/.src

.PHONY: docs docs-check

docs: all
	@sh scripts/deps.sh docs
	@mkdir -p $(DOCS_SRC)
	@LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" \
	  LUA_CPATH_5_4="$(abspath $(BUILD))/5.4/?.so;;" \
	  lua5.4 -e 'io.write(require("coldsend.help").luadoc())' >$(DOCS_SRC)/campaign.luadoc
	@ldoc -c config.ld . >$(DOCS_SRC)/ldoc.log 2>&1 || { cat $(DOCS_SRC)/ldoc.log; exit 1; }
	@if grep -v -e '^output written to' -e '^reading configuration from' $(DOCS_SRC)/ldoc.log | grep .; then \
	  echo "docs: ldoc warned (above)" >&2; exit 1; fi
	@$(MAKE) -s docs-check
	@echo "docs: docs/index.html"

# A public definition is `function M.x`, `function Client:x`,
# `function methods.x`, `function Plan:x` or `M.x = ...` at the start of a
# line; names starting with _ are private. The line before it (blank lines
# skipped) must end a comment.
docs-check:
	@awk 'FNR == 1 { prev = "" } \
	  /^function [A-Za-z_]+[.:][A-Za-z][A-Za-z0-9_]*\(/ || /^[A-Za-z_]+\.[A-Za-z][A-Za-z0-9_]* = / { \
	    if (prev !~ /^--/) { print FILENAME ":" FNR ": no doc comment: " $$0; bad = 1 } } \
	  !/^[ \t]*$$/ { prev = $$0 } \
	  END { exit bad }' lua/coldsend/*.lua lua/coldsend/transport/*.lua \
	  || { echo "docs: document the definitions above (a --- comment before each)" >&2; exit 1; }
