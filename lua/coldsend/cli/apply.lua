--- coldsend.cli.apply: `coldsend plan` and `coldsend apply`, for one
-- campaign file or a folder of them. Loads and checks every file before
-- the first request, shows the plan, asks, writes, and keeps a created
-- campaign's id (in the file with --write-id, else in the folder's
-- .coldsend-ids.json) so that the next plan is an update.
-- @module coldsend.cli.apply
local output = require "coldsend.cli.output"
local inputs = require "coldsend.cli.inputs"

local M = {}

local format, concat = string.format, table.concat
local out, err_line, report, print_json = output.out, output.err_line, output.report, output.print_json
local usage_error, clean, json = output.usage_error, output.clean, output.json
local EXIT_OK, EXIT_API = output.EXIT_OK, output.EXIT_API

local function plan_json(p)
  local changes = {}
  for i, ch in ipairs(p.changes) do
    changes[i] = { op = ch.op, path = ch.path, from = ch.from, to = ch.to }
  end
  return {
    action = p.action,
    id = p.campaign and p.campaign.id or p.definition.id,
    name = p.definition.name or (p.campaign and p.campaign.name),
    changes = changes,
  }
end

local function files()
  return require "coldsend.campaign_files"
end

-- The id record of a folder (raises a usage error for a bad one).
local function read_ids(dir)
  local ok, state = pcall(files().read_ids, dir)
  if not ok then usage_error("%s", tostring(state)) end
  return state
end

-- One campaign file: {file=, name=, def=, recorded=} where recorded says
-- the id came from the folder's record, not from the file.
local function load_entry(path, state)
  local def, lerr = inputs.load_file(path)
  if not def then usage_error("%s", lerr) end
  -- every value checked now, before any request (diff reads the
  -- definition through the setters; a bad value raises naming the field)
  local ok, why = pcall(require("coldsend.plan").diff, require("coldsend.core").campaign(), def)
  if not ok then usage_error("%s: %s", path, clean(why)) end
  local _, name = files().split(path)
  local e = { file = path, name = name, def = def }
  if def.id == nil and state and state.ids[name] then
    def.id, e.recorded = state.ids[name], true
  end
  return e
end

-- Plans one entry: the plan, or nil and the error object. A bad value
-- raises (a usage error naming the file).
local function plan_entry(cs, e)
  local ok, p, perr = pcall(require("coldsend.plan").plan, cs, e.def)
  if not ok then usage_error("%s: %s", e.file, clean(p)) end
  e.plan = p
  return p, perr
end

-- The hint after an error for an id that came from the record.
local function recorded_hint(w, e, state, err)
  if e.recorded and type(err) == "table" and err.code == "not_found" then
    output.write_text(w.stderr, format("  the id of %s comes from %s; remove its entry to create the campaign again\n",
      e.name, state.path))
  end
end

local function single_plan(w, o)
  local dir = files().split(o.args[1])
  local state = read_ids(dir)
  local e = load_entry(o.args[1], state.exists and state or nil)
  -- a create plan needs no server: allow it without a key
  local cs = (e.def.id ~= nil or o.command == "apply") and inputs.client(w, o) or nil
  local p, perr = plan_entry(cs, e)
  if not p then
    local code = report(w, perr)
    recorded_hint(w, e, state, perr)
    return nil, code
  end
  return p, e, state
end

-- ----------------------------------------------------------------------
-- a folder of campaign files

local function folder_of(path)
  local dir = path:gsub("/+$", "")
  return dir == "" and "/" or dir
end

