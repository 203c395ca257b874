/*
 * migrate_http.c: the HTTP(S) transport (libcurl): a migration stream as
 * the chunked body of `POST /migrations` to a `wasp-restore --listen`,
 * the files of `--with-files` as `PUT /migrations/ID/files`, the status
 * query `GET /migrations/ID` that settles a lost answer, and fetching a
 * checkpoint with `GET` for `wasp-restore https://...`.
 *
 * The stream: curl runs curl_easy_perform() on a thread of its own and
 * pulls the body from a bounded queue (migrate_util.c) that the engine's
 * writes fill, so a slow link slows the writer down instead of piling up
 * memory. The one fact the commit protocol needs from this file is
 * whether curl could have sent the end of the body: that is exactly when
 * the read callback returned 0 (`eof_taken`). Before it the receiver
 * cannot hold a whole stream (the chunked body's end is missing), so any
 * failure is a definite "not there"; after it, only the receiver's answer
 * (or a status query) can tell. docs/migration.md has the whole protocol.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migrate_internal.h"

#define DEFAULT_CONNECT_NS 5000000000ull
#define DEFAULT_STALL_NS 10000000000ull
#define DEFAULT_COMMIT_NS 30000000000ull
#define DEFAULT_QUERY_NS 10000000000ull
#define DEFAULT_QUEUE (4u << 20)
#define RESP_MAX 8192
#define QUERY_GAP_NS 300000000ull /* between status queries */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_res;

static void curl_init(void)
{
	curl_init_res = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int ensure_curl(void)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_res != CURLE_OK)
		return wasp_fail(-EIO, "libcurl: %s", curl_easy_strerror(curl_init_res));
	return 0;
}

int wasp_curl_ready(void)
{
	return ensure_curl();
}

static uint64_t or_default(uint64_t v, uint64_t d)
{
	return v ? v : d;
}

/* A response body, kept up to RESP_MAX bytes. */
struct resp {
	char buf[RESP_MAX + 1];
	size_t len;
};

static size_t resp_write(char *p, size_t size, size_t n, void *ctx)
{
	struct resp *r = ctx;
	size_t len = size * n, room = RESP_MAX - r->len;
	memcpy(r->buf + r->len, p, len < room ? len : room);
	r->len += len < room ? len : room;
	r->buf[r->len] = '\0';
	return len;
}

/* What the callbacks of one transfer need. Each curl_easy_perform() has
 * its own (on the stack of its caller, or in the object of the one thread
 * that runs it), so no two threads share one. */
struct guard {
	const struct wasp_xfer_opts *o;
	/* Kept out of a WASP_CURL_VERBOSE trace; NULL: no token. */
	const char *token;
	/* The token may go over plain HTTP to loopback addresses only. */
	bool plain_loopback_only;
	char refused[INET6_ADDRSTRLEN + 8]; /* the address it was kept from */
};

static void guard_init(struct guard *g, const struct wasp_xfer_opts *o, const char *token,
		       const char *url)
{
	memset(g, 0, sizeof *g);
	g->o = o;
	g->token = token;
	g->plain_loopback_only = token && !o->allow_plain_http && !strncasecmp(url, "http://", 7);
}

static bool ip_loopback(const char *ip)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, ip, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&a6))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

/* Called once connected (to the server, or to a proxy), before a request
 * goes out: the bearer token must not cross a network in clear text. The
 * address is the one really connected to, whatever the URL's host name
 * resolved to. Past a TLS receiver addressed as http:// too, which would
 * read the token before it failed the handshake. */
static int prereq_cb(void *ctx, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	struct guard *g = ctx;
	(void)local_ip, (void)primary_port, (void)local_port;
	if (!g->plain_loopback_only || ip_loopback(primary_ip))
		return CURL_PREREQFUNC_OK;
	snprintf(g->refused, sizeof g->refused, "%s", primary_ip);
	return CURL_PREREQFUNC_ABORT;
}

/* WASP_CURL_VERBOSE=1: curl's trace, line by line, without the token. */
static void trace_line(const struct guard *g, const char *mark, const char *p, size_t len)
{
	char line[2048], low[2048];
	size_t n = len < sizeof line - 1 ? len : sizeof line - 1, o = 0;
	/* The token anywhere (an HTTP/2 header list shows it in text lines).
	 * g is NULL for what curl says outside a transfer (closing a kept
	 * connection), which carries no header. */
	size_t tl = g && g->token ? strlen(g->token) : 0;
	for (size_t i = 0; i < n && o < sizeof line - 12;) {
		if (tl && i + tl <= n && !memcmp(p + i, g->token, tl)) {
			o += (size_t)snprintf(line + o, sizeof line - o, "<redacted>");
			i += tl;
		} else {
			line[o++] = p[i++];
		}
	}
	line[o] = '\0';
	for (size_t i = 0; i <= o; i++)
		low[i] = (char)tolower((unsigned char)line[i]);
	/* And whatever follows an Authorization header's name. */
	const char *a = strstr(low, "authorization");
	if (a) {
		size_t cut = (size_t)(a - low) + strlen("authorization");
		snprintf(line + cut, sizeof line - cut, ": Bearer <redacted>");
	}
	fprintf(stderr, "%s%s\n", mark, line);
}

