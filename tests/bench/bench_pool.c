/*
 * bench_pool.c: wasp-bench-pool, the virtine pool and snapshot starts
 * (docs/pool.md) against the floor, in one run.
 *
 *   1. the floor, as wasp-bench-core measures it: one bare KVM_RUN round
 *      trip of an `out` exit with raw KVM ioctls (real mode, long mode at
 *      ring 0 and at ring 3); the cheapest median is the floor. Beside it
 *      the other ring-3 exits (MMIO write, int3 under guest debug): the
 *      cheapest ring-3 one is floor_ring3, the floor of a call into a C
 *      virtine, which runs at ring 3;
 *   2. the three-byte virtine `out 0xFA, eax` through a pool: get + run with
 *      a ready virtine (the reset of the previous one finished off the
 *      caller's path), each part alone, the get + run + put cycle, and
 *      back-to-back calls that also wait for resets (sustained rate);
 *   3. fib(0) as a C virtine (guest/examples/pool_fib.c) through a pool
 *      with a snapshot: wasp_call(), and its parts (get, argument, run,
 *      result + put), with the exits per call; the same without snapshot;
 *   4. start latency against image size: a 32-byte and a 16 MiB real-mode
 *      image, through a pool (get + run) and by loading into an existing
 *      virtine (load + run), plus pool creation;
 *   5. context baselines: virtine create (16 MiB), pthread create+join,
 *      fork+waitpid.
 * The pool's own thread reports its reset times (wasp_pool_stats), which
 * are printed beside the rows. Rounds spread drift over the rows; nothing
 * asserts on time, everything on behaviour (exit codes, results).
 *
 * Usage: wasp-bench-pool [--quick] [--csv PATH] [--image PATH]
 * Exit status: 0 done, 1 a step failed, 2 bad usage, 77 no usable /dev/kvm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_floor.h"
#include "bench_rows.h"
#include "vmm.h"

#define EXIT_SKIP 77

#ifndef WASP_BENCH_FIB_IMAGE
#define WASP_BENCH_FIB_IMAGE "pool_fib.bin"
#endif

struct params {
	int rounds;
	int floor_iters, floor_warmup;
	int call_iters, call_warmup;    /* pool rows, per round share */
	int big_iters;                  /* image-size rows */
	int proc_iters;                 /* create, pthread, fork */
};

static const struct params full_params = {
	.rounds = 5,
	.floor_iters = 20000, .floor_warmup = 200,
	.call_iters = 3000, .call_warmup = 30,
	.big_iters = 300,
	.proc_iters = 300,
};

static const struct params quick_params = {
	.rounds = 2,
	.floor_iters = 2000, .floor_warmup = 50,
	.call_iters = 400, .call_warmup = 10,
	.big_iters = 40,
	.proc_iters = 40,
};

static struct params P;
static const char *fib_image = WASP_BENCH_FIB_IMAGE;

static int share(int total)
{
	return (total + P.rounds - 1) / P.rounds;
}

/* ---- 1. the floor (raw KVM, bench_floor.c) ------------------------------------ */

static int kvm_fd = -1;
static const char *const *floor_names = bench_floor_names;

static void floor_bench(enum bench_floor_mode mode)
{
	struct row *rw = row(floor_names[mode]);
	int iters = share(P.floor_iters);
	uint64_t *ns = malloc((size_t)iters * sizeof *ns);
	char err[256];
	if (!ns)
		die("out of memory");
	if (bench_floor_run(kvm_fd, mode, P.floor_warmup, iters, ns, err, sizeof err) < 0)
		die("floor: %s", err);
	for (int i = 0; i < iters; i++)
		add_ns(rw, ns[i]);
	free(ns);
}

/* The ring-3 exits other than `out` (kvm_out_ring3_long is a floor
 * candidate above already); one this KVM lacks is noted once and left out. */
static const char *ring3_missing[BENCH_RING3_EXITS];
static char ring3_why[BENCH_RING3_EXITS][256];

static void ring3_bench(enum bench_ring3_exit kind)
{
	if (ring3_missing[kind])
		return;
	int iters = share(P.floor_iters);
	uint64_t *ns = malloc((size_t)iters * sizeof *ns);
	if (!ns)
		die("out of memory");
	int r = bench_ring3_run(kvm_fd, kind, P.floor_warmup, iters, ns, ring3_why[kind],
				sizeof ring3_why[kind]);
	if (r == -EOPNOTSUPP) {
		ring3_missing[kind] = ring3_why[kind];
	} else if (r < 0) {
		die("%s", ring3_why[kind]);
	} else {
		struct row *rw = row(bench_ring3_names[kind]);
		for (int i = 0; i < iters; i++)
			add_ns(rw, ns[i]);
	}
	free(ns);
}

