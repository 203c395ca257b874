/*
 * bench_http.c: wasp-bench-http, an HTTP/1.1 echo server whose request
 * handler runs either natively or in a virtine of its own per request,
 * driven by a load generator in the same program (issue 5, item 5; the
 * Wasp paper's Figs. 4 and 13).
 *
 * The server listens on 127.0.0.1 (an ephemeral port), one thread per
 * connection, keep-alive. Both handlers serve in the same run:
 *   POST /native   the body's answer (http_echo.h: upper case + FNV-1a)
 *                  computed by a C function in the server;
 *   POST /virtine  the same answer computed by the virtine http_echo.c,
 *                  one wasp_call() per request through a pool with a
 *                  snapshot: the body is the call's argument (handed over
 *                  at the snapshot point), the result is the response body;
 *   GET /native?msg=..., GET /virtine?msg=...  the same for the query value.
 *
 * The load generator opens N keep-alive connections (a client thread each,
 * closed loop: send, read the whole response, check it, send the next) and
 * times every request from its send to its response's last byte. Each
 * phase (one mode, one N) runs for a fixed time after a few untimed
 * requests per connection; rounds repeat all phases in alternating mode
 * order, so drift hits both modes alike, and each round also measures the
 * floor (the bare KVM_RUN exit round trip, bench_floor.c). The server times
 * its handler (compute, or wasp_call) apart, which splits a request's
 * latency into handler and HTTP/loopback cost.
 *
 * Every response is checked (status 200, Content-Length, body equal to the
 * expected answer, nothing extra); a wrong one stops the benchmark. The
 * server's per-mode counts must equal the requests sent and the pool's
 * gets, so each virtine-mode request provably ran in a virtine. Nothing
 * asserts on time.
 *
 * Usage: wasp-bench-http [--quick] [--csv PATH] [--selftest] [--image PATH]
 *                        [--body BYTES] [--conns N[,N...]] [--cpu N|all]
 * Exit status: 0 done, 1 a step failed, 2 bad usage, 77 no usable /dev/kvm.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_floor.h"
#include "http_echo.h"
#include "vmm.h"

#define EXIT_SKIP 77

#ifndef WASP_BENCH_HTTP_IMAGE
#define WASP_BENCH_HTTP_IMAGE "http_echo.bin"
#endif

enum mode { MODE_NATIVE, MODE_VIRTINE, MODES };
static const char *const mode_names[MODES] = {"native", "virtine"};

#define MAX_CONN_SETTINGS 8
#define HDR_MAX 8192u                       /* request or response head */
#define REQ_BUF (HDR_MAX + HTTP_ECHO_MAX_IN) /* a whole request */
#define RESP_BUF (HDR_MAX + HTTP_ECHO_MAX_OUT)

struct params {
	int rounds;
	uint64_t phase_ns; /* timed length of one phase (mode, connections) */
	int warmup;        /* untimed requests per connection before it */
	int floor_iters, floor_warmup;
	int nconns;
	int conns[MAX_CONN_SETTINGS];
};

static const struct params full_params = {
	.rounds = 5, .phase_ns = 1000000000, .warmup = 20,
	.floor_iters = 20000, .floor_warmup = 200,
	.nconns = 3, .conns = {1, 4, 16},
};

static const struct params quick_params = {
	.rounds = 2, .phase_ns = 500000000, .warmup = 5,
	.floor_iters = 2000, .floor_warmup = 50,
	.nconns = 2, .conns = {1, 4},
};

static struct params P;
static size_t body_len = 128;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "wasp-bench-http: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- samples ------------------------------------------------------------------ */

struct samples {
	double *us;
	size_t n, cap;
};

static void push(struct samples *s, double us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		double *p = realloc(s->us, cap * sizeof *p);
		if (!p)
			die("out of memory for samples");
		s->us = p;
		s->cap = cap;
	}
	s->us[s->n++] = us;
}

