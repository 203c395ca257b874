/*
 * test_linux.c: static Linux programs through the library (docs/linux.md):
 * a pool whose image is a Linux program serving calls (every call from the
 * snapshot: its globals, heap and mappings as they were), a checkpoint of
 * a running program restored in memory, and a hostile state refused.
 *
 *   test_linux SERVE_GLIBC SERVE_MUSL COUNTER CASE
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>

#include "ckpt.h"
#include "harness.h"

static const char *serve_glibc, *serve_musl, *counter;

/* What serve.c answers for `in` in its first call after the snapshot. */
static size_t expected(const char *in, char *out, size_t cap)
{
	unsigned sum = 0;
	size_t len = strlen(in);
	for (size_t i = 0; i < len; i++)
		sum = sum * 31 + (unsigned)(unsigned char)in[i] * 2654435761u;
	size_t n = (size_t)snprintf(out, cap, "calls=1 len=%zu sum=%u ", len, sum);
	for (size_t i = 0; i < len && n + 1 < cap; i++)
		out[n++] = (char)toupper((unsigned char)in[i]);
	return n;
}

/* The program from its path, or (in_memory) its bytes handed over. */
static void pool_of(const char *image, bool in_memory)
{
	struct wasp_pool_config c;
	struct wasp_pool *p;
	wasp_pool_config_init(&c);
	void *bytes = NULL;
	if (in_memory) {
		FILE *f = fopen(image, "rb");
		MUST(f ? 0 : -1);
		bytes = malloc(8 << 20);
		c.image_len = fread(bytes, 1, 8 << 20, f);
		fclose(f);
		c.image = bytes;
	} else {
		c.image_path = image;
	}
	c.vm.mem_size = 64 << 20;
	c.size = 2;
	c.call_timeout_ns = 20ull * 1000000000ull;
	c.init_timeout_ns = 60ull * 1000000000ull;
	MUST(wasp_pool_create(&c, &p));
	struct wasp_pool_stats st;
	wasp_pool_stats(p, &st);
	CHECK(st.snapshot, "the pool starts calls at the program's snapshot");
	for (int i = 0; i < 40; i++) {
		char in[64], want[256], got[256];
		snprintf(in, sizeof in, "call %d of the pool %s", i, i % 3 ? "x" : "yz");
		size_t wn = expected(in, want, sizeof want);
		struct wasp_call_info info;
		int n = wasp_call(p, in, strlen(in), got, sizeof got, &info);
		CHECK(n == (int)wn && !memcmp(got, want, wn), "call %d: got %d '%.*s', want '%.*s'", i,
		      n, n > 0 ? n : 0, got, (int)wn, want);
	}
	wasp_pool_destroy(p);
	free(bytes);
}

static void pool_glibc(void)
{
	pool_of(serve_glibc, false);
}

static void pool_musl(void)
{
	pool_of(serve_musl, false);
}

/* The same program handed to the pool as bytes, not a path. */
static void pool_memory(void)
{
	pool_of(serve_glibc, true);
}

/* A running program checkpointed into memory at an exit, restored into a
 * new virtine, and run on: its output from there on is the output of the
 * uninterrupted run from there on. */
