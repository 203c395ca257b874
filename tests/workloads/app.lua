-- app.lua: the lua workload's differential test (tests/linux/linux_test.sh, case
-- lua_app): the interpreter's everyday work, with files in its box.
local words = {}
for w in io.lines("words.txt") do
	if #w > 0 then words[#words + 1] = w end
end
print("words", #words, "args", table.concat(arg, "|"))
local counts = {}
for _, w in ipairs(words) do
	local k = w:sub(1, 1)
	counts[k] = (counts[k] or 0) + 1
end
local keys = {}
for k in pairs(counts) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do io.write(k, "=", counts[k], " ") end
print()
table.sort(words, function(a, b) return #a > #b or (#a == #b and a < b) end)
print("longest", words[1], words[2], words[3])
print("gsub", ("a1b22c333"):gsub("%d+", function(m) return "<" .. #m .. ">" end))
print("format", string.format("%5.2f %x %q %g", math.pi, 48879, "a\nb", 1e300 * 10))
print("integers", math.maxinteger, math.mininteger, 7 // 2, 7 % -3, 2^53, 1 << 62)
local t = {}
for i = 1, 100000 do t[i] = (i * 7919) % 100003 end
table.sort(t)
print("sorted", t[1], t[50000], t[100000])
local co = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i * i) end end)
print("coroutine", co(), co(), co())
print("pcall", pcall(error, "boom", 0))
print("utf8", utf8.len("ünïcödé"), utf8.char(233, 0x4e2d))
assert(os.rename("words.txt", "renamed.txt"))
local f = assert(io.open("out.txt", "w"))
f:write("lines\n", 123, "\n")
f:close()
f = assert(io.open("out.txt", "a+"))
f:write("appended\n")
f:seek("set", 0)
print("read back", f:read("a"):gsub("\n", "/"))
f:close()
print("remove", os.remove("renamed.txt"), io.open("renamed.txt") == nil)
print("getenv", os.getenv("HOME"), os.getenv("WORKLOAD"))
