-- write_once_spec: the retry outcome table. Every write the client makes,
-- times every fault a network or a server can throw at it, against the
-- sandbox with the real libcurl transport: how many times the server acted
-- (the sandbox log's `processed`, which a fault after processing hides from
-- the client) and what the caller got. A write happens once, or not at all
-- with an error; never twice, never reported failed when it happened.
local sandbox = require "spec.helpers.sandbox"
local cases = require "spec.helpers.fault_cases"
local util = require "spec.helpers.util"
local socket = require "socket"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- The faults, each armed once on the write's own request. `acted`: how
-- many times the server acts (nil: the default for the write, 1).
local FAULTS = {
  { "refused", refused = true, acted = 0 },
  { "reset before the request is read", { kind = "close_before", reset = true } },
  { "reset after the server acted", { kind = "close_before", reset = true, after = true } },
  { "429", { kind = "status", status = 429, retry_after = 0 } },
  { "500 before acting", { kind = "status", status = 500 } },
  { "502 before acting", { kind = "status", status = 502 } },
  { "503 before acting", { kind = "status", status = 503 } },
  { "504 before acting", { kind = "status", status = 504 } },
  { "503 after acting", { kind = "status", status = 503, after = true } },
  { "timeout after acting", { kind = "delay", delay_ms = 1200, after = true } },
  { "truncated 2xx", { kind = "truncated", after = true } },
}

-- A closed loopback port: a client pointed there is refused at connect.
local function closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- an id as a Lua pattern (its dashes are magic)
local function esc(id) return (id:gsub("%-", "%%-")) end

local n = 0
local function unique(prefix)
  n = n + 1
  return ("%s %d %d"):format(prefix, n, math.random(1e6))
end

local function inbox_fields(email)
  return { email_address = email, display_name = "Sender", inbox_type = "CUSTOM_SMTP",
    smtp_host = "smtp.example.com", smtp_port = 587, smtp_username = "u", smtp_password = "p",
    imap_host = "imap.example.com", imap_port = 993, imap_username = "u", imap_password = "p" }
end

