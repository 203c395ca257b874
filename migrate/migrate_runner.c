/*
 * migrate_runner.c: the runner (a virtine plus a control thread that turns
 * SIGUSR1, a trigger file, a period and control-socket requests into
 * checkpoints) and the client side of its control socket.
 *
 * Who does what, and why:
 *  - The control thread owns every fd that can wake it (signalfd, inotify,
 *    timerfd, the listening socket and its clients, a wake eventfd) and the
 *    queue of requests. It starts one checkpoint at a time: it makes the
 *    head of the queue `inflight` and calls wasp_virtine_pause().
 *  - The vCPU thread (the caller of wasp_runner_run) owns the vCPU. When its
 *    run returns WASP_EXIT_PAUSED it saves the virtine itself (KVM state
 *    may only be read by the thread that runs it, and the guest must not
 *    move meanwhile), posts the result to the `done` list, wakes the control
 *    thread and resumes the guest, or returns when asked to stop.
 *  - Replies, log lines for requests that never reached the vCPU, and the
 *    removal of the trigger file happen on the control thread, so socket
 *    I/O never delays the guest.
 *  - A migration (a `migrate` request) is the one request that does not
 *    start with a pause: the control thread hands it to a migration thread
 *    that streams memory while the guest runs (pre-copy). When that
 *    thread is done it makes the request `inflight` and pauses the vCPU
 *    like a checkpoint would; the vCPU thread then sends the rest and
 *    waits for the verdict (migrate_final), and stops, resumes or holds
 *    the virtine accordingly. While a migration is under way no other
 *    request starts (a checkpoint would consume the dirty log it lives on).
 * `inflight`, `done`, `state`, `quit` and `migrating` are shared under
 * `lock`; the rest belongs to one thread.
 *
 * The protocol on the socket is docs/triggers.md.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_proto.h"
#include "migrate_internal.h"

#define MAX_CLIENTS 64     /* connections at once */
#define MAX_QUEUED 64      /* requests waiting for their checkpoint */
#define MSG_MAX WASP_CTL_MSG_MAX /* one request or reply */
#define PROBE_TIMEOUT_NS 2000000000ull /* answering a ping at start-up */
/* How long a paused guest waits for a client to commit the file a
 * stop=1 checkpoint went into: the runner has synced the data already, so
 * the client has only a rename and a directory sync left. */
#define COMMIT_WAIT_NS 30000000000ull
#define DEFAULT_RUN_DIR "/run/wasp"

/* ---- small helpers ------------------------------------------------------ */

static int copy_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	if (!(*dst = strdup(src)))
		return wasp_fail(-ENOMEM, "out of memory");
	return 0;
}

