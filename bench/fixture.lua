--- fixture.lua: the campaign every Lua benchmark uses: the fields a script
-- sets, 2 variants at 50/50 and 3 follow-ups, once as a campaign object and
-- once as the equivalent plain Lua table (the JSON the module would send).
-- bench/run.lua checks that both encode to the same JSON.
local F = {}

F.ID = "550e8400-e29b-41d4-a716-446655440000"
F.INBOX = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
F.KEY = "cs_test_0123456789abcdef0123456789abcdef"
-- the two names the save loop alternates (neither is the server's answer,
-- so every save has a change to send)
F.NAMES = { "Q1 Product Launch Outreach (A)", "Q1 Product Launch Outreach (B)" }

local SUBJECT_A = "Quick question, {{first_name}}"
local SUBJECT_B = "{{company}} and outbound"
local BODY_A = "Hi {{first_name}},\n\nI noticed {{company}} is growing its sales team. "
  .. "We help teams like yours book more meetings without more headcount.\n\n"
  .. "Worth a quick chat next week?\n\nBest,\nSam"
local BODY_B = "Hi {{first_name}},\n\nMost sales leaders I talk to at companies like "
  .. "{{company}} spend hours on prospecting. We cut that in half.\n\n"
  .. "Open to a 15-minute call?\n\nSam"
local TRIGGERS = { "NOT_OPENED", "NOT_REPLIED", "OPENED_BUT_NOT_REPLIED" }
local FOLLOWUP = "Hi {{first_name}},\n\nJust bumping this up in case it got buried.\n\nSam"

local function name(i) return "Q1 Product Launch Outreach " .. i end

--- Sets the fixture's data on a campaign object (core.campaign or cs:campaign).
function F.fill(c, i)
  c.name = name(i)
  c.daily_limit_per_inbox = 30
  c.timezone = "Europe/Berlin"
  c.sending_days = { 1, 2, 3, 4, 5 }
  c.sending_window_start = 9
  c.sending_window_end = 17
  c.inbox_ids = { F.INBOX }
  c:add_variant{ variant_name = "A", subject_template = SUBJECT_A,
                 email_content = BODY_A, distribution_percent = 50 }
  c:add_variant{ variant_name = "B", subject_template = SUBJECT_B,
                 email_content = BODY_B, distribution_percent = 50 }
  for step = 2, 4 do
    c:add_sequence{ trigger_type = TRIGGERS[step - 1], wait_days = 3,
                    variants = { { variant_name = "A", subject_template = "Re: " .. SUBJECT_A,
                                   email_content = FOLLOWUP, distribution_percent = 100 } } }
  end
  return c
end

--- The same data as a plain Lua table, shaped like the JSON body.
function F.plain(i)
  local sequences = {}
  for step = 2, 4 do
    sequences[step - 1] = {
      step_number = step, trigger_type = TRIGGERS[step - 1], wait_days = 3,
      variants = { { variant_name = "A", subject_template = "Re: " .. SUBJECT_A,
                     email_content = FOLLOWUP, distribution_percent = 100 } },
    }
  end
  return {
    name = name(i),
    daily_limit_per_inbox = 30,
    timezone = "Europe/Berlin",
    sending_days = { 1, 2, 3, 4, 5 },
    sending_window_start = 9,
    sending_window_end = 17,
    inbox_ids = { F.INBOX },
    variants = {
      { variant_name = "A", subject_template = SUBJECT_A, email_content = BODY_A,
        distribution_percent = 50 },
      { variant_name = "B", subject_template = SUBJECT_B, email_content = BODY_B,
        distribution_percent = 50 },
    },
    sequences = sequences,
  }
end

--- Wall clock in seconds with sub-microsecond resolution.
function F.clock()
  local ok, core = pcall(require, "coldsend.core")
  if ok and core.now then return core.now end
  return require("socket").gettime
end

--- The contents of a file.
function F.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- Resident set size of this process in KiB (Linux).
function F.rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

--- A shell word for s.
function F.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs a shell command: its output, or nil and the output when it fails.
function F.run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then return nil, out end
  return out
end

--- How the tables name an interpreter command.
function F.lua_name(lua)
  return ({ ["lua5.4"] = "Lua 5.4", luajit = "LuaJIT" })[lua] or lua
end

--- Writes text as the section `section` of the results file at path (between
-- two marker comments), keeping the file's other sections.
function F.write_section(path, section, text)
  local f = io.open(path, "rb")
  local old = f and f:read("a") or ""
  if f then f:close() end
  local open, close = "<!-- begin " .. section .. " -->\n", "<!-- end " .. section .. " -->\n"
  local body = open .. text .. close
  local a = old:find(open, 1, true)
  local _, b = old:find(close, 1, true)
  local new
  if a and b then
    new = old:sub(1, a - 1) .. body .. old:sub(b + 1)
  elseif old:match("^# ") then
    new = old:gsub("\n+$", "") .. "\n\n" .. body
  else
    new = "# lua-coldsend benchmark results\n\n" .. body
  end
  f = assert(io.open(path, "wb"))
  f:write(new)
  f:close()
end

return F
