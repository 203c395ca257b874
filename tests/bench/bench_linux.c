/*
 * bench_linux.c: wasp-bench-linux, static Linux programs in virtines
 * (docs/linux.md), each row against its baseline measured in the same
 * run, rounds interleaved so drift touches both alike:
 *
 *   1. one trivial system call (getppid) of a static program against one
 *      trivial ring-3 hypercall (the clock) of a freestanding C image, both
 *      in-process through the library: a run of N calls minus a run of
 *      none, over N;                         ratio syscall/hypercall
 *   2. a compute-bound static program, the same binary, under wasp-run
 *      against run directly on the host;     ratio linux_compute/native
 *   3. wasp-run of a static glibc hello world against wasp-run of the
 *      freestanding C hello image;           ratio linux_start/image_start
 *
 * Whole commands are timed from spawn to exit; their output is checked
 * (the same bytes natively and in the virtine), never their time.
 *
 * Usage: wasp-bench-linux [--quick] [--csv PATH]
 * Exit status: 0 done, 1 a step failed, 2 bad usage, 77 no usable /dev/kvm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_rows.h"
#include "vmm.h"

extern char **environ;

struct params {
	int rounds, calls, compute_rounds, start_rounds;
	const char *compute_n;
};
static const struct params full = {.rounds = 9, .calls = 2000, .compute_rounds = 5,
				   .start_rounds = 30, .compute_n = "60000000"};
static const struct params quick = {.rounds = 3, .calls = 300, .compute_rounds = 2,
				    .start_rounds = 4, .compute_n = "3000000"};
static struct params P;

/* ---- 1. per call ---------------------------------------------------------- */

/* Time of one run of the loaded virtine (which must exit 0). */
static uint64_t run_once(struct wasp_virtine *v, const char *what)
{
	struct wasp_exit e;
	uint64_t t0 = now_ns();
	check(wasp_virtine_run(v, 0, &e), what);
	uint64_t t = now_ns() - t0;
	if (e.reason != WASP_EXIT_EXITED || e.code != 0)
		die("%s: ended %s (code %lld)", what, wasp_exit_reason_name(e.reason),
		    (long long)e.code);
	return t;
}

static uint64_t linux_run(struct wasp_virtine *v, const char *n)
{
	const char *argv[] = {WASP_BENCH_SYSLOOP, n, NULL};
	check(wasp_virtine_load_linux(v, WASP_BENCH_SYSLOOP, argv, NULL), "load sysloop");
	return run_once(v, "sysloop");
}

static uint64_t image_run(struct wasp_virtine *v, const char *n)
{
	check(wasp_virtine_set_arg(v, n, strlen(n) + 1), "hcloop argument");
	check(wasp_virtine_load_file(v, WASP_BENCH_HCLOOP_IMAGE, 0, WASP_MODE_AUTO), "load hcloop");
	return run_once(v, "hcloop");
}

static void per_call(void)
{
	struct wasp_config c;
	wasp_config_init(&c);
	c.mem_size = 64 << 20;
	struct wasp_virtine *lv, *iv;
	check(wasp_virtine_create(&c, &lv), "create");
	check(wasp_virtine_create(&c, &iv), "create");
	check(wasp_virtine_allow(iv, "clock,get_arg"), "allow");
	char n[32];
	snprintf(n, sizeof n, "%d", P.calls);
	cur_section = "one call: a static program's getppid() against a ring-3 hypercall";
	/* warm-up: page cache, first-touch faults, the stub's privilege probe */
	linux_run(lv, n);
	image_run(iv, n);
	for (int r = 0; r < P.rounds; r++) {
		uint64_t ln = linux_run(lv, n), l0 = linux_run(lv, "0");
		uint64_t in = image_run(iv, n), i0 = image_run(iv, "0");
		add_ns(row("syscall_getppid"), ln > l0 ? (ln - l0) / (uint64_t)P.calls : 0);
		add_ns(row("hypercall_clock_ring3"), in > i0 ? (in - i0) / (uint64_t)P.calls : 0);
	}
	wasp_virtine_destroy(lv);
	wasp_virtine_destroy(iv);
}

