/*
 * migrate_listen.c: the receiving end of a live migration, an HTTP(S)
 * server (libmicrohttpd, a thread per connection) behind
 * `wasp-restore --listen`.
 *
 *   GET  /migrations              ready? (token, not busy): the source's preflight
 *   POST /migrations              the checkpoint stream (chunked body); answered
 *                                 only once the virtine runs here, or refused
 *   PUT  /migrations/ID/files     the sandbox files of migration ID (--with-files)
 *   GET  /migrations/ID           what became of migration ID (a lost answer)
 *
 * Every request needs `Authorization: Bearer TOKEN`, checked in constant
 * time (401 otherwise); failures are logged and, past a few from one
 * address, slowed down (migrate_auth.c; 429 when too many wait). One
 * migration at a time (409 for a second). Without an address it listens
 * on 127.0.0.1 only.
 *
 * The stream's body goes, through a bounded queue, to a restore thread
 * that runs wasp_ckpt_restore() on it as it arrives (memory is applied as
 * it comes, so little is left to do when the stream ends). The restore
 * only succeeds if the body ended cleanly: a connection that breaks
 * before the end of the chunked body fails the queue, so a cut stream can
 * never be restored. Once restored, the embedder's start callback makes
 * the virtine run; only then does the POST get its 200 ("running"). A
 * refusal is a 4xx/5xx with {"status":"refused"}: the receiver never runs
 * that virtine. docs/migration.md has the whole protocol.
 *
 * Limits (docs/security.md): a stream longer than max_stream_bytes (413 at
 * once when its Content-Length says so), one still arriving after the
 * stream timeout, and a connection silent for the idle timeout are cut
 * off: the connection is closed mid-body (libmicrohttpd cannot answer
 * then), the restore fails on the queue, and the reason is logged and
 * kept for GET /migrations/ID, which is where the source reads it.
 * Connections are bounded too, for peers without the token: a header
 * deadline (a trickle is never idle), a limit per address, and a cap on
 * those that have not shown the token, whose oldest makes room for a new
 * one (struct conn; docs/migration.md).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "migrate_internal.h"

#define QUEUE_BYTES (4u << 20)
#define MAX_KEPT 64                 /* finished migrations remembered for queries */
#define FILES_MAX_BYTES (4ull << 30)
#define FILES_WAIT_S 10             /* files may come before their stream's POST */

enum mstatus { M_RECEIVING, M_RESTORING, M_STARTING, M_RUNNING, M_ENDED, M_REFUSED };
static const char *const mstatus_names[] = {
	[M_RECEIVING] = "receiving", [M_RESTORING] = "restoring", [M_STARTING] = "starting",
	[M_RUNNING] = "running",     [M_ENDED] = "ended",         [M_REFUSED] = "refused",
};

struct migration {
	struct migration *next;
	char id[33];
	char peer[64];
	enum mstatus status;    /* listener lock */
	char error[384];        /* why refused; what it ended with */
	int http;               /* the answer's status code, once known */
	struct wasp_bqueue q;
	pthread_t thread;
	bool thread_started;
	bool files_in;          /* a files PUT is under way */
	uint64_t t0, bytes;
	double restore_ms;
	char target[WASP_TARGET_MAX]; /* listener lock: how it is reached here */
	bool answered;          /* listener lock: its POST's answer is queued */
	uint64_t resumed_ns;    /* listener lock: wait_answered let the guest go */
	/* listener lock: who holds it: the list of kept migrations (until
	 * trim forgets it) and each request of it. A request may outlive the
	 * list's hold (a files PUT left mid-body while 64 newer migrations
	 * come), so it is freed only when the last one lets go (unref). */
	unsigned refs;
	uint8_t ckpt_id[16];    /* its checkpoint's, once the header was read */
	bool have_ckpt_id;
	struct wasp_listener *l;
};

/* A checkpoint this listener has started, so that the same one posted
 * again (a replay, by mistake or by someone who kept a copy) is refused:
 * run twice, a virtine would act twice. */
struct started {
	uint8_t ckpt_id[16];
	char mig[33];           /* the migration that started it; "" for a free slot */
};

/* One TCP connection, from libmicrohttpd's connection notice until it
 * closes (listener lock). Until a request on it shows the token, it is
 * "unauthenticated": those are closed at the header deadline, and beyond
 * WASP_LISTEN_MAX_UNAUTHENTICATED the oldest of them makes room for a new
 * one, so peers without the token can hold neither a connection for long
 * nor every slot (docs/migration.md). */
struct conn {
	struct conn *prev, *next; /* oldest first */
	int fd;                   /* our dup of its socket: shutdown() ends it */
	uint64_t t0;              /* when it connected */
	bool authed;              /* a request with the token came on it */
	bool closing;             /* shut down by us */
	char peer[64];
};

struct wasp_listener {
	struct wasp_listen_opts o;
	char *token, *addr, *files_dir, *log_prefix, *test_fault;
	struct MHD_Daemon *d;
	struct wasp_auth_limit *auth; /* failed authentications (migrate_auth.c) */
	char *cert, *key;
	unsigned port;
	unsigned idle_s;            /* libmicrohttpd's connection timeout */
	uint64_t stream_ns;         /* a stream's whole time */
	uint64_t max_bytes;         /* a stream's size */
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* a migration became active */
	struct migration *active;   /* lock: the one being received */
	struct migration *kept;     /* lock: all, newest first */
	unsigned nkept, taken;      /* lock */
	bool die_now;
	uint64_t header_ns;         /* the header deadline */
	unsigned per_address;       /* connections from one address */
	struct conn *conn_head, *conn_tail; /* lock: open connections, oldest first */
	unsigned unauthed;          /* lock: of those, without the token and not closing */
	pthread_t watchdog;         /* closes connections at the header deadline */
	bool watchdog_started, watchdog_stop; /* lock */
	pthread_cond_t watchdog_cond; /* lock: a connection came, or stop */
	struct started *started;    /* lock: a ring of WASP_LISTEN_STARTED_IDS */
	unsigned started_next;      /* lock: the slot written next (oldest forgotten) */
	/* Lines a flood of peers could make (connections closed, libmicrohttpd's
	 * own): one a second of each kind, with a count of those left out. */
	pthread_mutex_t log_lock;
	struct loglimit {
		uint64_t last_ns;
		unsigned left_out;
	} cut_lines, mhd_lines;     /* log_lock */
};

