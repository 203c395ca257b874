/*
 * bench_rows.c: rows of timings for the benchmarks (bench_rows.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* Runs argv with stdout into a fresh temporary file; returns the time from
 * spawn to exit and leaves the output in *out (NUL-terminated). */
uint64_t spawn_timed(char *const argv[], char **out)
{
	char path[] = "/tmp/wasp-bench-out-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp: %s", strerror(errno));
	unlink(path);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	uint64_t t0 = now_ns();
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	if (r)
		die("spawn %s: %s", argv[0], strerror(r));
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	uint64_t t = now_ns() - t0;
	posix_spawn_file_actions_destroy(&fa);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("%s %s: exit status %d", argv[0], argv[1] ? argv[1] : "", st);
	off_t len = lseek(fd, 0, SEEK_END);
	*out = calloc(1, (size_t)len + 1);
	if (!*out || pread(fd, *out, (size_t)len, 0) != len)
		die("reading the output of %s", argv[0]);
	close(fd);
	return t;
}
