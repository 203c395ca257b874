/*
 * tool_migrate.c: the bearer token of a migration (tool_migrate.h).
 */
#define _GNU_SOURCE
#include "tool_migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	/* Refused, not warned about: a warning scrolls by, and a short token
	 * falls to guessing (the receiver slows guesses down, it cannot stop
	 * them). */
	if (n < TOOL_TOKEN_MIN)
		tool_die("%s: the token has %zu characters, at least %d are needed "
			 "(make one with: head -c 18 /dev/urandom | base64)",
			 from, n, TOOL_TOKEN_MIN);
	return t;
}

const char *tool_token(const char *opt_token, const char *opt_token_file)
{
	if (opt_token)
		return checked(opt_token, "--token");
	if (opt_token_file) {
		static char buf[512];
		const char *f = opt_token_file;
		int fd = open(f, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0)
			tool_die("--token-file %s: %s", f, strerror(errno));
		if (!S_ISREG(st.st_mode))
			tool_die("--token-file %s: not a regular file", f);
		/* As ssh with a private key: a secret others can read is no
		 * secret. Checked on the open file, so no rename slips in. */
		if (st.st_mode & 077)
			tool_die("--token-file %s: group or others have access (mode %04o); "
				 "fix it with: chmod 600 %s",
				 f, (unsigned)(st.st_mode & 07777), f);
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n < 0)
			tool_die("--token-file %s: %s", f, strerror(errno));
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
		return checked(buf, "--token-file");
	}
	const char *env = getenv("WASP_MIGRATE_TOKEN");
	if (env && *env)
		return checked(env, "WASP_MIGRATE_TOKEN");
	return NULL;
}