static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ctx)
{
	const struct guard *g = ctx;
	const char *mark = type == CURLINFO_TEXT	 ? "* "
			 : type == CURLINFO_HEADER_IN  ? "< "
			 : type == CURLINFO_HEADER_OUT ? "> "
						       : NULL;
	(void)h;
	if (!mark) /* bodies and TLS records are not traced */
		return 0;
	for (const char *p = data, *end = data + size; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t shown = len;
		while (shown && p[shown - 1] == '\r')
			shown--;
		if (shown)
			trace_line(g, mark, p, shown);
		p += len + (nl ? 1 : 0);
	}
	return 0;
}

/* Keepalive probes and TCP_USER_TIMEOUT: a peer that vanished without a
 * word (a cut cable, a host that died) is noticed within the stall time
 * instead of after TCP's minutes of retries. */
static int sockopt_cb(void *ctx, curl_socket_t fd, curlsocktype purpose)
{
	const struct wasp_xfer_opts *o = ((const struct guard *)ctx)->o;
	unsigned ms = (unsigned)(or_default(o->stall_timeout_ns, DEFAULT_STALL_NS) / 1000000ull);
	int cnt = 3;
	(void)purpose;
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	return CURL_SOCKOPT_OK;
}

/* What every request of a transport shares: timeouts, TLS, keepalive,
 * where the token may go. g must live until the transfer is over. */
static void easy_common(CURL *h, struct guard *g, const char *url, struct curl_slist *headers,
			char *errbuf)
{
	const struct wasp_xfer_opts *o = g->o;
	uint64_t stall_s = or_default(o->stall_timeout_ns, DEFAULT_STALL_NS) / 1000000000ull;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(or_default(o->connect_timeout_ns, DEFAULT_CONNECT_NS) / 1000000ull));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, (long)(stall_s / 3 ? stall_s / 3 : 1));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, (long)(stall_s / 6 ? stall_s / 6 : 1));
	curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
	curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, g);
	curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(h, CURLOPT_PREREQDATA, g);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Never the token to another host on a redirect (only the fetch
	 * follows them; curl keeps a custom Authorization header to the same
	 * host, port and scheme unless this is set). */
	curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
	if (o->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
	if (headers)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	/* Debugging a transport: curl's trace on stderr, the token redacted. */
	const char *trace = getenv("WASP_CURL_VERBOSE");
	if (trace && *trace == '1') {
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
		curl_easy_setopt(h, CURLOPT_DEBUGDATA, g);
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	}
	errbuf[0] = '\0';
}

static const char *curl_reason_g(const struct guard *g, CURLcode res, const char *errbuf)
{
	static __thread char msg[256];
	if (g && g->refused[0]) {
		snprintf(msg, sizeof msg,
			 "refused to send the token in clear text over http:// to %s, which is not a "
			 "loopback address: use https:// (or allow plain http explicitly, "
			 "--allow-plain-http, on a network you trust)",
			 g->refused);
		return msg;
	}
	return errbuf && errbuf[0] ? errbuf : curl_easy_strerror(res);
}


/* ---- the stream ------------------------------------------------------------- */

struct http_xfer {
	struct wasp_xfer x;
	char base[2048];           /* URL without a trailing '/' */
	struct curl_slist *headers; /* auth and id */
	struct curl_slist *stream_headers; /* and the chunked body's */
	char *ca_file;
	char *token;               /* to redact from traces; NULL: none */
	CURL *h;
	pthread_t thread;
	bool started;              /* the curl thread runs (or ran) */
	struct wasp_bqueue q;
	atomic_bool canceled;

	/* curl thread -> the rest, under q.lock */
	bool done;
	CURLcode res;
	long code;
	char errbuf[CURL_ERROR_SIZE];
	struct resp resp;

	/* curl thread only */
	struct guard g;
	uint64_t last_ul, last_progress_ns, eof_ns;
	char abort_why[160];       /* why the progress callback stopped curl */
};

static size_t stream_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct http_xfer *hx = ctx;
	ssize_t got = wasp_bqueue_get(&hx->q, buf, size * n, 0);
	if (got < 0)
		return CURL_READFUNC_ABORT;
	if (got == 0)
		hx->eof_ns = wasp_now_ns();
	hx->last_progress_ns = wasp_now_ns();
	return (size_t)got;
}

