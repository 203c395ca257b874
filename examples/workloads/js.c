/*
 * js: a JavaScript virtine. Duktape (Debian's duktape-dev ships its source,
 * compiled into this program at build time) with three natives:
 *   print(...)             its arguments, space-separated, and a newline, to
 *                          stdout (flushed, so progress shows as it happens)
 *   readFile(path)         a file's contents as a string
 *   writeFile(path, text)  writes (replaces) a file
 *   appendFile(path, text) appends to a file (made if missing)
 *   readStdin(n)           at most n bytes of stdin ('' at its end)
 *
 *   js FILE [ARG...]       runs FILE; the global `args` holds the ARGs
 *   js --serve FILE        runs FILE, then serves calls: each call's argument
 *                          (a string) goes to FILE's global handle(input),
 *                          whose value, as a string, is the result
 *
 * Paths are the sandbox's when it runs in a virtine (wasp-run --dir DIR).
 * A script's uncaught error goes to stderr with its stack; exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duktape.h"
#include "workload.h"

static duk_context *ctx;

static duk_ret_t js_print(duk_context *c)
{
	duk_idx_t n = duk_get_top(c);
	for (duk_idx_t i = 0; i < n; i++) {
		if (i)
			fputc(' ', stdout);
		fputs(duk_safe_to_string(c, i), stdout);
	}
	fputc('\n', stdout);
	fflush(stdout);
	return 0;
}

static duk_ret_t js_read_file(duk_context *c)
{
	const char *path = duk_require_string(c, 0);
	size_t len;
	char *buf = workload_read_file(path, &len);
	if (!buf)
		return duk_error(c, DUK_ERR_ERROR, "readFile %s: %s", path, strerror(errno));
	duk_push_lstring(c, buf, len);
	free(buf);
	return 1;
}

static duk_ret_t put_file(duk_context *c, const char *mode, const char *what)
{
	const char *path = duk_require_string(c, 0);
	duk_size_t len;
	const char *text = duk_to_lstring(c, 1, &len);
	FILE *f = fopen(path, mode);
	if (!f)
		return duk_error(c, DUK_ERR_ERROR, "%s %s: %s", what, path, strerror(errno));
	size_t put = fwrite(text, 1, len, f);
	if (fclose(f) != 0 || put != len)
		return duk_error(c, DUK_ERR_ERROR, "%s %s: %s", what, path, strerror(errno));
	return 0;
}

static duk_ret_t js_write_file(duk_context *c)
{
	return put_file(c, "wb", "writeFile");
}

static duk_ret_t js_append_file(duk_context *c)
{
	return put_file(c, "ab", "appendFile");
}

static duk_ret_t js_read_stdin(duk_context *c)
{
	duk_uint_t n = duk_require_uint(c, 0);
	char *buf = duk_push_fixed_buffer(c, n ? n : 1);
	size_t got = n ? fread(buf, 1, n, stdin) : 0;
	duk_push_lstring(c, buf, got);
	return 1;
}

/* Prints the error on top of the stack, with its stack trace. */
static void report(const char *what)
{
	fprintf(stderr, "js: %s: %s\n", what, duk_safe_to_stacktrace(ctx, -1));
}

/* Compiles and runs the file; 0 or -1 (reported). */
static int run_file(const char *path)
{
	size_t len;
	char *src = workload_read_file(path, &len);
	if (!src) {
		fprintf(stderr, "js: %s: %s\n", path, strerror(errno));
		return -1;
	}
	duk_push_string(ctx, path);
	int r = duk_pcompile_lstring_filename(ctx, 0, src, len);
	free(src);
	if (r == 0)
		r = duk_pcall(ctx, 0);
	if (r != 0) {
		report(path);
		return -1;
	}
	duk_pop(ctx);
	return 0;
}

static size_t handle(const void *in, size_t in_len, void *out, size_t out_cap)
{
	if (!duk_get_global_string(ctx, "handle")) {
		fputs("js: the script defines no handle(input)\n", stderr);
		exit(1);
	}
	duk_push_lstring(ctx, in, in_len);
	if (duk_pcall(ctx, 1) != 0) {
		report("handle");
		exit(1);
	}
	duk_size_t n;
	const char *s = duk_safe_to_lstring(ctx, -1, &n);
	size_t len = workload_result(out, out_cap, s, n);
	duk_pop(ctx);
	return len;
}

int main(int argc, char **argv)
{
	int serve, file = workload_script_arg(argc, argv, &serve);
	if (!file)
		return 2;
	if (!(ctx = duk_create_heap_default())) {
		fputs("js: cannot create a heap: out of memory\n", stderr);
		return 1;
	}
	static const duk_function_list_entry natives[] = {
		{"print", js_print, DUK_VARARGS},
		{"readFile", js_read_file, 1},
		{"writeFile", js_write_file, 2},
		{"appendFile", js_append_file, 2},
		{"readStdin", js_read_stdin, 1},
		{NULL, NULL, 0},
	};
	duk_push_global_object(ctx);
	duk_put_function_list(ctx, -1, natives);
	duk_pop(ctx);
	duk_idx_t args = duk_push_array(ctx);
	for (int i = 2 + serve; i < argc; i++) {
		duk_push_string(ctx, argv[i]);
		duk_put_prop_index(ctx, args, (duk_uarridx_t)(i - 2 - serve));
	}
	duk_put_global_string(ctx, "args");

	int rc = run_file(argv[file]) ? 1 : 0;
	if (rc == 0 && serve)
		rc = workload_serve("js", handle);
	fflush(stdout);
	duk_destroy_heap(ctx);
	return rc;
}
