/*
 * test_pool: the virtine pool, snapshot starts and wasp_call() on real KVM.
 * Usage: test_pool CASE (image paths are compiled in by tests/vmm/pool.cmake).
 * The main guest is tests/guests/pool_guest.c (see its header for ops).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static atomic_uint init_runs;

static int64_t hc_init_count(struct wasp_virtine *v, const uint64_t args[6], void *opaque)
{
	(void)v, (void)args, (void)opaque;
	atomic_fetch_add(&init_runs, 1);
	return 0;
}

static int setup_guest(struct wasp_virtine *v, void *opaque)
{
	(void)opaque;
	return wasp_virtine_register_hypercall(v, 64, "init_count", hc_init_count, NULL);
}

static void guest_config(struct wasp_pool_config *c, unsigned size)
{
	wasp_pool_config_init(c);
	c->vm.mem_size = 1 << 20;
	c->image_path = POOL_GUEST_IMAGE;
	c->size = size;
	c->allow = "get_arg,set_ret,snapshot,console_write,init_count";
	c->setup = setup_guest;
}

static struct wasp_pool *guest_pool(unsigned size)
{
	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	guest_config(&c, size);
	int r = wasp_pool_create(&c, &p);
	CHECK(r == 0, "wasp_pool_create -> %d", r);
	return p;
}

static uint64_t fib(unsigned n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/* One fib call through the pool; returns true when the answer is right. */
static bool call_fib(struct wasp_pool *p, unsigned n)
{
	uint8_t in[5] = {'f'};
	uint64_t out = 0;
	memcpy(in + 1, &n, 4);
	int r = wasp_call(p, in, sizeof in, &out, sizeof out, NULL);
	if (r != 8 || out != fib(n)) {
		fprintf(stderr, "fib(%u): wasp_call -> %d (%s), result %llu, want %llu\n", n, r,
			r < 0 ? wasp_last_error() : "", (unsigned long long)out,
			(unsigned long long)fib(n));
		return false;
	}
	return true;
}

/* ---- cases ---------------------------------------------------------------- */

static void t_calls(void)
{
	atomic_store(&init_runs, 0);
	struct wasp_pool *p = guest_pool(2);
	if (!p)
		return;
	for (unsigned i = 0; i < 300; i++)
		CHECK(call_fib(p, i % 25), "call %u", i);
	struct wasp_pool_stats st;
	wasp_pool_stats(p, &st);
	CHECK(st.snapshot, "calls start at the snapshot");
	/* Init ran in the first virtine only; the second is a clone. */
	CHECK(atomic_load(&init_runs) == 1, "init ran %u times", atomic_load(&init_runs));
	CHECK(st.gets == 300, "gets %llu", (unsigned long long)st.gets);
	CHECK(st.resets >= 290, "resets %llu", (unsigned long long)st.resets);
	CHECK(st.destroyed == 0, "destroyed %llu", (unsigned long long)st.destroyed);
	printf("300 calls, %llu resets, %.1f pages and %.1f us per reset, %llu pristine pages\n",
	       (unsigned long long)st.resets, (double)st.reset_pages / (double)st.resets,
	       (double)st.reset_ns / 1e3 / (double)st.resets,
	       (unsigned long long)st.pristine_pages);
	wasp_pool_destroy(p);
}

static bool mem_has(struct wasp_virtine *v, uint64_t pattern)
{
	size_t n = wasp_virtine_mem_size(v);
	const uint8_t *m = wasp_virtine_gpa(v, 0, n);
	for (size_t off = 0; off + 8 <= n; off += 8)
		if (!memcmp(m + off, &pattern, 8))
			return true;
	return false;
}