static int stream_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			   curl_off_t ulnow)
{
	struct http_xfer *hx = ctx;
	uint64_t now = wasp_now_ns();
	(void)dltotal, (void)dlnow, (void)ultotal;
	if (atomic_load(&hx->canceled)) {
		snprintf(hx->abort_why, sizeof hx->abort_why, "canceled");
		return 1;
	}
	pthread_mutex_lock(&hx->q.lock);
	bool waiting = hx->q.len > 0;
	pthread_mutex_unlock(&hx->q.lock);
	if ((uint64_t)ulnow != hx->last_ul || !waiting) {
		hx->last_ul = (uint64_t)ulnow;
		hx->last_progress_ns = now;
	}
	uint64_t stall = or_default(hx->x.o.stall_timeout_ns, DEFAULT_STALL_NS);
	if (waiting && now - hx->last_progress_ns > stall) {
		snprintf(hx->abort_why, sizeof hx->abort_why,
			 "the link stalled: nothing sent for %.1f s", stall / 1e9);
		return 1;
	}
	uint64_t commit = or_default(hx->x.o.commit_timeout_ns, DEFAULT_COMMIT_NS);
	if (hx->eof_ns && now - hx->eof_ns > commit) {
		snprintf(hx->abort_why, sizeof hx->abort_why,
			 "no answer within %.1f s of the end of the stream", commit / 1e9);
		return 1;
	}
	return 0;
}

static void *stream_main(void *arg)
{
	struct http_xfer *hx = arg;
	CURLcode res = curl_easy_perform(hx->h);
	long code = 0;
	curl_easy_getinfo(hx->h, CURLINFO_RESPONSE_CODE, &code);

	pthread_mutex_lock(&hx->q.lock);
	hx->res = res;
	hx->code = code;
	hx->done = true;
	pthread_mutex_unlock(&hx->q.lock);

	/* A writer still filling the queue learns why nobody takes it. */
	char why[256], rmsg[160] = "";
	if (wasp_json_get(hx->resp.buf, "error", rmsg, sizeof rmsg))
		snprintf(why, sizeof why, "the receiver answered %ld: %s", code, rmsg);
	else if (res == CURLE_OK)
		snprintf(why, sizeof why, "the receiver answered %ld before the end of the stream",
			 code);
	else if (hx->abort_why[0])
		snprintf(why, sizeof why, "%s", hx->abort_why);
	else
		snprintf(why, sizeof why, "%s", curl_reason_g(&hx->g, res, hx->errbuf));
	wasp_bqueue_fail(&hx->q, -ECONNRESET, why);
	return NULL;
}

static int start_stream(struct http_xfer *hx)
{
	char url[2100];
	snprintf(url, sizeof url, "%s/migrations", hx->base);
	if (!(hx->h = curl_easy_init()))
		return wasp_fail(-ENOMEM, "curl_easy_init failed");
	guard_init(&hx->g, &hx->x.o, hx->token, url);
	easy_common(hx->h, &hx->g, url, hx->stream_headers, hx->errbuf);
	curl_easy_setopt(hx->h, CURLOPT_POST, 1L);
	curl_easy_setopt(hx->h, CURLOPT_READFUNCTION, stream_read);
	curl_easy_setopt(hx->h, CURLOPT_READDATA, hx);
	curl_easy_setopt(hx->h, CURLOPT_WRITEFUNCTION, resp_write);
	curl_easy_setopt(hx->h, CURLOPT_WRITEDATA, &hx->resp);
	curl_easy_setopt(hx->h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(hx->h, CURLOPT_XFERINFOFUNCTION, stream_progress);
	curl_easy_setopt(hx->h, CURLOPT_XFERINFODATA, hx);
	hx->last_progress_ns = wasp_now_ns();
	int e = pthread_create(&hx->thread, NULL, stream_main, hx);
	if (e)
		return wasp_fail(-e, "pthread_create: %s", strerror(e));
	hx->started = true;
	return 0;
}

static int http_write(struct wasp_xfer *x, const void *buf, size_t len)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	int r = wasp_bqueue_put(&hx->q, buf, len);
	if (r < 0) {
		pthread_mutex_lock(&hx->q.lock);
		char msg[256];
		snprintf(msg, sizeof msg, "%s", hx->q.msg);
		pthread_mutex_unlock(&hx->q.lock);
		return wasp_fail(r, "the stream to %s broke off before it was complete: %s", x->what,
				 msg[0] ? msg : strerror(-r));
	}
	return 0;
}

/* What a response says, when it is one of the receiver's own: "running",
 * "refused", ... or "" for anything else (a proxy's error page). */
static void resp_status(const struct resp *r, char *status, size_t cap, char *err, size_t ecap)
{
	status[0] = err[0] = '\0';
	if (!wasp_json_get(r->buf, "status", status, cap))
		status[0] = '\0';
	if (!wasp_json_get(r->buf, "error", err, ecap))
		err[0] = '\0';
}