/* The state of one HTTP request. */
enum req_kind { R_STREAM = 1, R_FILES };
struct req {
	enum req_kind kind;
	struct migration *m;
	bool draining;          /* the restore gave up: swallow the rest */
	bool finished;          /* the final call came */
	uint64_t bytes;         /* body bytes so far */
	struct wasp_bundle_reader *br;
	int files_err;
	char files_msg[256];
};

static void lg(struct wasp_listener *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lg(struct wasp_listener *l, const char *fmt, ...)
{
	if (!l->o.log)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(l->o.log, "%s: %s\n", l->log_prefix, line);
	fflush(l->o.log);
}

/* Whether a line of kind ll may be logged now; *left_out gets how many of
 * that kind were not since the last one that was. */
static bool lg_limited(struct wasp_listener *l, struct loglimit *ll, unsigned *left_out)
{
	uint64_t now = wasp_now_ns();
	bool ok;
	pthread_mutex_lock(&l->log_lock);
	ok = !ll->last_ns || now - ll->last_ns >= 1000000000ull;
	if (ok) {
		*left_out = ll->left_out;
		ll->left_out = 0;
		ll->last_ns = now;
	} else {
		ll->left_out++;
	}
	pthread_mutex_unlock(&l->log_lock);
	return ok;
}

/* ---- answers -------------------------------------------------------------------- */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, const char *json)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned code, const char *id,
			      const char *why)
{
	char j[1024], e[640];
	wasp_json_str(why, e, sizeof e);
	snprintf(j, sizeof j, "{\"id\":\"%s\",\"status\":\"refused\",\"error\":%s}\n", id ? id : "", e);
	return answer(c, code, j);
}

/* Under the listener's lock. While the stream comes, "bytes" is what the
 * restore has read of it so far: the source waits for it to catch up
 * before it stops the guest (wasp_xfer_settle). */
static void describe(struct migration *m, char *j, size_t cap)
{
	char e[640], t[2 * WASP_TARGET_MAX + 8];
	uint64_t bytes = m->bytes;
	if (m->status == M_RECEIVING) {
		pthread_mutex_lock(&m->q.lock);
		bytes = m->q.out;
		pthread_mutex_unlock(&m->q.lock);
	}
	wasp_json_str(m->error, e, sizeof e);
	wasp_json_str(m->target, t, sizeof t);
	snprintf(j, cap,
		 "{\"id\":\"%s\",\"status\":\"%s\",\"bytes\":%" PRIu64
		 ",\"restore_ms\":%.3f,\"target\":%s,\"resumed_mono_ns\":%" PRIu64 ",\"error\":%s}\n",
		 m->id, mstatus_names[m->status], bytes, m->restore_ms, m->target[0] ? t : "null",
		 m->resumed_ns, m->error[0] ? e : "null");
}

/* ---- the restore thread -------------------------------------------------------------- */

static void stream_too_slow(struct migration *m)
{
	char msg[160];
	snprintf(msg, sizeof msg,
		 "the stream took longer than %.0f s and was cut off (--stream-timeout)",
		 m->l->stream_ns / 1e9);
	wasp_bqueue_fail(&m->q, -ETIMEDOUT, msg);
}

static ssize_t queue_read(void *ctx, void *buf, size_t len)
{
	struct migration *m = ctx;
	/* The whole stream must come within the stream timeout: wait no
	 * longer than what is left of it. */
	uint64_t spent = wasp_now_ns() - m->t0;
	ssize_t n = spent < m->l->stream_ns
			? wasp_bqueue_get(&m->q, buf, len, m->l->stream_ns - spent)
			: -ETIMEDOUT;
	if (n == -ETIMEDOUT) {
		stream_too_slow(m);
		n = wasp_bqueue_get(&m->q, buf, len, 0); /* the failure, or data that just came */
	}
	if (n < 0) {
		pthread_mutex_lock(&m->q.lock);
		char msg[256];
		snprintf(msg, sizeof msg, "%s", m->q.msg);
		pthread_mutex_unlock(&m->q.lock);
		return wasp_fail((int)n, "%s", msg);
	}
	return n;
}

static void set_status(struct migration *m, enum mstatus s, int http, const char *err)
{
	pthread_mutex_lock(&m->l->lock);
	m->status = s;
	if (http)
		m->http = http;
	if (err)
		snprintf(m->error, sizeof m->error, "%s", err);
	pthread_mutex_unlock(&m->l->lock);
}

/* The stream's first bytes, read once for the checkpoint's header and
 * then given again to the restore, which reads the stream from its start. */
struct tee {
	struct migration *m;
	uint8_t *buf;
	size_t len, cap, pos;
	bool recording;
};

static ssize_t tee_read(void *ctx, void *buf, size_t len)
{
	struct tee *t = ctx;
	if (!t->recording && t->pos < t->len) {
		size_t n = t->len - t->pos < len ? t->len - t->pos : len;
		memcpy(buf, t->buf + t->pos, n);
		t->pos += n;
		return (ssize_t)n;
	}
	ssize_t n = queue_read(t->m, buf, len);
	if (n > 0 && t->recording) {
		if (t->len + (size_t)n > t->cap) {
			size_t cap = t->cap ? t->cap : 4096;
			while (cap < t->len + (size_t)n)
				cap *= 2;
			uint8_t *b = realloc(t->buf, cap);
			if (!b)
				return wasp_fail(-ENOMEM, "out of memory");
			t->buf = b;
			t->cap = cap;
		}
		memcpy(t->buf + t->len, buf, (size_t)n);
		t->len += (size_t)n;
	}
	return n;
}

