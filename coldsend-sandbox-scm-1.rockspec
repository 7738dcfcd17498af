rockspec_format = "3.0"
package = "coldsend-sandbox"
version = "scm-1"
source = {
   url = "git+https://github.com/coldsend/lua-coldsend.git",
}
description = {
   summary = "A local, in-memory ColdSend-compatible API server, for developing and testing against",
   detailed = [[
coldsend-sandbox serves the ColdSend public API from memory on a loopback
port: campaigns, leads and CSV uploads, sender accounts, analytics, the
documented errors and rate limits, and faults injected on request. Pure
Lua over LuaSocket; the coldsend client (and its CLI) talk to it like to
the real service. doc/sandbox.md describes it.
]],
   homepage = "https://github.com/coldsend/lua-coldsend",
   license = "MIT",
}
dependencies = {
   "lua >= 5.3, < 5.5",
   "coldsend == scm-1",
   "luasocket >= 3.0",
   "lua-cjson >= 2.1",
}
-- Type "none": LuaRocks installs exactly what build.install names (the
-- builtin backend would install all of a lua/ directory, and the sandbox
-- keeps its modules in sandbox/lua/ so that the client's rock has none).
build = {
   type = "none",
   install = {
      lua = {
         ["coldsend.sandbox.access"] = "sandbox/lua/coldsend/sandbox/access.lua",
         ["coldsend.sandbox.analytics"] = "sandbox/lua/coldsend/sandbox/analytics.lua",
         ["coldsend.sandbox.api"] = "sandbox/lua/coldsend/sandbox/api.lua",
         ["coldsend.sandbox.campaign_schema"] = "sandbox/lua/coldsend/sandbox/campaign_schema.lua",
         ["coldsend.sandbox.campaigns"] = "sandbox/lua/coldsend/sandbox/campaigns.lua",
         ["coldsend.sandbox.connections"] = "sandbox/lua/coldsend/sandbox/connections.lua",
         ["coldsend.sandbox.control"] = "sandbox/lua/coldsend/sandbox/control.lua",
         ["coldsend.sandbox.csv"] = "sandbox/lua/coldsend/sandbox/csv.lua",
         ["coldsend.sandbox.endpoint"] = "sandbox/lua/coldsend/sandbox/endpoint.lua",
         ["coldsend.sandbox.faults"] = "sandbox/lua/coldsend/sandbox/faults.lua",
         ["coldsend.sandbox.http"] = "sandbox/lua/coldsend/sandbox/http.lua",
         ["coldsend.sandbox.inboxes"] = "sandbox/lua/coldsend/sandbox/inboxes.lua",
         ["coldsend.sandbox"] = "sandbox/lua/coldsend/sandbox/init.lua",
         ["coldsend.sandbox.leads"] = "sandbox/lua/coldsend/sandbox/leads.lua",
         ["coldsend.sandbox.simulate"] = "sandbox/lua/coldsend/sandbox/simulate.lua",
         ["coldsend.sandbox.uploads"] = "sandbox/lua/coldsend/sandbox/uploads.lua",
         ["coldsend.sandbox.validate"] = "sandbox/lua/coldsend/sandbox/validate.lua",
      },
      bin = {
         ["coldsend-sandbox"] = "bin/coldsend-sandbox",
      },
   },
}
