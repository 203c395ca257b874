/*
 * vmm_error.c: the thread-local "what went wrong" line behind
 * wasp_last_error(), and names for exit reasons.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "vmm_internal.h"

static _Thread_local char last_error[512];

int wasp_fail(int err, const char *fmt, ...)
{
	/* Format aside first: callers prefix the previous message with
	 * wasp_fail(r, "%s: %s", path, wasp_last_error()). */
	char msg[sizeof last_error];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* One line, whatever it quotes: messages name strings from
	 * checkpoints and peers (a CPU vendor, a file path), and a newline
	 * or an escape sequence in one must not forge log lines. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	memcpy(last_error, msg, sizeof msg);
	return err;
}

const char *wasp_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}

int wasp__ioctl_checked(int fd, unsigned long cmd, const char *name, void *arg)
{
	int r = wasp__ioctl(fd, cmd, arg);
	if (r < 0)
		return wasp_fail(r, "%s: %s", name, strerror(-r));
	return r;
}

static const char *const exit_names[] = {
	[WASP_EXIT_EXITED] = "exited",   [WASP_EXIT_HYPERCALL] = "hypercall",
	[WASP_EXIT_FAULT] = "fault",     [WASP_EXIT_TIMEOUT] = "timeout",
	[WASP_EXIT_PAUSED] = "paused",
};

static const char *const fault_names[] = {
	[WASP_FAULT_SHUTDOWN] = "triple fault (shutdown)",
	[WASP_FAULT_INTERNAL] = "internal error",
	[WASP_FAULT_MMIO] = "access outside guest memory",
	[WASP_FAULT_IO] = "unknown I/O port",
	[WASP_FAULT_HALT] = "halted",
	[WASP_FAULT_UNHANDLED] = "unhandled exit",
	[WASP_FAULT_MEMORY_LOST] = "guest memory lost: the checkpoint file it was mapped from was truncated",
	[WASP_FAULT_EXCEPTION] = "exception",
};

const char *wasp_exit_reason_name(enum wasp_exit_reason r)
{
	if ((unsigned)r < sizeof exit_names / sizeof *exit_names)
		return exit_names[r];
	return "unknown";
}

const char *wasp_fault_kind_name(enum wasp_fault_kind k)
{
	if ((unsigned)k < sizeof fault_names / sizeof *fault_names)
		return fault_names[k];
	return "unknown";
}

uint64_t wasp_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
