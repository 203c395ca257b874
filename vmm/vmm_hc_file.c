/*
 * vmm_hc_file.c: file hypercalls confined to one host directory.
 *
 * Confinement is the kernel's, not ours: every open goes through openat2()
 * with RESOLVE_BENEATH relative to the sandbox directory, which refuses
 * absolute paths, `..` that climbs out, and symlinks that lead out, all
 * atomically (no check-then-open race). Only regular files may be opened,
 * and they are opened non-blocking first so a FIFO planted in the sandbox
 * cannot hang the host.
 *
 * Two things are kept beside the open files, both for the host's sake:
 *  - every file the guest opens for writing (`written`, one entry per
 *    inode, kept after close), so a checkpoint can record what each one
 *    held and a restore after a crash can find or put back exactly that
 *    (ckpt/ckpt_files.c; docs/checkpoint-format.md, "Files");
 *  - the net bytes the guest made the sandbox grow, held to dir_quota:
 *    growth is counted in apparent size (offset + length past the end),
 *    so a write far past the end of a sparse file counts what it claims,
 *    not the few blocks it allocates.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmm_internal.h"

int wasp_hc_files_init(struct wasp_virtine *v)
{
	for (int i = 0; i < WASP_MAX_FILES; i++)
		v->files[i] = (struct wasp_file){.host_fd = -1, .written = -1};
	v->sandbox_fd = -1;
	if (!v->cfg.sandbox_dir)
		return 0;
	v->sandbox_fd = open(v->cfg.sandbox_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (v->sandbox_fd < 0)
		return wasp_fail(-errno, "sandbox directory %s: %s", v->cfg.sandbox_dir,
				 strerror(errno));
	return 0;
}

void wasp_hc_files_fini(struct wasp_virtine *v)
{
	for (int i = 0; i < WASP_MAX_FILES; i++) {
		if (v->files[i].host_fd >= 0)
			close(v->files[i].host_fd);
		v->files[i].host_fd = -1;
		free(v->files[i].path);
		v->files[i].path = NULL;
	}
	wasp_hc_files_forget(v);
	if (v->sandbox_fd >= 0)
		close(v->sandbox_fd);
	v->sandbox_fd = -1;
}

void wasp_hc_files_forget(struct wasp_virtine *v)
{
	for (unsigned i = 0; i < v->nwritten; i++)
		free(v->written[i].path);
	memset(v->written, 0, sizeof v->written);
	v->nwritten = 0;
	for (int i = 0; i < WASP_MAX_FILES; i++)
		v->files[i].written = -1;
	free(v->unseen);
	v->unseen = NULL;
	v->nunseen = 0;
}

static int unseen_index(const struct wasp_virtine *v, const struct stat *st)
{
	for (unsigned i = 0; i < v->nunseen; i++)
		if (v->unseen[i].dev == st->st_dev && v->unseen[i].ino == st->st_ino)
			return (int)i;
	return -1;
}

bool wasp_file_unseen(const struct wasp_virtine *v, dev_t dev, ino_t ino)
{
	struct stat st = {.st_dev = dev, .st_ino = ino};
	return v->nunseen && unseen_index(v, &st) >= 0;
}

/* The written-file entry for the file fd stands on (found by inode, else
 * by path, else new), with its sum reset when `changed`. -ENFILE when the
 * table is full: a bound on what a checkpoint must record. */
static int written_entry(struct wasp_virtine *v, int fd, const char *path, bool changed)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	int idx = -1;
	for (unsigned i = 0; i < v->nwritten && idx < 0; i++)
		if (v->written[i].dev == st.st_dev && v->written[i].ino == st.st_ino)
			idx = (int)i;
	for (unsigned i = 0; i < v->nwritten && idx < 0; i++)
		if (!strcmp(v->written[i].path, path))
			idx = (int)i; /* another file now stands at this path */
	if (idx < 0) {
		if (v->nwritten == WASP_MAX_WRITTEN)
			return -ENFILE;
		char *copy = strdup(path);
		if (!copy)
			return -ENOMEM;
		idx = (int)v->nwritten++;
		v->written[idx] = (struct wasp_written){.path = copy};
		changed = true;
	}
	struct wasp_written *w = &v->written[idx];
	if (w->dev != st.st_dev || w->ino != st.st_ino)
		changed = true;
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	if (changed)
		w->sum_len = w->sum = 0;
	return idx;
}