/* The migration that started checkpoint id here, or NULL (lock held). */
static const char *started_by(struct wasp_listener *l, const uint8_t id[16])
{
	for (unsigned i = 0; i < WASP_LISTEN_STARTED_IDS; i++)
		if (l->started[i].mig[0] && !memcmp(l->started[i].ckpt_id, id, 16))
			return l->started[i].mig;
	return NULL;
}

static void hex16(char out[33], const uint8_t id[16])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* Why m's checkpoint must not run here, or false (lock held): it was
 * started here before, and replays are not allowed. */
static bool is_replay(struct wasp_listener *l, struct migration *m, char *why, size_t cap)
{
	const char *by = l->o.allow_replay || !m->have_ckpt_id ? NULL : started_by(l, m->ckpt_id);
	if (!by)
		return false;
	char h[33];
	hex16(h, m->ckpt_id);
	snprintf(why, cap,
		 "checkpoint %s was already started here (migration %s); a copy runs only once "
		 "(--allow-replay)", h, by);
	return true;
}

static void refuse_replay(struct migration *m, const char *why)
{
	/* The handler stops waiting on a full queue and swallows the rest. */
	wasp_bqueue_fail(&m->q, -EEXIST, why);
	set_status(m, M_REFUSED, 409, why);
	lg(m->l, "migration %s from %s refused: %s", m->id, m->peer, why);
}

static void *restore_main(void *arg)
{
	struct migration *m = arg;
	struct wasp_listener *l = m->l;
	struct tee t = {.m = m, .recording = true};
	struct wasp_source src = {.read = tee_read, .ctx = &t};
	struct wasp_virtine *v = NULL;
	struct wasp_ckpt_stats st;
	struct wasp_ckpt_info info;
	char why[384];

	/* The header first, so that a replay is refused before any of it is
	 * restored. A bad header is left for the restore to name. */
	if (wasp_ckpt_header_info(&src, &info) == 0) {
		pthread_mutex_lock(&l->lock);
		memcpy(m->ckpt_id, info.id, 16);
		m->have_ckpt_id = true;
		bool replay = is_replay(l, m, why, sizeof why);
		pthread_mutex_unlock(&l->lock);
		if (replay) {
			free(t.buf);
			refuse_replay(m, why);
			return NULL;
		}
	}
	t.recording = false;
	memset(&st, 0, sizeof st);
	int r = wasp_ckpt_restore(&l->o.restore, &src, &v, &st);
	free(t.buf);
	m->bytes = m->q.out;
	if (r < 0) {
		char msg[384];
		snprintf(msg, sizeof msg, "%s", wasp_last_error());
		/* The handler stops waiting on a full queue and swallows the rest. */
		wasp_bqueue_fail(&m->q, r, msg);
		set_status(m, M_REFUSED, r == -ECONNRESET || r == -EPIPE ? 400 : 422, msg);
		lg(l, "migration %s from %s refused: %s", m->id, m->peer, msg);
		return NULL;
	}
	m->restore_ms = (wasp_now_ns() - m->t0) / 1e6;
	lg(l, "migration %s from %s: restored (%" PRIu64 " bytes in %.1f ms)%s%s", m->id, m->peer,
	   m->bytes, m->restore_ms, st.unrestored[0] ? "; this host did not restore: " : "",
	   st.unrestored);
	if (l->test_fault && !strcmp(l->test_fault, "die-before-resume")) {
		lg(l, "test fault: dying before the virtine runs");
		_exit(9);
	}
	if (l->test_fault && !strcmp(l->test_fault, "forget-answer")) {
		wasp_virtine_destroy(v);
		set_status(m, M_REFUSED, 500, "test fault: refused without an answer");
		return NULL;
	}
	/* Checked again and taken in one step: the check at the header and
	 * this start are apart in time. The slot is given back if the start
	 * fails: a checkpoint that never ran may come again. */
	pthread_mutex_lock(&l->lock);
	struct started *slot = NULL;
	bool replay = is_replay(l, m, why, sizeof why);
	if (!replay && m->have_ckpt_id) {
		slot = &l->started[l->started_next];
		l->started_next = (l->started_next + 1) % WASP_LISTEN_STARTED_IDS;
		memcpy(slot->ckpt_id, m->ckpt_id, 16);
		snprintf(slot->mig, sizeof slot->mig, "%s", m->id);
	}
	pthread_mutex_unlock(&l->lock);
	if (replay) {
		wasp_virtine_destroy(v);
		refuse_replay(m, why);
		return NULL;
	}
	set_status(m, M_STARTING, 0, NULL);
	r = l->o.start ? l->o.start(l->o.opaque, v, m->id) : wasp_fail(-ENOSYS, "nothing runs virtines here");
	if (r < 0) {
		char msg[384];
		snprintf(msg, sizeof msg, "%s", wasp_last_error());
		pthread_mutex_lock(&l->lock);
		if (slot && !strcmp(slot->mig, m->id))
			slot->mig[0] = '\0';
		pthread_mutex_unlock(&l->lock);
		set_status(m, M_REFUSED, 500, msg);
		lg(l, "migration %s from %s refused: %s", m->id, m->peer, msg);
		return NULL;
	}
	pthread_mutex_lock(&l->lock);
	l->taken++;
	pthread_mutex_unlock(&l->lock);
	set_status(m, M_RUNNING, 200, NULL);
	lg(l, "migration %s from %s: running", m->id, m->peer);
	return NULL;
}

/* ---- bookkeeping -------------------------------------------------------------------- */

/* Drops one hold on m (lock held); the last one frees it. Its restore
 * thread is never running then: the stream's request joins it before it
 * lets go, and the list's hold outlives that request. */