/* The receiver's word on how the virtine is reached there, if it is a
 * plausible target (it is shown to people and used as a wasp-ckpt TARGET). */
static void take_target(struct wasp_xfer *x, const struct resp *r)
{
	char t[WASP_TARGET_MAX];
	x->target[0] = '\0';
	/* A string, not null (which wasp_json_get reads as the word). */
	if (!strstr(r->buf, "\"target\":\"") || !wasp_json_get(r->buf, "target", t, sizeof t))
		return;
	for (const char *p = t; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return;
	snprintf(x->target, sizeof x->target, "%s", t);
}

static int http_commit(struct wasp_xfer *x, enum wasp_xfer_verdict *v)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	wasp_bqueue_close(&hx->q);
	pthread_join(hx->thread, NULL);
	hx->started = false;

	pthread_mutex_lock(&hx->q.lock);
	bool eof_taken = hx->q.eof_taken;
	pthread_mutex_unlock(&hx->q.lock);
	char status[32], err[256];
	resp_status(&hx->resp, status, sizeof status, err, sizeof err);
	const char *why = hx->res != CURLE_OK ? (hx->abort_why[0] ? hx->abort_why
								  : curl_reason_g(&hx->g, hx->res, hx->errbuf))
					      : NULL;

	if (hx->res == CURLE_OK && hx->code == 200 && !strcmp(status, "running")) {
		*v = WASP_XFER_ACCEPTED;
		take_target(x, &hx->resp);
		return 0;
	}
	if (!strcmp(status, "refused")) {
		/* The receiver's own word: it does not run it and never will. */
		*v = WASP_XFER_REFUSED;
		wasp_fail(-EREMOTEIO, "the receiver refused (HTTP %ld): %s", hx->code,
			  err[0] ? err : "no reason given");
		return 0;
	}
	if (!eof_taken) {
		/* The body never ended: no receiver can have the whole stream. */
		*v = WASP_XFER_REFUSED;
		if (why)
			wasp_fail(-ECONNRESET, "the connection to %s failed before the stream was complete: %s",
				  x->what, why);
		else
			wasp_fail(-EPROTO, "%s answered HTTP %ld before the stream was complete", x->what,
				  hx->code);
		return 0;
	}
	*v = WASP_XFER_UNKNOWN;
	if (why)
		wasp_fail(-ETIMEDOUT, "the whole stream went to %s but no answer came back: %s", x->what,
			  why);
	else
		wasp_fail(-EPROTO, "the whole stream went to %s but the answer (HTTP %ld) is not the receiver's",
			  x->what, hx->code);
	return 0;
}

/* One GET on handle h (kept between calls, so its connection is reused);
 * 0 with *code and the body, or the curl failure. */
static int http_get_on(CURL *h, const struct http_xfer *hx, const char *url, long *code,
		       struct resp *r, uint64_t timeout_ns)
{
	char errbuf[CURL_ERROR_SIZE];
	struct guard g;
	guard_init(&g, &hx->x.o, hx->token, url);
	easy_common(h, &g, url, hx->headers, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, resp_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ns / 1000000ull));
	r->len = 0;
	r->buf[0] = '\0';
	CURLcode res = curl_easy_perform(h);
	*code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
	/* errbuf and g go out of scope */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, NULL);
	curl_easy_setopt(h, CURLOPT_PREREQDATA, NULL);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, NULL);
	if (res == CURLE_OK)
		return 0;
	int e = res == CURLE_COULDNT_CONNECT ? -ECONNREFUSED
	      : res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
						: -EIO;
	/* A TLS server closes on a plain request without a word: say what
	 * that most likely means. */
	bool hint = res == CURLE_GOT_NOTHING && !strncasecmp(url, "http://", 7);
	return wasp_fail(e, "%s%s", curl_reason_g(&g, res, errbuf),
			 hint ? " (an HTTPS receiver? try https://)" : "");
}

/* One GET on a fresh connection. */
static int http_get(const struct http_xfer *hx, const char *url, long *code, struct resp *r,
		    uint64_t timeout_ns)
{
	CURL *h = curl_easy_init();
	if (!h)
		return wasp_fail(-ENOMEM, "curl_easy_init failed");
	int ret = http_get_on(h, hx, url, code, r, timeout_ns);
	curl_easy_cleanup(h);
	return ret;
}

