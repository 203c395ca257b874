/*
 * test_ckpt: checkpoint and restore through the library on real KVM, one
 * case per invocation (`test_ckpt ASMDIR GUESTDIR CASE`). The separate-
 * process round trips are in ckpt_test.sh; here the state right after a
 * restore is compared with what was captured, register by register and
 * byte by byte, and bad streams are fed in.
 * Exit 0 pass, 1 fail, 77 skip.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "ckpt.h"
#include "ckpt_stream.h"
#include "harness.h"
#include "vmm.h"

static const char *asm_dir, *guest_dir;


static struct wasp_virtine *make(const char *dir, const char *image, size_t mem, int console_fd)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[512];
	wasp_config_init(&cfg);
	if (mem)
		cfg.mem_size = mem;
	if (console_fd >= 0)
		cfg.console_fd = console_fd;
	MUST(wasp_virtine_create(&cfg, &v));
	snprintf(path, sizeof path, "%s/%s", dir, image);
	MUST(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO));
	return v;
}

struct pauser {
	struct wasp_virtine *v;
	unsigned delay_us;
};

static void *pause_later(void *arg)
{
	struct pauser *p = arg;
	usleep(p->delay_us);
	wasp_virtine_pause(p->v);
	return NULL;
}

/* Runs until paused after delay_us (or until it exits first). */
static struct wasp_exit run_for(struct wasp_virtine *v, unsigned delay_us)
{
	pthread_t t;
	struct pauser p = {v, delay_us};
	struct wasp_exit e;
	pthread_create(&t, NULL, pause_later, &p);
	MUST(wasp_virtine_run(v, 60ull * 1000000000, &e));
	pthread_join(t, NULL);
	return e;
}

/* Runs until the guest has made `n` more hypercalls, then stops there (a
 * tracer's STOP, on the vCPU's own thread): the same point on every host,
 * however loaded, where run_for()'s timer could let a finite guest end
 * first. scribble.bin makes one every 4096 iterations. */
static int stop_after_hypercalls(struct wasp_virtine *v, const struct wasp_trace_event *ev,
				 void *opaque)
{
	unsigned *left = opaque;
	return --*left == 0 ? WASP_TRACE_STOP : WASP_TRACE_CONTINUE;
}

static struct wasp_exit run_hypercalls(struct wasp_virtine *v, unsigned n)
{
	struct wasp_trace_opts o = {.events = WASP_TRACE_BIT(WASP_TRACE_HYPERCALL),
				    .fn = stop_after_hypercalls, .opaque = &n};
	struct wasp_exit e;
	MUST(wasp_virtine_trace(v, &o));
	MUST(wasp_virtine_run(v, 60ull * 1000000000, &e));
	MUST(wasp_virtine_trace(v, NULL));
	return e;
}

static struct wasp_exit run_to_end(struct wasp_virtine *v)
{
	struct wasp_exit e;
	MUST(wasp_virtine_run(v, 60ull * 1000000000, &e));
	return e;
}

/* Saves v, restores a copy, and checks the copy's registers and memory
 * equal v's. Returns the copy (v is left as it was). */
static struct wasp_virtine *clone_checked(struct wasp_virtine *v, int console_fd)
{
	void *buf;
	size_t len;
	struct wasp_ckpt_stats st;
	MUST(wasp_ckpt_save_buffer(v, NULL, &buf, &len, &st));
	CHECK(len == st.bytes && len > 8 && !memcmp(buf, "WASPCKPT", 8), "stream of %zu bytes", len);

	struct wasp_config cfg;
	wasp_config_init(&cfg);
	if (console_fd >= 0)
		cfg.console_fd = console_fd;
	struct wasp_restore_opts ro = {.config = &cfg};
	struct wasp_virtine *c;
	MUST(wasp_ckpt_restore_buffer(&ro, buf, len, &c, &st));
	free(buf);

	struct wasp_regs a, b;
	MUST(wasp_virtine_get_regs(v, &a));
	MUST(wasp_virtine_get_regs(c, &b));
	CHECK(!memcmp(&a, &b, sizeof a), "registers differ after restore (rip 0x%llx vs 0x%llx)",
	      (unsigned long long)a.rip, (unsigned long long)b.rip);
	size_t m = wasp_virtine_mem_size(v);
	CHECK(wasp_virtine_mem_size(c) == m, "memory size");
	CHECK(!memcmp(wasp_virtine_gpa(v, 0, m), wasp_virtine_gpa(c, 0, m), m), "memory differs");
	if (st.unrestored[0])
		printf("note: this host did not restore: %s\n", st.unrestored);
	return c;
}

/* ---- cases ------------------------------------------------------------ */

/* hcloop makes N clock hypercalls: checkpoint mid-way, several times, in a
 * chain (each restore is checkpointed again), and the count comes out exact. */
static void t_chain(void)
{
	struct wasp_virtine *v = make(asm_dir, "hcloop.bin", 0, -1);
	MUST(wasp_virtine_allow(v, "clock"));
	uint64_t n = 4000;
	memcpy(wasp_virtine_gpa(v, 0x9000, 8), &n, 8);
	int links = 0;
	struct wasp_exit e;
	for (;;) {
		e = run_for(v, 5000);
		if (e.reason != WASP_EXIT_PAUSED)
			break;
		struct wasp_virtine *c = clone_checked(v, -1);
		wasp_virtine_destroy(v);
		v = c;
		links++;
	}
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == (int64_t)n, "%s code %lld after %d links",
	      wasp_exit_reason_name(e.reason), (long long)e.code, links);
	CHECK(links >= 3, "only %d checkpoints landed mid-run", links);
	CHECK(wasp_virtine_allowed(v, WASP_HC_CLOCK), "policy survived the chain");
	wasp_virtine_destroy(v);
}