static void unref(struct migration *m)
{
	if (--m->refs)
		return;
	wasp_bqueue_destroy(&m->q);
	free(m);
}

static struct migration *find(struct wasp_listener *l, const char *id)
{
	for (struct migration *m = l->kept; m; m = m->next)
		if (!strcmp(m->id, id))
			return m;
	return NULL;
}

/* Forgets the oldest finished migrations beyond MAX_KEPT (lock held). */
static void trim(struct wasp_listener *l)
{
	while (l->nkept > MAX_KEPT) {
		struct migration **pp = &l->kept, **last = NULL;
		for (; *pp; pp = &(*pp)->next)
			if (*pp != l->active)
				last = pp;
		if (!last)
			return;
		struct migration *m = *last;
		*last = m->next;
		m->next = NULL;
		l->nkept--;
		unref(m);
	}
}

/* "Bearer TOKEN" against ours. */
static bool authorized(struct wasp_listener *l, struct MHD_Connection *c)
{
	if (!l->token)
		return true;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7)) {
		(void)wasp_token_equal(l->token, ""); /* the same time as a wrong token */
		return false;
	}
	return wasp_token_equal(l->token, h + 7);
}

static void peer_name(struct MHD_Connection *c, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, cap, "?");
	if (!ci || !ci->client_addr)
		return;
	char a[INET6_ADDRSTRLEN];
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof a))
		snprintf(out, cap, "%s", a);
	else if (sa->sa_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, a, sizeof a))
		snprintf(out, cap, "%s", a);
}

/* The token, behind the limits on failures (migrate_auth.c): true to go
 * on, false with *ret the answer (401, or 429 while the address must wait
 * longer for its turn). Logs failures, never what the token was. */
