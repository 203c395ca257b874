/*
 * fuzz_http_listen: the migration receiver's request handling, through a
 * real libmicrohttpd instance in this process (wasp_listener_create on
 * 127.0.0.1, a port of its own, token "fuzz-token"). Each input is sent
 * raw on a fresh TCP connection, as whatever a peer may send: request
 * line, headers (token or not), a body of fixed length or chunked, which
 * for POST /migrations goes through the bounded queue into a real restore
 * on KVM. The connection is then half-closed and the answer read (at most
 * 20 s). Whatever came back must be HTTP. Every 32 inputs, and at the
 * end, a plain status request must still be answered: the receiver may
 * refuse anything, but never stop serving.
 *
 * An input that begins with "WASPSEQ1" is a sequence over several
 * connections instead, for what one connection cannot show (a request
 * outliving its migration, tests/fuzz/regressions/http_listen/): steps of
 * [op, conn, len (u16 little-endian), len bytes], conn taken modulo 4:
 *   'o' open connection conn      's' send the bytes on it
 *   'c' close it                  'r' half-close it, read its answer
 *   'x' send the bytes as a whole request on conn + 1 fresh connections,
 *       reading each answer (at most 300 in all)
 *   'z' sleep len ms (at most 1000, 2000 in all): time for the
 *       receiver's threads
 * Every answer read must be HTTP, within 15 s. At most 64 steps, none
 * begun after 8 s, so a sequence stays within libFuzzer's -timeout=25.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "migrate.h"

#define TOKEN "fuzz-token"

static struct wasp_listener *listener;
static unsigned port;
static struct wasp_config cfg;
static const char *files_dir;
static unsigned long inputs;

static int start(void *opaque, struct wasp_virtine *v, const char *id)
{
	(void)opaque, (void)id;
	wasp_virtine_destroy(v); /* "runs": it is ours to end */
	return 0;
}

static void stop(void)
{
	wasp_listener_destroy(listener);
	listener = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	wasp_config_init(&cfg);
	cfg.sandbox_dir = fuzz_tmpdir("listen-box");
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.no_stdin = true;
	files_dir = cfg.sandbox_dir;
	struct wasp_listen_opts o = {
		.addr = "127.0.0.1",
		.token = TOKEN,
		.restore = {.config = &cfg, .threads = 1},
		.files_dir = files_dir,
		.start = start,
		.log = getenv("WASP_FUZZ_LOG") ? stderr : NULL,
		.log_prefix = "fuzz_http_listen",
		/* One checkpoint seed is sent in many forms, and mutated bodies
		 * keep their header's id: replays must reach the restore. */
		.allow_replay = true,
		/* A sequence holds several connections from this one address
		 * beside those the last inputs are still closing. */
		.max_connections_per_address = 64,
		/* Wrong tokens are inputs like any other: not slowed down. */
		.auth_free_failures = UINT_MAX,
	};
	if (wasp_listener_create(&o, &listener) < 0) {
		fprintf(stderr, "fuzz_http_listen: %s\n", wasp_last_error());
		abort();
	}
	port = wasp_listener_port(listener);
	atexit(stop);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int connect_listener(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("fuzz_http_listen: connect");
		abort(); /* the receiver must keep accepting */
	}
	return s;
}

/* Sends req, half-closes, reads the answer into out (up to cap - 1 bytes,
 * the rest is read and dropped) until the server closes or timeout_ms
 * passes. Returns the bytes kept, or -1 when the server never closed. */
