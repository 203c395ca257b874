/*
 * bench_apps.c: wasp-bench-apps, the Wasp paper's application experiments
 * on the workloads of examples/workloads (docs/workloads.md), each row
 * against its baseline measured in the same run, rounds interleaved so
 * the hosts' drift touches every row alike:
 *
 *   1. Fig. 14, JavaScript virtines: one request (a Duktape heap, a small
 *      JavaScript function that base64-encodes a string, the result handed
 *      back) natively in this process and in virtines of fig14_js, from
 *      the program's start or from a snapshot, with or without tearing the
 *      heap down;                          ratio fig14_js_snapshot/native
 *   2. Sec. 6.4, crypto in a virtine: AES-128-CBC of one block of 16 B to
 *      8 KiB per call into a pool of `crypto --serve` (key and IV by
 *      value), against the same EVP calls made natively here, as
 *      `openssl speed` tables them; and one 16-byte call against the
 *      ring-3 exit floor;                  ratio aes_call/floor_ring3
 *   3. a compute-bound Lua script, the same build/examples/lua under
 *      wasp-run and natively;              ratio lua_compute/native
 *
 * Every answer is checked (base64 against a C encoder, ciphertext against
 * the native one, the Lua output byte for byte), never the time. A part
 * whose workload was not built (its Debian package missing) is skipped
 * with the reason.
 *
 * Usage: wasp-bench-apps [--quick] [--csv PATH] [--only js,aes,lua] [--js-bytes N]
 * Exit status: 0 done, 1 a step failed, 2 bad usage, 77 no usable
 * /dev/kvm (or no workload built).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_floor.h"
#include "bench_rows.h"
#include "vmm.h"

#if WASP_BENCH_HAVE_DUKTAPE
#include "fig14_js.h"
#endif
#if WASP_BENCH_HAVE_LIBCRYPTO
#include <openssl/evp.h>
#endif

extern char **environ;

struct params {
	int rounds;      /* rounds of every row */
	int js_per;      /* Fig. 14 requests per row and round */
	int aes_per;     /* virtine calls per block size and round */
	int aes_batch;   /* native calls timed together as one sample */
	int floor_iters; /* ring-3 exits per round */
	int lua_rounds;
	const char *lua_fib, *lua_sort;
};
static const struct params full = {.rounds = 5, .js_per = 40, .aes_per = 100, .aes_batch = 200,
				   .floor_iters = 2000, .lua_rounds = 5, .lua_fib = "32",
				   .lua_sort = "1000000"};
static const struct params quick = {.rounds = 2, .js_per = 5, .aes_per = 15, .aes_batch = 50,
				    .floor_iters = 200, .lua_rounds = 2, .lua_fib = "27",
				    .lua_sort = "100000"};
static struct params P;

/* Bounds on a run: generous, since the nested (emulated) KVM used to test
 * this is 10-60x slower than hardware. */
#define INIT_TIMEOUT_NS (120ull * 1000000000)
#define CALL_TIMEOUT_NS (30ull * 1000000000)

/* Per row, what the table shows beside the timings (CSV columns). */
struct extra {
	char name[48];
	size_t bytes;       /* AES: the block */
	double exits;       /* exits of one call (-1: not a virtine) */
	double reset_us;    /* the pool's mean reset (-1: none) */
	double reset_pages; /* pages per reset */
	double paper_us;    /* the paper's mean (-1: none) */
};
static struct extra extras[MAX_ROWS];
static size_t nextras;

static struct extra *extra(const char *name)
{
	for (size_t i = 0; i < nextras; i++)
		if (!strcmp(extras[i].name, name))
			return &extras[i];
	struct extra *x = &extras[nextras++];
	*x = (struct extra){.exits = -1, .reset_us = -1, .reset_pages = -1, .paper_us = -1};
	snprintf(x->name, sizeof x->name, "%s", name);
	return x;
}

static double mean(const struct row *r)
{
	double s = 0;
	for (size_t i = 0; i < r->n; i++)
		s += r->us[i];
	return r->n ? s / (double)r->n : 0;
}