static bool authenticate(struct wasp_listener *l, struct MHD_Connection *c, enum MHD_Result *ret)
{
	if (!l->token)
		return true;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	char peer[64], why[160], more[64] = "";
	unsigned long unlogged = 0;
	uint64_t retry = 0;
	int64_t wait = wasp_auth_limit_admit(l->auth, sa, wasp_now_ns(), &retry);
	if (wait < 0) {
		peer_name(c, peer, sizeof peer);
		if (wasp_auth_limit_log(l->auth, wasp_now_ns(), &unlogged)) {
			if (unlogged)
				snprintf(more, sizeof more, " (and %lu more not logged)", unlogged);
			lg(l, "refused a request from %s without looking at its token: too many "
			      "failed authentications from there (429)%s", peer, more);
		}
		snprintf(why, sizeof why,
			 "too many failed authentications from this address: try again in %.0f s",
			 retry / 1e9 + 0.5);
		*ret = refuse(c, 429, NULL, why);
		return false;
	}
	if (wait > 0) {
		/* This connection's own thread: only this address waits. */
		struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (authorized(l, c)) {
		wasp_auth_limit_ok(l->auth, sa);
		return true;
	}
	bool none = !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (wasp_auth_limit_failed(l->auth, sa, wasp_now_ns(), &unlogged)) {
		peer_name(c, peer, sizeof peer);
		if (unlogged)
			snprintf(more, sizeof more, " (and %lu more not logged)", unlogged);
		lg(l, "authentication failed from %s: %s (401)%s", peer,
		   none ? "no token" : "wrong token", more);
	}
	*ret = refuse(c, 401, NULL, "wrong or missing token");
	return false;
}

/* Why a new migration cannot start now, or NULL (lock held). */
static const char *busy(struct wasp_listener *l)
{
	if (l->active)
		return "a migration is already in progress";
	if (l->o.max_virtines && l->taken >= l->o.max_virtines)
		return "this receiver has taken its virtine (start it with --keep-listening to take more)";
	return NULL;
}

/* ---- connections ---------------------------------------------------------------------- */

/* Closes conn k, which has not shown the token (lock held): a shutdown of
 * its socket ends libmicrohttpd's reads on it, and libmicrohttpd closes it
 * as it would any connection the peer ended. One log line a second at
 * most: a flood of such peers must not flood the log too. */
static void cut(struct wasp_listener *l, struct conn *k, const char *why)
{
	k->closing = true;
	l->unauthed--;
	/* The line first: whoever sees the connection end finds it logged. */
	unsigned more;
	if (lg_limited(l, &l->cut_lines, &more))
		lg(l, "closing a connection from %s: %s%s%.0u%s", k->peer, why,
		   more ? " (and " : "", more, more ? " more since the last such line)" : "");
	shutdown(k->fd, SHUT_RDWR);
}

static void header_deadline_why(struct wasp_listener *l, char *why, size_t cap)
{
	snprintf(why, cap, "no whole request with the token within %.3g s (--header-timeout)",
		 l->header_ns / 1e9);
}

/* Closes the connections that have not shown the token by the header
 * deadline. libmicrohttpd's own timeout is an idle one, which a peer that
 * sends a header line now and then never meets. */
static void *watchdog_main(void *arg)
{
	struct wasp_listener *l = arg;
	char why[160];
	header_deadline_why(l, why, sizeof why);
	pthread_mutex_lock(&l->lock);
	while (!l->watchdog_stop) {
		uint64_t now = wasp_now_ns(), next = 0;
		for (struct conn *k = l->conn_head; k; k = k->next) {
			if (k->authed || k->closing)
				continue;
			if (now - k->t0 >= l->header_ns)
				cut(l, k, why);
			else if (!next || k->t0 + l->header_ns < next)
				next = k->t0 + l->header_ns;
		}
		if (!next) {
			pthread_cond_wait(&l->watchdog_cond, &l->lock);
			continue;
		}
		struct timespec dl;
		wasp_deadline_in(&dl, next - now);
		pthread_cond_timedwait(&l->watchdog_cond, &l->lock, &dl);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			      enum MHD_ConnectionNotificationCode code)
{
	struct wasp_listener *l = cls;
	struct conn *k = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (!k)
			return;
		pthread_mutex_lock(&l->lock);
		if (!k->authed && !k->closing)
			l->unauthed--;
		*(k->prev ? &k->prev->next : &l->conn_head) = k->next;
		*(k->next ? &k->next->prev : &l->conn_tail) = k->prev;
		pthread_mutex_unlock(&l->lock);
		close(k->fd);
		free(k);
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	k = calloc(1, sizeof *k);
	/* A dup of our own: libmicrohttpd may close its descriptor (and the
	 * number be reused) at any time, ours stays this socket's. */
	int fd = ci && k ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (fd < 0) {
		/* Untracked, it would escape the limits: close it now. */
		int e = k ? errno : ENOMEM;
		if (ci)
			shutdown(ci->connect_fd, SHUT_RDWR);
		free(k);
		lg(l, "closing a connection: cannot track it (%s)", strerror(e));
		return;
	}
	k->fd = fd;
	k->t0 = wasp_now_ns();
	peer_name(c, k->peer, sizeof k->peer);
	pthread_mutex_lock(&l->lock);
	k->prev = l->conn_tail;
	*(l->conn_tail ? &l->conn_tail->next : &l->conn_head) = k;
	l->conn_tail = k;
	l->unauthed++;
	/* Room for this one among the unauthenticated: the oldest goes. The
	 * rest of WASP_LISTEN_MAX_CONNECTIONS stays for requests with the
	 * token. */
	for (struct conn *o = l->conn_head; o && l->unauthed > WASP_LISTEN_MAX_UNAUTHENTICATED;
	     o = o->next)
		if (o != k && !o->authed && !o->closing)
			cut(l, o, "too many connections without the token: the oldest makes room");
	pthread_cond_signal(&l->watchdog_cond);
	pthread_mutex_unlock(&l->lock);
	*socket_context = k;
}

/* A request with the token came on c: its connection is no longer held to
 * the header deadline nor counted among the unauthenticated. */
static void authenticated(struct wasp_listener *l, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&l->lock);
	if (!k->authed && !k->closing)
		l->unauthed--;
	k->authed = true;
	pthread_mutex_unlock(&l->lock);
}

/* ---- requests ------------------------------------------------------------------------- */

static enum MHD_Result start_stream(struct wasp_listener *l, struct MHD_Connection *c, void **cls)
{
	const char *hid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Wasp-Migration-Id");
	char id[33];
	if (hid && !wasp_migration_id_valid(hid))
		return refuse(c, 400, NULL, "Wasp-Migration-Id must be 32 hex digits");
	if (hid)
		snprintf(id, sizeof id, "%s", hid);
	else
		wasp_migration_id(id);
	const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (clen) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(clen, &end, 10);
		if (errno || end == clen || *end || n > l->max_bytes) {
			char why[160];
			snprintf(why, sizeof why,
				 "a stream of %s bytes exceeds this receiver's limit of %" PRIu64
				 " bytes (--max-stream-size)", clen, l->max_bytes);
			lg(l, "migration %s refused: %s", id, why);
			return refuse(c, 413, id, why);
		}
	}

	pthread_mutex_lock(&l->lock);
	const char *why = busy(l);
	if (!why && find(l, id))
		why = "that migration id was used before";
	if (why) {
		pthread_mutex_unlock(&l->lock);
		return refuse(c, 409, id, why);
	}
	struct migration *m = calloc(1, sizeof *m);
	struct req *q = calloc(1, sizeof *q);
	if (!m || !q || wasp_bqueue_init(&m->q, QUEUE_BYTES) < 0) {
		pthread_mutex_unlock(&l->lock);
		free(m);
		free(q);
		return refuse(c, 500, id, "out of memory");
	}
	snprintf(m->id, sizeof m->id, "%s", id);
	peer_name(c, m->peer, sizeof m->peer);
	m->l = l;
	m->t0 = wasp_now_ns();
	m->status = M_RECEIVING;
	m->refs = 2; /* the list's and this request's */
	m->next = l->kept;
	l->kept = m;
	l->nkept++;
	l->active = m;
	trim(l);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);

	int e = pthread_create(&m->thread, NULL, restore_main, m);
	if (e) {
		set_status(m, M_REFUSED, 500, "cannot start a restore thread");
		pthread_mutex_lock(&l->lock);
		l->active = NULL;
		unref(m); /* this request's */
		pthread_mutex_unlock(&l->lock);
		free(q);
		return refuse(c, 500, id, "cannot start a restore thread");
	}
	m->thread_started = true;
	q->kind = R_STREAM;
	q->m = m;
	*cls = q;
	lg(l, "migration %s from %s: receiving", m->id, m->peer);
	return MHD_YES;
}

static enum MHD_Result stream_data(struct wasp_listener *l, struct MHD_Connection *c,
				   struct req *q, const char *data, size_t *size)
{
	struct migration *m = q->m;
	if (*size) {
		/* The limits hold while the rest of a refused stream is
		 * swallowed, too. libmicrohttpd cannot answer in the middle of
		 * a body: the connection is closed, the reason kept. */
		if (q->bytes + *size > l->max_bytes) {
			char msg[160];
			snprintf(msg, sizeof msg,
				 "the stream exceeds this receiver's limit of %" PRIu64
				 " bytes and was cut off (--max-stream-size)", l->max_bytes);
			wasp_bqueue_fail(&m->q, -EFBIG, msg);
			return MHD_NO;
		}
		if (wasp_now_ns() - m->t0 > l->stream_ns) {
			stream_too_slow(m);
			return MHD_NO;
		}
		if (!q->draining && wasp_bqueue_put(&m->q, data, *size) < 0)
			q->draining = true; /* the restore failed: its answer waits for the end */
		q->bytes += *size;
		*size = 0;
		return MHD_YES;
	}
	/* The whole body is here. */
	q->finished = true;
	pthread_mutex_lock(&l->lock);
	if (m->status == M_RECEIVING)
		m->status = M_RESTORING;
	pthread_mutex_unlock(&l->lock);
	wasp_bqueue_close(&m->q);
	pthread_join(m->thread, NULL);
	m->thread_started = false;
	pthread_mutex_lock(&l->lock);
	l->active = NULL;
	enum mstatus s = m->status;
	char j[1024];
	describe(m, j, sizeof j);
	int http = m->http ? m->http : 500;
	pthread_mutex_unlock(&l->lock);