static void ckpt_roundtrip(void)
{
	char dir[] = "/tmp/wasp-linux-XXXXXX";
	MUST(mkdtemp(dir) ? 0 : -1);
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = 64 << 20;
	cfg.sandbox_dir = dir;
	cfg.no_stdin = true; /* counter's gates read end of file and go on */
	char out1[] = "/tmp/wasp-linux-out1-XXXXXX", out2[] = "/tmp/wasp-linux-out2-XXXXXX";
	int o1 = mkstemp(out1), o2 = mkstemp(out2);
	MUST(o1 >= 0 && o2 >= 0 ? 0 : -1);
	cfg.console_fd = o1;
	struct wasp_virtine *v, *w;
	MUST(wasp_virtine_create(&cfg, &v));
	MUST(wasp_virtine_allow(v, "all"));
	const char *argv[] = {counter, "40", NULL};
	MUST(wasp_virtine_load_linux(v, counter, argv, NULL));
	CHECK(wasp_virtine_is_linux(v), "loaded as a Linux program");

	/* Run until some output exists; a run the deadline ends stops at an
	 * exit boundary, where a checkpoint may be taken. */
	struct wasp_exit e = {0};
	while (wasp_virtine_console_bytes(v) < 200) {
		MUST(wasp_virtine_run(v, 20000000, &e));
		if (e.reason != WASP_EXIT_TIMEOUT)
			break;
	}
	CHECK(e.reason == WASP_EXIT_TIMEOUT, "the program ran to its end before a checkpoint (%s)",
	      wasp_exit_reason_name(e.reason));
	uint64_t before = wasp_virtine_console_bytes(v);

	char ck[] = "/tmp/wasp-linux-ckpt-XXXXXX";
	int cfd = mkstemp(ck);
	MUST(cfd >= 0 ? 0 : -1);
	unlink(ck);
	struct wasp_sink sink = wasp_sink_fd(&cfd);
	MUST(wasp_ckpt_save(v, NULL, &sink, NULL));
	lseek(cfd, 0, SEEK_SET);
	struct wasp_restore_opts ro = {0};
	cfg.console_fd = o2;
	ro.config = &cfg;
	struct wasp_source src = wasp_source_fd(&cfd);
	MUST(wasp_ckpt_restore(&ro, &src, &w, NULL));
	close(cfd);
	CHECK(wasp_virtine_is_linux(w), "restored as a Linux program");
	struct wasp_linux_state a, b;
	MUST(wasp_virtine_linux_get(v, &a));
	MUST(wasp_virtine_linux_get(w, &b));
	CHECK(a.brk == b.brk && a.nmaps == b.nmaps && a.stack_top == b.stack_top,
	      "personality restored: brk %llx/%llx, maps %u/%u", (unsigned long long)a.brk,
	      (unsigned long long)b.brk, a.nmaps, b.nmaps);

	/* Both go on to the end: the same bytes from the checkpoint on. */
	struct wasp_exit e1, e2;
	MUST(wasp_virtine_run(v, 0, &e1));
	MUST(wasp_virtine_run(w, 0, &e2));
	CHECK(e1.reason == WASP_EXIT_EXITED && e1.code == 0, "original ends: %s %lld",
	      wasp_exit_reason_name(e1.reason), (long long)e1.code);
	CHECK(e2.reason == WASP_EXIT_EXITED && e2.code == 0, "restored ends: %s %lld",
	      wasp_exit_reason_name(e2.reason), (long long)e2.code);
	off_t n1 = lseek(o1, 0, SEEK_END), n2 = lseek(o2, 0, SEEK_END);
	CHECK(n1 > (off_t)before && n2 == n1 - (off_t)before, "output sizes %lld = %llu + %lld",
	      (long long)n1, (unsigned long long)before, (long long)n2);
	if (n2 > 0 && n2 == n1 - (off_t)before) {
		char *x = malloc((size_t)n2), *y = malloc((size_t)n2);
		CHECK(pread(o1, x, (size_t)n2, (off_t)before) == n2 && pread(o2, y, (size_t)n2, 0) == n2 &&
		      !memcmp(x, y, (size_t)n2), "the restored run printed what the original did");
		free(x);
		free(y);
	}
	wasp_virtine_destroy(v);
	wasp_virtine_destroy(w);
	close(o1);
	close(o2);
	unlink(out1);
	unlink(out2);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

/* A personality that could not have been saved is refused whole. */
static void bad_state(void)
{
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = 64 << 20;
	struct wasp_virtine *v;
	MUST(wasp_virtine_create(&cfg, &v));
	const char *argv[] = {counter, NULL};
	MUST(wasp_virtine_load_linux(v, counter, argv, NULL));
	struct wasp_linux_state st, bad;
	MUST(wasp_virtine_linux_get(v, &st));
	bad = st;
	bad.stack_top = 1ull << 40;
	CHECK(wasp_virtine_linux_set(v, &bad) == -EINVAL, "stack beyond memory refused");
	bad = st;
	bad.brk = st.brk_start - 4096;
	CHECK(wasp_virtine_linux_set(v, &bad) == -EINVAL, "brk below its start refused");
	struct wasp_linux_map m[2] = {{0x3000000, 0x2000, 3, 0x22}, {0x3001000, 0x1000, 3, 0x22}};
	bad = st;
	bad.maps = m;
	bad.nmaps = 2;
	CHECK(wasp_virtine_linux_set(v, &bad) == -EINVAL, "overlapping mappings refused");
	m[0].start = 0x1000;
	bad.nmaps = 1;
	CHECK(wasp_virtine_linux_set(v, &bad) == -EINVAL, "a mapping over the page tables refused");
	struct wasp_linux_state now;
	MUST(wasp_virtine_linux_get(v, &now));
	CHECK(now.brk == st.brk && now.nmaps == st.nmaps, "nothing changed by the refusals");
	wasp_virtine_destroy(v);
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		{"pool_glibc", pool_glibc},
		{"pool_musl", pool_musl},
		{"pool_memory", pool_memory},
		{"ckpt_roundtrip", ckpt_roundtrip},
		{"bad_state", bad_state},
	};
	const char **vars[] = {&serve_glibc, &serve_musl, &counter};
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, vars, 3,
			 "SERVE_GLIBC SERVE_MUSL COUNTER ", true);
}