/* Would growing the sandbox by `grow` more bytes pass the quota? */
static bool over_quota(const struct wasp_virtine *v, uint64_t grow)
{
	uint64_t q = v->cfg.dir_quota ? v->cfg.dir_quota : WASP_DIR_QUOTA_DEFAULT;
	if (q == WASP_DIR_QUOTA_UNLIMITED)
		return false;
	if (v->dir_grown < 0) {
		uint64_t credit = (uint64_t)0 - (uint64_t)v->dir_grown;
		return grow > credit && grow - credit > q;
	}
	return grow > q || (uint64_t)v->dir_grown > q - grow;
}

/* The file behind a hypercall's fd. A Linux program's duplicate of its
 * stdin, stdout or stderr (vmm_linux_fs.c: path "/stdout") is not one:
 * the hypercalls never reach the host's stdio through a file fd. */
static struct wasp_file *file_of(struct wasp_virtine *v, uint64_t fd)
{
	if (fd < WASP_FIRST_FD || fd >= WASP_FIRST_FD + WASP_MAX_FILES)
		return NULL;
	struct wasp_file *f = &v->files[fd - WASP_FIRST_FD];
	return f->host_fd >= 0 && f->path[0] != '/' ? f : NULL;
}

static int host_flags(uint64_t flags)
{
	int f = 0;
	switch (flags & 3) {
	case WASP_O_RDONLY: f = O_RDONLY; break;
	case WASP_O_WRONLY: f = O_WRONLY; break;
	case WASP_O_RDWR: f = O_RDWR; break;
	default: return -1;
	}
	if (flags & WASP_O_CREAT)
		f |= O_CREAT;
	if (flags & WASP_O_TRUNC)
		f |= O_TRUNC;
	if (flags & WASP_O_APPEND)
		f |= O_APPEND;
	if (flags & WASP_O_EXCL)
		f |= O_EXCL;
	return f;
}

/* fd, just opened non-blocking (so a FIFO cannot hang the host), kept
 * only when it is a regular file (or a directory, when dirs_too), then
 * made blocking; -errno otherwise (the open's errno when fd < 0). */
static int regular_only(int fd, struct stat *st, bool dirs_too)
{
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0 || !(S_ISREG(st->st_mode) || (dirs_too && S_ISDIR(st->st_mode)))) {
		close(fd);
		return -EACCES;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* Another fd, with open(2) `flags`, on the file behind fd (the same
 * inode, whatever its path now). */
static int open_fd_again(int fd, int flags)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	int r = open(p, flags | O_CLOEXEC | O_NOCTTY);
	return r < 0 ? -errno : r;
}

/* How a path resolves in the sandbox: beneath it for the hypercalls; as
 * in its root for a Linux program, whose absolute paths and symlinks mean
 * the sandbox (docs/linux.md). */
static uint64_t sandbox_resolve(const struct wasp_virtine *v)
{
	return (v->lx ? RESOLVE_IN_ROOT : RESOLVE_BENEATH) | RESOLVE_NO_MAGICLINKS;
}

