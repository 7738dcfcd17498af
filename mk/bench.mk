# mk/bench.mk: `make bench`: the performance benchmarks (bench/, issue 6).
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