static void push_all(struct samples *to, const struct samples *from)
{
	for (size_t i = 0; i < from->n; i++)
		push(to, from->us[i]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Sorts and returns the q-quantile (nearest rank); 0 without samples. */
static double quantile(struct samples *s, double q)
{
	if (!s->n)
		return 0;
	qsort(s->us, s->n, sizeof *s->us, cmp_double);
	size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
	return s->us[i < s->n ? i : s->n - 1];
}

/* ---- result rows --------------------------------------------------------------- */

struct row {
	char name[32];
	int mode; /* -1: a floor row */
	int conns;
	struct samples lat;     /* client: send to last byte of the response */
	struct samples handler; /* server: the handler alone */
	uint64_t timed;         /* requests in the timed part of the phases */
	uint64_t wall_ns;       /* their phases' wall time, summed over rounds */
	double median, p90, p99, min, handler_median, rps;
};

#define MAX_ROWS (BENCH_FLOOR_MODES + MODES * MAX_CONN_SETTINGS)
static struct row rows[MAX_ROWS];
static size_t nrows;

static struct row *row(const char *name, int mode, int conns)
{
	for (size_t i = 0; i < nrows; i++)
		if (!strcmp(rows[i].name, name))
			return &rows[i];
	if (nrows == MAX_ROWS)
		die("too many result rows");
	struct row *r = &rows[nrows++];
	snprintf(r->name, sizeof r->name, "%s", name);
	r->mode = mode;
	r->conns = conns;
	return r;
}

static struct row *http_row(enum mode m, int conns)
{
	char name[32];
	snprintf(name, sizeof name, "%s_c%d", mode_names[m], conns);
	return row(name, (int)m, conns);
}

/* ---- the server ------------------------------------------------------------------ */

struct server {
	int lfd;
	uint16_t port;
	struct wasp_pool *pool;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	/* Under lock. A connection's counts and handler times are merged in
	 * when it ends, so once `active` is 0 they cover every request. */
	unsigned active;
	pthread_t *threads; /* connection threads not yet joined */
	size_t nthreads, cap;
	struct samples handler[MODES];
	uint64_t served[MODES]; /* answered 200 */
	uint64_t failed;        /* answered 500: the virtine call failed */
	bool stopping;
	char failure[256];      /* the first 500's reason */
};

struct conn {
	struct server *srv;
	int fd;
};

struct request {
	enum mode mode;
	const char *in; /* the handler's input: body or query value */
	size_t in_len;
	size_t size;    /* head + body: the bytes this request took */
	bool keep_alive;
};

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int respond(int fd, int status, const char *reason, const char *body, size_t len,
		   bool keep_alive, char *buf)
{
	int n = snprintf(buf, HDR_MAX,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
			 status, reason, len, keep_alive ? "" : "Connection: close\r\n");
	memcpy(buf + n, body, len);
	return send_all(fd, buf, (size_t)n + len);
}

/* A header line's value if its name is `name` (any case), else NULL. */
static const char *header_value(const char *line, const char *end, const char *name)
{
	size_t n = strlen(name);
	if ((size_t)(end - line) <= n || strncasecmp(line, name, n) || line[n] != ':')
		return NULL;
	line += n + 1;
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	return line;
}

/* The value of query parameter `msg`, raw (the benchmark sends no escapes). */
static void query_msg(const char *q, const char *end, struct request *rq)
{
	rq->in = q;
	rq->in_len = 0;
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp ? amp : end;
		if (stop - q >= 4 && !memcmp(q, "msg=", 4)) {
			rq->in = q + 4;
			rq->in_len = (size_t)(stop - q - 4);
			return;
		}
		q = amp ? amp + 1 : end;
	}
}

/*
 * Reads one request into buf (have: bytes already there, from the last
 * request's tail). Returns 200 with *rq filled, 0 at a clean end of the
 * connection, -1 on a broken one, or the error status to answer (the
 * connection is closed after it).
 */
static int read_request(int fd, char *buf, size_t *have, struct request *rq)
{
	char *eoh;
	while (!(eoh = memmem(buf, *have, "\r\n\r\n", 4))) {
		if (*have >= HDR_MAX)
			return 431;
		ssize_t n = recv(fd, buf + *have, HDR_MAX - *have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 && *have == 0 ? 0 : -1;
		*have += (size_t)n;
	}
	size_t head = (size_t)(eoh - buf) + 4;
	char *line_end = memmem(buf, head, "\r\n", 2);

	/* Request line: METHOD SP TARGET SP HTTP/1.x */
	char *sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
	char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
	if (!sp2 || line_end - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7))
		return 400;
	bool post = sp1 - buf == 4 && !memcmp(buf, "POST", 4);
	bool get = sp1 - buf == 3 && !memcmp(buf, "GET", 3);
	char minor = sp2[8];
	if (minor != '0' && minor != '1')
		return 505;
	rq->keep_alive = minor == '1';
	char *target = sp1 + 1, *q = memchr(target, '?', (size_t)(sp2 - target));
	size_t path_len = (size_t)((q ? q : sp2) - target);
	if (path_len == 7 && !memcmp(target, "/native", 7))
		rq->mode = MODE_NATIVE;
	else if (path_len == 8 && !memcmp(target, "/virtine", 8))
		rq->mode = MODE_VIRTINE;
	else
		return 404;

	long long clen = -1;
	for (char *l = line_end + 2; l < eoh; ) {
		char *e = memmem(l, (size_t)(eoh + 2 - l), "\r\n", 2);
		const char *v;
		if ((v = header_value(l, e, "Content-Length"))) {
			char *stop;
			errno = 0;
			long long x = strtoll(v, &stop, 10);
			if (errno || stop == v || x < 0 || (clen >= 0 && x != clen))
				return 400;
			while (stop < e && (*stop == ' ' || *stop == '\t'))
				stop++;
			if (stop != e)
				return 400;
			clen = x;
		} else if ((v = header_value(l, e, "Transfer-Encoding"))) {
			return 501; /* chunked bodies: not needed here */
		} else if ((v = header_value(l, e, "Connection"))) {
			if (memmem(v, (size_t)(e - v), "close", 5))
				rq->keep_alive = false;
			else if (memmem(v, (size_t)(e - v), "keep-alive", 10))
				rq->keep_alive = true;
		}
		l = e + 2;
	}
	if (!post && !get)
		return 405;
	if (clen < 0)
		clen = 0;
	if (clen > (long long)HTTP_ECHO_MAX_IN)
		return 413;
	rq->size = head + (size_t)clen;
	while (*have < rq->size) {
		ssize_t n = recv(fd, buf + *have, REQ_BUF - *have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
	if (post) {
		rq->in = buf + head;
		rq->in_len = (size_t)clen;
	} else {
		query_msg(q ? q + 1 : sp2, sp2, rq);
	}
	return 200;
}

static const char *reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static void *serve(void *arg)
{
	struct conn *c = arg;
	struct server *s = c->srv;
	char *buf = malloc(REQ_BUF), *out = malloc(HTTP_ECHO_MAX_OUT), *resp = malloc(RESP_BUF);
	struct samples times[MODES] = {{0}};
	uint64_t served[MODES] = {0}, failed = 0;
	char failure[256] = "";
	size_t have = 0;
	if (!buf || !out || !resp)
		die("out of memory for a connection");

	for (;;) {
		struct request rq;
		int st = read_request(c->fd, buf, &have, &rq);
		if (st <= 0)
			break;
		if (st != 200) {
			respond(c->fd, st, reason(st), reason(st), strlen(reason(st)), false, resp);
			break;
		}
		int status = 200;
		size_t len;
		uint64_t t0 = now_ns();
		if (rq.mode == MODE_NATIVE) {
			len = http_echo_compute(rq.in, rq.in_len, out);
		} else {
			int r = wasp_call(s->pool, rq.in, rq.in_len, out, HTTP_ECHO_MAX_OUT, NULL);
			if (r < 0) {
				status = 500;
				len = (size_t)snprintf(out, HTTP_ECHO_MAX_OUT, "wasp_call: %s",
						       wasp_last_error());
				if (!failed)
					snprintf(failure, sizeof failure, "%s", out);
			} else {
				len = (size_t)r;
			}
		}
		uint64_t t1 = now_ns();
		if (status == 200) {
			push(&times[rq.mode], (double)(t1 - t0) / 1e3);
			served[rq.mode]++;
		} else {
			failed++;
		}
		if (respond(c->fd, status, status == 200 ? "OK" : "Internal Server Error", out, len,
			    rq.keep_alive, resp) < 0 || !rq.keep_alive)
			break;
		have -= rq.size;
		memmove(buf, buf + rq.size, have);
	}
	close(c->fd);

	pthread_mutex_lock(&s->lock);
	for (int m = 0; m < MODES; m++) {
		push_all(&s->handler[m], &times[m]);
		s->served[m] += served[m];
		free(times[m].us);
	}
	if (failed && !s->failed)
		snprintf(s->failure, sizeof s->failure, "%s", failure);
	s->failed += failed;
	s->active--;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	free(buf);
	free(out);
	free(resp);
	free(c);
	return NULL;
}

static void *accept_loop(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			pthread_mutex_lock(&s->lock);
			bool stop = s->stopping;
			pthread_mutex_unlock(&s->lock);
			if (stop)
				return NULL;
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE)
				continue;
			die("accept: %s", strerror(errno));
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = malloc(sizeof *c);
		if (!c)
			die("out of memory for a connection");
		c->srv = s;
		c->fd = fd;
		pthread_mutex_lock(&s->lock);
		if (s->nthreads == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 64;
			pthread_t *p = realloc(s->threads, cap * sizeof *p);
			if (!p)
				die("out of memory for threads");
			s->threads = p;
			s->cap = cap;
		}
		int err = pthread_create(&s->threads[s->nthreads], NULL, serve, c);
		if (err)
			die("pthread_create: %s", strerror(err));
		s->nthreads++;
		s->active++;
		pthread_mutex_unlock(&s->lock);
	}
}

static void server_start(struct server *s, struct wasp_pool *pool)
{
	memset(s, 0, sizeof *s);
	s->pool = pool;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		die("socket: %s", strerror(errno));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->lfd, 128) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &alen) < 0)
		die("listen on 127.0.0.1: %s", strerror(errno));
	s->port = ntohs(a.sin_port);
	int err = pthread_create(&s->acceptor, NULL, accept_loop, s);
	if (err)
		die("pthread_create: %s", strerror(err));
}

