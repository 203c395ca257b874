/*
 * runner_socket.c: where control sockets live and how the two ends reach
 * each other: the choice of directory and whether a client may trust it,
 * the runner's pid socket and name link (taken from a dead runner, never
 * from a live one), and one message on a SEQPACKET socket, sent or
 * received within a deadline. The lines themselves are control_proto.c's.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runner_internal.h"

#define DEFAULT_RUN_DIR "/run/wasp"

uint64_t wasp_rn_remaining_ms(uint64_t deadline)
{
	if (!deadline)
		return UINT64_MAX;
	uint64_t now = wasp_now_ns();
	return now >= deadline ? 0 : (deadline - now + 999999) / 1000000;
}

/* Waits for `events` on fd until the deadline (0: forever). 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t ms = wasp_rn_remaining_ms(deadline);
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, ms == UINT64_MAX ? -1 : ms > INT_MAX ? INT_MAX : (int)ms);
		if (n > 0)
			return 1;
		if (n == 0 && ms != UINT64_MAX && wasp_rn_remaining_ms(deadline) == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Sends one message (and an fd, if fd >= 0) on a SEQPACKET socket. */
int wasp_rn_send_msg(int sock, const char *line, int fd)
{
	struct iovec iov = {.iov_base = (void *)line, .iov_len = strlen(line)};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&cm, 0, sizeof cm);
		m.msg_control = cm.buf;
		m.msg_controllen = sizeof cm.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* 0 when the directory `d` (its stat in st) is owned by this user (or,
 * with root_ok, by root) and writable by nobody else, so no other user can
 * have put or replaced a socket in it; -errno with the reason in why. */
static int dir_private(const char *d, const struct stat *st, bool root_ok, char *why, size_t cap)
{
	if (!S_ISDIR(st->st_mode)) {
		snprintf(why, cap, "%s: not a directory", d);
		return -ENOTDIR;
	}
	if (st->st_uid != geteuid() && !(root_ok && st->st_uid == 0)) {
		snprintf(why, cap, "%s is owned by uid %u, not by this user (%u)%s", d,
			 (unsigned)st->st_uid, (unsigned)geteuid(), root_ok ? " or root" : "");
		return -EACCES;
	}
	if (st->st_mode & 022) {
		snprintf(why, cap, "%s is writable by others (mode %03o)", d,
			 (unsigned)(st->st_mode & 0777));
		return -EACCES;
	}
	return 0;
}

/* 0 when a runner may put its sockets in `d`: private to this user (see
 * dir_private) and writable by us; creates it (0700) when missing and
 * `create`. */
int wasp_rn_dir_usable(const char *d, bool create, char *why, size_t cap)
{
	struct stat st;
	int r;
	if (lstat(d, &st) < 0) {
		if (errno != ENOENT || !create)
			goto err;
		if (mkdir(d, 0700) < 0 && errno != EEXIST)
			goto err;
		if (lstat(d, &st) < 0)
			goto err;
	}
	if ((r = dir_private(d, &st, false, why, cap)) < 0)
		return r;
	if (access(d, W_OK | X_OK) < 0)
		goto err;
	return 0;
err:;
	int e = errno;
	snprintf(why, cap, "%s: %s", d, strerror(e));
	return -e;
}

/* 0 when a client may trust sockets in `d` (dir_private, root's too). */
int wasp_rn_dir_trusted(const char *d, char *why, size_t cap)
{
	struct stat st;
	if (stat(d, &st) < 0) {
		int e = errno;
		snprintf(why, cap, "%s: %s", d, strerror(e));
		return -e;
	}
	return dir_private(d, &st, true, why, cap);
}

/* The default places, in order; n of them set. */
int wasp_rn_candidate_dirs(char dirs[3][PATH_MAX])
{
	int n = 0;
	snprintf(dirs[n++], PATH_MAX, "%s", DEFAULT_RUN_DIR);
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg == '/')
		snprintf(dirs[n++], PATH_MAX, "%s/wasp", xdg);
	snprintf(dirs[n++], PATH_MAX, "/tmp/wasp-%u", (unsigned)geteuid());
	return n;
}

