/*
 * fig14_js: the guest of the Wasp paper's Fig. 14 rows (wasp-bench-apps),
 * a static Linux program linked with Duktape (fig14_js.h). One request:
 *
 *   create the heap, register ret()        the snapshot point is after this
 *   take the request's string              (from the pool, at the snapshot)
 *   evaluate the script; ret() gets the base64 of the string
 *   teardown:    destroy the heap, then hand the result back
 *   no teardown: ret() hands the result back at once
 *
 *   fig14_js teardown|keep
 *
 * In a pool, handing the result back (WASP_HC_SET_RET) ends the call, so
 * with `keep` the heap is never destroyed: the paper's "no teardown". The
 * pool decides where a call starts: with snapshots off at the program's
 * entry (C library start-up, heap creation, every request), with them on
 * right after the heap's creation. Run natively (outside a virtine) it
 * serves one request: stdin in, the result on stdout.
 * Exit: 0, 1 on an error (said on stderr), 2 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fig14_js.h"
#include "wasp_linux.h"

static char in[1 << 16], out[1 << 17];
static size_t out_len;
static int keep; /* hand the result back before the teardown */

static void on_ret(const char *s, size_t n)
{
	out_len = n < sizeof out ? n : sizeof out;
	memcpy(out, s, out_len);
	if (keep)
		wasp_linux_set_ret(out, out_len); /* in a pool the call ends here */
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "teardown") && strcmp(argv[1], "keep"))) {
		fputs("usage: fig14_js teardown|keep\n", stderr);
		return 2;
	}
	keep = !strcmp(argv[1], "keep");
	duk_context *ctx = fig14_heap(on_ret);
	if (!ctx) {
		fputs("fig14_js: cannot create a heap\n", stderr);
		return 1;
	}
	fflush(NULL);
	long n = wasp_linux_snapshot(in, sizeof in - 1);
	if (n == 0)
		n = wasp_linux_get_arg(in, sizeof in - 1);
	if (n == -ENOSYS) /* not in a virtine */
		n = (long)fread(in, 1, sizeof in - 1, stdin);
	if (n < 0) {
		fprintf(stderr, "fig14_js: no argument: error %ld\n", n);
		return 1;
	}
	size_t len = (size_t)n < sizeof in - 1 ? (size_t)n : sizeof in - 1;
	char err[256];
	if (fig14_eval(ctx, in, len, err, sizeof err)) {
		fprintf(stderr, "fig14_js: %s\n", err);
		return 1;
	}
	if (!keep)
		duk_destroy_heap(ctx);
	if (wasp_linux_set_ret(out, out_len) == -ENOSYS &&
	    (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout))) {
		fprintf(stderr, "fig14_js: writing the result: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