/* The pools' parts (JavaScript, AES) are built only with their libraries. */
#if WASP_BENCH_HAVE_DUKTAPE || WASP_BENCH_HAVE_LIBCRYPTO
/* xorshift64: the bench's inputs, the same every run. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

#if WASP_BENCH_HAVE_LIBCRYPTO
static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}
#endif

/* ---- pools --------------------------------------------------------------- */

static struct wasp_pool *pool_new(const char *prog, const char *const *argv, bool snapshot)
{
	struct wasp_pool_config c;
	wasp_pool_config_init(&c);
	c.image_path = prog;
	c.argv = argv;
	c.vm.mem_size = 64u << 20;
	c.vm.no_stdin = true;
	c.snapshot = snapshot ? WASP_POOL_SNAPSHOT_AUTO : WASP_POOL_SNAPSHOT_OFF;
	c.size = 2;
	c.init_timeout_ns = INIT_TIMEOUT_NS;
	c.call_timeout_ns = CALL_TIMEOUT_NS;
	struct wasp_pool *p;
	int r = wasp_pool_create(&c, &p);
	if (r < 0)
		die("a pool of %s %s: %s", prog, argv[1], wasp_last_error());
	struct wasp_pool_stats s;
	wasp_pool_stats(p, &s);
	if (s.snapshot != snapshot)
		die("a pool of %s %s: snapshots are %s, wanted %s (WASP_NO_SNAPSHOT set?)", prog,
		    argv[1], s.snapshot ? "on" : "off", snapshot ? "on" : "off");
	return p;
}

/* One call, timed; the pool is full and quiet first (untimed), so every
 * call finds a pristine virtine ready and no reset runs beside it. The
 * result's length. */
static int timed_call(struct wasp_pool *p, const void *in, size_t n, void *out, size_t cap,
		      uint64_t *ns, const char *what)
{
	check(wasp_pool_fill(p), "pool fill");
	uint64_t t0 = now_ns();
	int len = wasp_call(p, in, n, out, cap, NULL);
	*ns = now_ns() - t0;
	if (len < 0)
		die("%s: %s", what, wasp_last_error());
	return len;
}

/* The exits one call costs, counted on a call made by hand (get, argument,
 * run to the result, put), untimed. */
static double call_exits(struct wasp_pool *p, const void *in, size_t n, const char *what)
{
	struct wasp_virtine *v;
	struct wasp_stats a, b;
	struct wasp_exit e;
	check(wasp_pool_fill(p), "pool fill");
	check(wasp_pool_get(p, &v), "pool get");
	check(wasp_pool_set_arg(p, v, in, n), "pool argument");
	wasp_virtine_stats(v, &a);
	check(wasp_virtine_run(v, CALL_TIMEOUT_NS, &e), what);
	wasp_virtine_stats(v, &b);
	size_t len;
	bool has_ret = wasp_virtine_ret(v, &len) != NULL;
	bool ok = (e.reason == WASP_EXIT_HYPERCALL || (e.reason == WASP_EXIT_EXITED && e.code == 0)) &&
		  has_ret;
	wasp_pool_put(p, v);
	if (!ok)
		die("%s: the call ended %s (code %lld) with%s a result", what,
		    wasp_exit_reason_name(e.reason), (long long)e.code, has_ret ? "" : "out");
	return (double)(b.exits - a.exits);
}

/* The pool's resets so far (all made: the pool is filled first). */
struct resets {
	uint64_t n, ns, pages;
};
static struct resets resets_now(struct wasp_pool *p)
{
	struct wasp_pool_stats s;
	check(wasp_pool_fill(p), "pool fill");
	wasp_pool_stats(p, &s);
	return (struct resets){s.resets, s.reset_ns, s.reset_pages};
}

/* Puts a call's exits and the mean of the resets in `r` beside the row. */
static void pool_extra(const char *name, double exits, struct resets r)
{
	struct extra *x = extra(name);
	x->exits = exits;
	if (r.n) {
		x->reset_us = (double)r.ns / 1e3 / (double)r.n;
		x->reset_pages = (double)r.pages / (double)r.n;
	}
}

#endif

