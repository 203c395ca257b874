/*
 * vmm_hc_builtin.c: the built-in hypercalls that touch no files: console,
 * stdin, clock, the argument/return buffers of function-style virtines and
 * the snapshot-point marker. The file hypercalls are in vmm_hc_file.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmm_internal.h"

/* Writes all of buf to fd, retrying short writes and EINTR. */
static int64_t write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return done ? (int64_t)done : -errno;
		done += (size_t)n;
	}
	return (int64_t)done;
}

int wasp_wait_fds(struct wasp_virtine *v, struct pollfd *p, unsigned n, int64_t timeout_ns)
{
	sigset_t kick, old;
	int r = poll(p, n, 0);
	if (r != 0 || timeout_ns == 0)
		return r < 0 ? -errno : r;
	uint64_t end = timeout_ns > 0 ? wasp_now_ns() + (uint64_t)timeout_ns : 0;
	sigemptyset(&kick);
	sigaddset(&kick, wasp_kick_signal());
	pthread_sigmask(SIG_BLOCK, &kick, &old);
	for (;;) {
		if (wasp_virtine_kicked(v)) {
			r = -EINTR;
			break;
		}
		struct timespec ts, *tp = NULL;
		if (timeout_ns > 0) {
			uint64_t now = wasp_now_ns();
			if (now >= end) {
				r = 0;
				break;
			}
			ts = (struct timespec){(time_t)((end - now) / 1000000000u),
					       (long)((end - now) % 1000000000u)};
			tp = &ts;
		}
		r = ppoll(p, n, tp, &old);
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Waits until fd is ready for `events` (POLLIN, POLLOUT) or the run is
 * kicked (a pause, the deadline). 1 ready (or in error: the next read or
 * write says which), 0 kicked, -errno. */
int wasp_wait_ready(struct wasp_virtine *v, int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n = wasp_wait_fds(v, &p, 1, -1);
	return n == -EINTR ? 0 : n > 0 ? 1 : n;
}

/*
 * The console is whatever the embedder gave (wasp-run: its stdout), often a
 * pipe or a terminal, which blocks for as long as its reader does not read.
 * A write that would block waits for room or for the run's kick (a pause
 * for a checkpoint, the --timeout deadline) and gives up on the kick, so
 * the run reaches its exit boundary: the guest gets the bytes written so
 * far, or -EINTR when none were, and writes the rest again when it runs
 * on (wasp_printf does), here or after a restore. Nothing is lost or
 * written twice: a checkpoint holds the guest right after the call
 * returned, before its retry.
 *
 * Each write follows a POLLOUT and is at most PIPE_BUF bytes, which a pipe
 * that reported room takes without blocking (and a kick interrupts one
 * that blocks anyway, another writer having taken the room). Regular
 * files and block devices never wait for a reader: written as before.
 */
int64_t wasp_console_write(struct wasp_virtine *v, int fd, const char *buf, size_t len)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		return write_all(fd, buf, len);

	size_t done = 0;
	int64_t err = 0;
	while (done < len) {
		int r = wasp_wait_ready(v, fd, POLLOUT);
		if (r <= 0) {
			err = r;
			break;
		}
		size_t chunk = len - done < PIPE_BUF ? len - done : PIPE_BUF;
		ssize_t w = write(fd, buf + done, chunk);
		if (w < 0 && errno == EINTR)
			continue; /* wait_ready looks at the kick */
		if (w < 0) {
			err = -errno;
			break;
		}
		done += (size_t)w;
	}
	if (done)
		return (int64_t)done;
	return err ? err : -EINTR;
}

static int64_t hc_console_write(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	const void *buf = wasp_virtine_gpa(v, a[0], a[1]);
	if (!buf)
		return -EFAULT;
	int64_t n = a[1] ? wasp_console_write(v, v->cfg.console_fd, buf, a[1]) : 0;
	if (n > 0)
		v->console_bytes += (uint64_t)n;
	return n;
}

static int64_t hc_stdin_read(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	void *buf = wasp_virtine_gpa(v, a[0], a[1]);
	if (!buf)
		return -EFAULT;
	if (v->cfg.no_stdin)
		return 0;
	/* Input that does not come must not hold a pause or the deadline:
	 * wait for it as the console waits for room; -EINTR on the kick, and
	 * the guest retries. */
	int r = wasp_wait_ready(v, v->cfg.stdin_fd, POLLIN);
	if (r <= 0)
		return r ? r : -EINTR;
	ssize_t n = read(v->cfg.stdin_fd, buf, a[1]);
	if (n < 0)
		return -errno;
	wasp_mark_dirty(v, a[0], (size_t)n);
	return n;
}

static int64_t hc_clock(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)v, (void)opaque;
	struct timespec t;
	clockid_t id;
	switch (a[0]) {
	case WASP_CLOCK_REALTIME: id = CLOCK_REALTIME; break;
	case WASP_CLOCK_MONOTONIC: id = CLOCK_MONOTONIC; break;
	default: return -EINVAL;
	}
	clock_gettime(id, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t hc_get_arg(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	size_t n = v->arg_len < a[1] ? v->arg_len : a[1];
	void *buf = wasp_virtine_gpa(v, a[0], a[1]); /* the whole buffer must be guest memory */
	if (!buf)
		return -EFAULT;
	if (n)
		memcpy(buf, v->arg, n);
	wasp_mark_dirty(v, a[0], n);
	return (int64_t)v->arg_len;
}

static int64_t hc_set_ret(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	const void *buf = wasp_virtine_gpa(v, a[0], a[1]);
	if (!buf)
		return -EFAULT;
	if (a[1] > WASP_MAX_ARG)
		return -E2BIG;
	return wasp_virtine_set_ret(v, buf, a[1]);
}

static int64_t hc_snapshot(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)a, (void)opaque;
	v->snapshot_marks++;
	return 0;
}

int wasp_virtine_set_arg(struct wasp_virtine *v, const void *arg, size_t len)
{
	if (len > WASP_MAX_ARG)
		return wasp_fail(-E2BIG, "argument of %zu bytes exceeds %u", len, WASP_MAX_ARG);
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return wasp_fail(-ENOMEM, "out of memory for the argument");
	if (len)
		memcpy(copy, arg, len);
	free(v->arg);
	v->arg = copy;
	v->arg_len = len;
	return 0;
}

const void *wasp_virtine_arg(const struct wasp_virtine *v, size_t *len)
{
	*len = v->arg ? v->arg_len : 0;
	return v->arg;
}

const void *wasp_virtine_ret(const struct wasp_virtine *v, size_t *len)
{
	*len = v->ret ? v->ret_len : 0;
	return v->ret;
}

uint64_t wasp_virtine_snapshot_marks(const struct wasp_virtine *v)
{
	return v->snapshot_marks;
}

int wasp_virtine_set_ret(struct wasp_virtine *v, const void *ret, size_t len)
{
	if (len > WASP_MAX_ARG)
		return wasp_fail(-E2BIG, "return buffer of %zu bytes exceeds %u", len, WASP_MAX_ARG);
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return wasp_fail(-ENOMEM, "out of memory for the return buffer");
	if (len)
		memcpy(copy, ret, len);
	free(v->ret);
	v->ret = copy;
	v->ret_len = len;
	return 0;
}

uint64_t wasp_virtine_console_bytes(const struct wasp_virtine *v)
{
	return v->console_bytes;
}

/* The built-in table. exit has no handler: the run loop ends the run. */
static const struct {
	unsigned nr;
	const char *name;
	wasp_hypercall_fn fn;
} builtins[] = {
	{WASP_HC_EXIT, "exit", NULL},
	{WASP_HC_CONSOLE_WRITE, "console_write", hc_console_write},
	{WASP_HC_STDIN_READ, "stdin_read", hc_stdin_read},
	{WASP_HC_OPEN, "open", wasp_hc_open},
	{WASP_HC_CLOSE, "close", wasp_hc_close},
	{WASP_HC_READ, "read", wasp_hc_read},
	{WASP_HC_WRITE, "write", wasp_hc_write},
	{WASP_HC_PREAD, "pread", wasp_hc_pread},
	{WASP_HC_PWRITE, "pwrite", wasp_hc_pwrite},
	{WASP_HC_LSEEK, "lseek", wasp_hc_lseek},
	{WASP_HC_FSTAT, "fstat", wasp_hc_fstat},
	{WASP_HC_CLOCK, "clock", hc_clock},
	{WASP_HC_GET_ARG, "get_arg", hc_get_arg},
	{WASP_HC_SET_RET, "set_ret", hc_set_ret},
	{WASP_HC_SNAPSHOT, "snapshot", hc_snapshot},
};

void wasp_hc_register_builtins(struct wasp_virtine *v)
{
	for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
		v->hc[builtins[i].nr] = (struct wasp_hc_entry){
			.name = builtins[i].name,
			.fn = builtins[i].fn,
		};
}
