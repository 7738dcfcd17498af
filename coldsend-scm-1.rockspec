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
            "src/campaign.c",
            "src/campaign_check.c",
            "src/campaign_sync.c",
            "src/core.c",
            "src/csv.c",
            "src/http.c",
            "src/http_request.c",
            "src/http_response.c",
            "src/probe.c",
            "src/ratelimit.c",
            "src/request.c",
            "src/response.c",
            "src/rules.c",
            "src/util.c",
         },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
      ["coldsend.campaign_files"] = "lua/coldsend/campaign_files.lua",
      ["coldsend.chart"] = "lua/coldsend/chart.lua",
      ["coldsend.cli"] = "lua/coldsend/cli.lua",
      ["coldsend.doctor"] = "lua/coldsend/doctor.lua",
      ["coldsend.export"] = "lua/coldsend/export.lua",
      ["coldsend.help"] = "lua/coldsend/help.lua",
      ["coldsend"] = "lua/coldsend/init.lua",
      ["coldsend.json"] = "lua/coldsend/json.lua",
      ["coldsend.leads"] = "lua/coldsend/leads.lua",
      ["coldsend.plan"] = "lua/coldsend/plan.lua",
      ["coldsend.progress"] = "lua/coldsend/progress.lua",
      ["coldsend.ratelimit"] = "lua/coldsend/ratelimit.lua",
      ["coldsend.ratelimit_ngx"] = "lua/coldsend/ratelimit_ngx.lua",
      ["coldsend.redact"] = "lua/coldsend/redact.lua",
      ["coldsend.retry"] = "lua/coldsend/retry.lua",
      ["coldsend.text"] = "lua/coldsend/text.lua",
      ["coldsend.writes"] = "lua/coldsend/writes.lua",
      ["coldsend.sandbox"] = "lua/coldsend/sandbox.lua",
      ["coldsend.sandbox.api"] = "lua/coldsend/sandbox/api.lua",
      ["coldsend.sandbox.csv"] = "lua/coldsend/sandbox/csv.lua",
      ["coldsend.sandbox.http"] = "lua/coldsend/sandbox/http.lua",
      ["coldsend.sandbox.simulate"] = "lua/coldsend/sandbox/simulate.lua",
      ["coldsend.sandbox.validate"] = "lua/coldsend/sandbox/validate.lua",
      ["coldsend.transport.haproxy"] = "lua/coldsend/transport/haproxy.lua",
      ["coldsend.transport.ngx"] = "lua/coldsend/transport/ngx.lua",
      ["coldsend.transport.resty"] = "lua/coldsend/transport/resty.lua",
   },
   install = {
      bin = {
         ["coldsend"] = "bin/coldsend",
         ["coldsend-sandbox"] = "bin/coldsend-sandbox",
      },
   },
}
test = {
   type = "busted",
}