static uint64_t remaining_ms(uint64_t deadline)
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
		uint64_t ms = remaining_ms(deadline);
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, ms == UINT64_MAX ? -1 : ms > INT_MAX ? INT_MAX : (int)ms);
		if (n > 0)
			return 1;
		if (n == 0 && ms != UINT64_MAX && remaining_ms(deadline) == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Sends one message (and an fd, if fd >= 0) on a SEQPACKET socket. */
static int send_msg(int sock, const char *line, int fd)
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

/* ---- where the sockets live ------------------------------------------- */

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
static int dir_usable(const char *d, bool create, char *why, size_t cap)
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
static int dir_trusted(const char *d, char *why, size_t cap)
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
static int candidate_dirs(char dirs[3][PATH_MAX])
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
		if ((r = dir_usable(env, create, why, sizeof why)) < 0)
			return wasp_fail(r, "WASP_RUN_DIR %s", why);
		if ((size_t)snprintf(buf, cap, "%s", env) >= cap)
			return wasp_fail(-ENAMETOOLONG, "WASP_RUN_DIR is too long");
		return 0;
	}
	char dirs[3][PATH_MAX];
	int n = candidate_dirs(dirs);
	char first_why[sizeof why] = "";
	for (int i = 0; i < n; i++) {
		if ((r = dir_usable(dirs[i], create, why, sizeof why)) == 0) {
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
static int connect_path(const char *path, uint64_t deadline, int *out)
{
	struct sockaddr_un a;
	int r = sock_addr(path, &a);
	if (r < 0)
		return r;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (deadline) {
		uint64_t ms = remaining_ms(deadline);
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
static int recv_line(int s, char *buf, size_t cap, uint64_t deadline)
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
static int ping(int s, uint64_t deadline, struct wasp_runner_peer *peer, char *line, size_t cap)
{
	char req[8] = WASP_CTL_PING;
	wasp_ctl_frame(req, sizeof req);
	int r = send_msg(s, req, -1);
	if (r < 0)
		return r == -EPIPE ? -ECONNRESET : r;
	if ((r = recv_line(s, line, cap, deadline)) < 0)
		return r;
	const char *err = wasp_ctl_parse_error(line);
	if (err)
		return strstr(err, WASP_CTL_DENIED) ? -EACCES : -EPROTO;
	return wasp_ctl_parse_pong(line, peer);
}

/* ---- the runner --------------------------------------------------------- */

enum trigger { TRIG_SIGNAL, TRIG_FILE, TRIG_PERIOD, TRIG_SOCKET, TRIG_POINT };
static const char *const trigger_names[] = {
	[TRIG_SIGNAL] = "SIGUSR1",
	[TRIG_FILE] = "trigger file",
	[TRIG_PERIOD] = "period",
	[TRIG_SOCKET] = "socket",
	[TRIG_POINT] = "point",
};

enum vcpu_state { V_IDLE, V_RUNNING, V_ENDED };

struct client;

enum req_kind { REQ_CHECKPOINT, REQ_MIGRATE };

/* What a `migrate` request carries and what became of it. */
struct migration {
	char url[1024], token[512], ca_file[512], hold[256];
	struct wasp_migrate_opts mo;
	struct wasp_xfer_opts xo;
	bool with_files;
	int progress_fd;       /* a dup of the client's socket: progress lines */
	struct wasp_xfer *x;
	struct wasp_precopy *p;
	atomic_bool cancel;    /* the client went away during pre-copy */
	pthread_t thread;
	bool thread_started;   /* not joined yet */
	bool started;          /* the migration began (the answer is `ok`/`fail`) */
	enum wasp_migrate_outcome outcome;
	bool hold_saved;
	struct wasp_migrate_stats st;
};

struct request {
	struct request *next;
	unsigned long seq;     /* checkpoint number, for the log */
	enum trigger trig;
	enum req_kind kind;
	struct migration *mig; /* REQ_MIGRATE */
	bool incremental;
	bool mappable;
	char id[33];           /* the checkpoint taken */
	int fd;                /* destination (socket requests); -1: checkpoint_path */
	bool stop;
	bool queued;           /* control thread: still in the queue */
	atomic_bool cancel;    /* its client went away while it was being written */
	pid_t peer;            /* socket requests: the client's pid */
	char to[256];          /* the destination, for the log */
	char point[96];        /* TRIG_POINT: which point, for the log */
	struct client *client; /* control thread: who to answer; NULL once gone */
	/* the result, written by whoever finishes the request */
	int err;
	char msg[384];
	uint64_t bytes, ns;
	bool stopped, logged;
	struct wasp_runner *runner; /* REQ_MIGRATE: for its thread */
	/* stop=1 into a client's file: the guest stays paused until the client
	 * says the file is committed (docs/triggers.md, "Stopping"). */
	bool awaiting;         /* lock: the vCPU thread waits for the verdict */
	int verdict;           /* lock: 1 committed, -1 not (or the client went away) */
	bool told;             /* control thread: the client was asked to commit */
	char kept[256];        /* stop=1 into a pipe: where the local copy goes (keep=,
				* else hold_path()); "" when none was kept */
};

struct client {
	int fd;                /* -1: free slot */
	pid_t pid;
	struct request *req;   /* the request being answered, or NULL */
};

/* epoll tags; clients are CLIENT_TAG + slot. */
enum { TAG_WAKE = 1, TAG_SIGNAL, TAG_INOTIFY, TAG_TIMER, TAG_LISTEN, CLIENT_TAG = 16 };

struct wasp_runner {
	struct wasp_virtine *v;
	struct wasp_runner_opts o;
	char *name, *ckpt_path, *trigger_path, *trigger_base, *log_prefix;
	char sock_path[WASP_RUNNER_PATH_MAX], name_path[WASP_RUNNER_PATH_MAX];
	char sock_base[40]; /* <pid>[.<instance>]: the socket's file name less ".sock" */
	dev_t sock_dev;
	ino_t sock_ino;
	bool have_sock, have_name;

	int epfd, wakefd, sigfd, inofd, timerfd, lfd;
	int cancelfd; /* wakes a checkpoint write blocked on its destination */
	sigset_t old_mask;
	bool mask_set;
	pthread_t thread;
	bool thread_started;
	uint64_t start_ns; /* first run, for the timeout */

	pthread_mutex_t lock;
	pthread_cond_t verdict_cond;       /* a request's verdict came (lock) */
	struct request *migrating;         /* lock: the migration under way */
	struct request *inflight;          /* lock */
	struct request *done, **done_tail; /* lock */
	enum vcpu_state state;             /* lock */
	bool quit;                         /* lock */

	/* vCPU thread only: the last checkpoint, parent of an incremental one */
	uint8_t last_id[16];
	bool have_last;
	char *sandbox_dir;

	/* control thread only */
	struct request *queue, **queue_tail;
	unsigned nqueued;
	unsigned long seq;
	bool sig_pending, file_pending, period_pending;
	struct client clients[MAX_CLIENTS];

	/* vCPU thread only: checkpoints at chosen points (the tracer's callback
	 * runs on the vCPU thread). The caller's own tracer is chained. */
	struct wasp_trace_opts user_trace;
	bool tracing;             /* our callback is the virtine's tracer */
	uint64_t n_exits, n_hypercalls;
	bool at_fired, exits_fired, hc_fired;
	char point[96];           /* set when a point was reached: take it */
};

void wasp_runner_opts_init(struct wasp_runner_opts *o)
{
	memset(o, 0, sizeof *o);
}

const char *wasp_runner_socket_path(const struct wasp_runner *r)
{
	return r->have_sock ? r->sock_path : NULL;
}

const char *wasp_runner_name_path(const struct wasp_runner *r)
{
	return r->have_name ? r->name_path : NULL;
}

/* Checkpoint numbers come from both threads (points are taken on the vCPU's). */
static unsigned long next_seq(struct wasp_runner *r)
{
	return __atomic_add_fetch(&r->seq, 1, __ATOMIC_RELAXED);
}

static void wake(struct wasp_runner *r)
{
	uint64_t one = 1;
	ssize_t n = write(r->wakefd, &one, sizeof one);
	(void)n; /* a full counter already wakes the thread */
}

static void log_result(struct wasp_runner *r, struct request *q)
{
	if (!r->o.log || q->logged)
		return;
	q->logged = true;
	char src[64];
	if (q->trig == TRIG_SOCKET)
		snprintf(src, sizeof src, "socket, pid %d", (int)q->peer);
	else if (q->trig == TRIG_POINT)
		snprintf(src, sizeof src, "%s", q->point);
	else
		snprintf(src, sizeof src, "%s", trigger_names[q->trig]);
	if (q->kind == REQ_MIGRATE) {
		struct migration *m = q->mig;
		const struct wasp_migrate_stats *st = &m->st;
		if (!q->err && m->outcome == WASP_MIGRATED)
			fprintf(r->o.log,
				"%s: migration %lu (%s) to %s: migrated in %.1f ms (downtime %.1f ms, "
				"%u round%s, %llu bytes); the virtine runs there now\n",
				r->log_prefix, q->seq, src, q->to, st->total_ns / 1e6,
				st->downtime_ns / 1e6, st->rounds, st->rounds == 1 ? "" : "s",
				(unsigned long long)st->bytes);
		else if (m->outcome == WASP_MIGRATE_HELD)
			fprintf(r->o.log,
				"%s: migration %lu (%s) to %s: outcome unknown: %s; the virtine is held%s%s\n",
				r->log_prefix, q->seq, src, q->to, q->msg,
				m->hold_saved ? " in " : " (NOT saved)", m->hold_saved ? m->hold : "");
		else
			fprintf(r->o.log, "%s: migration %lu (%s) to %s failed: %s; the virtine goes on here\n",
				r->log_prefix, q->seq, src, q->to, q->msg);
		fflush(r->o.log);
		return;
	}
	if (q->err)
		fprintf(r->o.log, "%s: checkpoint %lu (%s) to %s failed: %s\n", r->log_prefix, q->seq,
			src, q->to, q->msg);
	else
		fprintf(r->o.log, "%s: checkpoint %lu (%s)%s to %s: %llu bytes in %.1f ms%s%s%s\n",
			r->log_prefix, q->seq, src, q->incremental ? " incremental" : "", q->to,
			(unsigned long long)q->bytes, q->ns / 1e6,
			q->stopped ? "; stopping the virtine" : "",
			q->stopped && q->kept[0] ? ", a copy kept in " : "", q->stopped ? q->kept : "");
	fflush(r->o.log);
}

static void fail_request(struct request *q, int err, const char *msg)
{
	q->err = err;
	snprintf(q->msg, sizeof q->msg, "%s", msg);
}

/* ---- migrations ------------------------------------------------------------ */

static void post_done(struct wasp_runner *r, struct request *q);
static void client_send(struct wasp_runner *r, int slot, char *line);
static void finish_request(struct wasp_runner *r, struct request *q);

static void migration_free(struct migration *m)
{
	if (!m)
		return;
	wasp_precopy_free(m->p);
	wasp_xfer_free(m->x);
	if (m->progress_fd >= 0)
		close(m->progress_fd);
	memset(m->token, 0, sizeof m->token);
	free(m);
}

/* Sends one progress line to the client that asked for the migration
 * (its own dup of the socket, so any thread may); a client that is gone or
 * slow loses the line, the migration never waits for it. id: for the
 * "connected" phase. */
static void progress_line(struct migration *m, const struct wasp_migrate_progress *p,
			  const char *id)
{
	if (m->progress_fd < 0)
		return;
	char line[MSG_MAX];
	wasp_ctl_format_progress(line, sizeof line, p, id);
	size_t len = wasp_ctl_frame(line, sizeof line);
	ssize_t n = send(m->progress_fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
}

static void on_progress(void *opaque, const struct wasp_migrate_stats *s)
{
	struct migration *m = opaque;
	struct wasp_migrate_progress p = {
		.phase = "precopy",
		.round = s->rounds,
		.pages = s->rounds ? s->round_pages[s->rounds - 1] : 0,
		.bytes = s->bytes,
		.dirty_pages = s->dirty_pages,
		.dirty_rate = s->dirty_rate,
		.bandwidth = s->bandwidth,
		.expected_downtime_ms = s->expected_downtime_ms,
		.elapsed_ms = s->precopy_ns / 1e6,
	};
	progress_line(m, &p, NULL);
}

/* Gives up a migration in pre-copy (runner lock held): the flag stops the
 * engine between writes, the transport's cancel wakes a blocked write. */
static void migration_cancel(struct migration *m)
{
	atomic_store(&m->cancel, true);
	if (m->x)
		wasp_xfer_cancel(m->x);
}

/* The final line of a migration that began (docs/triggers.md). */
static void migration_reply(struct wasp_runner *r, int slot, struct request *q)
{
	struct migration *m = q->mig;
	const struct wasp_migrate_stats *s = &m->st;
	struct wasp_migrate_reply rep = {
		.outcome = !q->err && m->outcome == WASP_MIGRATED ? WASP_MIGRATED
			   : m->outcome == WASP_MIGRATE_HELD	  ? WASP_MIGRATE_HELD
								  : WASP_MIGRATE_RESUMED,
		.hold_saved = m->hold_saved,
		.rounds = s->rounds,
		.bytes = s->bytes,
		.raw_bytes = s->raw_bytes,
		.file_bytes = s->file_bytes,
		.final_pages = s->final_pages,
		.total_ms = s->total_ns / 1e6,
		.downtime_ms = s->downtime_ns / 1e6,
		.precopy_ms = s->precopy_ns / 1e6,
		.dirty_rate = s->dirty_rate,
		.bandwidth = s->bandwidth,
		.expected_downtime_ms = s->expected_downtime_ms,
		.files_ms = s->files_ns / 1e6,
		.finish_ms = s->finish_ns / 1e6,
		.commit_ms = s->commit_ns / 1e6,
		.settle_ms = s->settle_ns / 1e6,
		.stopped_ns = s->stopped_ns,
	};
	size_t o = 0;
	for (unsigned i = 0; i < s->rounds && o + 24 < sizeof rep.round_pages; i++)
		o += (size_t)snprintf(rep.round_pages + o, sizeof rep.round_pages - o, "%s%llu",
				      i ? "," : "", (unsigned long long)s->round_pages[i]);
	snprintf(rep.id, sizeof rep.id, "%s", m->x ? wasp_xfer_id(m->x) : "");
	snprintf(rep.message, sizeof rep.message, "%s", q->msg);
	snprintf(rep.hold_path, sizeof rep.hold_path, "%s", m->hold);
	snprintf(rep.stop_reason, sizeof rep.stop_reason, "%s", s->stop_reason ? s->stop_reason : "");
	snprintf(rep.remote_target, sizeof rep.remote_target, "%s", s->target);
	char line[MSG_MAX];
	wasp_ctl_format_migrate_reply(line, sizeof line, &rep);
	client_send(r, slot, line);
}

/* Control thread: the migration's request is done; join its thread. */
static void migration_end(struct wasp_runner *r, struct request *q)
{
	struct migration *m = q->mig;
	if (m->thread_started) {
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
	pthread_mutex_lock(&r->lock);
	if (r->migrating == q)
		r->migrating = NULL;
	pthread_mutex_unlock(&r->lock);
}

/* The migration thread: pre-copy while the guest runs, then hands the
 * request to the vCPU thread through a pause. */
static void *migration_main(void *arg)
{
	struct request *q = arg;
	struct wasp_runner *r = q->runner;
	struct migration *m = q->mig;
	int err;

	struct wasp_xfer *x = NULL;
	if (q->fd >= 0) {
		err = wasp_xfer_open_fd(q->fd, q->to, &x);
	} else {
		m->xo.token = m->token[0] ? m->token : NULL;
		m->xo.ca_file = m->ca_file[0] ? m->ca_file : NULL;
		err = wasp_xfer_open(m->url, &m->xo, &x);
	}
	pthread_mutex_lock(&r->lock);
	m->x = x; /* under the lock: migration_cancel() may look at it */
	if (x && atomic_load(&m->cancel))
		wasp_xfer_cancel(x);
	pthread_mutex_unlock(&r->lock);
	if (err == 0) {
		struct wasp_migrate_progress p = {.phase = "connected"};
		progress_line(m, &p, wasp_xfer_id(m->x));
		m->mo.progress = on_progress;
		m->mo.opaque = m;
		m->mo.cancel = &m->cancel;
		err = wasp_precopy_begin(r->v, &m->mo, m->x, &m->p);
	}
	if (err == 0)
		err = wasp_precopy_iterate(m->p);
	if (m->p)
		m->st = *wasp_precopy_stats(m->p);

	pthread_mutex_lock(&r->lock);
	if (err == 0 && r->state == V_ENDED)
		err = wasp_fail(-ESRCH, "the virtine has already exited");
	if (err < 0) {
		fail_request(q, err, wasp_last_error());
		m->outcome = WASP_MIGRATE_RESUMED;
		if (m->x)
			wasp_xfer_cancel(m->x);
		post_done(r, q);
	} else {
		struct wasp_migrate_progress p = {.phase = "stop",
						  .round = m->st.rounds,
						  .dirty_pages = m->st.dirty_pages,
						  .expected_downtime_ms = m->st.expected_downtime_ms};
		progress_line(m, &p, NULL);
		r->inflight = q;
	}
	pthread_mutex_unlock(&r->lock);
	if (err < 0)
		wake(r);
	else
		wasp_virtine_pause(r->v); /* after `inflight` is set, as start_next does */
	return NULL;
}

static void start_migration(struct wasp_runner *r, struct request *q)
{
	q->runner = r;
	q->mig->started = true;
	pthread_mutex_lock(&r->lock);
	r->migrating = q;
	pthread_mutex_unlock(&r->lock);
	/* Inherits the control thread's mask: no asynchronous signals. */
	int e = pthread_create(&q->mig->thread, NULL, migration_main, q);
	if (e) {
		pthread_mutex_lock(&r->lock);
		r->migrating = NULL;
		pthread_mutex_unlock(&r->lock);
		q->mig->started = false;
		fail_request(q, -e, "cannot start the migration thread");
		finish_request(r, q);
		return;
	}
	q->mig->thread_started = true;
}

/* Parses `migrate k=v ...` (the arguments in args) into a new request;
 * NULL with *bad set. */
static struct request *parse_migrate(struct wasp_runner *r, char *args, const char **bad,
				     char *badbuf, size_t cap)
{
	struct request *q = calloc(1, sizeof *q);
	struct migration *m = calloc(1, sizeof *m);
	struct wasp_ctl_migrate *c = calloc(1, sizeof *c);
	if (!q || !m || !c) {
		free(q);
		free(m);
		free(c);
		*bad = "out of memory";
		return NULL;
	}
	q->trig = TRIG_SOCKET;
	q->kind = REQ_MIGRATE;
	q->fd = -1;
	q->mig = m;
	m->progress_fd = -1;
	m->outcome = WASP_MIGRATE_RESUMED;
	/* The runner's defaults, which the request's fields override. */
	wasp_xfer_opts_init(&c->xo);
	c->mo.save = r->o.save;
	if (wasp_ctl_parse_migrate(args, c, badbuf, cap) < 0) {
		*bad = badbuf;
	} else {
		memcpy(m->url, c->url, sizeof m->url);
		memcpy(m->token, c->token, sizeof m->token);
		memcpy(m->ca_file, c->ca_file, sizeof m->ca_file);
		memcpy(m->hold, c->hold, sizeof m->hold);
		m->mo = c->mo;
		m->xo = c->xo;
		m->with_files = c->with_files;
	}
	memset(c, 0, sizeof *c); /* it held the token */
	free(c);
	if (!*bad && m->with_files && !r->sandbox_dir)
		*bad = "--with-files: this virtine has no sandbox directory";
	if (!*bad && m->with_files)
		m->mo.files_dir = r->sandbox_dir;
	if (*bad) {
		migration_free(m);
		free(q);
		return NULL;
	}
	return q;
}

/* Where a virtine stopped with no confirmed copy elsewhere is kept: the
 * runner's checkpoint path, else DIR/<pid>-held.wckpt beside its socket. */
static void hold_path(const struct wasp_runner *r, char *buf, size_t cap)
{
	if (r->ckpt_path) {
		snprintf(buf, cap, "%s", r->ckpt_path);
	} else if (r->have_sock) {
		const char *slash = strrchr(r->sock_path, '/');
		int dl = slash ? (int)(slash - r->sock_path) : 1;
		snprintf(buf, cap, "%.*s/%s-held.wckpt", dl, slash ? r->sock_path : ".",
			 r->sock_base);
	} else {
		snprintf(buf, cap, "wasp-held-%d.wckpt", (int)getpid());
	}
}

/* Where a held virtine is saved when the request names no place. */
static void default_hold(struct wasp_runner *r, struct migration *m)
{
	if (!m->hold[0])
		hold_path(r, m->hold, sizeof m->hold);
}

/* ---- control thread: clients -------------------------------------------- */

static void client_watch(struct wasp_runner *r, int slot, bool readable)
{
	struct epoll_event ev = {.events = readable ? EPOLLIN : 0, .data.u64 = CLIENT_TAG + slot};
	epoll_ctl(r->epfd, EPOLL_CTL_MOD, r->clients[slot].fd, &ev);
}

/* Sends one line (in a buffer of MSG_MAX, framed here) to a client. */
static void client_send(struct wasp_runner *r, int slot, char *line)
{
	size_t len = wasp_ctl_frame(line, MSG_MAX);
	/* The client waits for this one message; if its buffer is full or it
	 * is gone, it loses the answer, and the runner never blocks on it. */
	struct iovec iov = {.iov_base = line, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = sendmsg(r->clients[slot].fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
}

/* An `error` answer. */
static void client_error(struct wasp_runner *r, int slot, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void client_error(struct wasp_runner *r, int slot, const char *fmt, ...)
{
	char msg[MSG_MAX], line[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	wasp_ctl_format_error(line, sizeof line, msg);
	client_send(r, slot, line);
}

static void client_drop(struct wasp_runner *r, int slot);

/* The `ok` answer to a checkpoint request (docs/triggers.md); with
 * commit_wait, the client is asked to commit its file. */
static void reply_ok(struct wasp_runner *r, int slot, struct request *q, bool commit_wait)
{
	struct wasp_checkpoint_reply rep = {.bytes = q->bytes,
					    .ms = q->ns / 1e6,
					    .stopped = q->stopped,
					    .incremental = q->incremental};
	char line[MSG_MAX];
	snprintf(rep.id, sizeof rep.id, "%s", q->id);
	snprintf(rep.kept, sizeof rep.kept, "%s", q->kept);
	wasp_ctl_format_checkpoint_reply(line, sizeof line, &rep, commit_wait);
	client_send(r, slot, line);
}

/* The vCPU thread waits for the client to commit its file: ask it, or
 * answer for a client that is gone. */
static void ask_commit(struct wasp_runner *r)
{
	pthread_mutex_lock(&r->lock);
	struct request *q = r->inflight;
	bool ask = q && q->awaiting && !q->told;
	if (ask) {
		q->told = true;
		if (!q->client) {
			q->verdict = -1;
			pthread_cond_broadcast(&r->verdict_cond);
			ask = false;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (!ask)
		return;
	int slot = (int)(q->client - r->clients);
	reply_ok(r, slot, q, true);
	client_watch(r, slot, true); /* for its `commit` or `abort` */
}

static void set_verdict(struct wasp_runner *r, struct request *q, int verdict)
{
	pthread_mutex_lock(&r->lock);
	if (!q->verdict)
		q->verdict = verdict;
	pthread_cond_broadcast(&r->verdict_cond);
	pthread_mutex_unlock(&r->lock);
}

/* Ends a request on the control thread: answer, log, clean up, free. */
static void finish_request(struct wasp_runner *r, struct request *q)
{
	log_result(r, q);
	if (q->kind == REQ_MIGRATE)
		migration_end(r, q);
	if (q->client) {
		int slot = (int)(q->client - r->clients);
		if (q->kind == REQ_MIGRATE && q->mig->started)
			migration_reply(r, slot, q);
		else if (q->err)
			client_error(r, slot, "%s", q->msg);
		else
			reply_ok(r, slot, q, false);
		q->client->req = NULL;
		client_watch(r, slot, true);
	}
	switch (q->trig) {
	case TRIG_SIGNAL:
		r->sig_pending = false;
		break;
	case TRIG_PERIOD:
		r->period_pending = false;
		break;
	case TRIG_FILE:
		r->file_pending = false;
		/* Its disappearance says "done" to whoever created it. */
		if (unlink(r->trigger_path) < 0 && errno != ENOENT && r->o.log)
			fprintf(r->o.log, "%s: cannot remove the trigger file %s: %s\n",
				r->log_prefix, r->trigger_path, strerror(errno));
		break;
	case TRIG_SOCKET:
	case TRIG_POINT:
		break;
	}
	if (q->fd >= 0)
		close(q->fd);
	migration_free(q->mig);
	free(q);
}

static void enqueue(struct wasp_runner *r, struct request *q)
{
	q->seq = next_seq(r);
	q->queued = true;
	q->next = NULL;
	*r->queue_tail = q;
	r->queue_tail = &q->next;
	r->nqueued++;
}

static void unqueue(struct wasp_runner *r, struct request *q)
{
	for (struct request **p = &r->queue; *p; p = &(*p)->next) {
		if (*p != q)
			continue;
		*p = q->next;
		if (!*p)
			r->queue_tail = p;
		r->nqueued--;
		q->queued = false;
		return;
	}
}

static void client_drop(struct wasp_runner *r, int slot)
{
	struct client *c = &r->clients[slot];
	if (c->req) {
		if (c->req->queued) {
			/* Nobody is waiting for it any more: never take it. */
			struct request *q = c->req;
			unqueue(r, q);
			q->client = NULL;
			fail_request(q, -ECANCELED, "the client went away before its turn");
			finish_request(r, q);
		} else {
			/* Being written (or done): it finishes unanswered. A write
			 * that waits on a reader nobody drives any more is given up,
			 * so the guest does not stand still for it. A migration in
			 * pre-copy is given up too (wasp-migrate was interrupted);
			 * once the guest is stopped for it, the commit decides. */
			pthread_mutex_lock(&r->lock);
			if (c->req->kind == REQ_MIGRATE && r->migrating == c->req && r->inflight != c->req)
				migration_cancel(c->req->mig);
			if (r->inflight == c->req && c->req->kind == REQ_CHECKPOINT) {
				atomic_store(&c->req->cancel, true);
				uint64_t one = 1;
				ssize_t n = write(r->cancelfd, &one, sizeof one);
				(void)n;
				/* Nobody will commit its file: the guest goes on. */
				if (!c->req->verdict)
					c->req->verdict = -1;
				pthread_cond_broadcast(&r->verdict_cond);
			}
			pthread_mutex_unlock(&r->lock);
			c->req->client = NULL;
		}
	}
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->req = NULL;
}

static struct request *new_request(enum trigger t)
{
	struct request *q = calloc(1, sizeof *q);
	if (q) {
		q->trig = t;
		q->fd = -1;
	}
	return q;
}

/* The virtine can take no more checkpoints: say so at once. */
static bool virtine_ended(struct wasp_runner *r)
{
	pthread_mutex_lock(&r->lock);
	bool ended = r->state == V_ENDED;
	pthread_mutex_unlock(&r->lock);
	return ended;
}

/* One request line from a client, with the fds that came with it. */
static void client_request(struct wasp_runner *r, int slot, char *line, int *fds, int nfds)
{
	struct client *cl = &r->clients[slot];
	char *save = NULL, *cmd = strtok_r(line, " ", &save);
	int keep = -1; /* the fd the request takes */

	if (cl->req && cl->req->told) {
		/* The one answer expected now: anything but `commit` keeps the
		 * virtine running, which is never a loss. */
		bool commit = cmd && !strcmp(cmd, WASP_CTL_COMMIT);
		if (!commit && !(cmd && !strcmp(cmd, WASP_CTL_ABORT)))
			client_error(r, slot, "expected commit or abort; the virtine goes on");
		set_verdict(r, cl->req, commit ? 1 : -1);
		client_watch(r, slot, false);
	} else if (!cmd) {
		client_error(r, slot, "empty request");
	} else if (!strcmp(cmd, WASP_CTL_COMMIT) || !strcmp(cmd, WASP_CTL_ABORT)) {
		client_error(r, slot, "no checkpoint is waiting to be committed");
	} else if (!strcmp(cmd, WASP_CTL_PING)) {
		/* An unnamed instance goes by PID.N, the name its clients check. */
		char pong[MSG_MAX];
		wasp_ctl_format_pong(pong, sizeof pong, (int)getpid(),
				     r->name ? r->name : r->o.instance ? r->sock_base : NULL);
		client_send(r, slot, pong);
	} else if (!strcmp(cmd, WASP_CTL_CHECKPOINT)) {
		struct wasp_ctl_checkpoint c;
		const char *bad = NULL;
		char badbuf[128];
		if (wasp_ctl_parse_checkpoint(save, &c, badbuf, sizeof badbuf) < 0)
			bad = badbuf;
		if (!bad && nfds != 1)
			bad = nfds ? "send exactly one destination file descriptor"
				   : "checkpoint needs a destination file descriptor (SCM_RIGHTS)";
		if (!bad && virtine_ended(r))
			bad = "the virtine has already exited";
		if (!bad && r->nqueued >= MAX_QUEUED)
			bad = "too many checkpoint requests are waiting";
		struct request *q = NULL;
		if (!bad && !(q = new_request(TRIG_SOCKET)))
			bad = "out of memory";
		if (bad) {
			client_error(r, slot, "%s", bad);
		} else {
			q->fd = keep = fds[0];
			q->stop = c.stop;
			q->incremental = c.incremental;
			q->mappable = c.mappable;
			snprintf(q->kept, sizeof q->kept, "%s", c.keep);
			q->peer = cl->pid;
			q->client = cl;
			if (c.to[0])
				snprintf(q->to, sizeof q->to, "%s", c.to);
			else
				snprintf(q->to, sizeof q->to, "an fd from pid %d", (int)cl->pid);
			cl->req = q;
			client_watch(r, slot, false); /* one request at a time per client */
			enqueue(r, q);
		}
	} else if (!strcmp(cmd, WASP_CTL_MIGRATE)) {
		const char *bad = NULL;
		char badbuf[160];
		struct request *q = NULL;
		if (nfds > 1)
			bad = "send at most one destination file descriptor";
		else if (virtine_ended(r))
			bad = "the virtine has already exited";
		else if (r->nqueued >= MAX_QUEUED)
			bad = "too many requests are waiting";
		else
			q = parse_migrate(r, save, &bad, badbuf, sizeof badbuf);
		if (q && !nfds && strncmp(q->mig->url, "http://", 7) &&
		    strncmp(q->mig->url, "https://", 8) && strncmp(q->mig->url, "file://", 7))
			bad = "migrate needs url=http(s)://..., url=file:///PATH or a file descriptor";
		if (q && !bad && nfds && q->mig->with_files)
			bad = "--with-files needs an http(s) destination";
		if (q && !bad && (q->mig->progress_fd = fcntl(cl->fd, F_DUPFD_CLOEXEC, 0)) < 0)
			bad = "cannot duplicate the connection";
		if (bad) {
			if (q) {
				migration_free(q->mig);
				free(q);
			}
			client_error(r, slot, "%s", bad);
		} else {
			if (nfds)
				q->fd = keep = fds[0];
			q->peer = cl->pid;
			q->client = cl;
			if (q->mig->url[0])
				snprintf(q->to, sizeof q->to, "%.250s", q->mig->url);
			else
				snprintf(q->to, sizeof q->to, "an fd from pid %d", (int)cl->pid);
			default_hold(r, q->mig);
			cl->req = q;
			client_watch(r, slot, false);
			enqueue(r, q);
		}
	} else {
		client_error(r, slot, "unknown request '%.64s'", cmd);
	}
	for (int i = 0; i < nfds; i++)
		if (fds[i] != keep)
			close(fds[i]);
}

static void client_readable(struct wasp_runner *r, int slot)
{
	char buf[MSG_MAX + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} cm;
	struct iovec iov = {.iov_base = buf, .iov_len = MSG_MAX};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			   .msg_controllen = sizeof cm.b};
	ssize_t n = recvmsg(r->clients[slot].fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(r, slot);
		return;
	}
	int fds[8], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k && nfds < 8; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		client_error(r, slot, "%s", (m.msg_flags & MSG_TRUNC)
					 ? "request too long"
					 : "too many file descriptors");
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	buf[n] = '\0';
	wasp_ctl_unframe(buf);
	client_request(r, slot, buf, fds, nfds);
}

static void accept_clients(struct wasp_runner *r)
{
	for (;;) {
		int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return; /* EAGAIN, or an aborted connection */
		struct ucred cred;
		socklen_t len = sizeof cred;
		const char *refuse = NULL;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
			refuse = "cannot tell who you are";
		else if (cred.uid != geteuid() && cred.uid != 0)
			refuse = WASP_CTL_DENIED;
		int slot = -1;
		for (int i = 0; i < MAX_CLIENTS && slot < 0 && !refuse; i++)
			if (r->clients[i].fd < 0)
				slot = i;
		if (!refuse && slot < 0)
			refuse = "too many connections";
		if (refuse) {
			char line[128];
			wasp_ctl_format_error(line, sizeof line, refuse);
			size_t n = wasp_ctl_frame(line, sizeof line);
			send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = CLIENT_TAG + slot};
		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			continue;
		}
		r->clients[slot] = (struct client){.fd = fd, .pid = cred.pid};
	}
}

/* ---- control thread: triggers ------------------------------------------- */

static void trigger(struct wasp_runner *r, enum trigger t)
{
	bool *pending = t == TRIG_SIGNAL ? &r->sig_pending
		      : t == TRIG_FILE   ? &r->file_pending
					 : &r->period_pending;
	if (*pending)
		return; /* one is on its way: this one folds into it */
	struct request *q = new_request(t);
	if (!q)
		return;
	q->stop = r->o.stop_after_trigger;
	snprintf(q->to, sizeof q->to, "%s", r->ckpt_path ? r->ckpt_path : "(nowhere)");
	*pending = true;
	if (!r->ckpt_path) {
		q->seq = next_seq(r);
		fail_request(q, -EINVAL, "no checkpoint path is set");
		finish_request(r, q);
		return;
	}
	if (virtine_ended(r)) {
		q->seq = next_seq(r);
		fail_request(q, -ESRCH, "the virtine has already exited");
		finish_request(r, q);
		return;
	}
	enqueue(r, q);
}

static void read_signals(struct wasp_runner *r)
{
	struct signalfd_siginfo si;
	bool any = false;
	while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		any = true;
	if (any)
		trigger(r, TRIG_SIGNAL);
}

static bool trigger_file_exists(struct wasp_runner *r)
{
	struct stat st;
	return lstat(r->trigger_path, &st) == 0;
}

static void read_inotify(struct wasp_runner *r)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool hit = false;
	ssize_t n;
	while ((n = read(r->inofd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if ((ev->mask & IN_Q_OVERFLOW) ||
			    (ev->len && !strcmp(ev->name, r->trigger_base)))
				hit = true;
			p += sizeof *ev + ev->len;
		}
	}
	/* Events can trail the checkpoint that already removed the file
	 * (create, then close-write): only a file that is there counts. */
	if (hit && trigger_file_exists(r))
		trigger(r, TRIG_FILE);
}

static void read_timer(struct wasp_runner *r)
{
	uint64_t ticks;
	if (read(r->timerfd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks)
		trigger(r, TRIG_PERIOD);
}

/* ---- control thread: the loop ------------------------------------------- */

/* Results the vCPU thread posted. */
static void deliver_done(struct wasp_runner *r)
{
	pthread_mutex_lock(&r->lock);
	struct request *list = r->done;
	r->done = NULL;
	r->done_tail = &r->done;
	pthread_mutex_unlock(&r->lock);
	while (list) {
		struct request *next = list->next;
		finish_request(r, list);
		list = next;
	}
}

/* Starts the next checkpoint when none is under way. */
static void start_next(struct wasp_runner *r)
{
	if (!r->queue)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->inflight || r->quit || r->migrating) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	if (r->state == V_ENDED) {
		pthread_mutex_unlock(&r->lock);
		while (r->queue) {
			struct request *q = r->queue;
			unqueue(r, q);
			fail_request(q, -ESRCH, "the virtine has already exited");
			finish_request(r, q);
		}
		return;
	}
	struct request *q = r->queue;
	unqueue(r, q);
	if (q->kind == REQ_MIGRATE) {
		pthread_mutex_unlock(&r->lock);
		start_migration(r, q);
		return;
	}
	r->inflight = q;
	pthread_mutex_unlock(&r->lock);
	/* After `inflight` is set: the vCPU thread reads it once paused. */
	wasp_virtine_pause(r->v);
}

static void control_shutdown(struct wasp_runner *r)
{
	pthread_mutex_lock(&r->lock);
	struct request *mq = r->migrating;
	if (mq && r->inflight != mq)
		migration_cancel(mq->mig); /* still in pre-copy: its thread posts it as done */
	pthread_mutex_unlock(&r->lock);
	if (mq && mq->mig->thread_started) {
		pthread_join(mq->mig->thread, NULL);
		mq->mig->thread_started = false;
	}
	pthread_mutex_lock(&r->lock);
	struct request *q = r->inflight;
	r->inflight = NULL;
	pthread_mutex_unlock(&r->lock);
	deliver_done(r);
	if (q) {
		fail_request(q, -ESRCH, "the virtine has stopped");
		finish_request(r, q);
	}
	while ((q = r->queue)) {
		unqueue(r, q);
		fail_request(q, -ESRCH, "the virtine has stopped");
		finish_request(r, q);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (r->clients[i].fd >= 0)
			client_drop(r, i);
}

static void *control_main(void *arg)
{
	struct wasp_runner *r = arg;
	struct epoll_event evs[16];

	if (r->trigger_path && trigger_file_exists(r))
		trigger(r, TRIG_FILE);
	for (;;) {
		start_next(r);
		int n = epoll_wait(r->epfd, evs, 16, -1);
		if (n < 0 && errno != EINTR)
			break; /* cannot happen with a valid epfd; shut down cleanly */
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			if (tag == TAG_WAKE) {
				uint64_t cnt;
				ssize_t rd = read(r->wakefd, &cnt, sizeof cnt);
				(void)rd;
			} else if (tag == TAG_SIGNAL) {
				read_signals(r);
			} else if (tag == TAG_INOTIFY) {
				read_inotify(r);
			} else if (tag == TAG_TIMER) {
				read_timer(r);
			} else if (tag == TAG_LISTEN) {
				accept_clients(r);
			} else if (tag >= CLIENT_TAG && tag < CLIENT_TAG + MAX_CLIENTS) {
				int slot = (int)(tag - CLIENT_TAG);
				if (r->clients[slot].fd < 0)
					continue; /* dropped earlier in this batch */
				if (evs[i].events & EPOLLIN)
					client_readable(r, slot);
				else if (evs[i].events & (EPOLLHUP | EPOLLERR))
					client_drop(r, slot);
			}
		}
		deliver_done(r);
		ask_commit(r);
		pthread_mutex_lock(&r->lock);
		bool quit = r->quit;
		pthread_mutex_unlock(&r->lock);
		if (quit)
			break;
	}
	control_shutdown(r);
	return NULL;
}

/* ---- setup -------------------------------------------------------------- */

/* Connects to an existing socket file: 1 with *pid when something listens
 * there, 0 when nothing does (a stale file), -errno. */
static int probe_socket(const char *path, pid_t *pid, int *sock)
{
	int s, r = connect_path(path, wasp_now_ns() + PROBE_TIMEOUT_NS, &s);
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

static int bind_pid_socket(struct wasp_runner *r, const char *dir)
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
static bool name_is_ours(const struct wasp_runner *r)
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
		return !name_is_ours(r);
	}
	struct wasp_runner_peer peer;
	char line[MSG_MAX];
	int p = ping(s, wasp_now_ns() + PROBE_TIMEOUT_NS, &peer, line, sizeof line);
	close(s);
	if (p == 0) {
		*holder = peer.pid;
		return !strcmp(peer.name, r->name); /* another name: a reused pid */
	}
	return 1; /* something lives there and did not answer: do not steal it */
}

static int link_name(struct wasp_runner *r, const char *dir)
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

static int watch_fd(struct wasp_runner *r, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return wasp_fail(-errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

static int setup_triggers(struct wasp_runner *r)
{
	int e;
	if (r->o.handle_sigusr1) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		if ((e = pthread_sigmask(SIG_BLOCK, &set, &r->old_mask)) != 0)
			return wasp_fail(-e, "pthread_sigmask: %s", strerror(e));
		r->mask_set = true;
		r->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
		if (r->sigfd < 0)
			return wasp_fail(-errno, "signalfd: %s", strerror(errno));
		if ((e = watch_fd(r, r->sigfd, TAG_SIGNAL)) < 0)
			return e;
	}
	if (r->trigger_path) {
		char *copy = strdup(r->trigger_path);
		if (!copy)
			return wasp_fail(-ENOMEM, "out of memory");
		char *slash = strrchr(copy, '/');
		const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
		if (slash)
			*slash = '\0';
		const char *base = slash ? slash + 1 : copy;
		if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
			free(copy);
			return wasp_fail(-EINVAL, "trigger file %s: not a file name", r->trigger_path);
		}
		if (copy_str(&r->trigger_base, base) < 0) {
			free(copy);
			return -ENOMEM;
		}
		r->inofd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (r->inofd < 0) {
			free(copy);
			return wasp_fail(-errno, "inotify_init1: %s", strerror(errno));
		}
		if (inotify_add_watch(r->inofd, dir, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE |
							     IN_ONLYDIR) < 0) {
			e = errno;
			int err = wasp_fail(-e, "trigger file %s: directory %s: %s", r->trigger_path,
					    dir, strerror(e));
			free(copy);
			return err;
		}
		free(copy);
		if ((e = watch_fd(r, r->inofd, TAG_INOTIFY)) < 0)
			return e;
	}
	if (r->o.checkpoint_every_ns) {
		r->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (r->timerfd < 0)
			return wasp_fail(-errno, "timerfd_create: %s", strerror(errno));
		uint64_t ns = r->o.checkpoint_every_ns;
		struct timespec t = {.tv_sec = (time_t)(ns / 1000000000ull),
				     .tv_nsec = (long)(ns % 1000000000ull)};
		struct itimerspec its = {.it_interval = t, .it_value = t};
		if (timerfd_settime(r->timerfd, 0, &its, NULL) < 0)
			return wasp_fail(-errno, "timerfd_settime: %s", strerror(errno));
		if ((e = watch_fd(r, r->timerfd, TAG_TIMER)) < 0)
			return e;
	}
	return 0;
}

/* ---- checkpoints at chosen points ---------------------------------------- */

/* Counts one event toward an --checkpoint-after-* point (want 0: none),
 * naming the point when the count reaches it, once. */
static void count_to_point(struct wasp_runner *r, uint64_t want, uint64_t *n, bool *fired,
			   const char *what)
{
	if (want && !*fired && ++*n == want) {
		*fired = true;
		snprintf(r->point, sizeof r->point, "after %llu %s", (unsigned long long)*n, what);
	}
}

/* The virtine's tracer while points are armed: the caller's tracer first
 * (only the events it asked for), then the counting. A point reached stops
 * the run at once; wasp_runner_run() takes the checkpoint. */
static int point_trace(struct wasp_virtine *v, const struct wasp_trace_event *ev, void *opaque)
{
	struct wasp_runner *r = opaque;
	const struct wasp_runner_opts *o = &r->o;
	int ret = WASP_TRACE_CONTINUE;

	if (r->user_trace.fn &&
	    (ev->kind == WASP_TRACE_BREAK || (r->user_trace.events & WASP_TRACE_BIT(ev->kind))))
		ret = r->user_trace.fn(v, ev, r->user_trace.opaque);
	if (r->point[0])
		return WASP_TRACE_STOP; /* one already waits to be taken */
	switch (ev->kind) {
	case WASP_TRACE_EXIT:
		count_to_point(r, o->checkpoint_after_exits, &r->n_exits, &r->exits_fired, "exits");
		break;
	case WASP_TRACE_HYPERCALL:
		count_to_point(r, o->checkpoint_after_hypercalls, &r->n_hypercalls, &r->hc_fired,
			       "hypercalls");
		break;
	case WASP_TRACE_BREAK:
		if (o->checkpoint_at_set && !r->at_fired && ev->addr == o->checkpoint_at &&
		    ev->hits == (o->checkpoint_at_count ? o->checkpoint_at_count : 1)) {
			r->at_fired = true;
			snprintf(r->point, sizeof r->point, "breakpoint 0x%llx hit %llu",
				 (unsigned long long)ev->addr, (unsigned long long)ev->hits);
		}
		break;
	default:
		break;
	}
	return r->point[0] ? WASP_TRACE_STOP : ret;
}

static bool points_wanted(const struct wasp_runner_opts *o)
{
	return o->checkpoint_at_set || o->checkpoint_after_exits || o->checkpoint_after_hypercalls;
}

/* Chains our tracer in front of the caller's and plants the breakpoint. */
static int points_arm(struct wasp_runner *r)
{
	const struct wasp_runner_opts *o = &r->o;
	struct wasp_trace_opts t;
	int err;

	wasp_virtine_trace_get(r->v, &r->user_trace);
	t = r->user_trace;
	t.events = r->user_trace.fn ? r->user_trace.events : 0;
	if (o->checkpoint_after_exits)
		t.events |= WASP_TRACE_BIT(WASP_TRACE_EXIT);
	if (o->checkpoint_after_hypercalls)
		t.events |= WASP_TRACE_BIT(WASP_TRACE_HYPERCALL);
	t.fn = point_trace;
	t.opaque = r;
	if (o->checkpoint_at_set && (err = wasp_virtine_break_add(r->v, o->checkpoint_at)) < 0)
		return err;
	if ((err = wasp_virtine_trace(r->v, &t)) < 0) {
		if (o->checkpoint_at_set)
			wasp_virtine_break_remove(r->v, o->checkpoint_at);
		return err;
	}
	r->tracing = true;
	return 0;
}

/* Gives the virtine back its own tracer (or none). */
static void points_disarm(struct wasp_runner *r)
{
	if (!r->tracing)
		return;
	if (r->o.checkpoint_at_set && !r->at_fired)
		wasp_virtine_break_remove(r->v, r->o.checkpoint_at);
	wasp_virtine_trace(r->v, r->user_trace.fn ? &r->user_trace : NULL);
	r->tracing = false;
}

int wasp_runner_create(struct wasp_virtine *v, const struct wasp_runner_opts *o,
		       struct wasp_runner **out)
{
	int err;

	*out = NULL;
	if (!v || !o)
		return wasp_fail(-EINVAL, "wasp_runner_create: no virtine or options");
	if ((o->trigger_file || o->checkpoint_every_ns) && !o->checkpoint_path)
		return wasp_fail(-EINVAL, "a trigger file or a checkpoint period needs a checkpoint path");
	if (points_wanted(o) && !o->checkpoint_path)
		return wasp_fail(-EINVAL, "a checkpoint at a chosen point needs a checkpoint path");
	if (o->name && (err = wasp_runner_name_valid(o->name)) < 0)
		return err;
	if (o->name && o->no_socket)
		return wasp_fail(-EINVAL, "a name needs the control socket");

	struct wasp_runner *r = calloc(1, sizeof *r);
	if (!r)
		return wasp_fail(-ENOMEM, "out of memory");
	r->v = v;
	r->o = *o;
	if (o->instance)
		snprintf(r->sock_base, sizeof r->sock_base, "%d.%u", (int)getpid(), o->instance);
	else
		snprintf(r->sock_base, sizeof r->sock_base, "%d", (int)getpid());
	r->epfd = r->wakefd = r->sigfd = r->inofd = r->timerfd = r->lfd = r->cancelfd = -1;
	r->done_tail = &r->done;
	r->queue_tail = &r->queue;
	for (int i = 0; i < MAX_CLIENTS; i++)
		r->clients[i].fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wasp_now_ns()'s clock */
	pthread_cond_init(&r->verdict_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (copy_str(&r->name, o->name) < 0 || copy_str(&r->ckpt_path, o->checkpoint_path) < 0 ||
	    copy_str(&r->trigger_path, o->trigger_file) < 0 ||
	    copy_str(&r->log_prefix, o->log_prefix ? o->log_prefix : "wasp") < 0 ||
	    copy_str(&r->sandbox_dir, o->sandbox_dir) < 0) {
		err = -ENOMEM;
		goto fail;
	}
	/* The strings are ours now; keep no pointer into the caller's. */
	r->o.name = r->name;
	r->o.checkpoint_path = r->ckpt_path;
	r->o.trigger_file = r->trigger_path;
	r->o.log_prefix = r->log_prefix;
	r->o.sandbox_dir = r->sandbox_dir;
	r->o.run_dir = NULL;

	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->cancelfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->epfd < 0 || r->wakefd < 0 || r->cancelfd < 0) {
		err = wasp_fail(-errno, "epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((err = watch_fd(r, r->wakefd, TAG_WAKE)) < 0)
		goto fail;

	if (!o->no_socket) {
		char dir[PATH_MAX], why[PATH_MAX + 128];
		if (o->run_dir) {
			if ((err = dir_usable(o->run_dir, true, why, sizeof why)) < 0) {
				err = wasp_fail(err, "run directory %s", why);
				goto fail;
			}
			snprintf(dir, sizeof dir, "%s", o->run_dir);
		} else if ((err = wasp_runner_dir(dir, sizeof dir, true)) < 0) {
			goto fail;
		}
		if ((err = bind_pid_socket(r, dir)) < 0)
			goto fail;
		if (r->name && (err = link_name(r, dir)) < 0)
			goto fail;
		if ((err = watch_fd(r, r->lfd, TAG_LISTEN)) < 0)
			goto fail;
	}
	if ((err = setup_triggers(r)) < 0)
		goto fail;
	if (points_wanted(o) && (err = points_arm(r)) < 0)
		goto fail;

	/* The control thread takes no asynchronous signal: they belong to the
	 * program (SIGINT, SIGTERM) or arrive through the signalfd (SIGUSR1). */
	sigset_t all, cur;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_SETMASK, &all, &cur);
	err = pthread_create(&r->thread, NULL, control_main, r);
	pthread_sigmask(SIG_SETMASK, &cur, NULL);
	if (err) {
		err = wasp_fail(-err, "pthread_create: %s", strerror(err));
		goto fail;
	}
	r->thread_started = true;
	*out = r;
	return 0;
fail:
	wasp_runner_destroy(r);
	return err;
}

void wasp_runner_destroy(struct wasp_runner *r)
{
	if (!r)
		return;
	if (r->thread_started) {
		pthread_mutex_lock(&r->lock);
		r->quit = true;
		pthread_mutex_unlock(&r->lock);
		wake(r);
		pthread_join(r->thread, NULL);
	}
	points_disarm(r);
	/* Remove only what is still ours. */
	if (r->have_name && name_is_ours(r))
		unlink(r->name_path);
	if (r->have_sock) {
		struct stat st;
		if (lstat(r->sock_path, &st) == 0 && st.st_dev == r->sock_dev &&
		    st.st_ino == r->sock_ino)
			unlink(r->sock_path);
	}
	if (r->sigfd >= 0) {
		/* SIGUSR1s still pending would kill the process once unblocked. */
		struct signalfd_siginfo si;
		while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
			;
	}
	if (r->mask_set)
		pthread_sigmask(SIG_SETMASK, &r->old_mask, NULL);
	int fds[] = {r->epfd, r->wakefd, r->sigfd, r->inofd, r->timerfd, r->lfd, r->cancelfd};
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* Whatever the thread never saw (a failed create). */
	for (struct request *q = r->queue, *next; q; q = next) {
		next = q->next;
		if (q->fd >= 0)
			close(q->fd);
		migration_free(q->mig);
		free(q);
	}
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->verdict_cond);
	free(r->name);
	free(r->ckpt_path);
	free(r->trigger_path);
	free(r->trigger_base);
	free(r->log_prefix);
	free(r->sandbox_dir);
	free(r);
}

/* ---- the vCPU thread ---------------------------------------------------- */

/* A sink into a client's fd that gives up when the client goes away or
 * the run's time is up: the fd is non-blocking while we write, and a full
 * pipe is waited for together with the cancel eventfd, until the deadline
 * (0: none). (A regular file never waits.) */
struct client_sink {
	int fd, cancelfd;
	struct request *q;
	uint64_t deadline;
};

static int client_sink_write(void *ctx, const void *buf, size_t len)
{
	struct client_sink *s = ctx;
	const char *p = buf;

	while (len) {
		if (atomic_load(&s->q->cancel))
			return wasp_fail(-ECANCELED, "canceled: the client went away");
		ssize_t n = write(s->fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd pf[2] = {{.fd = s->fd, .events = POLLOUT},
					       {.fd = s->cancelfd, .events = POLLIN}};
			uint64_t ms = remaining_ms(s->deadline);
			if (ms == 0)
				return wasp_fail(-ETIMEDOUT, "the virtine's time ran out while its "
							     "checkpoint waited for a reader");
			if (poll(pf, 2, ms > INT_MAX ? -1 : (int)ms) < 0 && errno != EINTR)
				return wasp_fail(-errno, "poll: %s", strerror(errno));
			if (pf[1].revents & POLLIN) {
				uint64_t cnt;
				ssize_t rd = read(s->cancelfd, &cnt, sizeof cnt);
				(void)rd; /* the flag, checked above, says whether it is ours */
			}
		} else if (n < 0 && errno != EINTR) {
			return wasp_fail(-errno, "writing the checkpoint: %s", strerror(errno));
		} else if (n == 0) {
			return wasp_fail(-EIO, "writing the checkpoint: wrote nothing");
		}
	}
	return 0;
}

/* Saves the paused virtine for request q. SIGPIPE is held back so a reader
 * that went away fails this checkpoint instead of killing the process. */
static void take_checkpoint(struct wasp_runner *r, struct request *q, uint64_t deadline)
{
	sigset_t pipe_set, old, pending;
	struct wasp_ckpt_stats st;
	int err;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	bool had_pipe = sigismember(&pending, SIGPIPE);

	memset(&st, 0, sizeof st);
	/* Every checkpoint keeps dirty tracking on, so the next may be
	 * incremental; an incremental one names the last as its parent. */
	struct wasp_save_opts so = r->o.save;
	so.track_dirty = true;
	so.incremental = q->incremental;
	so.parent_id = q->incremental ? r->last_id : NULL;
	so.mappable = !q->incremental && (q->mappable || so.mappable);
	uint64_t t0 = wasp_now_ns();
	if (q->incremental && !r->have_last) {
		err = wasp_fail(-ENOENT, "no parent checkpoint: take a full one first");
	} else if (q->fd >= 0) {
		struct client_sink cs = {.fd = q->fd, .cancelfd = r->cancelfd, .q = q,
					 .deadline = deadline};
		struct wasp_sink sink = {.write = client_sink_write, .ctx = &cs};
		int fl = fcntl(q->fd, F_GETFL);
		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(q->fd, F_SETFL, fl | O_NONBLOCK);
		err = wasp_ckpt_save(r->v, &so, &sink, &st);
		/* The description is shared with the client: give it back as it was. */
		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(q->fd, F_SETFL, fl);
	} else {
		err = wasp_ckpt_save_file(r->v, &so, r->ckpt_path, &st);
	}
	if (err == 0) {
		memcpy(r->last_id, st.id, sizeof r->last_id);
		r->have_last = true;
		for (int i = 0; i < 16; i++)
			snprintf(q->id + 2 * i, 3, "%02x", st.id[i]);
	}
	/* A failed checkpoint gives its dirty pages back (ckpt.h): the last
	 * good one stays the parent. */
	q->ns = wasp_now_ns() - t0;
	q->bytes = st.bytes;
	if (err < 0)
		fail_request(q, err, wasp_last_error());

	if (!had_pipe) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The vCPU thread, paused after a stop=1 checkpoint into a client's file:
 * waits (bounded) for the client to say the file is committed. */
static bool await_commit(struct wasp_runner *r, struct request *q, uint64_t deadline)
{
	uint64_t until = wasp_now_ns() + COMMIT_WAIT_NS;
	if (deadline && deadline < until)
		until = deadline;
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull),
			      .tv_nsec = (long)(until % 1000000000ull)};
	pthread_mutex_lock(&r->lock);
	q->awaiting = true;
	pthread_mutex_unlock(&r->lock);
	wake(r);
	pthread_mutex_lock(&r->lock);
	while (!q->verdict)
		if (pthread_cond_timedwait(&r->verdict_cond, &r->lock, &ts) == ETIMEDOUT)
			break;
	int verdict = q->verdict;
	q->awaiting = false;
	pthread_mutex_unlock(&r->lock);
	if (verdict > 0)
		return true;
	fail_request(q, -ECANCELED,
		     verdict < 0 ? "the client did not commit the checkpoint; the virtine goes on"
				 : "the client did not commit the checkpoint in time; the virtine goes on");
	return false;
}

/* The vCPU thread, paused after a stop=1 checkpoint into a pipe or socket,
 * whose reader cannot tell us it has the virtine safe: keeps a local copy
 * of the same state before stopping. */
static bool keep_copy(struct wasp_runner *r, struct request *q)
{
	struct wasp_save_opts so = r->o.save;
	so.incremental = so.track_dirty = so.mappable = false;
	so.parent_id = NULL;
	if (!q->kept[0])
		hold_path(r, q->kept, sizeof q->kept);
	if (wasp_ckpt_save_file(r->v, &so, q->kept, NULL) == 0)
		return true;
	char msg[sizeof q->msg];
	snprintf(msg, sizeof msg,
		 "the checkpoint went into a pipe, whose reader cannot confirm it, and no local "
		 "copy could be kept (%.200s): the virtine goes on here, so do not run what the "
		 "pipe carried", wasp_last_error());
	fail_request(q, -EIO, msg);
	q->kept[0] = '\0';
	return false;
}

/* The vCPU thread, paused after checkpoint q asked to stop the virtine:
 * true once a durable copy of exactly this state is known to exist, else
 * false with q failed, and the virtine goes on. Never a stopped virtine
 * whose only copy is in a temporary file or in a pipe. */
static bool secure_stop(struct wasp_runner *r, struct request *q, uint64_t deadline)
{
	struct stat st;
	if (q->fd < 0)
		return true; /* our own file, committed (fsync, rename) by the save */
	if (fstat(q->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return keep_copy(r, q);
	q->kept[0] = '\0'; /* the client's file is the copy */
	if (fsync(q->fd) < 0) {
		char msg[sizeof q->msg];
		snprintf(msg, sizeof msg, "fsync of the checkpoint: %s; the virtine goes on",
			 strerror(errno));
		fail_request(q, -EIO, msg);
		return false;
	}
	return await_commit(r, q, deadline);
}

/* The vCPU thread, guest stopped for migration q: the rest of the stream,
 * the verdict, and what it means for the virtine here. Returns true when
 * the virtine must not run here again (migrated or held). */
static bool migrate_final(struct wasp_runner *r, struct request *q, struct wasp_runner_result *res)
{
	struct migration *m = q->mig;
	enum wasp_xfer_verdict v;
	sigset_t pipe_set, old;
	uint64_t stopped = wasp_now_ns();

	sigset_t pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	bool had_pipe = sigismember(&pending, SIGPIPE);
	struct wasp_migrate_progress cp = {.phase = "commit"};
	progress_line(m, &cp, NULL);
	int err = wasp_precopy_finish(m->p, stopped, &v);
	char why[384];
	snprintf(why, sizeof why, "%s", wasp_last_error());
	m->st = *wasp_precopy_stats(m->p);
	/* A failed migration leaves the incremental chain intact: the live
	 * stream gives back every dirty page it fetched (wasp_live_free). */

	bool gone = false;
	if (err == 0 && v == WASP_XFER_ACCEPTED) {
		m->outcome = WASP_MIGRATED;
		res->stopped = res->migrated = true;
		snprintf(res->stopped_to, sizeof res->stopped_to, "%s", q->to);
		gone = true;
	} else if (err == 0 && v == WASP_XFER_UNKNOWN) {
		/* Nobody can say whether the receiver runs it: never run it here,
		 * but keep it, so it is lost in no case. */
		m->outcome = WASP_MIGRATE_HELD;
		struct wasp_save_opts so = r->o.save;
		so.incremental = so.track_dirty = false;
		so.parent_id = NULL;
		if (wasp_ckpt_save_file(r->v, &so, m->hold, NULL) == 0) {
			m->hold_saved = true;
		} else {
			char e2[256];
			snprintf(e2, sizeof e2, "%s", wasp_last_error());
			snprintf(why + strlen(why), sizeof why - strlen(why),
				 "; and it could not be saved to %.200s: %.100s", m->hold, e2);
		}
		fail_request(q, -ETIMEDOUT, why);
		res->stopped = res->held = true;
		res->held_saved = m->hold_saved;
		snprintf(res->held_path, sizeof res->held_path, "%s", m->hold);
		snprintf(res->stopped_to, sizeof res->stopped_to, "%s", q->to);
		gone = true;
	} else {
		m->outcome = WASP_MIGRATE_RESUMED;
		fail_request(q, err < 0 ? err : -EREMOTEIO, why);
	}
	m->st = *wasp_precopy_stats(m->p);
	if (!had_pipe) {
		/* A reader of a pipe that went away: its EPIPE failed the write. */
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return gone;
}

static void post_done(struct wasp_runner *r, struct request *q)
{
	q->next = NULL;
	*r->done_tail = q;
	r->done_tail = &q->next;
}

int wasp_runner_run(struct wasp_runner *r, struct wasp_runner_result *res)
{
	struct wasp_exit *e = &res->exit;
	int err = 0;

	memset(res, 0, sizeof *res);
	pthread_mutex_lock(&r->lock);
	if (r->state == V_ENDED) {
		pthread_mutex_unlock(&r->lock);
		return wasp_fail(-ESRCH, "the virtine has already exited");
	}
	r->state = V_RUNNING;
	pthread_mutex_unlock(&r->lock);
	if (!r->start_ns)
		r->start_ns = wasp_now_ns();
	uint64_t deadline = r->o.timeout_ns ? r->start_ns + r->o.timeout_ns : 0;

	for (;;) {
		uint64_t left = 0;
		if (deadline) {
			uint64_t now = wasp_now_ns();
			if (now >= deadline) {
				memset(e, 0, sizeof *e);
				e->reason = WASP_EXIT_TIMEOUT;
				break;
			}
			left = deadline - now;
		}
		if ((err = wasp_virtine_run(r->v, left, e)) < 0)
			break;
		if (e->reason != WASP_EXIT_PAUSED)
			break;

		struct request *q;
		if (r->point[0]) {
			/* A chosen point: this thread's own request, taken now (a
			 * request of the control thread waits for the next pause). */
			if (!(q = new_request(TRIG_POINT))) {
				err = wasp_fail(-ENOMEM, "out of memory");
				break;
			}
			q->seq = next_seq(r);
			q->stop = r->o.stop_after_trigger;
			snprintf(q->point, sizeof q->point, "%s", r->point);
			snprintf(q->to, sizeof q->to, "%s", r->ckpt_path);
			r->point[0] = '\0';
			if (r->o.checkpoint_at_set && r->at_fired)
				wasp_virtine_break_remove(r->v, r->o.checkpoint_at);
		} else {
			pthread_mutex_lock(&r->lock);
			q = r->inflight;
			pthread_mutex_unlock(&r->lock);
			if (!q)
				continue; /* a pause whose request was taken already: go on */
		}

		bool stop;
		if (q->kind == REQ_MIGRATE) {
			stop = migrate_final(r, q, res);
			q->stopped = stop;
			log_result(r, q);
		} else {
			take_checkpoint(r, q, deadline);
			if (!q->err)
				res->checkpoints++;
			stop = q->stop && !q->err && secure_stop(r, q, deadline);
			q->stopped = stop;
			log_result(r, q);
			if (stop) {
				res->stopped = true;
				snprintf(res->stopped_to, sizeof res->stopped_to, "%s", q->to);
				snprintf(res->kept_path, sizeof res->kept_path, "%s", q->kept);
			}
		}

		pthread_mutex_lock(&r->lock);
		if (q->trig != TRIG_POINT)
			r->inflight = NULL;
		post_done(r, q); /* q belongs to the control thread from here */
		pthread_mutex_unlock(&r->lock);
		wake(r);
		if (stop)
			break;
	}

	bool over = err < 0 || (e->reason != WASP_EXIT_HYPERCALL && e->reason != WASP_EXIT_PAUSED);
	if (over && r->point[0]) {
		/* Reached on the exit that ended the guest: nothing left to save. */
		if (r->o.log) {
			fprintf(r->o.log, "%s: %s: the guest ended there; no checkpoint\n",
				r->log_prefix, r->point);
			fflush(r->o.log);
		}
		r->point[0] = '\0';
	}
	pthread_mutex_lock(&r->lock);
	r->state = over ? V_ENDED : V_IDLE;
	if (over && r->inflight) {
		/* The pause came too late: the guest was gone before it landed. */
		struct request *q = r->inflight;
		r->inflight = NULL;
		fail_request(q, -ESRCH, "the virtine has already exited");
		post_done(r, q);
	}
	pthread_mutex_unlock(&r->lock);
	wake(r);
	return err;
}

/* ---- the client side ---------------------------------------------------- */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int wasp_runner_connect(const char *target, uint64_t timeout_ns, int *sock,
			struct wasp_runner_peer *peer)
{
	uint64_t deadline = timeout_ns ? wasp_now_ns() + timeout_ns : 0;
	bool is_pid = all_digits(target);
	long pid = 0;
	char what[WASP_RUNNER_NAME_MAX + 32];

	*sock = -1;
	memset(peer, 0, sizeof *peer);
	if (is_pid) {
		char *end;
		errno = 0;
		pid = strtol(target, &end, 10);
		if (errno || pid <= 0 || pid > INT_MAX)
			return wasp_fail(-EINVAL, "'%s' is not a pid", target);
		snprintf(what, sizeof what, "pid %ld", pid);
	} else {
		if (wasp_runner_name_valid(target) < 0)
			return wasp_fail(-EINVAL, "'%s' is neither a pid nor a virtine name", target);
		snprintf(what, sizeof what, "virtine %s", target);
	}

	/* Where it may be: $WASP_RUN_DIR alone, or every default place (a
	 * runner picks the first usable one, which may differ for its user). */
	char dirs[3][PATH_MAX];
	int ndirs;
	const char *env = getenv("WASP_RUN_DIR");
	if (env && *env) {
		snprintf(dirs[0], PATH_MAX, "%s", env);
		ndirs = 1;
	} else {
		ndirs = candidate_dirs(dirs);
	}
	char path[PATH_MAX] = "", denied[PATH_MAX] = "", untrusted[PATH_MAX + 128] = "";
	bool found = false;
	for (int i = 0; i < ndirs && !found; i++) {
		struct stat st;
		int n = snprintf(path, sizeof path, "%s/%s.sock", dirs[i], target);
		if (n < 0 || (size_t)n >= sizeof path)
			continue;
		if (stat(path, &st) < 0) {
			if (errno == EACCES && !denied[0])
				snprintf(denied, sizeof denied, "%s", path);
			continue;
		}
		/* A socket in a place another user could have written is never
		 * used: it would get our checkpoint's fd, or a migration token. */
		char why[PATH_MAX + 128];
		if (dir_trusted(dirs[i], why, sizeof why) == 0)
			found = true;
		else if (!untrusted[0])
			snprintf(untrusted, sizeof untrusted, "%s", why);
	}
	if (!found) {
		if (untrusted[0])
			return wasp_fail(-EACCES, "%s: not using its socket: %s", what, untrusted);
		if (denied[0])
			return wasp_fail(-EACCES, "%s: permission denied (%s)", what, denied);
		if (!is_pid)
			return wasp_fail(-ENOENT, "no virtine named %s", target);
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			return wasp_fail(-ESRCH, "no wasp-run with pid %ld", pid);
		return wasp_fail(-ENOTSOCK, "pid %ld is not a virtine (no control socket)", pid);
	}

	int s, r = connect_path(path, deadline, &s);
	if (r == -ECONNREFUSED || r == -ENOENT) {
		/* A file left by a runner that died. */
		if (!is_pid)
			return wasp_fail(-ENOENT, "no virtine named %s (stale socket %s)", target, path);
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			return wasp_fail(-ESRCH, "no wasp-run with pid %ld (stale socket %s)", pid, path);
		return wasp_fail(-ENOTSOCK, "pid %ld is not a virtine (stale socket %s)", pid, path);
	}
	if (r == -EACCES || r == -EPERM)
		return wasp_fail(-EACCES, "%s: permission denied (%s)", what, path);
	if (r == -EPROTOTYPE || r == -ENOTSOCK)
		return wasp_fail(-ENOTSOCK, "%s is not a virtine's control socket", path);
	if (r == -ETIMEDOUT || r == -EAGAIN)
		return wasp_fail(-ETIMEDOUT, "%s: no answer (%s)", what, path);
	if (r < 0)
		return wasp_fail(r, "connect %s: %s", path, strerror(-r));

	/* The directory was ours or root's, but check who answers anyway: only
	 * a runner of this user (or root's) gets our requests. */
	struct ucred cred;
	socklen_t clen = sizeof cred;
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		int e = errno;
		close(s);
		return wasp_fail(-e, "%s: cannot tell who serves %s: %s", what, path, strerror(e));
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		close(s);
		return wasp_fail(-EACCES, "%s: %s is served by uid %u, not by this user (%u) or root: "
					  "not using it", what, path, (unsigned)cred.uid,
				 (unsigned)geteuid());
	}

	char line[MSG_MAX];
	r = ping(s, deadline, peer, line, sizeof line);
	if (r < 0) {
		close(s);
		switch (r) {
		case -EACCES:
			return wasp_fail(-EACCES, "%s: permission denied (the runner refused this user)",
					 what);
		case -ETIMEDOUT:
			return wasp_fail(-ETIMEDOUT, "%s did not answer in time (%s)", what, path);
		case -ECONNRESET:
			return wasp_fail(-ECONNRESET, "%s closed the connection (%s)", what, path);
		default:
			return wasp_fail(-EPROTO, "%s does not answer as a wasp runner (%s)", path, what);
		}
	}
	if (!is_pid && strcmp(peer->name, target)) {
		close(s);
		return wasp_fail(-ENOENT, "no virtine named %s (%s answers as pid %d)", target, path,
				 (int)peer->pid);
	}
	snprintf(peer->path, sizeof peer->path, "%s", path);
	*sock = s;
	return 0;
}

int wasp_runner_request_checkpoint(int sock, const struct wasp_checkpoint_request *req,
				   int dest_fd, uint64_t timeout_ns,
				   struct wasp_checkpoint_reply *rep)
{
	uint64_t deadline = timeout_ns ? wasp_now_ns() + timeout_ns : 0;
	char line[MSG_MAX];
	bool wait = false;

	memset(rep, 0, sizeof *rep);
	if (wasp_ctl_format_checkpoint(line, sizeof line, req) < 0)
		return wasp_fail(-E2BIG, "checkpoint request too long");
	wasp_ctl_frame(line, sizeof line);
	int r = send_msg(sock, line, dest_fd);
	if (r == -EPIPE || r == -ECONNRESET)
		return wasp_fail(-ECONNRESET, "the runner closed the connection");
	if (r < 0)
		return wasp_fail(r, "send: %s", strerror(-r));
	r = recv_line(sock, line, sizeof line, deadline);
	if (r == 0 && wasp_ctl_parse_checkpoint_reply(line, rep, &wait) == 0 && wait) {
		/* Written and synced, guest paused: our turn to commit. */
		int c = req->commit ? req->commit(req->commit_ctx) : 0;
		char answer[8] = WASP_CTL_COMMIT;
		if (c != 0)
			snprintf(answer, sizeof answer, "%s", WASP_CTL_ABORT);
		wasp_ctl_frame(answer, sizeof answer);
		rep->committed = c == 0;
		if (send_msg(sock, answer, -1) < 0 && c == 0)
			return wasp_fail(-ECONNRESET, "the checkpoint is saved, but the runner "
						      "went away before it could stop the virtine");
		if (c < 0)
			return c; /* the virtine goes on; the commit said why */
		r = recv_line(sock, line, sizeof line, deadline);
		if (r < 0)
			return wasp_fail(r == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET,
					 "the checkpoint is saved, but the runner did not say whether "
					 "the virtine stopped (%s)",
					 r == -ETIMEDOUT ? "no answer in time" : "did its process die?");
	}
	if (r == -ECONNRESET)
		return wasp_fail(-ECONNRESET,
				 "the connection closed before the checkpoint was done (did the virtine's process die?)");
	if (r == -ETIMEDOUT)
		return wasp_fail(-ETIMEDOUT, "no answer in time");
	if (r < 0)
		return wasp_fail(r, "recv: %s", strerror(-r));
	const char *err = wasp_ctl_parse_error(line);
	if (err)
		return wasp_fail(-EREMOTEIO, "%s", err);
	if (wasp_ctl_parse_checkpoint_reply(line, rep, &wait) < 0)
		return wasp_fail(-EPROTO, "unexpected answer: %.100s", line);
	return 0;
}

int wasp_runner_request_migrate(int sock, const struct wasp_migrate_request *req, int dest_fd,
				void (*progress)(void *opaque, const struct wasp_migrate_progress *p),
				void *opaque, struct wasp_migrate_reply *rep)
{
	char line[MSG_MAX];
	memset(rep, 0, sizeof *rep);
	rep->outcome = WASP_MIGRATE_RESUMED;

	if (wasp_ctl_format_migrate(line, sizeof line, req) < 0) {
		memset(line, 0, sizeof line); /* it held the token */
		return wasp_fail(-E2BIG, "migrate request too long");
	}
	wasp_ctl_frame(line, sizeof line);
	int r = send_msg(sock, line, dest_fd);
	memset(line, 0, sizeof line); /* it held the token */
	if (r == -EPIPE || r == -ECONNRESET)
		return wasp_fail(-ECONNRESET, "the runner closed the connection");
	if (r < 0)
		return wasp_fail(r, "send: %s", strerror(-r));
	for (;;) {
		r = recv_line(sock, line, sizeof line, 0);
		if (r == -ECONNRESET)
			return wasp_fail(-ECONNRESET,
					 "the connection closed before the migration was done (did the virtine's process die?)");
		if (r < 0)
			return wasp_fail(r, "recv: %s", strerror(-r));
		char phase[32];
		struct wasp_migrate_progress p;
		if (wasp_ctl_parse_progress(line, &p, phase, sizeof phase)) {
			if (progress)
				progress(opaque, &p);
			continue;
		}
		const char *err = wasp_ctl_parse_error(line);
		if (err)
			return wasp_fail(-EREMOTEIO, "%s", err);
		if (wasp_ctl_parse_migrate_reply(line, rep) == 0)
			return 0;
		return wasp_fail(-EPROTO, "unexpected answer: %.100s", line);
	}
}
