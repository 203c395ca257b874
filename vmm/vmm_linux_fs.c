/*
 * vmm_linux_fs.c: the Linux personality's descriptor and path system calls
 * (docs/linux.md, "Files and the sandbox").
 *
 * Descriptors. fds 0, 1 and 2 are the process's stdin, stdout and stderr
 * (the embedder's cfg.stdin_fd, console_fd and stderr_fd), under the
 * stdin_read and console_write permissions; closing one only forgets it
 * (lx->stdio_closed). fds 3.. are v->files[], the same slots the file
 * hypercalls use, so a checkpoint carries each one's path, open(2) flags
 * and offset, and the written-file, quota and unseen bookkeeping of
 * vmm_hc_file.c applies to them unchanged. A duplicate of 0-2 (dup(1)) is
 * a slot whose path is "/stdin", "/stdout" or "/stderr": a stored path
 * never starts with '/', so the name cannot be a file's.
 *
 * Paths. The sandbox directory is the program's root and working
 * directory. Every path is made relative to the root (a directory fd
 * contributes the path it was opened by) and resolved by the kernel with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from the sandbox fd, so
 * "..", absolute paths and symlinks (absolute or planted) never lead out
 * and there is no check-then-use race. A call with no openat2 form acts
 * either on an O_PATH fd of what the path names (stat, chmod, access,
 * readlink, utimes) or on the last component inside its parent directory
 * opened that way (mkdir, unlink, rmdir, rename), never following a
 * symlink there.
 *
 * A handler that would block (stdin with nothing to read, a full stdout
 * pipe, poll) waits kick-aware: a pause or the deadline interrupts it, and
 * when no byte moved the call is restarted (lx->restart) once the run
 * goes on, here or after a restore.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmm_linux.h"

#define LX_MAX_RW 0x7ffff000ull /* MAX_RW_COUNT: what one read or write moves at most */
#define LX_IOV_MAX 1024         /* UIO_MAXIOV */
#define LX_AT_FDCWD (-100)
#define LX_O_LARGEFILE 0x8000 /* F_GETFL shows it; 0 in glibc's headers */
#define LX_LOCK_MAND 32        /* flock(): ignored by Linux since 5.15 */
#define LX_TCGETS 0x5401
#define LX_TIOCGWINSZ 0x5413
#define LX_KTERMIOS_SIZE 36 /* the kernel's struct termios, which TCGETS fills */

/* O_NONBLOCK set with F_SETFL on fd 0, 1 or 2: kept beside the closed
 * bits in lx->stdio_closed (so checkpoints carry it), never set on the
 * host's own descriptors, which the embedder shares. */
#define LX_STDIO_NONBLOCK(n) (1u << (8 + (n)))

_Static_assert(sizeof(struct stat) == 144, "the host's struct stat is not Linux x86-64's");
_Static_assert(sizeof(struct statx) == 256, "struct statx");
_Static_assert(sizeof(struct iovec) == 16 && sizeof(struct pollfd) == 8, "iovec, pollfd");

static const char *const stdio_name[3] = {"/stdin", "/stdout", "/stderr"};

/* ---- descriptors --------------------------------------------------------- */

struct lxfd {
	bool stdio;            /* one of 0-2, or a duplicate of one */
	int n;                 /* which (0 stdin, 1 stdout, 2 stderr) */
	int host;              /* the host fd to use */
	bool nonblock;         /* stdio: O_NONBLOCK as the program set it */
	struct wasp_file *f;   /* the slot (NULL for 0-2 themselves) */
};

static int stdio_host(const struct wasp_virtine *v, int n)
{
	return n == 0 ? v->cfg.stdin_fd : n == 1 ? v->cfg.console_fd : v->cfg.stderr_fd;
}

static int stdio_of_path(const char *path)
{
	for (int n = 0; n < 3; n++)
		if (!strcmp(path, stdio_name[n]))
			return n;
	return -1;
}

/* The descriptor `fd` (an unsigned int in Linux's calls), or -EBADF. */
static int get_fd(struct wasp_virtine *v, uint64_t fd64, struct lxfd *d)
{
	uint32_t fd = (uint32_t)fd64;
	if (fd < WASP_FIRST_FD) {
		if (v->lx->stdio_closed & (1u << fd))
			return -EBADF;
		*d = (struct lxfd){.stdio = true,
				   .n = (int)fd,
				   .host = stdio_host(v, (int)fd),
				   .nonblock = v->lx->stdio_closed & LX_STDIO_NONBLOCK(fd)};
		return 0;
	}
	if (fd >= WASP_FIRST_FD + WASP_MAX_FILES)
		return -EBADF;
	struct wasp_file *f = &v->files[fd - WASP_FIRST_FD];
	if (f->host_fd < 0)
		return -EBADF;
	*d = (struct lxfd){.host = f->host_fd, .f = f};
	if (f->path[0] == '/') {
		d->stdio = true;
		d->n = stdio_of_path(f->path);
		d->nonblock = f->flags & O_NONBLOCK;
	}
	return 0;
}

/* A regular file or directory fd (not stdio), or -EBADF. */
static struct wasp_file *file_fd(struct wasp_virtine *v, uint64_t fd)
{
	struct lxfd d;
	if (get_fd(v, fd, &d) < 0 || d.stdio)
		return NULL;
	return d.f;
}

/* The lowest free slot at or above guest fd `min`, or -EMFILE. */
static int free_slot(const struct wasp_virtine *v, uint64_t min)
{
	for (uint64_t fd = min < WASP_FIRST_FD ? WASP_FIRST_FD : min;
	     fd < WASP_FIRST_FD + WASP_MAX_FILES; fd++)
		if (v->files[fd - WASP_FIRST_FD].host_fd < 0)
			return (int)(fd - WASP_FIRST_FD);
	return -EMFILE;
}

static void slot_free(struct wasp_file *f)
{
	close(f->host_fd);
	free(f->path);
	*f = (struct wasp_file){.host_fd = -1, .written = -1};
}

/* A host fd on the stdio stream n, for a duplicate of it. With no stdin
 * the program's fd 0 reads EOF: /dev/null stands for it. */