int wasp_file_open(struct wasp_virtine *v, int slot, const char *path, int guest_flags, int flags,
		   mode_t mode, uint64_t resolve)
{
	/* O_PATH opens nothing (no read, no write, no device's open): any
	 * kind of file may stand there, as on Linux. */
	bool opath = v->lx && (flags & O_PATH);
	if (opath)
		flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW;
	/* O_TRUNC is done by hand on a writable file, to credit the quota
	 * with what it frees. */
	bool trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
	if (trunc)
		flags &= ~O_TRUNC;
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = resolve ? resolve : sandbox_resolve(v),
	};
	if (opath)
		how.flags = (uint64_t)flags | O_CLOEXEC;
	int fd = (int)syscall(SYS_openat2, v->sandbox_fd, path, &how, sizeof how);
	if (fd < 0 && errno == EEXIST && v->nunseen) {
		/* O_EXCL on a file the guest has not seen: open it to tell. */
		how.flags &= ~(uint64_t)(O_CREAT | O_EXCL);
		how.mode = 0; /* openat2 refuses a mode without O_CREAT */
		fd = (int)syscall(SYS_openat2, v->sandbox_fd, path, &how, sizeof how);
		if (fd >= 0) {
			struct stat xs;
			if (fstat(fd, &xs) < 0 || unseen_index(v, &xs) < 0) {
				close(fd);
				return -EEXIST;
			}
		} else {
			return -EEXIST;
		}
	}
	struct stat st;
	if (opath) {
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (S_ISREG(st.st_mode) && v->nunseen && unseen_index(v, &st) >= 0) {
			close(fd);
			return -ENOENT;
		}
	} else if ((fd = regular_only(fd, &st, v->lx != NULL)) < 0) {
		return fd;
	}

	int hidden = v->nunseen && !opath && S_ISREG(st.st_mode) ? unseen_index(v, &st) : -1;
	if (hidden >= 0) {
		/* Made after the checkpoint by the run that crashed: the guest
		 * has not made it yet. Creating it makes it anew; any other
		 * open finds nothing. Not counted against the quota: it never
		 * was. */
		bool writable = (flags & O_ACCMODE) != O_RDONLY;
		int wfd = !(flags & O_CREAT) ? -ENOENT : writable ? fd : open_fd_again(fd, O_WRONLY);
		int r = wfd < 0 ? wfd : ftruncate(wfd, 0) < 0 ? -errno : 0;
		if (wfd >= 0 && wfd != fd)
			close(wfd);
		if (r < 0) {
			close(fd);
			return -ENOENT;
		}
		v->unseen[hidden] = v->unseen[--v->nunseen];
		st.st_size = 0;
	}

	int written = -1;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
		written = written_entry(v, fd, path, (flags & O_TRUNC) || (trunc && st.st_size));
		if (written < 0) {
			close(fd);
			return written;
		}
	}
	if (trunc && st.st_size) {
		if (ftruncate(fd, 0) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		v->written[written].sum_len = v->written[written].sum = 0;
		v->dir_grown -= st.st_size;
	}
	char *copy = strdup(path);
	if (!copy) {
		close(fd);
		return -ENOMEM;
	}
	v->files[slot] = (struct wasp_file){
	    .host_fd = fd, .flags = guest_flags, .path = copy, .written = written};
	return 0;
}

int64_t wasp_hc_open(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	const uint64_t known = 3 | WASP_O_CREAT | WASP_O_TRUNC | WASP_O_APPEND | WASP_O_EXCL;
	char path[PATH_MAX];
	int slot = -1;

	if (v->sandbox_fd < 0)
		return -EACCES; /* no directory was given: no files at all */
	int n = wasp_virtine_read_str(v, a[0], path, sizeof path);
	if (n < 0)
		return n;
	if (n == 0)
		return -ENOENT;
	if (a[1] & ~known)
		return -EINVAL;
	int flags = host_flags(a[1]);
	if (flags < 0)
		return -EINVAL;
	for (int i = 0; i < WASP_MAX_FILES; i++)
		if (v->files[i].host_fd < 0) {
			slot = i;
			break;
		}
	if (slot < 0)
		return -EMFILE;

	int r = wasp_file_open(v, slot, path, (int)a[1], flags, (mode_t)(a[2] & 0777), 0);
	return r < 0 ? r : WASP_FIRST_FD + slot;
}

int wasp_virtine_file_at(const struct wasp_virtine *v, unsigned idx, unsigned *guest_fd,
			 const char **path, int *flags, int64_t *offset)
{
	if (idx >= WASP_MAX_FILES)
		return -EINVAL;
	const struct wasp_file *f = &v->files[idx];
	if (f->host_fd < 0)
		return 0;
	*guest_fd = WASP_FIRST_FD + idx;
	*path = f->path;
	*flags = f->flags;
	*offset = lseek(f->host_fd, 0, SEEK_CUR);
	return 1;
}

