/*
 * serve: embedding a workload in a C service. A pool of virtines runs a
 * program that serves calls (`js --serve app.js`, `lua --serve app.lua`,
 * `sqlite --serve db`, any program that calls wasp_serve()), and each
 * line of stdin becomes one wasp_call(): its result is printed, then a
 * newline. Every call starts from the snapshot the program took once
 * initialised, so no call pays for its start-up or sees another's state.
 *
 *   serve [--dir DIR] [-m MiB] [--size N] PROGRAM [ARG...]
 *
 * Moving a call to another process (docs/workloads.md): with
 * `--park K FILE`, line K (from 1) is not called here: a virtine of the
 * pool is handed that argument and saved, ready to run, as the checkpoint
 * FILE, and the pool serves the other lines on; `serve --resume FILE`, in
 * any process on any host, restores it and prints that call's result.
 *
 * Exit: 0, 1 when a call or the pool failed (said on stderr), 2 for bad
 * usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ckpt.h>
#include <vmm.h>

#define OUT_MAX (4u << 20)

static int usage(void)
{
	fputs("usage: serve [--dir DIR] [-m MiB] [--size N] [--park K FILE] PROGRAM [ARG...]\n"
	      "       serve [--dir DIR] --resume FILE\n", stderr);
	return 2;
}

static int print_result(const void *out, size_t len)
{
	if (fwrite(out, 1, len, stdout) != len || putchar('\n') == EOF || fflush(stdout)) {
		fprintf(stderr, "serve: writing the result: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* Saves a pool virtine that holds argument `in`, ready to run, to `path`. */
static int park(struct wasp_pool *p, const char *in, size_t len, const char *path)
{
	struct wasp_virtine *v;
	int r = wasp_pool_get(p, &v);
	if (r < 0)
		return r;
	if ((r = wasp_pool_set_arg(p, v, in, len)) == 0) {
		struct wasp_save_opts so = {0};
		r = wasp_ckpt_save_file(v, &so, path, NULL);
	}
	/* It never ran: the pool resets it and serves on with it. */
	wasp_pool_put(p, v);
	return r;
}

/* Restores a parked call and runs it to its end: its result. */
static int resume(const struct wasp_config *cfg, const char *path)
{
	struct wasp_restore_opts ro = {.config = cfg};
	struct wasp_virtine *v;
	struct wasp_exit e;
	if (wasp_ckpt_restore_file(&ro, path, &v, NULL) < 0 ||
	    wasp_virtine_run(v, 0, &e) < 0) {
		fprintf(stderr, "serve: %s: %s\n", path, wasp_last_error());
		return 1;
	}
	int rc = 1;
	size_t len = 0;
	const void *ret = wasp_virtine_ret(v, &len);
	if (e.reason != WASP_EXIT_EXITED || e.code != 0)
		fprintf(stderr, "serve: %s: the call ended in %s (code %lld)\n", path,
			wasp_exit_reason_name(e.reason), (long long)e.code);
	else if (!ret)
		fprintf(stderr, "serve: %s: the call gave no result\n", path);
	else
		rc = print_result(ret, len < OUT_MAX ? len : OUT_MAX);
	wasp_virtine_destroy(v);
	return rc;
}

int main(int argc, char **argv)
{
	struct wasp_pool_config c;
	wasp_pool_config_init(&c);
	c.vm.mem_size = 256u << 20;
	c.vm.no_stdin = true; /* stdin is ours: the calls */
	c.size = 2;
	const char *park_path = NULL, *resume_path = NULL;
	long park_at = 0;
	int i = 1;
	/* Options, each with a value (--park with two), before the program. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val)
			return usage();
		if (!strcmp(a, "--dir"))
			c.vm.sandbox_dir = val;
		else if (!strcmp(a, "-m"))
			c.vm.mem_size = strtoul(val, NULL, 10) << 20;
		else if (!strcmp(a, "--size"))
			c.size = (unsigned)strtoul(val, NULL, 10);
		else if (!strcmp(a, "--resume"))
			resume_path = val;
		else if (!strcmp(a, "--park") && i + 2 < argc)
			park_at = strtol(val, NULL, 10), park_path = argv[i + 2], i++;
		else
			return usage();
		i += 2;
	}
	if (resume_path)
		return i == argc ? resume(&c.vm, resume_path) : usage();
	if (i == argc || !c.vm.mem_size || !c.size)
		return usage();
	c.image_path = argv[i];
	c.argv = (const char *const *)&argv[i];
	c.allow = c.vm.sandbox_dir ? "get_arg,set_ret,snapshot,console_write,open"
				   : "get_arg,set_ret,snapshot,console_write";
	struct wasp_pool *p;
	if (wasp_pool_create(&c, &p) < 0) {
		fprintf(stderr, "serve: %s: %s\n", argv[i], wasp_last_error());
		return 1;
	}
	static char out[OUT_MAX];
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	for (long k = 1; rc == 0 && (n = getline(&line, &cap, stdin)) >= 0; k++) {
		if (n && line[n - 1] == '\n')
			line[--n] = 0;
		if (k == park_at) {
			if (park(p, line, (size_t)n, park_path) < 0) {
				fprintf(stderr, "serve: parking call %ld: %s\n", k, wasp_last_error());
				rc = 1;
			}
			continue;
		}
		int len = wasp_call(p, line, (size_t)n, out, sizeof out, NULL);
		if (len < 0) {
			fprintf(stderr, "serve: call %ld: %s\n", k, wasp_last_error());
			rc = 1;
		} else {
			rc = print_result(out, (size_t)len);
		}
	}
	free(line);
	wasp_pool_destroy(p);
	return rc;
}