static void round_floor(void)
{
	cur_section = "floor: raw KVM_RUN round trip of an `out` exit (no libwasp)";
	for (int m = 0; m < BENCH_FLOOR_MODES; m++)
		floor_bench((enum bench_floor_mode)m);
	cur_section = "ring-3 exits (raw KVM, long mode, CPL 3): the cheapest is floor_ring3";
	for (int k = 0; k < BENCH_RING3_EXITS; k++)
		if (k != BENCH_RING3_OUT)
			ring3_bench((enum bench_ring3_exit)k);
}

/* ---- pools ------------------------------------------------------------------ */

static const uint8_t exit3[] = {0x66, 0xe7, 0xfa};
static struct wasp_pool *pool3, *pool_fib, *pool_fib_nosnap, *pool_small, *pool_big;
static uint8_t *big_image;
#define BIG_IMAGE (16u << 20)
#define BIG_MEM (32u << 20)

static struct wasp_pool *make_pool(const void *image, size_t len, const char *path,
				   size_t mem, enum wasp_pool_snapshot snap, const char *what)
{
	struct wasp_pool_config c;
	struct wasp_pool *p;
	wasp_pool_config_init(&c);
	c.vm.mem_size = mem;
	c.image = image;
	c.image_len = len;
	c.image_path = path;
	c.size = 2;
	c.snapshot = snap;
	c.vm.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	check(wasp_pool_create(&c, &p), what);
	check(wasp_pool_fill(p), what);
	return p;
}

static void expect_exit0(const struct wasp_exit *e, const char *what)
{
	if (e->reason != WASP_EXIT_EXITED || e->code != 0)
		die("%s: run ended %s (code %lld, fault %s at 0x%llx)", what,
		    wasp_exit_reason_name(e->reason), (long long)e->code,
		    wasp_fault_kind_name(e->fault.kind), (unsigned long long)e->fault.regs.rip);
}

/* The three-byte virtine through a pool, step by step. */
static void round_pool3(void)
{
	cur_section = "three-byte virtine `out 0xFA, eax` through a pool (real mode, no snapshot)";
	struct row *r_get = row("pool3_get"), *r_run = row("pool3_run"),
		   *r_get_run = row("pool3_get_run"), *r_put = row("pool3_put"),
		   *r_cycle = row("pool3_get_run_put"), *r_sus = row("pool3_sustained_call");
	struct wasp_exit e;
	int iters = share(P.call_iters);

	for (int i = -P.call_warmup; i < iters; i++) {
		struct wasp_virtine *v;
		check(wasp_pool_fill(pool3), "pool3 fill"); /* the last reset is done */
		uint64_t t0 = now_ns();
		check(wasp_pool_get(pool3, &v), "pool3 get");
		uint64_t t1 = now_ns();
		check(wasp_virtine_run(v, 0, &e), "pool3 run");
		uint64_t t2 = now_ns();
		wasp_pool_put(pool3, v);
		uint64_t t3 = now_ns();
		expect_exit0(&e, "pool3");
		if (i >= 0) {
			add_ns(r_get, t1 - t0);
			add_ns(r_run, t2 - t1);
			add_ns(r_get_run, t2 - t0);
			add_ns(r_put, t3 - t2);
			add_ns(r_cycle, t3 - t0);
		}
	}
	/* Back to back in batches of 20: a get finds the previous virtines
	 * still being reset and waits for (or does) a reset. */
	check(wasp_pool_fill(pool3), "pool3 fill");
	for (int b = 0; b < iters / 20; b++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < 20; i++) {
			struct wasp_virtine *v;
			check(wasp_pool_get(pool3, &v), "pool3 get");
			check(wasp_virtine_run(v, 0, &e), "pool3 run");
			wasp_pool_put(pool3, v);
			expect_exit0(&e, "pool3 sustained");
		}
		add_ns(r_sus, (now_ns() - t0) / 20);
	}
}

static void fib_call(struct wasp_pool *p, struct row *r, const char *what)
{
	uint32_t n = 0;
	uint64_t out = 99;
	check(wasp_pool_fill(p), what);
	uint64_t t0 = now_ns();
	int len = wasp_call(p, &n, sizeof n, &out, sizeof out, NULL);
	uint64_t t1 = now_ns();
	if (len != 8 || out != 0)
		die("%s: wasp_call -> %d (%s), result %llu", what, len,
		    len < 0 ? wasp_last_error() : "", (unsigned long long)out);
	if (r)
		add_ns(r, t1 - t0);
}

