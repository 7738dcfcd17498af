-- coldsend.lua: lua-coldsend inside HAProxy: two services and an action.
-- haproxy.cfg beside it loads this file; doc/haproxy.md explains both.
--
--   POST /campaigns/launch?name=<name>  creates a campaign with an inbox, a
--                                       lead and a variant, updates it and
--                                       launches it; answers JSON
--   GET  /campaigns                     the first page of campaigns, as JSON
--   GET  /status/<campaign id>          the action coldsend_status sets
--                                       txn.coldsend_status for haproxy.cfg
--
-- Every API call goes through HAProxy's own HTTP client
-- (coldsend.transport.haproxy, picked by itself inside HAProxy): while one
-- waits, the thread serves other connections.
local coldsend = require "coldsend"
local cjson = require "cjson.safe"

-- One client for the Lua state (with lua-load: for the whole process, so
-- every thread draws from one rate-limit budget). Making it does no I/O;
-- the key comes from COLDSEND_API_KEY, the URL from COLDSEND_BASE_URL.
local cs = coldsend.client {}

local function reply(applet, status, body)
  local text = cjson.encode(body)
  applet:set_status(status)
  applet:add_header("content-type", "application/json")
  applet:add_header("content-length", tostring(#text))
  applet:start_response()
  applet:send(text)
end

-- an API error as an HTTP answer: the code and message, never the key
local function failed(applet, err)
  core.Warning("coldsend: " .. tostring(err))
  local status = (err.code == "not_found" and 404)
    or ((err.code == "invalid" or err.code == "unprocessable") and 422) or 502
  reply(applet, status, { error = err.code, message = err.message })
end

local function query_param(qs, name)
  local v = ("&" .. (qs or "")):match("&" .. name .. "=([^&]*)") -- not ?rename=
  if not v then return nil end
  return (v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- an inbox to send from: the one with this address if the server has it
local function inbox(address)
  local ib, err = cs:add_smtp_inbox {
    email_address = address, display_name = "Outreach", inbox_type = "CUSTOM_SMTP",
    smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = address, smtp_password = "app-password",
    imap_host = "imap.example.com", imap_port = 993, imap_username = address, imap_password = "app-password",
    daily_limit = 50,
  }
  if ib then return ib end
  if err.code ~= "conflict" then return nil, err end
  local list, lerr = cs:list_inboxes { limit = 100 }
  if not list then return nil, lerr end
  for _, each in ipairs(list.sender_accounts or {}) do
    if each.email_address == address then return each end
  end
  return nil, err
end

core.register_service("coldsend_launch", "http", function(applet)
  local name = query_param(applet.qs, "name")
  if not name then return reply(applet, 400, { error = "want ?name=<campaign name>" }) end
  local ib, err = inbox("outreach@example.com")
  if not ib then return failed(applet, err) end
  -- a bad value raises (before any I/O): answer it as the API's "invalid"
  local made, c, cerr = pcall(cs.create_campaign, cs, { name = name, daily_limit_per_inbox = 20 })
  if not made then return failed(applet, { code = "invalid", message = tostring(c) }) end
  if not c then return failed(applet, cerr) end
  c.inbox_ids = { ib.inbox_id }
  c:add_variant { subject_template = "Hello {{first_name}}",
    email_content = "Hi {{first_name}},\n\nA short note.\n\nJane" }
  local ok
  ok, err = c:add_lead { email = "ada@example.org", first_name = "Ada" }
  if not ok then return failed(applet, err) end
  ok, err = c:save()                       -- the update: inbox and variant
  if not ok then return failed(applet, err) end
  c.daily_limit_per_inbox = 30
  ok, err = c:launch()                     -- the change and launch = true
  if not ok then return failed(applet, err) end
  ok, err = c:refresh()
  if not ok then return failed(applet, err) end
  reply(applet, 200, { id = c.id, name = c.name, status = c.status,
    daily_limit_per_inbox = c.daily_limit_per_inbox })
end)

core.register_service("coldsend_campaigns", "http", function(applet)
  local page, err = cs:list_campaigns { limit = 10 }
  if not page then return failed(applet, err) end
  local names = {}
  for i, c in ipairs(page.campaigns or {}) do names[i] = c.name end
  reply(applet, 200, { count = #names, names = names })
end)

core.register_action("coldsend_status", { "http-req" }, function(txn)
  local id = txn.sf:path():match("^/status/([^/]+)$")
  local ok, c = pcall(cs.campaign, cs, id)   -- a bad id raises: no I/O
  if not ok then
    txn:set_var("txn.coldsend_status", '{"error":"campaign id must be a UUID"}')
    return
  end
  local fine, err = c:refresh()
  txn:set_var("txn.coldsend_status", cjson.encode(fine and { id = c.id, status = c.status }
    or { error = err.code, message = err.message }))
end)

core.register_service("ping", "http", function(applet)
  applet:set_status(200)
  applet:add_header("content-length", "5")
  applet:start_response()
  applet:send("pong\n")
end)
