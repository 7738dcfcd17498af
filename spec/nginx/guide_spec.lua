-- spec/nginx/guide_spec.lua: doc/openresty.md as written. The nginx.conf and
-- the handler it shows are examples/openresty/nginx.conf and handler.lua,
-- byte for byte, and `scripts/openresty-demo.sh` (`make openresty-demo`)
-- starts Debian's nginx with exactly those two files, the module installed
-- by doc/install.md's LuaJIT luarocks line, and posts a lead to the hook
-- through a sandbox.
local util = require "spec.helpers.util"
local helper = require "spec.nginx.helper"

local ROOT = helper.top()

-- The fenced blocks of a Markdown file: { {lang=, text=, after=heading} }.
local function blocks(path)
  local text = assert(util.slurp(path))
  local out, heading = {}, ""
  local pos = 1
  while true do
    local s, e, lang, body = text:find("\n```(%w*)\n(.-)```", pos)
    if not s then break end
    local before = text:sub(1, s)
    for h in before:gmatch("\n(#+ [^\n]+)") do heading = h end
    out[#out + 1] = { lang = lang, text = body, heading = heading }
    pos = e + 1
  end
  return out
end

describe("doc/openresty.md #once", function()
  it("shows examples/openresty/nginx.conf and handler.lua exactly", function()
    local conf = assert(util.slurp(ROOT .. "/examples/openresty/nginx.conf"))
    local handler = assert(util.slurp(ROOT .. "/examples/openresty/handler.lua"))
    local found_conf, found_handler = false, false
    for _, b in ipairs(blocks(ROOT .. "/doc/openresty.md")) do
      if b.lang == "nginx" and b.text:find("thread_pool coldsend", 1, true) then
        assert.equal(conf, b.text)
        found_conf = true
      elseif b.lang == "lua" and b.text:find("function M.new_lead", 1, true) then
        assert.equal(handler, b.text)
        found_handler = true
      end
    end
    assert.is_true(found_conf, "no nginx.conf block")
    assert.is_true(found_handler, "no handler block")
    -- what Debian's nginx needs, spelled out
    assert.matches("\nload_module /usr/lib/nginx/modules/ndk_http_module.so;", conf, 1, true)
    assert.matches("\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;", conf, 1, true)
    assert.matches("\nenv COLDSEND_API_KEY;", conf, 1, true)
    assert.matches("\nenv COLDSEND_BASE_URL;", conf, 1, true)
    assert.matches("mkdir -p logs", conf, 1, true)
    -- the README points at the files instead of a copy of its own
    local readme = assert(util.slurp(ROOT .. "/README.md"))
    assert.is_nil(readme:find("content_by_lua_block", 1, true))
    assert.matches("examples/openresty/handler.lua", readme, 1, true)
  end)

  it("runs as written: make openresty-demo serves the hook through the sandbox", function()
    assert(helper.usable(), "Debian nginx with libnginx-mod-http-lua is needed")
    local rc, out, err
    -- the guide's port (8080) is fixed: another run may hold it a moment
    for _ = 1, 6 do
      rc, out, err = util.run(string.format("cd %s && sh scripts/openresty-demo.sh", util.q(ROOT)))
      if rc == 0 or not (err .. out):find("Address already in use", 1, true) then break end
      os.execute("sleep 5")
    end
    assert.equal(0, rc, out .. err)
    assert.matches("luarocks --lua-version 5.1 make --tree /tmp/coldsend-openresty.", out, 1, true)
    assert.matches("LUA_INCDIR=/usr/include/luajit-2.1", out, 1, true)
    local answer = out:match("HTTP 200 (%b{})")
    assert.truthy(answer, out)
    local t = require("cjson").decode(answer)
    assert.equal("ada@example.org", t.email)
    assert.matches("^%x+%-", t.lead)
    local campaign = out:match("campaign (%x+%-[%x%-]+)")
    assert.equal(campaign, t.campaign)
    -- nothing left behind
    assert.equal("", (out:match("/tmp/coldsend%-openresty%.%w+") and
      select(2, util.run("ls -d " .. out:match("/tmp/coldsend%-openresty%.%w+") .. " 2>/dev/null"))) or "")
  end)
end)
