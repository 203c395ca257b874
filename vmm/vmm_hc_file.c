/*
 * vmm_hc_file.c: file hypercalls confined to one host directory.
 *
 * Confinement is the kernel's, not ours: every open goes through openat2()
 * with RESOLVE_BENEATH relative to the sandbox directory, which refuses
 * absolute paths, `..` that climbs out, and symlinks that lead out, all
 * atomically (no check-then-open race). Only regular files may be opened,
 * and they are opened non-blocking first so a FIFO planted in the sandbox
 * cannot hang the host.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm_internal.h"

int wasp_hc_files_init(struct wasp_virtine *v)
{
	for (int i = 0; i < WASP_MAX_FILES; i++)
		v->files[i].host_fd = -1;
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
	if (v->sandbox_fd >= 0)
		close(v->sandbox_fd);
	v->sandbox_fd = -1;
}

static struct wasp_file *file_of(struct wasp_virtine *v, uint64_t fd)
{
	if (fd < WASP_FIRST_FD || fd >= WASP_FIRST_FD + WASP_MAX_FILES)
		return NULL;
	struct wasp_file *f = &v->files[fd - WASP_FIRST_FD];
	return f->host_fd >= 0 ? f : NULL;
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

/* Opens path beneath the sandbox into files[slot]. Returns 0 or -errno. */
static int open_in_sandbox(struct wasp_virtine *v, int slot, const char *path, int guest_flags,
			   int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, v->sandbox_fd, path, &how, sizeof how);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EACCES;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);

	char *copy = strdup(path);
	if (!copy) {
		close(fd);
		return -ENOMEM;
	}
	v->files[slot] = (struct wasp_file){.host_fd = fd, .flags = guest_flags, .path = copy};
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

	int r = open_in_sandbox(v, slot, path, (int)a[1], flags, (mode_t)(a[2] & 0777));
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
	if (v->sandbox_fd < 0)
		return wasp_fail(-EACCES, "the guest had '%s' open but no sandbox directory was given",
				 path);
	if (guest_fd < WASP_FIRST_FD || guest_fd >= WASP_FIRST_FD + WASP_MAX_FILES ||
	    v->files[guest_fd - WASP_FIRST_FD].host_fd >= 0)
		return wasp_fail(-EINVAL, "bad or duplicate guest fd %u for '%s'", guest_fd, path);
	/* Never create or truncate on restore: the file must be the one the
	 * guest was using, at the offset it had reached. */
	int hflags = host_flags((uint64_t)flags & ~(uint64_t)(WASP_O_CREAT | WASP_O_TRUNC | WASP_O_EXCL));
	if (hflags < 0 || offset < 0)
		return wasp_fail(-EINVAL, "bad flags or offset for '%s'", path);
	int r = open_in_sandbox(v, guest_fd - WASP_FIRST_FD, path, flags, hflags, 0);
	if (r < 0)
		return wasp_fail(r, "cannot reopen the guest's file '%s' in %s: %s", path,
				 v->cfg.sandbox_dir, strerror(-r));
	if (lseek(v->files[guest_fd - WASP_FIRST_FD].host_fd, offset, SEEK_SET) < 0) {
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
	*f = (struct wasp_file){.host_fd = -1};
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
	const void *buf = wasp_virtine_gpa(v, a[1], a[2]);
	if (!buf)
		return -EFAULT;
	ssize_t n = offset < 0 ? write(f->host_fd, buf, a[2])
			       : pwrite(f->host_fd, buf, a[2], (off_t)offset);
	return n < 0 ? -errno : n;
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