static int http_query(struct wasp_xfer *x, enum wasp_xfer_verdict *v)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	char url[2200], status[32], err[256], last[320] = "no answer";
	uint64_t limit = or_default(x->o.query_timeout_ns, DEFAULT_QUERY_NS);
	uint64_t deadline = wasp_now_ns() + limit;
	struct resp *r = malloc(sizeof *r);
	if (!r)
		return wasp_fail(-ENOMEM, "out of memory");
	snprintf(url, sizeof url, "%s/migrations/%s", hx->base, x->id);
	*v = WASP_XFER_UNKNOWN;
	for (int tries = 1;; tries++) {
		uint64_t now = wasp_now_ns();
		uint64_t left = deadline > now ? deadline - now : 0;
		long code;
		int rc = http_get(hx, url, &code, r, left < 2000000000ull ? (left ? left : 1000000) : 2000000000ull);
		if (rc == 0) {
			resp_status(r, status, sizeof status, err, sizeof err);
			if (code == 200 && (!strcmp(status, "running") || !strcmp(status, "ended"))) {
				*v = WASP_XFER_ACCEPTED;
				take_target(x, r);
				break;
			}
			if (code == 200 && !strcmp(status, "refused")) {
				*v = WASP_XFER_REFUSED;
				snprintf(last, sizeof last, "%s", err[0] ? err : "refused");
				break;
			}
			/* "receiving", "restoring", "starting": it is still at it;
			 * 404: it does not know the id (a new process: it cannot
			 * say whether the old one ran it); others: not ours. */
			if (code == 200)
				snprintf(last, sizeof last, "the receiver says '%s'", status);
			else
				snprintf(last, sizeof last, "HTTP %ld%s%s", code, err[0] ? ": " : "", err);
		} else {
			snprintf(last, sizeof last, "%s", wasp_last_error());
		}
		if (wasp_now_ns() + QUERY_GAP_NS >= deadline)
			break;
		struct timespec gap = {0, (long)QUERY_GAP_NS};
		nanosleep(&gap, NULL);
	}
	free(r);
	if (*v == WASP_XFER_REFUSED)
		wasp_fail(-EREMOTEIO, "the receiver did not start it: %s", last);
	else if (*v == WASP_XFER_UNKNOWN)
		wasp_fail(-ETIMEDOUT, "asked %s for %.1f s whether it runs migration %s: %s", x->what,
			  limit / 1e9, x->id, last);
	return 0;
}

/* ---- settling before the stop ------------------------------------------------ */

#define SETTLE_LOCAL_GAP_NS 100000ull  /* polling our own queue */
#define SETTLE_REMOTE_GAP_NS 500000ull /* between progress queries */

/* The stream thread's failure, when it has ended; 0 while it runs. */
static int stream_failed(struct http_xfer *hx, size_t *queued)
{
	pthread_mutex_lock(&hx->q.lock);
	int err = hx->q.err ? hx->q.err : hx->done ? -ECONNRESET : 0;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", hx->q.msg[0] ? hx->q.msg : "the stream ended early");
	*queued = hx->q.len;
	pthread_mutex_unlock(&hx->q.lock);
	return err ? wasp_fail(err, "the stream to %s broke off: %s", hx->x.what, msg) : 0;
}

static int http_settle(struct wasp_xfer *x, uint64_t timeout_ns)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	uint64_t deadline = wasp_now_ns() + timeout_ns;
	struct timespec gap = {0, (long)SETTLE_LOCAL_GAP_NS};
	size_t queued;
	int r;

	if (!hx->started)
		return 0;
	/* First our own queue: curl has taken everything. */
	while ((r = stream_failed(hx, &queued)) == 0 && queued) {
		if (wasp_now_ns() >= deadline)
			return wasp_fail(-ETIMEDOUT, "%zu bytes still wait to be sent to %s", queued,
					 x->what);
		nanosleep(&gap, NULL);
	}
	if (r < 0)
		return r;

	/* Then the receiver: its restore has read nearly all of the stream
	 * (its status says how much). One connection for all the questions. */
	char url[2200], val[32];
	snprintf(url, sizeof url, "%s/migrations/%s", hx->base, x->id);
	struct resp *rs = malloc(sizeof *rs);
	CURL *h = curl_easy_init();
	uint64_t got = 0;
	r = 0;
	if (!rs || !h)
		r = wasp_fail(-ENOMEM, "out of memory");
	gap.tv_nsec = (long)SETTLE_REMOTE_GAP_NS;
	while (r == 0) {
		uint64_t now = wasp_now_ns();
		long code;
		if (now >= deadline) {
			r = wasp_fail(-ETIMEDOUT, "%s has read %llu of %llu bytes", x->what,
				      (unsigned long long)got, (unsigned long long)x->bytes);
			break;
		}
		if ((r = http_get_on(h, hx, url, &code, rs, deadline - now)) < 0)
			break;
		if (code != 200 || !wasp_json_get(rs->buf, "bytes", val, sizeof val)) {
			/* An older receiver, or not ours: nothing to wait for. */
			break;
		}
		got = strtoull(val, NULL, 10);
		if (got + WASP_XFER_SETTLE_SLACK >= x->bytes)
			break;
		if ((r = stream_failed(hx, &queued)) < 0)
			break;
		nanosleep(&gap, NULL);
	}
	if (h)
		curl_easy_cleanup(h);
	free(rs);
	return r;
}