/* The same image run twice, once interrupted by a restore into a new
 * virtine, gives the same exit and console output. */
static void compare_interrupted(const char *dir, const char *image, const char *arg,
				unsigned delay_us)
{
	char out1[4096] = {0}, out2[4096] = {0};
	FILE *f1 = tmpfile(), *f2 = tmpfile();
	struct wasp_virtine *v = make(dir, image, 0, fileno(f1));
	MUST(wasp_virtine_allow(v, "console_write,get_arg"));
	MUST(wasp_virtine_set_arg(v, arg, strlen(arg) + 1));
	struct wasp_exit plain = run_to_end(v);
	wasp_virtine_destroy(v);

	v = make(dir, image, 0, fileno(f2));
	MUST(wasp_virtine_allow(v, "console_write,get_arg"));
	MUST(wasp_virtine_set_arg(v, arg, strlen(arg) + 1));
	struct wasp_exit e = run_for(v, delay_us);
	bool paused = e.reason == WASP_EXIT_PAUSED;
	if (paused) {
		struct wasp_virtine *c = clone_checked(v, fileno(f2));
		wasp_virtine_destroy(v);
		v = c;
		e = run_to_end(v);
	}
	wasp_virtine_destroy(v);
	CHECK(paused, "%s finished before the checkpoint", image);
	CHECK(e.reason == plain.reason && e.code == plain.code, "%s: exit %s/%lld vs %s/%lld", image,
	      wasp_exit_reason_name(e.reason), (long long)e.code, wasp_exit_reason_name(plain.reason),
	      (long long)plain.code);
	rewind(f1);
	rewind(f2);
	size_t n1 = fread(out1, 1, sizeof out1 - 1, f1), n2 = fread(out2, 1, sizeof out2 - 1, f2);
	CHECK(n1 > 0 && n1 == n2 && !memcmp(out1, out2, n1), "%s output differs: '%s' vs '%s'", image,
	      out1, out2);
	fclose(f1);
	fclose(f2);
}

static void t_real_mode(void)
{
	compare_interrupted(guest_dir, "fib16.bin", "18", 20000);
}

static void t_protected_mode(void)
{
	compare_interrupted(guest_dir, "fib32.bin", "18", 20000);
}

static void t_long_mode(void)
{
	compare_interrupted(guest_dir, "fib64.bin", "40", 20000);
}

static void simd(bool avx)
{
	struct wasp_virtine *v = make(asm_dir, "simd.bin", 0, -1);
	uint64_t cfg[2] = {300000000, avx};
	memcpy(wasp_virtine_gpa(v, 0x9000, 16), cfg, 16);
	struct wasp_exit e = run_for(v, 30000);
	CHECK(e.reason == WASP_EXIT_PAUSED, "simd finished before the checkpoint");
	struct wasp_virtine *c = clone_checked(v, -1);
	wasp_virtine_destroy(v);
	e = run_to_end(c);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 0,
	      "%s registers after restore: %s code %lld (1+first bad register)", avx ? "ymm" : "xmm",
	      wasp_exit_reason_name(e.reason), (long long)e.code);
	wasp_virtine_destroy(c);
}

static void t_sse(void)
{
	simd(false);
}

static void t_avx(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 28))) {
		printf("SKIP: this CPU has no AVX\n");
		exit(77);
	}
	simd(true);
}

/* A stream cut anywhere, or with any byte changed, restores nothing. */
static void t_bad_streams(void)
{
	struct wasp_virtine *v = make(asm_dir, "hcloop.bin", 1 << 20, -1), *c = NULL;
	MUST(wasp_virtine_allow(v, "clock"));
	uint64_t n = 100000;
	memcpy(wasp_virtine_gpa(v, 0x9000, 8), &n, 8);
	run_for(v, 2000);
	uint8_t *buf;
	size_t len;
	MUST(wasp_ckpt_save_buffer(v, NULL, (void **)&buf, &len, NULL));

	int refused = 0, tried = 0;
	size_t step = len / 300 + 1;
	for (size_t cut = 0; cut < len; cut += step, tried++) {
		int r = wasp_ckpt_restore_buffer(NULL, buf, cut, &c, NULL);
		refused += r < 0 && c == NULL;
		if (c)
			wasp_virtine_destroy(c);
	}
	CHECK(refused == tried, "%d of %d truncated streams refused", refused, tried);

	refused = tried = 0;
	for (size_t pos = 0; pos < len; pos += step, tried++) {
		buf[pos] ^= 0x10;
		int r = wasp_ckpt_restore_buffer(NULL, buf, len, &c, NULL);
		refused += r < 0 && c == NULL;
		if (c)
			wasp_virtine_destroy(c);
		buf[pos] ^= 0x10;
	}
	CHECK(refused == tried, "%d of %d corrupted streams refused", refused, tried);

	memcpy(buf, "WASPCKPX", 8);
	CHECK(wasp_ckpt_restore_buffer(NULL, buf, len, &c, NULL) < 0 && !c, "bad magic");
	CHECK(strstr(wasp_last_error(), "magic") != NULL, "message says magic: %s", wasp_last_error());
	memcpy(buf, "WASPCKPT", 8);
	CHECK(wasp_ckpt_restore_buffer(NULL, buf, len, &c, NULL) == 0 && c, "intact stream restores");
	wasp_virtine_destroy(c);

	/* Missing CPU features (simulated): refused, naming them. */
	unsigned a = 0, b = 0, cx = 0, d = 0;
	__get_cpuid(1, &a, &b, &cx, &d);
	struct wasp_restore_opts ro = {.simulate_missing_cpuid = "1.edx.26,1.ecx.0"};
	CHECK(wasp_ckpt_restore_buffer(&ro, buf, len, &c, NULL) == -ENOTSUP && !c, "missing features");
	CHECK(strstr(wasp_last_error(), "sse2") != NULL, "names sse2: %s", wasp_last_error());
	if (cx & 1)
		CHECK(strstr(wasp_last_error(), "sse3") != NULL, "names sse3: %s", wasp_last_error());
	free(buf);
	wasp_virtine_destroy(v);
}

