-- handler.lua: an nginx (OpenResty) handler that adds a lead to a
-- campaign when a sign-up hook posts one. See nginx.conf beside it and
-- doc/openresty.md.
--
--   POST /hooks/new-lead?campaign=<campaign id>   {"email": "...", "name": "..."}
--
-- The API call runs in nginx's `coldsend` thread pool: the worker keeps
-- serving other requests while it waits.
local coldsend = require "coldsend"
local cjson = require "cjson.safe"

local M = {}

-- The client: one per worker, made on first use (making one does no I/O).
M.cs = nil

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(body))
  return ngx.exit(status)
end

function M.new_lead()
  M.cs = M.cs or coldsend.client {}      -- key from COLDSEND_API_KEY (env directive)
  local cs = M.cs
  local id = ngx.var.arg_campaign
  ngx.req.read_body()
  local lead = cjson.decode(ngx.req.get_body_data() or "")
  if type(id) ~= "string" or type(lead) ~= "table" or type(lead.email) ~= "string" then
    return reply(400, { error = "want ?campaign=<id> and a JSON body with an email" })
  end
  if lead.name == cjson.null then lead.name = nil end  -- a form's empty name
  if lead.name ~= nil and type(lead.name) ~= "string" then
    return reply(400, { error = "name, when given, must be a string" })
  end
  local ok, c = pcall(cs.campaign, cs, id)   -- a bad id raises: no I/O
  if not ok then return reply(400, { error = "campaign must be a UUID" }) end

  local added, err = c:add_lead { email = lead.email, first_name = lead.name }
  if not added then
    ngx.log(ngx.ERR, "coldsend: ", tostring(err))       -- never contains the key
    local status = (err.code == "not_found" and 404)
      or ((err.code == "invalid" or err.code == "unprocessable") and 422) or 502
    return reply(status, { error = err.code, message = err.message })
  end
  return reply(200, { campaign = id, lead = added.lead_id, email = added.email })
end

return M