/* ---- 1. Fig. 14 ------------------------------------------------------------ */

#if WASP_BENCH_HAVE_DUKTAPE
#define JS_INPUT_MAX 4096
/* Each request's string (--js-bytes): by default as long as the paper's,
 * "Hello There" (test/js/test.js of the original Wasp repository). */
static size_t js_bytes = 11;

static const char *const js_rows[] = {"fig14_native", "fig14_virtine", "fig14_virtine_no_teardown",
				      "fig14_snapshot", "fig14_snapshot_no_teardown"};
/* The paper's means (µs) on its machine, in the same order. */
static const double js_paper[] = {419.5, 543.4, -1, 236.7, 137.4};
#define JS_ROWS (sizeof js_rows / sizeof *js_rows)

static char js_native_out[2 * JS_INPUT_MAX];
static size_t js_native_len;

static void js_native_ret(const char *s, size_t n)
{
	js_native_len = n < sizeof js_native_out ? n : sizeof js_native_out;
	memcpy(js_native_out, s, js_native_len);
}

/* One native request: create the heap, evaluate, destroy. */
static uint64_t js_native(const char *in, size_t n)
{
	char err[256];
	js_native_len = 0; /* ret() must give this request's answer */
	uint64_t t0 = now_ns();
	duk_context *ctx = fig14_heap(js_native_ret);
	if (!ctx)
		die("fig14 native: cannot create a heap");
	int r = fig14_eval(ctx, in, n, err, sizeof err);
	duk_destroy_heap(ctx);
	uint64_t t = now_ns() - t0;
	if (r)
		die("fig14 native: %s", err);
	return t;
}

static size_t base64(const uint8_t *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	return o;
}

static void js_check(const char *what, const char *in, size_t n, const char *got, size_t len)
{
	char want[2 * JS_INPUT_MAX];
	size_t wl = base64((const uint8_t *)in, n, want);
	if (len != wl || memcmp(got, want, wl))
		die("%s: the answer is not base64 of the input: '%.*s' (want '%.*s')", what, (int)len,
		    got, (int)wl, want);
}

static void fig14(void)
{
	cur_section = "Fig. 14: a JavaScript request (Duktape heap, base64 of a string, result back)";
	const char *const tear[] = {WASP_BENCH_FIG14_JS, "teardown", NULL};
	const char *const keep[] = {WASP_BENCH_FIG14_JS, "keep", NULL};
	struct wasp_pool *pools[JS_ROWS] = {
		NULL,
		pool_new(WASP_BENCH_FIG14_JS, tear, false),
		pool_new(WASP_BENCH_FIG14_JS, keep, false),
		pool_new(WASP_BENCH_FIG14_JS, tear, true),
		pool_new(WASP_BENCH_FIG14_JS, keep, true),
	};
	static char in[JS_INPUT_MAX], out[2 * JS_INPUT_MAX];
	size_t n = js_bytes;
	/* Each row's first requests are untimed: page cache, first touches. */
	for (int r = -1; r < P.rounds; r++) {
		for (size_t k = 0; k < JS_ROWS; k++) {
			size_t i = (k + (size_t)(r < 0 ? 0 : r)) % JS_ROWS; /* who goes first rotates */
			int per = r < 0 ? 2 : P.js_per;
			for (int q = 0; q < per; q++) {
				for (size_t b = 0; b < n; b++)
					in[b] = (char)(' ' + rnd() % 95); /* printable ASCII */
				uint64_t ns;
				const char *got;
				size_t len;
				if (!pools[i]) {
					ns = js_native(in, n);
					got = js_native_out;
					len = js_native_len;
				} else {
					len = (size_t)timed_call(pools[i], in, n, out, sizeof out, &ns,
								 js_rows[i]);
					got = out;
				}
				js_check(js_rows[i], in, n, got, len);
				if (r >= 0)
					add_ns(row(js_rows[i]), ns);
			}
		}
	}
	for (size_t i = 0; i < JS_ROWS; i++) {
		extra(js_rows[i])->paper_us = js_paper[i];
		if (!pools[i])
			continue;
		for (size_t b = 0; b < n; b++)
			in[b] = (char)(' ' + rnd() % 95);
		double exits = call_exits(pools[i], in, n, js_rows[i]);
		pool_extra(js_rows[i], exits, resets_now(pools[i]));
		wasp_pool_destroy(pools[i]);
	}
}
#endif

