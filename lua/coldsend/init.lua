--- coldsend: the ColdSend campaign API client.
-- The C core (coldsend.core) validates and builds requests and parses
-- responses; this facade owns what needs a transport: the request loop
-- (rate limiting, retries, deadlines, hooks) and the campaign methods that
-- talk to the server. It is Lua so that transports may yield (OpenResty).
-- @module coldsend
local core = require "coldsend.core"
local options = require "coldsend.options"
local client = require "coldsend.client"
local loop = require "coldsend.request_loop"

local M = { _VERSION = core._VERSION }

--- The public API's base URL, used when neither base_url nor COLDSEND_BASE_URL is set.
M.DEFAULT_BASE_URL = "https://api.coldsend.pro/api/public/v1"

--- The longest single wait (seconds) a call sleeps through, for the rate
-- limit or a server's stated wait, unless the max_wait option says other.
M.DEFAULT_MAX_WAIT = 60

--- Makes a client. See the README for the options.
M.client = client.new

--- True when v is an error object returned by a call.
M.is_error = core.is_error

--- The API's path prefix; a base_url must end with it.
M.API_PATH = loop.API_PATH
--- The URL `make sandbox` (and `coldsend-sandbox --port 8089`) serves.
M.SANDBOX_URL = loop.SANDBOX_URL

--- Adds to err.message (and err.hint) the likely cause of a failure whose
-- message alone does not say it; returns err.
-- @param err an error object
-- @string url the URL of the request
M._hint = loop.hint
M._raise = options.raise

--- REPL help: coldsend.help() lists what there is; coldsend.help("name")
-- prints a field's rule and default, or a function's description.
function M.help(topic)
  return require("coldsend.help").help(topic)
end

--- JSON null, to clear a key in update_lead's custom_fields.
M.null = require("cjson").null

--- Checks the setup and says what to do: see coldsend.doctor.
function M.doctor(opts) return require("coldsend.doctor").doctor(opts) end

-- the methods: campaign handles (installed into the C type) and the rest
require "coldsend.campaign_methods"
require "coldsend.resources"

return M