int wasp_runner_dir(char *buf, size_t cap, bool create)
{
	char why[PATH_MAX + 128];
	const char *env = getenv("WASP_RUN_DIR");
	int r;

	if (env && *env) {
		if ((r = wasp_rn_dir_usable(env, create, why, sizeof why)) < 0)
			return wasp_fail(r, "WASP_RUN_DIR %s", why);
		if ((size_t)snprintf(buf, cap, "%s", env) >= cap)
			return wasp_fail(-ENAMETOOLONG, "WASP_RUN_DIR is too long");
		return 0;
	}
	char dirs[3][PATH_MAX];
	int n = wasp_rn_candidate_dirs(dirs);
	char first_why[sizeof why] = "";
	for (int i = 0; i < n; i++) {
		if ((r = wasp_rn_dir_usable(dirs[i], create, why, sizeof why)) == 0) {
			if ((size_t)snprintf(buf, cap, "%s", dirs[i]) >= cap)
				return wasp_fail(-ENAMETOOLONG, "%s: path too long", dirs[i]);
			return 0;
		}
		if (!first_why[0])
			snprintf(first_why, sizeof first_why, "%s", why);
	}
	return wasp_fail(create ? -EACCES : -ENOENT,
			 "no usable directory for control sockets (%s; set WASP_RUN_DIR)",
			 first_why);
}

int wasp_runner_name_valid(const char *name)
{
	size_t len = strlen(name);
	bool digits = true;
	if (len == 0 || len > WASP_RUNNER_NAME_MAX)
		return wasp_fail(-EINVAL, "name '%s' must have 1 to %d characters", name,
				 WASP_RUNNER_NAME_MAX);
	if (name[0] == '.' || name[0] == '-')
		return wasp_fail(-EINVAL, "name '%s' must not start with '%c'", name, name[0]);
	for (const char *p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return wasp_fail(-EINVAL, "name '%s' may hold only letters, digits, '.', '_' and '-'",
					 name);
		digits = digits && isdigit((unsigned char)*p);
	}
	if (digits)
		return wasp_fail(-EINVAL, "name '%s' is all digits: it would read as a pid", name);
	return 0;
}

static int sock_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a->sun_path)
		return wasp_fail(-ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(a->sun_path, path);
	return 0;
}

/* Connects to a SEQPACKET socket; the send timeout bounds a full backlog. */
int wasp_rn_connect_path(const char *path, uint64_t deadline, int *out)
{
	struct sockaddr_un a;
	int r = sock_addr(path, &a);
	if (r < 0)
		return r;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (deadline) {
		uint64_t ms = wasp_rn_remaining_ms(deadline);
		struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000};
		if (ms == 0)
			tv.tv_usec = 1000;
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		r = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		close(s);
		return r;
	}
	*out = s;
	return 0;
}

/* Receives one reply message into buf (NUL-terminated, newline dropped).
 * 0, -ECONNRESET at end of stream, -ETIMEDOUT, -errno. */
int wasp_rn_recv_line(int s, char *buf, size_t cap, uint64_t deadline)
{
	for (;;) {
		int w = wait_fd(s, POLLIN, deadline);
		if (w < 0)
			return w;
		if (w == 0)
			return -ETIMEDOUT;
		ssize_t n = recv(s, buf, cap - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		buf[n] = '\0';
		wasp_ctl_unframe(buf);
		return 0;
	}
}

/* Pings a connected socket. 0 with *peer, -EACCES when refused, -EPROTO
 * when the answer is not a runner's, -ECONNRESET, -ETIMEDOUT. */
int wasp_rn_ping(int s, uint64_t deadline, struct wasp_runner_peer *peer, char *line, size_t cap)
{
	char req[8] = WASP_CTL_PING;
	wasp_ctl_frame(req, sizeof req);
	int r = wasp_rn_send_msg(s, req, -1);
	if (r < 0)
		return r == -EPIPE ? -ECONNRESET : r;
	if ((r = wasp_rn_recv_line(s, line, cap, deadline)) < 0)
		return r;
	const char *err = wasp_ctl_parse_error(line);
	if (err)
		return strstr(err, WASP_CTL_DENIED) ? -EACCES : -EPROTO;
	return wasp_ctl_parse_pong(line, peer);
}

const char *wasp_runner_socket_path(const struct wasp_runner *r)
{
	return r->have_sock ? r->sock_path : NULL;
}

const char *wasp_runner_name_path(const struct wasp_runner *r)
{
	return r->have_name ? r->name_path : NULL;
}

/* Connects to an existing socket file: 1 with *pid when something listens
 * there, 0 when nothing does (a stale file), -errno. */
static int probe_socket(const char *path, pid_t *pid, int *sock)
{
	int s, r = wasp_rn_connect_path(path, wasp_now_ns() + PROBE_TIMEOUT_NS, &s);
	if (r == -ECONNREFUSED || r == -ENOENT)
		return 0;
	if (r < 0)
		return r == -EAGAIN || r == -ETIMEDOUT ? 1 : r; /* full backlog: busy, so alive */
	struct ucred cred;
	socklen_t len = sizeof cred;
	*pid = getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
	if (sock)
		*sock = s;
	else
		close(s);
	return 1;
}

int wasp_rn_bind_pid_socket(struct wasp_runner *r, const char *dir)
{
	struct sockaddr_un a;
	pid_t holder = 0;
	int n = snprintf(r->sock_path, sizeof r->sock_path, "%s/%s.sock", dir, r->sock_base);
	if (n < 0 || (size_t)n >= sizeof r->sock_path)
		return wasp_fail(-ENAMETOOLONG, "control socket path too long: %s/%s.sock", dir,
				 r->sock_base);
	sock_addr(r->sock_path, &a);

	/* A file there is from an earlier process with this pid (or, across pid
	 * namespaces sharing the directory, another live one). */
	struct stat st;
	if (lstat(r->sock_path, &st) == 0) {
		int live = probe_socket(r->sock_path, &holder, NULL);
		if (live > 0 && holder != getpid())
			return wasp_fail(-EADDRINUSE, "control socket %s is in use by pid %d",
					 r->sock_path, (int)holder);
		if (unlink(r->sock_path) < 0 && errno != ENOENT)
			return wasp_fail(-errno, "cannot remove the stale %s: %s", r->sock_path,
					 strerror(errno));
	}
	r->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (r->lfd < 0)
		return wasp_fail(-errno, "socket: %s", strerror(errno));
	if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) < 0)
		return wasp_fail(-errno, "bind %s: %s", r->sock_path, strerror(errno));
	r->have_sock = true;
	if (chmod(r->sock_path, 0600) < 0 || lstat(r->sock_path, &st) < 0)
		return wasp_fail(-errno, "%s: %s", r->sock_path, strerror(errno));
	r->sock_dev = st.st_dev;
	r->sock_ino = st.st_ino;
	if (listen(r->lfd, 32) < 0)
		return wasp_fail(-errno, "listen %s: %s", r->sock_path, strerror(errno));
	return 0;
}