/* The empty, header-less and foreign cases. */
static void t_not_a_checkpoint(void)
{
	struct wasp_virtine *c = NULL;
	CHECK(wasp_ckpt_restore_buffer(NULL, "", 0, &c, NULL) < 0 && !c, "empty");
	CHECK(wasp_ckpt_restore_buffer(NULL, "WASPCKPT", 8, &c, NULL) < 0 && !c, "magic only");
	static const char elf[] = "\x7f" "ELF\x02\x01\x01";
	CHECK(wasp_ckpt_restore_buffer(NULL, elf, sizeof elf, &c, NULL) < 0 && !c, "an ELF file");
	CHECK(wasp_ckpt_restore_file(NULL, "/nonexistent.wckpt", &c, NULL) == -ENOENT && !c, "no file");
	CHECK(strstr(wasp_last_error(), "/nonexistent.wckpt") != NULL, "message names the file");
}

/* An embedder's own sink and source: callbacks, no files, no buffers of ours. */
struct pieces {
	uint8_t data[1 << 20];
	size_t len, pos, writes;
};

static int pieces_write(void *ctx, const void *buf, size_t len)
{
	struct pieces *p = ctx;
	if (len > sizeof p->data - p->len)
		return -ENOSPC;
	memcpy(p->data + p->len, buf, len);
	p->len += len;
	p->writes++;
	return 0;
}

static ssize_t pieces_read(void *ctx, void *buf, size_t len)
{
	struct pieces *p = ctx;
	size_t n = len < 7 ? len : 7; /* dribble it out: the reader must cope */
	if (n > p->len - p->pos)
		n = p->len - p->pos;
	memcpy(buf, p->data + p->pos, n);
	p->pos += n;
	return (ssize_t)n;
}

static void t_callbacks_and_files(void)
{
	static struct pieces p;
	struct wasp_virtine *v = make(asm_dir, "hcloop.bin", 1 << 20, -1), *c;
	MUST(wasp_virtine_allow(v, "clock"));
	uint64_t n = 2000;
	memcpy(wasp_virtine_gpa(v, 0x9000, 8), &n, 8);
	struct wasp_exit e = run_for(v, 3000);
	CHECK(e.reason == WASP_EXIT_PAUSED, "paused");

	struct wasp_sink sink = {.write = pieces_write, .ctx = &p};
	MUST(wasp_ckpt_save(v, NULL, &sink, NULL));
	CHECK(p.writes >= 4, "records went out one by one (%zu writes)", p.writes);
	struct wasp_source src = {.read = pieces_read, .ctx = &p};
	MUST(wasp_ckpt_restore(NULL, &src, &c, NULL));
	e = run_to_end(c);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == (int64_t)n, "callback copy: %lld",
	      (long long)e.code);
	wasp_virtine_destroy(c);

	/* A file, and a failed save to the same path leaves it whole. */
	char dir[] = "/tmp/wasp-ckpt-XXXXXX", path[600];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/v.wckpt", dir);
	MUST(wasp_ckpt_save_file(v, NULL, path, NULL));
	struct wasp_sink full = {.write = pieces_write, .ctx = &p};
	p.len = sizeof p.data - 100; /* the next save runs out of room at once */
	CHECK(wasp_ckpt_save(v, NULL, &full, NULL) == -ENOSPC, "sink errors come back");
	MUST(wasp_ckpt_restore_file(NULL, path, &c, NULL));
	e = run_to_end(c);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == (int64_t)n, "file copy: %lld", (long long)e.code);
	wasp_virtine_destroy(c);
	/* The original goes on too: a checkpoint does not disturb it. */
	e = run_to_end(v);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == (int64_t)n, "original: %lld", (long long)e.code);
	wasp_virtine_destroy(v);
	unlink(path);
	rmdir(dir);
}

/* scribble.asm writes all over its memory (and has the host write some). */
static struct wasp_virtine *scribbler(uint64_t iterations)
{
	struct wasp_virtine *v = make(asm_dir, "scribble.bin", 4 << 20, -1);
	uint64_t cfg[2] = {iterations, 0x20000};
	memcpy(wasp_virtine_gpa(v, 0x9000, 16), cfg, 16);
	MUST(wasp_virtine_allow(v, "get_arg"));
	MUST(wasp_virtine_set_arg(v, "host-written bytes, from get_arg", 33));
	return v;
}

