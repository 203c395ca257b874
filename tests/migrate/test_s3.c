/*
 * test_s3.c: s3:// as a transport and a fetch source, against a real S3
 * server (Ceph RGW, started by scripts/s3-server.sh; tests/migrate/s3_test.sh
 * passes its address and keys in the environment, AWS_*, and its
 * directory in WASP_S3_DIR). No KVM needed: these are the bytes of a
 * checkpoint going to a bucket and back. Bucket "wasp" exists; "nobucket"
 * does not.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "ckpt.h"
#include "harness.h"
#include "migrate.h"

#define MIB (1u << 20)
#define PART (5u * MIB) /* S3's smallest part: many parts from little data */

static char *pattern(size_t len, unsigned seed)
{
	char *p = malloc(len ? len : 1);
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (char)x;
	}
	return p;
}

static void opts(struct wasp_xfer_opts *o, unsigned threads)
{
	wasp_xfer_opts_init(o);
	o->s3_part_size = PART;
	o->s3_threads = threads;
}

/* Writes len bytes of pattern(seed) to url in uneven pieces; returns the
 * verdict (and leaves the message in wasp_last_error()). */
static enum wasp_xfer_verdict put(const char *url, size_t len, unsigned seed, unsigned threads)
{
	struct wasp_xfer_opts o;
	struct wasp_xfer *x;
	enum wasp_xfer_verdict v = WASP_XFER_REFUSED;
	opts(&o, threads);
	if (wasp_xfer_open(url, &o, &x) < 0)
		return WASP_XFER_REFUSED;
	char *p = pattern(len, seed);
	size_t off = 0, step = 77777;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		if (wasp_xfer_write(x, p + off, n) < 0)
			break;
		off += n;
		step = step * 3 % 1000003 + 1;
	}
	if (off == len)
		wasp_xfer_commit(x, &v);
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", wasp_last_error());
	wasp_xfer_free(x);
	free(p);
	if (v != WASP_XFER_ACCEPTED)
		wasp_fail(-EIO, "%s", msg);
	return v;
}

/* Reads url whole: 0 with the bytes in *out and their count in *len, or -errno. */
static int get(const char *url, unsigned threads, char **out, size_t *len)
{
	struct wasp_xfer_opts o;
	struct wasp_fetch *f;
	opts(&o, threads);
	*out = NULL;
	*len = 0;
	int r = wasp_fetch_open(url, &o, &f);
	if (r < 0)
		return r;
	struct wasp_source src = wasp_fetch_source(f);
	size_t cap = MIB;
	char *buf = malloc(cap);
	ssize_t n;
	while ((n = src.read(src.ctx, buf + *len, cap - *len)) > 0) {
		*len += (size_t)n;
		if (*len == cap)
			buf = realloc(buf, cap *= 2);
	}
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", wasp_last_error());
	r = wasp_fetch_close(f);
	if (n < 0) {
		free(buf);
		return wasp_fail((int)n, "%s", msg);
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	return 0;
}

static bool same_as(const char *url, size_t len, unsigned seed, unsigned threads)
{
	char *got;
	size_t n;
	if (get(url, threads, &got, &n) < 0)
		return false;
	char *want = pattern(len, seed);
	bool ok = n == len && !memcmp(got, want, len);
	if (!ok)
		fprintf(stderr, "%s: %zu bytes back, %zu expected%s\n", url, n, len,
			n == len ? ", contents differ" : "");
	free(got);
	free(want);
	return ok;
}

/* Whether the message says `what` and none of the secrets. */
static bool says(const char *what)
{
	const char *m = wasp_last_error();
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	if (sk && *sk && strstr(m, sk)) {
		fprintf(stderr, "the message holds the secret key: %s\n", m);
		return false;
	}
	if (!strstr(m, what)) {
		fprintf(stderr, "message '%s' does not say '%s'\n", m, what);
		return false;
	}
	return true;
}

static void case_roundtrip(void)
{
	const size_t sizes[] = {0, 1, 4096, PART - 1, PART, PART + 1, 3 * PART, 17 * MIB + 123};
	for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		char url[128];
		for (unsigned th = 1; th <= 4; th += 3) {
			snprintf(url, sizeof url, "s3://wasp/rt/%zu-%u", sizes[i], th);
			CHECK(put(url, sizes[i], i + 1, th) == WASP_XFER_ACCEPTED, "put %s", url);
			CHECK(same_as(url, sizes[i], i + 1, th), "get %s", url);
			/* Read with another range layout than it was written. */
			CHECK(same_as(url, sizes[i], i + 1, 5 - th), "get %s with %u threads", url,
			      5 - th);
		}
	}
	/* A key with characters that need escaping in the URL. */
	const char *odd = "s3://wasp/odd dir/a+b=c&d%e~f\xc3\xa9.ckpt";
	CHECK(put(odd, 1000, 9, 2) == WASP_XFER_ACCEPTED, "put odd key");
	CHECK(same_as(odd, 1000, 9, 2), "get odd key");
}

