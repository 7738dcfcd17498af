--- coldsend.campaign_files: a folder of campaign files and the ids of the
-- campaigns they created.
-- After `coldsend apply DIR` creates a campaign, the next plan of its file
-- must be an update. The id is recorded in `DIR/.coldsend-ids.json`
-- (`{"version": 1, "ids": {"q1.lua": "550e8400-..."}}`), written whole to a
-- private temporary file and renamed over the old one, so a crash leaves the
-- old record or the new, never half; or, with `--write-id`, inserted into
-- the file itself as `id = "..."` after its `return {`.
-- @module coldsend.campaign_files
local core = require "coldsend.core"
local json = require "coldsend.json"

local M = {}

local format = string.format

--- The name of the id record in a folder.
M.STATE_NAME = ".coldsend-ids.json"
M.STATE_VERSION = 1

--- Splits a path into its folder and its file name ("." for a bare name).
function M.split(path)
  local dir, base = path:match("^(.*)/([^/]+)$")
  if not dir then return ".", path end
  return dir == "" and "/" or dir, base
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- s quoted as one word for sh.
function M.shell_word(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
local shell_word = M.shell_word

-- The first line a shell command prints, or nil.
local function first_line(cmd)
  local p = io.popen(cmd)
  local line = p and p:read("*l")
  if p then p:close() end
  return line
end

--- Whether path is a folder.
function M.is_dir(path)
  return first_line("test -d " .. shell_word(path) .. " && echo yes") == "yes"
end

--- The campaign files of a folder: its `*.lua` files (not those starting
-- with a dot), sorted by name, as paths `dir/name` (the bare name for ".").
function M.list(dir)
  -- NUL-separated: a name may hold a newline
  local p = io.popen("cd -- " .. shell_word(dir) .. " 2>/dev/null && for f in *.lua; do "
    .. "if [ -e \"$f\" ] || [ -L \"$f\" ]; then printf '%s\\0' \"$f\"; fi; done")
  local out = p:read("*a") or ""
  p:close()
  local names = {}
  for name in out:gmatch("([^%z]+)%z") do
    if name:sub(1, 1) ~= "." then names[#names + 1] = name end
  end
  table.sort(names)
  if dir ~= "." then
    for i, name in ipairs(names) do names[i] = dir .. "/" .. name end
  end
  return names
end

--- The id record of a folder: `{ids = {[file name] = id}, path = ...,
-- exists = bool}`; raises a message naming the file when it is not a
-- record of this version (nothing is then overwritten).
function M.read_ids(dir)
  local path = dir == "." and M.STATE_NAME or dir .. "/" .. M.STATE_NAME
  local text = read_all(path)
  if not text then return { ids = {}, path = path, exists = false } end
  local ok, t = pcall(json.decode, text)
  if not ok or type(t) ~= "table" or t.version ~= M.STATE_VERSION or type(t.ids) ~= "table" then
    error(format("%s is not an id record of this version (%s); fix or remove it", path,
      '{"version": 1, "ids": {"file.lua": "UUID"}} expected'), 0)
  end
  for name, id in pairs(t.ids) do
    if type(name) ~= "string" or not core.is_uuid(id) then
      error(format("%s: bad entry for %s (a campaign UUID expected)", path, tostring(name)), 0)
    end
  end
  return { ids = t.ids, path = path, exists = true }
end

--- Records `id` for file `name` and writes the record whole.
-- @return true, or nil and a message
-- The file a path names, through symlinks (the path itself when it names
-- none yet).
local function resolved(path)
  local real = first_line("readlink -f -- " .. shell_word(path) .. " 2>/dev/null")
  return (real ~= nil and real ~= "") and real or path
end

function M.record(state, name, id)
  state.ids[name] = id
  -- a symlinked record is written through: the link stays
  local ok, err = core.write_private(resolved(state.path),
    json.encode_sorted { version = M.STATE_VERSION, ids = state.ids } .. "\n")
  if not ok then return nil, format("cannot write %s: %s", state.path, tostring(err)) end
  state.exists = true
  return true
end

--- Inserts `id = "UUID",` into a campaign file after its last `return {`
-- (ending the line as the file's lines end), then loads the file again
-- (with `load`, a function path -> definition) to check that it now
-- returns that id; puts the old text back when not. A symlink is written
-- through (its target gets the id, the link stays); a file without the
-- owner's write permission is left alone.
-- @return true, or nil and a message
function M.write_id(path, id, load)
  local real = resolved(path)
  local mode = first_line("stat -c %a -- " .. shell_word(real) .. " 2>/dev/null")
  local owner = mode and tonumber(mode:sub(-3, -3))
  if owner and math.floor(owner / 2) % 2 == 0 then
    return nil, format("%s is read-only (mode %s); the id was not written into it", path, mode)
  end
  local text = read_all(real)
  if not text then return nil, format("cannot read %s", path) end
  -- every `return {`, the last first (one in a comment or a string after
  -- the file's own is tried, found wrong by the load, and passed over)
  local candidates, init = {}, 1
  while true do
    local s, e = text:find("%f[%w_]return%s*{", init)
    if not s then break end
    table.insert(candidates, 1, e)
    init = e + 1
  end
  if #candidates == 0 then return nil, format("%s has no 'return {' to put the id after", path) end
  local nl = text:find("\r\n", 1, true) and "\r\n" or "\n"
  -- written whole and renamed into place (mode 0600), then given back its mode
  local function put(data)
    local ok, err = core.write_private(real, data)
    if ok and mode and mode:match("^[0-7]+$") then os.execute("chmod " .. mode .. " -- " .. shell_word(real)) end
    return ok, err
  end
  for _, at in ipairs(candidates) do
    local ok, err = put(text:sub(1, at) .. format('%s  id = "%s",', nl, id) .. text:sub(at + 1))
    if not ok then
      put(text)
      return nil, format("cannot write %s: %s", path, tostring(err))
    end
    local def = load(path)
    if type(def) == "table" and def.id == id then return true end
  end
  put(text)
  return nil, format("%s does not return the id once it is inserted; left as it was", path)
end

return M
