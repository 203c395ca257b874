/*
 * migrate_precopy.c: the pre-copy engine. It streams a running virtine
 * into a transport as a live checkpoint (ckpt.h, wasp_live_*): all memory
 * while the guest runs, then rounds of the pages dirtied meanwhile, until
 * what is left is expected to go within the downtime target (or the
 * round limit is reached); then, with the guest stopped by the caller,
 * the last pages and the vCPU and host state, and the commit that decides
 * which side keeps the virtine (docs/migration.md).
 *
 * The estimate: the pages dirty now, times the stream bytes a page has
 * cost so far, over the bandwidth measured so far (which includes
 * compression time and any --bandwidth-limit). Every byte goes through a
 * throttle when a limit is set: a token bucket with 100 ms of burst.
 *
 * The engine never touches KVM: dirty tracking and state capture are
 * ckpt's; pausing and resuming the guest are the caller's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate_internal.h"

#define PAGE 4096u
#define DEFAULT_DOWNTIME_NS 50000000ull
#define DEFAULT_ROUNDS 30
#define SLICE_MAX (64u << 10)
#define SETTLE_NS 5000000000ull

struct wasp_precopy {
	struct wasp_virtine *v;
	struct wasp_migrate_opts o;
	struct wasp_xfer *x;
	struct wasp_live *live;
	struct wasp_migrate_stats st;
	const atomic_bool *cancel;
	uint64_t t0;
	uint64_t send_ns;        /* time spent sending (begin and rounds) */
	uint64_t round_bytes, round_pages; /* the last round's */
	uint64_t last_check_ns;  /* for the dirty rate */
	bool settled;            /* nothing sent since the transport settled */
	/* the throttle */
	double tokens;
	uint64_t bucket_ns;
};

static void sleep_ns(uint64_t ns)
{
	struct timespec t = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
	nanosleep(&t, NULL);
}

static bool canceled(const struct wasp_precopy *p)
{
	return p->cancel && atomic_load(p->cancel);
}

/* Waits until `n` bytes may go at the limit. */
static int throttle(struct wasp_precopy *p, size_t n)
{
	double rate = (double)p->o.bandwidth_limit, burst = rate / 10;
	if (burst < (double)n)
		burst = (double)n;
	for (;;) {
		uint64_t now = wasp_now_ns();
		p->tokens += (double)(now - p->bucket_ns) * rate / 1e9;
		if (p->tokens > burst)
			p->tokens = burst;
		p->bucket_ns = now;
		if (p->tokens >= (double)n) {
			p->tokens -= (double)n;
			return 0;
		}
		if (canceled(p))
			return wasp_fail(-ECANCELED, "the migration was canceled");
		uint64_t wait = (uint64_t)(((double)n - p->tokens) * 1e9 / rate);
		sleep_ns(wait > 50000000ull ? 50000000ull : wait + 1000);
	}
}

static int engine_write(void *ctx, const void *buf, size_t len)
{
	struct wasp_precopy *p = ctx;
	const char *b = buf;
	if (canceled(p))
		return wasp_fail(-ECANCELED, "the migration was canceled");
	if (!p->o.bandwidth_limit)
		return wasp_xfer_write(p->x, buf, len);
	size_t slice = p->o.bandwidth_limit / 20;
	if (slice > SLICE_MAX)
		slice = SLICE_MAX;
	if (slice < PAGE)
		slice = PAGE;
	while (len) {
		size_t n = len < slice ? len : slice;
		int r = throttle(p, n);
		if (r == 0)
			r = wasp_xfer_write(p->x, b, n);
		if (r < 0)
			return r;
		b += n;
		len -= n;
	}
	return 0;
}

int wasp_precopy_begin(struct wasp_virtine *v, const struct wasp_migrate_opts *o,
		       struct wasp_xfer *x, struct wasp_precopy **out)
{
	*out = NULL;
	if (o->max_rounds > WASP_MIGRATE_MAX_ROUNDS)
		return wasp_fail(-EINVAL, "at most %d rounds", WASP_MIGRATE_MAX_ROUNDS);
	struct wasp_precopy *p = calloc(1, sizeof *p);
	if (!p)
		return wasp_fail(-ENOMEM, "out of memory");
	p->v = v;
	p->o = *o;
	if (!p->o.max_downtime_ns)
		p->o.max_downtime_ns = DEFAULT_DOWNTIME_NS;
	if (!p->o.max_rounds)
		p->o.max_rounds = DEFAULT_ROUNDS;
	p->o.save.incremental = false;
	p->o.save.parent_id = NULL;
	p->o.save.track_dirty = false;
	p->o.save.mappable = false; /* the network wants it compressed */
	p->x = x;
	p->cancel = o->cancel;
	p->t0 = p->bucket_ns = wasp_now_ns();
	p->tokens = 0;
	p->st.stop_reason = "";

	struct wasp_sink sink = {.write = engine_write, .ctx = p};
	int r = wasp_live_begin(v, &p->o.save, &sink, &p->live);
	if (r < 0) {
		free(p);
		return r;
	}
	uint64_t now = wasp_now_ns();
	p->send_ns = now - p->t0;
	p->last_check_ns = p->t0; /* the dirty set grows from the start of tracking */
	p->st.rounds = 1;
	p->st.round_pages[0] = wasp_virtine_mem_size(v) / PAGE;
	p->st.bytes = wasp_live_bytes(p->live);
	p->st.raw_bytes = 0; /* known exactly only at the end (finish) */
	*out = p;
	return 0;
}

