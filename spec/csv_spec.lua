-- csv_spec.lua: the streaming CSV reader, lead-file pre-flight and chunk planning.
local core = require "coldsend.core"
local util = require "spec.helpers.util"

local write_tmp = util.write_tmp

-- Every record of a file, or the records so far and the error.
local function read_all(path)
  local r = assert(core.csv_open(path))
  local rows = {}
  while true do
    local row, err = r:read()
    if not row then
      r:close()
      return rows, err
    end
    rows[#rows + 1] = row
  end
end

local function parse(content)
  return read_all(write_tmp(content))
end

-- A reference encoder: quotes a field when RFC 4180 says it must be.
local function encode_row(fields, eol)
  local out = {}
  for i, v in ipairs(fields) do
    if v:find('[,"\r\n]') or v == "" and #fields == 1 then
      v = '"' .. v:gsub('"', '""') .. '"'
    end
    out[i] = v
  end
  return table.concat(out, ",") .. (eol or "\n")
end

-- A simple deterministic generator, the same under both Luas.
local function lcg(seed)
  local state = seed
  return function(n)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n
  end
end

-- A leads file: header, then n rows with unique emails.
local function leads_file(n, opts)
  opts = opts or {}
  local parts = { "email,first_name,last_name,company,notes\n" }
  for i = 1, n do
    local notes = opts.multiline and i % 7 == 0 and '"line one\nline two, ""quoted"""' or "plain"
    parts[#parts + 1] = ("user%d@example.com,First%d,Last%d,Company %d,%s\n"):format(i, i, i, i % 97, notes)
  end
  return write_tmp(table.concat(parts))
end

-- The header line of a report followed by the chunk's byte range.
local function chunk_text(content, report, chunk)
  local header = content:sub(report.header_offset + 1, report.header_offset + report.header_bytes)
  return header .. content:sub(chunk.offset + 1, chunk.offset + chunk.length)
end

teardown(util.cleanup)

describe("core.csv_open", function()
  it("returns nil, message, errno for a missing file, like io.open", function()
    local r, msg, code = core.csv_open("/nonexistent/leads.csv")
    assert.is_nil(r)
    assert.matches("/nonexistent/leads.csv: No such file", msg, 1, true)
    assert.equals("number", type(code))
  end)

  it("refuses a directory", function()
    local r, msg = core.csv_open("/tmp")
    assert.is_nil(r)
    assert.matches("directory", msg)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.csv_open() end)
    local r = assert(core.csv_open(write_tmp("a\n")))
    assert.has_error(function() r.read({}) end, nil)
    local ok, err = pcall(r.read, io.stdout)
    assert.is_false(ok)
    assert.matches("coldsend.csv expected", err)
  end)

  it("has a name, a one-line tostring and an idempotent close", function()
    local path = write_tmp("a,b\n1,2\n")
    local r = assert(core.csv_open(path))
    assert.equals("coldsend.csv " .. path .. " row 0", tostring(r))
    r:read()
    assert.equals("coldsend.csv " .. path .. " row 1", tostring(r))
    assert.is_true(r:close())
    assert.is_true(r:close())
    assert.equals("coldsend.csv (closed)", tostring(r))
    assert.has_error(function() r:read() end, "attempt to use a closed coldsend.csv")
    assert.has_error(function() r:offset() end, "attempt to use a closed coldsend.csv")
    assert.equals("coldsend.csv", getmetatable(r).__name)
  end)

  if _VERSION == "Lua 5.4" and not jit then
    it("closes as a to-be-closed variable", function()
      local path = write_tmp("a\n")
      local chunk = assert(load([[
        local core, path = ...
        local keep
        do
          local r <close> = assert(core.csv_open(path))
          keep = r
        end
        return keep
      ]]))
      assert.equals("coldsend.csv (closed)", tostring(chunk(core, path)))
    end)
  end
end)

describe("reader:read (RFC 4180)", function()
  it("reads plain LF records", function()
    assert.same({ { "a", "b", "c" }, { "1", "2", "3" } }, parse("a,b,c\n1,2,3\n"))
  end)

  it("reads CRLF records", function()
    assert.same({ { "a", "b" }, { "1", "2" } }, parse("a,b\r\n1,2\r\n"))
  end)

  it("takes a lone CR as a line end", function()
    assert.same({ { "a", "b" }, { "1", "2" } }, parse("a,b\r1,2\r"))
  end)

  it("reads a last record without a line end", function()
    assert.same({ { "a", "b" }, { "1", "2" } }, parse("a,b\n1,2"))
  end)

  it("keeps empty fields, quoted or not", function()
    assert.same({ { "a", "", "c" }, { "", "", "" }, { "x", "" }, { "" } }, parse('a,,c\n,,\nx,""\n""\n'))
  end)

  it("reads quoted fields with commas", function()
    assert.same({ { "Doe, John", "x" } }, parse('"Doe, John",x\n'))
  end)

  it("reads doubled quotes as one quote", function()
    assert.same({ { 'say "hi"', '"', '""' } }, parse('"say ""hi""","""",""""""\n'))
  end)

  it("reads newlines inside quotes as data and counts the lines", function()
    local path = write_tmp('h1,h2\n"one\ntwo\r\nthree",x\nnext,row\n')
    local r = assert(core.csv_open(path))
    assert.same({ "h1", "h2" }, r:read())
    assert.same({ "one\ntwo\r\nthree", "x" }, r:read())
    assert.equals(2, r:row())
    assert.equals(2, r:line())
    assert.same({ "next", "row" }, r:read())
    assert.equals(3, r:row())
    assert.equals(5, r:line())
    assert.is_nil(r:read())
    r:close()
  end)

  it("keeps a quote inside an unquoted field as data", function()
    assert.same({ { 'ab"c', "d" } }, parse('ab"c,d\n'))
  end)

  it("keeps NUL bytes and UTF-8", function()
    assert.same({ { "a\0b", "Zoë 日本" } }, parse("a\0b,Zoë 日本\n"))
  end)

  it("skips a UTF-8 BOM", function()
    local path = write_tmp("\239\187\191email,name\nx@y.com,X\n")
    local r = assert(core.csv_open(path))
    assert.same({ "email", "name" }, r:read())
    assert.equals(3, r:record_offset())
    r:close()
  end)

  it("keeps BOM bytes that are not at the start of the file", function()
    assert.same({ { "a" }, { "\239\187\191b" } }, parse("a\n\239\187\191b\n"))
  end)

  it("skips empty lines, LF or CRLF, anywhere", function()
    local path = write_tmp("\n\r\na,b\n\n\r\n1,2\r\n\r\n\n3,4\n\n")
    local r = assert(core.csv_open(path))
    assert.same({ "a", "b" }, r:read())
    assert.equals(3, r:line())
    assert.same({ "1", "2" }, r:read())
    assert.equals(2, r:row())
    assert.equals(6, r:line())
    assert.same({ "3", "4" }, r:read())
    assert.equals(3, r:row())
    assert.equals(9, r:line())
    assert.is_nil(r:read())
    assert.is_nil(r:read()) -- EOF stays EOF
    r:close()
  end)

  it("names the row and line of an unterminated quote at EOF", function()
    local rows, err = parse('email,name\na@b.co,ok\nc@d.co,"never closed\nmore text\n')
    assert.equals(2, #rows)
    assert.equals("row 3 (line 3): unterminated quoted field: the quote opened on line 3 is never closed", err)
  end)

  it("keeps returning the same error after one", function()
    local r = assert(core.csv_open(write_tmp('a\n"open\n')))
    assert.same({ "a" }, r:read())
    local _, e1 = r:read()
    local _, e2 = r:read()
    assert.matches("unterminated", e1)
    assert.equals(e1, e2)
    r:close()
  end)

  it("refuses a character after a closing quote, naming row and line", function()
    local rows, err = parse('a,b\n"x"y,z\n')
    assert.equals(1, #rows)
    assert.matches("^row 2 %(line 2%), field 1: unexpected character after a closing quote", err)
  end)

  it("raises data errors from the rows() iterator", function()
    local r = assert(core.csv_open(write_tmp('a\nb\n"c\n')))
    local seen = {}
    local ok, err = pcall(function()
      for row in r:rows() do
        seen[#seen + 1] = row[1]
      end
    end)
    assert.is_false(ok)
    assert.same({ "a", "b" }, seen)
    assert.matches("row 3 %(line 3%): unterminated", err)
    r:close()
  end)

  it("iterates with rows()", function()
    local r = assert(core.csv_open(write_tmp("a\nb\nc")))
    local seen = {}
    for row in r:rows() do
      seen[#seen + 1] = row[1]
    end
    assert.same({ "a", "b", "c" }, seen)
    r:close()
  end)

  it("caps a row at 1 MiB with a clear error, and accepts one just under", function()
    local big = string.rep("x", 1000 * 1000)
    local rows, err = parse("h\n" .. big .. "\nafter\n")
    assert.is_nil(err)
    assert.equals(big, rows[2][1])
    rows, err = parse("h\n" .. big .. "," .. big .. "\n")
    assert.equals(1, #rows)
    assert.equals("row 2 (line 2) is longer than 1048576 bytes", err)
  end)

  it("reports a runaway quote as such when it hits the cap", function()
    local _, err = parse('h\n"' .. string.rep("x\n", 600 * 1000))
    assert.matches("row 2 %(line 2%): the quoted field opened on line 2 runs past 1048576 bytes", err)
  end)

  it("reports offsets: each record's byte range parses back to the record", function()
    local content = '\239\187\191h1,h2\r\n\r\n"a\r\nb",c\r\nd,"e"""\n\nf,g'
    local path = write_tmp(content)
    local r = assert(core.csv_open(path))
    assert.equals(0, r:offset())
    local n = 0
    while true do
      local row = r:read()
      if not row then break end
      n = n + 1
      local piece = content:sub(r:record_offset() + 1, r:offset())
      assert.same({ row }, (parse(piece)))
    end
    assert.equals(4, n)
    assert.equals(#content, r:offset())
    r:close()
  end)

  it("round-trips random files across read-buffer boundaries", function()
    local rand = lcg(42)
    local alphabet = { "a", "b", ",", '"', "\n", "\r\n", " ", "é", "x", "yz" }
    for _, eol in ipairs({ "\n", "\r\n" }) do
      local rows, parts = {}, {}
      for i = 1, 4000 do
        local fields = {}
        for j = 1, 1 + rand(5) do
          local f = {}
          for k = 1, rand(40) do
            f[k] = alphabet[1 + rand(#alphabet)]
          end
          fields[j] = table.concat(f)
        end
        rows[i] = fields
        parts[i] = encode_row(fields, eol)
      end
      local got, err = parse(table.concat(parts))
      assert.is_nil(err)
      assert.equals(#rows, #got)
      for i = 1, #rows do
        if not (#rows[i] == #got[i] and table.concat(rows[i], "\0") == table.concat(got[i], "\0")) then
          assert.same(rows[i], got[i])
        end
      end
    end
  end)
end)

describe("core.email_problem", function()
  it("accepts ordinary addresses", function()
    for _, e in ipairs({ "a@b.co", "john.doe+tag@mail.example.com", "O'Brien@example.ie",
                         "a_b!#$%&*/=?^`{|}~@x-y.example.com", "x_y-z@sub-domain.example.org", "jörg@bücher.de" }) do
      assert.is_nil(core.email_problem(e), e)
    end
  end)

  it("names what is wrong", function()
    local cases = {
      [""] = "empty",
      ["plainaddress"] = "no @",
      ["a@b@c.com"] = "more than one @",
      ["@example.com"] = "nothing before the @",
      ["john@"] = "nothing after the @",
      ["john doe@example.com"] = "contains spaces",
      [" john@example.com"] = "contains spaces",
      ["john@example"] = "no dot in the domain (local@domain.tld expected)",
      ["john@example.c"] = "top-level domain shorter than 2 characters",
      ["john@1.2.3.4"] = "numeric top-level domain",
      ["john@ex..com"] = "empty label in the domain",
      ["john@-ex.com"] = "domain label starts or ends with '-'",
      ["john..doe@example.com"] = "two dots in a row",
      [".john@example.com"] = "misplaced dot before the @",
      ["jo,hn@example.com"] = "character not allowed before the @",
      ["john@exa_mple.com"] = "character not allowed in the domain",
      ["john@ex+ample.com"] = "character not allowed in the domain",
      ["john@example.com."] = "empty label in the domain",
      ["john@example-.com"] = "domain label starts or ends with '-'",
      ["john.@example.com"] = "misplaced dot before the @",
      ["john@exam@ple.com"] = "more than one @",
      ["john@.example.com"] = "empty label in the domain",
      ["john\1@example.com"] = "contains control characters",
      [string.rep("a", 65) .. "@example.com"] = "part before the @ longer than 64 bytes",
      ["a@" .. string.rep("b", 64) .. ".com"] = "domain label longer than 63 bytes",
      ["a@" .. string.rep("bcdefghij.", 26) .. "com"] = "longer than 254 bytes",
    }
    for email, why in pairs(cases) do
      assert.equals(why, core.email_problem(email), email)
    end
  end)
end)

describe("core.csv_preflight", function()
  local function by_row(report)
    local t = {}
    for _, p in ipairs(report.problems) do
      t[#t + 1] = p.row .. " " .. tostring(p.column) .. ": " .. p.message
    end
    return t
  end

  it("reports a clean file", function()
    local content = "Email,First Name\r\na@b.co,A\r\nc@d.co,C\r\n"
    local path = write_tmp(content)
    local rep = assert(core.csv_preflight(path, { mapping = { email = "Email", first_name = "First Name" } }))
    assert.equals(2, rep.rows)
    assert.equals(#content, rep.bytes)
    assert.same({ "Email", "First Name" }, rep.header)
    assert.equals(0, rep.header_offset)
    assert.equals(#"Email,First Name\r\n", rep.header_bytes)
    assert.is_false(rep.bom)
    assert.is_true(rep.complete)
    assert.equals("Email", rep.email_column)
    assert.same({}, rep.problems)
    assert.equals(0, rep.problem_count)
    assert.equals(0, rep.duplicates)
    assert.same({ { first_row = 2, last_row = 3, rows = 2, offset = rep.header_bytes,
                    length = #content - rep.header_bytes } }, rep.chunks)
    assert.matches("^%x+$", rep.fingerprint)
    assert.equals("number", type(rep.mtime))
  end)

  it("lists every problem of a crafted bad file", function()
    local path = write_tmp(table.concat({
      "Email,First Name,Company\n",
      "ann@example.com,Ann,Acme\n",      -- 2
      "not-an-email,Bob,Acme\n",         -- 3
      "ANN@Example.com,Ann2,Acme\n",     -- 4 duplicate of 2
      "cy@example.com,Cy\n",             -- 5 too few fields
      "di@example.com,Di,Acme,extra\n",  -- 6 too many fields
      "eve @example.com,Eve,Acme\n",     -- 7
      "ann@example.com,Ann3,Acme\n",     -- 8 duplicate of 2 again
      "fay@example.com,Fay,\"Fay, Inc\"\n", -- 9 fine
    }))
    local rep = assert(core.csv_preflight(path, {
      mapping = { email = "Email", first_name = "First Name", last_name = "Surname", company = "Company" },
    }))
    assert.same({
      "1 Surname: the header has no column 'Surname' (mapped from lead field 'last_name')",
      "3 Email: invalid email 'not-an-email': no @",
      "4 Email: duplicate email 'ANN@Example.com' (first in row 2)",
      "5 nil: row has 2 fields, the header has 3",
      "6 nil: row has 4 fields, the header has 3",
      "7 Email: invalid email 'eve @example.com': contains spaces",
      "8 Email: duplicate email 'ann@example.com' (first in row 2)",
    }, by_row(rep))
    assert.equals(7, rep.problem_count)
    assert.equals(2, rep.duplicates)
    assert.equals(2, rep.invalid_emails)
    assert.equals(2, rep.ragged_rows)
    assert.equals(8, rep.rows)
    assert.equals(2, rep.problems[3].first_row)
    assert.equals(4, rep.problems[3].line)
  end)

  it("matches mapped columns ignoring case and spaces, as the server does", function()
    local rep = assert(core.csv_preflight(write_tmp("Email, First Name \na@b.co,A\n"),
      { mapping = { email = "email", first_name = "first name" } }))
    assert.same({}, rep.problems)
    -- the header's own spelling, for the mapping sent with the upload
    assert.same({ email = "Email", first_name = " First Name " }, rep.mapping)
    assert.equals("Email", rep.email_column)
  end)

  it("reports a mapping without an email entry", function()
    local rep = assert(core.csv_preflight(write_tmp("Email,Name\na@b.co,A\n"), { mapping = { first_name = "Name" } }))
    assert.same({ "1 nil: the mapping has no 'email' entry: map the email column, e.g. mapping = {email = \"Email\"}" },
      by_row(rep))
    assert.equals("mapping", rep.problems[1].kind)
  end)

  it("gives each problem a kind", function()
    local rep = assert(core.csv_preflight(write_tmp('email,x\nbad,1\na@b.co,1\nA@b.co,2\na@c.co\nz@z.co,"q"q\n')))
    local kinds = {}
    for i, p in ipairs(rep.problems) do kinds[i] = p.kind end
    assert.same({ "email", "duplicate", "fields", "syntax" }, kinds)
  end)

  it("finds the email column by name when no mapping is given", function()
    local rep = assert(core.csv_preflight(write_tmp("Name, EMAIL \nA,a@b.co\nB,bad\n")))
    assert.equals(" EMAIL ", rep.email_column)
    assert.same({ "3  EMAIL : invalid email 'bad': no @" }, by_row(rep))
  end)

  it("reports a file without an email column", function()
    local rep = assert(core.csv_preflight(write_tmp("name,company\nA,B\n")))
    assert.same({ '1 email: no email column in the header: name one with mapping = {email = "<column>"}' },
      by_row(rep))
    assert.is_nil(rep.email_column)
  end)

  it("reports a column named twice in the header", function()
    local rep = assert(core.csv_preflight(write_tmp("email,name,name\na@b.co,A,B\n")))
    assert.same({ "1 name: column 'name' appears twice in the header (columns 2 and 3)" }, by_row(rep))
  end)

  it("reports empty and header-only files", function()
    assert.same({ "1 nil: the file is empty (no header row)" }, by_row(assert(core.csv_preflight(write_tmp("\n\n")))))
    assert.same({ "2 nil: the file has a header but no data rows" },
      by_row(assert(core.csv_preflight(write_tmp("email\n")))))
  end)

  it("caps the list but keeps counting", function()
    local parts = { "email\n" }
    for i = 1, 300 do parts[#parts + 1] = "bad" .. i .. "\n" end
    local rep = assert(core.csv_preflight(write_tmp(table.concat(parts)), { max_problems = 10 }))
    assert.equals(10, #rep.problems)
    assert.equals(300, rep.problem_count)
    rep = assert(core.csv_preflight(write_tmp(table.concat(parts))))
    assert.equals(100, #rep.problems)
  end)

  it("stops at a syntax error, says so and plans no upload past it", function()
    local rep = assert(core.csv_preflight(write_tmp('email,name\na@b.co,"x"y\n')))
    assert.is_false(rep.complete)
    assert.matches("unexpected character after a closing quote", rep.error)
    assert.same({ "2 nil: " .. rep.error }, by_row(rep))
    assert.is_nil(rep.fingerprint)
  end)

  it("reports the BOM and excludes it from the header bytes", function()
    local rep = assert(core.csv_preflight(write_tmp("\239\187\191email\r\na@b.co\r\n")))
    assert.is_true(rep.bom)
    assert.equals(3, rep.header_offset)
    assert.equals(7, rep.header_bytes)
    assert.same({ "email" }, rep.header)
    assert.equals(10, rep.chunks[1].offset)
  end)

  it("returns nil, message for a missing file and raises on bad options", function()
    local rep, msg = core.csv_preflight("/nonexistent.csv")
    assert.is_nil(rep)
    assert.matches("No such file", msg)
    local path = write_tmp("email\na@b.co\n")
    assert.has_error(function() core.csv_preflight(path, { chunk_rows = 0 }) end,
      "bad option 'chunk_rows' (integer >= 1 expected, got 0)")
    assert.has_error(function() core.csv_preflight(path, { chunk_bytes = "big" }) end)
    assert.has_error(function() core.csv_preflight(path, { mapping = { email = 1 } }) end,
      'bad mapping (lead field = "CSV column" strings expected)')
    assert.has_error(function() core.csv_preflight(path, { mapping = "email" }) end)
  end)

  it("changes the fingerprint when one byte changes", function()
    local a = assert(core.csv_preflight(write_tmp("email\na@b.co\n"))).fingerprint
    local b = assert(core.csv_preflight(write_tmp("email\na@b.co\n"))).fingerprint
    local c = assert(core.csv_preflight(write_tmp("email\na@b.cp\n"))).fingerprint
    assert.equals(a, b)
    assert.not_equals(a, c)
  end)

  describe("chunk planning", function()
    -- Rebuilds every chunk as an upload would and parses it back.
    local function check_chunks(path, rep, expected_rows)
      local content = assert(util.slurp(path))
      local seen, total = {}, 0
      for i, ch in ipairs(rep.chunks) do
        local rows, err = parse(chunk_text(content, rep, ch))
        assert.is_nil(err)
        assert.same(rep.header, rows[1])
        assert.equals(ch.rows + 1, #rows)
        assert.equals(ch.last_row - ch.first_row + 1, ch.rows)
        if i > 1 then assert.equals(rep.chunks[i - 1].last_row + 1, ch.first_row) end
        for j = 2, #rows do
          local email = rows[j][1]
          assert.is_nil(seen[email], email)
          seen[email] = true
          total = total + 1
        end
      end
      assert.equals(expected_rows, total)
      assert.equals(expected_rows, rep.rows)
    end

    it("splits 25,001 rows into 3 chunks of at most 10,000", function()
      local path = leads_file(25001)
      local rep = assert(core.csv_preflight(path, { chunk_rows = 10000 }))
      assert.equals(3, #rep.chunks)
      assert.same({ 10000, 10000, 5001 }, { rep.chunks[1].rows, rep.chunks[2].rows, rep.chunks[3].rows })
      assert.same({ 2, 10001 }, { rep.chunks[1].first_row, rep.chunks[1].last_row })
      assert.same({ 10002, 20001 }, { rep.chunks[2].first_row, rep.chunks[2].last_row })
      assert.same({ 20002, 25002 }, { rep.chunks[3].first_row, rep.chunks[3].last_row })
      local c = rep.chunks
      assert.equals(c[1].offset + c[1].length, c[2].offset)
      assert.equals(c[3].offset + c[3].length, rep.bytes)
      check_chunks(path, rep, 25001)
    end)

    it("honours the byte cap, header included", function()
      local path = leads_file(2000)
      local rep = assert(core.csv_preflight(path, { chunk_bytes = 10000 }))
      assert.is_true(#rep.chunks > 10)
      for i, ch in ipairs(rep.chunks) do
        assert.is_true(rep.header_bytes + ch.length <= 10000)
        -- the next row would not have fitted
        assert.is_true(i == #rep.chunks or rep.header_bytes + ch.length > 10000 - 200)
      end
      check_chunks(path, rep, 2000)
    end)

    it("cuts on record boundaries, never inside a quoted newline", function()
      local path = leads_file(3001, { multiline = true })
      local rep = assert(core.csv_preflight(path, { chunk_rows = 7, chunk_bytes = 1500 }))
      check_chunks(path, rep, 3001)
    end)

    it("leaves empty lines between records out of the chunks", function()
      local content = "email\r\n\r\na@b.co\r\n\r\n\r\nc@d.co\r\n\r\n"
      local path = write_tmp(content)
      local rep = assert(core.csv_preflight(path, { chunk_rows = 1 }))
      assert.equals(2, #rep.chunks)
      assert.equals("a@b.co\r\n", content:sub(rep.chunks[1].offset + 1, rep.chunks[1].offset + rep.chunks[1].length))
      assert.equals("c@d.co\r\n", content:sub(rep.chunks[2].offset + 1, rep.chunks[2].offset + rep.chunks[2].length))
    end)

    it("reports a row that cannot fit a chunk", function()
      local rep = assert(core.csv_preflight(write_tmp("email,notes\na@b.co," .. string.rep("n", 200) .. "\n"),
        { chunk_bytes = 100 }))
      assert.equals(1, rep.problem_count)
      assert.matches("^row is 208 bytes: with the header it exceeds chunk_bytes %(100%)", rep.problems[1].message)
    end)
  end)
end)