/* A transfer given up (cancel, or freed uncommitted) leaves the object at
 * the key as it was, and no upload behind. */
static void case_abandon(void)
{
	const char *url = "s3://wasp/abandon";
	CHECK(put(url, 7 * MIB, 1, 2) == WASP_XFER_ACCEPTED, "put v1");
	for (int how = 0; how < 3; how++) {
		struct wasp_xfer_opts o;
		struct wasp_xfer *x;
		opts(&o, 2);
		MUST(wasp_xfer_open(url, &o, &x));
		char *p = pattern(12 * MIB, 2);
		/* Two parts handed to the workers, a third being filled. */
		CHECK(wasp_xfer_write(x, p, 12 * MIB) == 0, "write");
		if (how == 0) {
			wasp_xfer_cancel(x);
			enum wasp_xfer_verdict v;
			wasp_xfer_commit(x, &v);
			CHECK(v == WASP_XFER_REFUSED, "verdict after cancel: %d", v);
		} else if (how == 1) {
			wasp_xfer_cancel(x);
		}
		wasp_xfer_free(x);
		free(p);
		CHECK(same_as(url, 7 * MIB, 1, 2), "v1 after abandoning v2 (%d)", how);
	}
	/* Smaller than a part: one PUT, never started. */
	struct wasp_xfer_opts o;
	struct wasp_xfer *x;
	opts(&o, 2);
	MUST(wasp_xfer_open(url, &o, &x));
	char *p = pattern(1000, 3);
	CHECK(wasp_xfer_write(x, p, 1000) == 0, "write");
	wasp_xfer_free(x);
	free(p);
	CHECK(same_as(url, 7 * MIB, 1, 2), "v1 after abandoning a small v2");
}

