--- coldsend.sandbox.api: the ColdSend public API of the sandbox, written
-- against the API reference (shared/spec/coldsend-api.md) as the server
-- would implement it: its path prefix, the route table (method, path,
-- handler, scope, body kind) and the matching of a request to a route. The
-- handlers are in coldsend.sandbox.campaigns, leads, uploads, inboxes and
-- analytics; they take (srv, req, params) and return status, body table
-- [, extra headers].
local campaigns = require "coldsend.sandbox.campaigns"
local leads = require "coldsend.sandbox.leads"
local uploads = require "coldsend.sandbox.uploads"
local inboxes = require "coldsend.sandbox.inboxes"
local analytics = require "coldsend.sandbox.analytics"

local M = {}

--- The path prefix of the API endpoints.
M.BASE = "/api/public/v1"

--- The path relative to the API base, or nil when outside it.
function M.api_path(path)
  if path:sub(1, #M.BASE + 1) == M.BASE .. "/" then return path:sub(#M.BASE + 1) end
end

-- The field bounds, for the contract spec that probes them against the client's.
M.SCHEMA = require("coldsend.sandbox.campaign_schema").SCHEMA

-- {method, path with {params}, handler, scope, body = "json"|"multipart"|nil}
M.ROUTES = {
  { "POST", "/campaigns", campaigns.create_campaign, "campaigns:create", body = "json" },
  { "GET", "/campaigns", campaigns.list_campaigns, "campaigns:read" },
  { "GET", "/campaigns/{campaign_id}", campaigns.get_campaign, "campaigns:read" },
  { "PUT", "/campaigns/{campaign_id}", campaigns.update_campaign, "campaigns:update", body = "json" },
  { "DELETE", "/campaigns/{campaign_id}", campaigns.delete_campaign, "campaigns:delete" },
  { "POST", "/campaigns/{campaign_id}/pause", campaigns.pause_campaign, "campaigns:pause" },
  { "POST", "/campaigns/{campaign_id}/resume", campaigns.resume_campaign, "campaigns:activate" },
  { "POST", "/campaigns/{campaign_id}/leads", uploads.upload_leads, "leads:create", body = "multipart" },
  { "GET", "/campaigns/{campaign_id}/leads", leads.list_leads, "leads:read" },
  { "POST", "/campaigns/{campaign_id}/leads/manual", leads.add_manual_lead, "leads:create", body = "json" },
  { "GET", "/campaigns/{campaign_id}/leads/upload/{job_id}", uploads.upload_progress, "leads:read" },
  { "GET", "/campaigns/{campaign_id}/leads/{lead_id}", leads.get_lead, "leads:read" },
  { "PUT", "/campaigns/{campaign_id}/leads/{lead_id}", leads.update_lead, "leads:create", body = "json" },
  { "DELETE", "/campaigns/{campaign_id}/leads/{lead_id}", leads.delete_lead, "leads:delete" },
  { "POST", "/sender-accounts/smtp", inboxes.create_smtp, "sender_accounts:create", body = "json" },
  { "GET", "/sender-accounts", inboxes.list_inboxes, "sender_accounts:read" },
  { "GET", "/sender-accounts/{inbox_id}", inboxes.get_inbox, "sender_accounts:read" },
  { "DELETE", "/sender-accounts/{inbox_id}", inboxes.delete_inbox, "sender_accounts:delete" },
  { "GET", "/analytics/campaigns", analytics.analytics_campaigns, "campaigns:read" },
  { "GET", "/analytics/campaigns/timeline", analytics.analytics_timeline, "campaigns:read" },
}

local function split(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  return segs
end

for _, r in ipairs(M.ROUTES) do
  r.method, r.path, r.handler, r.scope = r[1], r[2], r[3], r[4]
  r.segs = split(r.path)
  r.literals = 0
  for _, s in ipairs(r.segs) do if not s:match("^{") then r.literals = r.literals + 1 end end
end
-- literal segments win over parameters (".../leads/manual" before ".../leads/{lead_id}")
table.sort(M.ROUTES, function(a, b)
  if #a.segs ~= #b.segs then return #a.segs < #b.segs end
  return a.literals > b.literals
end)

--- Finds the route of (method, path): route, params; or nil, allowed
-- methods (405) or nil (404).
function M.match(method, path)
  local segs = split(path)
  if path:sub(-1) == "/" and #path > 1 then return nil end
  local allowed
  for _, r in ipairs(M.ROUTES) do
    if #r.segs == #segs then
      local params, ok = {}, true
      for i, s in ipairs(r.segs) do
        local pname = s:match("^{(.+)}$")
        if pname then params[pname] = segs[i]
        elseif s ~= segs[i] then ok = false break end
      end
      if ok then
        if r.method == method then return r, params end
        allowed = allowed or {}
        allowed[#allowed + 1] = r.method
      end
    end
  end
  return nil, allowed
end

return M
