-- lua_compute.lua FIB SORT: the compute-bound Lua script of
-- wasp-bench-apps (ratio lua_compute/native): recursive fib(FIB), then
-- SORT pseudo-random numbers in a table sorted with table.sort; prints
-- both results, compared byte for byte between the native run and the
-- virtine. No I/O but the last print: the time is the interpreter's.
local fibn, sortn = tonumber(arg[1]), tonumber(arg[2])
assert(fibn and sortn, "usage: lua_compute.lua FIB SORT")

local function fib(n)
	if n < 2 then return n end
	return fib(n - 1) + fib(n - 2)
end

local t, x = {}, 12345
for i = 1, sortn do
	x = (x * 1103515245 + 12345) % 2147483648
	t[i] = x
end
table.sort(t)
local sum = 0
for i = 1, sortn, 97 do sum = (sum + t[i] * i) % 1000000007 end

print(string.format("fib(%d) = %d; sorted %d, checksum %d", fibn, fib(fibn), sortn, sum))