static void case_errors(void)
{
	char *sk = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
	char *ak = strdup(getenv("AWS_ACCESS_KEY_ID"));
	char *got;
	size_t n;

	CHECK(put("s3://nobucket/k", 10, 1, 1) == WASP_XFER_REFUSED, "missing bucket, small");
	CHECK(says("the bucket does not exist"), "missing bucket");
	CHECK(put("s3://nobucket/k", 11 * MIB, 1, 2) == WASP_XFER_REFUSED, "missing bucket, big");
	CHECK(says("the bucket does not exist"), "missing bucket, multipart");
	CHECK(get("s3://wasp/no/such/object", 2, &got, &n) == -ENOENT, "missing object");
	CHECK(says("no such object"), "missing object");
	CHECK(get("s3://nobucket/k", 2, &got, &n) == -ENOENT, "missing bucket, get");
	CHECK(says("the bucket does not exist"), "missing bucket, get");

	setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789", 1);
	CHECK(put("s3://wasp/k", 10, 1, 1) == WASP_XFER_REFUSED, "wrong secret");
	CHECK(says("secret access key is wrong"), "wrong secret");
	CHECK(!strstr(wasp_last_error(), "wrong-secret-0123456789"), "secret in the message");
	CHECK(get("s3://wasp/rt/1-1", 1, &got, &n) == -EACCES, "wrong secret, get");
	CHECK(says("secret access key is wrong"), "wrong secret, get");
	setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
	setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEYID", 1);
	CHECK(put("s3://wasp/k", 10, 1, 1) == WASP_XFER_REFUSED, "unknown key id");
	CHECK(says("access key ID is not known"), "unknown key id");
	setenv("AWS_ACCESS_KEY_ID", ak, 1);

	struct wasp_xfer_opts o;
	struct wasp_xfer *x;
	wasp_xfer_opts_init(&o);
	const char *bad[] = {"s3://", "s3://wasp", "s3://wasp/", "s3://Bad_Bucket/k", "s3://ab/k",
			     "s3://wasp/a\nb"};
	for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(wasp_xfer_open(bad[i], &o, &x) == -EINVAL, "bad URL %u accepted", i);
	o.s3_endpoint = "ftp://127.0.0.1:1";
	CHECK(wasp_xfer_open("s3://wasp/k", &o, &x) == -EINVAL, "bad endpoint");
	CHECK(says("give http://HOST[:PORT]"), "bad endpoint");

	/* Nobody listening: retried, then refused with curl's reason. */
	o.s3_endpoint = "http://127.0.0.1:1";
	MUST(wasp_xfer_open("s3://wasp/k", &o, &x));
	enum wasp_xfer_verdict v;
	CHECK(wasp_xfer_write(x, "abc", 3) == 0, "write");
	wasp_xfer_commit(x, &v);
	CHECK(v == WASP_XFER_REFUSED, "no server: %d", v);
	CHECK(says("after 6 tries"), "no server");
	wasp_xfer_free(x);

	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK(wasp_xfer_open("s3://wasp/k", NULL, &x) == -EINVAL, "half the credentials");
	CHECK(says("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"), "half");
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("HOME", "/nonexistent", 1);
	CHECK(wasp_xfer_open("s3://wasp/k", NULL, &x) == -ENOKEY, "no credentials");
	CHECK(says("no S3 credentials"), "no credentials");
	setenv("AWS_PROFILE", "ghost", 1);
	CHECK(wasp_xfer_open("s3://wasp/k", NULL, &x) == -ENOKEY, "no such profile");
	CHECK(says("profile 'ghost'"), "no such profile");
	unsetenv("AWS_PROFILE");
	setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
	setenv("AWS_ACCESS_KEY_ID", ak, 1);
	free(sk);
	free(ak);
}

/* Credentials, region and endpoint from the shared files, as the AWS
 * tools read them, and their order. */
