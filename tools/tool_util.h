/*
 * tool_util.h: what the command-line front ends share: one-line errors and
 * the parsing of sizes and durations. Tools exit; libraries never do.
 */
#ifndef WASP_TOOL_UTIL_H
#define WASP_TOOL_UTIL_H

#include <stdint.h>
#include <stdnoreturn.h>

/* Exit statuses of the tools, documented in docs/tools.md. */
#define WASP_EXIT_TOOL_ERROR 125  /* bad arguments or the host failed */
#define WASP_EXIT_GUEST_TIMEOUT 124
#define WASP_EXIT_GUEST_FAULT 139 /* 128 + SIGSEGV: "the guest crashed" */

extern const char *tool_name;

/* Prints "TOOL: message" on stderr and exits with WASP_EXIT_TOOL_ERROR. */
noreturn void tool_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After getopt_long returned '?' (with opterr = 0): one line naming the
 * unknown option or the one missing its argument, and exit 125. */
noreturn void tool_bad_option(char **argv);

/* "16M", "4096", "1G", "64k" -> bytes. Returns 0 or -1 on a malformed size. */
int parse_size(const char *s, uint64_t *out);
/* "500ms", "2s", "1.5s", "3m", "100us", "10" (seconds) -> ns. 0 or -1. */
int parse_duration(const char *s, uint64_t *out_ns);
/* An option's positive duration (ns) or size (bytes), or exit 125 with
 * "OPT: 'ARG' is not a duration" and ", (try EXAMPLE)" when example is set. */
uint64_t tool_duration_arg(const char *opt, const char *arg, const char *example);
uint64_t tool_size_arg(const char *opt, const char *arg, const char *example);
/* Decimal or 0x-prefixed hex. 0 or -1. */
int parse_u64(const char *s, uint64_t *out);

/* `path` made absolute against the working directory (for a file another
 * process, e.g. the runner, will write); exits with a line naming `opt`. */
char *tool_abs_path(const char *opt, const char *path);

#endif
