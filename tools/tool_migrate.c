/*
 * tool_migrate.c: the bearer token of a migration (tool_migrate.h).
 */
#define _GNU_SOURCE
#include "tool_migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_util.h"

static const char *checked(const char *t, const char *from)
{
	size_t n = strlen(t);
	if (n == 0)
		tool_die("%s: the token is empty", from);
	if (n > 400)
		tool_die("%s: the token is longer than 400 characters", from);
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			tool_die("%s: the token holds spaces or control characters", from);
	return t;
}

const char *tool_token(const char *opt_token, const char *opt_token_file)
{
	if (opt_token)
		return checked(opt_token, "--token");
	if (opt_token_file) {
		static char buf[512];
		FILE *f = fopen(opt_token_file, "re");
		if (!f)
			tool_die("--token-file %s: %s", opt_token_file, strerror(errno));
		if (!fgets(buf, sizeof buf, f))
			buf[0] = '\0';
		fclose(f);
		buf[strcspn(buf, "\r\n")] = '\0';
		return checked(buf, "--token-file");
	}
	const char *env = getenv("WASP_MIGRATE_TOKEN");
	if (env && *env)
		return checked(env, "WASP_MIGRATE_TOKEN");
	return NULL;
}