static void same_state(struct wasp_virtine *a, struct wasp_virtine *b, const char *what)
{
	struct wasp_regs ra, rb;
	MUST(wasp_virtine_get_regs(a, &ra));
	MUST(wasp_virtine_get_regs(b, &rb));
	size_t m = wasp_virtine_mem_size(a);
	CHECK(!memcmp(&ra, &rb, sizeof ra), "%s: registers differ", what);
	CHECK(m == wasp_virtine_mem_size(b) &&
		      !memcmp(wasp_virtine_gpa(a, 0, m), wasp_virtine_gpa(b, 0, m), m),
	      "%s: memory differs", what);
}

/* A full checkpoint and nine incremental ones restore, as a chain, to the
 * state one full checkpoint at the last moment gives; merged, too. */
static void t_incremental_chain(void)
{
	const uint64_t iters = 3000000;
	struct wasp_virtine *ref = scribbler(iters);
	struct wasp_exit plain = run_to_end(ref);
	wasp_virtine_destroy(ref);
	CHECK(plain.reason == WASP_EXIT_EXITED, "reference run");

	struct wasp_virtine *v = scribbler(iters), *c;
	struct wasp_save_opts so = {.track_dirty = true};
	uint8_t parent[16];
	char dir[] = "/tmp/wasp-chain-XXXXXX", paths[10][600];
	const char *ptrs[10];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	CHECK(wasp_ckpt_save_buffer(v, &(struct wasp_save_opts){.incremental = true, .parent_id = parent},
				    &(void *){0}, &(size_t){0}, NULL) == -ENOENT, "no parent yet");

	struct wasp_ckpt_stats st;
	for (int i = 0; i < 10; i++) {
		/* 10 x 40 of its ~730 hypercalls: it cannot end before the last link */
		struct wasp_exit e = run_hypercalls(v, 40);
		CHECK(e.reason == WASP_EXIT_PAUSED, "link %d: the guest ended early", i);
		snprintf(paths[i], sizeof paths[i], "%s/c%d.wckpt", dir, i);
		ptrs[i] = paths[i];
		so.incremental = i > 0;
		so.parent_id = parent;
		MUST(wasp_ckpt_save_file(v, &so, paths[i], &st));
		CHECK(st.incremental == (i > 0), "kind of link %d", i);
		memcpy(parent, st.id, 16);
	}
	/* Nothing ran since the last link: an increment now carries nothing. */
	void *buf;
	size_t len;
	so.incremental = true;
	MUST(wasp_ckpt_save_buffer(v, &so, &buf, &len, &st));
	CHECK(st.pages == 0 && st.zero_pages == 0, "an empty increment carries %llu pages, %llu zero",
	      (unsigned long long)st.pages, (unsigned long long)st.zero_pages);
	free(buf);

	uint8_t last[16];
	memcpy(last, parent, 16);
	MUST(wasp_ckpt_restore_files(NULL, ptrs, 10, &c, &st));
	CHECK(!memcmp(st.id, last, 16), "the restore names the last link");
	same_state(v, c, "chain");
	char merged[640];
	snprintf(merged, sizeof merged, "%s/merged.wckpt", dir);
	MUST(wasp_ckpt_merge_files(ptrs, 10, merged, NULL, NULL));
	struct wasp_virtine *m;
	MUST(wasp_ckpt_restore_file(NULL, merged, &m, NULL));
	same_state(v, m, "merged");

	struct wasp_exit ec = run_to_end(c), em = run_to_end(m), ev = run_to_end(v);
	CHECK(ec.reason == WASP_EXIT_EXITED && ec.code == plain.code, "chain copy ends %lld, want %lld",
	      (long long)ec.code, (long long)plain.code);
	CHECK(em.code == plain.code && ev.code == plain.code, "merged %lld, original %lld",
	      (long long)em.code, (long long)ev.code);
	wasp_virtine_destroy(c);
	wasp_virtine_destroy(m);
	wasp_virtine_destroy(v);

	/* Broken chains: a link missing, links swapped, an increment alone. */
	const char *gap[] = {paths[0], paths[1], paths[3]};
	CHECK(wasp_ckpt_restore_files(NULL, gap, 3, &c, NULL) == -EINVAL && !c, "missing link");
	CHECK(strstr(wasp_last_error(), "checkpoint 3 of 3") != NULL, "names the link: %s",
	      wasp_last_error());
	const char *swapped[] = {paths[0], paths[2], paths[1]};
	CHECK(wasp_ckpt_restore_files(NULL, swapped, 3, &c, NULL) < 0 && !c, "swapped links");
	CHECK(wasp_ckpt_restore_files(NULL, &ptrs[4], 1, &c, NULL) == -ENOENT && !c, "increment alone");
	CHECK(strstr(wasp_last_error(), "incremental") != NULL, "says why: %s", wasp_last_error());
	const char *two_full[] = {paths[0], merged};
	CHECK(wasp_ckpt_restore_files(NULL, two_full, 2, &c, NULL) < 0 && !c, "two full ones");

	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

struct runner_thread {
	struct wasp_virtine *v;
	struct wasp_exit e;
};

static void *run_thread(void *arg)
{
	struct runner_thread *t = arg;
	if (wasp_virtine_run(t->v, 60ull * 1000000000, &t->e) < 0)
		t->e.reason = -1;
	return NULL;
}

/* A live stream taken while the guest runs restores to the state the
 * guest stopped in; a failed live stream leaves incremental tracking whole. */
static void t_live(void)
{
	const uint64_t iters = 6000000;
	struct wasp_virtine *ref = scribbler(iters);
	struct wasp_exit plain = run_to_end(ref);
	wasp_virtine_destroy(ref);

	struct wasp_virtine *v = scribbler(iters), *c;
	struct runner_thread t = {.v = v};
	pthread_t th;
	pthread_create(&th, NULL, run_thread, &t);
	usleep(3000);

	static struct pieces p;
	p.len = p.pos = p.writes = 0;
	struct wasp_sink sink = {.write = pieces_write, .ctx = &p};
	struct wasp_live *l;
	MUST(wasp_live_begin(v, NULL, &sink, &l));
	uint64_t pages, bytes, rounds_with_pages = 0;
	/* Three rounds, and more while none found pages: on a loaded host the
	 * guest's thread may not have run at all yet. */
	for (int i = 0; i < 3 || (!rounds_with_pages && i < 1000); i++) {
		usleep(2000);
		MUST(wasp_live_round(l, &pages, &bytes));
		rounds_with_pages += pages > 0;
	}
	wasp_virtine_pause(v);
	pthread_join(th, NULL);
	CHECK(t.e.reason == WASP_EXIT_PAUSED, "the guest ended before the stop (%d)", t.e.reason);
	CHECK(rounds_with_pages > 0, "no round found dirty pages while the guest ran");
	struct wasp_ckpt_stats st;
	MUST(wasp_live_finish(l, &st));
	CHECK(wasp_live_bytes(l) == p.len, "bytes %llu vs %zu", (unsigned long long)wasp_live_bytes(l),
	      p.len);
	wasp_live_free(l);
	CHECK(!wasp_virtine_dirty_active(v), "tracking ends with the live stream");

	struct wasp_source src = {.read = pieces_read, .ctx = &p};
	MUST(wasp_ckpt_restore(NULL, &src, &c, NULL));
	same_state(v, c, "live copy");
	struct wasp_exit ec = run_to_end(c), ev = run_to_end(v);
	CHECK(ec.reason == WASP_EXIT_EXITED && ec.code == plain.code && ev.code == plain.code,
	      "live copy ends %lld, original %lld, want %lld", (long long)ec.code, (long long)ev.code,
	      (long long)plain.code);
	wasp_virtine_destroy(c);
	wasp_virtine_destroy(v);
}


/* ---- a checkpoint from a host with fewer CPUID features --------------- */

struct membuf {
	uint8_t *data;
	size_t len, cap, pos;
};

static int membuf_write(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2;
		uint8_t *d = realloc(m->data, cap);
		if (!d)
			return -ENOMEM;
		m->data = d;
		m->cap = cap;
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

static ssize_t membuf_read(void *ctx, void *buf, size_t len)
{
	struct membuf *m = ctx;
	size_t n = len < m->len - m->pos ? len : m->len - m->pos;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* The vCPU's CPUID as KVM has it: leaf 1's ECX. */
static uint32_t leaf1_ecx(struct wasp_virtine *v)
{
	struct {
		struct kvm_cpuid2 h;
		struct kvm_cpuid_entry2 e[256];
	} c = {.h.nent = 256};
	MUST(ioctl(wasp_virtine_vcpu_fd(v), KVM_GET_CPUID2, &c) == 0 ? 0 : -errno);
	for (uint32_t i = 0; i < c.h.nent; i++)
		if (c.e[i].function == 1 && c.e[i].index == 0)
			return c.e[i].ecx;
	return 0;
}

/* A restore skips KVM_SET_CPUID2 when the new vCPU already has the
 * checkpoint's CPUID (the usual case, and the dearer call); this is the
 * other case: a checkpoint made where the guest saw less (one feature bit
 * cleared in the stream) gets exactly that CPUID, and finishes as usual. */
static void t_cpuid_subset(void)
{
	const uint64_t iters = 2000000;
	struct wasp_virtine *ref = scribbler(iters);
	struct wasp_exit plain = run_to_end(ref);
	CHECK(plain.reason == WASP_EXIT_EXITED, "reference run");

	struct wasp_virtine *v = scribbler(iters), *c = NULL;
	(void)run_for(v, 2000);
	uint32_t ecx = leaf1_ecx(v);
	/* The highest feature bit the guest was given, the hypervisor bit aside. */
	int bit = 30;
	while (bit >= 0 && !(ecx & (1u << bit)))
		bit--;
	CHECK(bit >= 0, "leaf 1 ECX has no feature bit to clear");

	struct membuf orig = {0}, edited = {0};
	struct wasp_sink osink = {membuf_write, &orig}, esink = {membuf_write, &edited};
	MUST(wasp_ckpt_save(v, NULL, &osink, NULL));
	struct wasp_source osrc = {membuf_read, &orig};
	struct wasp_stream_reader *rd;
	struct wasp_stream_writer *w;
	Wasp__Record *rec;
	int r, cleared = 0;
	MUST(wasp_stream_reader_open(&osrc, &rd));
	MUST(wasp_stream_writer_open(&esink, &w));
	while ((r = wasp_stream_read_record(rd, &rec)) > 0) {
		if (rec->body_case == WASP__RECORD__BODY_VCPU) {
			for (size_t i = 0; i < rec->vcpu->n_cpuid; i++) {
				Wasp__CpuidEntry *e = rec->vcpu->cpuid[i];
				if (e->function == 1 && e->index == 0) {
					e->ecx &= ~(1u << bit);
					cleared++;
				}
			}
		}
		MUST(wasp_stream_write_record(w, rec));
		wasp__record__free_unpacked(rec, NULL);
	}
	MUST(r);
	MUST(wasp_stream_writer_finish(w));
	wasp_stream_writer_free(w);
	wasp_stream_reader_free(rd);
	CHECK(cleared == 1, "the vCPU record has %d leaf-1 entries", cleared);

	struct wasp_ckpt_stats st;
	MUST(wasp_ckpt_restore_buffer(NULL, edited.data, edited.len, &c, &st));
	/* Either KVM took the smaller CPUID, or the restore says it did not
	 * (PVM keeps showing the host's: docs/design.md). */
	if (strstr(st.unrestored, "cpuid")) {
		printf("note: this host keeps its own CPUID (%s)\n", st.unrestored);
	} else {
		CHECK(!(leaf1_ecx(c) & (1u << bit)), "restored vCPU still has CPUID.1:ECX bit %d", bit);
		CHECK((leaf1_ecx(c) | (1u << bit)) == ecx, "restored CPUID.1:ECX %#x, want %#x",
		      leaf1_ecx(c), ecx & ~(1u << bit));
	}
	/* The unedited checkpoint needs no CPUID call and no note. */
	struct wasp_virtine *c2 = NULL;
	MUST(wasp_ckpt_restore_buffer(NULL, orig.data, orig.len, &c2, &st));
	CHECK(!strstr(st.unrestored, "cpuid"), "plain restore notes '%s'", st.unrestored);
	wasp_virtine_destroy(c2);
	struct wasp_exit e = run_to_end(c);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == plain.code, "restored run ended %s %lld",
	      wasp_exit_reason_name(e.reason), (long long)e.code);
	same_state(ref, c, "after the edited restore");
	free(orig.data);
	free(edited.data);
	wasp_virtine_destroy(c);
	wasp_virtine_destroy(v);
	wasp_virtine_destroy(ref);
}


/* ---- mappable checkpoints ------------------------------------------------ */

/* A mappable checkpoint restores by mapping its file copy-on-write: the
 * same state as reading it, the guest finishes alike, its writes never
 * reach the file, a checkpoint of the mapped virtine holds its memory, a
 * reload zeroes it, and a truncated file is refused. */
static void t_mappable(void)
{
	const uint64_t iters = 3000000;
	struct wasp_virtine *ref = scribbler(iters);
	struct wasp_exit plain = run_to_end(ref);
	CHECK(plain.reason == WASP_EXIT_EXITED, "reference run");

	struct wasp_virtine *v = scribbler(iters), *m = NULL, *r = NULL, *again = NULL;
	struct wasp_exit e = run_hypercalls(v, 20);
	CHECK(e.reason == WASP_EXIT_PAUSED, "paused mid-run (%s)", wasp_exit_reason_name(e.reason));
	char dir[] = "/tmp/wasp-map-XXXXXX", path[600], path2[600];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/m.wckpt", dir);
	snprintf(path2, sizeof path2, "%s/again.wckpt", dir);

	struct wasp_save_opts so = {.mappable = true};
	struct wasp_ckpt_stats st;
	CHECK(wasp_ckpt_save_file(v, &(struct wasp_save_opts){.mappable = true, .incremental = true,
							     .parent_id = (uint8_t[16]){0}},
				  path, NULL) == -EINVAL, "mappable and incremental refused");
	/* Far enough in that the guest's memory is worth mapping (records of
	 * 64 KiB and up are mapped; smaller ones are read). */
	for (int i = 0;; i++) {
		MUST(wasp_ckpt_save_file(v, &so, path, &st));
		if (st.pages >= 256)
			break;
		CHECK(i < 100, "the guest wrote only %llu pages", (unsigned long long)st.pages);
		e = run_hypercalls(v, 10);
		CHECK(e.reason == WASP_EXIT_PAUSED, "paused (%s)", wasp_exit_reason_name(e.reason));
	}
	struct stat fst;
	CHECK(stat(path, &fst) == 0 && (uint64_t)fst.st_size == st.bytes, "file size");
	uint8_t *file_before = malloc(st.bytes);
	FILE *f = fopen(path, "rb");
	CHECK(f && fread(file_before, 1, st.bytes, f) == st.bytes, "read the file");
	fclose(f);

	/* mapped, and read (--no-map): the same state as the source */
	MUST(wasp_ckpt_restore_file(NULL, path, &m, &st));
	CHECK(st.mapped_pages > 0 && st.mapped_pages + 16 >= st.pages,
	      "mapped %llu of %llu pages", (unsigned long long)st.mapped_pages,
	      (unsigned long long)st.pages);
	same_state(v, m, "mapped restore");
	MUST(wasp_ckpt_restore_file(&(struct wasp_restore_opts){.no_map = true}, path, &r, &st));
	CHECK(st.mapped_pages == 0, "--no-map mapped %llu pages", (unsigned long long)st.mapped_pages);
	same_state(v, r, "read restore");

	/* A checkpoint of the mapped virtine (its memfd has holes where the
	 * file is mapped) holds all of its memory. */
	MUST(wasp_ckpt_save_file(m, NULL, path2, NULL));
	MUST(wasp_ckpt_restore_file(NULL, path2, &again, NULL));
	same_state(v, again, "checkpoint of the mapped virtine");

	/* Each finishes as the uninterrupted run did. */
	e = run_to_end(m);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == plain.code, "mapped run ended %s",
	      wasp_exit_reason_name(e.reason));
	same_state(ref, m, "mapped run, at the end");
	e = run_to_end(r);
	same_state(ref, r, "read run, at the end");

	/* The guest's writes stayed private: the file is as it was. */
	f = fopen(path, "rb");
	uint8_t *file_after = malloc(st.bytes + 1);
	size_t got = f ? fread(file_after, 1, st.bytes + 1, f) : 0;
	if (f)
		fclose(f);
	CHECK(got == (size_t)fst.st_size && !memcmp(file_before, file_after, got), "the file changed");

	/* A reload puts plain zeroed memory back under the mapping. */
	char img[512];
	snprintf(img, sizeof img, "%s/%s", asm_dir, "exit7.bin");
	MUST(wasp_virtine_load_file(m, img, 0, WASP_MODE_AUTO));
	size_t msz = wasp_virtine_mem_size(m);
	const uint8_t *mem = wasp_virtine_gpa(m, 0, msz);
	size_t nonzero = 0;
	for (size_t i = 0x20000; i < msz; i++)
		nonzero += mem[i] != 0;
	CHECK(nonzero == 0, "%zu bytes not zero after a reload", nonzero);
	CHECK(wasp_virtine_file_mapped(m) == NULL, "still mapped after a reload");
	e = run_to_end(m);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 7, "the reloaded image ran (%s %lld)",
	      wasp_exit_reason_name(e.reason), (long long)e.code);

	/* Truncated anywhere in its data: refused, nothing runs. */
	struct wasp_virtine *bad = NULL;
	uint64_t whole = (uint64_t)fst.st_size;
	for (uint64_t cut = whole / 3; cut < whole; cut += whole / 3) {
		f = fopen(path, "wb");
		CHECK(f && fwrite(file_before, 1, cut, f) == cut && fclose(f) == 0, "write a cut file");
		int rc = wasp_ckpt_restore_file(NULL, path, &bad, NULL);
		CHECK(rc < 0 && bad == NULL, "a file cut at %llu restored", (unsigned long long)cut);
		CHECK(strstr(wasp_last_error(), "truncated") != NULL, "cut at %llu: '%s'",
		      (unsigned long long)cut, wasp_last_error());
	}

	unlink(path);
	unlink(path2);
	rmdir(dir);
	free(file_before);
	free(file_after);
	wasp_virtine_destroy(again);
	wasp_virtine_destroy(r);
	wasp_virtine_destroy(m);
	wasp_virtine_destroy(v);
	wasp_virtine_destroy(ref);
}


