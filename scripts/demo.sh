#!/bin/sh
# demo.sh: start a sandbox on a free loopback port, run the quickstart
# example against it, stop the sandbox.
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
stop
exit $rc
