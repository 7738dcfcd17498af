#!/bin/sh
# rockspec-modules.sh [client|sandbox]: prints the module entries of one
# rockspec for the files in the tree. client (the default):
# coldsend-scm-1.rockspec's build.modules, the C core and every module
# under lua/. sandbox: coldsend-sandbox-scm-1.rockspec's build.install.lua,
# every module under sandbox/lua/. Paste them into the rockspec; the
# luarocks spec fails when the two differ.
#
# The sandbox lives outside lua/ because LuaRocks' builtin backend installs
# all of lua/ with the rock, listed or not; its rock is of type "none" and
# installs exactly the files it names.
cd "$(dirname "$0")/.."
case "${1:-client}" in
  client)
    root=lua indent='      '
    printf '      ["coldsend.core"] = {\n         sources = {\n'
    for f in src/*.c; do printf '            "%s",\n' "$f"; done
    printf '         },\n         libraries = { "curl" },\n'
    printf '         incdirs = { "$(CURL_INCDIR)" },\n         libdirs = { "$(CURL_LIBDIR)" },\n      },\n'
    ;;
  sandbox) root=sandbox/lua indent='         ' ;;
  *) echo "usage: sh scripts/rockspec-modules.sh [client|sandbox]" >&2; exit 2 ;;
esac
find "$root" -name '*.lua' | LC_ALL=C sort | while read -r f; do
  m=${f#"$root"/}; m=${m%.lua}; m=${m%/init}; m=$(echo "$m" | tr / .)
  printf '%s["%s"] = "%s",\n' "$indent" "$m" "$f"
done
