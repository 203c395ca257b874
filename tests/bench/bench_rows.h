/*
 * bench_rows.h: what the wasp-bench-* programs share: named
 * sets of timings ("rows") filled over the rounds, their medians and
 * percentiles, and failing loudly (a benchmark that times errors is
 * worthless). Each program sets bench_prog, the prefix of its messages.
 */
#ifndef WASP_BENCH_ROWS_H
#define WASP_BENCH_ROWS_H

#include <stddef.h>
#include <stdint.h>

struct row {
	char name[48];
	const char *section; /* the section it first appeared in */
	double *us;
	size_t n, cap;
	/* filled by finish() */
	double median, p10, p90, min;
};

#define MAX_ROWS 128
extern struct row rows[MAX_ROWS];
extern size_t nrows;
extern const char *cur_section; /* rows made now belong to it */
extern const char *bench_prog;  /* "wasp-bench-core", ... */

/* Prints "PROG: message" on stderr and exits 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A libwasp call failed: dies with its own message (wasp_last_error()). */
void check(int r, const char *what);
uint64_t now_ns(void);
/* Runs argv (stdin /dev/null) with stdout into a fresh temporary file;
 * returns the time from spawn to exit and leaves the output in *out
 * (NUL-terminated, the caller frees it). Dies unless it exits 0. */
uint64_t spawn_timed(char *const argv[], char **out);

/* The row called `name`, created (in order of first use) if new. */
struct row *row(const char *name);
/* The row called `name`; dies when there is none. */
const struct row *find(const char *name);
void add_us(struct row *r, double us);
void add_ns(struct row *r, uint64_t ns);
/* Sorts the samples and fills median, p10, p90, min; dies without any. */
void finish(struct row *r);

#endif
