/*
 * test_listen: the migration receiver (migrate/migrate_listen.c) against
 * hostile or unlucky peers, driven through raw sockets against a real
 * listener in this process (so the ASan build sees every access).
 *
 *   test_listen ASM_DIR CASE
 *
 * Cases:
 *  files_after_trim   a files PUT left mid-body while its stream's POST is
 *                     dropped and the migration is forgotten behind 70
 *                     refused POSTs; the PUT's end must be refused, not
 *                     answered 200, and touch nothing freed
 *  header_deadline    a client trickling header lines, never idle, is cut
 *                     off at the header deadline (the idle timeout never
 *                     fires for it)
 *  slow_one_address   200 trickling connections from one address: a
 *                     request with the token from another is answered
 *                     while they are still open and trickling
 *  slow_many_addresses the same from 200 addresses (127.0.0.2-201)
 *  replay             the same checkpoint posted again, without or with
 *                     another Wasp-Migration-Id, is refused (409)
 *  replay_allowed     ... unless the listener allows it
 *  replay_after_refusal a checkpoint that was refused (it never ran) may
 *                     come again
 *
 * Waits are for observable progress, each bounded only as a guard
 * against hangs. Only the replay cases need KVM (their checkpoints run).
 * Exit 0 pass, 1 fail, 77 skip (no /dev/kvm).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "harness.h"
#include "migrate.h"
#include "vmm.h"

#define TOKEN "listen-test-token"
#define HANG_GUARD_MS 30000

static const char *asm_dir;
static struct wasp_listener *listener;
static unsigned port;
static struct wasp_config cfg;
static char box[64];
static FILE *log_file;
static atomic_int starts, fail_starts;

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int start_cb(void *opaque, struct wasp_virtine *v, const char *id)
{
	(void)opaque, (void)id;
	wasp_virtine_destroy(v); /* "runs": it is ours to end */
	if (atomic_load(&fail_starts) > 0) {
		atomic_fetch_sub(&fail_starts, 1);
		return wasp_fail(-EIO, "test: this start fails");
	}
	atomic_fetch_add(&starts, 1);
	return 0;
}

/* The listener on 127.0.0.1 with a sandbox of its own; o may set limits. */
static void listen_with(struct wasp_listen_opts o)
{
	wasp_config_init(&cfg);
	snprintf(box, sizeof box, "/tmp/wasp-listen-test-XXXXXX");
	if (!mkdtemp(box)) {
		perror("mkdtemp");
		exit(1);
	}
	cfg.sandbox_dir = box;
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.no_stdin = true;
	log_file = getenv("TEST_LISTEN_LOG") ? stderr : tmpfile();
	o.addr = "127.0.0.1";
	o.token = TOKEN;
	o.restore.config = &cfg;
	o.restore.threads = 1;
	o.files_dir = box;
	o.start = start_cb;
	o.log = log_file;
	o.log_prefix = "test_listen";
	MUST(wasp_listener_create(&o, &listener));
	port = wasp_listener_port(listener);
}

static void unlisten(void)
{
	wasp_listener_destroy(listener);
	listener = NULL;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", box);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", box);
}

/* Whether the listener's log holds `text`. */
static bool logged(const char *text)
{
	char line[1024];
	bool found = false;
	fflush(log_file);
	rewind(log_file);
	while (!found && fgets(line, sizeof line, log_file))
		found = strstr(line, text) != NULL;
	fseek(log_file, 0, SEEK_END);
	if (!found) {
		fprintf(stderr, "the listener's log lacks \"%s\":\n", text);
		rewind(log_file);
		while (fgets(line, sizeof line, log_file))
			fputs(line, stderr);
		fseek(log_file, 0, SEEK_END);
	}
	return found;
}

/* A TCP connection to the listener from source address `from` (NULL:
 * the kernel's choice, 127.0.0.1). */
static int conn_from(const char *from)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		perror("socket");
		exit(1);
	}
	if (from) {
		struct sockaddr_in b = {.sin_family = AF_INET};
		inet_pton(AF_INET, from, &b.sin_addr);
		if (bind(s, (struct sockaddr *)&b, sizeof b) < 0) {
			perror("bind");
			exit(1);
		}
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("connect");
		exit(1);
	}
	return s;
}

