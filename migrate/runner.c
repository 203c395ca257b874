/*
 * runner.c: the runner, a virtine plus a control thread that turns
 * SIGUSR1, a trigger file, a period and control-socket requests into
 * checkpoints: create, run and destroy, and the vCPU thread's side of
 * every request (runner_internal.h says which file owns the rest).
 *
 * Who does what, and why:
 *  - The control thread (runner_control.c) owns every fd that can wake it
 *    (signalfd, inotify, timerfd, the listening socket and its clients, a
 *    wake eventfd) and the queue of requests. It starts one checkpoint at
 *    a time: it makes the head of the queue `inflight` and calls
 *    wasp_virtine_pause().
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
 *    (runner_migration.c) that streams memory while the guest runs
 *    (pre-copy). When that thread is done it makes the request `inflight`
 *    and pauses the vCPU like a checkpoint would; the vCPU thread then
 *    sends the rest and waits for the verdict (migrate_final), and stops,
 *    resumes or holds the virtine accordingly. While a migration is under
 *    way no other request starts (a checkpoint would consume the dirty log
 *    it lives on).
 * `inflight`, `done`, `state`, `quit` and `migrating` are shared under
 * `lock`; the rest belongs to one thread.
 *
 * The protocol on the socket is docs/triggers.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runner_internal.h"

/* How long a paused guest waits for a client to commit the file a
 * stop=1 checkpoint went into: the runner has synced the data already, so
 * the client has only a rename and a directory sync left. */
#define COMMIT_WAIT_NS 30000000000ull

int wasp_rn_copy_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	if (!(*dst = strdup(src)))
		return wasp_fail(-ENOMEM, "out of memory");
	return 0;
}

void wasp_runner_opts_init(struct wasp_runner_opts *o)
{
	memset(o, 0, sizeof *o);
}

/* Checkpoint numbers come from both threads (points are taken on the vCPU's). */
unsigned long wasp_rn_next_seq(struct wasp_runner *r)
{
	return __atomic_add_fetch(&r->seq, 1, __ATOMIC_RELAXED);
}

void wasp_rn_wake(struct wasp_runner *r)
{
	uint64_t one = 1;
	ssize_t n = write(r->wakefd, &one, sizeof one);
	(void)n; /* a full counter already wakes the thread */
}

void wasp_rn_log_result(struct wasp_runner *r, struct request *q)
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
		snprintf(src, sizeof src, "%s", wasp_rn_trigger_names[q->trig]);
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

void wasp_rn_fail_request(struct request *q, int err, const char *msg)
{
	q->err = err;
	snprintf(q->msg, sizeof q->msg, "%s", msg);
}

struct request *wasp_rn_new_request(enum trigger t)
{
	struct request *q = calloc(1, sizeof *q);
	if (q) {
		q->trig = t;
		q->fd = -1;
	}
	return q;
}

/* Where a virtine stopped with no confirmed copy elsewhere is kept: the
 * runner's checkpoint path, else DIR/<pid>-held.wckpt beside its socket. */
void wasp_rn_hold_path(const struct wasp_runner *r, char *buf, size_t cap)
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

/* An upload to the runner's s3:// path, with its endpoint; opening only
 * reads the configuration, nothing is sent. */
