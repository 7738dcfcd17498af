#!/bin/sh
# rockspec-modules.sh: prints the build.modules entries of the rockspec for
# the files in the tree (paste them into coldsend-scm-1.rockspec; the
# luarocks spec fails when the two differ).
cd "$(dirname "$0")/.."
printf '      ["coldsend.core"] = {\n         sources = {\n'
for f in src/*.c; do printf '            "%s",\n' "$f"; done
printf '         },\n         libraries = { "curl" },\n'
printf '         incdirs = { "$(CURL_INCDIR)" },\n         libdirs = { "$(CURL_LIBDIR)" },\n      },\n'
find lua -name '*.lua' | LC_ALL=C sort | while read -r f; do
  m=${f#lua/}; m=${m%.lua}; m=${m%/init}; m=$(echo "$m" | tr / .)
  printf '      ["%s"] = "%s",\n' "$m" "$f"
done