/* ---- files ------------------------------------------------------------------ */

static size_t bundle_read(char *buf, size_t size, size_t n, void *ctx)
{
	ssize_t got = wasp_bundle_writer_read(ctx, buf, size * n);
	return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
}

static int http_send_files(struct wasp_xfer *x, const char *dir, uint64_t *bytes)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	struct wasp_bundle_writer *w;
	char url[2200], errbuf[CURL_ERROR_SIZE];
	int r;
	if ((r = wasp_bundle_writer_open(dir, &w)) < 0)
		return r;
	struct resp *resp = calloc(1, sizeof *resp);
	CURL *h = curl_easy_init();
	if (!h || !resp) {
		wasp_bundle_writer_free(w);
		free(resp);
		if (h)
			curl_easy_cleanup(h);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	snprintf(url, sizeof url, "%s/migrations/%s/files", hx->base, x->id);
	struct guard g;
	guard_init(&g, &x->o, hx->token, url);
	easy_common(h, &g, url, hx->headers, errbuf);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, bundle_read);
	curl_easy_setopt(h, CURLOPT_READDATA, w);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, resp_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
			 (long)(or_default(x->o.stall_timeout_ns, DEFAULT_STALL_NS) / 1000000000ull));
	CURLcode res = curl_easy_perform(h);
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	char err[256];
	if (!wasp_json_get(resp->buf, "error", err, sizeof err))
		err[0] = '\0';
	if (res != CURLE_OK)
		r = wasp_fail(-EIO, "sending the files to %s: %s", x->what, curl_reason_g(&g, res, errbuf));
	else if (code != 200)
		r = wasp_fail(-EREMOTEIO, "the receiver refused the files (HTTP %ld): %s", code,
			      err[0] ? err : "no reason given");
	else
		*bytes = wasp_bundle_writer_bytes(w);
	curl_easy_cleanup(h);
	wasp_bundle_writer_free(w);
	free(resp);
	return r;
}

/* ---- open, cancel, free -------------------------------------------------------- */

static void http_cancel(struct wasp_xfer *x)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	atomic_store(&hx->canceled, true);
	wasp_bqueue_fail(&hx->q, -ECANCELED, "the migration was canceled");
}

static void http_destroy(struct wasp_xfer *x)
{
	struct http_xfer *hx = (struct http_xfer *)x;
	if (hx->started) {
		http_cancel(x);
		pthread_join(hx->thread, NULL);
	}
	if (hx->h)
		curl_easy_cleanup(hx->h);
	curl_slist_free_all(hx->headers);
	curl_slist_free_all(hx->stream_headers);
	free(hx->ca_file);
	if (hx->token) {
		explicit_bzero(hx->token, strlen(hx->token));
		free(hx->token);
	}
	wasp_bqueue_destroy(&hx->q);
	free(hx);
}

static const struct wasp_xfer_ops http_ops = {
	.name = "http",
	.write = http_write,
	.settle = http_settle,
	.send_files = http_send_files,
	.commit = http_commit,
	.query = http_query,
	.cancel = http_cancel,
	.destroy = http_destroy,
};

static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* GET /migrations: is a receiver there, does it take the token, is it free? */
static int preflight(struct http_xfer *hx)
{
	char url[2100], status[32], err[256];
	struct resp *r = malloc(sizeof *r);
	long code;
	if (!r)
		return wasp_fail(-ENOMEM, "out of memory");
	snprintf(url, sizeof url, "%s/migrations", hx->base);
	uint64_t t = or_default(hx->x.o.connect_timeout_ns, DEFAULT_CONNECT_NS) * 2;
	int rc = http_get(hx, url, &code, r, t);
	if (rc < 0) {
		rc = wasp_fail(rc, "cannot reach %s: %s", hx->x.what, wasp_last_error());
	} else {
		resp_status(r, status, sizeof status, err, sizeof err);
		if (code == 200 && !strcmp(status, "ready"))
			rc = 0;
		else if (code == 401)
			rc = wasp_fail(-EACCES, "%s refused the token (HTTP 401)", hx->x.what);
		else if (code == 409)
			rc = wasp_fail(-EBUSY, "%s is busy: %s", hx->x.what, err[0] ? err : "HTTP 409");
		else if (code == 200 || err[0])
			rc = wasp_fail(-EREMOTEIO, "%s is not ready (HTTP %ld): %s", hx->x.what, code,
				       err[0] ? err : status);
		else
			rc = wasp_fail(-EPROTO, "%s is not a wasp receiver (HTTP %ld to GET /migrations)",
				       hx->x.what, code);
	}
	free(r);
	return rc;
}

