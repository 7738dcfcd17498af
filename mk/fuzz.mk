# mk/fuzz.mk: libFuzzer targets (clang): `make fuzz` runs each for
# FUZZ_TIME seconds (default 60), the CSV one (mk/csv.mk) included;
# `make fuzz-smoke` runs each over its checked-in seeds only (seconds).
#
#   response  core.parse_response and error objects  fuzz/response_fuzz.c
#   setters   campaign fields and methods            fuzz/setters_fuzz.c
#   hostile   every C entry point reading Lua values fuzz/hostile_fuzz.c
#             (tables whose metamethods run the collector, cycles, depth)
#   csv       the CSV reader and pre-flight          fuzz/csv_fuzz.c (mk/csv.mk)
#
# The Lua-driven targets embed liblua5.4 and the whole C module (libcurl
# linked, never called); cjson comes from the system's package.cpath. New
# inputs go to fuzz/build/corpus-<target>; crashes to fuzz/build/.
# The drivers (fuzz/<target>_driver.lua) are read at start-up, so editing
# one needs no rebuild. Reproduce a crash: fuzz/build/<target>_fuzz <file>

FUZZ_TIME ?= 60
FUZZ_CC   ?= clang
FUZZ_DIR   = fuzz/build
FUZZ_LUA_TARGETS = response setters hostile
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
             -fno-sanitize-recover=undefined
FUZZ_RUN   = -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/

# Only defined by mk/csv.mk when that target exists.
FUZZ_CSV = $(if $(CSV_FUZZ),fuzz-csv)

.PHONY: fuzz fuzz-smoke $(addprefix fuzz-,$(FUZZ_LUA_TARGETS))

$(FUZZ_DIR)/%_fuzz: fuzz/%_fuzz.c fuzz/lua_harness.h $(SRCS) $(HDRS) mk/fuzz.mk
	@sh scripts/deps.sh build check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -DFUZZ_DIR='"$(CURDIR)/fuzz"' -Isrc -I$(LUA54_INC) $(CURL_CFLAGS) \
	  -o $@ $< $(SRCS) -llua5.4 $(CURL_LIBS) -lm

fuzz-response fuzz-setters fuzz-hostile: fuzz-%: $(FUZZ_DIR)/%_fuzz
	@mkdir -p $(FUZZ_DIR)/corpus-$*
	$< $(FUZZ_RUN) -max_total_time=$(FUZZ_TIME) -max_len=16384 \
	  $(FUZZ_DIR)/corpus-$* fuzz/corpus/$*

fuzz: $(addprefix fuzz-,$(FUZZ_LUA_TARGETS)) $(FUZZ_CSV)

# Every seed once, through the same sanitizers: a regression check, not a
# search. The CSV target too when it exists.
fuzz-smoke: $(addprefix $(FUZZ_DIR)/,$(addsuffix _fuzz,$(FUZZ_LUA_TARGETS))) $(CSV_FUZZ)
	@set -e; for t in $(FUZZ_LUA_TARGETS) $(if $(CSV_FUZZ),csv); do \
	  n=$$(ls fuzz/corpus/$$t | wc -l); \
	  echo "fuzz-smoke: $$t ($$n seeds)"; \
	  $(FUZZ_DIR)/$${t}_fuzz -runs=0 $(FUZZ_RUN) fuzz/corpus/$$t 2>$(FUZZ_DIR)/smoke-$$t.log \
	    || { cat $(FUZZ_DIR)/smoke-$$t.log >&2; exit 1; }; \
	done; echo "fuzz-smoke: clean"
