/*
 * tool_util.c: error exits and argument parsing for the tools.
 */
#define _GNU_SOURCE /* asprintf */
#include "tool_util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tool_name = "wasp";

noreturn void tool_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", tool_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(WASP_EXIT_TOOL_ERROR);
}

noreturn void tool_bad_option(char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	tool_die("option '%s' is unknown or needs an argument (try '%s --help')", arg, tool_name);
}

int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return -1;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (~0ull >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

int parse_duration(const char *s, uint64_t *out_ns)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"", 1e9}};
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
		if (strcmp(end, units[i].unit))
			continue;
		double ns = v * units[i].ns;
		if (ns >= 1.8e19)
			return -1;
		*out_ns = (uint64_t)ns;
		return 0;
	}
	return -1;
}

uint64_t tool_duration_arg(const char *opt, const char *arg, const char *example)
{
	uint64_t ns;
	if (parse_duration(arg, &ns) < 0 || ns == 0)
		tool_die("%s: '%s' is not a duration%s%s%s", opt, arg, example ? " (try " : "",
			 example ? example : "", example ? ")" : "");
	return ns;
}

uint64_t tool_size_arg(const char *opt, const char *arg, const char *example)
{
	uint64_t n;
	if (parse_size(arg, &n) < 0 || n == 0)
		tool_die("%s: '%s' is not a size%s%s%s", opt, arg, example ? " (try " : "",
			 example ? example : "", example ? ")" : "");
	return n;
}

char *tool_abs_path(const char *opt, const char *path)
{
	char *abs = NULL, cwd[PATH_MAX];
	if (path[0] == '/')
		abs = strdup(path);
	else if (!getcwd(cwd, sizeof cwd) || asprintf(&abs, "%s/%s", cwd, path) < 0)
		tool_die("%s: cannot make %s absolute", opt, path);
	if (!abs)
		tool_die("out of memory");
	return abs;
}
