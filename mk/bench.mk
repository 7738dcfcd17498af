# mk/bench.mk: `make bench`: the performance benchmarks (bench/, issue 6).
# Not a test: nothing here runs from `make test`. Needs nginx and Debian's
# python3-requests (scripts/deps.sh bench); LuaSocket's contender is skipped
# with a note when lua-socket is not installed.

FLOOR = $(BUILD)/bench/floor

$(FLOOR): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -std=c99 -Wall -Wextra -Werror $(CURL_CFLAGS) -o $@ bench/floor.c $(CURL_LIBS)

bench: all $(FLOOR)
	@sh scripts/deps.sh bench
	@BUILD=$(BUILD) sh bench/run.sh $(FLOOR)