static void t_secret(void)
{
	const uint64_t secret = 0x5ec12e7c0ffee123ull;
	struct wasp_pool *p = guest_pool(1);
	struct wasp_virtine *v;
	struct wasp_exit e;
	if (!p)
		return;

	/* Call N: the secret in memory and registers when the call ends. */
	CHECK(wasp_pool_get(p, &v) == 0, "get");
	CHECK(!mem_has(v, secret), "a fresh virtine holds no secret");
	uint8_t in[9] = {'s'};
	memcpy(in + 1, &secret, 8);
	CHECK(wasp_virtine_set_arg(v, in, sizeof in) == 0, "set_arg");
	CHECK(wasp_virtine_run(v, 0, &e) == 0, "run");
	CHECK(e.reason == WASP_EXIT_HYPERCALL && e.hypercall.nr == WASP_HC_SET_RET,
	      "call N ended %s nr %llu", wasp_exit_reason_name(e.reason),
	      (unsigned long long)e.hypercall.nr);
	struct wasp_regs regs;
	CHECK(wasp_virtine_get_regs(v, &regs) == 0, "get_regs");
	CHECK(regs.r12 == secret && regs.r15 == secret && regs.rbx == secret,
	      "the secret is in the registers at the end of call N (r12 %llx)",
	      (unsigned long long)regs.r12);
	/* The control: the test can see the secret when it is there. */
	CHECK(mem_has(v, secret), "the secret is in guest memory after call N");
	wasp_pool_put(p, v);
	CHECK(wasp_pool_fill(p) == 0, "fill");

	/* Call N+1 gets the same virtine (the pool holds one). */
	struct wasp_virtine *w;
	CHECK(wasp_pool_get(p, &w) == 0, "get again");
	CHECK(w == v, "the pool of one hands out the same virtine");
	CHECK(!mem_has(w, secret), "no byte of guest memory holds the secret after the reset");
	uint8_t chk = 'c';
	CHECK(wasp_virtine_set_arg(w, &chk, 1) == 0, "set_arg");
	CHECK(wasp_virtine_run(w, 0, &e) == 0, "run");
	size_t len;
	const uint64_t *r = wasp_virtine_ret(w, &len);
	CHECK(len == (13 + 32 + 2) * 8, "check result of %zu bytes", len);
	if (len == (13 + 32 + 2) * 8) {
		for (int i = 0; i < 13 + 32; i++)
			CHECK(r[i] != secret, "register word %d at the start of call N+1 holds the "
			      "secret", i);
		CHECK(r[45] != secret, "the static page holds the secret in call N+1");
		CHECK(r[46] != secret, "the heap holds the secret in call N+1");
	}
	wasp_pool_put(p, w);

	/* The same through wasp_call(), many times, with a fresh secret each:
	 * pages the pool has learnt to leave writable (hot) are covered too. */
	for (uint64_t i = 1; i <= 20; i++) {
		uint64_t s = secret ^ (i * 0x9e3779b97f4a7c15ull), got = 0;
		memcpy(in + 1, &s, 8);
		CHECK(wasp_call(p, in, sizeof in, &got, sizeof got, NULL) == 8 && got == s,
		      "secret call %llu", (unsigned long long)i);
		CHECK(wasp_pool_fill(p) == 0 && wasp_pool_get(p, &w) == 0, "get %llu",
		      (unsigned long long)i);
		CHECK(!mem_has(w, s), "secret %llu is in guest memory after the reset",
		      (unsigned long long)i);
		wasp_pool_put(p, w);
		uint64_t dump[47];
		CHECK(wasp_call(p, &chk, 1, dump, sizeof dump, NULL) == (int)sizeof dump,
		      "check call %llu", (unsigned long long)i);
		for (int k = 0; k < 47; k++)
			CHECK(dump[k] != s, "word %d holds secret %llu", k, (unsigned long long)i);
	}
	wasp_pool_destroy(p);
}

/* pool_fib names an argument buffer in its snapshot hypercall: one exit
 * per call (set_ret), and the argument still arrives whatever its form. */
