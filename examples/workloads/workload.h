/*
 * workload.h: what the four workload programs (js, lua, sqlite, crypto)
 * share: reading a whole file, and serving calls.
 *
 * A workload serves calls with `PROGRAM --serve ...`: it initialises
 * itself (creates its interpreter, loads the script, opens the database),
 * then calls workload_serve(). Under a wasp pool that is the snapshot
 * point and each wasp_call() runs the handler once from there
 * (guest/wasp_linux.h). Run natively, the same binary serves one call
 * instead: the whole of stdin is the argument and the result goes to
 * stdout, so a test can compare the virtine's answer with the native one.
 */
#ifndef WORKLOAD_H
#define WORKLOAD_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasp_linux.h"

/* The largest argument a call takes (the pool's limit) and result it gives. */
#define WORKLOAD_ARG_MAX (1u << 20)
#define WORKLOAD_RET_MAX (4u << 20)

/* `PROGRAM FILE [ARG...]` or `PROGRAM --serve FILE`: sets *serve and
 * returns FILE's index in argv, or 0 after printing the usage. */
static inline int workload_script_arg(int argc, char **argv, int *serve)
{
	*serve = argc > 1 && !strcmp(argv[1], "--serve");
	if (argc >= 2 + *serve)
		return 1 + *serve;
	fprintf(stderr, "usage: %s FILE [ARG...] | %s --serve FILE\n", argv[0], argv[0]);
	return 0;
}

/* The whole of `f`, NUL-terminated (not counted in *len); NULL with errno. */
static inline char *workload_slurp(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		char *bigger = realloc(buf, cap * 2);
		if (!bigger) {
			free(buf);
			buf = NULL;
			errno = ENOMEM;
			break;
		}
		buf = bigger;
		cap *= 2;
	}
	if (buf && ferror(f)) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	if (buf) {
		buf[n] = 0;
		*len = n;
	}
	return buf;
}

/* The whole file at `path` (as workload_slurp); NULL with errno. */
static inline char *workload_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = workload_slurp(f, len);
	int e = errno;
	fclose(f);
	errno = e;
	return buf;
}

static char workload_in[WORKLOAD_ARG_MAX + 1];
static char workload_out[WORKLOAD_RET_MAX];

/* Serves calls with `handler` (see the top of this file). The argument is
 * NUL-terminated for the handler's convenience (the buffer is zero at
 * the snapshot, and each call starts there). Returns the program's exit
 * status: 0 once the call is answered, 1 on an error (said on stderr).
 * Under a pool it never returns: the call ends at the result. */
static inline int workload_serve(const char *prog, wasp_linux_handler handler)
{
	long r = wasp_serve(handler, workload_in, WORKLOAD_ARG_MAX, workload_out, sizeof workload_out);
	if (r >= 0)
		return 0; /* a virtine outside a pool (a restored one) ran on */
	if (r != -ENOSYS) {
		fprintf(stderr, "%s: serving a call: error %ld\n", prog, r);
		return 1;
	}
	size_t n = fread(workload_in, 1, WORKLOAD_ARG_MAX, stdin);
	workload_in[n] = 0;
	size_t len = handler(workload_in, n, workload_out, sizeof workload_out);
	if (fwrite(workload_out, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "%s: writing the result: %s\n", prog, strerror(errno));
		return 1;
	}
	return 0;
}

/* Copies s (n bytes) into a result buffer of `cap`; the length handed back. */
static inline size_t workload_result(void *out, size_t cap, const void *s, size_t n)
{
	if (n > cap)
		n = cap;
	memcpy(out, s, n);
	return n;
}

#endif /* WORKLOAD_H */
