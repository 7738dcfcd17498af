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
            "src/campaign_apply.c",
            "src/campaign_changes.c",
            "src/campaign_errors.c",
            "src/campaign_fields.c",
            "src/campaign_setters.c",
            "src/campaign_validate.c",
            "src/core.c",
            "src/csv_file.c",
            "src/csv_preflight.c",
            "src/csv_reader.c",
            "src/email_check.c",
            "src/error.c",
            "src/http.c",
            "src/http_request.c",
            "src/http_response.c",
            "src/probe.c",
            "src/ratelimit.c",
            "src/request.c",
            "src/response.c",
            "src/util.c",
         },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
      ["coldsend.campaign_files"] = "lua/coldsend/campaign_files.lua",
      ["coldsend.campaign_methods"] = "lua/coldsend/campaign_methods.lua",
      ["coldsend.chart"] = "lua/coldsend/chart.lua",
      ["coldsend.client"] = "lua/coldsend/client.lua",
      ["coldsend.cli"] = "lua/coldsend/cli.lua",
      ["coldsend.cli.apply"] = "lua/coldsend/cli/apply.lua",
      ["coldsend.cli.campaigns"] = "lua/coldsend/cli/campaigns.lua",
      ["coldsend.cli.inboxes"] = "lua/coldsend/cli/inboxes.lua",
      ["coldsend.cli.inputs"] = "lua/coldsend/cli/inputs.lua",
      ["coldsend.cli.leads"] = "lua/coldsend/cli/leads.lua",
      ["coldsend.cli.output"] = "lua/coldsend/cli/output.lua",
      ["coldsend.dates"] = "lua/coldsend/dates.lua",
      ["coldsend.doctor"] = "lua/coldsend/doctor.lua",
      ["coldsend.endpoint"] = "lua/coldsend/endpoint.lua",
      ["coldsend.doctor.report"] = "lua/coldsend/doctor/report.lua",
      ["coldsend.export"] = "lua/coldsend/export.lua",
      ["coldsend.help"] = "lua/coldsend/help.lua",
      ["coldsend"] = "lua/coldsend/init.lua",
      ["coldsend.json"] = "lua/coldsend/json.lua",
      ["coldsend.leads"] = "lua/coldsend/leads.lua",
      ["coldsend.options"] = "lua/coldsend/options.lua",
      ["coldsend.plan"] = "lua/coldsend/plan.lua",
      ["coldsend.progress"] = "lua/coldsend/progress.lua",
      ["coldsend.ratelimit"] = "lua/coldsend/ratelimit.lua",
      ["coldsend.ratelimit_ngx"] = "lua/coldsend/ratelimit_ngx.lua",
      ["coldsend.redact"] = "lua/coldsend/redact.lua",
      ["coldsend.request_loop"] = "lua/coldsend/request_loop.lua",
      ["coldsend.resources"] = "lua/coldsend/resources.lua",
      ["coldsend.retry"] = "lua/coldsend/retry.lua",
      ["coldsend.single_lead"] = "lua/coldsend/single_lead.lua",
      ["coldsend.text"] = "lua/coldsend/text.lua",
      ["coldsend.writes"] = "lua/coldsend/writes.lua",
      ["coldsend.transport.haproxy"] = "lua/coldsend/transport/haproxy.lua",
      ["coldsend.transport.ngx"] = "lua/coldsend/transport/ngx.lua",
      ["coldsend.transport.resty"] = "lua/coldsend/transport/resty.lua",
   },
   install = {
      bin = {
         ["coldsend"] = "bin/coldsend",
      },
   },
}
test = {
   type = "busted",
}