static void t_fast_arg(void)
{
	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	wasp_pool_config_init(&c);
	c.vm.mem_size = 1 << 20;
	c.image_path = POOL_FIB_IMAGE;
	c.size = 2;
	CHECK(wasp_pool_create(&c, &p) == 0, "create");
	if (!p)
		return;
	for (unsigned i = 0; i < 100; i++) {
		struct wasp_virtine *v;
		struct wasp_exit e;
		struct wasp_stats s0, s1;
		unsigned n = i % 30;
		char text[16];
		uint64_t got = 0;
		size_t len;
		if (wasp_pool_get(p, &v) < 0) {
			CHECK(0, "get %u", i);
			break;
		}
		wasp_virtine_stats(v, &s0);
		int tl = snprintf(text, sizeof text, "%u", n);
		/* Binary and text arguments, and one longer than the guest's buffer. */
		if (i % 3 == 0)
			CHECK(wasp_pool_set_arg(p, v, &n, 4) == 0, "set_arg");
		else if (i % 3 == 1)
			CHECK(wasp_pool_set_arg(p, v, text, (size_t)tl) == 0, "set_arg");
		else {
			char longarg[100];
			memset(longarg, ' ', sizeof longarg);
			memcpy(longarg + sizeof longarg - (size_t)tl - 1, text, (size_t)tl + 1);
			/* The guest sees its first 31 bytes: spaces, so strtoul gives 0. */
			CHECK(wasp_pool_set_arg(p, v, longarg, sizeof longarg) == 0, "set_arg");
			n = 0;
		}
		CHECK(wasp_virtine_run(v, 0, &e) == 0 && e.reason == WASP_EXIT_HYPERCALL &&
			      e.hypercall.nr == WASP_HC_SET_RET,
		      "call %u ended %s", i, wasp_exit_reason_name(e.reason));
		wasp_virtine_stats(v, &s1);
		const void *r = wasp_virtine_ret(v, &len);
		if (len == 8)
			memcpy(&got, r, 8);
		CHECK(len == 8 && got == fib(n), "fib(%u) = %llu", n, (unsigned long long)got);
		CHECK(s1.exits - s0.exits == 1, "call %u took %llu exits", i,
		      (unsigned long long)(s1.exits - s0.exits));
		wasp_pool_put(p, v);
	}
	uint64_t got = 0;
	CHECK(wasp_call(p, "20", 2, &got, sizeof got, NULL) == 8 && got == 6765, "wasp_call");
	wasp_pool_destroy(p);
}

static void t_no_snapshot(void)
{
	atomic_store(&init_runs, 0);
	setenv("WASP_NO_SNAPSHOT", "1", 1);
	struct wasp_pool *p = guest_pool(2);
	unsetenv("WASP_NO_SNAPSHOT");
	if (!p)
		return;
	struct wasp_pool_stats st;
	wasp_pool_stats(p, &st);
	CHECK(!st.snapshot, "WASP_NO_SNAPSHOT=1 turns snapshots off");
	CHECK(atomic_load(&init_runs) == 0, "no init before the first call (%u)",
	      atomic_load(&init_runs));
	for (unsigned i = 0; i < 30; i++)
		CHECK(call_fib(p, i % 20), "call %u", i);
	/* Every call starts at the entry, so init runs every time. */
	CHECK(atomic_load(&init_runs) == 30, "init ran %u times in 30 calls",
	      atomic_load(&init_runs));
	wasp_pool_destroy(p);

	/* And with it explicitly off in the configuration. */
	atomic_store(&init_runs, 0);
	struct wasp_pool_config c;
	guest_config(&c, 1);
	c.snapshot = WASP_POOL_SNAPSHOT_OFF;
	CHECK(wasp_pool_create(&c, &p) == 0, "create");
	for (unsigned i = 0; p && i < 5; i++)
		CHECK(call_fib(p, 10), "call %u", i);
	CHECK(atomic_load(&init_runs) == 5, "init ran %u times in 5 calls",
	      atomic_load(&init_runs));
	wasp_pool_destroy(p);
}

struct thread_arg {
	struct wasp_pool *p;
	unsigned id, ok, calls;
};

static void *thread_fn(void *arg)
{
	struct thread_arg *a = arg;
	for (unsigned i = 0; i < a->calls; i++)
		a->ok += call_fib(a->p, (a->id * 7 + i) % 23);
	return NULL;
}

