/*
 * bench_rows.c: rows of timings for the benchmarks (bench_rows.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_rows.h"
#include "vmm.h"

struct row rows[MAX_ROWS];
size_t nrows;
const char *cur_section = "";
const char *bench_prog = "wasp-bench";

void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "%s: ", bench_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void check(int r, const char *what)
{
	if (r < 0)
		die("%s: %s (%s)", what, wasp_last_error(), strerror(-r));
}

uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

struct row *row(const char *name)
{
	for (size_t i = 0; i < nrows; i++)
		if (!strcmp(rows[i].name, name))
			return &rows[i];
	if (nrows == MAX_ROWS)
		die("too many result rows");
	struct row *r = &rows[nrows++];
	snprintf(r->name, sizeof r->name, "%s", name);
	r->section = cur_section;
	return r;
}

const struct row *find(const char *name)
{
	for (size_t i = 0; i < nrows; i++)
		if (!strcmp(rows[i].name, name))
			return &rows[i];
	die("no row %s", name);
}

void add_us(struct row *r, double us)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		double *p = realloc(r->us, cap * sizeof *p);
		if (!p)
			die("out of memory for %zu samples", cap);
		r->us = p;
		r->cap = cap;
	}
	r->us[r->n++] = us;
}

void add_ns(struct row *r, uint64_t ns)
{
	add_us(r, (double)ns / 1000.0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const double *sorted, size_t n, double q)
{
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

void finish(struct row *r)
{
	if (!r->n)
		die("%s: no samples", r->name);
	qsort(r->us, r->n, sizeof *r->us, cmp_double);
	r->median = pct(r->us, r->n, 0.5);
	r->p10 = pct(r->us, r->n, 0.1);
	r->p90 = pct(r->us, r->n, 0.9);
	r->min = r->us[0];
}