static int s3_open(const struct wasp_runner *r, const char *path, struct wasp_xfer **x)
{
	struct wasp_xfer_opts xo;
	wasp_xfer_opts_init(&xo);
	xo.s3_endpoint = r->s3_endpoint;
	return wasp_xfer_open(path, &xo, x);
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
	if (wasp_rn_points_wanted(o) && !o->checkpoint_path)
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
	if (wasp_rn_copy_str(&r->name, o->name) < 0 || wasp_rn_copy_str(&r->ckpt_path, o->checkpoint_path) < 0 ||
	    wasp_rn_copy_str(&r->trigger_path, o->trigger_file) < 0 ||
	    wasp_rn_copy_str(&r->log_prefix, o->log_prefix ? o->log_prefix : "wasp") < 0 ||
	    wasp_rn_copy_str(&r->sandbox_dir, o->sandbox_dir) < 0 ||
	    wasp_rn_copy_str(&r->s3_endpoint, o->s3_endpoint) < 0) {
		err = -ENOMEM;
		goto fail;
	}
	/* The strings are ours now; keep no pointer into the caller's. */
	r->o.name = r->name;
	r->o.checkpoint_path = r->ckpt_path;
	r->o.trigger_file = r->trigger_path;
	r->o.log_prefix = r->log_prefix;
	r->o.sandbox_dir = r->sandbox_dir;
	r->o.s3_endpoint = r->s3_endpoint;
	r->o.run_dir = NULL;

	/* An s3:// path that cannot work (no credentials, a bad bucket name)
	 * fails here, not at the first checkpoint. */
	if (r->ckpt_path && wasp_s3_url(r->ckpt_path)) {
		struct wasp_xfer *x;
		if ((err = s3_open(r, r->ckpt_path, &x)) < 0)
			goto fail;
		wasp_xfer_free(x);
	}

	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->cancelfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->epfd < 0 || r->wakefd < 0 || r->cancelfd < 0) {
		err = wasp_fail(-errno, "epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((err = wasp_rn_watch_fd(r, r->wakefd, TAG_WAKE)) < 0)
		goto fail;

	if (!o->no_socket) {
		char dir[PATH_MAX], why[PATH_MAX + 128];
		if (o->run_dir) {
			if ((err = wasp_rn_dir_usable(o->run_dir, true, why, sizeof why)) < 0) {
				err = wasp_fail(err, "run directory %s", why);
				goto fail;
			}
			snprintf(dir, sizeof dir, "%s", o->run_dir);
		} else if ((err = wasp_runner_dir(dir, sizeof dir, true)) < 0) {
			goto fail;
		}
		if ((err = wasp_rn_bind_pid_socket(r, dir)) < 0)
			goto fail;
		if (r->name && (err = wasp_rn_link_name(r, dir)) < 0)
			goto fail;
		if ((err = wasp_rn_watch_fd(r, r->lfd, TAG_LISTEN)) < 0)
			goto fail;
	}
	if ((err = wasp_rn_setup_triggers(r)) < 0)
		goto fail;
	if (wasp_rn_points_wanted(o) && (err = wasp_rn_points_arm(r)) < 0)
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
	err = pthread_create(&r->thread, NULL, wasp_rn_control_main, r);
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
		wasp_rn_wake(r);
		pthread_join(r->thread, NULL);
	}
	wasp_rn_points_disarm(r);
	/* Remove only what is still ours. */
	if (r->have_name && wasp_rn_name_is_ours(r))
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
		wasp_rn_migration_free(q->mig);
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
	free(r->s3_endpoint);
	free(r);
}

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
			uint64_t ms = wasp_rn_remaining_ms(s->deadline);
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
/* Saves the paused virtine to the runner's own path: a file, written
 * atomically, or an s3:// object, which appears only when the upload is
 * completed after the end record (any failure aborts it). */