/* A live stream of a guest that never exits: nothing in it may wait for
 * the guest's next exit (a vCPU ioctl from another thread does, for as
 * long as the guest runs), and it must not touch the running vCPU's TSC.
 * Before the fix this case hung in wasp_live_begin until ctest's timeout. */
static void t_live_no_exits(void)
{
	struct wasp_virtine *v = make(asm_dir, "spin.bin", 1 << 20, -1), *c;
	struct runner_thread t = {.v = v};
	pthread_t th;
	pthread_create(&th, NULL, run_thread, &t);
	usleep(3000);
	static struct pieces p;
	p.len = p.pos = p.writes = 0;
	struct wasp_sink sink = {.write = pieces_write, .ctx = &p};
	struct wasp_live *l;
	uint64_t t0 = wasp_now_ns(), pages, bytes;
	MUST(wasp_live_begin(v, NULL, &sink, &l));
	MUST(wasp_live_round(l, &pages, &bytes));
	uint64_t precopy_ns = wasp_now_ns() - t0;
	wasp_virtine_pause(v);
	pthread_join(th, NULL);
	CHECK(t.e.reason == WASP_EXIT_PAUSED, "the spinning guest ended (%d)", t.e.reason);
	MUST(wasp_live_finish(l, NULL));
	wasp_live_free(l);
	struct wasp_source src = {.read = pieces_read, .ctx = &p};
	MUST(wasp_ckpt_restore(NULL, &src, &c, NULL));
	same_state(v, c, "live copy of a guest without exits");
	printf("pre-copy of a guest without exits: %.1f ms\n", precopy_ns / 1e6);
	wasp_virtine_destroy(c);
	wasp_virtine_destroy(v);
}