int wasp_virtine_file_restore(struct wasp_virtine *v, unsigned guest_fd, const char *path,
			      int flags, int64_t offset)
{
	if (guest_fd < WASP_FIRST_FD || guest_fd >= WASP_FIRST_FD + WASP_MAX_FILES ||
	    v->files[guest_fd - WASP_FIRST_FD].host_fd >= 0)
		return wasp_fail(-EINVAL, "bad or duplicate guest fd %u for '%s'", guest_fd, path);
	if (v->lx && path[0] == '/')
		return wasp_lx_stdio_restore(v, guest_fd, path, flags);
	if (v->sandbox_fd < 0)
		return wasp_fail(-EACCES, "the guest had '%s' open but no sandbox directory was given",
				 path);
	/* Never create or truncate on restore: the file must be the one the
	 * guest was using, at the offset it had reached. A Linux program's
	 * flags are open(2)'s own (directories and O_PATH included). */
	const int never = O_CREAT | O_TRUNC | O_EXCL | O_TMPFILE;
	int hflags = v->lx ? (flags & ~never) | O_LARGEFILE
			   : host_flags((uint64_t)flags & ~(uint64_t)(WASP_O_CREAT | WASP_O_TRUNC | WASP_O_EXCL));
	if (hflags < 0 || offset < 0)
		return wasp_fail(-EINVAL, "bad flags or offset for '%s'", path);
	int r = wasp_file_open(v, guest_fd - WASP_FIRST_FD, path, flags, hflags, 0, 0);
	if (r < 0)
		return wasp_fail(r, "cannot reopen the guest's file '%s' in %s: %s", path,
				 v->cfg.sandbox_dir, strerror(-r));
	/* A directory's offset is where getdents64 had got to (the same
	 * cookie lseek gives back). An O_PATH fd has none. */
	if (!(flags & O_PATH && v->lx) &&
	    lseek(v->files[guest_fd - WASP_FIRST_FD].host_fd, offset, SEEK_SET) < 0) {
		r = -errno;
		wasp_fail(r, "cannot seek '%s' to %lld: %s", path, (long long)offset, strerror(-r));
		return r;
	}
	return 0;
}

int64_t wasp_hc_close(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	struct wasp_file *f = file_of(v, a[0]);
	if (!f)
		return -EBADF;
	close(f->host_fd);
	free(f->path);
	*f = (struct wasp_file){.host_fd = -1, .written = -1};
	return 0;
}

/* read/pread share this: offset < 0 means "at the file position". */
static int64_t do_read(struct wasp_virtine *v, const uint64_t a[6], int64_t offset)
{
	struct wasp_file *f = file_of(v, a[0]);
	if (!f)
		return -EBADF;
	void *buf = wasp_virtine_gpa(v, a[1], a[2]);
	if (!buf)
		return -EFAULT;
	ssize_t n = offset < 0 ? read(f->host_fd, buf, a[2])
			       : pread(f->host_fd, buf, a[2], (off_t)offset);
	if (n < 0)
		return -errno;
	wasp_mark_dirty(v, a[1], (size_t)n);
	return n;
}

static int64_t do_write(struct wasp_virtine *v, const uint64_t a[6], int64_t offset)
{
	struct wasp_file *f = file_of(v, a[0]);
	if (!f)
		return -EBADF;
	if ((f->flags & 3) == WASP_O_RDONLY)
		return -EBADF; /* before the quota: that is not what is wrong */
	const void *buf = wasp_virtine_gpa(v, a[1], a[2]);
	if (!buf)
		return -EFAULT;
	struct iovec iov = {(void *)buf, a[2]};
	return wasp_file_writev(v, f, &iov, 1, offset);
}

int64_t wasp_file_writev(struct wasp_virtine *v, struct wasp_file *f, const struct iovec *iov,
			 int n, int64_t offset)
{
	uint64_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len; /* the callers bound each and the sum */
	/* Where the bytes land: O_APPEND writes (pwrite too, on Linux) at the
	 * end, write() at the file position, pwrite() at its offset. */
	struct stat st;
	if (fstat(f->host_fd, &st) < 0)
		return -errno;
	int64_t at = offset;
	if (f->flags & WASP_O_APPEND)
		at = st.st_size;
	else if (offset < 0 && (at = lseek(f->host_fd, 0, SEEK_CUR)) < 0)
		return -errno;
	if ((uint64_t)at > (uint64_t)INT64_MAX - len)
		return -EFBIG;
	uint64_t end = (uint64_t)at + len;
	if (len && end > (uint64_t)st.st_size && over_quota(v, end - (uint64_t)st.st_size))
		return -EDQUOT;
	ssize_t w = offset < 0 ? writev(f->host_fd, iov, n) : pwritev(f->host_fd, iov, n, (off_t)offset);
	if (w < 0)
		return -errno;
	if ((uint64_t)at + (uint64_t)w > (uint64_t)st.st_size)
		v->dir_grown += (int64_t)((uint64_t)at + (uint64_t)w - (uint64_t)st.st_size);
	/* What a checkpoint summed below `at` is no longer the file's. */
	if (w > 0 && f->written >= 0 && (uint64_t)at < v->written[f->written].sum_len)
		v->written[f->written].sum_len = v->written[f->written].sum = 0;
	return w;
}

/* The file's sum from `from` on is no longer what a checkpoint read. */
static void written_changed(struct wasp_virtine *v, struct wasp_file *f, uint64_t from)
{
	if (f->written >= 0 && from < v->written[f->written].sum_len)
		v->written[f->written].sum_len = v->written[f->written].sum = 0;
}