/* ---- 2. Sec. 6.4 ------------------------------------------------------------ */

/* The block sizes of `openssl speed`. */
static const size_t aes_sizes[] = {16, 64, 256, 1024, 8192};
#define AES_SIZES (sizeof aes_sizes / sizeof *aes_sizes)
#define AES_MAX 8192

#if WASP_BENCH_HAVE_LIBCRYPTO

static EVP_CIPHER *aes;
static EVP_CIPHER_CTX *cctx;

/* The calls `crypto --serve` makes for one 'E' call, made here. */
static void aes_native(const uint8_t *key, const uint8_t *iv, const uint8_t *in, size_t n, uint8_t *out)
{
	int len = 0, fin = 0;
	if (EVP_CipherInit_ex2(cctx, aes, key, iv, 1, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(cctx, 0) != 1 ||
	    EVP_CipherUpdate(cctx, out, &len, in, (int)n) != 1 ||
	    EVP_CipherFinal_ex(cctx, out + len, &fin) != 1 || (size_t)len + (size_t)fin != n)
		die("native AES-128-CBC of %zu bytes failed", n);
}

/* One call made by hand, its parts timed: pool get and argument, the run
 * (entry, the guest's work, its set_ret exit), result and put. The
 * ciphertext must be `want`'s 16 bytes. */
static void aes_call_parts(struct wasp_pool *p, const uint8_t *msg, size_t n, const uint8_t *want)
{
	struct wasp_virtine *v;
	struct wasp_exit e;
	size_t len;
	check(wasp_pool_fill(p), "pool fill");
	uint64_t t0 = now_ns();
	check(wasp_pool_get(p, &v), "pool get");
	check(wasp_pool_set_arg(p, v, msg, n), "pool argument");
	uint64_t t1 = now_ns();
	check(wasp_virtine_run(v, CALL_TIMEOUT_NS, &e), "aes call by hand");
	uint64_t t2 = now_ns();
	const void *ret = wasp_virtine_ret(v, &len);
	bool ok = ret && len == n - 33 && !memcmp(ret, want, len);
	wasp_pool_put(p, v);
	uint64_t t3 = now_ns();
	if (e.reason != WASP_EXIT_HYPERCALL || !ok)
		die("aes call by hand: ended %s, %s", wasp_exit_reason_name(e.reason),
		    ok ? "its result right" : "its result wrong");
	add_ns(row("aes_16_get_arg"), t1 - t0);
	add_ns(row("aes_16_run"), t2 - t1);
	add_ns(row("aes_16_ret_put"), t3 - t2);
}

static void sec64(void)
{
	cur_section = "Sec. 6.4: AES-128-CBC of one block per call (key by value)";
	aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
	cctx = EVP_CIPHER_CTX_new();
	if (!aes || !cctx)
		die("OpenSSL has no AES-128-CBC here");
	const char *const argv[] = {WASP_BENCH_CRYPTO, "--serve", NULL};
	struct wasp_pool *p = pool_new(WASP_BENCH_CRYPTO, argv, true);
	static uint8_t msg[33 + AES_MAX], out[AES_MAX], want[AES_MAX];
	uint64_t *ns = malloc((size_t)P.floor_iters * sizeof *ns);
	if (!ns)
		die("out of memory");
	char name[48], err[256];
	struct resets per_size[AES_SIZES] = {{0}};
	for (int r = -1; r < P.rounds; r++) {
		bool warm = r < 0;
		/* the floor: a bare ring-3 `out` exit, raw KVM */
		if (bench_floor_run(wasp_kvm_fd(), BENCH_FLOOR_LONG3, 50, warm ? 10 : P.floor_iters, ns,
				    err, sizeof err) < 0)
			die("%s", err);
		for (int i = 0; !warm && i < P.floor_iters; i++)
			add_ns(row(bench_floor_names[BENCH_FLOOR_LONG3]), ns[i]);
		for (size_t k = 0; k < AES_SIZES; k++) {
			size_t z = (k + (size_t)(warm ? 0 : r)) % AES_SIZES, n = aes_sizes[z];
			/* a call: 'E', a fresh key and IV, then the block */
			struct resets before = resets_now(p);
			for (int q = 0; q < (warm ? 2 : P.aes_per); q++) {
				msg[0] = 'E';
				fill_random(msg + 1, 32 + n);
				uint64_t t;
				int len = timed_call(p, msg, 33 + n, out, sizeof out, &t, "aes call");
				aes_native(msg + 1, msg + 17, msg + 33, n, want);
				if (len != (int)n || memcmp(out, want, n))
					die("aes call of %zu bytes: the ciphertext differs from the native one", n);
				snprintf(name, sizeof name, "aes_virtine_%zu", n);
				if (!warm)
					add_ns(row(name), t);
			}
			struct resets after = resets_now(p); /* this size's resets */
			per_size[z].n += after.n - before.n;
			per_size[z].ns += after.ns - before.ns;
			per_size[z].pages += after.pages - before.pages;
			/* natively: the same calls, a batch timed as one */
			for (int q = 0; q < (warm ? 1 : P.aes_per / 10 + 1); q++) {
				msg[0] = 'E';
				fill_random(msg + 1, 32 + n);
				uint64_t t0 = now_ns();
				for (int b = 0; b < P.aes_batch; b++)
					aes_native(msg + 1, msg + 17, msg + 33, n, out);
				uint64_t t = now_ns() - t0;
				snprintf(name, sizeof name, "aes_native_%zu", n);
				if (!warm)
					add_us(row(name), (double)t / 1e3 / P.aes_batch);
			}
		}
		/* Where a 16-byte call's time goes: the same call made by hand */
		for (int q = 0; !warm && q < P.aes_per; q++) {
			msg[0] = 'E';
			fill_random(msg + 1, 32 + 16);
			aes_native(msg + 1, msg + 17, msg + 33, 16, want);
			aes_call_parts(p, msg, 33 + 16, want);
		}
	}
	for (size_t k = 0; k < AES_SIZES; k++) {
		snprintf(name, sizeof name, "aes_native_%zu", aes_sizes[k]);
		extra(name)->bytes = aes_sizes[k];
		snprintf(name, sizeof name, "aes_virtine_%zu", aes_sizes[k]);
		extra(name)->bytes = aes_sizes[k];
		msg[0] = 'E';
		fill_random(msg + 1, 32 + aes_sizes[k]);
		pool_extra(name, call_exits(p, msg, 33 + aes_sizes[k], name), per_size[k]);
	}
	free(ns);
	wasp_pool_destroy(p);
	EVP_CIPHER_CTX_free(cctx);
	EVP_CIPHER_free(aes);
}
#endif

/* ---- 3. Lua ------------------------------------------------------------------ */

static void lua_compute(void)
{
	cur_section = "a compute-bound Lua script: wasp-run of build/examples/lua against the host";
	/* The script lies in the sandbox directory: natively by its full path,
	 * in the virtine by its name there (the output names neither). */
	char *native[] = {WASP_BENCH_LUA, WASP_BENCH_LUA_DIR "/lua_compute.lua", (char *)P.lua_fib,
			  (char *)P.lua_sort, NULL};
	char *virt[] = {WASP_BENCH_WASP_RUN, "--dir", WASP_BENCH_LUA_DIR, WASP_BENCH_LUA, "--",
			"lua_compute.lua", (char *)P.lua_fib, (char *)P.lua_sort, NULL};
	for (int r = -1; r < P.lua_rounds; r++) {
		char *a, *b;
		/* who goes first alternates */
		uint64_t ta = 0, tb = 0;
		if (r & 1) {
			tb = spawn_timed(virt, &b);
			ta = spawn_timed(native, &a);
		} else {
			ta = spawn_timed(native, &a);
			tb = spawn_timed(virt, &b);
		}
		if (strcmp(a, b) || !strstr(a, "fib("))
			die("lua_compute: the outputs differ: '%s' and '%s'", a, b);
		if (r >= 0) { /* the first round warms the page cache */
			add_ns(row("lua_native"), ta);
			add_ns(row("lua_wasp_run"), tb);
		}
		free(a);
		free(b);
	}
}

/* ---- output -------------------------------------------------------------------- */

static void csv_num(FILE *f, double v, const char *fmt)
{
	fputc(',', f);
	if (v >= 0)
		fprintf(f, fmt, v);
}

static void write_csv(FILE *f)
{
	fprintf(f, "name,bytes,mean_us,median_us,p10_us,p90_us,min_us,samples,kB_per_s,exits,"
		   "reset_us,reset_pages,paper_us\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		const struct extra *x = extra(r->name);
		fprintf(f, "%s,", r->name);
		if (x->bytes)
			fprintf(f, "%zu", x->bytes);
		fprintf(f, ",%.3f,%.3f,%.3f,%.3f,%.3f,%zu", mean(r), r->median, r->p10, r->p90, r->min,
			r->n);
		csv_num(f, x->bytes ? (double)x->bytes * 1e3 / r->median : -1, "%.2f");
		csv_num(f, x->exits, "%.0f");
		csv_num(f, x->reset_us, "%.1f");
		csv_num(f, x->reset_pages, "%.1f");
		csv_num(f, x->paper_us, "%.1f");
		fputc('\n', f);
	}
}

static bool has(const char *name)
{
	for (size_t i = 0; i < nrows; i++)
		if (!strcmp(rows[i].name, name))
			return true;
	return false;
}

static void print_tables(void)
{
	const char *section = NULL;
	printf("%-28s %11s %11s %11s %11s %11s %6s %6s %9s\n", "name", "mean_us", "median_us",
	       "p10_us", "p90_us", "min_us", "n", "exits", "reset_us");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		const struct extra *x = extra(r->name);
		if (r->section != section)
			printf("-- %s\n", section = r->section);
		printf("%-28s %11.2f %11.2f %11.2f %11.2f %11.2f %6zu", r->name, mean(r), r->median, r->p10,
		       r->p90, r->min, r->n);
		if (x->exits >= 0)
			printf(" %6.0f", x->exits);
		if (x->reset_us >= 0)
			printf(" %9.1f", x->reset_us);
		printf("\n");
	}
	if (has("fig14_native")) {
		const struct row *nat = find("fig14_native");
		printf("\nFig. 14 (means and medians in us; x = / native; the paper's means on its machine)\n");
		printf("%-28s %10s %7s %10s %7s %10s %7s\n", "row", "mean", "x", "median", "x", "paper",
		       "x");
		for (size_t i = 0; i < nrows; i++) {
			const struct row *r = &rows[i];
			const struct extra *x = extra(r->name);
			if (strncmp(r->name, "fig14_", 6))
				continue;
			printf("%-28s %10.1f %7.2f %10.1f %7.2f", r->name + 6, mean(r), mean(r) / mean(nat),
			       r->median, r->median / nat->median);
			if (x->paper_us > 0)
				printf(" %10.1f %7.2f", x->paper_us, x->paper_us / 419.5);
			printf("\n");
		}
	}
	if (has("aes_native_16")) {
		printf("\nSec. 6.4: AES-128-CBC, one block per call (key and IV set each call), as `openssl speed`:\n"
		       "the numbers are 1000s of bytes per second (block / median time of one call)\n");
		printf("%-22s", "type");
		for (size_t k = 0; k < AES_SIZES; k++)
			printf(" %11zu bytes", aes_sizes[k]);
		printf("\n");
		const char *kinds[] = {"native", "virtine"};
		double kb[2][AES_SIZES];
		for (int j = 0; j < 2; j++) {
			printf("aes-128-cbc %-10s", kinds[j]);
			for (size_t k = 0; k < AES_SIZES; k++) {
				char name[48];
				snprintf(name, sizeof name, "aes_%s_%zu", kinds[j], aes_sizes[k]);
				kb[j][k] = (double)aes_sizes[k] * 1e3 / find(name)->median;
				printf(" %16.2fk", kb[j][k]);
			}
			printf("\n");
		}
		printf("%-22s", "virtine / native");
		for (size_t k = 0; k < AES_SIZES; k++)
			printf(" %17.4f", kb[1][k] / kb[0][k]);
		printf("\n");
	}
}