/* ---- 2, 3. whole commands ------------------------------------------------------ */


static void same_output(const char *what, const char *a, const char *b)
{
	if (strcmp(a, b))
		die("%s: the outputs differ: '%s' and '%s'", what, a, b);
}

static void compute(void)
{
	cur_section = "a compute-bound static program: wasp-run against the host";
	char *native[] = {WASP_BENCH_COMPUTE, (char *)P.compute_n, NULL};
	char *virt[] = {WASP_BENCH_WASP_RUN, WASP_BENCH_COMPUTE, "--", (char *)P.compute_n, NULL};
	for (int r = 0; r < P.compute_rounds; r++) {
		char *a, *b;
		add_ns(row("compute_native"), spawn_timed(native, &a));
		add_ns(row("compute_wasp_run"), spawn_timed(virt, &b));
		same_output("compute", a, b);
		free(a);
		free(b);
	}
}

static void start(void)
{
	cur_section = "start: wasp-run of a static glibc hello against the C hello image";
	char *prog[] = {WASP_BENCH_WASP_RUN, WASP_BENCH_HELLO, NULL};
	char *img[] = {WASP_BENCH_WASP_RUN, WASP_BENCH_HELLO_IMAGE, NULL};
	for (int r = -1; r < P.start_rounds; r++) {
		char *a, *b;
		uint64_t ta = spawn_timed(prog, &a), tb = spawn_timed(img, &b);
		same_output("hello", a, b);
		if (r >= 0) { /* the first round warms the page cache */
			add_ns(row("start_linux_hello"), ta);
			add_ns(row("start_image_hello"), tb);
		}
		free(a);
		free(b);
	}
}

/* ---- output ------------------------------------------------------------------- */

static void write_table(FILE *f, bool csv)
{
	const char *section = NULL;
	if (csv)
		fprintf(f, "name,median_us,p10_us,p90_us,min_us,iterations\n");
	else
		fprintf(f, "%-24s %12s %12s %12s %12s %6s\n", "name", "median_us", "p10_us", "p90_us",
			"min_us", "runs");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		if (csv) {
			fprintf(f, "%s,%.3f,%.3f,%.3f,%.3f,%zu\n", r->name, r->median, r->p10, r->p90,
				r->min, r->n);
			continue;
		}
		if (r->section != section)
			fprintf(f, "-- %s\n", section = r->section);
		fprintf(f, "%-24s %12.2f %12.2f %12.2f %12.2f %6zu\n", r->name, r->median, r->p10,
			r->p90, r->min, r->n);
	}
}

int main(int argc, char **argv)
{
	const char *csv_path = NULL;
	bench_prog = "wasp-bench-linux";
	P = full;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			P = quick;
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv_path = argv[++i];
		else {
			fprintf(stderr, "usage: wasp-bench-linux [--quick] [--csv PATH]\n");
			return 2;
		}
	}
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("wasp-bench-linux: SKIP: /dev/kvm is not available (%s)\n", strerror(errno));
		return 77;
	}
	per_call();
	compute();
	start();
	for (size_t i = 0; i < nrows; i++)
		finish(&rows[i]);
	write_table(stdout, false);
	if (csv_path) {
		FILE *f = fopen(csv_path, "w");
		if (!f)
			die("%s: %s", csv_path, strerror(errno));
		write_table(f, true);
		if (fclose(f))
			die("%s: %s", csv_path, strerror(errno));
	}
	printf("ratio syscall/hypercall %.2f (target 1.5)\n",
	       find("syscall_getppid")->median / find("hypercall_clock_ring3")->median);
	printf("ratio linux_compute/native %.2f (target 1.1)\n",
	       find("compute_wasp_run")->median / find("compute_native")->median);
	printf("ratio linux_start/image_start %.2f (target 1.5)\n",
	       find("start_linux_hello")->median / find("start_image_hello")->median);
	return 0;
}
