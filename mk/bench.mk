# mk/bench.mk: `make bench` and `make bench-instr`: the performance benchmarks
# (bench/, issues 6 and 16).
# Not a test: nothing here runs from `make test`. Needs nginx and Debian's
# python3-requests (scripts/deps.sh bench); the LuaSocket contender also needs
# lua-socket (scripts/deps.sh test): without it, its row says why it failed.

BENCH_FLOOR = $(BUILD)/bench/floor

$(BENCH_FLOOR): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -std=c99 -Wall -Wextra -Werror $(CURL_CFLAGS) -o $@ bench/floor.c $(CURL_LIBS)

bench: all $(BENCH_FLOOR)
	@sh scripts/deps.sh bench
	@BUILD=$(BUILD) sh bench/run.sh $(BENCH_FLOOR)

# `make bench-instr`: the instruction counts alone (bench/instr.lua), in a
# few minutes: floor, save and PUT under Lua 5.4 and LuaJIT, limiter on and
# off, the limiter alone. BENCH_INSTR_N=n requests per run (500),
# BENCH_LUAS="lua5.4" picks Luas, BENCH_OUT=path another results file.
bench-instr: $(SO54) $(SOJIT) $(BENCH_FLOOR)
	@BUILD=$(BUILD) sh bench/run.sh $(BENCH_FLOOR) instr
