#!/bin/sh
# demo.sh: start a sandbox on a free loopback port, run the quickstart
# example against it, let the sandbox simulate two weeks of the launched
# campaign's sending (POST /__sandbox/simulate, seed 1), show
# `coldsend stats`, stop the sandbox.
set -u
. "$(dirname "$0")/env.sh"
cd "$top"
log=$(mktemp)
lua5.4 bin/coldsend-sandbox --port 0 >"$log" 2>&1 &
pid=$!
stop() {
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f "$log"
}
trap 'stop; exit 130' INT TERM
i=0
until grep -q 'listening on' "$log"; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: the sandbox did not start:" >&2
    cat "$log" >&2
    stop
    exit 1
  fi
  sleep 0.1
done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -n 1)
key=$(sed -n 's/^test key: *//p' "$log" | head -n 1)
echo "demo: sandbox at $url"
COLDSEND_BASE_URL=$url COLDSEND_API_KEY=$key lua5.4 examples/quickstart.lua
rc=$?
if [ $rc -eq 0 ]; then
  echo "demo: two weeks of simulated sending, then: coldsend stats"
  base=${url%/api/public/v1}
  lua5.4 - "$base/__sandbox/simulate" "$key" <<'EOF' || rc=$?
local http, ltn12 = require "socket.http", require "ltn12"
local body = '{"days": 14, "seed": 1}'
local _, code = http.request { url = arg[1], method = "POST", source = ltn12.source.string(body),
  headers = { ["X-API-Key"] = arg[2], ["Content-Type"] = "application/json",
              ["Content-Length"] = tostring(#body) } }
if code ~= 200 then io.stderr:write("demo: simulate answered ", tostring(code), "\n") os.exit(1) end
EOF
  if [ $rc -eq 0 ]; then
    COLDSEND_BASE_URL=$url COLDSEND_API_KEY=$key lua5.4 bin/coldsend stats || rc=$?
  fi
fi
stop
exit $rc
