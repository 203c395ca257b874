/*
 * ckpt_file.c: where checkpoint bytes go and come from: file descriptors,
 * memory buffers, and files replaced atomically.
 *
 * An atomic file is written under a temporary name in the same directory
 * (rename is only atomic within one file system), fsynced, renamed over
 * the target, and the directory fsynced so the rename itself survives a
 * crash. Until the rename, the old file at the path is untouched.
 * Checkpoints hold guest memory, so the file is private (0600).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_stream.h"
#include "vmm_parts.h" /* wasp_fail */

/* ---- file descriptors ------------------------------------------------- */

static int fd_write(void *ctx, const void *buf, size_t len)
{
	int fd = *(int *)ctx;
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return wasp_fail(-errno, "write to fd %d: %s", fd, strerror(errno));
		}
		if (n == 0)
			return wasp_fail(-EIO, "write to fd %d wrote nothing", fd);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	int fd = *(int *)ctx;

	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return wasp_fail(-errno, "read from fd %d: %s", fd, strerror(errno));
	}
}

struct wasp_sink wasp_sink_fd(int *fd)
{
	return (struct wasp_sink){.write = fd_write, .ctx = fd};
}

struct wasp_source wasp_source_fd(int *fd)
{
	return (struct wasp_source){.read = fd_read, .ctx = fd};
}

/* ---- buffers ---------------------------------------------------------- */

static int buffer_write(void *ctx, const void *buf, size_t len)
{
	struct wasp_buffer_sink *b = ctx;

	if (len > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap - b->len < len) {
			if (cap > SIZE_MAX / 2)
				return wasp_fail(-ENOMEM, "buffer sink: %zu bytes do not fit", len);
			cap *= 2;
		}
		uint8_t *nb = realloc(b->buf, cap);
		if (!nb)
			return wasp_fail(-ENOMEM, "buffer sink: out of memory for %zu bytes", cap);
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, buf, len);
	b->len += len;
	return 0;
}

static ssize_t buffer_read(void *ctx, void *buf, size_t len)
{
	struct wasp_buffer_source *b = ctx;
	size_t n = b->len - b->pos;

	if (n > len)
		n = len;
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	memcpy(buf, b->buf + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

struct wasp_sink wasp_sink_buffer(struct wasp_buffer_sink *b)
{
	return (struct wasp_sink){.write = buffer_write, .ctx = b};
}

struct wasp_source wasp_source_buffer(struct wasp_buffer_source *b)
{
	return (struct wasp_source){.read = buffer_read, .ctx = b};
}

/* ---- atomic files ----------------------------------------------------- */

static void atomic_reset(struct wasp_atomic_file *f)
{
	free(f->path);
	free(f->tmp);
	f->path = f->tmp = NULL;
	f->fd = -1;
}

int wasp_atomic_open(const char *path, struct wasp_atomic_file *f)
{
	f->fd = -1;
	f->path = f->tmp = NULL;
	if (!path || !*path)
		return wasp_fail(-EINVAL, "checkpoint file: empty path");
	f->path = strdup(path);
	f->tmp = malloc(strlen(path) + 64);
	if (!f->path || !f->tmp) {
		atomic_reset(f);
		return wasp_fail(-ENOMEM, "checkpoint file: out of memory");
	}
	for (int tries = 0;; tries++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
			rnd = wasp_now_ns() * 0x9e3779b97f4a7c15ull + (uint64_t)tries;
		sprintf(f->tmp, "%s.tmp.%ld.%016llx", path, (long)getpid(),
			(unsigned long long)rnd);
		f->fd = open(f->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (f->fd >= 0) {
			wasp_ckpt_tmp_hold(f->fd);
			wasp_ckpt_tmp_sweep(path);
			return 0;
		}
		if (errno != EEXIST || tries == 16) {
			int e = errno;
			atomic_reset(f);
			return wasp_fail(
			    -e, "checkpoint file: cannot create a temporary file beside %s: %s",
			    path, strerror(e));
		}
	}
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, r = 0;

	if (!copy)
		return wasp_fail(-ENOMEM, "checkpoint file: out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		r = wasp_fail(-errno, "checkpoint file: syncing the directory of %s: %s", path,
			      strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return r;
}

int wasp_atomic_commit(struct wasp_atomic_file *f)
{
	int r;

	if (!f->tmp)
		return wasp_fail(-EINVAL, "checkpoint file: nothing open to commit");
	if (fsync(f->fd) < 0) {
		r = wasp_fail(-errno, "checkpoint file: fsync of %s: %s", f->tmp, strerror(errno));
		wasp_atomic_abort(f);
		return r;
	}
	r = close(f->fd);
	f->fd = -1;
	if (r < 0) {
		r = wasp_fail(-errno, "checkpoint file: closing %s: %s", f->tmp, strerror(errno));
		wasp_atomic_abort(f);
		return r;
	}
	if (rename(f->tmp, f->path) < 0) {
		r = wasp_fail(-errno, "checkpoint file: renaming %s to %s: %s", f->tmp, f->path,
			      strerror(errno));
		wasp_atomic_abort(f);
		return r;
	}
	/* The data is in place; a failed directory sync only weakens the
	 * crash guarantee, but say so: the caller asked for durability. */
	r = fsync_dir_of(f->path);
	atomic_reset(f);
	return r;
}

void wasp_atomic_abort(struct wasp_atomic_file *f)
{
	if (!f->tmp)
		return; /* never opened, or already committed or aborted */
	if (f->fd >= 0)
		close(f->fd);
	unlink(f->tmp);
	atomic_reset(f);
}

/* ---- temporary files of killed writers -------------------------------- */

int wasp_ckpt_tmp_hold(int fd)
{
	return flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
}

/* The writer's pid if `name` is BASE.tmp.<pid> or BASE.tmp.<pid>.<hex>
 * (the names wasp's writers use), else 0. */
static pid_t tmp_writer(const char *name, const char *base, size_t blen)
{
	if (strncmp(name, base, blen) || strncmp(name + blen, ".tmp.", 5))
		return 0;
	const char *p = name + blen + 5;
	long pid = 0;
	for (; *p >= '0' && *p <= '9' && pid < 1L << 30; p++)
		pid = pid * 10 + (*p - '0');
	if (*p == '.' && p[1])
		for (p++; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
			;
	return *p || pid <= 0 || pid >= 1L << 30 ? 0 : (pid_t)pid;
}

/* A file is a leftover only when both tests agree: its pid names no live
 * process (kill(pid, 0): ESRCH) and its flock is free. The pid test alone
 * would be fooled by a writer in another pid namespace; the lock test
 * alone by the instant between a writer's open and its flock. */
int wasp_ckpt_tmp_sweep(const char *path)
{
	char *copy = strdup(path);
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	size_t blen = strlen(base);
	int removed = 0;

	if (!copy || !blen) {
		free(copy);
		return 0;
	}
	DIR *d = opendir(slash ? dirname(copy) : ".");
	free(copy);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t pid = tmp_writer(de->d_name, base, blen);
		if (!pid || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
		close(fd);
	}
	closedir(d);
	return removed;
}