/* The ratio lines of the run (run.sh collects every `ratio` line). */
static void print_ratios(void)
{
	if (has("fig14_native")) {
		double nat = find("fig14_native")->median;
		printf("ratio fig14_js_snapshot/native %.2f (target 0.5)\n",
		       find("fig14_snapshot")->median / nat);
		printf("ratio fig14_js_snapshot_no_teardown/native %.2f (for comparison; the paper: 0.33)\n",
		       find("fig14_snapshot_no_teardown")->median / nat);
		printf("ratio fig14_js_virtine/native %.2f (for comparison; the paper: 1.30)\n",
		       find("fig14_virtine")->median / nat);
	}
	if (has("aes_virtine_16"))
		printf("ratio aes_call/floor_ring3 %.2f (target 1.5)\n",
		       find("aes_virtine_16")->median /
			       find(bench_floor_names[BENCH_FLOOR_LONG3])->median);
	if (has("lua_native"))
		printf("ratio lua_compute/native %.2f (target 1.1)\n",
		       find("lua_wasp_run")->median / find("lua_native")->median);
}

/* Whether `part` is in the comma-separated list (NULL: every part). */
static bool wanted(const char *list, const char *part)
{
	if (!list)
		return true;
	size_t n = strlen(part);
	for (const char *p = list; (p = strstr(p, part)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const char *csv_path = NULL, *only = NULL;
	bench_prog = "wasp-bench-apps";
	P = full;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			P = quick;
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
#if WASP_BENCH_HAVE_DUKTAPE
		else if (!strcmp(argv[i], "--js-bytes") && i + 1 < argc &&
			 (js_bytes = strtoul(argv[++i], NULL, 10)) >= 1 && js_bytes <= JS_INPUT_MAX)
			;
#endif
		else {
			fprintf(stderr, "usage: wasp-bench-apps [--quick] [--csv PATH] [--only js,aes,lua] "
					"[--js-bytes 1..4096]\n");
			return 2;
		}
	}
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("wasp-bench-apps: SKIP: /dev/kvm is not available (%s)\n", strerror(errno));
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Each part, or why it is skipped (a workload whose package is missing). */
	if (wanted(only, "js")) {
#if WASP_BENCH_HAVE_DUKTAPE
		printf("Fig. 14: %d rounds of %d requests per row, strings of %zu bytes\n", P.rounds,
		       P.js_per, js_bytes);
		fig14();
#else
		printf("wasp-bench-apps: SKIP Fig. 14: %s\n", WASP_BENCH_JS_SKIP);
#endif
	}
	if (wanted(only, "aes")) {
#if WASP_BENCH_HAVE_LIBCRYPTO
		printf("Sec. 6.4: %d rounds of %d calls per block size\n", P.rounds, P.aes_per);
		sec64();
#else
		printf("wasp-bench-apps: SKIP Sec. 6.4: %s\n", WASP_BENCH_CRYPTO_SKIP);
#endif
	}
	if (wanted(only, "lua")) {
		if (WASP_BENCH_LUA[0]) {
			printf("Lua: %d rounds of lua_compute.lua %s %s\n", P.lua_rounds, P.lua_fib, P.lua_sort);
			lua_compute();
		} else {
			printf("wasp-bench-apps: SKIP Lua: %s\n", WASP_BENCH_LUA_SKIP);
		}
	}
	if (!nrows) {
		printf("wasp-bench-apps: SKIP: nothing to measure\n");
		return 77;
	}
	for (size_t i = 0; i < nrows; i++)
		finish(&rows[i]);
	print_tables();
	if (csv_path) {
		FILE *f = fopen(csv_path, "w");
		if (!f)
			die("%s: %s", csv_path, strerror(errno));
		write_csv(f);
		if (fclose(f))
			die("%s: %s", csv_path, strerror(errno));
	}
	print_ratios();
	return 0;
}