int wasp_file_truncate(struct wasp_virtine *v, struct wasp_file *f, int64_t len)
{
	struct stat st;
	if (len < 0)
		return -EINVAL;
	if (fstat(f->host_fd, &st) < 0)
		return -errno;
	if (len > st.st_size && over_quota(v, (uint64_t)(len - st.st_size)))
		return -EDQUOT;
	if (ftruncate(f->host_fd, (off_t)len) < 0)
		return -errno;
	v->dir_grown += (int64_t)len - (int64_t)st.st_size;
	written_changed(v, f, (uint64_t)len);
	return 0;
}

int wasp_file_fallocate(struct wasp_virtine *v, struct wasp_file *f, int mode, int64_t off,
			int64_t len)
{
	struct stat st;
	if (off < 0 || len <= 0)
		return -EINVAL;
	if (off > INT64_MAX - len)
		return -EFBIG;
	if (fstat(f->host_fd, &st) < 0)
		return -errno;
	bool grows = !(mode & FALLOC_FL_KEEP_SIZE) && off + len > st.st_size;
	if (grows && over_quota(v, (uint64_t)(off + len - st.st_size)))
		return -EDQUOT;
	if (fallocate(f->host_fd, mode, (off_t)off, (off_t)len) < 0)
		return -errno;
	if (grows)
		v->dir_grown += off + len - st.st_size;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		written_changed(v, f, (uint64_t)off);
	return 0;
}

int64_t wasp_hc_read(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	return do_read(v, a, -1);
}

int64_t wasp_hc_write(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	return do_write(v, a, -1);
}

int64_t wasp_hc_pread(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	if ((int64_t)a[3] < 0)
		return -EINVAL;
	return do_read(v, a, (int64_t)a[3]);
}

int64_t wasp_hc_pwrite(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	if ((int64_t)a[3] < 0)
		return -EINVAL;
	return do_write(v, a, (int64_t)a[3]);
}

int64_t wasp_hc_lseek(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	struct wasp_file *f = file_of(v, a[0]);
	if (!f)
		return -EBADF;
	if (a[2] > 2)
		return -EINVAL;
	off_t r = lseek(f->host_fd, (off_t)a[1], (int)a[2]); /* 0,1,2 = SEEK_SET/CUR/END */
	return r < 0 ? -errno : r;
}

int64_t wasp_hc_fstat(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)opaque;
	struct wasp_file *f = file_of(v, a[0]);
	struct stat st;
	if (!f)
		return -EBADF;
	struct wasp_stat *out = wasp_virtine_gpa_w(v, a[1], sizeof *out);
	if (!out)
		return -EFAULT;
	if (fstat(f->host_fd, &st) < 0)
		return -errno;
	struct wasp_stat ws = {
		.size = (uint64_t)st.st_size,
		.mode = st.st_mode,
		.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
	};
	memcpy(out, &ws, sizeof ws);
	return 0;
}

/* ---- written files, for checkpoints (ckpt/ckpt_files.c) -------------- */

int wasp_virtine_sandbox_open(struct wasp_virtine *v, const char *path, int flags)
{
	if (v->sandbox_fd < 0)
		return -EACCES;
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW),
		.mode = (flags & O_CREAT) ? 0644 : 0,
		.resolve = sandbox_resolve(v),
	};
	/* O_NOFOLLOW: the last component only; a link in the middle is
	 * followed beneath the sandbox as for the guest. A link at the end
	 * is the guest's business too, so allow it unless creating. */
	if (!(flags & O_CREAT))
		how.flags &= ~(uint64_t)O_NOFOLLOW;
	int fd = (int)syscall(SYS_openat2, v->sandbox_fd, path, &how, sizeof how);
	struct stat st;
	return regular_only(fd, &st, false);
}

int wasp_virtine_written_at(const struct wasp_virtine *v, unsigned idx,
			    struct wasp_written_file *out)
{
	if (idx >= WASP_MAX_WRITTEN)
		return -EINVAL;
	if (idx >= v->nwritten)
		return 0;
	const struct wasp_written *w = &v->written[idx];
	*out = (struct wasp_written_file){.path = w->path, .sum_len = w->sum_len, .sum = w->sum};
	return 1;
}