static uint64_t fib_exits, fib_calls;

static void round_fib(void)
{
	cur_section = "fib(0) as a C virtine (pool_fib.c) through a pool";
	struct row *r_call = row("fib0_call_snapshot"), *r_get = row("fib0_get"),
		   *r_arg = row("fib0_pool_set_arg"), *r_run = row("fib0_run"),
		   *r_put = row("fib0_result_put"), *r_nosnap = row("fib0_call_no_snapshot");
	int iters = share(P.call_iters);

	for (int i = -P.call_warmup; i < iters; i++)
		fib_call(pool_fib, i >= 0 ? r_call : NULL, "fib0");
	/* The same steps as wasp_call(), timed apart. */
	for (int i = -P.call_warmup; i < iters; i++) {
		struct wasp_virtine *v;
		struct wasp_exit e;
		struct wasp_stats s0, s1;
		uint32_t n = 0;
		uint64_t out = 99;
		size_t len;
		check(wasp_pool_fill(pool_fib), "fib0 fill");
		uint64_t t0 = now_ns();
		check(wasp_pool_get(pool_fib, &v), "fib0 get");
		uint64_t t1 = now_ns();
		check(wasp_pool_set_arg(pool_fib, v, &n, sizeof n), "fib0 set_arg");
		uint64_t t2 = now_ns();
		wasp_virtine_stats(v, &s0);
		check(wasp_virtine_run(v, 0, &e), "fib0 run");
		uint64_t t3 = now_ns();
		wasp_virtine_stats(v, &s1);
		const void *ret = wasp_virtine_ret(v, &len);
		if (e.reason != WASP_EXIT_HYPERCALL || e.hypercall.nr != WASP_HC_SET_RET || len != 8)
			die("fib0: run ended %s, result of %zu bytes", wasp_exit_reason_name(e.reason), len);
		memcpy(&out, ret, 8);
		wasp_pool_put(pool_fib, v);
		uint64_t t4 = now_ns();
		if (out != 0)
			die("fib0: result %llu", (unsigned long long)out);
		if (i >= 0) {
			add_ns(r_get, t1 - t0);
			add_ns(r_arg, t2 - t1);
			add_ns(r_run, t3 - t2);
			add_ns(r_put, t4 - t3);
			fib_exits += s1.exits - s0.exits;
			fib_calls++;
		}
	}
	for (int i = -P.call_warmup; i < iters / 4; i++)
		fib_call(pool_fib_nosnap, i >= 0 ? r_nosnap : NULL, "fib0 without snapshot");
}

/* Start latency against image size: the same real-mode exit, padded. */
static void round_image_size(void)
{
	cur_section = "image size: 32 B vs 16 MiB real-mode image (32 MiB guests)";
	struct row *r_ps = row("start_pool_32b"), *r_pb = row("start_pool_16m"),
		   *r_ls = row("load_run_32b"), *r_lb = row("load_run_16m");
	int iters = share(P.big_iters);
	struct wasp_exit e;
	struct wasp_virtine *v;

	for (int i = -2; i < iters; i++) {
		for (int big = 0; big < 2; big++) {
			struct wasp_pool *p = big ? pool_big : pool_small;
			check(wasp_pool_fill(p), "image pool fill");
			uint64_t t0 = now_ns();
			check(wasp_pool_get(p, &v), "image pool get");
			check(wasp_virtine_run(v, 0, &e), "image pool run");
			uint64_t t1 = now_ns();
			wasp_pool_put(p, v);
			expect_exit0(&e, big ? "16 MiB image" : "32-byte image");
			if (i >= 0)
				add_ns(big ? r_pb : r_ps, t1 - t0);
		}
	}
	/* Without a pool: load into an existing virtine, then run. */
	struct wasp_config c;
	wasp_config_init(&c);
	c.mem_size = BIG_MEM;
	check(wasp_virtine_create(&c, &v), "create");
	for (int i = -2; i < iters / 4 + 1; i++) {
		for (int big = 0; big < 2; big++) {
			uint64_t t0 = now_ns();
			check(wasp_virtine_load(v, big_image, big ? BIG_IMAGE : 32, 0, WASP_MODE_REAL),
			      "load");
			check(wasp_virtine_run(v, 0, &e), "run");
			uint64_t t1 = now_ns();
			expect_exit0(&e, "load+run");
			if (i >= 0)
				add_ns(big ? r_lb : r_ls, t1 - t0);
		}
	}
	wasp_virtine_destroy(v);
}

static void *thread_fn(void *arg)
{
	return arg;
}

