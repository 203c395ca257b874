/*
 * lua_main.c: a Lua 5.4 interpreter of the project's own, linked with
 * Debian's liblua5.4.a: runs the script named by argv[1], with the rest of
 * argv as the script's `arg`, and reports errors on stderr (exit 1).
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRIPT [ARG...]\n", argv[0]);
		return 2;
	}
	lua_State *L = luaL_newstate();
	if (!L) {
		fputs("lua: cannot create a state: out of memory\n", stderr);
		return 1;
	}
	luaL_openlibs(L);
	lua_createtable(L, argc - 2, 0);
	for (int i = 2; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");
	int rc = 0;
	if (luaL_dofile(L, argv[1]) != LUA_OK) {
		fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
		rc = 1;
	}
	lua_close(L);
	return rc;
}
