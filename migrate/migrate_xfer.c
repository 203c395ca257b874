/*
 * migrate_xfer.c: the transport interface and its two local backends: a
 * file descriptor (a pipe, stdout, a socket) and a file written atomically
 * (file:///path). HTTP(S) lives in migrate_http.c.
 *
 * A local destination has nobody to run the virtine, so its verdict is
 * simple: ACCEPTED once the whole stream is durable in a file (under its
 * final name), REFUSED if it could not be, and UNKNOWN for a pipe or
 * socket, whose reader may or may not have it safe (the source holds it).
 * A file:// destination is written by ckpt's atomic writer
 * (wasp_atomic_file), the one behind every checkpoint file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate_internal.h"

void wasp_xfer_opts_init(struct wasp_xfer_opts *o)
{
	memset(o, 0, sizeof *o);
	o->preflight = true;
}

/* ---- fd and file ------------------------------------------------------------ */

struct fd_xfer {
	struct wasp_xfer x;
	int fd;
	int cancelfd;       /* wakes a write blocked on a full pipe */
	atomic_bool canceled;
	int old_flags;      /* to give the fd back as it was */
	bool is_file;       /* file://: fd is file.fd */
	struct wasp_atomic_file file;
};

static int fd_write(struct wasp_xfer *x, const void *buf, size_t len)
{
	struct fd_xfer *f = (struct fd_xfer *)x;
	const char *p = buf;
	while (len) {
		if (atomic_load(&f->canceled))
			return wasp_fail(-ECANCELED, "%s: the migration was canceled", x->what);
		ssize_t n = write(f->fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd pf[2] = {{.fd = f->fd, .events = POLLOUT},
					       {.fd = f->cancelfd, .events = POLLIN}};
			if (poll(pf, 2, -1) < 0 && errno != EINTR)
				return wasp_fail(-errno, "poll: %s", strerror(errno));
		} else if (n < 0 && errno != EINTR) {
			int e = errno;
			return wasp_fail(-e, "writing to %s: %s", x->what, strerror(e));
		} else if (n == 0) {
			return wasp_fail(-EIO, "writing to %s: wrote nothing", x->what);
		}
	}
	return 0;
}

static int fd_commit(struct wasp_xfer *x, enum wasp_xfer_verdict *v)
{
	struct fd_xfer *f = (struct fd_xfer *)x;
	struct stat st;
	/* Failures are verdicts (REFUSED, with the message), not errors. */
	*v = WASP_XFER_REFUSED;
	if (atomic_load(&f->canceled)) {
		wasp_fail(-ECANCELED, "%s: the migration was canceled", x->what);
		return 0;
	}
	if (f->is_file) {
		/* Durable under its final name, directory entry included, or
		 * refused: a rename whose directory sync failed may not survive
		 * a crash, so the source must not stop for it. */
		f->fd = -1;
		if (wasp_atomic_commit(&f->file) == 0)
			*v = WASP_XFER_ACCEPTED;
		return 0;
	}
	bool regular = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
	if (regular && fsync(f->fd) < 0) {
		wasp_fail(-errno, "fsync %s: %s", x->what, strerror(errno));
		return 0;
	}
	if (!regular) {
		/* Whole into a pipe or socket, but whether its reader has the
		 * virtine safe (or runs it) nobody can say: the source holds it. */
		wasp_fail(-EREMOTEIO, "%s: a pipe cannot confirm that its reader has the virtine",
			  x->what);
		*v = WASP_XFER_UNKNOWN;
		return 0;
	}
	*v = WASP_XFER_ACCEPTED;
	return 0;
}

static void fd_cancel(struct wasp_xfer *x)
{
	struct fd_xfer *f = (struct fd_xfer *)x;
	atomic_store(&f->canceled, true);
	uint64_t one = 1;
	ssize_t n = write(f->cancelfd, &one, sizeof one);
	(void)n;
}

static void fd_destroy(struct wasp_xfer *x)
{
	struct fd_xfer *f = (struct fd_xfer *)x;
	if (f->is_file) {
		wasp_atomic_abort(&f->file); /* after a commit: nothing */
	} else if (f->fd >= 0 && f->old_flags >= 0 && !(f->old_flags & O_NONBLOCK)) {
		fcntl(f->fd, F_SETFL, f->old_flags); /* shared with its owner: as it was */
	}
	if (f->cancelfd >= 0)
		close(f->cancelfd);
	free(f);
}

static const struct wasp_xfer_ops fd_ops = {
	.name = "fd",
	.write = fd_write,
	.commit = fd_commit,
	.cancel = fd_cancel,
	.destroy = fd_destroy,
};

static int fd_new(struct fd_xfer **out)
{
	struct fd_xfer *f = calloc(1, sizeof *f);
	if (!f)
		return wasp_fail(-ENOMEM, "out of memory");
	f->x.ops = &fd_ops;
	f->fd = -1;
	f->old_flags = -1;
	f->file.fd = f->file.dirfd = -1;
	f->cancelfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->cancelfd < 0) {
		int e = errno;
		free(f);
		return wasp_fail(-e, "eventfd: %s", strerror(e));
	}
	*out = f;
	return 0;
}