/* Waits until every connection has ended, joins their threads and moves
 * the handler times of `m` (all modes if m < 0) into `to` (or drops them).
 * Sets served[] to the requests answered 200 since the start; a request
 * answered 500 (a failed virtine call) ends the benchmark here. */
static void server_wait_idle(struct server *s, int m, struct samples *to, uint64_t served[MODES])
{
	pthread_mutex_lock(&s->lock);
	while (s->active)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_t *threads = s->threads;
	size_t n = s->nthreads;
	s->threads = NULL;
	s->nthreads = s->cap = 0;
	for (int i = 0; i < MODES; i++) {
		if (to && (m < 0 || m == i))
			push_all(to, &s->handler[i]);
		s->handler[i].n = 0;
		served[i] = s->served[i];
	}
	if (s->failed)
		die("the server answered %llu requests with 500: %s",
		    (unsigned long long)s->failed, s->failure);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	free(threads);
}

static void server_stop(struct server *s)
{
	uint64_t served[MODES];
	server_wait_idle(s, -1, NULL, served);
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	shutdown(s->lfd, SHUT_RDWR); /* wakes the accept() */
	pthread_join(s->acceptor, NULL);
	server_wait_idle(s, -1, NULL, served); /* one that raced in */
	close(s->lfd);
	for (int i = 0; i < MODES; i++)
		free(s->handler[i].us);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
}

/* ---- the client ------------------------------------------------------------------- */

struct http_client {
	int fd;
	char *req, *resp; /* REQ_BUF, RESP_BUF */
	size_t have;      /* response bytes read */
	/* the last response */
	int status;
	const char *body;
	size_t body_len;
	bool closed;      /* the server said Connection: close */
	char err[320];
};

