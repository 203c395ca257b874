-- compute.lua: string work, tables, closures and float formatting, run by
-- lua_main natively and in a virtine. Every line printed must be the same
-- on each run: pairs() order depends on Lua's per-run hash seed, so keys
-- are sorted before printing, and math.random is seeded.
local out = {}
local function emit(fmt, ...) out[#out + 1] = string.format(fmt, ...) end

math.randomseed(20261207)

-- Strings: words, gsub, find, rep, byte/char, upper/lower.
local text = ("the quick brown fox jumps over the lazy dog "):rep(40)
local counts = {}
for w in text:gmatch("%a+") do counts[w] = (counts[w] or 0) + 1 end
local words = {}
for w in pairs(counts) do words[#words + 1] = w end
table.sort(words)
for _, w in ipairs(words) do emit("word %-6s %4d", w, counts[w]) end
local swapped, n = text:sub(1, 60):gsub("(%a+) (%a+)", "%2 %1")
emit("gsub: %d swaps: %s", n, swapped)
emit("upper: %s", ("Mixed Case 123"):upper())
emit("find: %s", tostring(text:find("lazy", 1, true)))
local bytes = {}
for i = 1, 20 do bytes[i] = string.char(65 + (i * 7) % 26) end
emit("chars: %s", table.concat(bytes))
emit("rep/sep: %s", ("ab"):rep(5, "-"))
emit("reverse: %s", ("stressed"):reverse())

-- Tables: a sieve, sorting records, table.insert/remove, concat.
local sieve, primes = {}, {}
for i = 2, 5000 do
  if not sieve[i] then
    primes[#primes + 1] = i
    for j = i * i, 5000, i do sieve[j] = true end
  end
end
emit("primes below 5000: %d, last %d", #primes, primes[#primes])
local recs = {}
for i = 1, 300 do recs[i] = {id = i, key = math.random(1, 50), name = "r" .. i} end
table.sort(recs, function(a, b) if a.key ~= b.key then return a.key < b.key end return a.id < b.id end)
for i = 1, 300, 15 do emit("rec %3d: key %2d name %s", i, recs[i].key, recs[i].name) end
local q = {}
for i = 1, 50 do table.insert(q, 1, i) end
for _ = 1, 20 do table.remove(q) end
emit("queue: %s", table.concat(q, ","))

-- Closures: counters, composition, a memoised recursion, coroutines.
local function counter(step)
  local c = 0
  return function() c = c + step; return c end
end
local cs = {}
for i = 1, 10 do cs[i] = counter(i) end
local total = 0
for round = 1, 2000 do
  for i = 1, 10 do total = total + cs[i]() % (round + 1) end
end
emit("closure total: %d", total)
local function compose(f, g) return function(x) return f(g(x)) end end
local f = function(x) return x end
for i = 1, 100 do f = compose(function(x) return (x * 3 + i) % 1000003 end, f) end
for x = 1, 5 do emit("composed(%d) = %d", x, f(x)) end
local memo = {}
local function fib(k)
  if k < 2 then return k end
  if memo[k] then return memo[k] end
  local v = fib(k - 1) + fib(k - 2)
  memo[k] = v
  return v
end
for k = 10, 90, 10 do emit("fib(%d) = %d", k, fib(k)) end
local gen = coroutine.wrap(function()
  for i = 1, 10 do coroutine.yield(i * i) end
end)
local sq = {}
for _ = 1, 10 do sq[#sq + 1] = gen() end
emit("coroutine squares: %s", table.concat(sq, " "))

-- Floats: string.format of many kinds, math functions.
for i = 1, 300 do
  local x = (i - 150) * 0.37 + i / 7
  emit("%4d %.17g %12.5f %e %g %a", i, math.sin(x) * math.exp(x / 40), x * x / 3,
       math.sqrt(math.abs(x)) * 1e5, x ^ 3, x)
end
emit("pi %.15f huge %g mininteger %d", math.pi, math.huge, math.mininteger)
emit("tointeger %s %s", tostring(math.tointeger(3.0)), tostring(math.tointeger(3.5)))
emit("integer division %d %d float %.3f", 7 // 2, -7 // 2, 7 / 2)
local acc = 0.0
for i = 1, 100000 do acc = acc + math.sin(i) / i end
emit("series %.17g", acc)
local rs = {}
for i = 1, 10 do rs[i] = math.random(1000) end
emit("random: %s", table.concat(rs, " "))

-- utf8 and string.pack.
emit("utf8 len %d", utf8.len("héllo wörld"))
emit("pack %q", string.pack("<i4 d", 42, 1.5):byte(1, -1) and "packed" or "")
emit("unpack %d", (string.unpack("<i4", string.pack("<i4", -123456))))

-- errors caught by pcall.
local ok, err = pcall(function() error({code = 7}) end)
emit("pcall: %s code %d", tostring(ok), err.code)
ok, err = pcall(function() local t = nil; return t.x end)
emit("pcall nil index: %s", tostring(ok))

for _, line in ipairs(out) do print(line) end
io.write(string.format("%d lines\n", #out))
io.stderr:write("compute.lua: done\n")