int wasp_xfer_open_fd(int fd, const char *what, struct wasp_xfer **out)
{
	struct fd_xfer *f;
	int r;
	*out = NULL;
	if (fd < 0)
		return wasp_fail(-EBADF, "no file descriptor to migrate into");
	if ((r = fd_new(&f)) < 0)
		return r;
	f->fd = fd;
	snprintf(f->x.what, sizeof f->x.what, "%s", what ? what : "a file descriptor");
	wasp_xfer_opts_init(&f->x.o);
	f->old_flags = fcntl(fd, F_GETFL);
	if (f->old_flags >= 0 && !(f->old_flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, f->old_flags | O_NONBLOCK);
	*out = &f->x;
	return 0;
}

static int file_open(const char *path, struct wasp_xfer **out)
{
	struct fd_xfer *f;
	int r;
	if (path[0] != '/')
		return wasp_fail(-EINVAL, "file:// needs an absolute path (file:///dir/name)");
	if ((r = fd_new(&f)) < 0)
		return r;
	snprintf(f->x.what, sizeof f->x.what, "%s", path);
	/* A random temporary name, 0600 (a checkpoint holds all of guest
	 * memory), held and swept like every checkpoint file's. */
	if ((r = wasp_atomic_open(path, &f->file)) < 0) {
		fd_destroy(&f->x);
		return r;
	}
	f->is_file = true;
	f->fd = f->file.fd;
	*out = &f->x;
	return 0;
}

/* ---- the interface ---------------------------------------------------------- */

int wasp_xfer_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_xfer **out)
{
	struct wasp_xfer_opts dflt;
	int r;
	*out = NULL;
	if (!o) {
		wasp_xfer_opts_init(&dflt);
		o = &dflt;
	}
	if (!url || !*url)
		return wasp_fail(-EINVAL, "no destination URL");
	if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
		r = wasp_http_xfer_open(url, o, out);
	else if (!strncmp(url, "file://", 7))
		r = file_open(url + 7, out);
	else if (wasp_s3_url(url))
		r = wasp_s3_xfer_open(url, o, out);
	else
		return wasp_fail(-EINVAL,
				 "'%s': not a destination (http://HOST:PORT, https://..., file:///PATH, "
				 "s3://BUCKET/KEY)",
				 url);
	if (r == 0 && (*out)->ops == &fd_ops)
		(*out)->o = *o; /* http keeps its own copy, without the secrets */
	return r;
}

int wasp_xfer_write(struct wasp_xfer *x, const void *buf, size_t len)
{
	if (x->committed)
		return wasp_fail(-EINVAL, "write after the end of the stream");
	int r = x->ops->write(x, buf, len);
	if (r == 0)
		x->bytes += len;
	return r;
}

static int sink_write(void *ctx, const void *buf, size_t len)
{
	return wasp_xfer_write(ctx, buf, len);
}

struct wasp_sink wasp_xfer_sink(struct wasp_xfer *x)
{
	return (struct wasp_sink){.write = sink_write, .ctx = x};
}

int wasp_xfer_send_files(struct wasp_xfer *x, const char *dir, uint64_t *bytes)
{
	*bytes = 0;
	if (!x->ops->send_files)
		return wasp_fail(-ENOTSUP, "files can go along only to a wasp-restore --listen (http:// or https://)");
	return x->ops->send_files(x, dir, bytes);
}

int wasp_xfer_commit(struct wasp_xfer *x, enum wasp_xfer_verdict *v)
{
	if (x->committed)
		return wasp_fail(-EINVAL, "the stream was already committed");
	x->committed = true;
	return x->ops->commit(x, v);
}

int wasp_xfer_query(struct wasp_xfer *x, enum wasp_xfer_verdict *v)
{
	*v = WASP_XFER_UNKNOWN;
	if (!x->ops->query)
		return 0;
	return x->ops->query(x, v);
}

int wasp_xfer_settle(struct wasp_xfer *x, uint64_t timeout_ns)
{
	if (x->committed)
		return wasp_fail(-EINVAL, "the stream was already committed");
	return x->ops->settle ? x->ops->settle(x, timeout_ns) : 0;
}

void wasp_xfer_cancel(struct wasp_xfer *x)
{
	if (x)
		x->ops->cancel(x);
}

uint64_t wasp_xfer_bytes(const struct wasp_xfer *x)
{
	return x->bytes;
}

const char *wasp_xfer_id(const struct wasp_xfer *x)
{
	return x->id;
}

const char *wasp_xfer_target(const struct wasp_xfer *x)
{
	return x->target;
}

const char *wasp_xfer_what(const struct wasp_xfer *x)
{
	return x->what;
}

void wasp_xfer_free(struct wasp_xfer *x)
{
	if (!x)
		return;
	if (!x->committed)
		x->ops->cancel(x);
	x->ops->destroy(x);
}