int wasp_virtine_written_open(struct wasp_virtine *v, unsigned idx)
{
	if (idx >= v->nwritten)
		return -EINVAL;
	struct wasp_written *w = &v->written[idx];
	/* The guest's own file when it is open (the path may lead elsewhere
	 * by now); by path, checked below, where /proc is not mounted. */
	for (int i = 0; i < WASP_MAX_FILES; i++)
		if (v->files[i].host_fd >= 0 && v->files[i].written == (int)idx) {
			int fd = open_fd_again(v->files[i].host_fd, O_RDONLY);
			if (fd >= 0)
				return fd;
			break;
		}
	int fd = wasp_virtine_sandbox_open(v, w->path, O_RDONLY);
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (st.st_dev != w->dev || st.st_ino != w->ino) {
		w->dev = st.st_dev;
		w->ino = st.st_ino;
		w->sum_len = w->sum = 0;
	}
	return fd;
}

void wasp_virtine_written_set_sum(struct wasp_virtine *v, unsigned idx, uint64_t len,
				  uint32_t sum)
{
	if (idx < v->nwritten) {
		v->written[idx].sum_len = len;
		v->written[idx].sum = sum;
	}
}

int wasp_virtine_written_add(struct wasp_virtine *v, const char *path, uint64_t len, uint32_t sum)
{
	int fd = wasp_virtine_sandbox_open(v, path, O_RDONLY);
	if (fd < 0)
		return wasp_fail(fd, "the guest's file '%s' in %s: %s", path,
				 v->cfg.sandbox_dir ? v->cfg.sandbox_dir : "(no directory)",
				 strerror(-fd));
	int idx = written_entry(v, fd, path, true);
	close(fd);
	if (idx < 0)
		return wasp_fail(idx, "the guest's file '%s': %s", path, strerror(-idx));
	v->written[idx].sum_len = len;
	v->written[idx].sum = sum;
	return 0;
}

int64_t wasp_virtine_dir_grown(const struct wasp_virtine *v)
{
	return v->dir_grown;
}

void wasp_virtine_set_dir_grown(struct wasp_virtine *v, int64_t n)
{
	v->dir_grown = n;
}

/* ---- the sandbox as a whole: listings, files the guest has not seen --- */

struct walk {
	struct wasp_virtine *v;
	unsigned max, n;
	int (*fn)(void *ctx, const char *path);
	void *ctx;
	char path[PATH_MAX];
};

static int walk_dir(struct walk *w, int dfd, size_t len, int depth)
{
	if (depth > 32)
		return 0; /* not listed at a checkpoint, nor looked for at a restore */
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t nl = strlen(de->d_name);
		if (len + nl + 2 > sizeof w->path)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* vanished meanwhile */
		size_t at = len;
		if (len)
			w->path[at++] = '/';
		memcpy(w->path + at, de->d_name, nl + 1);
		if (S_ISREG(st.st_mode)) {
			if (w->v->nunseen && unseen_index(w->v, &st) >= 0)
				continue;
			if (w->n == w->max)
				r = -E2BIG;
			else if ((r = w->fn(w->ctx, w->path)) >= 0)
				w->n++;
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = walk_dir(w, sub, at + nl, depth + 1);
		}
		w->path[len] = '\0';
	}
	closedir(d);
	return r;
}

int wasp_virtine_sandbox_walk(struct wasp_virtine *v, unsigned max,
			      int (*fn)(void *ctx, const char *path), void *ctx)
{
	if (v->sandbox_fd < 0)
		return 0;
	struct walk *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	*w = (struct walk){.v = v, .max = max, .fn = fn, .ctx = ctx};
	int dfd = openat(v->sandbox_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? -errno : walk_dir(w, dfd, 0, 0);
	if (r >= 0)
		r = (int)w->n;
	free(w);
	return r;
}

int wasp_virtine_unseen_add(struct wasp_virtine *v, const char *path)
{
	int fd = wasp_virtine_sandbox_open(v, path, O_RDONLY);
	if (fd < 0)
		return wasp_fail(fd, "'%s' in %s: %s", path, v->cfg.sandbox_dir, strerror(-fd));
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return wasp_fail(r, "'%s' in %s: %s", path, v->cfg.sandbox_dir, strerror(-r));
	if (unseen_index(v, &st) >= 0)
		return 0;
	struct wasp_unseen *n = realloc(v->unseen, (v->nunseen + 1) * sizeof *n);
	if (!n)
		return wasp_fail(-ENOMEM, "out of memory");
	v->unseen = n;
	v->unseen[v->nunseen++] = (struct wasp_unseen){.dev = st.st_dev, .ino = st.st_ino};
	return 0;
}
