-- counter.lua: tests/linux/core/counter.c in Lua, for the checkpoint and
-- migration tests of the lua workload (tests/linux/linux_ckpt_test.sh): N
-- rounds of 64-bit hashing (Lua 5.4 integers wrap), each printing a line
-- and appending one to log.txt, with tables made and dropped so the heap
-- moves; one byte of stdin is read after rounds 20 and 200 (the gates that
-- let a test trigger while the program waits, whatever the host's speed).
local n = tonumber(arg[1]) or 300
local h = -3750763034362895579 -- 14695981039346656037, FNV-1a's basis
local log = assert(io.open("log.txt", "a"))
local keep = {}
for i = 0, n - 1 do
	for j = 0, 4999 do
		h = (h ~ (i * j + 1)) * 1099511628211
	end
	local t = {}
	for k = 1, (h >> 40) % 2000 + 1 do
		t[k] = k ~ h
	end
	keep[i % 8] = t
	print(string.format("%d %016x %d", i, h, #t))
	io.stdout:flush()
	log:write(string.format("round %d %x\n", i, h & 0xffff))
	log:flush()
	if i == 19 or i == 199 then
		io.read(1)
	end
end
log:close()
print(string.format("done %016x", h))