static int client_open(struct http_client *h, uint16_t port)
{
	memset(h, 0, sizeof *h);
	h->req = malloc(REQ_BUF);
	h->resp = malloc(RESP_BUF);
	if (!h->req || !h->resp)
		die("out of memory for a client");
	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		die("socket: %s", strerror(errno));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(h->fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect to 127.0.0.1:%u: %s", port, strerror(errno));
	return 0;
}

static void client_close(struct http_client *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	free(h->req);
	free(h->resp);
	h->req = h->resp = NULL;
}

static int client_fail(struct http_client *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int client_fail(struct http_client *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->err, sizeof h->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* Sends the request in h->req[0..len) and reads one whole response. */
static int exchange(struct http_client *h, size_t len)
{
	if (send_all(h->fd, h->req, len) < 0)
		return client_fail(h, "send: %s", strerror(errno));
	h->have = 0;
	char *eoh;
	while (!(eoh = memmem(h->resp, h->have, "\r\n\r\n", 4))) {
		if (h->have >= HDR_MAX)
			return client_fail(h, "response head over %u bytes", HDR_MAX);
		ssize_t n = recv(h->fd, h->resp + h->have, HDR_MAX - h->have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return client_fail(h, "connection %s before a whole response head",
					   n ? strerror(errno) : "closed");
		h->have += (size_t)n;
	}
	size_t head = (size_t)(eoh - h->resp) + 4;
	if (head < 13 || memcmp(h->resp, "HTTP/1.1 ", 9) ||
	    sscanf(h->resp + 9, "%3d", &h->status) != 1)
		return client_fail(h, "bad status line '%.40s'", h->resp);
	long long clen = -1;
	h->closed = false;
	char *line_end = memmem(h->resp, head, "\r\n", 2);
	for (char *l = line_end + 2; l < eoh; ) {
		char *e = memmem(l, (size_t)(eoh + 2 - l), "\r\n", 2);
		const char *v;
		if ((v = header_value(l, e, "Content-Length")))
			clen = strtoll(v, NULL, 10);
		else if ((v = header_value(l, e, "Connection")))
			h->closed = memmem(v, (size_t)(e - v), "close", 5) != NULL;
		l = e + 2;
	}
	if (clen < 0 || clen > (long long)HTTP_ECHO_MAX_OUT)
		return client_fail(h, "response without a usable Content-Length (%lld)", clen);
	size_t total = head + (size_t)clen;
	while (h->have < total) {
		ssize_t n = recv(h->fd, h->resp + h->have, RESP_BUF - h->have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return client_fail(h, "connection %s inside a response body",
					   n ? strerror(errno) : "closed");
		h->have += (size_t)n;
	}
	if (h->have != total)
		return client_fail(h, "%zu bytes after the response", h->have - total);
	h->body = h->resp + head;
	h->body_len = (size_t)clen;
	return 0;
}

static size_t build_post(struct http_client *h, const char *path, const void *body, size_t len)
{
	int n = snprintf(h->req, HDR_MAX,
			 "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 path, len);
	memcpy(h->req + n, body, len);
	return (size_t)n + len;
}

/* Requests the answer to `in` from `m` (POST, or GET ?msg= when `get`) and
 * checks the response is 200 with exactly expect[0..elen), which the
 * caller computed (outside the timed part). */
static int echo_request(struct http_client *h, enum mode m, const char *in, size_t len,
			bool get, const char *expect, size_t elen)
{
	size_t rlen;
	if (get)
		rlen = (size_t)snprintf(h->req, REQ_BUF, "GET /%s?x=1&msg=%.*s HTTP/1.1\r\n"
					"Host: 127.0.0.1\r\n\r\n", mode_names[m], (int)len, in);
	else
		rlen = build_post(h, m == MODE_NATIVE ? "/native" : "/virtine", in, len);
	if (exchange(h, rlen) < 0)
		return -1;
	if (h->status != 200)
		return client_fail(h, "%s: status %d: %.*s", mode_names[m], h->status,
				   (int)(h->body_len < 200 ? h->body_len : 200), h->body);
	if (h->closed)
		return client_fail(h, "%s: the server closed a keep-alive connection",
				   mode_names[m]);
	if (h->body_len != elen || memcmp(h->body, expect, elen))
		return client_fail(h, "%s: wrong answer for a %zu-byte input: %zu bytes '%.*s...'",
				   mode_names[m], len, h->body_len,
				   (int)(h->body_len < 40 ? h->body_len : 40), h->body);
	return 0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* A body of printable characters, lower case among them, new each time. */
static void fill_body(char *b, size_t len, uint64_t *rng)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyz0123456789-_.ABCXYZ";
	for (size_t i = 0; i < len; i++)
		b[i] = set[xorshift(rng) % (sizeof set - 1)];
}

/* ---- one phase: one mode, N connections ----------------------------------------- */

struct load {
	struct http_client h;
	enum mode mode;
	uint64_t rng;
	pthread_barrier_t *start;
	struct samples lat;
	uint64_t t_start, t_end, done, warm;
	int failed;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	char *body = malloc(HTTP_ECHO_MAX_IN), *expect = malloc(HTTP_ECHO_MAX_OUT);
	if (!body || !expect)
		die("out of memory for a client");
	for (int i = 0; i < P.warmup && !l->failed; i++) {
		fill_body(body, body_len, &l->rng);
		size_t elen = http_echo_compute(body, body_len, expect);
		l->failed = echo_request(&l->h, l->mode, body, body_len, false, expect, elen) < 0;
		l->warm += !l->failed;
	}
	/* Everyone passes the barrier, failed or not, or the others would
	 * wait for ever. */
	pthread_barrier_wait(l->start);
	l->t_start = now_ns();
	uint64_t deadline = l->t_start + P.phase_ns;
	while (!l->failed) {
		fill_body(body, body_len, &l->rng);
		size_t elen = http_echo_compute(body, body_len, expect);
		uint64_t t0 = now_ns();
		if (echo_request(&l->h, l->mode, body, body_len, false, expect, elen) < 0) {
			l->failed = 1;
			break;
		}
		uint64_t t1 = now_ns();
		push(&l->lat, (double)(t1 - t0) / 1e3);
		l->done++;
		if (t1 >= deadline)
			break;
	}
	l->t_end = now_ns();
	free(body);
	free(expect);
	return NULL;
}

static void run_phase(struct server *s, enum mode m, int nconn, uint64_t seed)
{
	struct row *r = http_row(m, nconn);
	struct load *ls = calloc((size_t)nconn, sizeof *ls);
	pthread_t *ts = calloc((size_t)nconn, sizeof *ts);
	pthread_barrier_t bar;
	if (!ls || !ts)
		die("out of memory");
	uint64_t served0[MODES], served1[MODES];
	struct wasp_pool_stats ps0, ps1;
	server_wait_idle(s, -1, NULL, served0);
	wasp_pool_stats(s->pool, &ps0);

	pthread_barrier_init(&bar, NULL, (unsigned)nconn);
	for (int i = 0; i < nconn; i++) {
		client_open(&ls[i].h, s->port);
		ls[i].mode = m;
		ls[i].rng = seed * 1000003u + (uint64_t)i * 7919u + 1;
		ls[i].start = &bar;
	}
	for (int i = 0; i < nconn; i++) {
		int err = pthread_create(&ts[i], NULL, load_main, &ls[i]);
		if (err)
			die("pthread_create: %s", strerror(err));
	}
	uint64_t t_start = UINT64_MAX, t_end = 0, done = 0, warm = 0;
	for (int i = 0; i < nconn; i++)
		pthread_join(ts[i], NULL);
	for (int i = 0; i < nconn; i++) {
		if (ls[i].failed)
			die("%s with %d connections, connection %d: %s", mode_names[m], nconn, i,
			    ls[i].h.err);
		push_all(&r->lat, &ls[i].lat);
		free(ls[i].lat.us);
		t_start = ls[i].t_start < t_start ? ls[i].t_start : t_start;
		t_end = ls[i].t_end > t_end ? ls[i].t_end : t_end;
		done += ls[i].done;
		warm += ls[i].warm;
		client_close(&ls[i].h);
	}
	pthread_barrier_destroy(&bar);
	free(ls);
	free(ts);

	/* The connections are closed: once the server has seen them end, its
	 * counts cover this phase. Each request must have been answered by
	 * its own handler run in this mode, and in virtine mode by its own
	 * pool call. */
	server_wait_idle(s, (int)m, &r->handler, served1);
	wasp_pool_stats(s->pool, &ps1);
	uint64_t want = done + warm;
	if (served1[m] - served0[m] != want || served1[!m] != served0[!m])
		die("%s with %d connections: the server counted %llu %s and %llu %s requests, "
		    "the clients sent %llu", mode_names[m], nconn,
		    (unsigned long long)(served1[m] - served0[m]), mode_names[m],
		    (unsigned long long)(served1[!m] - served0[!m]), mode_names[!m],
		    (unsigned long long)want);
	if (ps1.gets - ps0.gets != (m == MODE_VIRTINE ? want : 0))
		die("%s with %d connections: %llu pool gets for %llu requests", mode_names[m], nconn,
		    (unsigned long long)(ps1.gets - ps0.gets), (unsigned long long)want);
	r->timed += done;
	r->wall_ns += t_end - t_start;
}

/* ---- the floor ------------------------------------------------------------------- */

static void round_floor(void)
{
	int iters = (P.floor_iters + P.rounds - 1) / P.rounds;
	uint64_t *ns = malloc((size_t)iters * sizeof *ns);
	char err[256];
	if (!ns)
		die("out of memory");
	for (int m = 0; m < BENCH_FLOOR_MODES; m++) {
		struct row *r = row(bench_floor_names[m], -1, 0);
		if (bench_floor_run(wasp_kvm_fd(), (enum bench_floor_mode)m, P.floor_warmup, iters,
				    ns, err, sizeof err) < 0)
			die("%s", err);
		for (int i = 0; i < iters; i++)
			push(&r->lat, (double)ns[i] / 1e3);
	}
	free(ns);
}

/* ---- the self-test ----------------------------------------------------------------- */

static void expect_status(struct http_client *h, size_t len, int status, bool closes,
			  const char *what)
{
	if (exchange(h, len) < 0)
		die("selftest: %s: %s", what, h->err);
	if (h->status != status || h->closed != closes)
		die("selftest: %s: status %d%s, expected %d%s", what, h->status,
		    h->closed ? " and close" : "", status, closes ? " and close" : "");
	if (closes) {
		char c;
		ssize_t n = recv(h->fd, &c, 1, 0);
		if (n != 0)
			die("selftest: %s: the server did not close the connection", what);
	}
}

/*
 * Serves 100 requests in each mode over two keep-alive connections (both
 * modes on each), bodies of 0 to 4096 bytes, every fifth one a GET with the
 * input in the query, and checks every answer; plus a known answer, the
 * error statuses, and that the server and the pool counted every request.
 */
static int selftest(struct server *s)
{
	char out[64];
	size_t n = http_echo_compute("a", 1, out);
	if (n != 10 || memcmp(out, "A e40c292c", 10))
		die("selftest: http_echo_compute(\"a\") = '%.*s', expected 'A e40c292c'", (int)n, out);
	n = http_echo_compute("", 0, out);
	if (n != 9 || memcmp(out, " 811c9dc5", 9))
		die("selftest: http_echo_compute(\"\") = '%.*s', expected ' 811c9dc5'", (int)n, out);

	struct http_client h[2];
	char *body = malloc(HTTP_ECHO_MAX_IN), *expect = malloc(HTTP_ECHO_MAX_OUT);
	uint64_t rng = 42, served0[MODES], served1[MODES];
	struct wasp_pool_stats ps0, ps1;
	if (!body || !expect)
		die("out of memory");
	server_wait_idle(s, -1, NULL, served0);
	wasp_pool_stats(s->pool, &ps0);
	client_open(&h[0], s->port);
	client_open(&h[1], s->port);

	/* The known answer through both handlers. */
	for (int m = 0; m < MODES; m++) {
		if (exchange(&h[0], build_post(&h[0], m ? "/virtine" : "/native", "a", 1)) < 0)
			die("selftest: %s: %s", mode_names[m], h[0].err);
		if (h[0].status != 200 || h[0].body_len != 10 || memcmp(h[0].body, "A e40c292c", 10))
			die("selftest: %s answered %d '%.*s' for 'a', expected 'A e40c292c'",
			    mode_names[m], h[0].status, (int)h[0].body_len, h[0].body);
	}
	unsigned sent[MODES] = {1, 1};
	for (int i = 0; i < 100; i++) {
		size_t len = i == 0 ? 0 : i == 1 ? HTTP_ECHO_MAX_IN : xorshift(&rng) % 600;
		bool get = i % 5 == 4;
		fill_body(body, len, &rng);
		size_t elen = http_echo_compute(body, len, expect);
		for (int m = 0; m < MODES; m++) {
			struct http_client *c = &h[(i + m) % 2];
			if (echo_request(c, (enum mode)m, body, len, get, expect, elen) < 0)
				die("selftest: request %d: %s", i, c->err);
			sent[m]++;
		}
	}

	/* Errors: the status, and a close where the request cannot be read on. */
	size_t len = (size_t)snprintf(h[0].req, REQ_BUF, "GET /nowhere HTTP/1.1\r\n\r\n");
	expect_status(&h[0], len, 404, true, "unknown path");
	len = (size_t)snprintf(h[1].req, REQ_BUF,
			       "POST /virtine HTTP/1.1\r\nContent-Length: %u\r\n\r\n",
			       HTTP_ECHO_MAX_IN + 1);
	expect_status(&h[1], len, 413, true, "body over the limit");
	client_close(&h[0]);
	client_close(&h[1]);
	client_open(&h[0], s->port);
	len = (size_t)snprintf(h[0].req, REQ_BUF, "PUT /native HTTP/1.1\r\n\r\n");
	expect_status(&h[0], len, 405, true, "PUT");
	client_close(&h[0]);
	client_open(&h[0], s->port);
	len = (size_t)snprintf(h[0].req, REQ_BUF,
			       "POST /native HTTP/1.0\r\nContent-Length: 1\r\n\r\nz");
	expect_status(&h[0], len, 200, true, "HTTP/1.0");
	sent[MODE_NATIVE]++;
	client_close(&h[0]);

	server_wait_idle(s, -1, NULL, served1);
	wasp_pool_stats(s->pool, &ps1);
	for (int m = 0; m < MODES; m++)
		if (served1[m] - served0[m] != sent[m])
			die("selftest: the server answered %llu %s requests, %u were sent",
			    (unsigned long long)(served1[m] - served0[m]), mode_names[m], sent[m]);
	if (ps1.gets - ps0.gets != sent[MODE_VIRTINE] || !ps1.snapshot)
		die("selftest: %llu pool gets for %u virtine requests (snapshot %s)",
		    (unsigned long long)(ps1.gets - ps0.gets), sent[MODE_VIRTINE],
		    ps1.snapshot ? "on" : "off");
	printf("selftest: ok: %u native and %u virtine requests (bodies of 0 to %u bytes, POST "
	       "and GET), every answer checked; 404, 405, 413 and HTTP/1.0 close checked; %llu "
	       "pool calls\n",
	       sent[MODE_NATIVE], sent[MODE_VIRTINE], HTTP_ECHO_MAX_IN,
	       (unsigned long long)(ps1.gets - ps0.gets));
	free(body);
	free(expect);
	return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static double floor_us;
static const char *floor_name;

static void finish(struct row *r)
{
	if (!r->lat.n)
		die("%s: no samples", r->name);
	r->median = quantile(&r->lat, 0.5);
	r->p90 = quantile(&r->lat, 0.9);
	r->p99 = quantile(&r->lat, 0.99);
	r->min = r->lat.us[0];
	r->handler_median = quantile(&r->handler, 0.5);
	r->rps = r->wall_ns ? (double)r->timed * 1e9 / (double)r->wall_ns : 0;
}

static void write_table(FILE *f, bool csv)
{
	if (csv)
		fprintf(f, "name,mode,connections,requests,median_us,p90_us,p99_us,min_us,"
			   "requests_per_s,handler_median_us,ratio_to_floor\n");
	else
		fprintf(f, "%-20s %5s %8s %10s %10s %10s %10s %10s %10s %8s\n", "name", "conns",
			"requests", "median_us", "p90_us", "p99_us", "min_us", "req_per_s",
			"handler_us", "x_floor");
	bool http_head = false;
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		if (csv) {
			fprintf(f, "%s,%s,%d,%zu,%.3f,%.3f,%.3f,%.3f,%.1f,%.3f,%.3f\n", r->name,
				r->mode < 0 ? "floor" : mode_names[r->mode], r->conns, r->lat.n,
				r->median, r->p90, r->p99, r->min, r->rps, r->handler_median,
				r->median / floor_us);
			continue;
		}
		if (i == 0)
			fprintf(f, "-- floor: raw KVM_RUN round trip of an `out` exit (no libwasp)\n");
		if (r->mode >= 0 && !http_head) {
			fprintf(f, "-- HTTP/1.1 POST of %zu-byte bodies over loopback, keep-alive, "
				   "closed loop; latency per request, handler time on the server\n",
				body_len);
			http_head = true;
		}
		if (r->mode < 0)
			fprintf(f, "%-20s %5s %8zu %10.2f %10.2f %10.2f %10.2f %10s %10s %8.2f\n",
				r->name, "-", r->lat.n, r->median, r->p90, r->p99, r->min, "-", "-",
				r->median / floor_us);
		else
			fprintf(f, "%-20s %5d %8zu %10.2f %10.2f %10.2f %10.2f %10.0f %10.2f %8.2f\n",
				r->name, r->conns, r->lat.n, r->median, r->p90, r->p99, r->min,
				r->rps, r->handler_median, r->median / floor_us);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: wasp-bench-http [--quick] [--csv PATH] [--selftest] [--image PATH]\n"
		   "                       [--body BYTES] [--conns N[,N...]] [--cpu N|all]\n"
		   "  --quick        2 rounds of 0.5 s phases at 1 and 4 connections (~10 s)\n"
		   "  --csv PATH     also write the rows as CSV to PATH\n"
		   "  --selftest     serve 100 requests in each mode, check every answer, no timing\n"
		   "  --image PATH   the handler virtine (default: the built http_echo.bin)\n"
		   "  --body BYTES   request body size, 0 to %u (default 128)\n"
		   "  --conns LIST   concurrent connections per phase (default 1,4,16; quick 1,4)\n"
		   "  --cpu N|all    run every thread (server, clients, pool) on CPU N (default:\n"
		   "                 the one it starts on), or let them run anywhere\n",
		HTTP_ECHO_MAX_IN);
}

static int parse_conns(const char *s, struct params *p)
{
	p->nconns = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > 256 || p->nconns == MAX_CONN_SETTINGS ||
		    (*end && *end != ','))
			return -1;
		p->conns[p->nconns++] = (int)v;
		s = *end ? end + 1 : end;
	}
	return p->nconns ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *csv_path = NULL, *image = WASP_BENCH_HTTP_IMAGE, *conns = NULL;
	int cpu = -2; /* -2: the CPU we start on, -1: all */
	bool quick = false, self = false;
	for (int i = 1; i < argc; i++) {
		char *end;
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--selftest")) {
			self = true;
		} else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv_path = argv[++i];
		} else if (!strcmp(argv[i], "--image") && i + 1 < argc) {
			image = argv[++i];
		} else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
			long v = strtol(argv[++i], &end, 10);
			if (!strcmp(argv[i], "all")) {
				cpu = -1;
			} else if (*end || end == argv[i] || v < 0 || v >= CPU_SETSIZE) {
				fprintf(stderr, "wasp-bench-http: --cpu wants a CPU number or 'all'\n");
				return 2;
			} else {
				cpu = (int)v;
			}
		} else if (!strcmp(argv[i], "--conns") && i + 1 < argc) {
			conns = argv[++i];
		} else if (!strcmp(argv[i], "--body") && i + 1 < argc) {
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end || end == argv[i] || v > HTTP_ECHO_MAX_IN) {
				fprintf(stderr, "wasp-bench-http: --body wants 0 to %u\n",
					HTTP_ECHO_MAX_IN);
				return 2;
			}
			body_len = v;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wasp-bench-http: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	P = quick ? quick_params : full_params;
	if (conns && parse_conns(conns, &P) < 0) {
		fprintf(stderr, "wasp-bench-http: --conns wants numbers 1 to 256 separated by "
				"commas (at most %d)\n", MAX_CONN_SETTINGS);
		return 2;
	}
	int kvm = wasp_kvm_fd();
	if (kvm < 0) {
		fprintf(stderr, "wasp-bench-http: /dev/kvm: %s; skipping: this benchmark needs KVM\n",
			strerror(-kvm));
		return EXIT_SKIP;
	}
	/* One CPU by default: on the PVM hosts a wake-up across CPUs costs
	 * ~80 us, ten native requests, and whether client and server threads
	 * share a CPU changes from one request to the next, so medians flip
	 * between two modes. On one CPU the transport costs its minimum and
	 * the handler's cost stands out. Set before any thread exists (the
	 * pool's too): they all inherit it. */
	if (cpu == -2)
		cpu = sched_getcpu();
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0)
			die("--cpu %d: %s", cpu, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	/* The environment must not change what is measured. */
	unsetenv("WASP_NO_SNAPSHOT");
	FILE *csv = NULL;
	if (!self && csv_path && !(csv = fopen(csv_path, "w")))
		die("%s: %s", csv_path, strerror(errno));

	int min_conns = P.conns[0], max_conns = P.conns[0];
	for (int i = 0; i < P.nconns; i++) {
		min_conns = P.conns[i] < min_conns ? P.conns[i] : min_conns;
		max_conns = P.conns[i] > max_conns ? P.conns[i] : max_conns;
	}
	struct wasp_pool_config c;
	struct wasp_pool *pool;
	wasp_pool_config_init(&c);
	c.image_path = image;
	/* One virtine per connection plus two being reset: a call never waits
	 * for a virtine unless resets fall behind. */
	c.size = (unsigned)max_conns + 2;
	c.call_timeout_ns = 2000000000ull; /* a stuck guest fails its request, not the run */
	c.vm.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (c.vm.console_fd < 0)
		die("/dev/null: %s", strerror(errno));
	uint64_t t0 = now_ns();
	if (wasp_pool_create(&c, &pool) < 0 || wasp_pool_fill(pool) < 0)
		die("%s: %s", image, wasp_last_error());
	uint64_t t_pool = now_ns() - t0;
	struct wasp_pool_stats ps;
	wasp_pool_stats(pool, &ps);
	if (!ps.snapshot)
		die("%s: the pool did not take a snapshot", image);

	struct server srv;
	server_start(&srv, pool);
	if (self) {
		int r = selftest(&srv);
		server_stop(&srv);
		wasp_pool_destroy(pool);
		close(c.vm.console_fd);
		return r ? 1 : 0;
	}

	printf("wasp-bench-http (%s): %d rounds, phases of %.1f s at", quick ? "quick" : "full",
	       P.rounds, (double)P.phase_ns / 1e9);
	for (int i = 0; i < P.nconns; i++)
		printf(" %d", P.conns[i]);
	printf(" connections; %zu-byte bodies; pool of %u (made in %.1f ms); ", body_len, c.size,
	       (double)t_pool / 1e6);
	if (cpu >= 0)
		printf("every thread on CPU %d", cpu);
	else
		printf("threads on any CPU");
	printf("; times in microseconds (CLOCK_MONOTONIC)\n");
	fflush(stdout);
	for (int m = 0; m < BENCH_FLOOR_MODES; m++)
		row(bench_floor_names[m], -1, 0);
	for (int i = 0; i < P.nconns; i++)
		for (int m = 0; m < MODES; m++)
			http_row((enum mode)m, P.conns[i]);

	for (int round = 1; round <= P.rounds; round++) {
		round_floor();
		for (int i = 0; i < P.nconns; i++)
			for (int k = 0; k < MODES; k++) {
				/* Alternate which mode goes first. */
				enum mode m = (enum mode)((k + round) % MODES);
				run_phase(&srv, m, P.conns[i], (uint64_t)round * 131 + (uint64_t)i * 2 + m);
			}
		fprintf(stderr, "wasp-bench-http: round %d/%d done (%.1f s)\n", round, P.rounds,
			(double)(now_ns() - t0) / 1e9);
	}

	for (size_t i = 0; i < nrows; i++)
		finish(&rows[i]);
	for (int m = 0; m < BENCH_FLOOR_MODES; m++) {
		const struct row *r = row(bench_floor_names[m], -1, 0);
		if (!floor_name || r->median < floor_us) {
			floor_us = r->median;
			floor_name = r->name;
		}
	}
	write_table(stdout, false);
	wasp_pool_stats(pool, &ps);
	printf("floor = %s = %.2f us; %.1f s\n", floor_name, floor_us,
	       (double)(now_ns() - t0) / 1e9);
	printf("pool: %llu calls, %llu resets at %.1f us and %.1f pages each (pool thread), %llu "
	       "gets found none ready (%llu reset one themselves), %llu virtines made\n",
	       (unsigned long long)ps.gets, (unsigned long long)ps.resets,
	       ps.resets ? (double)ps.reset_ns / 1e3 / (double)ps.resets : 0.0,
	       ps.resets ? (double)ps.reset_pages / (double)ps.resets : 0.0,
	       (unsigned long long)ps.get_waits, (unsigned long long)ps.inline_resets,
	       (unsigned long long)ps.created);
	for (int i = 0; i < P.nconns; i++) {
		const struct row *n = http_row(MODE_NATIVE, P.conns[i]);
		const struct row *v = http_row(MODE_VIRTINE, P.conns[i]);
		printf("%2d connections: virtine/native p50 %.2f, p99 %.2f, throughput %.2f; the "
		       "virtine adds %.1f us (%.1f floors) per request at the median, its handler "
		       "%.1f us\n",
		       P.conns[i], v->median / n->median, v->p99 / n->p99, v->rps / n->rps,
		       v->median - n->median, (v->median - n->median) / floor_us,
		       v->handler_median);
	}
	/* Latency where requests do not queue (fewest connections), throughput
	 * where the server is busiest (most connections). */
	const struct row *n1 = http_row(MODE_NATIVE, min_conns);
	const struct row *v1 = http_row(MODE_VIRTINE, min_conns);
	const struct row *nN = http_row(MODE_NATIVE, max_conns);
	const struct row *vN = http_row(MODE_VIRTINE, max_conns);
	printf("ratio http_virtine_vs_native_latency_p50 %.2f (for comparison)\n",
	       v1->median / n1->median);
	printf("ratio http_virtine_vs_native_throughput %.2f (for comparison)\n", vN->rps / nN->rps);
	if (csv) {
		write_table(csv, true);
		if (fclose(csv) != 0)
			die("%s: write failed: %s", csv_path, strerror(errno));
		printf("(CSV written to %s)\n", csv_path);
	}
	server_stop(&srv);
	wasp_pool_destroy(pool);
	close(c.vm.console_fd);
	for (size_t i = 0; i < nrows; i++) {
		free(rows[i].lat.us);
		free(rows[i].handler.us);
	}
	return 0;
}
