#!/bin/sh
# run-tests.sh [SPEC...]: the busted suite under each Lua of $LUAS
# (default: lua5.4 and luajit), ending with one "N passed, N failed" line.
set -u
. "$(dirname "$0")/env.sh"
cd "$top"
LUAS=${LUAS:-"lua5.4 luajit"}
[ $# -gt 0 ] || set -- spec
passed=0 failed=0 status=0
for lua in $LUAS; do
  echo "== busted under $lua"
  out=$(mktemp)
  # spec/nginx runs nginx's own LuaJIT: once is enough
  if [ "$lua" = luajit ]; then tags="--exclude-tags=once --helper=spec/helpers/luajit.lua"; else tags=""; fi
  # Lua 5.1 reads LUA_CPATH, as LuaJIT does: give it its own build
  case "$lua" in lua5.1) cpath="$BUILD/5.1/?.so;;" ;; *) cpath=$LUA_CPATH ;; esac
  LUA_CPATH=$cpath COLDSEND_TEST_LUA=$lua "$lua" /usr/bin/busted --output=utfTerminal $tags "$@" 2>&1 | tee "$out"
  rc=$?
  # colours may wrap the numbers: strip escape sequences first
  summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' | tail -n 1)
  rm -f "$out"
  if [ -z "$summary" ]; then
    echo "busted under $lua printed no summary" >&2
    status=1 failed=$((failed + 1))
    continue
  fi
  ok=$(echo "$summary" | sed -E 's/^[^0-9]*([0-9]+) success.*/\1/')
  bad=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures? \/ ([0-9]+) errors?.*/\1 \2/')
  f=$(echo "$bad" | cut -d' ' -f1) e=$(echo "$bad" | cut -d' ' -f2)
  passed=$((passed + ok)) failed=$((failed + f + e))
  [ $((f + e)) -eq 0 ] || status=1
done
echo "$passed passed, $failed failed"
exit $status
