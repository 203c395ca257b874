/*
 * harness.h: the little the C test programs share. Each program holds
 * many cases and runs one per invocation (`PROG [ARG...] CASE`), so ctest
 * counts and reports each case on its own. Exit 0 pass, 1 fail, 2 usage,
 * 77 skip (no /dev/kvm).
 */
#ifndef WASP_TEST_HARNESS_H
#define WASP_TEST_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm.h"
#include "vmm_parts.h" /* tests reach inside, as libwasp's own parts do */

static int failures;

/* A failed check is reported with the library's last error and counted;
 * the case goes on, so one run shows every failure. */
#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                     \
			fprintf(stderr, " (last error: %s)\n", wasp_last_error());          \
			failures++;                                                       \
		}                                                                         \
	} while (0)

/* A call that must succeed for the case to go on at all (a negative
 * return ends the program, failing the case, with the library's message). */
#define MUST(expr)                                                                        \
	do {                                                                              \
		if ((expr) < 0) {                                                         \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,     \
				wasp_last_error());                                       \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

/* Open file descriptors of this process (leak checks compare counts). */
static inline int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own fd */
}

/* A "NAME:  N kB" field of /proc/self/status (VmRSS, VmHWM), -1 when unknown. */
static inline long status_kib(const char *name)
{
	char line[256];
	long kib = -1;
	size_t n = strlen(name);
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, name, n) && line[n] == ':' && sscanf(line + n + 1, "%ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* This process's resident set in KiB, -1 when unknown. */
static inline long rss_kib(void)
{
	return status_kib("VmRSS");
}

/* ---- waiting for the guest, not for the clock --------------------------
 * A timer that pauses a finite guest "a few ms in" fails on a loaded host,
 * where the guest can end before the pausing thread gets a CPU. A gate
 * holds the guest instead: a tracer on its hypercalls in which the vCPU's
 * own thread waits, at the guest's `at`-th hypercall numbered `nr` (any
 * hypercall when nr < 0) and every one after it, until the test raises
 * `at` or opens the gate. A pause asked for while the guest waits there
 * takes effect before it runs another instruction (the pause sets
 * immediate_exit, so the next KVM_RUN returns at once), so the guest can
 * never run past the gate into its end before the test's pause. The wait
 * is bounded by a guard: a test that never opens its gate fails saying so
 * instead of hanging (100 s: below the 120 s ctest gives most cases, so
 * the message is seen, not a bare timeout). */
#define GATE_GUARD_NS (100ull * 1000000000)

struct hc_gate {
	int nr;                     /* the hypercall counted; < 0: all */
	atomic_uint_fast64_t calls; /* counted hypercalls so far */
	atomic_uint_fast64_t at;    /* the guest waits at this one and after... */
	atomic_bool open;           /* ...until this is set */
};

static inline int hc_gate_fn(struct wasp_virtine *v, const struct wasp_trace_event *ev, void *opaque)
{
	struct hc_gate *g = opaque;
	(void)v;
	if (ev->kind != WASP_TRACE_HYPERCALL || (g->nr >= 0 && ev->hc.nr != (uint64_t)g->nr))
		return WASP_TRACE_CONTINUE;
	uint64_t n = atomic_fetch_add(&g->calls, 1) + 1, t0 = wasp_now_ns();
	while (n >= atomic_load(&g->at) && !atomic_load(&g->open)) {
		if (wasp_now_ns() - t0 > GATE_GUARD_NS) {
			fprintf(stderr, "the guest waited %llu s at hypercall %llu for the test, which "
				"never let it go on\n", GATE_GUARD_NS / 1000000000, (unsigned long long)n);
			exit(1);
		}
		usleep(500);
	}
	return WASP_TRACE_CONTINUE;
}

/* Sets v's tracer to the gate g, closed at hypercall `at` (0: nowhere). */
static inline void hc_gate_set(struct wasp_virtine *v, struct hc_gate *g, int nr, uint64_t at)
{
	g->nr = nr;
	atomic_store(&g->calls, 0);
	atomic_store(&g->at, at ? at : UINT64_MAX);
	atomic_store(&g->open, false);
	struct wasp_trace_opts o = {.events = WASP_TRACE_BIT(WASP_TRACE_HYPERCALL), .fn = hc_gate_fn,
				    .opaque = g};
	MUST(wasp_virtine_trace(v, &o));
}

/* Waits until the guest has made `n` counted hypercalls, for at most the
 * guard; false if it never did. */
static inline bool hc_gate_wait(struct hc_gate *g, uint64_t n)
{
	for (uint64_t t0 = wasp_now_ns(); atomic_load(&g->calls) < n; usleep(500))
		if (wasp_now_ns() - t0 > GATE_GUARD_NS)
			return false;
	return true;
}

struct test_case {
	const char *name;
	void (*fn)(void);
};

/* Runs the case named by the last argument, after `nargs` fixed arguments
 * stored into *vars[0..nargs-1] first. `--list` prints the cases. */
static inline int test_main(int argc, char **argv, const struct test_case *cases, size_t n,
			    const char **vars[], int nargs, const char *arg_usage, bool needs_kvm)
{
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			puts(cases[i].name);
		return 0;
	}
	if (argc != nargs + 2) {
		fprintf(stderr, "usage: %s %sCASE | --list\n", prog, arg_usage);
		return 2;
	}
	if (needs_kvm && access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("SKIP: /dev/kvm is not available (%s)\n", strerror(errno));
		return 77;
	}
	for (int i = 0; i < nargs; i++)
		*vars[i] = argv[1 + i];
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[argc - 1], cases[i].name))
			continue;
		cases[i].fn();
		printf("%s: %s\n", cases[i].name, failures ? "FAIL" : "ok");
		return failures ? 1 : 0;
	}
	fprintf(stderr, "%s: no case '%s'\n", prog, argv[argc - 1]);
	return 2;
}

#endif
