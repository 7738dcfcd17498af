--- spec/helpers/cli.lua: running `coldsend` in specs.
--
--   local clih = require "spec.helpers.cli"
--   clih.run(env, "plan x.lua", more_env)  --> exit code, stdout, stderr (bin/coldsend as a child)
--   clih.fake_io(env, answer, tty)         --> io_ for cli.main, stdout buffer, stderr buffer
--   clih.inbox(cs, email)                  --> a new CUSTOM_SMTP inbox (the server's body)
local sandbox = require "spec.helpers.sandbox"
local util = require "spec.helpers.util"

local M = {}

local LUA = os.getenv("COLDSEND_TEST_LUA") or "lua5.4"

--- Runs bin/coldsend with the variables of env and more_env (tables),
-- stdin from /dev/null; returns exit code, stdout, stderr.
function M.run(env, args, more_env)
  local vars = {}
  for _, t in ipairs { env or {}, more_env or {} } do
    for k, v in pairs(t) do vars[#vars + 1] = k .. "=" .. util.q(v) end
  end
  return util.run(string.format("cd %s && env %s %s bin/coldsend %s </dev/null",
    util.q(sandbox.root), table.concat(vars, " "), LUA, args))
end

local function sink(buf)
  return {
    write = function(self, ...)
      for _, s in ipairs { ... } do buf[#buf + 1] = s end
      return self
    end,
    flush = function() end,
  }
end

--- The world of cli.main(argv, io_) in-process: env's variables, stdin
-- answering `answer` (nil: end of input) and a terminal on stdin;
-- `stderr_tty` says whether stderr is one. Returns io_ and the two
-- buffers (tables of strings) stdout and stderr fill.
function M.fake_io(env, answer, stderr_tty)
  local out, err = {}, {}
  return {
    stdout = sink(out), stderr = sink(err),
    stdin = { read = function() return answer end },
    isatty = function() return true end,
    stderr_tty = function() return stderr_tty and true or false end,
    getenv = function(k) return env[k] end,
  }, out, err
end

--- Adds a CUSTOM_SMTP inbox of this address; returns the server's body.
function M.inbox(cs, email)
  return assert(cs:add_smtp_inbox {
    email_address = email, display_name = "Sender", inbox_type = "CUSTOM_SMTP",
    smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = "u",
    smtp_password = "secret-pass", imap_host = "imap.example.com", imap_port = 993,
    imap_username = "u", imap_password = "secret-pass",
  })
end

return M