static int stdio_dup(const struct wasp_virtine *v, int n)
{
	int fd = n == 0 && v->cfg.no_stdin ? open("/dev/null", O_RDONLY | O_CLOEXEC)
					   : fcntl(stdio_host(v, n), F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

/* Fills slot `slot` with a duplicate of d (a new host fd, the same path
 * and flags without O_CLOEXEC, plus `cloexec`). After a restore the two
 * no longer share an offset: each is reopened on its own. */
static int dup_into(struct wasp_virtine *v, const struct lxfd *d, int slot, bool cloexec)
{
	int host;
	const char *path;
	int flags;
	if (d->stdio) {
		host = stdio_dup(v, d->n);
		path = stdio_name[d->n];
		flags = (d->n == 0 ? O_RDONLY : O_WRONLY) | (d->nonblock ? O_NONBLOCK : 0);
	} else {
		host = fcntl(d->host, F_DUPFD_CLOEXEC, 3);
		host = host < 0 ? -errno : host;
		path = d->f->path;
		flags = d->f->flags & ~O_CLOEXEC;
	}
	if (host < 0)
		return host;
	char *copy = strdup(path);
	if (!copy) {
		close(host);
		return -ENOMEM;
	}
	v->files[slot] = (struct wasp_file){.host_fd = host,
					    .flags = flags | (cloexec ? O_CLOEXEC : 0),
					    .path = copy,
					    .written = d->stdio ? -1 : d->f->written};
	return WASP_FIRST_FD + slot;
}

int wasp_lx_stdio_restore(struct wasp_virtine *v, unsigned guest_fd, const char *path, int flags)
{
	int n = stdio_of_path(path);
	if (n < 0)
		return wasp_fail(-EINVAL, "fd %u: '%s' is neither a file in the sandbox nor stdio",
				 guest_fd, path);
	int host = stdio_dup(v, n);
	char *copy = strdup(path);
	if (host < 0 || !copy) {
		if (host >= 0)
			close(host);
		free(copy);
		return wasp_fail(host < 0 ? host : -ENOMEM, "fd %u (a duplicate of %s): %s", guest_fd,
				 path + 1, strerror(host < 0 ? -host : ENOMEM));
	}
	v->files[guest_fd - WASP_FIRST_FD] =
	    (struct wasp_file){.host_fd = host, .flags = flags, .path = copy, .written = -1};
	return 0;
}

/* ---- guest buffers ------------------------------------------------------- */

/* Host iovecs for the program's `cnt` iovecs at addr, each checked (for
 * writing into when `to_guest`), the total clamped as Linux does. The
 * number of host iovecs (empty ones are dropped), or -errno. */
static int user_iov(struct wasp_virtine *v, uint64_t addr, uint64_t cnt, bool to_guest,
		    struct iovec *out)
{
	if (cnt > LX_IOV_MAX)
		return -EINVAL;
	if (cnt == 0)
		return 0;
	const struct iovec *in = wasp_lx_user_r(v, addr, cnt * sizeof *in);
	if (!in)
		return -EFAULT;
	uint64_t total = 0;
	int n = 0;
	for (uint64_t i = 0; i < cnt; i++) {
		struct iovec io;
		memcpy(&io, &in[i], sizeof io);
		if ((int64_t)io.iov_len < 0)
			return -EINVAL;
		if (io.iov_len > LX_MAX_RW - total)
			io.iov_len = LX_MAX_RW - total;
		if (!io.iov_len)
			continue;
		uint64_t base = (uint64_t)(uintptr_t)io.iov_base;
		void *p = to_guest ? wasp_lx_user_w(v, base, io.iov_len)
				   : (void *)wasp_lx_user_r(v, base, io.iov_len);
		if (!p)
			return -EFAULT;
		out[n++] = (struct iovec){p, io.iov_len};
		total += io.iov_len;
	}
	return n;
}

/* One buffer as an iovec (read/write/pread/pwrite). */
static int user_buf(struct wasp_virtine *v, uint64_t addr, uint64_t len, bool to_guest,
		    struct iovec *out)
{
	if (len > LX_MAX_RW)
		len = LX_MAX_RW;
	if (!len)
		return 0;
	void *p = to_guest ? wasp_lx_user_w(v, addr, len) : (void *)wasp_lx_user_r(v, addr, len);
	if (!p)
		return -EFAULT;
	*out = (struct iovec){p, len};
	return 1;
}

/* ---- stdio ------------------------------------------------------------- */

/* Marks the call for a restart (it ran into the run's kick with no byte
 * moved) and answers what the program will never see. */
static int64_t restart(struct wasp_virtine *v)
{
	v->lx->restart = true;
	return 0;
}

static int64_t stdio_read(struct wasp_virtine *v, const struct lxfd *d, const struct iovec *iov,
			  int n)
{
	if (d->n != 0)
		return -EBADF;
	if (!wasp_lx_allowed(v, WASP_HC_STDIN_READ))
		return -EPERM;
	if (v->cfg.no_stdin || n == 0)
		return 0;
	for (;;) {
		if (d->nonblock) {
			struct pollfd p = {.fd = d->host, .events = POLLIN};
			if (poll(&p, 1, 0) == 0)
				return -EAGAIN;
		} else {
			int r = wasp_wait_ready(v, d->host, POLLIN);
			if (r == 0)
				return restart(v);
			if (r < 0)
				return r;
		}
		ssize_t got = readv(d->host, iov, n);
		if (got >= 0)
			return got;
		/* Someone else took the input, or the host's fd is
		 * non-blocking: wait again (a blocking read never fails so). */
		if ((errno == EAGAIN || errno == EINTR) && !d->nonblock)
			continue;
		return -errno;
	}
}

/* O_NONBLOCK on a stdout the program made so: what fits now. */
static int64_t write_nonblock(int fd, const char *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, 0) <= 0)
			break;
		size_t chunk = len - done < PIPE_BUF ? len - done : PIPE_BUF;
		ssize_t w = write(fd, buf + done, chunk);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return done ? (int64_t)done : -errno;
		done += (size_t)w;
	}
	return done ? (int64_t)done : -EAGAIN;
}

static int64_t stdio_write(struct wasp_virtine *v, const struct lxfd *d, const struct iovec *iov,
			   int n)
{
	if (d->n == 0)
		return -EBADF;
	if (!wasp_lx_allowed(v, WASP_HC_CONSOLE_WRITE))
		return -EPERM;
	int64_t done = 0;
	for (int i = 0; i < n; i++) {
		int64_t w = d->nonblock ? write_nonblock(d->host, iov[i].iov_base, iov[i].iov_len)
					: wasp_console_write(v, d->host, iov[i].iov_base, iov[i].iov_len);
		if (w < 0) {
			if (done)
				break;
			return w == -EINTR && !d->nonblock ? restart(v) : w;
		}
		done += w;
		if ((size_t)w < iov[i].iov_len)
			break; /* kicked part way, or no more room */
	}
	if (d->n == 1)
		v->console_bytes += (uint64_t)done;
	return done;
}

/* ---- read and write -------------------------------------------------------- */

/* offset < 0: at the file position. */
static int64_t do_readv(struct wasp_virtine *v, uint64_t fd, const struct iovec *iov, int n,
			int64_t offset)
{
	struct lxfd d;
	int r = get_fd(v, fd, &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return offset >= 0 ? -ESPIPE : stdio_read(v, &d, iov, n);
	if (d.f->flags & O_PATH)
		return -EBADF;
	ssize_t got = offset < 0 ? readv(d.host, iov, n) : preadv(d.host, iov, n, (off_t)offset);
	return got < 0 ? -errno : got;
}

static int64_t do_writev(struct wasp_virtine *v, uint64_t fd, const struct iovec *iov, int n,
			 int64_t offset)
{
	struct lxfd d;
	int r = get_fd(v, fd, &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return offset >= 0 ? -ESPIPE : stdio_write(v, &d, iov, n);
	if ((d.f->flags & O_ACCMODE) == O_RDONLY || (d.f->flags & O_PATH))
		return -EBADF;
	if (n == 0)
		return 0;
	return wasp_file_writev(v, d.f, iov, n, offset);
}

/* The fd is checked before the buffer, as Linux does (EBADF wins). */
static int fd_ok(struct wasp_virtine *v, uint64_t fd)
{
	struct lxfd d;
	return get_fd(v, fd, &d);
}

int64_t wasp_lx_sys_read(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io;
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_buf(v, a[1], a[2], true, &io)) < 0)
		return r;
	return do_readv(v, a[0], &io, r, -1);
}

int64_t wasp_lx_sys_write(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io;
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_buf(v, a[1], a[2], false, &io)) < 0)
		return r;
	return do_writev(v, a[0], &io, r, -1);
}

int64_t wasp_lx_sys_pread64(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io;
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_buf(v, a[1], a[2], true, &io)) < 0)
		return r;
	if ((int64_t)a[3] < 0)
		return -EINVAL;
	return do_readv(v, a[0], &io, r, (int64_t)a[3]);
}

int64_t wasp_lx_sys_pwrite64(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io;
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_buf(v, a[1], a[2], false, &io)) < 0)
		return r;
	if ((int64_t)a[3] < 0)
		return -EINVAL;
	return do_writev(v, a[0], &io, r, (int64_t)a[3]);
}

int64_t wasp_lx_sys_readv(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io[LX_IOV_MAX];
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_iov(v, a[1], a[2], true, io)) < 0)
		return r;
	return do_readv(v, a[0], io, r, -1);
}