static int no_trace(struct wasp_virtine *v, const struct wasp_trace_event *ev, void *opaque)
{
	(void)v, (void)ev, (void)opaque;
	return WASP_TRACE_CONTINUE;
}

/* A breakpoint on spin's only loop is hit, stepped over and planted again
 * on every iteration; a pause lands anywhere in that, also after a step or
 * an int3 whose exception PVM has not yet made an exit of. Each checkpoint
 * must be the plain guest: its copy runs on without the tracer and never
 * faults (before the fix a pending #DB went into the checkpoint, and about
 * one pause in fifteen gave a copy that triple-faulted at once). */
static void t_paused_on_breakpoint(void)
{
	struct wasp_virtine *v = make(asm_dir, "spin.bin", 1 << 20, -1);
	struct wasp_regs r;
	MUST(wasp_virtine_get_regs(v, &r));
	struct wasp_trace_opts o = {.fn = no_trace};
	MUST(wasp_virtine_trace(v, &o));
	MUST(wasp_virtine_break_add(v, r.rip));
	uint64_t prev = 0;
	for (unsigned i = 0; i < 150; i++) {
		struct wasp_exit e = run_for(v, 50 + (i * 37) % 400);
		CHECK(e.reason == WASP_EXIT_PAUSED, "pause %u: run ended with %d (fault %d at rip 0x%llx)", i, e.reason, e.fault.kind, (unsigned long long)e.fault.regs.rip);
		MUST(wasp_virtine_get_regs(v, &r));
		CHECK(r.rbx >= prev, "pause %u: the loop count went back", i);
		prev = r.rbx;
		struct wasp_virtine *c = clone_checked(v, -1);
		/* Runs of 2 ms until the copy has looped (on a loaded host its
		 * thread may not get the CPU in the first). */
		struct wasp_regs cr = r;
		for (int k = 0; k < 500 && cr.rbx <= r.rbx; k++) {
			MUST(wasp_virtine_run(c, 2000000, &e));
			CHECK(e.reason == WASP_EXIT_TIMEOUT, "pause %u (rip 0x%llx): the copy ended with %d",
			      i, (unsigned long long)r.rip, e.reason);
			if (e.reason != WASP_EXIT_TIMEOUT)
				break;
			MUST(wasp_virtine_get_regs(c, &cr));
		}
		CHECK(cr.rbx > r.rbx, "pause %u: the copy did not run on", i);
		wasp_virtine_destroy(c);
	}
	printf("150 checkpoints on a breakpoint hit %llu times\n", (unsigned long long)prev);
	wasp_virtine_destroy(v);
}

