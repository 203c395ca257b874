/*
 * test_auth: the receiver's limiter of failed authentications
 * (migrate/migrate_auth.c) on a simulated clock, so every turn, wait and
 * refusal is exact: the free failures, one look a second after them, 429
 * for a turn too far away, a right token clearing its address, failures
 * forgotten, addresses keyed by IPv4 and IPv6 /64, the log's budget, and
 * a full table. auth_test.sh checks the same against a real receiver.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ckpt.h"
#include "harness.h"
#include "migrate_internal.h"

#define S 1000000000ull

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, ip, &a.sin6_addr);
	return a;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* n failures from sa at time t (each admitted without a wait). */
static void fail_n(struct wasp_auth_limit *a, const struct sockaddr *sa, unsigned n, uint64_t t)
{
	unsigned long u;
	uint64_t retry;
	for (unsigned i = 0; i < n; i++) {
		CHECK(wasp_auth_limit_admit(a, sa, t, &retry) == 0, "failure %u waited", i);
		wasp_auth_limit_failed(a, sa, t, &u);
	}
}

static void free_then_turns(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(0);
	struct sockaddr_in x = v4("192.0.2.7");
	uint64_t t = 100 * S, retry;
	unsigned long u;
	fail_n(a, SA(x), WASP_AUTH_FREE_FAILURES, t);
	/* From now on one look a second: the next waits a whole interval. */
	int64_t w = wasp_auth_limit_admit(a, SA(x), t, &retry);
	CHECK(w == (int64_t)WASP_AUTH_INTERVAL_NS, "waits %lld ns", (long long)w);
	t += (uint64_t)w;
	wasp_auth_limit_failed(a, SA(x), t, &u);
	/* Sequential guesses: each one a second after the last. */
	for (int i = 0; i < 5; i++) {
		w = wasp_auth_limit_admit(a, SA(x), t, &retry);
		CHECK(w == (int64_t)WASP_AUTH_INTERVAL_NS, "guess %d waits %lld ns", i, (long long)w);
		t += (uint64_t)w;
		wasp_auth_limit_failed(a, SA(x), t, &u);
	}
	/* Another address is not held up. */
	struct sockaddr_in y = v4("192.0.2.8");
	CHECK(wasp_auth_limit_admit(a, SA(y), t, &retry) == 0, "another address waits");
	wasp_auth_limit_free(a);
}

static void burst_429(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(0);
	struct sockaddr_in x = v4("192.0.2.7");
	uint64_t t = 100 * S, retry = 0;
	fail_n(a, SA(x), WASP_AUTH_FREE_FAILURES, t);
	/* Many requests at one instant: turns at +1 s and +2 s, then 429. */
	CHECK(wasp_auth_limit_admit(a, SA(x), t, &retry) == (int64_t)(1 * S), "first turn");
	CHECK(wasp_auth_limit_admit(a, SA(x), t, &retry) == (int64_t)(2 * S), "second turn");
	for (int i = 0; i < 20; i++) {
		retry = 0;
		CHECK(wasp_auth_limit_admit(a, SA(x), t, &retry) == -1, "request %d was not refused", i);
		CHECK(retry == 3 * S, "retry in %llu ns", (unsigned long long)retry);
	}
	/* Refusals take no turn: a second later the next turn is +2 s. */
	CHECK(wasp_auth_limit_admit(a, SA(x), t + S, &retry) == (int64_t)(2 * S), "later turn");
	wasp_auth_limit_free(a);
}

static void right_clears(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(0);
	struct sockaddr_in x = v4("192.0.2.7");
	uint64_t t = 100 * S, retry;
	fail_n(a, SA(x), WASP_AUTH_FREE_FAILURES, t);
	int64_t w = wasp_auth_limit_admit(a, SA(x), t, &retry);
	CHECK(w > 0, "the right token's holder does not wait its turn (%lld)", (long long)w);
	wasp_auth_limit_ok(a, SA(x));
	CHECK(wasp_auth_limit_admit(a, SA(x), t, &retry) == 0, "a right token did not clear it");
	wasp_auth_limit_free(a);
}

static void forget(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(0), *b = wasp_auth_limit_create(0);
	struct sockaddr_in x = v4("192.0.2.7");
	uint64_t t = 100 * S, retry;
	fail_n(a, SA(x), WASP_AUTH_FREE_FAILURES - 1, t);
	fail_n(b, SA(x), WASP_AUTH_FREE_FAILURES - 1, t);
	/* One more failure just within the time counts with the others... */
	fail_n(a, SA(x), 1, t + WASP_AUTH_FORGET_NS);
	CHECK(wasp_auth_limit_admit(a, SA(x), t + WASP_AUTH_FORGET_NS, &retry) > 0, "forgotten too soon");
	/* ...just after it, alone. */
	fail_n(b, SA(x), 1, t + WASP_AUTH_FORGET_NS + 1);
	CHECK(wasp_auth_limit_admit(b, SA(x), t + WASP_AUTH_FORGET_NS + 1, &retry) == 0,
	      "not forgotten after %llu s", WASP_AUTH_FORGET_NS / S);
	wasp_auth_limit_free(a);
	wasp_auth_limit_free(b);
}

