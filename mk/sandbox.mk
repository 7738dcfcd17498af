# The local ColdSend sandbox (doc/sandbox.md). `make sandbox` (main Makefile)
# runs it in the foreground on a free port.

SANDBOX_SPECS = spec/sandbox_spec.lua spec/sandbox_python_spec.lua

.PHONY: sandbox-test sandbox-rate-limited

# The sandbox's own specs under Lua 5.4 and LuaJIT.
sandbox-test: all
	@sh scripts/deps.sh test
	@BUILD=$(BUILD) sh scripts/run-tests.sh $(SANDBOX_SPECS)

# The sandbox in the foreground, enforcing 100 requests/minute per key.
sandbox-rate-limited:
	@sh scripts/deps.sh test
	@lua5.4 bin/coldsend-sandbox --port 0 --rate-limit 100