static void round_baselines(void)
{
	cur_section = "context baselines (Wasp paper, Fig. 8)";
	struct row *r_cr = row("virtine_create_16m"), *r_th = row("pthread_create_join"),
		   *r_fk = row("fork_waitpid");
	int iters = share(P.proc_iters);
	for (int i = -2; i < iters; i++) {
		struct wasp_virtine *v;
		uint64_t t0 = now_ns();
		check(wasp_virtine_create(NULL, &v), "virtine create");
		uint64_t t1 = now_ns();
		wasp_virtine_destroy(v);
		if (i >= 0)
			add_ns(r_cr, t1 - t0);
	}
	for (int i = -2; i < iters; i++) {
		pthread_t t;
		uint64_t t0 = now_ns();
		int err = pthread_create(&t, NULL, thread_fn, NULL);
		if (err)
			die("pthread_create: %s", strerror(err));
		pthread_join(t, NULL);
		uint64_t t1 = now_ns();
		if (i >= 0)
			add_ns(r_th, t1 - t0);
	}
	fflush(NULL);
	for (int i = -2; i < iters; i++) {
		int status;
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid: %s", strerror(errno));
		uint64_t t1 = now_ns();
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			die("fork child status 0x%x", status);
		if (i >= 0)
			add_ns(r_fk, t1 - t0);
	}
}

/* ---- output ------------------------------------------------------------------- */

static double floor_us;
static const char *floor_name;

static void write_table(FILE *f, bool csv)
{
	const char *section = NULL;
	if (csv)
		fprintf(f, "name,median_us,p10_us,p90_us,min_us,iterations,ratio_to_floor\n");
	else
		fprintf(f, "%-26s %10s %10s %10s %10s %7s %8s\n", "name", "median_us", "p10_us",
			"p90_us", "min_us", "iters", "x_floor");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		if (csv) {
			fprintf(f, "%s,%.3f,%.3f,%.3f,%.3f,%zu,%.3f\n", r->name, r->median, r->p10,
				r->p90, r->min, r->n, r->median / floor_us);
			continue;
		}
		if (r->section != section) {
			section = r->section;
			fprintf(f, "-- %s\n", section);
		}
		fprintf(f, "%-26s %10.2f %10.2f %10.2f %10.2f %7zu %8.2f\n", r->name, r->median,
			r->p10, r->p90, r->min, r->n, r->median / floor_us);
	}
}

static void print_pool_stats(const char *name, struct wasp_pool *p)
{
	struct wasp_pool_stats s;
	wasp_pool_stats(p, &s);
	printf("pool %-14s snapshot %-3s init %8.1f us, %5llu resets, %6.1f us and %5.1f pages "
	       "per reset, %llu pristine pages, %llu gets found none ready (%llu reset one "
	       "themselves)\n",
	       name, s.snapshot ? "yes" : "no", (double)s.init_ns / 1e3,
	       (unsigned long long)s.resets,
	       s.resets ? (double)s.reset_ns / 1e3 / (double)s.resets : 0.0,
	       s.resets ? (double)s.reset_pages / (double)s.resets : 0.0,
	       (unsigned long long)s.pristine_pages, (unsigned long long)s.get_waits,
	       (unsigned long long)s.inline_resets);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: wasp-bench-pool [--quick] [--csv PATH] [--image PATH]\n"
		   "  --quick       fewer iterations (well under a minute)\n"
		   "  --csv PATH    also write the rows as CSV to PATH\n"
		   "  --image PATH  the fib virtine (default: the built pool_fib.bin)\n");
}

