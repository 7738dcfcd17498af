#!/bin/sh
# run-tests.sh [SPEC...]: the busted suite under each Lua of $LUAS (default:
# lua5.4 luajit lua5.1 lua5.2 lua5.3), $JOBS of them at a time (default 3:
# the specs mostly wait on servers), ending with one "N passed, N failed"
# line. Each Lua loads its own build, $BUILD/V/coldsend/core.so.
set -u
. "$(dirname "$0")/env.sh"
cd "$top"

# one Lua: busted's output on stdout, its summary counts as the last line
# "= ok failed" (failed includes errors; 1 when there was no summary)
run_one() {
  lua=$1
  shift
  echo "== busted under $lua"
  # spec/nginx, the LuaRocks installs and the REPL walk-through run their
  # own Luas: once, under lua5.4, is enough
  if [ "$lua" = lua5.4 ]; then tags=""; else tags="--exclude-tags=once"; fi
  [ "$lua" = luajit ] && tags="$tags --helper=spec/helpers/luajit.lua"
  # Lua 5.1 reads LUA_CPATH, as LuaJIT does: give it its own build
  case "$lua" in lua5.1) cpath="$BUILD/5.1/?.so;;" ;; *) cpath=$LUA_CPATH ;; esac
  out=$(mktemp)
  LUA_CPATH=$cpath COLDSEND_TEST_LUA=$lua "$lua" /usr/bin/busted --output=utfTerminal $tags "$@" >"$out" 2>&1
  cat "$out"
  # colours may wrap the numbers: strip escape sequences first
  summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' | tail -n 1)
  rm -f "$out"
  if [ -z "$summary" ]; then
    echo "busted under $lua printed no summary"
    echo "= 0 1"
    return
  fi
  ok=$(echo "$summary" | sed -E 's/^[^0-9]*([0-9]+) success.*/\1/')
  bad=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures? \/ ([0-9]+) errors?.*/\1 \2/')
  echo "= $ok $(($(echo "$bad" | cut -d' ' -f1) + $(echo "$bad" | cut -d' ' -f2)))"
}

if [ "${1:-}" = --one ]; then
  shift
  run_one "$@"
  exit 0
fi

LUAS=${LUAS:-"lua5.4 luajit lua5.1 lua5.2 lua5.3"}
JOBS=${JOBS:-3}
[ $# -gt 0 ] || set -- spec
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT INT TERM
for lua in $LUAS; do echo "$lua"; done |
  xargs -P "$JOBS" -I{} sh -c 's=$0 d=$1; shift; sh "$s" --one "$@" >"$d/$1.log" 2>&1' \
    "$0" "$logs" {} "$@"
passed=0 failed=0 status=0
for lua in $LUAS; do
  sed '$d' "$logs/$lua.log"
  set -- $(tail -n 1 "$logs/$lua.log")
  [ "${1:-}" = "=" ] || set -- = 0 1
  passed=$((passed + $2)) failed=$((failed + $3))
  [ "$3" -eq 0 ] || status=1
done
echo "$passed passed, $failed failed"
exit $status
