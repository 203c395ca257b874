/*
 * args.c: the argument buffer as argc/argv.
 *
 * The host's argument is opaque bytes; by convention (wasp-run `-- A B`) it
 * is NUL-separated strings. One WASP_HC_GET_ARG into a static buffer covers
 * the usual case; a longer argument is fetched again into the heap.
 */
#include "wasp_guest.h"

#define SMALL_ARG 1024
#define SMALL_ARGV 32

static int argc_cached = -1;
static char **argv_cached;

static void load_args(void)
{
	static char small[SMALL_ARG];
	static char *small_argv[SMALL_ARGV];
	char *buf = small;
	int64_t len = wasp_get_arg(small, sizeof small);

	argc_cached = 0;
	argv_cached = small_argv;
	small_argv[0] = NULL;
	if (len <= 0)
		return; /* no argument, or the host refused */
	if ((uint64_t)len >= sizeof small) {
		/* Room for a terminating NUL the host may not have sent. */
		char *big = malloc((size_t)len + 1);

		if (big && wasp_get_arg(big, (size_t)len) == len)
			buf = big;
		else
			len = sizeof small - 1; /* keep what fits */
	}
	buf[len] = '\0';

	/* "A\0B\0" and "A\0B" both mean two arguments; "\0" means one empty one. */
	int n = 0;
	for (int64_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			n++;
	if (buf[len - 1] != '\0')
		n++;

	char **argv = small_argv;
	if (n + 1 > SMALL_ARGV) {
		argv = malloc(((size_t)n + 1) * sizeof *argv);
		if (!argv) {
			argv = small_argv;
			n = SMALL_ARGV - 1;
		}
	}
	char *p = buf;
	for (int i = 0; i < n; i++) {
		argv[i] = p;
		p += strlen(p) + 1;
	}
	argv[n] = NULL;
	argc_cached = n;
	argv_cached = argv;
}

int wasp_args(char ***argv)
{
	if (argc_cached < 0)
		load_args();
	if (argv)
		*argv = argv_cached;
	return argc_cached;
}
