#!/bin/sh
# deps.sh GROUP...: make sure the Debian packages a make target needs are
# installed. As root on Debian it installs what is missing with apt-get;
# otherwise it prints the exact command to run and fails.
set -eu

pkgs_build="gcc make pkg-config lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev libcurl4-openssl-dev lua-cjson"
pkgs_test="lua-busted lua-socket lua-sec openssl python3-requests nginx libnginx-mod-http-lua luarocks haproxy"
pkgs_check="clang libclang-rt-14-dev valgrind"
pkgs_bench="python3-requests nginx"
pkgs_docs="lua-ldoc"
pkgs_lint="lua-check clang-format"

want=""
for group in "$@"; do
  eval "want=\"\$want \$pkgs_$group\""
done

missing=""
for p in $want; do
  case " $missing " in *" $p "*) continue ;; esac
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *" installed") ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  # an old package list may not know the packages yet
  apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing
  }
else
  echo "deps: missing Debian packages:$missing" >&2
  echo "deps: run as root:  $cmd" >&2
  exit 1
fi