static ssize_t exchange(const void *req, size_t len, char *out, size_t cap, unsigned timeout_ms)
{
	int s = connect_listener();
	uint64_t end = now_ms() + timeout_ms;
	size_t sent = 0, got = 0;
	bool wr_open = true;
	ssize_t result = -1;
	if (len == 0) {
		shutdown(s, SHUT_WR);
		wr_open = false;
	}
	for (;;) {
		uint64_t t = now_ms();
		if (t >= end)
			break;
		struct pollfd p = {.fd = s, .events = POLLIN | (wr_open ? POLLOUT : 0)};
		if (poll(&p, 1, (int)(end - t)) <= 0)
			continue;
		if (wr_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = send(s, (const char *)req + sent, len - sent,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				wr_open = false; /* the server closed: read its answer */
			if (sent == len) {
				shutdown(s, SHUT_WR);
				wr_open = false;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[4096];
			ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				result = (ssize_t)got;
				break;
			}
			if (n > 0 && got < cap - 1) {
				size_t k = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
				memcpy(out + got, buf, k);
				got += k;
			}
		}
	}
	out[got] = '\0';
	close(s);
	return result;
}

static void check_alive(void)
{
	static const char req[] = "GET /migrations HTTP/1.1\r\nHost: x\r\n"
				  "Authorization: Bearer " TOKEN "\r\nConnection: close\r\n\r\n";
	char out[1024];
	/* A migration still being wound up may hold it briefly (409). */
	for (int i = 0; i < 100; i++) {
		ssize_t n = exchange(req, sizeof req - 1, out, sizeof out, 10000);
		if (n > 0 && !strncmp(out, "HTTP/1.1 200", 12))
			return;
		if (n < 0 || strncmp(out, "HTTP/1.1 409", 12))
			break;
		usleep(100000);
	}
	fprintf(stderr, "fuzz_http_listen: the receiver stopped serving: \"%.200s\"\n", out);
	abort();
}

/* What came back on a connection: n bytes in out, or -1 when the server
 * never closed it within the bound (the caller's). */
static void check_http(const char *out, ssize_t n)
{
	if (n < 0) {
		fprintf(stderr, "fuzz_http_listen: no end to the answer in time\n");
		abort();
	}
	if (n > 0 && strncmp(out, "HTTP/1.", 7)) {
		fprintf(stderr, "fuzz_http_listen: an answer that is not HTTP: \"%.200s\"\n", out);
		abort();
	}
}

/* Reads s's answer until the server closes it (at most 15 s). */
static ssize_t read_until_closed(int s, char *out, size_t cap)
{
	uint64_t end = now_ms() + 15000;
	size_t got = 0;
	for (uint64_t t; (t = now_ms()) < end;) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, (int)(end - t)) <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			out[got] = '\0';
			return (ssize_t)got;
		}
		if (n > 0 && got < cap - 1) {
			size_t k = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
			memcpy(out + got, buf, k);
			got += k;
		}
	}
	out[got] = '\0';
	return -1;
}

static void run_sequence(const uint8_t *data, size_t size)
{
	int conns[4] = {-1, -1, -1, -1};
	char out[4096];
	unsigned exchanges = 0, slept_ms = 0;
	size_t at = 8;
	uint64_t last_start = now_ms() + 8000;
	for (int step = 0; step < 64 && size - at >= 4 && now_ms() < last_start; step++) {
		uint8_t op = data[at], n_conn = data[at + 1], ci = n_conn % 4;
		size_t len = data[at + 2] | (size_t)data[at + 3] << 8;
		at += 4;
		const uint8_t *bytes = data + at;
		if (op == 's' || op == 'x') {
			if (len > size - at)
				len = size - at;
			at += len;
		}
		switch (op) {
		case 'o':
			if (conns[ci] >= 0)
				close(conns[ci]);
			conns[ci] = connect_listener();
			break;
		case 's':
			if (conns[ci] >= 0) {
				/* The receiver may have closed it: that is its right. */
				struct pollfd p = {.fd = conns[ci], .events = POLLOUT};
				for (size_t sent = 0; sent < len && poll(&p, 1, 2000) > 0;) {
					ssize_t n = send(conns[ci], bytes + sent, len - sent,
							 MSG_NOSIGNAL | MSG_DONTWAIT);
					if (n < 0 && errno != EAGAIN && errno != EINTR)
						break;
					sent += n > 0 ? (size_t)n : 0;
				}
			}
			break;
		case 'c':
			if (conns[ci] >= 0)
				close(conns[ci]);
			conns[ci] = -1;
			break;
		case 'r':
			if (conns[ci] >= 0) {
				shutdown(conns[ci], SHUT_WR);
				check_http(out, read_until_closed(conns[ci], out, sizeof out));
				close(conns[ci]);
				conns[ci] = -1;
			}
			break;
		case 'x':
			for (unsigned i = 0; i <= n_conn && exchanges < 300 && now_ms() < last_start;
			     i++, exchanges++)
				check_http(out, exchange(bytes, len, out, sizeof out, 15000));
			break;
		case 'z':
			len = len < 1000 ? len : 1000;
			len = len < 2000 - slept_ms ? len : 2000 - slept_ms;
			slept_ms += (unsigned)len;
			usleep((useconds_t)len * 1000);
			break;
		default:
			step = 64;
		}
	}
	for (int i = 0; i < 4; i++)
		if (conns[i] >= 0)
			close(conns[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[4096];
	if (size >= 8 && !memcmp(data, "WASPSEQ1", 8)) {
		run_sequence(data, size);
		if (++inputs % 32 == 0) {
			check_alive();
			fuzz_empty_dir(files_dir);
		}
		return 0;
	}
	check_http(out, exchange(data, size, out, sizeof out, 20000));
	if (++inputs % 32 == 0) {
		check_alive();
		fuzz_empty_dir(files_dir);
	}
	return 0;
}
