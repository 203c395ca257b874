/*
 * runner_control.c: the runner's control thread: accepts clients (this
 * user's or root's), reads their requests, keeps the queue, starts one
 * request at a time, answers, and on shutdown answers whatever is still
 * waiting. Its loop (wasp_rn_control_main) waits on every fd that can
 * wake it; the triggers it reads are runner_triggers.c's, migrations
 * runner_migration.c's, the lines control_proto.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runner_internal.h"

static void client_watch(struct wasp_runner *r, int slot, bool readable)
{
	struct epoll_event ev = {.events = readable ? EPOLLIN : 0, .data.u64 = CLIENT_TAG + slot};
	epoll_ctl(r->epfd, EPOLL_CTL_MOD, r->clients[slot].fd, &ev);
}

/* Sends one line (in a buffer of MSG_MAX, framed here) to a client. */
void wasp_rn_client_send(struct wasp_runner *r, int slot, char *line)
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
	wasp_rn_client_send(r, slot, line);
}

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
	wasp_rn_client_send(r, slot, line);
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
void wasp_rn_finish_request(struct wasp_runner *r, struct request *q)
{
	wasp_rn_log_result(r, q);
	if (q->kind == REQ_MIGRATE)
		wasp_rn_migration_end(r, q);
	if (q->client) {
		int slot = (int)(q->client - r->clients);
		if (q->kind == REQ_MIGRATE && q->mig->started)
			wasp_rn_migration_reply(r, slot, q);
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
	wasp_rn_migration_free(q->mig);
	free(q);
}

void wasp_rn_enqueue(struct wasp_runner *r, struct request *q)
{
	q->seq = wasp_rn_next_seq(r);
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
			wasp_rn_fail_request(q, -ECANCELED, "the client went away before its turn");
			wasp_rn_finish_request(r, q);
		} else {
			/* Being written (or done): it finishes unanswered. A write
			 * that waits on a reader nobody drives any more is given up,
			 * so the guest does not stand still for it. A migration in
			 * pre-copy is given up too (wasp-migrate was interrupted);
			 * once the guest is stopped for it, the commit decides. */
			pthread_mutex_lock(&r->lock);
			if (c->req->kind == REQ_MIGRATE && r->migrating == c->req && r->inflight != c->req)
				wasp_rn_migration_cancel(c->req->mig);
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

/* The virtine can take no more checkpoints: say so at once. */
bool wasp_rn_virtine_ended(struct wasp_runner *r)
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
		wasp_rn_client_send(r, slot, pong);
	} else if (!strcmp(cmd, WASP_CTL_CHECKPOINT)) {
		struct wasp_ctl_checkpoint c;
		const char *bad = NULL;
		char badbuf[128];
		if (wasp_ctl_parse_checkpoint(save, &c, badbuf, sizeof badbuf) < 0)
			bad = badbuf;
		if (!bad && nfds != 1)
			bad = nfds ? "send exactly one destination file descriptor"
				   : "checkpoint needs a destination file descriptor (SCM_RIGHTS)";
		if (!bad && wasp_rn_virtine_ended(r))
			bad = "the virtine has already exited";
		if (!bad && r->nqueued >= MAX_QUEUED)
			bad = "too many checkpoint requests are waiting";
		struct request *q = NULL;
		if (!bad && !(q = wasp_rn_new_request(TRIG_SOCKET)))
			bad = "out of memory";
		if (bad) {
			client_error(r, slot, "%s", bad);
		} else {
			q->fd = keep = fds[0];
			q->stop = c.stop;
			q->incremental = c.incremental;
			q->mappable = c.mappable;
			q->confirm = c.confirm;
			snprintf(q->kept, sizeof q->kept, "%s", c.keep);
			q->peer = cl->pid;
			q->client = cl;
			if (c.to[0])
				snprintf(q->to, sizeof q->to, "%s", c.to);
			else
				snprintf(q->to, sizeof q->to, "an fd from pid %d", (int)cl->pid);
			cl->req = q;
			client_watch(r, slot, false); /* one request at a time per client */
			wasp_rn_enqueue(r, q);
		}
	} else if (!strcmp(cmd, WASP_CTL_MIGRATE)) {
		const char *bad = NULL;
		char badbuf[160];
		struct request *q = NULL;
		if (nfds > 1)
			bad = "send at most one destination file descriptor";
		else if (wasp_rn_virtine_ended(r))
			bad = "the virtine has already exited";
		else if (r->nqueued >= MAX_QUEUED)
			bad = "too many requests are waiting";
		else
			q = wasp_rn_parse_migrate(r, save, &bad, badbuf, sizeof badbuf);
		if (q && !nfds && strncmp(q->mig->url, "http://", 7) &&
		    strncmp(q->mig->url, "https://", 8) && strncmp(q->mig->url, "file://", 7))
			bad = "migrate needs url=http(s)://..., url=file:///PATH or a file descriptor";
		if (q && !bad && nfds && q->mig->with_files)
			bad = "--with-files needs an http(s) destination";
		if (q && !bad && (q->mig->progress_fd = fcntl(cl->fd, F_DUPFD_CLOEXEC, 0)) < 0)
			bad = "cannot duplicate the connection";
		if (bad) {
			if (q) {
				wasp_rn_migration_free(q->mig);
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
			wasp_rn_default_hold(r, q->mig);
			cl->req = q;
			client_watch(r, slot, false);
			wasp_rn_enqueue(r, q);
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
		wasp_rn_finish_request(r, list);
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
			wasp_rn_fail_request(q, -ESRCH, "the virtine has already exited");
			wasp_rn_finish_request(r, q);
		}
		return;
	}
	struct request *q = r->queue;
	unqueue(r, q);
	if (q->kind == REQ_MIGRATE) {
		pthread_mutex_unlock(&r->lock);
		wasp_rn_start_migration(r, q);
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
		wasp_rn_migration_cancel(mq->mig); /* still in pre-copy: its thread posts it as done */
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
		wasp_rn_fail_request(q, -ESRCH, "the virtine has stopped");
		wasp_rn_finish_request(r, q);
	}
	while ((q = r->queue)) {
		unqueue(r, q);
		wasp_rn_fail_request(q, -ESRCH, "the virtine has stopped");
		wasp_rn_finish_request(r, q);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (r->clients[i].fd >= 0)
			client_drop(r, i);
}

void *wasp_rn_control_main(void *arg)
{
	struct wasp_runner *r = arg;
	struct epoll_event evs[16];

	if (r->trigger_path && wasp_rn_trigger_file_exists(r))
		wasp_rn_trigger(r, TRIG_FILE);
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
				wasp_rn_read_signals(r);
			} else if (tag == TAG_INOTIFY) {
				wasp_rn_read_inotify(r);
			} else if (tag == TAG_TIMER) {
				wasp_rn_read_timer(r);
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

int wasp_rn_watch_fd(struct wasp_runner *r, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return wasp_fail(-errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}