-- The writes: `prepare(cs)` makes what the write needs (without faults) and
-- returns a context; `path` the pattern of the write's request; `run(cs,
-- ctx)` does it; `done(cs, ctx, res)` checks the server holds its result.
local WRITES = {
  {
    name = "create campaign", method = "POST", path = function() return "^/campaigns$" end,
    prepare = function() return { name = unique("Write Once Campaign") } end,
    run = function(cs, ctx)
      return cs:create_campaign { name = ctx.name, daily_limit_per_inbox = 33,
        variants = { { subject_template = "Hi", email_content = "Hello there" } } }
    end,
    done = function(cs, ctx, c)
      assert.matches(UUID, c.id)
      local got = assert(cs:get_campaign(c.id))
      assert.equal(ctx.name, got.name)
      assert.equal(33, got.daily_limit_per_inbox)
      assert.equal(1, #got.variants) -- the PUT after the create went through too
    end,
  },
  {
    name = "update", method = "PUT", acted = "1 or 2",
    path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "$" end,
    prepare = function(cs)
      local c = assert(cs:create_campaign { name = unique("Write Once Update") })
      return { id = c.id }
    end,
    run = function(cs, ctx)
      local c = cs:campaign(ctx.id)
      c.daily_limit_per_inbox = 44
      return c:save()
    end,
    done = function(cs, ctx)
      assert.equal(44, assert(cs:get_campaign(ctx.id)).daily_limit_per_inbox)
    end,
  },
  {
    name = "launch", method = "PUT", acted = "1 or 2",
    path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "$" end,
    prepare = function(cs)
      local ib = assert(cs:add_smtp_inbox(inbox_fields(unique("s"):gsub(" ", "") .. "@example.com")))
      local c = assert(cs:create_campaign { name = unique("Write Once Launch"),
        inbox_ids = { ib.inbox_id },
        variants = { { subject_template = "Hi", email_content = "Hello there" } } })
      assert(c:add_lead { email = "lead@example.com" })
      return { id = c.id }
    end,
    run = function(cs, ctx) return cs:campaign(ctx.id):launch() end,
    done = function(cs, ctx) assert.equal("ACTIVE", assert(cs:get_campaign(ctx.id)).status) end,
  },
  {
    name = "pause", method = "POST", path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "/pause$" end,
    prepare = function(cs, launch_ready)
      local ctx = launch_ready(cs)
      assert(cs:campaign(ctx.id):launch())
      return ctx
    end,
    run = function(cs, ctx) return cs:campaign(ctx.id):pause() end,
    done = function(cs, ctx) assert.equal("PAUSED", assert(cs:get_campaign(ctx.id)).status) end,
  },
  {
    name = "resume", method = "POST", path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "/resume$" end,
    prepare = function(cs, launch_ready)
      local ctx = launch_ready(cs)
      assert(cs:campaign(ctx.id):launch())
      assert(cs:campaign(ctx.id):pause())
      return ctx
    end,
    run = function(cs, ctx) return cs:campaign(ctx.id):resume() end,
    done = function(cs, ctx) assert.equal("ACTIVE", assert(cs:get_campaign(ctx.id)).status) end,
  },
  {
    name = "delete", method = "DELETE", path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "$" end,
    prepare = function(cs)
      return { id = assert(cs:create_campaign { name = unique("Write Once Delete") }).id }
    end,
    run = function(cs, ctx) return cs:campaign(ctx.id):delete() end,
    done = function(cs, ctx)
      local got, err = cs:get_campaign(ctx.id)
      assert.is_nil(got)
      assert.equal("not_found", err.code)
    end,
  },
  {
    name = "add lead", method = "POST",
    path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "/leads/manual$" end,
    prepare = function(cs)
      return { id = assert(cs:create_campaign { name = unique("Write Once Lead") }).id }
    end,
    run = function(cs, ctx)
      return cs:campaign(ctx.id):add_lead { email = "jane@example.com", first_name = "Jane" }
    end,
    done = function(cs, ctx, lead)
      assert.equal("jane@example.com", lead.email)
      assert.equal("Jane", lead.first_name)
      assert.equal(1, assert(cs:get_campaign(ctx.id)).total_leads)
    end,
  },
  {
    name = "add inbox", method = "POST", path = function() return "^/sender%-accounts/smtp$" end,
    prepare = function() return { email = unique("w"):gsub(" ", "") .. "@example.com" } end,
    run = function(cs, ctx) return cs:add_smtp_inbox(inbox_fields(ctx.email)) end,
    done = function(cs, ctx, ib)
      assert.matches(UUID, ib.inbox_id)
      local found = 0
      for _, x in ipairs(assert(cs:list_inboxes { limit = 100 }).sender_accounts) do
        if x.email_address == ctx.email then found = found + 1 end
      end
      assert.equal(1, found)
    end,
  },
  {
    name = "upload chunk", method = "POST", path = function(ctx) return "^/campaigns/" .. esc(ctx.id) .. "/leads$" end,
    prepare = function(cs)
      local id = assert(cs:create_campaign { name = unique("Write Once Upload") }).id
      local path = util.tmp_path() .. ".csv"
      util.write(path, "email,first_name\na@example.com,A\nb@example.com,B\nc@example.com,C\n")
      return { id = id, file = path }
    end,
    run = function(cs, ctx)
      return cs:campaign(ctx.id):upload_leads { file = ctx.file, poll_interval = 0.01, state_file = false }
    end,
    done = function(cs, ctx, job)
      assert.equal("COMPLETED", job.status)
      assert.equal(3, job.success_count)
      assert.equal(3, assert(cs:get_campaign(ctx.id)).total_leads)
    end,
  },
}

describe("a write happens once, whatever fails", function()
  local sb, env

  local hooks = sandbox.hooks({ rate_limit = false }, function(s)
    sb = s
    env = cases.env(sb)
  end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  local function client(o)
    return env.client(o)
  end

  local function launch_ready(cs)
    return WRITES[3].prepare(cs)
  end

  -- how many requests of the write the server acted on since seq
  local function acted(method, pattern, since)
    local count = 0
    for _, e in ipairs(sb:log(since)) do
      if e.method == method and e.path:match(pattern) and e.processed then count = count + 1 end
    end
    return count
  end

  for _, w in ipairs(WRITES) do
    for _, f in ipairs(FAULTS) do
      local expect = f.acted or 1
      it(("%s, %s: the server acts %s"):format(w.name, f[1],
        expect == 1 and w.acted or tostring(expect)), function()
        local cs = client()
        local ctx = w.prepare(cs, launch_ready)
        local pattern = w.path(ctx)
        local log = sb:log()
        local since = #log > 0 and log[#log].seq or 0
        local target = cs
        if f.refused then
          target = client { base_url = ("http://127.0.0.1:%d/api/public/v1"):format(closed_port()) }
        else
          local fault = { method = w.method, path = pattern, times = 1 }
          for k, v in pairs(f[2]) do fault[k] = v end
          sb:fault(fault)
        end
        if f[2] and f[2].kind == "delay" then
          target = client { timeout = 0.5 }
        end
        local res, err = w.run(target, ctx)
        sb:control("DELETE", "/faults")
        local count = acted(w.method, pattern, since)
        if f.refused then
          assert.is_nil(res)
          assert.equal("network", err.code)
          assert.equal(0, count)
          return
        end
        assert.is_nil(err, err and tostring(err))
        assert.truthy(res)
        if w.acted == "1 or 2" then
          -- a PUT is re-sent after a failure that may follow its work: the
          -- server may apply the same body again, never anything else
          assert.is_true(count == 1 or count == 2, "acted " .. count)
        else
          assert.equal(expect, count)
        end
        w.done(cs, ctx, res)
      end)
    end
  end
end)