int wasp_http_xfer_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_xfer **out)
{
	int r;
	*out = NULL;
	if ((r = ensure_curl()) < 0)
		return r;
	if (strlen(url) >= 2000)
		return wasp_fail(-ENAMETOOLONG, "URL too long");
	if (o->token && !header_safe(o->token))
		return wasp_fail(-EINVAL, "the token holds control characters");
	if (o->migration_id && !wasp_migration_id_valid(o->migration_id))
		return wasp_fail(-EINVAL, "a migration id is 32 hex digits");
	struct http_xfer *hx = calloc(1, sizeof *hx);
	if (!hx)
		return wasp_fail(-ENOMEM, "out of memory");
	hx->x.ops = &http_ops;
	hx->x.o = *o;
	hx->x.o.token = hx->x.o.ca_file = hx->x.o.migration_id = NULL; /* not kept: see headers */
	if ((r = wasp_bqueue_init(&hx->q, o->queue_bytes ? o->queue_bytes : DEFAULT_QUEUE)) < 0) {
		free(hx);
		return r;
	}
	snprintf(hx->base, sizeof hx->base, "%s", url);
	size_t n = strlen(hx->base);
	while (n > 0 && hx->base[n - 1] == '/')
		hx->base[--n] = '\0';
	snprintf(hx->x.what, sizeof hx->x.what, "%.500s", hx->base);
	if (o->migration_id)
		snprintf(hx->x.id, sizeof hx->x.id, "%s", o->migration_id);
	else
		wasp_migration_id(hx->x.id);

	char line[4200];
	struct curl_slist *l = NULL, *sl = NULL;
	if (o->token) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", o->token);
		l = curl_slist_append(l, line);
		sl = curl_slist_append(sl, line);
	}
	snprintf(line, sizeof line, "Wasp-Migration-Id: %s", hx->x.id);
	l = curl_slist_append(l, line);
	sl = curl_slist_append(sl, line);
	sl = curl_slist_append(sl, "Transfer-Encoding: chunked");
	sl = curl_slist_append(sl, "Content-Type: application/vnd.wasp.checkpoint");
	explicit_bzero(line, sizeof line);
	hx->headers = l;
	hx->stream_headers = sl;
	if (!l || !sl || (o->token && !(hx->token = strdup(o->token)))) {
		http_destroy(&hx->x);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	if (o->ca_file) {
		/* A missing CA file would fail every request alike: say so once. */
		if (access(o->ca_file, R_OK) < 0) {
			int e = errno;
			http_destroy(&hx->x);
			return wasp_fail(-e, "CA file %s: %s", o->ca_file, strerror(e));
		}
		if (!(hx->ca_file = strdup(o->ca_file))) {
			http_destroy(&hx->x);
			return wasp_fail(-ENOMEM, "out of memory");
		}
		hx->x.o.ca_file = hx->ca_file;
	}
	if ((o->preflight && (r = preflight(hx)) < 0) || (r = start_stream(hx)) < 0) {
		http_destroy(&hx->x);
		return r;
	}
	*out = &hx->x;
	return 0;
}

/* ---- fetching a checkpoint ------------------------------------------------------- */

struct wasp_fetch {
	CURL *h;
	struct curl_slist *headers;
	struct wasp_xfer_opts o;
	struct guard g;
	char *token;
	pthread_t thread;
	struct wasp_bqueue q;
	CURLcode res;
	long code;
	char errbuf[CURL_ERROR_SIZE];
	char url[2048];
	char why[700];             /* why it failed, once it has */
	struct wasp_s3_get *s3;    /* s3://: the ranged GETs instead of all above */
};

static size_t fetch_write(char *p, size_t size, size_t n, void *ctx)
{
	struct wasp_fetch *f = ctx;
	return wasp_bqueue_put(&f->q, p, size * n) < 0 ? 0 : size * n;
}

static void *fetch_main(void *arg)
{
	struct wasp_fetch *f = arg;
	f->res = curl_easy_perform(f->h);
	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &f->code);
	long redirects = 0;
	char *where = NULL;
	curl_easy_getinfo(f->h, CURLINFO_REDIRECT_COUNT, &redirects);
	curl_easy_getinfo(f->h, CURLINFO_EFFECTIVE_URL, &where);
	if (f->res == CURLE_UNSUPPORTED_PROTOCOL && redirects && where)
		/* curl's "Protocol "http" not supported" hides that a server
		 * tried to take us out of TLS. */
		snprintf(f->why, sizeof f->why,
			 "%.300s: redirected to %.300s, which is not https://: refused", f->url, where);
	else if (f->res == CURLE_OK || f->res == CURLE_HTTP_RETURNED_ERROR)
		snprintf(f->why, sizeof f->why, "%.300s: HTTP %ld", f->url, f->code);
	else
		snprintf(f->why, sizeof f->why, "%.300s: %.300s", f->url,
			 curl_reason_g(&f->g, f->res, f->errbuf));
	if (f->res == CURLE_OK && f->code == 200)
		wasp_bqueue_close(&f->q);
	else
		wasp_bqueue_fail(&f->q, -EIO, f->why);
	return NULL;
}