/* A triple fault KVM had not reported when the checkpoint was taken is
 * part of the guest's state: the restored copy must meet it at once. */
static void t_pending_triple_fault(void)
{
	struct wasp_virtine *v = make(asm_dir, "spin.bin", 1 << 20, -1);
	if (wasp_virtine_triple_fault_events(v) < 0) {
		wasp_virtine_destroy(v);
		printf("skip: this kernel lacks KVM_CAP_X86_TRIPLE_FAULT_EVENT\n");
		exit(77);
	}
	struct kvm_vcpu_events ev;
	MUST(ioctl(wasp_virtine_vcpu_fd(v), KVM_GET_VCPU_EVENTS, &ev));
	CHECK(ev.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT, "no triple-fault state reported");
	ev.triple_fault.pending = 1;
	MUST(ioctl(wasp_virtine_vcpu_fd(v), KVM_SET_VCPU_EVENTS, &ev));
	struct wasp_virtine *c = clone_checked(v, -1);
	struct wasp_exit e = run_to_end(c);
	CHECK(e.reason == WASP_EXIT_FAULT && e.fault.kind == WASP_FAULT_SHUTDOWN,
	      "the copy ran on (%d) past its pending triple fault", e.reason);
	wasp_virtine_destroy(c);
	wasp_virtine_destroy(v);
}