static void t_threads(void)
{
	atomic_store(&init_runs, 0);
	struct wasp_pool *p = guest_pool(4);
	if (!p)
		return;
	enum { N = 8, CALLS = 60 };
	pthread_t t[N];
	struct thread_arg a[N];
	for (unsigned i = 0; i < N; i++) {
		a[i] = (struct thread_arg){.p = p, .id = i, .calls = CALLS};
		CHECK(pthread_create(&t[i], NULL, thread_fn, &a[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECK(a[i].ok == CALLS, "thread %u: %u of %u calls right", i, a[i].ok, CALLS);
	}
	struct wasp_pool_stats st;
	wasp_pool_stats(p, &st);
	CHECK(st.gets == N * CALLS, "gets %llu", (unsigned long long)st.gets);
	CHECK(st.created <= 4, "at most size virtines (%llu)", (unsigned long long)st.created);
	CHECK(atomic_load(&init_runs) == 1, "init ran %u times", atomic_load(&init_runs));
	printf("%d threads x %d calls, %llu waited for a virtine\n", N, CALLS,
	       (unsigned long long)st.get_waits);
	wasp_pool_destroy(p);
}

static void t_faults(void)
{
	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	struct wasp_call_info info;
	guest_config(&c, 2);
	c.call_timeout_ns = 100 * 1000000ull;
	CHECK(wasp_pool_create(&c, &p) == 0, "create");
	if (!p)
		return;

	uint8_t out[16];
	uint8_t op = 'x';
	int r = wasp_call(p, &op, 1, out, sizeof out, &info);
	CHECK(r == -EFAULT && info.status == WASP_CALL_FAULT, "fault -> %d %s", r,
	      wasp_call_status_name(info.status));
	CHECK(strstr(wasp_last_error(), "fault"), "message: %s", wasp_last_error());
	CHECK(call_fib(p, 12), "a call after a fault");

	op = 'l';
	r = wasp_call(p, &op, 1, out, sizeof out, &info);
	CHECK(r == -ETIMEDOUT && info.status == WASP_CALL_TIMEOUT, "spin -> %d %s", r,
	      wasp_call_status_name(info.status));
	CHECK(call_fib(p, 13), "a call after a timeout");

	uint8_t ex[5] = {'e', 5, 0, 0, 0};
	r = wasp_call(p, ex, sizeof ex, out, sizeof out, &info);
	CHECK(r == -ECHILD && info.status == WASP_CALL_EXITED && info.exit_code == 5,
	      "exit 5 -> %d %s %lld", r, wasp_call_status_name(info.status),
	      (long long)info.exit_code);
	uint8_t m[9] = {'m', 1, 2, 3, 4, 5, 6, 7, 8};
	r = wasp_call(p, m, sizeof m, out, sizeof out, &info);
	CHECK(r == 0 && info.status == WASP_CALL_RETURNED && info.ret_len == 0,
	      "exit 0 without a result -> %d", r);

	/* Results: exactly, too long, and an argument over the limit. */
	uint8_t big[4096];
	uint8_t b[5] = {'b'};
	uint32_t blen = 1000;
	memcpy(b + 1, &blen, 4);
	r = wasp_call(p, b, sizeof b, big, sizeof big, &info);
	CHECK(r == 1000 && big[999] == (uint8_t)999, "1000-byte result -> %d", r);
	memset(big, 0, sizeof big);
	r = wasp_call(p, b, sizeof b, big, 100, &info);
	CHECK(r == -EMSGSIZE && info.ret_len == 1000 && big[99] == 99 && big[100] == 0,
	      "1000 bytes into 100 -> %d, ret_len %zu", r, info.ret_len);
	r = wasp_call(p, b, (2u << 20), big, sizeof big, &info);
	CHECK(r == -E2BIG, "a 2 MiB argument -> %d", r);

	for (unsigned i = 0; i < 20; i++) {
		op = i % 2 ? 'x' : 'f';
		if (op == 'x')
			CHECK(wasp_call(p, &op, 1, out, sizeof out, NULL) == -EFAULT, "fault %u", i);
		else
			CHECK(call_fib(p, i), "call %u", i);
	}
	CHECK(wasp_pool_fill(p) == 0, "fill after faults: %s", wasp_last_error());
	struct wasp_pool_stats st;
	wasp_pool_stats(p, &st);
	CHECK(st.destroyed == 12, "destroyed %llu (11 faults, 1 timeout)",
	      (unsigned long long)st.destroyed);
	CHECK(st.ready == 2, "the pool is full again: %u ready", st.ready);
	wasp_pool_destroy(p);
}

/* The three-byte `out 0xFA, eax` and a real-mode image with state. */
static void t_real_mode(void)
{
	static const uint8_t exit3[] = {0x66, 0xe7, 0xfa};
	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	struct wasp_call_info info;
	wasp_pool_config_init(&c);
	c.vm.mem_size = 1 << 20;
	c.image = exit3;
	c.image_len = sizeof exit3;
	CHECK(wasp_pool_create(&c, &p) == 0, "create");
	if (!p)
		return;
	for (int i = 0; i < 200; i++) {
		struct wasp_virtine *v;
		struct wasp_exit e;
		if (wasp_pool_get(p, &v) < 0) {
			CHECK(0, "get %d", i);
			break;
		}
		struct wasp_stats before, after;
		wasp_virtine_stats(v, &before);
		CHECK(wasp_virtine_run(v, 0, &e) == 0 && e.reason == WASP_EXIT_EXITED && e.code == 0,
		      "run %d: %s %lld", i, wasp_exit_reason_name(e.reason), (long long)e.code);
		wasp_virtine_stats(v, &after);
		CHECK(after.exits - before.exits == 1, "run %d took %llu exits", i,
		      (unsigned long long)(after.exits - before.exits));
		wasp_pool_put(p, v);
	}
	CHECK(wasp_call(p, NULL, 0, NULL, 0, &info) == 0 && info.status == WASP_CALL_RETURNED,
	      "wasp_call of the three-byte virtine");
	struct wasp_pool_stats st;
	wasp_pool_stats(p, &st);
	CHECK(!st.snapshot, "no snapshot for a headerless image");
	wasp_pool_destroy(p);

	/* pool_count exits with (LSTAR + counter) and bumps both. */
	wasp_pool_config_init(&c);
	c.vm.mem_size = 1 << 20;
	c.image_path = ASM_DIR "/pool_count.bin";
	c.size = 2;
	CHECK(wasp_pool_create(&c, &p) == 0, "create pool_count");
	for (int i = 0; p && i < 50; i++) {
		int r = wasp_call(p, NULL, 0, NULL, 0, &info);
		CHECK(r == 0 && info.exit_code == 0, "call %d: %d, exit code %lld (state leaked)", i,
		      r, (long long)info.exit_code);
	}
	wasp_pool_destroy(p);
}

/* A C image without a snapshot point: refused with snapshots on, a plain
 * function with them off (argret reverses its argument). */
static void t_no_snapshot_point(void)
{
	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	wasp_pool_config_init(&c);
	c.vm.mem_size = 1 << 20;
	c.vm.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	c.image_path = ARGRET_IMAGE;
	int r = wasp_pool_create(&c, &p);
	CHECK(r == -ENOEXEC && !p, "create -> %d", r);
	CHECK(strstr(wasp_last_error(), "before its snapshot"), "message: %s", wasp_last_error());

	c.snapshot = WASP_POOL_SNAPSHOT_OFF;
	CHECK(wasp_pool_create(&c, &p) == 0, "create without snapshot");
	for (int i = 0; p && i < 10; i++) {
		char out[16] = {0};
		r = wasp_call(p, "hello", 5, out, sizeof out, NULL);
		CHECK(r == 5 && !memcmp(out, "olleh", 5), "call %d -> %d '%s'", i, r, out);
	}
	wasp_pool_destroy(p);
	close(c.vm.console_fd);
}

/* Host state: a file a call leaves open is closed by the reset (the next
 * call's open gets the same guest fd), and the snapshot also works for a
 * C image entered in real mode (its boot stub runs once, in init). */
static void t_host_state(void)
{
	char dir[] = "/tmp/wasp-pool-XXXXXX";
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	char path[sizeof dir + 8];
	snprintf(path, sizeof path, "%s/f", dir);
	FILE *f = fopen(path, "w");
	CHECK(f && fputs("x", f) >= 0 && fclose(f) == 0, "make %s", path);

	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	guest_config(&c, 1);
	c.vm.sandbox_dir = dir;
	c.allow = "get_arg,set_ret,snapshot,init_count,open";
	CHECK(wasp_pool_create(&c, &p) == 0, "create");
	for (int i = 0; p && i < 10; i++) {
		int32_t fd = -1;
		uint8_t op = 'o';
		CHECK(wasp_call(p, &op, 1, &fd, sizeof fd, NULL) == 4 && fd == 3,
		      "call %d opened guest fd %d (want 3: the last call's file closed)", i, fd);
	}
	wasp_pool_destroy(p);
	unlink(path);
	rmdir(dir);

	atomic_store(&init_runs, 0);
	guest_config(&c, 2);
	c.mode = WASP_MODE_REAL;
	CHECK(wasp_pool_create(&c, &p) == 0, "create in real mode");
	struct wasp_pool_stats st;
	if (p) {
		wasp_pool_stats(p, &st);
		CHECK(st.snapshot, "snapshot after the real-mode boot");
	}
	for (unsigned i = 0; p && i < 40; i++)
		CHECK(call_fib(p, i % 20), "call %u", i);
	CHECK(atomic_load(&init_runs) == 1, "init ran %u times", atomic_load(&init_runs));
	wasp_pool_destroy(p);
}

static void *blocked_get(void *arg)
{
	struct wasp_virtine *v = NULL;
	int r = wasp_pool_get(arg, &v);
	return (void *)(intptr_t)(r == -ESHUTDOWN && !v);
}

static void t_destroy_outstanding(void)
{
	struct wasp_pool *p = guest_pool(3);
	struct wasp_virtine *a = NULL, *b = NULL;
	struct wasp_exit e;
	if (!p)
		return;
	CHECK(wasp_pool_get(p, &a) == 0 && wasp_pool_get(p, &b) == 0, "two gets");
	wasp_pool_destroy(p);
	/* Still valid after the destroy, until given back. */
	uint8_t in[5] = {'f', 10, 0, 0, 0};
	CHECK(wasp_virtine_set_arg(a, in, sizeof in) == 0, "set_arg");
	CHECK(wasp_virtine_run(a, 0, &e) == 0 && e.reason == WASP_EXIT_HYPERCALL, "run after destroy");
	size_t len;
	const uint64_t *r = wasp_virtine_ret(a, &len);
	CHECK(len == 8 && *r == 55, "fib(10) after destroy");
	wasp_pool_put(p, a);
	wasp_pool_discard(p, b); /* the last one frees the pool (ASan checks) */

	/* A get waiting (all virtines out) when destroy begins returns
	 * -ESHUTDOWN, and so does one that starts after it. */
	p = guest_pool(1);
	if (!p)
		return;
	CHECK(wasp_pool_get(p, &a) == 0, "get the only virtine");
	pthread_t t;
	void *ok = NULL;
	CHECK(pthread_create(&t, NULL, blocked_get, p) == 0, "thread");
	usleep(50000); /* let it block (it passes either way) */
	wasp_pool_destroy(p);
	pthread_join(t, &ok);
	CHECK(ok, "the waiting get returned -ESHUTDOWN");
	CHECK(wasp_pool_get(p, &b) == -ESHUTDOWN, "a get after destroy");
	wasp_pool_put(p, a); /* frees the pool */
}

static void t_get_after_destroy_started(void)
{
	/* A pool whose virtines cannot be made reports why on get. */
	struct wasp_pool_config c;
	struct wasp_pool *p = NULL;
	guest_config(&c, 2);
	c.vm.mem_size = 1000; /* not page aligned */
	int r = wasp_pool_create(&c, &p);
	CHECK(r == -EINVAL && !p, "bad memory size -> %d", r);
	wasp_pool_config_init(&c);
	CHECK(wasp_pool_create(&c, &p) == -EINVAL, "no image");
	c.image_path = "/nonexistent/image.bin";
	CHECK(wasp_pool_create(&c, &p) == -ENOENT, "missing image: %s", wasp_last_error());
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		{"calls", t_calls},
		{"secret", t_secret},
		{"fast_arg", t_fast_arg},
		{"no_snapshot", t_no_snapshot},
		{"threads", t_threads},
		{"faults", t_faults},
		{"real_mode", t_real_mode},
		{"no_snapshot_point", t_no_snapshot_point},
		{"destroy_outstanding", t_destroy_outstanding},
		{"host_state", t_host_state},
		{"bad_config", t_get_after_destroy_started},
	};
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, NULL, 0, "", true);
}
