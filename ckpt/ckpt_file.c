/*
 * ckpt_file.c: where checkpoint bytes go and come from: file descriptors,
 * memory buffers, and files replaced atomically.
 *
 * An atomic file is written under a temporary name in the same directory
 * (rename is only atomic within one file system), fsynced, renamed over
 * the target, and the directory fsynced so the rename itself survives a
 * crash. Until the rename, the old file at the path is untouched.
 * Checkpoints hold guest memory, so the file is private (0600). The
 * directory is opened once and every step goes through that descriptor,
 * so all of them act on the same directory (ckpt.h says why it matters).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
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

static int tmp_sweep_at(int dfd, const char *base);

/* Forgets the names before closing and freeing what they point into, so
 * wasp_atomic_abort_signal() from a handler sees a whole file or none. */
static void atomic_reset(struct wasp_atomic_file *f)
{
	char *path = f->path, *tmp = f->tmp;
	int dfd = f->dirfd;

	f->tmp = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	f->path = NULL;
	f->name = f->tmp_name = NULL;
	f->fd = f->dirfd = -1;
	if (dfd >= 0)
		close(dfd);
	free(path);
	free(tmp);
}

/* Opens the directory that will hold path's last component `name`
 * (name - path bytes into it): "." for a path with no slash, "/" for one
 * directly under the root. Resolved here, once, for every later step. */
static int open_dir_of(const char *path, const char *name)
{
	size_t len = (size_t)(name - path);
	char *dir;
	int fd;

	if (len == 0)
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (len == 1)
		return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!(dir = strndup(path, len - 1)))
		return (errno = ENOMEM, -1);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e = errno;
	free(dir);
	errno = e;
	return fd;
}

int wasp_atomic_open(const char *path, struct wasp_atomic_file *f)
{
	struct stat st;
	int e;

	f->fd = f->dirfd = -1;
	f->path = f->tmp = NULL;
	f->name = f->tmp_name = NULL;
	if (!path || !*path)
		return wasp_fail(-EINVAL, "checkpoint file: empty path");
	const char *slash = strrchr(path, '/');
	size_t off = slash ? (size_t)(slash + 1 - path) : 0;
	if (!path[off])
		return wasp_fail(-EISDIR, "%s: names a directory, not a file", path);
	f->path = strdup(path);
	f->tmp = malloc(strlen(path) + 64);
	if (!f->path || !f->tmp) {
		atomic_reset(f);
		return wasp_fail(-ENOMEM, "checkpoint file: out of memory");
	}
	f->name = f->path + off;
	f->tmp_name = f->tmp + off;
	/* A directory that cannot be opened cannot be fsynced after the
	 * rename: refuse it now rather than after the whole checkpoint. */
	f->dirfd = open_dir_of(f->path, f->name);
	if (f->dirfd < 0) {
		e = errno;
		atomic_reset(f);
		return wasp_fail(-e, "checkpoint file: cannot open the directory of %s: %s", path,
				 strerror(e));
	}
	/* Caught here, before the checkpoint is written, instead of by the
	 * rename after it. A symlink to a directory counts: the user named a
	 * directory. */
	if (fstatat(f->dirfd, f->name, &st, 0) == 0 && S_ISDIR(st.st_mode)) {
		atomic_reset(f);
		return wasp_fail(-EISDIR, "%s: is a directory", path);
	}
	for (int tries = 0;; tries++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
			rnd = wasp_now_ns() * 0x9e3779b97f4a7c15ull + (uint64_t)tries;
		sprintf(f->tmp, "%s.tmp.%ld.%016llx", path, (long)getpid(),
			(unsigned long long)rnd);
		/* O_EXCL: never an existing file or a planted symlink. */
		f->fd = openat(f->dirfd, f->tmp_name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (f->fd >= 0) {
			wasp_ckpt_tmp_hold(f->fd);
			tmp_sweep_at(f->dirfd, f->name);
			return 0;
		}
		if (errno != EEXIST || tries == 16) {
			e = errno;
			atomic_reset(f);
			return wasp_fail(
			    -e, "checkpoint file: cannot create a temporary file beside %s: %s",
			    path, strerror(e));
		}
	}
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
	if (renameat(f->dirfd, f->tmp_name, f->dirfd, f->name) < 0) {
		r = wasp_fail(-errno, "checkpoint file: renaming %s to %s: %s", f->tmp, f->path,
			      strerror(errno));
		wasp_atomic_abort(f);
		return r;
	}
	/* The data is in place; a failed directory sync only weakens the
	 * crash guarantee, but say so: the caller asked for durability. */
	r = 0;
	if (fsync(f->dirfd) < 0)
		r = wasp_fail(-errno,
			      "checkpoint file: %s is in place, but syncing its directory failed "
			      "(a crash may undo the rename): %s",
			      f->path, strerror(errno));
	atomic_reset(f);
	return r;
}

void wasp_atomic_abort(struct wasp_atomic_file *f)
{
	if (!f->tmp)
		return; /* never opened, or already committed or aborted */
	if (f->fd >= 0)
		close(f->fd);
	unlinkat(f->dirfd, f->tmp_name, 0);
	atomic_reset(f);
}

void wasp_atomic_abort_signal(const struct wasp_atomic_file *f)
{
	if (f->tmp && f->dirfd >= 0)
		unlinkat(f->dirfd, f->tmp_name, 0);
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
 * alone by the instant between a writer's open and its flock. Reads the
 * directory dfd through a descriptor of its own (closedir closes it). */
static int tmp_sweep_at(int dfd, const char *base)
{
	size_t blen = strlen(base);
	int removed = 0;

	if (!blen)
		return 0;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t pid = tmp_writer(de->d_name, base, blen);
		if (!pid || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    unlinkat(dfd, de->d_name, 0) == 0)
			removed++;
		close(fd);
	}
	closedir(d);
	return removed;
}

int wasp_ckpt_tmp_sweep(const char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	int dfd = open_dir_of(path, base), removed;

	if (dfd < 0)
		return 0;
	removed = tmp_sweep_at(dfd, base);
	close(dfd);
	return removed;
}
