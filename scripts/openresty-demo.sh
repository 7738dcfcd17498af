#!/bin/sh
# openresty-demo.sh: the OpenResty guide, as written, against a sandbox.
# Installs the module with doc/install.md's LuaJIT route (its luarocks line,
# into a temporary /srv/hooks stand-in), copies examples/openresty/nginx.conf
# and handler.lua there unchanged, starts nginx with them (the conf listens
# on 127.0.0.1:8080), posts a lead to the hook and prints the answer, then
# stops nginx and the sandbox. Exit 0 when the hook answered 200.
set -u
. "$(dirname "$0")/env.sh"
cd "$top"
app=$(mktemp -d /tmp/coldsend-openresty.XXXXXX)
chmod 755 "$app"            # nginx's workers (nobody, under root) read it
src=$app/src
log=$app/sandbox.log
sbpid=
stop() {
  [ -f "$app/logs/nginx.pid" ] && nginx -p "$app" -c nginx.conf -s stop 2>/dev/null
  [ -n "$sbpid" ] && kill "$sbpid" 2>/dev/null && wait "$sbpid" 2>/dev/null
  rm -rf "$app"
}
trap 'stop; exit 130' INT TERM
fail() { echo "openresty-demo: $*" >&2; stop; exit 1; }

# 1. the module, by doc/install.md's LuaJIT/OpenResty route (from a copy
# of the tree, so that the checkout gets no build products)
line=$(sed -n 's/^    \(luarocks --lua-version 5\.1 make .*\)$/\1/p' doc/install.md | head -n 1)
[ -n "$line" ] || fail "no 'luarocks --lua-version 5.1 make' line in doc/install.md"
line=$(printf '%s\n' "$line" | sed "s#/srv/hooks#$app#g")
mkdir -p "$src" && cp -r coldsend-scm-1.rockspec src lua bin "$src/"
echo "openresty-demo: $line"
(cd "$src" && eval "$line") >"$app/luarocks.log" 2>&1 || { cat "$app/luarocks.log" >&2; fail "luarocks failed"; }

# 2. the guide's files, unchanged
cp examples/openresty/nginx.conf examples/openresty/handler.lua "$app/"
mkdir -p "$app/logs" "$app/temp"

# 3. a sandbox and a campaign
lua5.4 bin/coldsend-sandbox --port 0 --quiet --idle-exit 120 --parent-pid $$ >"$log" 2>&1 &
sbpid=$!
i=0
until grep -q 'test key' "$log"; do
  i=$((i + 1))
  [ $i -le 100 ] && kill -0 "$sbpid" 2>/dev/null || { cat "$log" >&2; fail "the sandbox did not start"; }
  sleep 0.1
done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -n 1)
key=$(sed -n 's/^test key: *//p' "$log" | head -n 1)
campaign=$(COLDSEND_BASE_URL=$url COLDSEND_API_KEY=$key lua5.4 -e '
  local c = assert(require("coldsend").client{}:create_campaign { name = "OpenResty demo campaign" })
  print(c.id)') || fail "could not create a campaign"
echo "openresty-demo: sandbox at $url, campaign $campaign"

# 4. nginx with the guide's nginx.conf, as its comment says to start it
(cd "$app" && COLDSEND_API_KEY=$key COLDSEND_BASE_URL=$url nginx -p "$PWD" -c nginx.conf) \
  || { cat "$app/logs/error.log" >&2 2>/dev/null; fail "nginx did not start"; }
i=0
until curl -s -o /dev/null http://127.0.0.1:8080/; do
  i=$((i + 1))
  [ $i -le 50 ] || fail "nginx does not answer on 127.0.0.1:8080"
  sleep 0.1
done

# 5. the hook, as the comment in nginx.conf shows
echo "openresty-demo: POST /hooks/new-lead?campaign=$campaign"
status=$(curl -s -o "$app/answer" -w '%{http_code}' -d '{"email":"ada@example.org","name":"Ada"}' \
  "http://127.0.0.1:8080/hooks/new-lead?campaign=$campaign")
echo "HTTP $status $(cat "$app/answer")"
if [ "$status" != 200 ]; then
  cat "$app/logs/error.log" >&2
  fail "the hook answered $status"
fi
stop
