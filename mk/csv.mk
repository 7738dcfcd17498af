# mk/csv.mk: `make fuzz-csv` (libFuzzer on the CSV reader and pre-flight) and
# `make bench-leads` (pre-flight throughput and memory, issue 5). Neither is
# part of `make test`.

FUZZ_TIME ?= 60
FUZZ_CC ?= clang
CSV_FUZZ = fuzz/build/csv_fuzz

.PHONY: fuzz-csv bench-leads

# Only the CSV files, util.c and liblua5.4 are linked in: no libcurl.
CSV_SRCS = src/csv_reader.c src/csv_file.c src/csv_preflight.c src/email_check.c src/util.c
$(CSV_FUZZ): fuzz/csv_fuzz.c $(CSV_SRCS) src/csv.h src/csv_file.h src/util.h src/core.h src/compat.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Isrc -I$(LUA54_INC) \
	  -o $@ fuzz/csv_fuzz.c $(CSV_SRCS) -llua5.4 -lm

# New inputs go to fuzz/build/corpus-csv; the checked-in seeds stay as they are.
fuzz-csv: $(CSV_FUZZ)
	@mkdir -p fuzz/build/corpus-csv
	$(CSV_FUZZ) -max_total_time=$(FUZZ_TIME) -max_len=8192 -timeout=10 \
	  -print_final_stats=1 -artifact_prefix=fuzz/build/ \
	  fuzz/build/corpus-csv fuzz/corpus/csv

# LEADS_ROWS, LEADS_RUNS, LEADS_UPLOAD_ROWS, LEADS_DIR: see bench/leads.lua.
bench-leads: all
	@sh scripts/deps.sh test
	@LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/sandbox/lua/?.lua;$(CURDIR)/sandbox/lua/?/init.lua;$(CURDIR)/?.lua;;" \
	  LUA_CPATH_5_4="$(abspath $(BUILD))/5.4/?.so;;" \
	  lua5.4 bench/leads.lua