/* Fills the estimate from the dirty set now; 0 or -errno. */
static int estimate(struct wasp_precopy *p)
{
	uint64_t dirty;
	int r = wasp_live_dirty_pages(p->live, &dirty);
	if (r < 0)
		return r;
	uint64_t now = wasp_now_ns();
	struct wasp_migrate_stats *s = &p->st;
	s->dirty_pages = dirty;
	s->dirty_rate = now > p->last_check_ns ? (double)dirty * 1e9 / (double)(now - p->last_check_ns) : 0;
	s->bytes = wasp_live_bytes(p->live);
	s->bandwidth = p->send_ns ? (double)s->bytes * 1e9 / (double)p->send_ns : 0;
	/* A page costs what the last round's did; before any round, the worst
	 * case (a page that does not compress). */
	double per_page = p->round_pages ? (double)p->round_bytes / (double)p->round_pages : PAGE;
	s->expected_downtime_ms = s->bandwidth > 0 ? (double)dirty * per_page / s->bandwidth * 1e3 : 0;
	s->precopy_ns = now - p->t0;
	return 0;
}

/* Before the stop: lets the transport and the receiver catch up with
 * what was sent, so the downtime is the last pages and the state, not a
 * backlog. A receiver that stays behind only costs downtime; a broken
 * link ends the migration (the guest still runs here). */
static int settle(struct wasp_precopy *p)
{
	uint64_t t = wasp_now_ns();
	int r = wasp_xfer_settle(p->x, SETTLE_NS);
	p->st.settle_ns += wasp_now_ns() - t;
	p->settled = true;
	return r == -ETIMEDOUT ? 0 : r;
}

int wasp_precopy_iterate(struct wasp_precopy *p)
{
	struct wasp_migrate_stats *s = &p->st;
	int r;
	for (;;) {
		if (canceled(p))
			return wasp_fail(-ECANCELED, "the migration was canceled");
		if ((r = estimate(p)) < 0)
			return r;
		if (p->o.progress)
			p->o.progress(p->o.opaque, s);
		const char *stop = NULL;
		if (s->dirty_pages == 0)
			stop = "no dirty pages";
		else if (s->expected_downtime_ms * 1e6 <= (double)p->o.max_downtime_ns)
			stop = "converged";
		if (stop && !p->settled) {
			/* Time passes while it settles: look at the dirty set again. */
			if ((r = settle(p)) < 0)
				return r;
			continue;
		}
		if (stop) {
			s->stop_reason = stop;
			break;
		}
		if (s->rounds >= p->o.max_rounds) {
			if (!p->settled && (r = settle(p)) < 0)
				return r;
			s->stop_reason = "round limit";
			break;
		}
		uint64_t t = wasp_now_ns(), pages, bytes;
		p->last_check_ns = t;
		if ((r = wasp_live_round(p->live, &pages, &bytes)) < 0)
			return r;
		p->settled = false;
		p->send_ns += wasp_now_ns() - t;
		p->round_pages = pages;
		p->round_bytes = bytes;
		s->round_pages[s->rounds++] = pages;
		s->raw_bytes += bytes ? pages * PAGE : 0;
	}
	p->cancel = NULL; /* from here on the commit decides, not the client */
	return 0;
}

int wasp_precopy_finish(struct wasp_precopy *p, uint64_t stopped_ns, enum wasp_xfer_verdict *v)
{
	struct wasp_migrate_stats *s = &p->st;
	struct wasp_ckpt_stats cst;
	int r = 0;

	*v = WASP_XFER_REFUSED;
	p->cancel = NULL;
	s->stopped_ns = stopped_ns;
	uint64_t t = wasp_now_ns();
	if (p->o.files_dir && (r = wasp_xfer_send_files(p->x, p->o.files_dir, &s->file_bytes)) < 0)
		goto cut;
	s->files_ns = wasp_now_ns() - t;
	t = wasp_now_ns();
	/* The pages that go with the guest stopped (a handler completing an
	 * `out` in finish may add one or two). */
	uint64_t last = 0;
	if ((r = wasp_live_dirty_pages(p->live, &last)) < 0)
		goto cut;
	memset(&cst, 0, sizeof cst);
	if ((r = wasp_live_finish(p->live, &cst)) < 0)
		goto cut;
	s->bytes = wasp_live_bytes(p->live);
	s->final_pages = last;
	/* The stream's own count: non-zero page bytes before compression. */
	if (cst.raw_bytes)
		s->raw_bytes = cst.raw_bytes;
	else
		s->raw_bytes += last * PAGE;

	s->finish_ns = wasp_now_ns() - t;
	t = wasp_now_ns();
	wasp_xfer_commit(p->x, v);
	s->commit_ns = wasp_now_ns() - t;
	if (*v == WASP_XFER_UNKNOWN) {
		char first[512];
		snprintf(first, sizeof first, "%s", wasp_last_error());
		wasp_xfer_query(p->x, v);
		if (*v == WASP_XFER_UNKNOWN) {
			char second[512];
			snprintf(second, sizeof second, "%s", wasp_last_error());
			wasp_fail(-ETIMEDOUT, "%s; %s", first, second);
		}
	}
	if (*v == WASP_XFER_ACCEPTED)
		snprintf(s->target, sizeof s->target, "%s", wasp_xfer_target(p->x));
	goto out;
cut:
	/* The stream never ended: the receiver sees it cut short. */
	wasp_xfer_cancel(p->x);
	*v = WASP_XFER_REFUSED;
out:;
	uint64_t now = wasp_now_ns();
	s->downtime_ns = now - stopped_ns;
	s->total_ns = now - p->t0;
	return r;
}

const struct wasp_migrate_stats *wasp_precopy_stats(const struct wasp_precopy *p)
{
	return &p->st;
}

void wasp_precopy_free(struct wasp_precopy *p)
{
	if (!p)
		return;
	wasp_live_free(p->live);
	free(p);
}