static void keys(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(0);
	uint64_t t = 100 * S, retry;
	/* One IPv6 /64 is one address, whatever its lower half. */
	struct sockaddr_in6 p1 = v6("2001:db8:1:2::1"), p2 = v6("2001:db8:1:2:ffff::9");
	struct sockaddr_in6 other = v6("2001:db8:1:3::1");
	fail_n(a, SA(p1), WASP_AUTH_FREE_FAILURES, t);
	CHECK(wasp_auth_limit_admit(a, SA(p2), t, &retry) > 0, "the same /64 is not held back");
	CHECK(wasp_auth_limit_admit(a, SA(other), t, &retry) == 0, "another /64 is held back");
	/* An IPv4-mapped address is its IPv4 address. */
	struct sockaddr_in x = v4("192.0.2.7");
	struct sockaddr_in6 m = v6("::ffff:192.0.2.7");
	fail_n(a, SA(x), WASP_AUTH_FREE_FAILURES, t);
	CHECK(wasp_auth_limit_admit(a, SA(m), t, &retry) > 0, "::ffff:192.0.2.7 is another address");
	/* A limit of its own; UINT_MAX: never held back. */
	struct wasp_auth_limit *b = wasp_auth_limit_create(2);
	fail_n(b, SA(x), 2, t);
	CHECK(wasp_auth_limit_admit(b, SA(x), t, &retry) > 0, "free_failures 2 not kept");
	wasp_auth_limit_free(b);
	b = wasp_auth_limit_create(UINT_MAX);
	fail_n(b, SA(x), 1000, t);
	wasp_auth_limit_free(b);
	wasp_auth_limit_free(a);
}

static void log_budget(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(UINT_MAX);
	uint64_t t = 100 * S;
	unsigned long u = 99;
	struct sockaddr_in x = v4("192.0.2.7");
	int logged = 0;
	for (int i = 0; i < 100; i++)
		logged += wasp_auth_limit_failed(a, SA(x), t, &u);
	CHECK(logged == WASP_AUTH_LOG_BURST, "%d of 100 failures at once logged", logged);
	/* One more line once the budget has refilled, counting the rest. */
	CHECK(!wasp_auth_limit_log(a, t + WASP_AUTH_LOG_EVERY_NS - 1, &u), "logged too soon");
	CHECK(wasp_auth_limit_failed(a, SA(x), t + WASP_AUTH_LOG_EVERY_NS, &u), "not logged after a while");
	CHECK(u == 100 - WASP_AUTH_LOG_BURST + 1, "%lu left out, expected %d", u,
	      100 - WASP_AUTH_LOG_BURST + 1);
	/* An hour of one failure a second: 10 a minute at most. */
	logged = 0;
	t += WASP_AUTH_LOG_EVERY_NS;
	for (int i = 1; i <= 3600; i++)
		logged += wasp_auth_limit_failed(a, SA(x), t + i * S, &u);
	CHECK(logged <= 60 * 10 + WASP_AUTH_LOG_BURST, "%d lines in an hour", logged);
	wasp_auth_limit_free(a);
}

static void eviction(void)
{
	struct wasp_auth_limit *a = wasp_auth_limit_create(0);
	uint64_t t = 100 * S, retry;
	struct sockaddr_in x = v4("198.51.100.1");
	fail_n(a, SA(x), WASP_AUTH_FREE_FAILURES, t);
	/* Many other addresses, later: the table stays bounded and the
	 * oldest entries go, but recent ones stay. */
	char ip[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof ip, "10.%d.%d.1", i / 250, i % 250);
		struct sockaddr_in y = v4(ip);
		fail_n(a, SA(y), 1, t + 1 + (uint64_t)i);
	}
	struct sockaddr_in last = v4("10.3.249.1");
	fail_n(a, SA(last), WASP_AUTH_FREE_FAILURES - 1, t + 2000);
	CHECK(wasp_auth_limit_admit(a, SA(last), t + 2000, &retry) > 0, "a recent address was forgotten");
	wasp_auth_limit_free(a);
}

/* The sender (wasp_xfer_open: preflight, then the stream's POST) with
 * WASP_CURL_VERBOSE=1 against a real listener: its trace shows the
 * header redacted and never the token, also from curl's words outside a
 * transfer (closing a kept connection). No KVM: nothing is restored. */
static void sender_trace(void)
{
	static const char token[] = "sender-trace-token-0123456789";
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	struct wasp_listen_opts lo = {.token = token, .restore = {.config = &cfg}};
	struct wasp_listener *l;
	MUST(wasp_listener_create(&lo, &l));
	char url[64], path[] = "/tmp/wasp-test-auth-XXXXXX";
	snprintf(url, sizeof url, "http://127.0.0.1:%u", wasp_listener_port(l));
	int fd = mkstemp(path), saved = dup(2);
	CHECK(fd >= 0 && saved >= 0, "temp file");
	unlink(path);
	fflush(stderr);
	dup2(fd, 2);
	setenv("WASP_CURL_VERBOSE", "1", 1);
	struct wasp_xfer_opts xo;
	wasp_xfer_opts_init(&xo);
	xo.token = token;
	struct wasp_xfer *x = NULL;
	int r = wasp_xfer_open(url, &xo, &x);
	wasp_xfer_free(x);
	unsetenv("WASP_CURL_VERBOSE");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK(r == 0, "wasp_xfer_open: %d", r);
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(strstr(buf, "> GET /migrations HTTP/1.1"), "no trace of the preflight: %s", buf);
	CHECK(strstr(buf, "> Authorization: Bearer <redacted>"), "no redacted header: %s", buf);
	CHECK(!strstr(buf, token), "the token is in the trace: %s", buf);
	wasp_listener_destroy(l);
}

static const struct test_case cases[] = {
	{"sender_trace", sender_trace},
	{"free_then_turns", free_then_turns}, {"burst_429", burst_429}, {"right_clears", right_clears},
	{"forget", forget},                   {"keys", keys},           {"log_budget", log_budget},
	{"eviction", eviction},
};

int main(int argc, char **argv)
{
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, NULL, 0, "", false);
}