int main(int argc, char **argv)
{
	const char *csv_path = NULL;
	bool quick = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv_path = argv[++i];
		else if (!strcmp(argv[i], "--image") && i + 1 < argc)
			fib_image = argv[++i];
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wasp-bench-pool: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	bench_prog = "wasp-bench-pool";
	P = quick ? quick_params : full_params;
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		fprintf(stderr, "wasp-bench-pool: /dev/kvm: %s; skipping: this benchmark needs KVM\n",
			strerror(errno));
		return EXIT_SKIP;
	}
	FILE *csv = NULL;
	if (csv_path && !(csv = fopen(csv_path, "w")))
		die("%s: %s", csv_path, strerror(errno));
	/* The environment must not change what is measured. */
	unsetenv("WASP_NO_SNAPSHOT");

	printf("wasp-bench-pool (%s): %d rounds; times in microseconds (CLOCK_MONOTONIC)\n",
	       quick ? "quick" : "full", P.rounds);
	fflush(stdout);
	uint64_t t0 = now_ns();

	/* A 16 MiB image that is all code bytes (not zeros a memfd could skip):
	 * the exit, then `nop`s the run never reaches. */
	big_image = malloc(BIG_IMAGE);
	if (!big_image)
		die("out of memory");
	memset(big_image, 0x90, BIG_IMAGE);
	memcpy(big_image, exit3, sizeof exit3);

	pool3 = make_pool(exit3, sizeof exit3, NULL, 16u << 20, WASP_POOL_SNAPSHOT_AUTO, "pool3");
	pool_fib = make_pool(NULL, 0, fib_image, 16u << 20, WASP_POOL_SNAPSHOT_AUTO, fib_image);
	pool_fib_nosnap = make_pool(NULL, 0, fib_image, 16u << 20, WASP_POOL_SNAPSHOT_OFF, fib_image);
	uint64_t c0 = now_ns();
	pool_small = make_pool(big_image, 32, NULL, BIG_MEM, WASP_POOL_SNAPSHOT_AUTO, "32-byte image");
	uint64_t c1 = now_ns();
	pool_big = make_pool(big_image, BIG_IMAGE, NULL, BIG_MEM, WASP_POOL_SNAPSHOT_AUTO,
			     "16 MiB image");
	uint64_t c2 = now_ns();
	struct wasp_pool_stats fs;
	wasp_pool_stats(pool_fib, &fs);
	if (!fs.snapshot)
		die("%s: the pool did not take a snapshot", fib_image);

	for (int round = 1; round <= P.rounds; round++) {
		round_floor();
		round_pool3();
		round_fib();
		round_image_size();
		round_baselines();
		fprintf(stderr, "wasp-bench-pool: round %d/%d done (%.1f s)\n", round, P.rounds,
			(double)(now_ns() - t0) / 1e9);
	}

	for (size_t i = 0; i < nrows; i++)
		finish(&rows[i]);
	for (size_t m = 0; m < 3; m++) {
		const struct row *r = find(floor_names[m]);
		if (!floor_name || r->median < floor_us) {
			floor_us = r->median;
			floor_name = r->name;
		}
	}
	/* The floor of a call into a C virtine: it runs at ring 3, so its
	 * exits are ring-3 exits; the cheapest measured in this run. */
	const struct row *ring3 = NULL;
	for (int k = 0; k < BENCH_RING3_EXITS; k++) {
		if (ring3_missing[k])
			continue;
		const struct row *r = find(bench_ring3_names[k]);
		if (!ring3 || r->median < ring3->median)
			ring3 = r;
	}
	if (!ring3)
		die("no ring-3 exit measured");
	write_table(stdout, false);
	printf("floor = %s = %.2f us; floor_ring3 = %s = %.2f us; %.1f s\n", floor_name, floor_us,
	       ring3->name, ring3->median, (double)(now_ns() - t0) / 1e9);
	for (int k = 0; k < BENCH_RING3_EXITS; k++)
		if (ring3_missing[k])
			printf("ring-3 exit %s not measured: %s\n", bench_ring3_names[k],
			       ring3_missing[k]);
	print_pool_stats("three-byte", pool3);
	print_pool_stats("fib", pool_fib);
	print_pool_stats("fib-no-snap", pool_fib_nosnap);
	print_pool_stats("32-byte", pool_small);
	print_pool_stats("16-MiB", pool_big);
	printf("fib(0) with snapshot: %.2f exits per call (the argument arrives with the "
	       "snapshot's return, set_ret ends the call); pool creation "
	       "(fill to 2): 32-byte image %.1f ms, 16 MiB image %.1f ms\n",
	       fib_calls ? (double)fib_exits / (double)fib_calls : 0.0, (double)(c1 - c0) / 1e6,
	       (double)(c2 - c1) / 1e6);
	printf("ratio pool_call_3b/floor %.2f (target 1.5)\n",
	       find("pool3_get_run")->median / floor_us);
	printf("ratio fib0_pool_snapshot/floor_ring3 %.2f (target 1.2)\n",
	       find("fib0_call_snapshot")->median / ring3->median);
	printf("ratio image_start_16m/32b %.2f (target 2)\n",
	       find("start_pool_16m")->median / find("start_pool_32b")->median);
	if (csv) {
		write_table(csv, true);
		if (fclose(csv) != 0)
			die("%s: write failed: %s", csv_path, strerror(errno));
		printf("(CSV written to %s)\n", csv_path);
	}
	wasp_pool_destroy(pool3);
	wasp_pool_destroy(pool_fib);
	wasp_pool_destroy(pool_fib_nosnap);
	wasp_pool_destroy(pool_small);
	wasp_pool_destroy(pool_big);
	free(big_image);
	close(kvm_fd);
	return 0;
}