int64_t wasp_lx_sys_writev(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io[LX_IOV_MAX];
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_iov(v, a[1], a[2], false, io)) < 0)
		return r;
	return do_writev(v, a[0], io, r, -1);
}

/* preadv/pwritev: the offset is pos_l (pos_h is its high half on 32-bit
 * only). */
int64_t wasp_lx_sys_preadv(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io[LX_IOV_MAX];
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_iov(v, a[1], a[2], true, io)) < 0)
		return r;
	if ((int64_t)a[3] < 0)
		return -EINVAL;
	return do_readv(v, a[0], io, r, (int64_t)a[3]);
}

int64_t wasp_lx_sys_pwritev(struct wasp_virtine *v, const uint64_t a[6])
{
	struct iovec io[LX_IOV_MAX];
	int r = fd_ok(v, a[0]);
	if (r < 0 || (r = user_iov(v, a[1], a[2], false, io)) < 0)
		return r;
	if ((int64_t)a[3] < 0)
		return -EINVAL;
	return do_writev(v, a[0], io, r, (int64_t)a[3]);
}

int64_t wasp_lx_sys_lseek(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return -ESPIPE;
	if (a[2] > SEEK_HOLE)
		return -EINVAL;
	off_t o = lseek(d.host, (off_t)a[1], (int)a[2]);
	return o < 0 ? -errno : o;
}

int64_t wasp_lx_sys_close(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (!d.f) {
		v->lx->stdio_closed |= 1u << d.n;
		v->lx->stdio_closed &= ~LX_STDIO_NONBLOCK(d.n);
		return 0;
	}
	slot_free(d.f);
	return 0;
}

/* ---- paths --------------------------------------------------------------- */

/* The program's path `path` seen from dirfd, as a path relative to the
 * sandbox's root in out[PATH_MAX]: no leading '/', and "/" for the root
 * itself (RESOLVE_IN_ROOT takes it so). A dirfd contributes the path it
 * was opened by; an absolute path or AT_FDCWD starts at the root. The
 * whole path is resolved by the kernel, so ".." and symlinks keep their
 * meaning and never leave the root. */
static int lx_join(struct wasp_virtine *v, uint64_t dirfd, const char *path, char *out)
{
	const char *base = "";
	if (path[0] != '/' && (int32_t)dirfd != LX_AT_FDCWD) {
		struct lxfd d;
		int r = get_fd(v, dirfd, &d);
		if (r < 0)
			return r;
		struct stat st;
		if (d.stdio || fstat(d.host, &st) < 0 || !S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if (strcmp(d.f->path, "."))
			base = d.f->path;
	}
	const char *rel = path;
	while (*rel == '/')
		rel++;
	int len = snprintf(out, PATH_MAX, "%s%s%s", base, *base && *rel ? "/" : "",
			   *base || *rel ? rel : "/");
	if (len < 0 || len >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Reads the program's path and joins it (lx_join). Without a sandbox
 * every path is -ENOENT; a path call needs the "open" permission. */
static int lx_path(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, char *out)
{
	char path[PATH_MAX];
	int n = wasp_lx_user_str(v, upath, path, sizeof path);
	if (n < 0)
		return n;
	if (v->sandbox_fd < 0 || n == 0)
		return -ENOENT;
	if (!wasp_lx_allowed(v, WASP_HC_OPEN))
		return -EPERM;
	return lx_join(v, dirfd, path, out);
}

/* openat2 from the root, for looking things up (O_PATH). */
static int root_open(struct wasp_virtine *v, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, v->sandbox_fd, path, &how, sizeof how);
	/* a rename racing "..": the kernel gave up; open(2) never says EAGAIN */
	for (int i = 0; fd < 0 && errno == EAGAIN && i < 8; i++)
		fd = (int)syscall(SYS_openat2, v->sandbox_fd, path, &how, sizeof how);
	return fd < 0 ? -errno : fd;
}

/* A host fd (the caller closes it) on the file dirfd itself: the root for
 * AT_FDCWD, any fd else, stdio too (AT_EMPTY_PATH, statx(fd, NULL)). */
static int fd_self(struct wasp_virtine *v, uint64_t dirfd)
{
	if ((int32_t)dirfd == LX_AT_FDCWD)
		return v->sandbox_fd < 0 ? -ENOENT : root_open(v, "/", O_PATH);
	struct lxfd d;
	int r = get_fd(v, dirfd, &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return stdio_dup(v, d.n);
	int fd = fcntl(d.host, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

/* An O_PATH host fd (the caller closes it) on what the program's
 * (dirfd, upath) names, following a last symlink unless nofollow; with
 * empty_ok, "" names dirfd itself. A file a restore hid is not there. */
static int lx_lookup(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, bool nofollow,
		     bool empty_ok)
{
	char path[PATH_MAX], joined[PATH_MAX];
	int n = wasp_lx_user_str(v, upath, path, sizeof path);
	if (n < 0)
		return n;
	if (n == 0 && empty_ok)
		return fd_self(v, dirfd);
	int r = lx_path(v, dirfd, upath, joined);
	if (r < 0)
		return r;
	int fd = root_open(v, joined, O_PATH | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0 || !v->nunseen)
		return fd;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && wasp_file_unseen(v, st.st_dev, st.st_ino)) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

/* The parent directory (an O_PATH fd in pfd) and last component of a
 * path, for the calls that make, remove or rename a name. */
struct lx_last {
	int pfd;
	char name[NAME_MAX + 1];
	char path[PATH_MAX]; /* the whole, relative to the root, no trailing '/' */
	bool slash;          /* it ended in '/' */
	bool root;           /* it names the root ("/") */
	int dot;             /* its last component is "." (1) or ".." (2) */
};

static int lx_parent(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, struct lx_last *l)
{
	l->pfd = -1;
	int r = lx_path(v, dirfd, upath, l->path);
	if (r < 0)
		return r;
	size_t len = strlen(l->path);
	l->slash = false;
	while (len > 0 && l->path[len - 1] == '/') {
		l->path[--len] = '\0';
		l->slash = true;
	}
	char *last = strrchr(l->path, '/');
	const char *name = last ? last + 1 : l->path;
	l->root = len == 0;
	l->dot = !strcmp(name, ".") ? 1 : !strcmp(name, "..") ? 2 : 0;
	if (l->root || l->dot)
		return 0;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	strcpy(l->name, name);
	if (last) {
		*last = '\0';
		l->pfd = root_open(v, l->path, O_PATH | O_DIRECTORY);
		*last = '/';
	} else {
		l->pfd = root_open(v, "/", O_PATH | O_DIRECTORY);
	}
	return l->pfd < 0 ? l->pfd : 0;
}

static void lx_last_done(struct lx_last *l)
{
	if (l->pfd >= 0)
		close(l->pfd);
	l->pfd = -1;
}

/* "/proc/self/fd/N" for a host fd: acting through it reaches exactly the
 * file fd stands on (what glibc does for O_PATH fds). */
static const char *fd_path(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

static int64_t lx_openat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t flags,
			 uint64_t mode, uint64_t resolve)
{
	char path[PATH_MAX];
	int r = lx_path(v, dirfd, upath, path);
	if (r < 0)
		return r;
	if (!strcmp(path, "/"))
		strcpy(path, "."); /* a stored path never starts with '/' */
	if ((flags & O_TMPFILE) == O_TMPFILE)
		return -EOPNOTSUPP; /* a file with no name has no path to checkpoint */
	int slot = free_slot(v, 0);
	if (slot < 0)
		return slot;
	const int pass = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY |
			 O_NOFOLLOW | O_PATH | O_SYNC | O_DSYNC | O_NOATIME | O_DIRECT;
	int hflags = ((int)flags & pass) | O_LARGEFILE;
	int keep = (int)flags & (pass | O_NONBLOCK | O_CLOEXEC);
	mode_t m = (flags & O_CREAT) ? (mode_t)(mode & 07777 & ~(uint64_t)v->lx->umask) : 0;
	r = wasp_file_open(v, slot, path, keep, hflags, m, resolve);
	return r < 0 ? r : WASP_FIRST_FD + slot;
}

int64_t wasp_lx_sys_open(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_openat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1], a[2], 0);
}

int64_t wasp_lx_sys_creat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_openat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1],
			 0);
}