-- Loads and plans every campaign file of a folder. Every file is loaded
-- and checked before the first request; problems of any file exit 2.
-- Returns the entries, the id record and the client.
local function folder_plans(w, o)
  local dir = folder_of(o.args[1])
  local paths = files().list(dir)
  if #paths == 0 then usage_error("%s holds no campaign files (*.lua)", dir) end
  local state = read_ids(dir)
  local entries, problems = {}, {}
  for _, path in ipairs(paths) do
    local ok, e = pcall(load_entry, path, state)
    if ok then
      entries[#entries + 1] = e
    elseif output.is_usage(e) then
      problems[#problems + 1] = e.message
    else
      error(e, 0)
    end
  end
  local function stop_on_problems()
    if #problems == 0 then return end
    for _, msg in ipairs(problems) do err_line(w, msg) end
    usage_error("%d of %d campaign files have problems; nothing was sent", #problems, #paths)
  end
  -- two files managing one campaign would overwrite each other's changes
  -- (a UUID in upper case names the same campaign)
  local owner = {}
  for _, e in ipairs(entries) do
    local id = type(e.def.id) == "string" and e.def.id:lower() or e.def.id
    if id ~= nil and owner[id] then
      problems[#problems + 1] = format("%s and %s both manage campaign %s%s", owner[id].file, e.file,
        tostring(id), (e.recorded or owner[id].recorded) and (" (see " .. state.path .. ")") or "")
    elseif id ~= nil then
      owner[id] = e
    end
  end
  stop_on_problems()
  -- a recorded name without its file: most likely a file renamed, whose
  -- campaign the plan would create a second time
  local present = {}
  for _, e in ipairs(entries) do present[e.name] = true end
  local stale = {}
  for name in pairs(state.ids) do
    if not present[name] then stale[#stale + 1] = name end
  end
  table.sort(stale)
  for _, name in ipairs(stale) do
    err_line(w, format("warning: %s records %s (campaign %s), which is not in the folder; if it was renamed, "
      .. "move its entry to the new name, else its campaign is created again", state.path, name,
      tostring(state.ids[name])))
  end
  local needs_key = o.command == "apply"
  for _, e in ipairs(entries) do needs_key = needs_key or e.def.id ~= nil end
  local cs = needs_key and inputs.client(w, o) or nil
  local count = output.counter(w, "planning", #entries)
  for i, e in ipairs(entries) do
    count:step(i, e.name)
    local ok, p, perr = pcall(plan_entry, cs, e)
    if not ok then
      if not output.is_usage(p) then count:done() error(p, 0) end
      problems[#problems + 1] = p.message
    elseif not p and type(perr) == "table" and perr.code == "invalid" then
      problems[#problems + 1] = e.file .. ": " .. tostring(perr):gsub("^coldsend: ", "")
    elseif not p then
      count:done()
      err_line(w, format("%s: the plan failed; nothing was sent", e.file))
      local code = report(w, perr)
      recorded_hint(w, e, state, perr)
      return nil, code
    end
  end
  count:done()
  stop_on_problems()
  return entries, state, cs
end

local function folder_counts(entries)
  local n = { create = 0, update = 0, none = 0 }
  for _, e in ipairs(entries) do n[e.plan.action] = n[e.plan.action] + 1 end
  return n
end

local function folder_summary(entries)
  local n = folder_counts(entries)
  return format("Folder: %d to create, %d to update, %d unchanged (%d campaign file%s).",
    n.create, n.update, n.none, #entries, #entries == 1 and "" or "s")
end

local function print_folder_plan(w, entries)
  for _, e in ipairs(entries) do
    out(w, e.file)
    out(w, tostring(e.plan))
    out(w, "")
  end
  out(w, folder_summary(entries))
end

local function entry_json(e)
  local t = plan_json(e.plan)
  t.file = e.file
  return t
end

-- coldsend plan FILE|DIR
function M.plan(w, o)
  if files().is_dir(o.args[1]) then
    local entries, code = folder_plans(w, o)
    if not entries then return code end
    if o.json then
      local list = {}
      for i, e in ipairs(entries) do list[i] = entry_json(e) end
      local n = folder_counts(entries)
      print_json(w, { folder = folder_of(o.args[1]), campaigns = json().array(list),
        create = n.create, update = n.update, unchanged = n.none })
    else
      print_folder_plan(w, entries)
    end
    return EXIT_OK
  end
  local p, e = single_plan(w, o)
  if not p then return e end
  if o.json then print_json(w, plan_json(p)) else out(w, tostring(p)) end
  return EXIT_OK
end

-- apply --launch refused as not ready: the campaign was created, or the
-- changes saved, all the same (the launch PUT carries them). Says what was
-- saved and what is missing; exit 1.
local function not_launched(w, o, p, e, note)
  local c = p.campaign or e.campaign
  local id = c and c.id or p.definition.id
  local missing = type(e.missing_requirements) == "table" and e.missing_requirements or {}
  local names = {}
  for i, ch in ipairs(p.changes or {}) do names[i] = ch.path or ch.field end
  if o.json then
    local result = plan_json(p)
    result.id, result.launched = id, false
    result.campaign = c and output.fields_of(c) or nil
    result.missing_requirements = json().array(missing)
    print_json(w, result)
  elseif p.action == "create" then
    out(w, format("created: %s", tostring(c)))
    if note then out(w, note) end
  elseif #names > 0 then
    out(w, format("saved: %d change%s to campaign %s (%s)", #names, #names == 1 and "" or "s",
      tostring(id), concat(names, ", ")))
  end
  err_line(w, format("not launched: campaign %s is missing %s; add %s, then: coldsend launch %s",
    tostring(id), #missing > 0 and concat(missing, ", ") or "launch requirements",
    #missing == 1 and "it" or "them", tostring(id)))
  return EXIT_API
end

-- After a create: the id goes into the file (--write-id) or the folder's
-- record, so that the next plan of the file is an update. Returns a line
-- saying where, or nil and a message.
local function keep_id(o, e, state, id)
  if o.write_id then
    local ok, err = files().write_id(e.file, id, inputs.load_file)
    if not ok then return nil, err end
    return format('wrote id = "%s" into %s', id, e.file)
  end
  if state and (state.exists or o.folder) then
    local ok, err = files().record(state, e.name, id)
    if not ok then return nil, err end
    return format("recorded the id of %s in %s", e.name, state.path)
  end
  return format('add  id = "%s"  to %s to manage this campaign from now on (or apply with --write-id)',
    id, e.file)
end

-- coldsend apply DIR: every file's plan, one confirmation, then the
-- writes in file order, stopping at the first failure.
local function apply_folder(w, o)
  if o.launch then usage_error("apply --launch takes one campaign file, not a folder") end
  o.folder = true
  local entries, state = folder_plans(w, o)
  if not entries then return state end -- the exit code
  if not o.json then print_folder_plan(w, entries) end
  local n = folder_counts(entries)
  local results = {}
  local function result_json(failed)
    local list = {}
    for i, e in ipairs(entries) do
      local t = entry_json(e)
      t.result = results[i] or (e.plan.action == "none" and "unchanged" or "not applied")
      if e.plan.campaign then t.id = e.plan.campaign.id end
      list[i] = t
    end
    print_json(w, { folder = folder_of(o.args[1]), campaigns = json().array(list),
      failed = failed or json().null })
  end
  if n.create + n.update == 0 then
    if o.json then result_json() end
    return EXIT_OK
  end
  if not output.confirmed(w, o) then return EXIT_API end
  for i, e in ipairs(entries) do
    if e.plan.action ~= "none" then
      local c, err = e.plan:apply()
      local note, kerr
      if c and e.plan.action == "create" then note, kerr = keep_id(o, e, state, c.id) end
      if not c or kerr then
        -- a create whose id could not be kept was applied all the same
        results[i] = c and "created" or "failed"
        local applied, left = {}, {}
        for j, x in ipairs(entries) do
          if results[j] == "created" or results[j] == "updated" then applied[#applied + 1] = x.name
          elseif j > i and x.plan.action ~= "none" then left[#left + 1] = x.name end
        end
        if c then
          err_line(w, format("%s: created campaign %s but could not record its id: %s; add  id = \"%s\"  to the file",
            e.file, c.id, kerr, c.id))
        else
          err_line(w, format("%s: apply failed", e.file))
          report(w, err)
        end
        if o.json then result_json(e.file) else
          out(w, format("applied: %s", #applied > 0 and concat(applied, ", ") or "none"))
          out(w, format("not applied: %s", #left > 0 and concat(left, ", ") or "none"))
        end
        return EXIT_API
      end
      results[i] = e.plan.action == "create" and "created" or "updated"
      if not o.json then
        out(w, format("%s %s: campaign %s", results[i], e.name, c.id))
        if note then out(w, "  " .. note) end
      end
    end
  end
  if o.json then result_json() end
  return EXIT_OK
end

-- coldsend apply FILE|DIR [--launch] [--yes] [--write-id]
function M.apply(w, o)
  if files().is_dir(o.args[1]) then return apply_folder(w, o) end
  local p, e, state = single_plan(w, o)
  if not p then return e end
  if not o.json then out(w, tostring(p)) end
  if p.action == "none" and not o.launch then
    if o.json then print_json(w, { action = "none", id = p.campaign.id, changes = {} }) end
    return EXIT_OK
  end
  if not output.confirmed(w, o) then return EXIT_API end
  local c, aerr = p:apply { launch = o.launch }
  local created = p.action == "create" and (c or (type(aerr) == "table" and aerr.campaign))
  local note, kerr
  if created then note, kerr = keep_id(o, e, state, created.id) end
  if kerr then err_line(w, format('%s; add  id = "%s"  to %s', kerr, created.id, e.file)) end
  if not c and o.launch and type(aerr) == "table" and aerr.code == "not_ready" then
    return not_launched(w, o, p, aerr, note)
  end
  if not c then return report(w, aerr) end
  if o.json then
    local result = plan_json(p)
    result.id = c.id
    result.campaign = output.fields_of(c)
    result.launched = o.launch and true or false
    print_json(w, result)
  else
    local verb = p.action == "create" and "created" or (p.action == "update" and "updated" or "unchanged")
    out(w, format("%s%s: %s", verb, o.launch and " and launched" or "", output.text(c, true)))
    if note then out(w, note) end
  end
  return kerr and EXIT_API or EXIT_OK
end

return M