static void case_profiles(void)
{
	char dir[] = "/tmp/wasp-s3-profXXXXXX", cred[200], conf[200];
	MUST(mkdtemp(dir) ? 0 : -errno);
	char *sk = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
	char *ak = strdup(getenv("AWS_ACCESS_KEY_ID"));
	char *ep = strdup(getenv("AWS_ENDPOINT_URL"));
	snprintf(cred, sizeof cred, "%s/credentials", dir);
	snprintf(conf, sizeof conf, "%s/config", dir);
	FILE *f = fopen(cred, "w");
	fprintf(f, "[default]\naws_access_key_id = NOPE\naws_secret_access_key = nope\n\n"
		   "# the test's own\n[t]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		ak, sk);
	fclose(f);
	f = fopen(conf, "w");
	fprintf(f, "[default]\nregion = us-east-1\n[profile t]\nregion = us-east-1\ns3 =\n"
		   "  endpoint_url = %s\n  addressing_style = path\n[profile c]\n"
		   "aws_access_key_id = %s\naws_secret_access_key = %s\nendpoint_url = %s\n",
		ep, ak, sk, ep);
	fclose(f);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_ENDPOINT_URL");
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);

	/* [default] in the credentials file: wrong keys, and no endpoint in
	 * the config: AWS itself would be asked. The option points it here. */
	struct wasp_xfer_opts o;
	struct wasp_xfer *x;
	enum wasp_xfer_verdict v;
	opts(&o, 1);
	o.s3_endpoint = ep;
	MUST(wasp_xfer_open("s3://wasp/p", &o, &x));
	CHECK(wasp_xfer_write(x, "x", 1) == 0, "write");
	wasp_xfer_commit(x, &v);
	CHECK(v == WASP_XFER_REFUSED && says("access key ID is not known"), "default profile");
	wasp_xfer_free(x);

	/* [t]: keys in the credentials file, endpoint in its s3 block. */
	setenv("AWS_PROFILE", "t", 1);
	CHECK(put("s3://wasp/p", 3000, 4, 1) == WASP_XFER_ACCEPTED, "profile t");
	/* [profile c]: everything in the config file. */
	setenv("AWS_PROFILE", "c", 1);
	CHECK(same_as("s3://wasp/p", 3000, 4, 1), "profile c");
	/* The environment's keys come first. */
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	CHECK(put("s3://wasp/p", 10, 4, 1) == WASP_XFER_REFUSED && says("not known"), "env first");
	/* And AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL before the file. */
	setenv("AWS_ACCESS_KEY_ID", ak, 1);
	setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
	CHECK(put("s3://wasp/p", 10, 4, 1) == WASP_XFER_REFUSED && says("127.0.0.1"), "env endpoint");
	setenv("AWS_ENDPOINT_URL_S3", ep, 1);
	CHECK(put("s3://wasp/p", 10, 4, 1) == WASP_XFER_ACCEPTED, "AWS_ENDPOINT_URL_S3 first");
	unsetenv("AWS_ENDPOINT_URL_S3");
	setenv("AWS_ENDPOINT_URL", ep, 1);

	unlink(cred);
	unlink(conf);
	rmdir(dir);
	unsetenv("AWS_PROFILE");
	free(sk);
	free(ak);
	free(ep);
}

/* A restore reading an object that is replaced meanwhile fails instead
 * of mixing two checkpoints. */
static void case_changed(void)
{
	const char *url = "s3://wasp/changing";
	CHECK(put(url, 6 * PART, 1, 2) == WASP_XFER_ACCEPTED, "put v1");
	struct wasp_xfer_opts o;
	struct wasp_fetch *f;
	opts(&o, 1); /* one worker, two buffers: ranges 3.. wait for the reader */
	MUST(wasp_fetch_open(url, &o, &f));
	struct wasp_source src = wasp_fetch_source(f);
	char *buf = malloc(PART);
	CHECK(src.read(src.ctx, buf, PART) == (ssize_t)PART, "first range");
	CHECK(put(url, 6 * PART, 2, 2) == WASP_XFER_ACCEPTED, "put v2");
	ssize_t n;
	while ((n = src.read(src.ctx, buf, PART)) > 0)
		;
	CHECK(n == -ESTALE, "read on: %zd", n);
	CHECK(says("changed while it was being read"), "changed");
	CHECK(wasp_fetch_close(f) < 0, "close says it failed");
	free(buf);
}

struct par {
	unsigned i;
	bool ok;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	char url[64];
	size_t len = (size_t)(p->i % 8 + 1) * MIB + p->i * 1000;
	snprintf(url, sizeof url, "s3://wasp/par/%u", p->i);
	p->ok = put(url, len, p->i, 2) == WASP_XFER_ACCEPTED && same_as(url, len, p->i, 2);
	if (!p->ok)
		fprintf(stderr, "writer %u: %s\n", p->i, wasp_last_error());
	return NULL;
}

/* 64 writers into one bucket at once, then each reads its own back. */
static void case_parallel(void)
{
	pthread_t th[64];
	struct par ps[64];
	for (unsigned i = 0; i < 64; i++) {
		ps[i] = (struct par){.i = i};
		MUST(-pthread_create(&th[i], NULL, par_main, &ps[i]));
	}
	for (unsigned i = 0; i < 64; i++) {
		pthread_join(th[i], NULL);
		CHECK(ps[i].ok, "writer %u", i);
	}
}