int64_t wasp_lx_sys_openat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_openat(v, a[0], a[1], a[2], a[3], 0);
}

/* openat2(dirfd, path, how, size). The program's own RESOLVE_BENEATH or
 * RESOLVE_IN_ROOT is honoured relative to the root only (AT_FDCWD, an
 * absolute path, or a dirfd on the root); relative to a subdirectory it is
 * refused with -EXDEV. Its other resolve flags narrow the sandbox's. */
int64_t wasp_lx_sys_openat2(struct wasp_virtine *v, const uint64_t a[6])
{
	struct open_how how;
	if (a[3] < sizeof how)
		return -EINVAL;
	if (a[3] > WASP_PAGE_SIZE)
		return -E2BIG;
	const uint8_t *p = wasp_lx_user_r(v, a[2], a[3]);
	if (!p)
		return -EFAULT;
	for (uint64_t i = sizeof how; i < a[3]; i++)
		if (p[i])
			return -E2BIG;
	memcpy(&how, p, sizeof how);
	const uint64_t known = RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS |
			       RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_CACHED;
	if (how.resolve & ~known || how.flags >> 32 || how.mode & ~07777ull)
		return -EINVAL;
	if (how.mode && !(how.flags & O_CREAT) && (how.flags & O_TMPFILE) != O_TMPFILE)
		return -EINVAL;
	if ((how.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)) ==
	    (RESOLVE_BENEATH | RESOLVE_IN_ROOT))
		return -EINVAL;
	uint64_t resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
			   (how.resolve & (RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_CACHED));
	if (how.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) && (int32_t)a[0] != LX_AT_FDCWD) {
		struct wasp_file *f = file_fd(v, a[0]);
		if (!f)
			return -EBADF;
		if (strcmp(f->path, "."))
			return -EXDEV;
	}
	if (how.resolve & RESOLVE_BENEATH)
		resolve = (resolve & ~(uint64_t)RESOLVE_IN_ROOT) | RESOLVE_BENEATH;
	if (how.resolve & RESOLVE_BENEATH) {
		/* Beneath the root: an absolute path is refused, as by the
		 * kernel, not taken as the root. */
		char path[PATH_MAX];
		int n = wasp_lx_user_str(v, a[1], path, sizeof path);
		if (n < 0)
			return n;
		if (path[0] == '/')
			return -EXDEV;
	}
	return lx_openat(v, a[0], a[1], how.flags, how.mode, resolve);
}

/* ---- inode numbers ------------------------------------------------------
 * Programs keep inode numbers and compare them later. SQLite, before each
 * write, checks that its open database is still the file at its path
 * (stat's st_ino against the one it saw at open) and calls the database
 * read-only when they differ. A restore reopens files in another directory
 * (a copy, another host), where the host's numbers differ, so a program
 * never sees them: a file in the sandbox shows device LX_VDEV and an inode
 * number made from its path relative to the sandbox root, which a copy of
 * the directory or a migration keeps. The path is the host's own name for
 * the open file (/proc/self/fd), so symlinks, ".." and renames give the
 * number Linux would. A hard link's names get different numbers, and an
 * open file whose name was taken by a rename over it shares the new file's
 * (docs/linux.md, "Inode numbers"). A file outside the sandbox (stdio's
 * terminal or pipe) and an unlinked one keep the host's. */
#define LX_VDEV_MINOR 0x57u /* major 0: an anonymous device, as tmpfs's */

/* `fd`'s path relative to the sandbox root into rel ("" for the root, else
 * "/a/b"); false when it is not in the sandbox. */
static bool sandbox_rel(struct wasp_virtine *v, int fd, char rel[PATH_MAX])
{
	char root[PATH_MAX], link[32];
	if (v->sandbox_fd < 0)
		return false;
	snprintf(link, sizeof link, "/proc/self/fd/%d", v->sandbox_fd);
	ssize_t rn = readlink(link, root, sizeof root - 1);
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t pn = readlink(link, rel, PATH_MAX - 1);
	if (rn <= 0 || pn <= 0)
		return false;
	if (rn == 1) /* the sandbox is / itself */
		rn = 0;
	if (pn < rn || memcmp(rel, root, (size_t)rn) || (pn > rn && rel[rn] != '/'))
		return false;
	memmove(rel, rel + rn, (size_t)(pn - rn));
	rel[pn - rn] = '\0';
	return true;
}

static uint64_t path_ino(const char *rel, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)rel[i]) * 0x100000001b3ull;
	return h ? h : 1;
}

/* The device and inode number the program sees for host fd `fd`, whose
 * host stat is *st: false to show the host's. */
static bool virtual_ids(struct wasp_virtine *v, int fd, const struct stat *st, uint64_t *ino)
{
	char rel[PATH_MAX];
	if (st->st_nlink == 0 && !S_ISDIR(st->st_mode))
		return false; /* unlinked: no path names it */
	if (!sandbox_rel(v, fd, rel))
		return false;
	*ino = path_ino(rel, strlen(rel));
	return true;
}

/* ---- stat ---------------------------------------------------------------- */

static int64_t put_stat(struct wasp_virtine *v, int fd, uint64_t addr)
{
	struct stat st;
	void *out = wasp_lx_user_w(v, addr, sizeof st);
	if (!out)
		return -EFAULT;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint64_t ino;
	if (virtual_ids(v, fd, &st, &ino)) {
		st.st_dev = makedev(0, LX_VDEV_MINOR);
		st.st_ino = ino;
	}
	memcpy(out, &st, sizeof st);
	return 0;
}

static int64_t lx_fstatat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t addr,
			  uint64_t flags)
{
	if (flags & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH))
		return -EINVAL;
	int fd = lx_lookup(v, dirfd, upath, flags & AT_SYMLINK_NOFOLLOW, flags & AT_EMPTY_PATH);
	if (fd < 0)
		return fd;
	int64_t r = put_stat(v, fd, addr);
	close(fd);
	return r;
}

int64_t wasp_lx_sys_stat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_fstatat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1], 0);
}

int64_t wasp_lx_sys_lstat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_fstatat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW);
}

int64_t wasp_lx_sys_newfstatat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_fstatat(v, a[0], a[1], a[2], a[3]);
}

int64_t wasp_lx_sys_fstat(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio && d.n == 0 && v->cfg.no_stdin && !d.f) {
		int fd = stdio_dup(v, 0);
		if (fd < 0)
			return fd;
		int64_t x = put_stat(v, fd, a[1]);
		close(fd);
		return x;
	}
	return put_stat(v, d.host, a[1]);
}

/* statx(dirfd, path, flags, mask, buf) through the host's statx on an
 * O_PATH fd of the file. */