/* Sends all of buf; false when the peer is gone. */
static bool send_all(int s, const void *buf, size_t len)
{
	size_t sent = 0;
	while (sent < len) {
		ssize_t n = send(s, (const char *)buf + sent, len - sent, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		sent += (size_t)n;
	}
	return true;
}
static bool send_str(int s, const char *str)
{
	return send_all(s, str, strlen(str));
}

/* Reads until the server closes (at most timeout_ms); returns the HTTP
 * status of what came (0: nothing, -1: the server did not close). */
static int read_answer(int s, char *out, size_t cap, unsigned timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;
	size_t got = 0;
	int closed = 0;
	while (!closed) {
		uint64_t t = now_ms();
		if (t >= end)
			break;
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, (int)(end - t)) <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(s, buf, sizeof buf, 0);
		if (n <= 0) {
			closed = 1;
			break;
		}
		size_t k = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;
		memcpy(out + got, buf, k);
		got += k;
	}
	out[got] = '\0';
	if (!closed)
		return -1;
	int code = 0;
	if (sscanf(out, "HTTP/1.%*d %d", &code) != 1)
		code = 0;
	return code;
}

/* One whole request (with "Connection: close") on a fresh connection. */
static int request_from(const char *from, const char *req, const void *body, size_t blen,
			char *out, size_t cap)
{
	int s = conn_from(from);
	int code = 0;
	if (send_str(s, req) && (!blen || send_all(s, body, blen)))
		code = read_answer(s, out, cap, HANG_GUARD_MS);
	close(s);
	return code;
}

static int get(const char *path, char *out, size_t cap)
{
	char req[512];
	snprintf(req, sizeof req,
		 "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		 "\r\nConnection: close\r\n\r\n",
		 path);
	return request_from(NULL, req, NULL, 0, out, cap);
}

/* POSTs body (Content-Length), with a Wasp-Migration-Id when id is set. */
static int post(const char *id, const void *body, size_t len, char *out, size_t cap)
{
	char req[512];
	snprintf(req, sizeof req,
		 "POST /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		 "\r\n%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
		 id ? "Wasp-Migration-Id: " : "", id ? id : "", id ? "\r\n" : "", len);
	return request_from(NULL, req, body, len, out, cap);
}

/* Waits until GET /migrations/ID's answer holds `text`. */
static bool status_says(const char *id, const char *text)
{
	char path[64], out[2048];
	snprintf(path, sizeof path, "/migrations/%s", id);
	for (uint64_t end = now_ms() + HANG_GUARD_MS; now_ms() < end; usleep(20000)) {
		get(path, out, sizeof out);
		if (strstr(out, text))
			return true;
	}
	fprintf(stderr, "GET %s: %s\n", path, out);
	return false;
}

/* ---- use after free: a files PUT outliving its migration ---------------------- */

