/*
 * runner_migration.c: a `migrate` request on the runner's side: its
 * parameters, the migration thread that streams memory while the guest
 * runs (pre-copy) and then hands the request to the vCPU thread through a
 * pause (runner.c's migrate_final sends the rest), its progress lines and
 * its last answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runner_internal.h"

void wasp_rn_migration_free(struct migration *m)
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
void wasp_rn_progress_line(struct migration *m, const struct wasp_migrate_progress *p,
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
	wasp_rn_progress_line(m, &p, NULL);
}

/* Gives up a migration in pre-copy (runner lock held): the flag stops the
 * engine between writes, the transport's cancel wakes a blocked write. */
void wasp_rn_migration_cancel(struct migration *m)
{
	atomic_store(&m->cancel, true);
	if (m->x)
		wasp_xfer_cancel(m->x);
}

/* The final line of a migration that began (docs/triggers.md). */
void wasp_rn_migration_reply(struct wasp_runner *r, int slot, struct request *q)
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
	wasp_rn_client_send(r, slot, line);
}

/* Control thread: the migration's request is done; join its thread. */
void wasp_rn_migration_end(struct wasp_runner *r, struct request *q)
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
	m->x = x; /* under the lock: wasp_rn_migration_cancel() may look at it */
	if (x && atomic_load(&m->cancel))
		wasp_xfer_cancel(x);
	pthread_mutex_unlock(&r->lock);
	if (err == 0) {
		struct wasp_migrate_progress p = {.phase = "connected"};
		wasp_rn_progress_line(m, &p, wasp_xfer_id(m->x));
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
		wasp_rn_fail_request(q, err, wasp_last_error());
		m->outcome = WASP_MIGRATE_RESUMED;
		if (m->x)
			wasp_xfer_cancel(m->x);
		wasp_rn_post_done(r, q);
	} else {
		struct wasp_migrate_progress p = {.phase = "stop",
						  .round = m->st.rounds,
						  .dirty_pages = m->st.dirty_pages,
						  .expected_downtime_ms = m->st.expected_downtime_ms};
		wasp_rn_progress_line(m, &p, NULL);
		r->inflight = q;
	}
	pthread_mutex_unlock(&r->lock);
	if (err < 0)
		wasp_rn_wake(r);
	else
		wasp_virtine_pause(r->v); /* after `inflight` is set, as start_next does */
	return NULL;
}

void wasp_rn_start_migration(struct wasp_runner *r, struct request *q)
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
		wasp_rn_fail_request(q, -e, "cannot start the migration thread");
		wasp_rn_finish_request(r, q);
		return;
	}
	q->mig->thread_started = true;
}

/* Parses `migrate k=v ...` (the arguments in args) into a new request;
 * NULL with *bad set. */
struct request *wasp_rn_parse_migrate(struct wasp_runner *r, char *args, const char **bad,
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
		wasp_rn_migration_free(m);
		free(q);
		return NULL;
	}
	return q;
}

/* Where a held virtine is saved when the request names no place. */
void wasp_rn_default_hold(struct wasp_runner *r, struct migration *m)
{
	if (!m->hold[0])
		wasp_rn_hold_path(r, m->hold, sizeof m->hold);
}
