#!/bin/sh
# run.sh: `make bench`: starts one local nginx (loopback, free port, temporary
# prefix) that answers the campaign update, runs bench/run.lua against it, and
# stops nginx again whatever happens.
# usage: sh bench/run.sh FLOOR_BINARY [all|instr]   (BUILD selects the module build)
#   all (the default): bench/instr.lua, then bench/run.lua; instr: instr.lua only
set -eu
. "$(dirname "$0")/../scripts/env.sh"
bench="$top/bench"
floor=$1
what=${2:-all}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/coldsend-bench.XXXXXX")

stop_nginx() {
  [ -s "$tmp/nginx.pid" ] || return 0
  pid=$(cat "$tmp/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null || true
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$tmp/nginx.pid"
}
cleanup() {
  stop_nginx
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PYTHON=${PYTHON:-/usr/bin/python3}
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port can be taken between the probe and nginx's bind: try a few.
started=no
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  sed -e "s|@PORT@|$port|g" -e "s|@PREFIX@|$tmp|g" "$bench/nginx.conf" >"$tmp/nginx.conf"
  if nginx -q -p "$tmp" -e "$tmp/error.log" -c "$tmp/nginx.conf" 2>"$tmp/start.err"; then
    started=yes
    break
  fi
done
if [ $started = no ]; then
  echo "bench: nginx did not start:" >&2
  cat "$tmp/start.err" "$tmp/error.log" >&2 2>/dev/null || true
  exit 1
fi
echo "bench: nginx on 127.0.0.1:$port (prefix $tmp)" >&2

export BENCH_URL="http://127.0.0.1:$port/api/public/v1" BENCH_TMP="$tmp" BENCH_FLOOR="$floor" \
  BENCH_OUT="${BENCH_OUT:-$bench/results.md}" PYTHON="$PYTHON"
if command -v valgrind >/dev/null 2>&1; then
  lua5.4 "$bench/instr.lua"
elif [ "$what" = instr ]; then
  echo "bench: valgrind is not installed (apt-get install valgrind)" >&2
  exit 1
fi
[ "$what" = instr ] || lua5.4 "$bench/run.lua"