static void files_after_trim(void)
{
	listen_with((struct wasp_listen_opts){0});
	const char *id = "0123456789abcdef0123456789abcdef";
	char out[4096], req[512];

	/* The stream: headers and the magic, then nothing. */
	int ps = conn_from(NULL);
	snprintf(req, sizeof req,
		 "POST /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		 "\r\nWasp-Migration-Id: %s\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nWASPCKPT\r\n",
		 id);
	CHECK(send_str(ps, req), "POST");
	CHECK(status_says(id, "\"receiving\""), "the stream is not being received");

	/* Its files: headers and the first line of a bundle, then nothing. */
	static const char bundle_head[] = "WASPFILES 1\n", bundle_tail[] = "E 0 0\n";
	int fs = conn_from(NULL);
	snprintf(req, sizeof req,
		 "PUT /migrations/%s/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 id, strlen(bundle_head) + strlen(bundle_tail), bundle_head);
	CHECK(send_str(fs, req), "PUT");
	/* A second PUT is refused once the first one is under way. */
	snprintf(req, sizeof req,
		 "PUT /migrations/%s/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		 "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		 id);
	bool coming = false;
	for (uint64_t end = now_ms() + HANG_GUARD_MS; !coming && now_ms() < end; usleep(20000))
		coming = request_from(NULL, req, NULL, 0, out, sizeof out) == 409 &&
			 strstr(out, "already coming");
	CHECK(coming, "the first PUT was never taken: %s", out);

	/* The stream's connection drops: the migration is refused. */
	close(ps);
	CHECK(status_says(id, "\"refused\""), "the dropped stream was not refused");

	/* Enough refused migrations that it is forgotten. */
	int refused = 0;
	for (int i = 0; i < 70; i++)
		refused += post(NULL, "hello", 5, out, sizeof out) == 422;
	CHECK(refused == 70, "only %d of 70 garbage POSTs were refused with 422", refused);
	CHECK(get("/migrations/0123456789abcdef0123456789abcdef", out, sizeof out) == 404,
	      "the migration is still known: %s", out);

	/* The PUT ends now: it belongs to a migration that was refused. */
	CHECK(send_str(fs, bundle_tail), "the rest of the PUT");
	int code = read_answer(fs, out, sizeof out, HANG_GUARD_MS);
	close(fs);
	CHECK(code != 200, "the files of a refused migration were taken (HTTP 200): %s", out);
	CHECK(code == 409 && strstr(out, "\"status\":\"refused\""),
	      "not a refusal (HTTP %d): %s", code, out);
	CHECK(get("/migrations", out, sizeof out) == 200, "the listener stopped serving: %s", out);
	unlisten();
}

/* ---- slow headers -------------------------------------------------------------- */

static void header_deadline(void)
{
	listen_with((struct wasp_listen_opts){.header_timeout_ns = 1000000000ull});
	int s = conn_from(NULL);
	CHECK(send_str(s, "GET /migrations HTTP/1.1\r\nHost: x\r\n"), "the request line");
	/* A header line every 100 ms: never idle, never done. */
	bool cut = false;
	for (uint64_t end = now_ms() + HANG_GUARD_MS; !cut && now_ms() < end;) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 100) > 0) {
			char b[512];
			cut = recv(s, b, sizeof b, 0) <= 0;
		} else if (!send_str(s, "X-Trickle: 1\r\n")) {
			cut = true;
		}
	}
	close(s);
	CHECK(cut, "a trickling client was never cut off");
	CHECK(logged("no whole request with the token within 1 s"), "the log does not say why");
	char out[1024];
	CHECK(get("/migrations", out, sizeof out) == 200, "the listener stopped serving: %s", out);
	unlisten();
}

#define ATTACKERS 200

static int attackers[ATTACKERS];
static atomic_bool trickling;
static atomic_int trickles;

/* Each attacker connection still open gets one more header line every
 * 100 ms. */
static void *trickle_main(void *arg)
{
	(void)arg;
	while (atomic_load(&trickling)) {
		for (int i = 0; i < ATTACKERS; i++)
			if (attackers[i] >= 0 && !send_str(attackers[i], "X-Trickle: 1\r\n")) {
				close(attackers[i]);
				attackers[i] = -1;
			}
		atomic_fetch_add(&trickles, 1);
		usleep(100000);
	}
	return NULL;
}

/* Whether attacker connection i is still open: the server has neither
 * closed nor answered it. */
static bool attacker_open(int i)
{
	if (attackers[i] < 0)
		return false;
	struct pollfd p = {.fd = attackers[i], .events = POLLIN | POLLRDHUP};
	return poll(&p, 1, 0) == 0;
}

