-- options_spec.lua: one checker (coldsend.options) for every table of
-- options the library takes: the client's, a call's, upload_leads',
-- job:wait's and the retry policy's. Each misuse names the option, the
-- rule and the value, suggests the name meant, and points at the caller's
-- line, however deep in the library (now split over several files) the
-- check sits.
local coldsend = require "coldsend"
local options = require "coldsend.options"
local retry = require "coldsend.retry"

local ID = "550e8400-e29b-41d4-a716-446655440000"
local KEY = "cs_live_0pt10nsK3y0pt10nsK3y"
local DEAD = "http://127.0.0.1:1/api/public/v1"
local THIS = "^[^\n]*options_spec%.lua:%d+: "

local function raised(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return tostring(err)
end

-- every spelling mistake of each caller: a misspelt name gets its match
local function misspelt(name)
  return name:sub(1, -3) .. name:sub(-1) .. name:sub(-2, -2)
end

describe("coldsend.options", function()
  local cs = coldsend.client { api_key = KEY, base_url = DEAD, max_retries = 0 }
  local c = cs:campaign(ID)

  -- each caller, called from this file, with an options table
  local callers = {
    { "coldsend.client", options = { "timeout", "max_retries", "on_request", "max_body" },
      call = function(o)
        o.api_key, o.base_url = KEY, DEAD
        return coldsend.client(o)
      end },
    { "call", options = { "timeout", "deadline", "max_wait", "max_retries" },
      call = function(o) return cs:get_campaign(ID, o) end },
    { "call", via = "c:save", options = { "timeout", "backoff_cap" },
      call = function(o) return c:save(o) end },
    { "call", via = "c:add_lead", options = { "timeout", "max_retries" },
      call = function(o) return c:add_lead({ email = "a@example.com" }, o) end },
    { "upload_leads", options = { "chunk_rows", "poll_interval", "state_file", "wait", "timeout" },
      call = function(o)
        o.file = o.file or "/nonexistent.csv"
        return c:upload_leads(o)
      end },
  }

  for _, caller in ipairs(callers) do
    local what = caller[1]
    local via = caller.via or what
    it(via .. ": an unknown name suggests the one meant, at the caller's line", function()
      for _, name in ipairs(caller.options) do
        local wrong = misspelt(name)
        local msg = raised(function() caller.call { [wrong] = 1 } end)
        assert.matches(THIS .. ("unknown option '%s' for %s; did you mean '%s'%%?"):format(
          wrong:gsub("%p", "%%%0"), what:gsub("%p", "%%%0"), name:gsub("%p", "%%%0")), msg)
      end
    end)

    it(via .. ": a bad value names the option, the rule and the value, at the caller's line", function()
      for _, name in ipairs(caller.options) do
        for _, bad in ipairs { -1, "x", 0 / 0, {} } do
          local ok, msg = pcall(caller.call, { [name] = bad })
          -- a value of the right kind may be allowed (max_retries = 0 is)
          if not ok then
            msg = tostring(msg)
            assert.matches(THIS .. ("bad option '%s' for %s %%(.- expected, got "):format(
              name:gsub("%p", "%%%0"), what:gsub("%p", "%%%0")), msg)
            assert.matches("got " .. options.shown(bad):gsub("%p", "%%%0") .. "%)$", msg)
          end
        end
      end
    end)
  end

  -- the key pasted into a bad base URL was repeated in the error
  it("a bad base URL's error does not repeat the key (nor a secret query field) pasted into it", function()
    for _, url in ipairs { "https://api.example.com/?key=" .. KEY, "https://api.example.com/" .. KEY .. "#x",
      "ftp://" .. KEY .. ".example.com", "http://x.example/" .. KEY, "https://x.example/?api_key=s3cr3t-v4lue" } do
      local ok, msg = pcall(coldsend.client, { api_key = KEY, base_url = url })
      assert.is_false(ok)
      msg = tostring(msg)
      assert.matches("bad option 'base_url' for coldsend%.client %(.-, got \".*%[redacted%].*\"%)$", msg)
      assert.is_nil(msg:find(KEY, 1, true), msg)
      assert.is_nil(msg:find("s3cr3t", 1, true), msg)
    end
  end)

  -- the key given as another option's value was repeated in the error
  it("an option given the key as its value does not repeat it", function()
    for _, name in ipairs { "timeout", "transport", "rate_limit", "ca_file" } do
      local msg = raised(function()
        local cl = coldsend.client { api_key = KEY, base_url = DEAD, [name] = KEY }
        return cl
      end)
      assert.matches(THIS .. "bad option '" .. name:gsub("%p", "%%%0") .. "'.*%[redacted%]", msg)
      assert.is_nil(msg:find(KEY, 1, true), msg)
    end
  end)

  -- a clock that is no clock failed at the first request, in the limiter
  -- ("bad argument #1 to 'acquire'"), naming neither the option nor the line
  it("a clock that gives no number of seconds is refused at the caller's line", function()
    for _, name in ipairs { "clock", "wall_clock" } do
      for _, got in ipairs { "x", 0 / 0, false } do
        local msg = raised(function()
          local cl = coldsend.client { api_key = KEY, base_url = DEAD, [name] = function() return got end }
          return cl
        end)
        assert.matches(THIS .. ("bad option '%s' for coldsend%%.client %%(function returning seconds %%(a number%%)"
          .. " expected, got %s%%)$"):format(name, options.shown(got):gsub("%p", "%%%0")), msg)
      end
      assert.truthy(coldsend.client { api_key = KEY, base_url = DEAD, [name] = function() return 5 end })
    end
  end)

  it("the rate limit's own options are refused at the caller's line too", function()
    local function client(rl)
      local cl = coldsend.client { api_key = KEY, base_url = DEAD, rate_limit = rl }
      return cl
    end
    assert.matches(THIS .. "bad value for 'rate_limit%.per_minute' %(integer 1 %.%. 2%^53 %- 1 or false"
      .. " expected, got 0%)",
      raised(function() client { per_minute = 0 } end))
    assert.matches(THIS .. "unknown option 'per_minut' for rate_limit; did you mean 'per_minute'%?",
      raised(function() client { per_minut = 5 } end))
    assert.matches(THIS .. "bad value for 'rate_limit%.minute_seconds' %(number of seconds > 0 expected",
      raised(function() client { minute_seconds = -1 } end))
  end)

  it("a CA file that cannot be read is refused at the caller's line", function()
    local msg = raised(function()
      coldsend.client { api_key = KEY, base_url = DEAD, ca_file = "/nonexistent/ca.pem" }
    end)
    assert.matches(THIS .. "bad option 'ca_file' %(cannot read '/nonexistent/ca%.pem'", msg)
    msg = raised(function() coldsend.client { api_key = KEY, base_url = DEAD, ca_file = 1 } end)
    assert.matches(THIS .. "bad option 'ca_file' for coldsend%.client %(path string expected, got 1%)", msg)
  end)

  it("job:wait's options go through the same checker", function()
    local leads = require "coldsend.leads"
    local job = setmetatable({ chunks = {} }, leads.Job)
    local msg = raised(function() job:wait { intervl = 1 } end)
    assert.matches(THIS .. "unknown option 'intervl' for job:wait; did you mean 'interval'%?", msg)
    msg = raised(function() job:wait { timeout = -5 } end)
    assert.matches(THIS .. "bad option 'timeout' for job:wait %(positive number of seconds expected, got %-5%)", msg)
  end)

  it("the retry policy's merged values, at the caller's line", function()
    local msg = raised(function() retry.policy { base = 0 } end)
    assert.matches(THIS .. "bad value for 'base' %(number > 0 expected, got 0%)", msg)
  end)

  it("shows a value without leaking a table's address or a long string", function()
    assert.equal("nan", options.shown(0 / 0))
    assert.equal("table", options.shown({}))
    assert.equal("boolean", options.shown(true))
    assert.equal('"abc"', options.shown("abc"))
    local long = options.shown(("x"):rep(100))
    assert.equal(62, #long)
    assert.matches('%.%.%."$', long)
  end)

  it("options.check: unknown names before values, and a rule made on the spot", function()
    local spec = { size = options.between(1, 9), name = "path" }
    assert.matches("unknown option 'sise' for thing; did you mean 'size'%?",
      raised(function() options.check("thing", { sise = 1, size = 99 }, spec) end))
    assert.matches(THIS .. "bad option 'size' for thing %(integer 1%.%.9 expected, got 10%)",
      raised(function() options.check("thing", { size = 10 }, spec) end))
    local o = { size = 3, name = "a" }
    assert.equal(o, options.check("thing", o, spec))
  end)
end)
