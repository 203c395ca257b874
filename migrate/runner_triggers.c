/*
 * runner_triggers.c: what asks for a checkpoint besides a client: SIGUSR1
 * (a signalfd), a trigger file appearing (inotify), a period (a timerfd),
 * each read on the control thread and queued there; and checkpoints at
 * chosen points (a breakpoint hit, a number of exits or hypercalls),
 * counted by a tracer on the vCPU thread that stops the run for
 * wasp_runner_run() to take them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "runner_internal.h"

const char *const wasp_rn_trigger_names[] = {
	[TRIG_SIGNAL] = "SIGUSR1",
	[TRIG_FILE] = "trigger file",
	[TRIG_PERIOD] = "period",
	[TRIG_SOCKET] = "socket",
	[TRIG_POINT] = "point",
};

void wasp_rn_trigger(struct wasp_runner *r, enum trigger t)
{
	bool *pending = t == TRIG_SIGNAL ? &r->sig_pending
		      : t == TRIG_FILE   ? &r->file_pending
					 : &r->period_pending;
	if (*pending)
		return; /* one is on its way: this one folds into it */
	struct request *q = wasp_rn_new_request(t);
	if (!q)
		return;
	q->stop = r->o.stop_after_trigger;
	snprintf(q->to, sizeof q->to, "%s", r->ckpt_path ? r->ckpt_path : "(nowhere)");
	*pending = true;
	if (!r->ckpt_path) {
		q->seq = wasp_rn_next_seq(r);
		wasp_rn_fail_request(q, -EINVAL, "no checkpoint path is set");
		wasp_rn_finish_request(r, q);
		return;
	}
	if (wasp_rn_virtine_ended(r)) {
		q->seq = wasp_rn_next_seq(r);
		wasp_rn_fail_request(q, -ESRCH, "the virtine has already exited");
		wasp_rn_finish_request(r, q);
		return;
	}
	wasp_rn_enqueue(r, q);
}

void wasp_rn_read_signals(struct wasp_runner *r)
{
	struct signalfd_siginfo si;
	bool any = false;
	while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		any = true;
	if (any)
		wasp_rn_trigger(r, TRIG_SIGNAL);
}

bool wasp_rn_trigger_file_exists(struct wasp_runner *r)
{
	struct stat st;
	return lstat(r->trigger_path, &st) == 0;
}

void wasp_rn_read_inotify(struct wasp_runner *r)
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
	if (hit && wasp_rn_trigger_file_exists(r))
		wasp_rn_trigger(r, TRIG_FILE);
}

void wasp_rn_read_timer(struct wasp_runner *r)
{
	uint64_t ticks;
	if (read(r->timerfd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks)
		wasp_rn_trigger(r, TRIG_PERIOD);
}

int wasp_rn_setup_triggers(struct wasp_runner *r)
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
		if ((e = wasp_rn_watch_fd(r, r->sigfd, TAG_SIGNAL)) < 0)
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
		if (wasp_rn_copy_str(&r->trigger_base, base) < 0) {
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
		if ((e = wasp_rn_watch_fd(r, r->inofd, TAG_INOTIFY)) < 0)
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
		if ((e = wasp_rn_watch_fd(r, r->timerfd, TAG_TIMER)) < 0)
			return e;
	}
	return 0;
}

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

bool wasp_rn_points_wanted(const struct wasp_runner_opts *o)
{
	return o->checkpoint_at_set || o->checkpoint_after_exits || o->checkpoint_after_hypercalls;
}

/* Chains our tracer in front of the caller's and plants the breakpoint. */
int wasp_rn_points_arm(struct wasp_runner *r)
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
void wasp_rn_points_disarm(struct wasp_runner *r)
{
	if (!r->tracing)
		return;
	if (r->o.checkpoint_at_set && !r->at_fired)
		wasp_virtine_break_remove(r->v, r->o.checkpoint_at);
	wasp_virtine_trace(r->v, r->user_trace.fn ? &r->user_trace : NULL);
	r->tracing = false;
}