/* kill -9 of a writer mid-upload: the key keeps its older object. */
static void case_kill_writer(void)
{
	const char *url = "s3://wasp/killed";
	CHECK(put(url, 2 * MIB, 1, 2) == WASP_XFER_ACCEPTED, "put v1");
	int pfd[2];
	MUST(pipe(pfd));
	pid_t pid = fork();
	if (pid == 0) {
		struct wasp_xfer_opts o;
		struct wasp_xfer *x;
		opts(&o, 2);
		if (wasp_xfer_open(url, &o, &x) < 0)
			_exit(1);
		char *p = pattern(4 * PART, 2);
		/* Four full parts: the upload is started and its first parts
		 * were handed on (the fourth write waits for a free buffer, so
		 * at least one part is at the server). */
		if (wasp_xfer_write(x, p, 4 * PART) < 0)
			_exit(1);
		if (write(pfd[1], "w", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	char c;
	CHECK(read(pfd[0], &c, 1) == 1, "the writer got going");
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st), "killed");
	CHECK(same_as(url, 2 * MIB, 1, 2), "v1 after the writer was killed");
	/* And a key that had no object has none. */
	char *got;
	size_t n;
	CHECK(get("s3://wasp/killed-new", 1, &got, &n) == -ENOENT, "no object");
}

/* The server dies mid-upload: the writer gets a refusal (not a hang,
 * not a crash), and once the server is back, no object is there. */
static void case_server_killed(void)
{
	const char *dir = getenv("WASP_S3_DIR"), *script = getenv("WASP_S3_SCRIPT");
	const char *url = "s3://wasp/server-killed";
	char cmd[600];
	MUST(dir && script ? 0 : -EINVAL);
	CHECK(put(url, 2 * MIB, 1, 1) == WASP_XFER_ACCEPTED, "put v1");
	struct wasp_xfer_opts o;
	struct wasp_xfer *x;
	enum wasp_xfer_verdict v;
	opts(&o, 1);
	MUST(wasp_xfer_open(url, &o, &x));
	char *p = pattern(4 * PART, 2);
	CHECK(wasp_xfer_write(x, p, 2 * PART) == 0, "write before");
	snprintf(cmd, sizeof cmd, "%s kill-gateway %s", script, dir);
	CHECK(system(cmd) == 0, "%s", cmd);
	int r = wasp_xfer_write(x, p + 2 * PART, 2 * PART);
	if (r == 0)
		wasp_xfer_commit(x, &v);
	else
		v = WASP_XFER_REFUSED;
	CHECK(v == WASP_XFER_REFUSED, "verdict %d", v);
	fprintf(stderr, "after the kill: %s\n", wasp_last_error());
	wasp_xfer_free(x);
	free(p);
	snprintf(cmd, sizeof cmd, "%s restart-gateway %s", script, dir);
	CHECK(system(cmd) == 0, "%s", cmd);
	CHECK(same_as(url, 2 * MIB, 1, 1), "v1 after the server died mid-upload");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE\n", argv[0]);
		return 2;
	}
	const char *c = argv[1];
	if (!getenv("AWS_ENDPOINT_URL") || !getenv("AWS_SECRET_ACCESS_KEY")) {
		fprintf(stderr, "run by tests/migrate/s3_test.sh, which starts the server\n");
		return 2;
	}
	if (!strcmp(c, "roundtrip"))
		case_roundtrip();
	else if (!strcmp(c, "abandon"))
		case_abandon();
	else if (!strcmp(c, "errors"))
		case_errors();
	else if (!strcmp(c, "profiles"))
		case_profiles();
	else if (!strcmp(c, "changed"))
		case_changed();
	else if (!strcmp(c, "parallel"))
		case_parallel();
	else if (!strcmp(c, "kill_writer"))
		case_kill_writer();
	else if (!strcmp(c, "server_killed"))
		case_server_killed();
	else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	return failures ? 1 : 0;
}
