--- spec/nginx/thread_stub.lua: stand-ins for coldsend.core.http_perform, run
-- by ngx.run_worker_thread in nginx's worker threads (no ngx API there).
local M = {}

-- Answers with what arrived, so the spec sees what crossed the thread.
function M.echo(req)
  local names = {}
  for k, v in pairs(req) do names[#names + 1] = k .. "=" .. type(v) end
  table.sort(names)
  return { status = 200, headers = { ["x-fields"] = table.concat(names, ",") },
           body = req.method .. " " .. req.url }
end

-- A transfer failure, as http_perform reports it.
function M.refused()
  return nil, "Couldn't connect to server", "network", { curl_code = 7, sent = false }
end

-- A blocking transfer: holds the thread, never the nginx worker.
function M.slow(req)
  local ok, socket = pcall(require, "socket")
  local s = tonumber(req.timeout) or 1
  if ok then socket.sleep(s) else os.execute("sleep " .. s) end
  return { status = 200, headers = {}, body = "slept " .. s }
end

function M.raise()
  error("stub misuse")
end

return M