	enum MHD_Result ret = MHD_NO;
	if (l->test_fault && (!strcmp(l->test_fault, "drop-answer") ||
			      !strcmp(l->test_fault, "forget-answer")))
		lg(l, "test fault: closing without an answer");
	else
		ret = answer(c, s == M_RUNNING ? 200 : (unsigned)http, j);
	pthread_mutex_lock(&l->lock);
	m->answered = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return ret;
}

static enum MHD_Result files_request(struct wasp_listener *l, struct MHD_Connection *c,
				     const char *id, void **cls)
{
	pthread_mutex_lock(&l->lock);
	/* The files come on a connection of their own, which may be served
	 * before the stream's (each has its thread): give the stream's POST a
	 * moment to arrive, unless this id is known to be over. */
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += FILES_WAIT_S;
	while (!(l->active && !strcmp(l->active->id, id)) && !find(l, id) &&
	       pthread_cond_timedwait(&l->cond, &l->lock, &dl) == 0)
		;
	struct migration *m = l->active;
	const char *why = NULL;
	unsigned code = 409;
	if (!m || strcmp(m->id, id) || m->status != M_RECEIVING) {
		why = "no such migration is being received";
		code = 404;
	} else if (m->files_in) {
		why = "its files are already coming";
	} else if (!l->files_dir) {
		why = "this receiver takes no files (no --dir)";
	}
	if (why) {
		pthread_mutex_unlock(&l->lock);
		return refuse(c, code, id, why);
	}
	struct req *q = calloc(1, sizeof *q);
	if (!q) {
		pthread_mutex_unlock(&l->lock);
		return refuse(c, 500, id, "out of memory");
	}
	m->files_in = true;
	m->refs++; /* this request's: its body may outlast the migration */
	pthread_mutex_unlock(&l->lock);
	q->kind = R_FILES;
	q->m = m;
	if (wasp_bundle_reader_open(l->files_dir, FILES_MAX_BYTES, &q->br) < 0) {
		q->files_err = -EIO;
		snprintf(q->files_msg, sizeof q->files_msg, "%s", wasp_last_error());
	}
	*cls = q;
	return MHD_YES;
}

/* Whether the files of q's migration are of no use any more (why says
 * why): its stream failed (or, against the protocol, ended) while they
 * came. */
static bool files_unwanted(struct wasp_listener *l, struct req *q, char *why, size_t cap)
{
	pthread_mutex_lock(&l->lock);
	struct migration *m = q->m;
	bool over = m->status != M_RECEIVING;
	if (over && m->status == M_REFUSED)
		snprintf(why, cap, "migration %s was refused: %s", m->id, m->error);
	else if (over)
		snprintf(why, cap, "migration %s is no longer being received", m->id);
	pthread_mutex_unlock(&l->lock);
	return over;
}