static int save_to(struct wasp_runner *r, const struct wasp_save_opts *so, const char *path,
		   struct wasp_ckpt_stats *st)
{
	if (!wasp_s3_url(path))
		return wasp_ckpt_save_file(r->v, so, path, st);
	struct wasp_xfer *x;
	enum wasp_xfer_verdict verdict;
	int err = s3_open(r, path, &x);
	if (err < 0)
		return err;
	struct wasp_sink sink = wasp_xfer_sink(x);
	err = wasp_ckpt_save(r->v, so, &sink, st);
	if (err == 0)
		err = wasp_xfer_commit(x, &verdict);
	/* A refused or unknown upload is no checkpoint (the reason is in
	 * wasp_last_error()): the object did not appear. */
	if (err == 0 && verdict != WASP_XFER_ACCEPTED)
		err = -EIO;
	wasp_xfer_free(x); /* aborts the upload unless it was completed */
	return err;
}

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
		err = save_to(r, &so, r->ckpt_path, &st);
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
		wasp_rn_fail_request(q, err, wasp_last_error());

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
	wasp_rn_wake(r);
	pthread_mutex_lock(&r->lock);
	while (!q->verdict)
		if (pthread_cond_timedwait(&r->verdict_cond, &r->lock, &ts) == ETIMEDOUT)
			break;
	int verdict = q->verdict;
	q->awaiting = false;
	pthread_mutex_unlock(&r->lock);
	if (verdict > 0)
		return true;
	wasp_rn_fail_request(q, -ECANCELED,
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
		wasp_rn_hold_path(r, q->kept, sizeof q->kept);
	if (save_to(r, &so, q->kept, NULL) == 0)
		return true;
	char msg[sizeof q->msg];
	snprintf(msg, sizeof msg,
		 "the checkpoint went into a pipe, whose reader cannot confirm it, and no local "
		 "copy could be kept (%.200s): the virtine goes on here, so do not run what the "
		 "pipe carried", wasp_last_error());
	wasp_rn_fail_request(q, -EIO, msg);
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
	if (fstat(q->fd, &st) < 0)
		return keep_copy(r, q);
	if (!S_ISREG(st.st_mode) && q->confirm) {
		/* A reader that confirms what it read (wasp-ckpt uploading to
		 * s3://) sees the end of the stream only once our end is closed:
		 * /dev/null takes the fd's place (the control thread closes q->fd
		 * later, so the number stays ours), then we wait for its word. */
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (nul < 0 || dup3(nul, q->fd, O_CLOEXEC) < 0) {
			char msg[sizeof q->msg];
			snprintf(msg, sizeof msg, "ending the checkpoint's stream: %s; the virtine goes on",
				 strerror(errno));
			if (nul >= 0)
				close(nul);
			wasp_rn_fail_request(q, -EIO, msg);
			return false;
		}
		close(nul);
		q->kept[0] = '\0';
		return await_commit(r, q, deadline);
	}
	if (!S_ISREG(st.st_mode))
		return keep_copy(r, q);
	q->kept[0] = '\0'; /* the client's file is the copy */
	if (fsync(q->fd) < 0) {
		char msg[sizeof q->msg];
		snprintf(msg, sizeof msg, "fsync of the checkpoint: %s; the virtine goes on",
			 strerror(errno));
		wasp_rn_fail_request(q, -EIO, msg);
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
	wasp_rn_progress_line(m, &cp, NULL);
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
		wasp_rn_fail_request(q, -ETIMEDOUT, why);
		res->stopped = res->held = true;
		res->held_saved = m->hold_saved;
		snprintf(res->held_path, sizeof res->held_path, "%s", m->hold);
		snprintf(res->stopped_to, sizeof res->stopped_to, "%s", q->to);
		gone = true;
	} else {
		m->outcome = WASP_MIGRATE_RESUMED;
		wasp_rn_fail_request(q, err < 0 ? err : -EREMOTEIO, why);
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

void wasp_rn_post_done(struct wasp_runner *r, struct request *q)
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
			if (!(q = wasp_rn_new_request(TRIG_POINT))) {
				err = wasp_fail(-ENOMEM, "out of memory");
				break;
			}
			q->seq = wasp_rn_next_seq(r);
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
			wasp_rn_log_result(r, q);
		} else {
			take_checkpoint(r, q, deadline);
			if (!q->err)
				res->checkpoints++;
			stop = q->stop && !q->err && secure_stop(r, q, deadline);
			q->stopped = stop;
			wasp_rn_log_result(r, q);
			if (stop) {
				res->stopped = true;
				snprintf(res->stopped_to, sizeof res->stopped_to, "%s", q->to);
				snprintf(res->kept_path, sizeof res->kept_path, "%s", q->kept);
			}
		}

		pthread_mutex_lock(&r->lock);
		if (q->trig != TRIG_POINT)
			r->inflight = NULL;
		wasp_rn_post_done(r, q); /* q belongs to the control thread from here */
		pthread_mutex_unlock(&r->lock);
		wasp_rn_wake(r);
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
		wasp_rn_fail_request(q, -ESRCH, "the virtine has already exited");
		wasp_rn_post_done(r, q);
	}
	pthread_mutex_unlock(&r->lock);
	wasp_rn_wake(r);
	return err;
}