/* Whether the name's symlink points at this runner's socket. */
bool wasp_rn_name_is_ours(const struct wasp_runner *r)
{
	char target[64], want[48];
	ssize_t n = readlink(r->name_path, target, sizeof target - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	snprintf(want, sizeof want, "%s.sock", r->sock_base);
	return !strcmp(target, want);
}

/* Whether a name's socket belongs to a live runner of that name. 1 with
 * *holder, 0 stale. */
static int name_live(struct wasp_runner *r, pid_t *holder)
{
	int s = -1;
	int live = probe_socket(r->name_path, holder, &s);
	if (live <= 0)
		return live < 0 ? 1 : 0; /* cannot tell: leave it alone */
	if (s < 0)
		return 1; /* busy */
	if (*holder == getpid()) {
		/* Our own new socket, the name left by an earlier process with
		 * our pid; or another runner of this process (an instance). */
		close(s);
		return !wasp_rn_name_is_ours(r);
	}
	struct wasp_runner_peer peer;
	char line[MSG_MAX];
	int p = wasp_rn_ping(s, wasp_now_ns() + PROBE_TIMEOUT_NS, &peer, line, sizeof line);
	close(s);
	if (p == 0) {
		*holder = peer.pid;
		return !strcmp(peer.name, r->name); /* another name: a reused pid */
	}
	return 1; /* something lives there and did not answer: do not steal it */
}

int wasp_rn_link_name(struct wasp_runner *r, const char *dir)
{
	char target[48];
	int n = snprintf(r->name_path, sizeof r->name_path, "%s/%s.sock", dir, r->name);
	if (n < 0 || (size_t)n >= sizeof r->name_path)
		return wasp_fail(-ENAMETOOLONG, "control socket path too long: %s/%s.sock", dir,
				 r->name);
	snprintf(target, sizeof target, "%s.sock", r->sock_base);

	/* Two runners starting with one name: the lock makes check-and-take one
	 * step, so exactly one of them gets it. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return wasp_fail(-errno, "%s: %s", dir, strerror(errno));
	int err = 0;
	if (flock(dfd, LOCK_EX) < 0) {
		err = wasp_fail(-errno, "lock %s: %s", dir, strerror(errno));
		goto out;
	}
	for (int tries = 0;; tries++) {
		if (symlink(target, r->name_path) == 0) {
			r->have_name = true;
			break;
		}
		if (errno != EEXIST || tries == 2) {
			err = wasp_fail(-errno, "%s: %s", r->name_path, strerror(errno));
			break;
		}
		pid_t holder = 0;
		if (name_live(r, &holder)) {
			if (holder > 0)
				err = wasp_fail(-EADDRINUSE, "name %s is in use by pid %d", r->name,
						(int)holder);
			else
				err = wasp_fail(-EADDRINUSE, "name %s is in use (%s)", r->name,
						r->name_path);
			break;
		}
		unlink(r->name_path);
	}
out:
	close(dfd); /* drops the lock */
	return err;
}