static enum MHD_Result files_data(struct wasp_listener *l, struct MHD_Connection *c,
				  struct req *q, const char *data, size_t *size)
{
	if (*size) {
		/* A migration refused meanwhile takes no more files: swallow
		 * the rest, refuse at the end. */
		if (!q->files_err && files_unwanted(l, q, q->files_msg, sizeof q->files_msg))
			q->files_err = -ESTALE;
		if (!q->files_err && wasp_bundle_reader_push(q->br, data, *size) < 0) {
			q->files_err = -EINVAL;
			snprintf(q->files_msg, sizeof q->files_msg, "%s", wasp_last_error());
		}
		*size = 0;
		return MHD_YES;
	}
	q->finished = true;
	/* Nothing is moved into place for a migration that is over: its
	 * temporaries go with the reader. */
	if (!q->files_err && files_unwanted(l, q, q->files_msg, sizeof q->files_msg))
		q->files_err = -ESTALE;
	int n = q->files_err ? q->files_err : wasp_bundle_reader_finish(q->br);
	if (n < 0 && !q->files_err)
		snprintf(q->files_msg, sizeof q->files_msg, "%s", wasp_last_error());
	pthread_mutex_lock(&l->lock);
	q->m->files_in = false;
	pthread_mutex_unlock(&l->lock);
	if (n < 0) {
		lg(l, "migration %s: files refused: %s", q->m->id, q->files_msg);
		return refuse(c, n == -ESTALE ? 409 : 422, q->m->id, q->files_msg);
	}
	lg(l, "migration %s: %d files", q->m->id, n);
	char j[160];
	snprintf(j, sizeof j, "{\"id\":\"%s\",\"status\":\"ok\",\"files\":%d}\n", q->m->id, n);
	return answer(c, 200, j);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *data,
			       size_t *size, void **con_cls)
{
	struct wasp_listener *l = cls;
	struct req *q = *con_cls;
	(void)version;

	if (q) {
		if (q->kind == R_STREAM)
			return stream_data(l, c, q, data, size);
		return files_data(l, c, q, data, size);
	}
	/* The first call: headers only. */
	enum MHD_Result ret;
	if (!authenticate(l, c, &ret))
		return ret;
	authenticated(l, c);
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	if (!strcmp(url, "/migrations") || !strcmp(url, "/migrations/")) {
		if (!strcmp(method, "POST"))
			return start_stream(l, c, con_cls);
		if (!get)
			return refuse(c, 405, NULL, "use GET or POST here");
		pthread_mutex_lock(&l->lock);
		const char *why = busy(l);
		pthread_mutex_unlock(&l->lock);
		if (why)
			return refuse(c, 409, NULL, why);
		return answer(c, 200, "{\"status\":\"ready\",\"version\":1}\n");
	}
	if (!strncmp(url, "/migrations/", 12)) {
		char id[33];
		const char *rest = url + 12;
		size_t n = strcspn(rest, "/");
		if (n != 32)
			return refuse(c, 404, NULL, "no such migration");
		memcpy(id, rest, 32);
		id[32] = '\0';
		if (!wasp_migration_id_valid(id))
			return refuse(c, 404, NULL, "no such migration");
		if (!strcmp(rest + 32, "/files")) {
			if (strcmp(method, "PUT"))
				return refuse(c, 405, id, "use PUT here");
			return files_request(l, c, id, con_cls);
		}
		if (rest[32])
			return refuse(c, 404, id, "no such resource");
		if (!get)
			return refuse(c, 405, id, "use GET here");
		pthread_mutex_lock(&l->lock);
		struct migration *m = find(l, id);
		char j[1024];
		if (m)
			describe(m, j, sizeof j);
		pthread_mutex_unlock(&l->lock);
		if (!m)
			return answer(c, 404, "{\"status\":\"unknown\",\"error\":\"no such migration\"}\n");
		return answer(c, 200, j);
	}
	return refuse(c, 404, NULL, "no such resource");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct wasp_listener *l = cls;
	struct req *q = *con_cls;
	(void)c;
	if (!q)
		return;
	*con_cls = NULL;
	if (q->kind == R_STREAM && !q->finished) {
		/* The body never ended: whatever came can never be restored. */
		struct migration *m = q->m;
		char msg[160];
		if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
			snprintf(msg, sizeof msg,
				 "the source sent nothing for %u s and was cut off (--idle-timeout)",
				 l->idle_s);
		else
			snprintf(msg, sizeof msg,
				 "the source's connection ended before the stream was complete");
		wasp_bqueue_fail(&m->q, toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? -ETIMEDOUT
										: -ECONNRESET,
				 msg);
		if (m->thread_started) {
			pthread_join(m->thread, NULL);
			m->thread_started = false;
		}
		pthread_mutex_lock(&l->lock);
		if (l->active == m)
			l->active = NULL;
		pthread_mutex_unlock(&l->lock);
	}
	if (q->kind == R_FILES)
		wasp_bundle_reader_free(q->br);
	/* Only now may the migration go: this request touched it until here. */
	pthread_mutex_lock(&l->lock);
	if (q->kind == R_FILES && !q->finished)
		q->m->files_in = false;
	unref(q->m);
	pthread_mutex_unlock(&l->lock);
	free(q);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct wasp_listener *l = cls;
	if (!l->o.log)
		return;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	/* What GnuTLS makes of a plain HTTP request, said plainly. */
	unsigned more;
	if (l->cert && strstr(line, "handshake"))
		lg(l, "http: a client did not speak TLS (plain http:// to this https:// port?): %s",
		   line);
	else if (lg_limited(l, &l->mhd_lines, &more))
		lg(l, "http: %s%s%s%.0u%s", line,
		   /* libmicrohttpd says the same for both limits */
		   strstr(line, "connection limit") ? " (--max-connections-per-address, or all "
						       "connections)" : "",
		   more ? " (and " : "", more,
		   more ? " more lines from libmicrohttpd since the last one)" : "");
}

/* ---- setup ----------------------------------------------------------------------------- */

static int read_pem(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return wasp_fail(-errno, "%s: %s", path, strerror(errno));
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (!buf)
		return wasp_fail(-ENOMEM, "out of memory");
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return wasp_fail(-ENOMEM, "out of memory");
	return 0;
}

