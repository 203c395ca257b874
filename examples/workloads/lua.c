/*
 * lua: a Lua virtine. Debian's liblua5.4.a with every standard library.
 *
 *   lua FILE [ARG...]      runs FILE; the global `arg` holds the ARGs
 *   lua --serve FILE       runs FILE, then serves calls: each call's argument
 *                          (a string) goes to FILE's global handle(input),
 *                          whose value, through tostring(), is the result
 *
 * Paths (io.open, dofile) are the sandbox's when it runs in a virtine
 * (wasp-run --dir DIR). An error goes to stderr with its traceback; exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "workload.h"

static lua_State *L;

static int traceback(lua_State *l)
{
	luaL_traceback(l, l, luaL_tolstring(l, 1, NULL), 1);
	return 1;
}

/* Calls the function below its nargs arguments with a traceback handler;
 * 0, or -1 with the error reported. */
static int pcall(int nargs, int nres)
{
	int base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	int r = lua_pcall(L, nargs, nres, base);
	lua_remove(L, base);
	if (r != LUA_OK) {
		fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

static size_t handle(const void *in, size_t in_len, void *out, size_t out_cap)
{
	if (lua_getglobal(L, "handle") != LUA_TFUNCTION) {
		fputs("lua: the script defines no function handle(input)\n", stderr);
		exit(1);
	}
	lua_pushlstring(L, in, in_len);
	if (pcall(1, 1))
		exit(1);
	size_t n;
	const char *s = luaL_tolstring(L, -1, &n);
	size_t len = workload_result(out, out_cap, s, n);
	lua_pop(L, 2);
	return len;
}

int main(int argc, char **argv)
{
	int serve, file = workload_script_arg(argc, argv, &serve);
	if (!file)
		return 2;
	if (!(L = luaL_newstate())) {
		fputs("lua: cannot create a state: out of memory\n", stderr);
		return 1;
	}
	luaL_openlibs(L);
	lua_createtable(L, argc, 0);
	for (int i = 1 + serve; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1 - serve);
	}
	lua_setglobal(L, "arg");

	int rc = 0;
	if (luaL_loadfile(L, argv[file]) != LUA_OK) {
		fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
		rc = 1;
	} else if (pcall(0, 0)) {
		rc = 1;
	}
	if (rc == 0 && serve)
		rc = workload_serve("lua", handle);
	fflush(stdout);
	lua_close(L);
	return rc;
}