int64_t wasp_lx_sys_statx(struct wasp_virtine *v, const uint64_t a[6])
{
	const uint64_t known = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH |
			       AT_STATX_SYNC_TYPE;
	if (a[2] & ~known || (a[2] & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE)
		return -EINVAL;
	if (a[3] & STATX__RESERVED)
		return -EINVAL;
	struct statx *out = wasp_lx_user_w(v, a[4], sizeof *out);
	if (!out)
		return -EFAULT;
	/* statx(fd, NULL, AT_EMPTY_PATH) is fstat (Linux 6.11) */
	int fd = !a[1] && (a[2] & AT_EMPTY_PATH)
			 ? fd_self(v, a[0])
			 : lx_lookup(v, a[0], a[1], a[2] & AT_SYMLINK_NOFOLLOW, a[2] & AT_EMPTY_PATH);
	if (fd < 0)
		return fd;
	struct statx stx;
	struct stat st;
	uint64_t ino;
	int r = statx(fd, "", AT_EMPTY_PATH | (int)(a[2] & AT_STATX_SYNC_TYPE), (unsigned)a[3], &stx);
	r = r < 0 ? -errno : 0;
	if (r == 0 && fstat(fd, &st) == 0 && virtual_ids(v, fd, &st, &ino)) {
		stx.stx_dev_major = 0;
		stx.stx_dev_minor = LX_VDEV_MINOR;
		stx.stx_ino = ino;
	}
	close(fd);
	if (r == 0)
		memcpy(out, &stx, sizeof stx);
	return r;
}

/* ---- access, chmod, utimes, readlink ------------------------------------ */

/* flags: AT_EACCESS, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH (faccessat2). The
 * answer is the host's for the host's user, who owns what the program
 * made. */
static int64_t lx_faccessat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t mode,
			    uint64_t flags)
{
	if (mode & ~7ull || flags & ~(uint64_t)(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return -EINVAL;
	int fd = lx_lookup(v, dirfd, upath, flags & AT_SYMLINK_NOFOLLOW, flags & AT_EMPTY_PATH);
	if (fd < 0)
		return fd;
	int e = (int)(flags & AT_EACCESS);
	int r = (int)syscall(SYS_faccessat2, fd, "", (int)mode, AT_EMPTY_PATH | e);
	if (r < 0 && (errno == ENOSYS || errno == EINVAL)) {
		char p[32];
		r = faccessat(AT_FDCWD, fd_path(fd, p), (int)mode, e);
	}
	r = r < 0 ? -errno : 0;
	close(fd);
	return r;
}

int64_t wasp_lx_sys_access(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_faccessat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1], 0);
}

int64_t wasp_lx_sys_faccessat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_faccessat(v, a[0], a[1], a[2], 0);
}

int64_t wasp_lx_sys_faccessat2(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_faccessat(v, a[0], a[1], a[2], a[3]);
}

/* chmod follows a last symlink (inside the root, as the lookup did):
 * fchmodat2's AT_EMPTY_PATH where the host has it, /proc otherwise. */
static int64_t lx_fchmodat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t mode)
{
	int fd = lx_lookup(v, dirfd, upath, false, false);
	if (fd < 0)
		return fd;
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
	int r = (int)syscall(SYS_fchmodat2, fd, "", (mode_t)(mode & 07777), AT_EMPTY_PATH);
	if (r < 0 && (errno == ENOSYS || errno == EINVAL)) {
		char p[32];
		r = chmod(fd_path(fd, p), (mode_t)(mode & 07777));
	}
	r = r < 0 ? -errno : 0;
	close(fd);
	return r;
}

int64_t wasp_lx_sys_chmod(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_fchmodat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1]);
}

int64_t wasp_lx_sys_fchmodat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_fchmodat(v, a[0], a[1], a[2]);
}

int64_t wasp_lx_sys_fchmod(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return -EPERM; /* the host's own stdio is not the program's to change */
	if (d.f->flags & O_PATH)
		return -EBADF;
	return fchmod(d.host, (mode_t)(a[1] & 07777)) < 0 ? -errno : 0;
}

/* utimensat(dirfd, path, times, flags); path NULL: the file dirfd is
 * (futimens). */
int64_t wasp_lx_sys_utimensat(struct wasp_virtine *v, const uint64_t a[6])
{
	struct timespec ts[2], *tp = NULL;
	if (a[3] & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return -EINVAL;
	if (a[2]) {
		const void *p = wasp_lx_user_r(v, a[2], sizeof ts);
		if (!p)
			return -EFAULT;
		memcpy(ts, p, sizeof ts);
		for (int i = 0; i < 2; i++)
			if (ts[i].tv_nsec != UTIME_NOW && ts[i].tv_nsec != UTIME_OMIT &&
			    (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000))
				return -EINVAL;
		tp = ts;
	}
	int fd;
	if (!a[1]) {
		if ((int32_t)a[0] == LX_AT_FDCWD)
			return -EFAULT;
		struct lxfd d;
		int r = get_fd(v, a[0], &d);
		if (r < 0)
			return r;
		if (d.stdio)
			return -EPERM;
		if (d.f->flags & O_PATH)
			return -EBADF;
		return futimens(d.host, tp) < 0 ? -errno : 0;
	}
	fd = lx_lookup(v, a[0], a[1], a[3] & AT_SYMLINK_NOFOLLOW, a[3] & AT_EMPTY_PATH);
	if (fd < 0)
		return fd;
	int r = utimensat(fd, "", tp, AT_EMPTY_PATH);
	if (r < 0 && errno == EINVAL) {
		/* a host older than AT_EMPTY_PATH here: the fd's own path; a
		 * symlink itself (nofollow) is then beyond reach */
		struct stat st;
		char p[32];
		if (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode))
			errno = EOPNOTSUPP;
		else
			r = utimensat(AT_FDCWD, fd_path(fd, p), tp, 0);
	}
	r = r < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int64_t lx_readlinkat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t buf,
			     uint64_t size)
{
	if ((int32_t)size <= 0)
		return -EINVAL;
	int fd = lx_lookup(v, dirfd, upath, true, false);
	if (fd < 0)
		return fd;
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;
	if (fstat(fd, &st) < 0)
		n = -errno;
	else if (!S_ISLNK(st.st_mode))
		n = -EINVAL;
	else if ((n = readlinkat(fd, "", target, sizeof target)) < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return n;
	size_t len = (size_t)n < (uint32_t)size ? (size_t)n : (uint32_t)size;
	void *out = wasp_lx_user_w(v, buf, len);
	if (!out)
		return -EFAULT;
	memcpy(out, target, len);
	return (int64_t)len;
}

int64_t wasp_lx_sys_readlink(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_readlinkat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1], a[2]);
}

int64_t wasp_lx_sys_readlinkat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_readlinkat(v, a[0], a[1], a[2], a[3]);
}

/* ---- making and removing names ------------------------------------------ */

static int64_t lx_mkdirat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t mode)
{
	struct lx_last l;
	int r = lx_parent(v, dirfd, upath, &l);
	if (r < 0)
		return r;
	if (l.root || l.dot)
		r = -EEXIST;
	else if (mkdirat(l.pfd, l.name, (mode_t)(mode & 07777 & ~(uint64_t)v->lx->umask)) < 0)
		r = -errno;
	lx_last_done(&l);
	return r;
}

int64_t wasp_lx_sys_mkdir(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_mkdirat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], a[1]);
}

int64_t wasp_lx_sys_mkdirat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_mkdirat(v, a[0], a[1], a[2]);
}

/* Whether name in pfd is a file a restore hid (then it is not there). */
static bool hidden_at(const struct wasp_virtine *v, int pfd, const char *name)
{
	struct stat st;
	return v->nunseen && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && wasp_file_unseen(v, st.st_dev, st.st_ino);
}

static int64_t lx_unlinkat(struct wasp_virtine *v, uint64_t dirfd, uint64_t upath, uint64_t flags)
{
	if (flags & ~(uint64_t)AT_REMOVEDIR)
		return -EINVAL;
	bool rmdir = flags & AT_REMOVEDIR;
	struct lx_last l;
	int r = lx_parent(v, dirfd, upath, &l);
	if (r < 0)
		return r;
	struct stat st;
	if (l.root)
		r = rmdir ? -EBUSY : -EISDIR;
	else if (l.dot)
		r = !rmdir ? -EISDIR : l.dot == 2 ? -ENOTEMPTY : -EINVAL;
	else if (hidden_at(v, l.pfd, l.name))
		r = -ENOENT;
	else if (!rmdir && l.slash)
		/* "file/" names a directory that is not there: as Linux, without
		 * following a symlink */
		r = fstatat(l.pfd, l.name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno
		    : S_ISDIR(st.st_mode)				  ? -EISDIR
									  : -ENOTDIR;
	else if (unlinkat(l.pfd, l.name, rmdir ? AT_REMOVEDIR : 0) < 0)
		r = -errno;
	lx_last_done(&l);
	return r;
}

int64_t wasp_lx_sys_unlink(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_unlinkat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], 0);
}

