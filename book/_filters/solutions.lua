-- Show exercise stubs instead of solutions, unless the "solutions" profile is active.
--
-- A code exercise keeps its solution between "# BEGIN SOLUTION" and "# END SOLUTION" lines,
-- optionally preceded by a "# HINT: ..." line. The chapter executes the full code (so its checks
-- pass on the page), but the displayed code shows `raise NotImplementedError("<hint>")` in the
-- region's place. `quarto render --profile solutions` shows the full code.
-- The same rule, in Python, builds the student notebooks (dnnl/book.py: student_source).

local DEFAULT_HINT = "Replace this line with your solution."

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function solutions_profile(meta)
  local flag = meta["dnnl-solutions"]
  if flag == true then
    return true
  end
  if type(flag) == "table" and pandoc.utils.stringify(flag) == "true" then
    return true
  end
  local env = os.getenv("QUARTO_PROFILE") or ""
  for name in env:gmatch("[^,%s]+") do
    if name == "solutions" then
      return true
    end
  end
  return false
end

local function py_string(s)
  if s:find('"', 1, true) and not s:find("'", 1, true) and not s:find("\\", 1, true) then
    return "'" .. s .. "'"
  end
  s = s:gsub("\\", "\\\\"):gsub('"', '\\"')
  return '"' .. s .. '"'
end

local function student_source(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    table.insert(lines, line)
  end
  local out = {}
  local i = 1
  while i <= #lines do
    local line = lines[i]
    if trim(line) == "# BEGIN SOLUTION" then
      local indent = line:match("^(%s*)")
      local hint = DEFAULT_HINT
      local previous = out[#out]
      if previous and trim(previous):sub(1, 7) == "# HINT:" then
        local given = trim(trim(previous):sub(8))
        if given ~= "" then
          hint = given
        end
        table.remove(out)
      end
      local j = i + 1
      while j <= #lines and trim(lines[j]) ~= "# END SOLUTION" do
        j = j + 1
      end
      table.insert(out, indent .. "raise NotImplementedError(" .. py_string(hint) .. ")")
      i = j + 1
    else
      table.insert(out, line)
      i = i + 1
    end
  end
  return table.concat(out, "\n")
end

function Pandoc(doc)
  if solutions_profile(doc.meta) then
    return doc
  end
  return doc:walk({
    CodeBlock = function(block)
      if block.text:find("# BEGIN SOLUTION", 1, true) then
        block.text = student_source(block.text)
        return block
      end
    end,
  })
end