static void slow_headers(bool many_addresses)
{
	/* A header deadline far beyond the test: only the limits act here. */
	listen_with((struct wasp_listen_opts){.header_timeout_ns = 600 * 1000000000ull});
	for (int i = 0; i < ATTACKERS; i++) {
		char from[32];
		snprintf(from, sizeof from, "127.0.0.%d", many_addresses ? 2 + i : 2);
		attackers[i] = conn_from(from);
		if (!send_str(attackers[i], "GET /migrations HTTP/1.1\r\nHost: x\r\n")) {
			close(attackers[i]);
			attackers[i] = -1;
		}
	}
	atomic_store(&trickling, true);
	pthread_t t;
	pthread_create(&t, NULL, trickle_main, NULL);
	/* Let them trickle a little first. */
	for (int base = atomic_load(&trickles); atomic_load(&trickles) < base + 3;)
		usleep(10000);

	char out[1024];
	uint64_t t0 = now_ms();
	int code = get("/migrations", out, sizeof out);
	printf("the request with the token was answered in %" PRIu64 " ms\n", now_ms() - t0);
	int base = atomic_load(&trickles);
	CHECK(code == 200, "the request with the token was not answered (HTTP %d): %s", code, out);
	/* The attackers outlived the answer: still open, still trickling. */
	while (atomic_load(&trickles) < base + 2)
		usleep(10000);
	int open = 0;
	for (int i = 0; i < ATTACKERS; i++)
		open += attacker_open(i);
	printf("%d of %d trickling connections still open after the answer\n", open, ATTACKERS);
	CHECK(open > 0, "no attacker is still connected: the test proved nothing");
	atomic_store(&trickling, false);
	pthread_join(t, NULL);
	for (int i = 0; i < ATTACKERS; i++)
		if (attackers[i] >= 0)
			close(attackers[i]);
	unlisten();
}

static void slow_one_address(void)
{
	slow_headers(false);
}

static void slow_many_addresses(void)
{
	slow_headers(true);
}

/* ---- replays ------------------------------------------------------------------ */

/* A checkpoint of a stopped virtine, in a buffer. */
static void checkpoint(void **buf, size_t *len)
{
	struct wasp_config c;
	struct wasp_virtine *v;
	char path[4096];
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("SKIP: /dev/kvm is not available (%s)\n", strerror(errno));
		exit(77);
	}
	wasp_config_init(&c);
	c.mem_size = 2 << 20;
	c.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	c.no_stdin = true;
	MUST(wasp_virtine_create(&c, &v));
	snprintf(path, sizeof path, "%s/exit7.bin", asm_dir);
	MUST(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO));
	MUST(wasp_ckpt_save_buffer(v, NULL, buf, len, NULL));
	wasp_virtine_destroy(v);
	close(c.console_fd);
}

static void replay_case(bool allow, bool refuse_first)
{
	listen_with((struct wasp_listen_opts){.allow_replay = allow});
	void *ck;
	size_t len;
	char out[4096];
	checkpoint(&ck, &len);
	if (refuse_first) {
		atomic_store(&fail_starts, 1);
		int code = post(NULL, ck, len, out, sizeof out);
		CHECK(code == 500, "a failing start: HTTP %d: %s", code, out);
	}
	int code = post(NULL, ck, len, out, sizeof out);
	CHECK(code == 200, "the first time: HTTP %d: %s", code, out);
	const char *ids[] = {NULL, "00000000000000000000000000000aaa"};
	for (int i = 0; i < 2; i++) {
		code = post(ids[i], ck, len, out, sizeof out);
		if (allow) {
			CHECK(code == 200, "again (%s) with replays allowed: HTTP %d: %s",
			      ids[i] ? "another id" : "no id", code, out);
		} else {
			CHECK(code == 409 && strstr(out, "was already started here"),
			      "again (%s): HTTP %d: %s", ids[i] ? "another id" : "no id", code, out);
		}
	}
	CHECK(atomic_load(&starts) == (allow ? 3 : 1), "%d starts", atomic_load(&starts));
	if (!allow)
		CHECK(logged("was already started here"), "the log does not say why");
	CHECK(get("/migrations", out, sizeof out) == 200, "the listener stopped serving: %s", out);
	free(ck);
	unlisten();
}

static void replay(void)
{
	replay_case(false, false);
}

static void replay_allowed(void)
{
	replay_case(true, false);
}

static void replay_after_refusal(void)
{
	replay_case(false, true);
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		{"files_after_trim", files_after_trim},
		{"header_deadline", header_deadline},
		{"slow_one_address", slow_one_address},
		{"slow_many_addresses", slow_many_addresses},
		{"replay", replay},
		{"replay_allowed", replay_allowed},
		{"replay_after_refusal", replay_after_refusal},
	};
	const char **vars[] = {&asm_dir};
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, vars, 1, "ASM_DIR ", false);
}
