-- error.lua: an uncaught error: its traceback on stderr, exit 1 (case lua_error).
print("before")
local function inner(x) return x.missing.field end
local function outer() return inner({}) end
outer()
print("never")