int wasp_listener_create(const struct wasp_listen_opts *o, struct wasp_listener **out)
{
	int r;
	*out = NULL;
	struct wasp_listener *l = calloc(1, sizeof *l);
	if (!l)
		return wasp_fail(-ENOMEM, "out of memory");
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->log_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_cond_init(&l->watchdog_cond, &ca);
	pthread_condattr_destroy(&ca);
	l->o = *o;
	if ((r = dup_str(&l->token, o->token)) < 0 || (r = dup_str(&l->addr, o->addr)) < 0 ||
	    (r = dup_str(&l->files_dir, o->files_dir)) < 0 ||
	    (r = dup_str(&l->test_fault, o->test_fault)) < 0 ||
	    (r = dup_str(&l->log_prefix, o->log_prefix ? o->log_prefix : "wasp")) < 0)
		goto fail;
	if (!(l->auth = wasp_auth_limit_create(o->auth_free_failures))) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	if (o->port > 65535) {
		r = wasp_fail(-EINVAL, "port %u: at most 65535", o->port);
		goto fail;
	}
	uint64_t idle = o->idle_timeout_ns ? o->idle_timeout_ns : WASP_LISTEN_IDLE_TIMEOUT_NS;
	if (idle > 86400ull * 1000000000) {
		r = wasp_fail(-EINVAL, "idle timeout: at most a day");
		goto fail;
	}
	l->idle_s = (unsigned)((idle + 999999999) / 1000000000); /* whole seconds, at least 1 */
	l->stream_ns = o->stream_timeout_ns ? o->stream_timeout_ns : WASP_LISTEN_STREAM_TIMEOUT_NS;
	l->max_bytes = o->restore.max_stream_bytes ? o->restore.max_stream_bytes
						   : WASP_CKPT_MAX_STREAM_BYTES;
	if (!(l->started = calloc(WASP_LISTEN_STARTED_IDS, sizeof *l->started))) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	l->header_ns = o->header_timeout_ns ? o->header_timeout_ns : WASP_LISTEN_HEADER_TIMEOUT_NS;
	if (l->header_ns > 86400ull * 1000000000) {
		r = wasp_fail(-EINVAL, "header timeout: at most a day");
		goto fail;
	}
	l->per_address = o->max_connections_per_address ? o->max_connections_per_address
							 : WASP_LISTEN_PER_ADDRESS_CONNECTIONS;
	if (l->per_address > WASP_LISTEN_MAX_CONNECTIONS) {
		r = wasp_fail(-EINVAL, "connections per address: at most %u", WASP_LISTEN_MAX_CONNECTIONS);
		goto fail;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ERROR_LOG;
	/* poll(), not select(): a descriptor beyond FD_SETSIZE must not be
	 * refused in a process that holds many (virtines, connections). */
	if (MHD_is_feature_supported(MHD_FEATURE_POLL))
		flags |= MHD_USE_POLL;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	/* No address: loopback. Every interface is for who asks for it
	 * (0.0.0.0, ::). */
	const char *bind_addr = o->addr ? o->addr : "127.0.0.1";
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			a4->sin_port = htons((uint16_t)o->port);
		} else if (inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons((uint16_t)o->port);
			flags |= MHD_USE_IPv6;
		} else {
			r = wasp_fail(-EINVAL, "'%s' is not a numeric IPv4 or IPv6 address", o->addr);
			goto fail;
		}
	}
	if (!!o->tls_cert != !!o->tls_key) {
		r = wasp_fail(-EINVAL, "HTTPS needs both a certificate and a key");
		goto fail;
	}
	if (o->tls_cert) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			r = wasp_fail(-ENOTSUP, "this libmicrohttpd has no TLS");
			goto fail;
		}
		if ((r = read_pem(o->tls_cert, &l->cert)) < 0 || (r = read_pem(o->tls_key, &l->key)) < 0)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	if ((r = -pthread_create(&l->watchdog, NULL, watchdog_main, l)) < 0) {
		r = wasp_fail(r, "cannot start the listener's watchdog thread: %s", strerror(-r));
		goto fail;
	}
	l->watchdog_started = true;
	struct MHD_OptionItem opts[12];
	int n = 0;
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, l};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection, l};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, l->idle_s, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, WASP_LISTEN_MAX_CONNECTIONS, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, l->per_address, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
	if (l->cert) {
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, l->cert};
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, l->key};
	}
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	errno = 0;
	/* The logger first, so that MHD's own messages go through it too. */
	l->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l, MHD_OPTION_ARRAY, opts,
				MHD_OPTION_END);
	if (!l->d) {
		int e = errno ? errno : EADDRINUSE;
		r = wasp_fail(-e, "cannot listen on %s%s%s:%u: %s", strchr(bind_addr, ':') ? "[" : "",
			      bind_addr, strchr(bind_addr, ':') ? "]" : "", o->port, strerror(e));
		goto fail;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
	l->port = di ? di->port : o->port;
	/* Our copies: the caller's strings may go. */
	l->o.token = l->token;
	l->o.addr = l->addr;
	l->o.files_dir = l->files_dir;
	l->o.test_fault = l->test_fault;
	l->o.log_prefix = l->log_prefix;
	l->o.tls_cert = l->o.tls_key = NULL;
	*out = l;
	return 0;
fail:
	wasp_listener_destroy(l);
	return r;
}

unsigned wasp_listener_port(const struct wasp_listener *l)
{
	return l->port;
}

void wasp_listener_set_status(struct wasp_listener *l, const char *id, const char *status)
{
	pthread_mutex_lock(&l->lock);
	struct migration *m = find(l, id);
	if (m && m->status == M_RUNNING) {
		m->status = M_ENDED;
		snprintf(m->error, sizeof m->error, "%s", status);
	}
	pthread_mutex_unlock(&l->lock);
}

void wasp_listener_wait_answered(struct wasp_listener *l, const char *id, uint64_t timeout_ns)
{
	struct timespec dl;
	wasp_deadline_in(&dl, timeout_ns);
	pthread_mutex_lock(&l->lock);
	struct migration *m;
	while ((m = find(l, id)) && !m->answered &&
	       pthread_cond_timedwait(&l->cond, &l->lock, &dl) == 0)
		;
	if (m)
		m->resumed_ns = wasp_now_ns();
	pthread_mutex_unlock(&l->lock);
}

void wasp_listener_set_target(struct wasp_listener *l, const char *id, const char *target)
{
	pthread_mutex_lock(&l->lock);
	struct migration *m = find(l, id);
	if (m)
		snprintf(m->target, sizeof m->target, "%s", target);
	pthread_mutex_unlock(&l->lock);
}

void wasp_listener_destroy(struct wasp_listener *l)
{
	if (!l)
		return;
	if (l->d)
		MHD_stop_daemon(l->d); /* joins the connection threads */
	if (l->watchdog_started) {
		pthread_mutex_lock(&l->lock);
		l->watchdog_stop = true;
		pthread_cond_signal(&l->watchdog_cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->watchdog, NULL);
	}
	/* The requests are over (stopping the daemon ran completed() for
	 * each): the list's holds are the last. */
	for (struct migration *m = l->kept, *next; m; m = next) {
		next = m->next;
		if (m->thread_started) {
			wasp_bqueue_fail(&m->q, -ECANCELED, "the receiver is shutting down");
			pthread_join(m->thread, NULL);
		}
		unref(m);
	}
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->log_lock);
	pthread_cond_destroy(&l->cond);
	pthread_cond_destroy(&l->watchdog_cond);
	wasp_auth_limit_free(l->auth);
	free(l->token);
	free(l->addr);
	free(l->files_dir);
	free(l->test_fault);
	free(l->log_prefix);
	if (l->key) {
		memset(l->key, 0, strlen(l->key));
		free(l->key);
	}
	free(l->cert);
	free(l->started);
	free(l);
}
