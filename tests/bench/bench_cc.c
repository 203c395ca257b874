/*
 * bench_cc.c: wasp-bench-cc, what the `virtine` keyword costs per call
 * (docs/embedding.md). Built by wasp-cc (tests/tools/cc.cmake). Rows, each the
 * median of single calls timed one by one, against a plain call of the
 * same function measured in the same run:
 *   plain        square(x) compiled natively (noinline)
 *   virtine      square(x) through its pool: marshal, get a pristine
 *                virtine, run from the snapshot to WASP_HC_SET_RET, copy
 *                the result back, give the virtine back
 *   virtine_ref  square_ref(&x): a pointer copied in and out
 *   virtine_str  upcase(s) on a 64-byte string, copied in and out
 * The functions use no C library, so the same file builds with musl (the
 * default) and with WASP_CC_LIBC=0 (the freestanding runtime), and the two
 * can be compared (docs/embedding.md, "Cost").
 * Usage: wasp-bench-cc [--quick] [--csv PATH]. Exit 77 without /dev/kvm,
 * 2 for bad arguments. The last line, for run.sh and the report:
 *   ratio cc_virtine_vs_plain V (for comparison)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasp/virtine.h>

virtine int square(int x)
{
	return x * x;
}

virtine void square_ref(int *x)
{
	*x = *x * *x;
}

virtine void upcase(char *s)
{
	for (; *s; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

__attribute__((noinline)) static int square_plain(int x)
{
	__asm__ volatile("" : : : "memory");
	return x * x;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

enum { PLAIN, VIRTINE, REF, STR, ROWS };
static const char *const names[ROWS] = {"plain", "virtine", "virtine_ref", "virtine_str"};

static int one(int row, int i)
{
	char s[64];
	int x = i;
	switch (row) {
	case PLAIN:
		return square_plain(i) != i * i;
	case VIRTINE:
		return square(i) != i * i || wasp_virtine_errno();
	case REF:
		square_ref(&x);
		return x != i * i || wasp_virtine_errno();
	default:
		memset(s, 'a', sizeof s - 1);
		s[sizeof s - 1] = '\0';
		upcase(s);
		return s[0] != 'A' || s[62] != 'A' || wasp_virtine_errno();
	}
}

int main(int argc, char **argv)
{
	int n = 2000;
	const char *csv = NULL;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick")) {
			n = 200;
		} else if (!strcmp(argv[a], "--csv") && a + 1 < argc) {
			csv = argv[++a];
		} else {
			fprintf(stderr, "wasp-bench-cc: unknown argument '%s' (usage: [--quick] [--csv PATH])\n",
				argv[a]);
			return 2;
		}
	}
	FILE *out = NULL;
	if (csv && !(out = fopen(csv, "w"))) {
		fprintf(stderr, "wasp-bench-cc: cannot write %s\n", csv);
		return 1;
	}
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		puts("SKIP: /dev/kvm is not available");
		return 77;
	}
	uint64_t *t[ROWS];
	for (int r = 0; r < ROWS; r++) {
		if (!(t[r] = calloc((size_t)n, sizeof *t[r])))
			return 1;
		for (int i = 0; i < 20; i++) /* the pool is made by the first call */
			if (one(r, i)) {
				fprintf(stderr, "%s: %s\n", names[r], wasp_virtine_error());
				return 1;
			}
	}
	/* Rows interleaved call by call, so drift hits them alike. */
	for (int i = 0; i < n; i++)
		for (int r = 0; r < ROWS; r++) {
			uint64_t t0 = now_ns();
			int bad = one(r, i);
			t[r][i] = now_ns() - t0;
			if (bad) {
				fprintf(stderr, "%s: wrong result (%s)\n", names[r],
					wasp_virtine_error());
				return 1;
			}
		}
	uint64_t med[ROWS];
	printf("%-12s %10s %10s %10s %8s\n", "row", "median_ns", "p10_ns", "p90_ns", "x_plain");
	for (int r = 0; r < ROWS; r++) {
		qsort(t[r], (size_t)n, sizeof *t[r], cmp);
		med[r] = t[r][n / 2];
		double x = (double)med[r] / (double)(med[PLAIN] ? med[PLAIN] : 1);
		printf("%-12s %10llu %10llu %10llu %8.0f\n", names[r], (unsigned long long)med[r],
		       (unsigned long long)t[r][n / 10], (unsigned long long)t[r][n * 9 / 10], x);
		if (out) {
			if (r == 0)
				fprintf(out, "name,median_ns,p10_ns,p90_ns,iterations,x_plain\n");
			fprintf(out, "%s,%llu,%llu,%llu,%d,%.1f\n", names[r], (unsigned long long)med[r],
				(unsigned long long)t[r][n / 10], (unsigned long long)t[r][n * 9 / 10], n, x);
		}
		free(t[r]);
	}
	if (out && fclose(out) != 0) {
		fprintf(stderr, "wasp-bench-cc: cannot write %s\n", csv);
		return 1;
	}
	printf("ratio cc_virtine_vs_plain %.0f (for comparison)\n",
	       (double)med[VIRTINE] / (double)(med[PLAIN] ? med[PLAIN] : 1));
	wasp_virtine_shutdown();
	return 0;
}
