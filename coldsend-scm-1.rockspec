rockspec_format = "3.0"
package = "coldsend"
version = "scm-1"
source = {
   url = "git+https://github.com/coldsend/lua-coldsend.git",
}
description = {
   summary = "ColdSend cold-email campaign API client: validated campaigns in C, libcurl transport",
   detailed = [[
Build ColdSend campaigns (A/B variants, follow-up sequences, inboxes, leads)
programmatically and launch them. A C core validates every field as it is
assigned; a libcurl transport talks to the API with retries, rate limiting
and deadlines; an OpenResty transport keeps nginx workers free.
]],
   homepage = "https://github.com/coldsend/lua-coldsend",
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1",
   "luasocket >= 3.0",
}
test_dependencies = {
   "busted >= 2.0",
}
external_dependencies = {
   -- by library only: Debian keeps curl.h in a multiarch include dir
   -- that a `header` check would miss
   CURL = { library = "curl" },
}
build = {
   type = "builtin",
   modules = {
      ["coldsend.core"] = {
         sources = {
            "src/core.c", "src/util.c", "src/campaign.c", "src/response.c",
            "src/http.c", "src/csv.c",
         },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
      ["coldsend"] = "lua/coldsend/init.lua",
      ["coldsend.transport.curl"] = "lua/coldsend/transport/curl.lua",
   },
   install = {
      bin = {
         ["coldsend-sandbox"] = "bin/coldsend-sandbox",
      },
   },
}
test = {
   type = "busted",
}