int64_t wasp_lx_sys_rmdir(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_unlinkat(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], AT_REMOVEDIR);
}

int64_t wasp_lx_sys_unlinkat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_unlinkat(v, a[0], a[1], a[2]);
}

/* A path a rename moved from `from` to `to`: the open files and written
 * files standing on the inode moved (or, for a directory, below it) are
 * found under their new names by a checkpoint's restore. */
static void renamed(struct wasp_virtine *v, const struct stat *moved, const char *from,
		    const char *to)
{
	size_t fl = strlen(from);
	for (int i = 0; i < WASP_MAX_FILES; i++) {
		struct wasp_file *f = &v->files[i];
		struct stat st;
		if (f->host_fd < 0 || f->path[0] == '/')
			continue;
		char *np = NULL;
		if (fstat(f->host_fd, &st) == 0 && st.st_dev == moved->st_dev &&
		    st.st_ino == moved->st_ino)
			np = strdup(to);
		else if (S_ISDIR(moved->st_mode) && !strncmp(f->path, from, fl) && f->path[fl] == '/' &&
			 asprintf(&np, "%s%s", to, f->path + fl) < 0)
			np = NULL;
		if (np && strlen(np) < PATH_MAX) {
			free(f->path);
			f->path = np;
		} else {
			free(np);
		}
	}
	for (unsigned i = 0; i < v->nwritten; i++) {
		struct wasp_written *w = &v->written[i];
		char *np = NULL;
		if (w->dev == moved->st_dev && w->ino == moved->st_ino)
			np = strdup(to);
		else if (S_ISDIR(moved->st_mode) && !strncmp(w->path, from, fl) && w->path[fl] == '/' &&
			 asprintf(&np, "%s%s", to, w->path + fl) < 0)
			np = NULL;
		if (np && strlen(np) < PATH_MAX) {
			free(w->path);
			w->path = np;
		} else {
			free(np);
		}
	}
}

static int64_t lx_renameat2(struct wasp_virtine *v, uint64_t odfd, uint64_t opath, uint64_t ndfd,
			    uint64_t npath, uint64_t flags)
{
	if (flags & ~(uint64_t)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_WHITEOUT) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	struct lx_last *o = malloc(2 * sizeof *o);
	if (!o)
		return -ENOMEM;
	struct lx_last *n = o + 1;
	n->pfd = -1;
	int r = lx_parent(v, odfd, opath, o);
	if (r >= 0)
		r = lx_parent(v, ndfd, npath, n);
	struct stat os, ns;
	bool have_new = false;
	if (r < 0)
		goto out;
	if (flags & RENAME_WHITEOUT) {
		r = -EPERM; /* a whiteout is a device node: not the program's to make */
		goto out;
	}
	if (o->root || o->dot || n->root || n->dot) {
		r = -EBUSY;
		goto out;
	}
	if (hidden_at(v, o->pfd, o->name)) {
		r = -ENOENT;
		goto out;
	}
	if (fstatat(o->pfd, o->name, &os, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISDIR(os.st_mode) && (o->slash || (n->slash && !(flags & RENAME_EXCHANGE)))) {
		r = -ENOTDIR;
		goto out;
	}
	have_new = fstatat(n->pfd, n->name, &ns, AT_SYMLINK_NOFOLLOW) == 0;
	if (syscall(SYS_renameat2, o->pfd, o->name, n->pfd, n->name, (unsigned)flags) < 0) {
		r = -errno;
		goto out;
	}
	/* The paths the open files were opened by, root-relative without
	 * the trailing '/' (lx_parent took it off). */
	renamed(v, &os, o->path, n->path);
	if ((flags & RENAME_EXCHANGE) && have_new)
		renamed(v, &ns, n->path, o->path);
	r = 0;
out:
	lx_last_done(o);
	lx_last_done(n);
	free(o);
	return r;
}

int64_t wasp_lx_sys_rename(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_renameat2(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], (uint64_t)(int64_t)LX_AT_FDCWD,
			    a[1], 0);
}

int64_t wasp_lx_sys_renameat(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_renameat2(v, a[0], a[1], a[2], a[3], 0);
}

int64_t wasp_lx_sys_renameat2(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_renameat2(v, a[0], a[1], a[2], a[3], a[4]);
}

/* ---- sizes, sync, locks, advice ------------------------------------------- */

int64_t wasp_lx_sys_ftruncate(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (!d.stdio && d.f->flags & O_PATH)
		return -EBADF;
	if (d.stdio || (d.f->flags & O_ACCMODE) == O_RDONLY)
		return -EINVAL;
	if ((int64_t)a[1] < 0)
		return -EINVAL;
	return wasp_file_truncate(v, d.f, (int64_t)a[1]);
}

/* truncate(path, len): the file is opened for writing through the usual
 * path (a slot for the call's length), so its written-file record and the
 * quota see the change as for ftruncate. */
int64_t wasp_lx_sys_truncate(struct wasp_virtine *v, const uint64_t a[6])
{
	char path[PATH_MAX];
	int r = lx_path(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], path);
	if (r < 0)
		return r;
	if ((int64_t)a[1] < 0)
		return -EINVAL;
	int slot = free_slot(v, 0);
	if (slot < 0)
		return slot;
	r = wasp_file_open(v, slot, path, O_WRONLY, O_WRONLY | O_LARGEFILE, 0, 0);
	if (r == -EACCES) {
		/* not a regular file: say what Linux says of it */
		int fd = root_open(v, path, O_PATH);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
			r = -EISDIR;
		else if (fd >= 0)
			r = -EINVAL;
		if (fd >= 0)
			close(fd);
	}
	if (r < 0)
		return r;
	r = wasp_file_truncate(v, &v->files[slot], (int64_t)a[1]);
	slot_free(&v->files[slot]);
	return r;
}

