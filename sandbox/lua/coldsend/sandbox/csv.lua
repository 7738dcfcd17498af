--- coldsend.sandbox.csv: multipart/form-data and RFC 4180 CSV parsing for
-- the sandbox's lead upload.
local M = {}

-- -------------------------------------------------------------------------
-- multipart/form-data
-- -------------------------------------------------------------------------

--- The boundary of a multipart Content-Type, or nil.
function M.boundary(content_type)
  if not content_type then return nil end
  local ct = content_type:lower()
  if not ct:match("^%s*multipart/form%-data") then return nil end
  local b = content_type:match('[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]="([^"]+)"')
    or content_type:match("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)")
  return b
end

--- Parses a multipart body. Returns parts = { {name=, filename=,
-- content_type=, value=} ... } (and by name), or nil, message.
function M.multipart(body, boundary)
  local delim = "--" .. boundary
  local parts = {}
  local pos = body:find(delim, 1, true)
  if not pos then return nil, "multipart boundary not found" end
  pos = pos + #delim
  while true do
    -- after a delimiter: "--" ends, else CRLF then headers
    if body:sub(pos, pos + 1) == "--" then break end
    local eol = body:find("\r\n", pos, true)
    if not eol then return nil, "truncated multipart body" end
    local hend = body:find("\r\n\r\n", eol, true)
    local head
    if hend == eol then
      head, hend = "", eol
    else
      if not hend then return nil, "truncated multipart part headers" end
      head = body:sub(eol + 2, hend - 1)
    end
    local data_start = hend + 4
    local nxt = body:find("\r\n" .. delim, data_start - 2, true)
    if not nxt then return nil, "multipart closing boundary not found" end
    local part = { headers = {} }
    for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then part.headers[k:lower()] = v end
    end
    local cd = part.headers["content-disposition"] or ""
    part.name = cd:match('[; ]name="([^"]*)"') or cd:match("[; ]name=([^;%s]+)")
    part.filename = cd:match('filename="([^"]*)"') or cd:match("filename=([^;%s]+)")
    part.content_type = part.headers["content-type"]
    if nxt < data_start then
      part.value = ""
    else
      part.value = body:sub(data_start, nxt - 1)
    end
    parts[#parts + 1] = part
    if part.name and parts[part.name] == nil then parts[part.name] = part end
    pos = nxt + 2 + #delim
  end
  return parts
end

--- Encodes multipart/form-data. parts = { {name=, value=} | {name=,
-- file=path, filename=?, content_type=?, offset=?, length=?, prefix=?} }
-- (the file part form of the transport contract, doc/internals.md).
-- Returns body, Content-Type header value; or nil, message.
function M.encode_multipart(parts)
  local boundary = ("----coldsend-sandbox-%d%d"):format(math.random(1e9), math.random(1e9))
  local out = {}
  for _, p in ipairs(parts) do
    local value = p.value
    if p.file then
      local f, err = io.open(p.file, "rb")
      if not f then return nil, err end
      f:seek("set", p.offset or 0)
      value = (p.prefix or "") .. (f:read(p.length or "*a") or "")
      f:close()
    end
    local filename = p.filename or (p.file and p.file:match("([^/]+)$"))
    local cd = 'Content-Disposition: form-data; name="' .. p.name .. '"'
    if filename then cd = cd .. '; filename="' .. filename .. '"' end
    out[#out + 1] = "--" .. boundary .. "\r\n" .. cd .. "\r\n"
    if p.content_type or filename then
      out[#out + 1] = "Content-Type: " .. (p.content_type or "text/csv") .. "\r\n"
    end
    out[#out + 1] = "\r\n" .. tostring(value or "") .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

--- s without leading and trailing whitespace, in time linear in #s
-- (gsub("%s+$", "") retries from every blank of a long run: quadratic).
function M.trim(s)
  local i = s:find("%S")
  if not i then return "" end
  return s:match("^.*%S", i)
end

-- -------------------------------------------------------------------------
-- RFC 4180
-- -------------------------------------------------------------------------

--- An iterator-style reader over a CSV string: reader() returns the next
-- record as an array of fields (and the 1-based physical line where it
-- started), or nil at the end; raises {csv_error=msg, line=} on an
-- unterminated quoted field. Accepts CRLF or LF, a UTF-8 BOM, quoted fields
-- with embedded commas, doubled quotes and newlines. Empty lines are skipped.
function M.reader(s)
  local pos, line = 1, 1
  if s:sub(1, 3) == "\239\187\191" then pos = 4 end
  local n = #s
  return function()
    while true do
      if pos > n then return nil end
      local start_line = line
      local fields = {}
      local blank = true
      while true do
        local c = s:sub(pos, pos)
        local field
        if c == '"' then
          blank = false
          local buf = {}
          local p = pos + 1
          while true do
            local q = s:find('"', p, true)
            if not q then
              error({ csv_error = "unterminated quoted field", line = start_line }, 0)
            end
            local piece = s:sub(p, q - 1)
            local _, nl = piece:gsub("\n", "")
            line = line + nl
            buf[#buf + 1] = piece
            if s:sub(q + 1, q + 1) == '"' then
              buf[#buf + 1] = '"'
              p = q + 2
            else
              pos = q + 1
              break
            end
          end
          field = table.concat(buf)
          -- anything up to the separator after a closing quote is kept (lenient)
          local e = s:find("[,\r\n]", pos)
          if e and e > pos then field = field .. s:sub(pos, e - 1) pos = e
          elseif not e then field = field .. s:sub(pos) pos = n + 1 end
        else
          local e = s:find("[,\r\n]", pos)
          if e then
            field = s:sub(pos, e - 1)
            pos = e
          else
            field = s:sub(pos)
            pos = n + 1
          end
          if field ~= "" then blank = false end
        end
        fields[#fields + 1] = field
        local sep = s:sub(pos, pos)
        if sep == "," then
          blank = false
          pos = pos + 1
        else
          if sep == "\r" then pos = pos + 1 end
          if s:sub(pos, pos) == "\n" then pos = pos + 1 end
          line = line + 1
          break
        end
      end
      if not blank then return fields, start_line end
    end
  end
end

return M