static void fetch_free(struct wasp_fetch *f)
{
	if (f->h)
		curl_easy_cleanup(f->h);
	curl_slist_free_all(f->headers);
	if (f->token) {
		explicit_bzero(f->token, strlen(f->token));
		free(f->token);
	}
	wasp_bqueue_destroy(&f->q);
	free(f);
}

int wasp_fetch_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_fetch **out)
{
	struct wasp_xfer_opts dflt;
	int r;
	*out = NULL;
	if (!o) {
		wasp_xfer_opts_init(&dflt);
		o = &dflt;
	}
	if ((r = ensure_curl()) < 0)
		return r;
	if (wasp_s3_url(url)) {
		struct wasp_fetch *f = calloc(1, sizeof *f);
		if (!f)
			return wasp_fail(-ENOMEM, "out of memory");
		if ((r = wasp_s3_get_open(url, o, &f->s3)) < 0) {
			free(f);
			return r;
		}
		*out = f;
		return 0;
	}
	if (strlen(url) >= sizeof((struct wasp_fetch *)0)->url)
		return wasp_fail(-ENAMETOOLONG, "URL too long");
	if (o->token && !header_safe(o->token))
		return wasp_fail(-EINVAL, "the token holds control characters");
	struct wasp_fetch *f = calloc(1, sizeof *f);
	if (!f)
		return wasp_fail(-ENOMEM, "out of memory");
	f->o = *o;
	snprintf(f->url, sizeof f->url, "%s", url);
	if ((r = wasp_bqueue_init(&f->q, o->queue_bytes ? o->queue_bytes : DEFAULT_QUEUE)) < 0) {
		free(f);
		return r;
	}
	if (o->token) {
		char line[4200];
		snprintf(line, sizeof line, "Authorization: Bearer %s", o->token);
		f->headers = curl_slist_append(NULL, line);
		explicit_bzero(line, sizeof line);
		f->token = strdup(o->token);
	}
	if ((o->token && (!f->headers || !f->token)) || !(f->h = curl_easy_init())) {
		fetch_free(f);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	f->o.token = NULL;
	guard_init(&f->g, &f->o, f->token, url);
	easy_common(f->h, &f->g, url, f->headers, f->errbuf);
	curl_easy_setopt(f->h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(f->h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(f->h, CURLOPT_MAXREDIRS, 5L);
	/* An https:// URL is followed to https:// only: a redirect must not
	 * take the download, and whatever it carries, out of TLS. A plain
	 * http:// one may go on to https://. */
	curl_easy_setopt(f->h, CURLOPT_REDIR_PROTOCOLS_STR,
			 strncasecmp(url, "https://", 8) ? "http,https" : "https");
	curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(f->h, CURLOPT_LOW_SPEED_TIME,
			 (long)(or_default(o->stall_timeout_ns, DEFAULT_STALL_NS) / 1000000000ull));
	int e = pthread_create(&f->thread, NULL, fetch_main, f);
	if (e) {
		fetch_free(f);
		return wasp_fail(-e, "pthread_create: %s", strerror(e));
	}
	*out = f;
	return 0;
}

static ssize_t fetch_read(void *ctx, void *buf, size_t len)
{
	struct wasp_fetch *f = ctx;
	if (f->s3)
		return wasp_s3_get_read(f->s3, buf, len);
	ssize_t n = wasp_bqueue_get(&f->q, buf, len, 0);
	if (n < 0) {
		pthread_mutex_lock(&f->q.lock);
		char msg[256];
		snprintf(msg, sizeof msg, "%s", f->q.msg);
		pthread_mutex_unlock(&f->q.lock);
		return wasp_fail((int)n, "fetching %s", msg);
	}
	return n;
}

struct wasp_source wasp_fetch_source(struct wasp_fetch *f)
{
	return (struct wasp_source){.read = fetch_read, .ctx = f};
}

int wasp_fetch_close(struct wasp_fetch *f)
{
	if (!f)
		return 0;
	if (f->s3) {
		int r = wasp_s3_get_close(f->s3);
		free(f);
		return r;
	}
	/* A reader that stopped early (a bad checkpoint) lets curl go. */
	wasp_bqueue_fail(&f->q, -ECANCELED, "the reader is done");
	pthread_join(f->thread, NULL);
	int r = 0;
	if ((f->res != CURLE_OK || f->code != 200) && f->res != CURLE_WRITE_ERROR)
		r = wasp_fail(-EIO, "%s", f->why);
	fetch_free(f);
	return r;
}