/* The same with every instruction single-stepped: the steps traced over
 * all the pauses are exactly the instructions spin ran (inc and jmp: two
 * per loop, one more when stopped between them), none lost, none counted
 * twice, and each checkpoint's copy runs on without the tracer. */
static void t_paused_while_stepping(void)
{
	struct wasp_virtine *v = make(asm_dir, "spin.bin", 1 << 20, -1);
	struct wasp_regs r;
	MUST(wasp_virtine_get_regs(v, &r));
	uint64_t loop = r.rip;
	struct wasp_trace_opts o = {.fn = no_trace, .events = WASP_TRACE_BIT(WASP_TRACE_STEP),
				    .max_steps = UINT64_MAX};
	MUST(wasp_virtine_trace(v, &o));
	for (unsigned i = 0; i < 100; i++) {
		struct wasp_exit e = run_for(v, 50 + (i * 53) % 500);
		CHECK(e.reason == WASP_EXIT_PAUSED, "pause %u: run ended with %d", i, e.reason);
		MUST(wasp_virtine_get_regs(v, &r));
		uint64_t ran = 2 * r.rbx - (r.rip != loop);
		CHECK(wasp_virtine_trace_steps(v) == ran, "pause %u: %llu steps traced, %llu instructions ran",
		      i, (unsigned long long)wasp_virtine_trace_steps(v), (unsigned long long)ran);
		if (i % 10 == 0) {
			struct wasp_virtine *c = clone_checked(v, -1);
			MUST(wasp_virtine_run(c, 2000000, &e));
			CHECK(e.reason == WASP_EXIT_TIMEOUT, "pause %u: the copy ended with %d", i, e.reason);
			wasp_virtine_destroy(c);
		}
	}
	printf("100 pauses while stepping: %llu steps\n", (unsigned long long)wasp_virtine_trace_steps(v));
	wasp_virtine_destroy(v);
}

static const struct test_case cases[] = {
	{"paused_while_stepping", t_paused_while_stepping},
	{"pending_triple_fault", t_pending_triple_fault},
	{"paused_on_breakpoint", t_paused_on_breakpoint},
	{"live_no_exits", t_live_no_exits},
	{"mappable", t_mappable},
	{"cpuid_subset", t_cpuid_subset},
	{"incremental_chain", t_incremental_chain},
	{"live", t_live},
	{"callbacks_and_files", t_callbacks_and_files},
	{"chain", t_chain},
	{"real_mode", t_real_mode},
	{"protected_mode", t_protected_mode},
	{"long_mode", t_long_mode},
	{"sse", t_sse},
	{"avx", t_avx},
	{"bad_streams", t_bad_streams},
	{"not_a_checkpoint", t_not_a_checkpoint},
};

int main(int argc, char **argv)
{
	const char **vars[] = {&asm_dir, &guest_dir};
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, vars, 2, "ASMDIR GUESTDIR ", true);
}