int64_t wasp_lx_sys_fallocate(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return -ESPIPE;
	if ((d.f->flags & O_PATH) || (d.f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	int mode = (int)a[1];
	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		break;
	default:
		return (uint32_t)a[1] >> 8 ? -EINVAL : -EOPNOTSUPP;
	}
	return wasp_file_fallocate(v, d.f, mode, (int64_t)a[2], (int64_t)a[3]);
}

static int64_t lx_sync(struct wasp_virtine *v, uint64_t fd, bool data)
{
	struct lxfd d;
	int r = get_fd(v, fd, &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return -EINVAL; /* a pipe or terminal, as far as the program knows */
	if (d.f->flags & O_PATH)
		return -EBADF;
	return (data ? fdatasync(d.host) : fsync(d.host)) < 0 ? -errno : 0;
}

int64_t wasp_lx_sys_fsync(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_sync(v, a[0], false);
}

int64_t wasp_lx_sys_fdatasync(struct wasp_virtine *v, const uint64_t a[6])
{
	return lx_sync(v, a[0], true);
}

/* One process: no lock is ever held by another, so every lock is granted
 * at once. */
int64_t wasp_lx_sys_flock(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (!d.stdio && d.f->flags & O_PATH)
		return -EBADF;
	if (a[1] & LX_LOCK_MAND)
		return 0;
	switch (a[1] & ~(uint64_t)LOCK_NB) {
	case LOCK_SH:
	case LOCK_EX:
	case LOCK_UN:
		return 0;
	default:
		return -EINVAL;
	}
}

int64_t wasp_lx_sys_fadvise64(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return -ESPIPE;
	if (d.f->flags & O_PATH)
		return -EBADF;
	if (a[3] > POSIX_FADV_NOREUSE || (int64_t)a[2] < 0)
		return -EINVAL;
	return 0; /* advice only */
}

/* ---- the working directory and umask ---------------------------------------- */

/* Whether the host fd stands on the sandbox's root. */
static int is_root(struct wasp_virtine *v, int fd)
{
	struct stat a, b;
	if (fstat(fd, &a) < 0 || fstat(v->sandbox_fd, &b) < 0)
		return -errno;
	if (!S_ISDIR(a.st_mode))
		return -ENOTDIR;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* The working directory is the root, always: chdir to it succeeds (a
 * program's chdir("/") or chdir(".")), to anywhere else -EPERM, since
 * every path the program names is resolved from the root. */
int64_t wasp_lx_sys_chdir(struct wasp_virtine *v, const uint64_t a[6])
{
	int fd = lx_lookup(v, (uint64_t)(int64_t)LX_AT_FDCWD, a[0], false, false);
	if (fd < 0)
		return fd;
	int r = is_root(v, fd);
	close(fd);
	return r < 0 ? r : r ? 0 : -EPERM;
}

int64_t wasp_lx_sys_fchdir(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio || v->sandbox_fd < 0)
		return -ENOTDIR;
	r = is_root(v, d.host);
	return r < 0 ? r : r ? 0 : -EPERM;
}

int64_t wasp_lx_sys_getcwd(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[1] < 2)
		return -ERANGE;
	char *out = wasp_lx_user_w(v, a[0], 2);
	if (!out)
		return -EFAULT;
	memcpy(out, "/", 2);
	return 2;
}

int64_t wasp_lx_sys_umask(struct wasp_virtine *v, const uint64_t a[6])
{
	uint32_t old = v->lx->umask;
	v->lx->umask = (uint32_t)a[0] & 0777;
	return old;
}

/* ---- directories ----------------------------------------------------------- */

/* getdents64 straight into the program's buffer; a file a restore hid is
 * taken out of the listing. */
int64_t wasp_lx_sys_getdents64(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (d.stdio)
		return -ENOTDIR;
	uint32_t count = (uint32_t)a[2];
	if (count > LX_MAX_RW)
		count = (uint32_t)LX_MAX_RW;
	uint8_t *buf = wasp_lx_user_w(v, a[1], count);
	if (!buf)
		return -EFAULT;
	long n = syscall(SYS_getdents64, d.host, buf, count);
	if (n < 0)
		return -errno;
	struct stat dir;
	if (fstat(d.host, &dir) < 0)
		return n;
	/* d_ino as stat shows it: numbered by path (see "inode numbers") */
	char path[PATH_MAX];
	bool virt = sandbox_rel(v, d.host, path);
	size_t dlen = virt ? strlen(path) : 0;
	long in = 0, out = 0;
	while (in < n) {
		struct dirent64 *de = (struct dirent64 *)(buf + in);
		unsigned short len = de->d_reclen;
		if (len == 0 || len > n - in)
			break;
		bool hide = v->nunseen && de->d_type == DT_REG &&
			    wasp_file_unseen(v, dir.st_dev, de->d_ino);
		if (virt && !strcmp(de->d_name, ".")) {
			de->d_ino = path_ino(path, dlen);
		} else if (virt && !strcmp(de->d_name, "..")) {
			char *up = strrchr(path, '/'); /* the root's parent is the root */
			de->d_ino = path_ino(path, up ? (size_t)(up - path) : 0);
		} else if (virt) {
			size_t nl = strlen(de->d_name);
			if (dlen + 1 + nl < sizeof path) {
				path[dlen] = '/';
				memcpy(path + dlen + 1, de->d_name, nl);
				de->d_ino = path_ino(path, dlen + 1 + nl);
				path[dlen] = '\0';
			}
		}
		if (!hide) {
			if (out != in)
				memmove(buf + out, buf + in, len);
			out += len;
		}
		in += len;
	}
	return out;
}

/* ---- descriptor control ------------------------------------------------------ */

int64_t wasp_lx_sys_dup(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	int slot = free_slot(v, 0);
	return slot < 0 ? slot : dup_into(v, &d, slot, false);
}

/* fds 0, 1 and 2 stay the embedder's stdin, stdout and stderr, so that
 * output always reaches it and a checkpoint never has to carry what the
 * host's fds were: dup2/dup3 onto one of them succeeds only from a
 * duplicate of that same stream (dup2(saved, 1) after saved = dup(1)),
 * and answers -EPERM otherwise (not -EBUSY, which musl retries forever). */
static int64_t lx_dup3(struct wasp_virtine *v, uint64_t oldfd, uint64_t newfd, bool cloexec)
{
	struct lxfd d;
	int r = get_fd(v, oldfd, &d);
	if (r < 0)
		return r;
	uint32_t nfd = (uint32_t)newfd;
	if (nfd >= LX_NOFILE)
		return -EBADF;
	if (nfd >= WASP_FIRST_FD + WASP_MAX_FILES)
		return -EMFILE;
	if (nfd < WASP_FIRST_FD) {
		if (!d.stdio || d.n != (int)nfd)
			return -EPERM;
		uint32_t nb = LX_STDIO_NONBLOCK(nfd);
		v->lx->stdio_closed &= ~((1u << nfd) | nb);
		if (d.nonblock)
			v->lx->stdio_closed |= nb;
		return nfd;
	}
	struct wasp_file *f = &v->files[nfd - WASP_FIRST_FD];
	if (f->host_fd >= 0)
		slot_free(f);
	return dup_into(v, &d, (int)(nfd - WASP_FIRST_FD), cloexec);
}

int64_t wasp_lx_sys_dup2(struct wasp_virtine *v, const uint64_t a[6])
{
	if ((uint32_t)a[0] == (uint32_t)a[1]) {
		struct lxfd d;
		int r = get_fd(v, a[0], &d);
		return r < 0 ? r : (int64_t)(uint32_t)a[1];
	}
	return lx_dup3(v, a[0], a[1], false);
}

int64_t wasp_lx_sys_dup3(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[2] & ~(uint64_t)O_CLOEXEC)
		return -EINVAL;
	if ((uint32_t)a[0] == (uint32_t)a[1])
		return -EINVAL;
	return lx_dup3(v, a[0], a[1], a[2] & O_CLOEXEC);
}

/* struct flock as the program passes it (x86-64). */
struct lx_flock {
	int16_t type, whence;
	int64_t start, len;
	int32_t pid;
	int32_t pad;
};

int64_t wasp_lx_sys_fcntl(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	bool opath = !d.stdio && (d.f->flags & O_PATH);
	switch ((int)a[1]) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC: {
		if (a[2] >= LX_NOFILE)
			return -EINVAL;
		int slot = free_slot(v, a[2]);
		return slot < 0 ? slot : dup_into(v, &d, slot, (int)a[1] == F_DUPFD_CLOEXEC);
	}
	case F_GETFD:
		return d.f && (d.f->flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
	case F_SETFD:
		if (d.f)
			d.f->flags = (a[2] & FD_CLOEXEC) ? d.f->flags | O_CLOEXEC
							 : d.f->flags & ~O_CLOEXEC;
		return 0;
	case F_GETFL: {
		if (!d.stdio)
			return (d.f->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) |
			       LX_O_LARGEFILE;
		int fl = d.n == 0 && v->cfg.no_stdin ? O_RDONLY : fcntl(d.host, F_GETFL);
		if (fl < 0)
			fl = d.n == 0 ? O_RDONLY : O_WRONLY;
		return (fl & ~O_NONBLOCK) | (d.nonblock ? O_NONBLOCK : 0);
	}
	case F_SETFL: {
		if (opath)
			return -EBADF;
		int set = (int)a[2] & (O_APPEND | O_NONBLOCK);
		if (d.stdio) {
			/* the host's own fd keeps its flags: the program's
			 * O_NONBLOCK is ours to honour */
			uint32_t bit = LX_STDIO_NONBLOCK(d.n);
			if (!d.f)
				v->lx->stdio_closed = (set & O_NONBLOCK) ? v->lx->stdio_closed | bit
									 : v->lx->stdio_closed & ~bit;
			else
				d.f->flags = (d.f->flags & ~O_NONBLOCK) | (set & O_NONBLOCK);
			return 0;
		}
		int hfl = fcntl(d.host, F_GETFL);
		if (hfl < 0 || fcntl(d.host, F_SETFL, (hfl & ~O_APPEND) | (set & O_APPEND)) < 0)
			return -errno;
		d.f->flags = (d.f->flags & ~(O_APPEND | O_NONBLOCK)) | set;
		return 0;
	}
	case F_GETLK:
	case F_SETLK:
	case F_SETLKW:
	case F_OFD_GETLK:
	case F_OFD_SETLK:
	case F_OFD_SETLKW: {
		if (opath)
			return -EBADF;
		bool get = (int)a[1] == F_GETLK || (int)a[1] == F_OFD_GETLK;
		struct lx_flock fl;
		void *p = get ? wasp_lx_user_w(v, a[2], sizeof fl)
			      : (void *)wasp_lx_user_r(v, a[2], sizeof fl);
		if (!p)
			return -EFAULT;
		memcpy(&fl, p, sizeof fl);
		if (fl.type != F_RDLCK && fl.type != F_WRLCK && fl.type != F_UNLCK)
			return -EINVAL;
		if (fl.whence < SEEK_SET || fl.whence > SEEK_END)
			return -EINVAL;
		if (get) {
			/* one process: nothing else holds a lock */
			fl.type = F_UNLCK;
			memcpy(p, &fl, sizeof fl);
		}
		return 0;
	}
	default:
		return -EINVAL;
	}
}

/* TCGETS and TIOCGWINSZ on 0-2 answer as the host's fd does when it is a
 * terminal; everything else is not a terminal's request here. */
int64_t wasp_lx_sys_ioctl(struct wasp_virtine *v, const uint64_t a[6])
{
	struct lxfd d;
	int r = get_fd(v, a[0], &d);
	if (r < 0)
		return r;
	if (!d.stdio)
		return -ENOTTY;
	unsigned perm = d.n == 0 ? WASP_HC_STDIN_READ : WASP_HC_CONSOLE_WRITE;
	if (!wasp_virtine_allowed(v, perm) || (d.n == 0 && v->cfg.no_stdin) || !isatty(d.host))
		return -ENOTTY;
	uint8_t tmp[64];
	size_t len;
	switch ((uint32_t)a[1]) {
	case LX_TCGETS: len = LX_KTERMIOS_SIZE; break;
	case LX_TIOCGWINSZ: len = sizeof(struct winsize); break;
	default: return -ENOTTY;
	}
	void *out = wasp_lx_user_w(v, a[2], len);
	if (!out)
		return -EFAULT;
	if (ioctl(d.host, (unsigned long)(uint32_t)a[1], tmp) < 0)
		return -errno;
	memcpy(out, tmp, len);
	return 0;
}

/* ---- poll ---------------------------------------------------------------- */

/* What poll says of fds (the program's pollfds, already checked), waiting
 * at most timeout_ns (-1: forever) kick-aware. On a kick the call is
 * restarted with what was left of its timeout. */
static int64_t lx_poll(struct wasp_virtine *v, uint64_t addr, uint64_t nfds, int64_t timeout_ns)
{
	if (nfds > LX_NOFILE)
		return -EINVAL;
	struct pollfd *ufds = nfds ? wasp_lx_user_w(v, addr, nfds * sizeof *ufds) : NULL;
	if (nfds && !ufds)
		return -EFAULT;
	struct wasp_linux *lx = v->lx;
	if (timeout_ns > 0 && lx->sleep_left_ns && lx->sleep_rip == lx->cur_rip)
		timeout_ns = (int64_t)lx->sleep_left_ns; /* the rest of a wait a pause cut */
	lx->sleep_left_ns = 0;

	/* host pollfds for the stdio entries, by index into ufds */
	struct pollfd hp[LX_NOFILE];
	uint16_t hidx[LX_NOFILE];
	unsigned nh = 0;
	int64_t ready = 0;
	for (uint64_t i = 0; i < nfds; i++) {
		struct pollfd p;
		memcpy(&p, &ufds[i], sizeof p);
		p.revents = 0;
		struct lxfd d;
		if (p.fd < 0) {
			/* ignored */
		} else if (get_fd(v, (uint64_t)p.fd, &d) < 0 || (!d.stdio && d.f->flags & O_PATH)) {
			p.revents = POLLNVAL;
		} else if (!d.stdio) {
			p.revents = (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM) &
				    (p.events | POLLERR | POLLHUP);
		} else if ((d.n == 0 && (v->cfg.no_stdin ||
					 !wasp_virtine_allowed(v, WASP_HC_STDIN_READ))) ||
			   (d.n > 0 && !wasp_virtine_allowed(v, WASP_HC_CONSOLE_WRITE))) {
			/* the read or write says what there is (EOF, -EPERM) */
			p.revents = (d.n == 0 ? POLLIN | POLLRDNORM : POLLOUT | POLLWRNORM) & p.events;
		} else {
			hp[nh] = (struct pollfd){.fd = d.host, .events = p.events};
			hidx[nh++] = (uint16_t)i;
		}
		if (p.revents)
			ready++;
		memcpy(&ufds[i], &p, sizeof p);
	}
	int n = 0;
	if (nh || (!ready && timeout_ns != 0)) {
		uint64_t t0 = wasp_now_ns();
		n = wasp_wait_fds(v, hp, nh, ready ? 0 : timeout_ns);
		if (n == -EINTR) {
			if (timeout_ns > 0) {
				/* run again, it waits only what was left */
				uint64_t spent = wasp_now_ns() - t0;
				lx->sleep_rip = lx->cur_rip;
				lx->sleep_left_ns = spent < (uint64_t)timeout_ns
							? (uint64_t)timeout_ns - spent
							: 1;
			}
			return restart(v);
		}
		if (n < 0)
			return n;
	}
	for (unsigned k = 0; k < nh && n > 0; k++) {
		if (!hp[k].revents)
			continue;
		struct pollfd p;
		memcpy(&p, &ufds[hidx[k]], sizeof p);
		p.revents = hp[k].revents;
		memcpy(&ufds[hidx[k]], &p, sizeof p);
		ready++;
	}
	return ready;
}

int64_t wasp_lx_sys_poll(struct wasp_virtine *v, const uint64_t a[6])
{
	int32_t ms = (int32_t)a[2];
	return lx_poll(v, a[0], a[1], ms < 0 ? -1 : (int64_t)ms * 1000000);
}

/* ppoll(fds, nfds, tmo, sigmask, sigsetsize): no signal is delivered while
 * it waits, so the mask only has to be well-formed. The timeout is not
 * written back. */
int64_t wasp_lx_sys_ppoll(struct wasp_virtine *v, const uint64_t a[6])
{
	int64_t ns = -1;
	if (a[3] && a[4] != 8)
		return -EINVAL;
	if (a[3] && !wasp_lx_user_r(v, a[3], 8))
		return -EFAULT;
	if (a[2]) {
		struct timespec t;
		const void *p = wasp_lx_user_r(v, a[2], sizeof t);
		if (!p)
			return -EFAULT;
		memcpy(&t, p, sizeof t);
		if (t.tv_sec < 0 || t.tv_nsec < 0 || t.tv_nsec >= 1000000000)
			return -EINVAL;
		ns = t.tv_sec > INT64_MAX / 2000000000 ? INT64_MAX / 2
						       : t.tv_sec * 1000000000 + t.tv_nsec;
	}
	return lx_poll(v, a[0], a[1], ns);
}
