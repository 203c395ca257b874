/*
 * test_vmm: the virtine API on real KVM, one case per invocation
 * (`test_vmm ASMDIR CASE`) so ctest counts and reports each one.
 * Images are the hand-written ones in tests/asm/, assembled by the build.
 * Exit 0 pass, 1 fail, 77 skip (no /dev/kvm).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vmm.h"

static const char *asm_dir;

/* A virtine with `image` (a file in asm_dir) loaded in its own mode. */
static struct wasp_virtine *make(const char *image, size_t mem, const char *sandbox)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[512];

	wasp_config_init(&cfg);
	if (mem)
		cfg.mem_size = mem;
	cfg.sandbox_dir = sandbox;
	if (wasp_virtine_create(&cfg, &v) < 0) {
		fprintf(stderr, "create: %s\n", wasp_last_error());
		exit(1);
	}
	snprintf(path, sizeof path, "%s/%s.bin", asm_dir, image);
	if (wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) < 0) {
		fprintf(stderr, "load %s: %s\n", path, wasp_last_error());
		exit(1);
	}
	return v;
}

static struct wasp_exit run(struct wasp_virtine *v, uint64_t timeout_ns)
{
	struct wasp_exit e;
	int r = wasp_virtine_run(v, timeout_ns, &e);
	if (r < 0) {
		fprintf(stderr, "run: %s\n", wasp_last_error());
		exit(1);
	}
	return e;
}

/* Puts a hypercall for hcall.asm at 0x9000. */
static void put_call(struct wasp_virtine *v, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	uint64_t *p = wasp_virtine_gpa(v, 0x9000, 7 * 8);
	uint64_t c[7] = {nr, a0, a1, a2, 0, 0, 0};
	memcpy(p, c, sizeof c);
}

static int64_t call_once(struct wasp_virtine *v, uint64_t nr, uint64_t a0, uint64_t a1,
			 uint64_t a2)
{
	/* A reload zeroes guest memory: keep the test's scratch pages. */
	static uint8_t scratch[0x3000];
	char path[512];
	memcpy(scratch, wasp_virtine_gpa(v, 0xa000, sizeof scratch), sizeof scratch);
	snprintf(path, sizeof path, "%s/hcall.bin", asm_dir);
	if (wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) < 0) {
		fprintf(stderr, "load: %s\n", wasp_last_error());
		exit(1);
	}
	memcpy(wasp_virtine_gpa(v, 0xa000, sizeof scratch), scratch, sizeof scratch);
	put_call(v, nr, a0, a1, a2);
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED, "hypercall %llu: exit %s", (unsigned long long)nr,
	      wasp_exit_reason_name(e.reason));
	return e.code;
}

/* ---- cases ------------------------------------------------------------ */

static void t_exit3(void)
{
	static const unsigned char img[] = {0x66, 0xe7, 0xfa}; /* out 0xfa, eax */
	struct wasp_virtine *v;
	CHECK(wasp_virtine_create(NULL, &v) == 0, "create");
	CHECK(wasp_virtine_load(v, img, sizeof img, 0, WASP_MODE_AUTO) == 0, "load");
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 0, "reason %d code %lld", e.reason,
	      (long long)e.code);
	/* Loading again resets the vCPU and zeroes memory: the same image runs again. */
	memset(wasp_virtine_gpa(v, 0x100000, 16), 0xab, 16);
	CHECK(wasp_virtine_load(v, img, sizeof img, 0, WASP_MODE_AUTO) == 0, "reload");
	CHECK(*(uint8_t *)wasp_virtine_gpa(v, 0x100000, 1) == 0, "memory zeroed on reload");
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 0, "second run %d", e.reason);
	/* A reload keeps the pages the image is copied into (vmm_kvm.c):
	 * what the last run left in them around the image must still read
	 * zero, before it (an unaligned load) and after it. */
	memset(wasp_virtine_gpa_w(v, 0x8000, 0x2000), 0xcd, 0x2000);
	CHECK(wasp_virtine_load(v, img, sizeof img, 0x8010, WASP_MODE_REAL) == 0, "unaligned reload");
	const uint8_t *m = wasp_virtine_gpa(v, 0x8000, 0x2000);
	size_t nz = 0;
	for (size_t i = 0; i < 0x2000; i++)
		if (i < 0x10 || i >= 0x10 + sizeof img)
			nz += m[i] != 0;
	CHECK(nz == 0, "%zu bytes around the reloaded image are not zero", nz);
	CHECK(!memcmp(m + 0x10, img, sizeof img), "the reloaded image is not in place");
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 0, "run at 0x8010: %s",
	      wasp_exit_reason_name(e.reason));
	wasp_virtine_destroy(v);
}

/* What a run (or the host) left in guest memory reads zero after a reload,
 * also in the pages the new image is copied into, which a load keeps
 * rather than punches (vmm_kvm.c). Through a read of the file and a copy
 * of a buffer. */
static void reload_zeroed(struct wasp_virtine *v, const void *img, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/exit7.bin", asm_dir);
	for (int k = 0; k < 2; k++) {
		memset(wasp_virtine_gpa_w(v, WASP_GPA_LOAD, 0x2000), 0xcd, 0x2000);
		memset(wasp_virtine_gpa_w(v, 0x100000, 16), 0xab, 16);
		if (k == 0)
			MUST(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO));
		else
			MUST(wasp_virtine_load(v, img, len, 0, WASP_MODE_AUTO));
		const uint8_t *m = wasp_virtine_gpa(v, WASP_GPA_LOAD, 0x2000);
		size_t nz = 0;
		for (size_t i = len; i < 0x2000; i++)
			nz += m[i] != 0;
		CHECK(nz == 0 && !memcmp(m, img, len), "%s: %zu bytes after the image are not zero",
		      k ? "load" : "load_file", nz);
		CHECK(*(uint8_t *)wasp_virtine_gpa(v, 0x100000, 1) == 0, "memory zeroed on reload");
		struct wasp_exit e = run(v, 0);
		CHECK(e.reason == WASP_EXIT_EXITED && e.code == 7, "rerun: reason %d code %lld",
		      e.reason, (long long)e.code);
	}
}

static void t_exit_code(void)
{
	struct wasp_virtine *v = make("exit7", 0, NULL);
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 7, "reason %d code %lld", e.reason,
	      (long long)e.code);
	static uint8_t img[4096];
	char path[512];
	snprintf(path, sizeof path, "%s/exit7.bin", asm_dir);
	int fd = open(path, O_RDONLY);
	ssize_t len = fd >= 0 ? read(fd, img, sizeof img) : -1;
	CHECK(len > 0 && (size_t)len < sizeof img, "read exit7.bin");
	close(fd);
	reload_zeroed(v, img, (size_t)len);
	/* Loads with no run between them: a big image, then exit7 over it,
	 * and the host's writes into a fresh virtine: none of it may stay. */
	static uint8_t big[64 << 10];
	memset(big, 0xee, sizeof big);
	memcpy(big, img, (size_t)len);
	MUST(wasp_virtine_load(v, big, sizeof big, 0, WASP_MODE_AUTO));
	MUST(wasp_virtine_load(v, img, (size_t)len, 0, WASP_MODE_AUTO));
	const uint8_t *m = wasp_virtine_gpa(v, WASP_GPA_LOAD, sizeof big);
	size_t nz = 0;
	for (size_t i = (size_t)len; i < sizeof big; i++)
		nz += m[i] != 0;
	CHECK(nz == 0, "%zu bytes of the image loaded before are left", nz);
	struct wasp_exit e2 = run(v, 0);
	CHECK(e2.reason == WASP_EXIT_EXITED && e2.code == 7, "after two loads: reason %d", e2.reason);
	wasp_virtine_destroy(v);
	v = make("exit7", 0, NULL);
	memset(wasp_virtine_gpa_w(v, 0x100000, 16), 0xab, 16);
	MUST(wasp_virtine_load(v, img, (size_t)len, 0, WASP_MODE_AUTO));
	CHECK(*(uint8_t *)wasp_virtine_gpa(v, 0x100000, 1) == 0, "the host's write before any run stayed");
	wasp_virtine_destroy(v);
}

static void t_allow_deny(void)
{
	struct wasp_virtine *v = make("hcall", 0, NULL);
	CHECK(call_once(v, WASP_HC_CLOCK, WASP_CLOCK_MONOTONIC, 0, 0) == -EPERM, "denied by default");
	CHECK(wasp_virtine_allow(v, "clock") == 0, "allow clock");
	CHECK(call_once(v, WASP_HC_CLOCK, 9, 0, 0) == -EINVAL, "bad clock id");
	int64_t t = call_once(v, WASP_HC_CLOCK, WASP_CLOCK_MONOTONIC, 0, 0);
	CHECK(t != -EPERM && t != -EINVAL, "allowed clock answered %lld", (long long)t);
	CHECK(wasp_virtine_allow(v, "clock,nosuchcall") == -ENOENT, "unknown name refused");
	CHECK(strstr(wasp_last_error(), "nosuchcall") != NULL, "error names it");
	CHECK(wasp_virtine_allow_nr(v, WASP_HC_CLOCK, false) == 0, "deny again");
	CHECK(call_once(v, WASP_HC_CLOCK, 0, 0, 0) == -EPERM, "denied again");
	CHECK(call_once(v, 99, 0, 0, 0) == -ENOSYS, "unknown number");
	CHECK(call_once(v, ~0ull, 0, 0, 0) == -ENOSYS, "huge number");
	struct wasp_stats st;
	wasp_virtine_stats(v, &st);
	CHECK(st.hypercalls_denied == 2, "denied count %llu", (unsigned long long)st.hypercalls_denied);
	CHECK(wasp_hypercall_names_valid("files,clock,none") == 0, "names valid");
	CHECK(wasp_hypercall_names_valid("clok") == -ENOENT, "typo refused");
	wasp_virtine_destroy(v);
}

static int64_t twice(struct wasp_virtine *v, const uint64_t a[6], void *opaque)
{
	(void)v;
	(*(int *)opaque)++;
	return (int64_t)(a[0] * 2 + a[1]);
}

static void t_custom_hypercall(void)
{
	int calls = 0;
	struct wasp_virtine *v = make("hcall", 0, NULL);
	CHECK(wasp_virtine_register_hypercall(v, 3, "x", twice, &calls) == -EINVAL, "built-in range");
	CHECK(wasp_virtine_register_hypercall(v, 64, "clock", twice, &calls) == -EEXIST, "name taken");
	CHECK(wasp_virtine_register_hypercall(v, 64, "twice", twice, &calls) == 0, "register");
	CHECK(call_once(v, 64, 20, 1, 0) == -EPERM, "registered but denied");
	CHECK(wasp_virtine_allow(v, "twice") == 0, "allow by name");
	CHECK(call_once(v, 64, 20, 1, 0) == 41, "handler result");
	CHECK(calls == 1, "handler ran once, not %d", calls);
	wasp_virtine_destroy(v);
}

static void t_hypercall_exits(void)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[512];
	wasp_config_init(&cfg);
	cfg.hypercall_exits = true;
	CHECK(wasp_virtine_create(&cfg, &v) == 0, "create");
	snprintf(path, sizeof path, "%s/hcall.bin", asm_dir);
	CHECK(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) == 0, "load");
	put_call(v, 100, 11, 22, 33);
	CHECK(wasp_virtine_set_hypercall_result(v, 5) == -EINVAL, "nothing pending");
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_HYPERCALL, "reason %s", wasp_exit_reason_name(e.reason));
	CHECK(e.hypercall.nr == 100 && e.hypercall.args[0] == 11 && e.hypercall.args[1] == 22 &&
		      e.hypercall.args[2] == 33,
	      "nr %llu", (unsigned long long)e.hypercall.nr);
	struct wasp_regs regs;
	CHECK(wasp_virtine_get_regs(v, &regs) == 0 && regs.rax == (uint64_t)-ENOSYS,
	      "default answer in rax: 0x%llx", (unsigned long long)regs.rax);
	CHECK(wasp_virtine_set_hypercall_result(v, 1234) == 0, "answer");
	CHECK(wasp_virtine_get_regs(v, &regs) == 0 && regs.rax == 1234, "rax now the answer");
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 1234, "guest saw %lld", (long long)e.code);
	wasp_virtine_destroy(v);
}

static void t_gpa(void)
{
	struct wasp_virtine *v = make("exit7", 1 << 20, NULL);
	size_t m = wasp_virtine_mem_size(v);
	char buf[16];
	CHECK(m == 1 << 20, "size");
	CHECK(wasp_virtine_gpa(v, 0, m) != NULL, "whole memory");
	CHECK(wasp_virtine_gpa(v, m - 1, 1) != NULL, "last byte");
	CHECK(wasp_virtine_gpa(v, m - 1, 2) == NULL, "past the end");
	CHECK(wasp_virtine_gpa(v, m, 1) == NULL, "at the end");
	CHECK(wasp_virtine_gpa(v, ~0ull, 2) == NULL, "wrapping address");
	CHECK(wasp_virtine_gpa(v, 1, ~(size_t)0) == NULL, "wrapping length");
	CHECK(wasp_virtine_gpa(v, 0xfffffffffffff000ull, 0x2000) == NULL, "wraps to small");

	uint64_t *dirty = wasp_virtine_host_dirty(v);
	memset(dirty, 0, (m / 4096 + 63) / 64 * 8);
	CHECK(wasp_virtine_gpa_w(v, 0x5ff0, 0x20) != NULL, "write window");
	CHECK(dirty[0] == ((1ull << 5) | (1ull << 6)), "pages 5 and 6 dirty: 0x%llx",
	      (unsigned long long)dirty[0]);

	char *mem = wasp_virtine_gpa(v, 0, m);
	memcpy(mem + 0x9000, "abc", 4);
	CHECK(wasp_virtine_read_str(v, 0x9000, buf, sizeof buf) == 3 && !strcmp(buf, "abc"), "str");
	CHECK(wasp_virtine_read_str(v, 0x9000, buf, 3) == -ENAMETOOLONG, "too long");
	memset(mem + m - 4, 'x', 4);
	CHECK(wasp_virtine_read_str(v, m - 4, buf, sizeof buf) == -EFAULT, "runs off memory");
	CHECK(wasp_virtine_read_str(v, m, buf, sizeof buf) == -EFAULT, "outside");
	wasp_virtine_destroy(v);
}

static void t_bad_pointers(void)
{
	struct wasp_virtine *v = make("hcall", 1 << 20, NULL);
	uint64_t m = 1 << 20;
	CHECK(wasp_virtine_allow(v, "all") == 0, "allow");
	CHECK(call_once(v, WASP_HC_CONSOLE_WRITE, m, 1, 0) == -EFAULT, "outside");
	CHECK(call_once(v, WASP_HC_CONSOLE_WRITE, m - 4, 8, 0) == -EFAULT, "crosses the end");
	CHECK(call_once(v, WASP_HC_CONSOLE_WRITE, 0xfffffffffffff000ull, 0x2000, 0) == -EFAULT,
	      "wrapping");
	CHECK(call_once(v, WASP_HC_CONSOLE_WRITE, 0x9000, ~0ull, 0) == -EFAULT, "huge length");
	CHECK(call_once(v, WASP_HC_STDIN_READ, m - 1, 2, 0) == -EFAULT, "stdin outside");
	CHECK(call_once(v, WASP_HC_GET_ARG, m - 1, 16, 0) == -EFAULT, "get_arg outside");
	CHECK(call_once(v, WASP_HC_SET_RET, 1ull << 63, 16, 0) == -EFAULT, "set_ret outside");
	CHECK(call_once(v, WASP_HC_OPEN, m + 5, 0, 0) == -EACCES, "no sandbox: no files");
	CHECK(call_once(v, WASP_HC_READ, 3, 0x9000, 16) == -EBADF, "no such fd");
	CHECK(call_once(v, WASP_HC_CLOSE, ~0ull, 0, 0) == -EBADF, "huge fd");
	wasp_virtine_destroy(v);
}

static void t_args_ret(void)
{
	struct wasp_virtine *v = make("hcall", 0, NULL);
	size_t len;
	CHECK(wasp_virtine_allow(v, "get_arg,set_ret") == 0, "allow");
	CHECK(wasp_virtine_set_arg(v, "hello", 5) == 0, "set arg");
	CHECK(call_once(v, WASP_HC_GET_ARG, 0xa000, 3, 0) == 5, "length of the whole argument");
	char *mem = wasp_virtine_gpa(v, 0xa000, 8);
	CHECK(!memcmp(mem, "hel", 3) && mem[3] == 0, "copied min(len, cap)");
	memcpy(mem, "result!", 7);
	CHECK(call_once(v, WASP_HC_SET_RET, 0xa000, 7, 0) == 0, "set ret");
	const char *ret = wasp_virtine_ret(v, &len);
	CHECK(len == 7 && !memcmp(ret, "result!", 7), "ret buffer");
	CHECK(call_once(v, WASP_HC_SET_RET, 0xa000, (2u << 20), 0) == -E2BIG, "ret too big");
	wasp_virtine_destroy(v);
}

static void t_faults(void)
{
	struct wasp_virtine *v = make("ud2", 0, NULL);
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_FAULT && e.fault.kind == WASP_FAULT_SHUTDOWN, "ud2: %s/%s",
	      wasp_exit_reason_name(e.reason), wasp_fault_kind_name(e.fault.kind));
	CHECK(e.fault.cr3 == WASP_GPA_PML4, "registers captured (cr3 0x%llx)",
	      (unsigned long long)e.fault.cr3);
	wasp_virtine_destroy(v);

	v = make("nullrd", 0, NULL);
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_FAULT && e.fault.kind == WASP_FAULT_SHUTDOWN,
	      "NULL read: %s/%s", wasp_exit_reason_name(e.reason), wasp_fault_kind_name(e.fault.kind));
	wasp_virtine_destroy(v);

	v = make("hole", 3 << 20, NULL);
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_FAULT && e.fault.kind == WASP_FAULT_MMIO &&
		      e.fault.addr == 0x380000,
	      "hole: %s/%s at 0x%llx", wasp_exit_reason_name(e.reason),
	      wasp_fault_kind_name(e.fault.kind), (unsigned long long)e.fault.addr);
	/* The host survives and the virtine can be used again. */
	char path[512];
	snprintf(path, sizeof path, "%s/exit7.bin", asm_dir);
	CHECK(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) == 0, "reload after fault");
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 7, "runs after a fault");
	wasp_virtine_destroy(v);
}

static void t_timeout(void)
{
	struct wasp_virtine *v = make("spin", 0, NULL);
	uint64_t t0 = wasp_now_ns();
	struct wasp_exit e = run(v, 100 * 1000000ull);
	uint64_t el = wasp_now_ns() - t0;
	CHECK(e.reason == WASP_EXIT_TIMEOUT, "reason %s", wasp_exit_reason_name(e.reason));
	/* The upper bound only says the timeout ended the run (a loaded or
	 * emulated host may take long to get there). */
	CHECK(el >= 100 * 1000000ull && el < 300 * 1000000000ull, "took %llu ns",
	      (unsigned long long)el);
	/* A timed-out virtine resumes where it stopped: runs of 20 ms until it
	 * has counted on (on a loaded host a run's thread may not get the CPU
	 * before its timer fires, and the guest then runs nothing in it). */
	struct wasp_regs r1, r2;
	wasp_virtine_get_regs(v, &r1);
	r2 = r1;
	for (int k = 0; k < 10000 && r2.rbx == r1.rbx; k++) {
		e = run(v, 20 * 1000000ull);
		CHECK(e.reason == WASP_EXIT_TIMEOUT, "run %d ended %s", k, wasp_exit_reason_name(e.reason));
		if (e.reason != WASP_EXIT_TIMEOUT)
			break;
		wasp_virtine_get_regs(v, &r2);
	}
	CHECK(r2.rbx > r1.rbx, "never counted on: %llu -> %llu", (unsigned long long)r1.rbx,
	      (unsigned long long)r2.rbx);
	wasp_virtine_destroy(v);
}

struct pauser {
	struct wasp_virtine *v;
	unsigned delay_us;
	struct hc_gate *gate; /* NULL: none */
};

static void *pause_later(void *arg)
{
	struct pauser *p = arg;
	usleep(p->delay_us);
	wasp_virtine_pause(p->v);
	if (p->gate)
		atomic_store(&p->gate->open, true); /* asked for: on, into the pause */
	return NULL;
}

static struct wasp_exit run_paused_after(struct wasp_virtine *v, unsigned delay_us)
{
	pthread_t t;
	struct pauser p = {v, delay_us, NULL};
	pthread_create(&t, NULL, pause_later, &p);
	struct wasp_exit e = run(v, 30 * 1000000000ull);
	pthread_join(t, NULL);
	return e;
}

/* The same for a guest that ends: the pause lands wherever the timer puts
 * it, but a gate (harness.h) holds the guest at its `at`-th hypercall of
 * this run until the pause is asked for, so it cannot end first. */
static struct wasp_exit run_paused_gated(struct wasp_virtine *v, unsigned delay_us, uint64_t at)
{
	pthread_t t;
	struct hc_gate g;
	struct pauser p = {v, delay_us, &g};
	hc_gate_set(v, &g, -1, at);
	pthread_create(&t, NULL, pause_later, &p);
	struct wasp_exit e = run(v, 3600 * 1000000000ull);
	pthread_join(t, NULL);
	MUST(wasp_virtine_trace(v, NULL));
	return e;
}

static void t_pause(void)
{
	struct wasp_virtine *v = make("spin", 0, NULL);
	for (int i = 0; i < 5; i++) {
		struct wasp_exit e = run_paused_after(v, 20000);
		CHECK(e.reason == WASP_EXIT_PAUSED, "round %d: %s", i, wasp_exit_reason_name(e.reason));
	}
	/* Paused while not running: the next run returns at once, then runs on. */
	wasp_virtine_pause(v);
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_PAUSED, "pre-paused: %s", wasp_exit_reason_name(e.reason));
	e = run(v, 20 * 1000000ull);
	CHECK(e.reason == WASP_EXIT_TIMEOUT, "then runs: %s", wasp_exit_reason_name(e.reason));
	wasp_virtine_destroy(v);

	/* Paused in the middle of hypercalls: none lost, none repeated. */
	v = make("hcloop", 0, NULL);
	CHECK(wasp_virtine_allow(v, "clock") == 0, "allow");
	uint64_t n = 3000, *count = wasp_virtine_gpa(v, 0x9000, 8);
	*count = n;
	int pauses = 0;
	for (;;) {
		/* at most 1000 of the 3000 a run: paused at least twice */
		e = run_paused_gated(v, 3000, 1000);
		if (e.reason != WASP_EXIT_PAUSED)
			break;
		pauses++;
	}
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == (int64_t)n, "%s code %lld after %d pauses",
	      wasp_exit_reason_name(e.reason), (long long)e.code, pauses);
	CHECK(pauses >= 2, "paused mid-run only %d times", pauses);
	wasp_virtine_destroy(v);
}

static void t_create_destroy(void)
{
	static const unsigned char img[] = {0x66, 0xe7, 0xfa};
	/* Warm up once so one-time allocations (KVM handle, CPUID) are not counted. */
	struct wasp_virtine *v;
	CHECK(wasp_virtine_create(NULL, &v) == 0, "warm-up");
	wasp_virtine_destroy(v);
	int fds = count_fds();
	long rss = rss_kib();
	for (int i = 0; i < 1000; i++) {
		struct wasp_config cfg;
		wasp_config_init(&cfg);
		cfg.sandbox_dir = "/tmp";
		if (wasp_virtine_create(&cfg, &v) < 0) {
			CHECK(0, "create %d", i);
			break;
		}
		wasp_virtine_set_arg(v, "abc", 3);
		CHECK(wasp_virtine_load(v, img, sizeof img, 0, WASP_MODE_AUTO) == 0, "load");
		struct wasp_exit e = run(v, i % 2 ? 1000000000ull : 0);
		CHECK(e.reason == WASP_EXIT_EXITED, "run %d", i);
		wasp_virtine_destroy(v);
	}
	CHECK(count_fds() == fds, "fds %d -> %d", fds, count_fds());
	long grown = rss_kib() - rss;
	CHECK(grown < 8192, "RSS grew by %ld KiB over 1000 virtines", grown);
	wasp_virtine_destroy(NULL);
}

static void t_bad_config(void)
{
	struct wasp_config cfg;
	struct wasp_virtine *v = NULL;
	wasp_config_init(&cfg);
	cfg.mem_size = 0x10001;
	CHECK(wasp_virtine_create(&cfg, &v) == -EINVAL && !v, "unaligned size");
	cfg.mem_size = 8ull << 30;
	CHECK(wasp_virtine_create(&cfg, &v) == -EINVAL, "too big");
	cfg.mem_size = 4096;
	CHECK(wasp_virtine_create(&cfg, &v) == -EINVAL, "too small");
	cfg.mem_size = 1 << 20;
	cfg.sandbox_dir = "/nonexistent/dir";
	CHECK(wasp_virtine_create(&cfg, &v) == -ENOENT, "missing sandbox");
	CHECK(strstr(wasp_last_error(), "/nonexistent/dir") != NULL, "message names it");

	cfg.sandbox_dir = NULL;
	CHECK(wasp_virtine_create(&cfg, &v) == 0, "1 MiB virtine");
	static unsigned char big[1 << 20];
	CHECK(wasp_virtine_load(v, big, sizeof big, 0, WASP_MODE_AUTO) == -E2BIG, "image too big");
	CHECK(wasp_virtine_load(v, big, 0, 0, WASP_MODE_AUTO) == -EINVAL, "empty image");
	/* A header from a future ABI is refused, naming both versions. */
	unsigned char hdr[64] = {0xeb, 0x3e};
	struct wasp_image_header h = {.abi_version = 99, .mode = WASP_IMAGE_LONG,
				      .load_addr = 0x8000, .entry64 = 0x8040, .mem_end = 0x9000};
	memcpy(h.magic, WASP_IMAGE_MAGIC, 8);
	memcpy(hdr + 2, &h, sizeof h);
	CHECK(wasp_virtine_load(v, hdr, sizeof hdr, 0, WASP_MODE_AUTO) == -EINVAL, "future ABI");
	h.abi_version = WASP_ABI_VERSION;
	h.mem_end = 2 << 20;
	memcpy(hdr + 2, &h, sizeof h);
	CHECK(wasp_virtine_load(v, hdr, sizeof hdr, 0, WASP_MODE_AUTO) == -E2BIG, "needs more memory");
	h.mem_end = 0x9000;
	memcpy(hdr + 2, &h, sizeof h);
	CHECK(wasp_virtine_load(v, hdr, sizeof hdr, 0x10000, WASP_MODE_AUTO) == -EINVAL,
	      "linked elsewhere");
	CHECK(wasp_virtine_load(v, hdr, 3, 0x1000, WASP_MODE_LONG) == -EINVAL, "long below 0x8000");
	CHECK(wasp_virtine_load_file(v, "/nonexistent.bin", 0, WASP_MODE_AUTO) == -ENOENT, "no file");
	CHECK(wasp_virtine_load_file(v, "/tmp", 0, WASP_MODE_AUTO) == -EINVAL, "a directory");
	wasp_virtine_destroy(v);

	cfg.mem_size = 2 << 20;
	CHECK(wasp_virtine_create(&cfg, &v) == 0, "2 MiB virtine");
	CHECK(wasp_virtine_load(v, hdr, 3, 0x100000, WASP_MODE_REAL) == -EINVAL, "real above 1 MiB");
	wasp_virtine_destroy(v);
}

static void t_real_mode_args(void)
{
	int p[2];
	char out[64] = {0};
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[512];

	CHECK(pipe(p) == 0, "pipe");
	wasp_config_init(&cfg);
	cfg.console_fd = p[1];
	CHECK(wasp_virtine_create(&cfg, &v) == 0, "create");
	CHECK(wasp_virtine_allow(v, "console_write") == 0, "allow");
	snprintf(path, sizeof path, "%s/real_hello.bin", asm_dir);
	CHECK(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) == 0, "load");
	struct wasp_regs r;
	wasp_virtine_get_regs(v, &r);
	r.rax |= 0xdead000000000000ull;
	r.rdi |= 0xbeef00000000ull;
	r.rsi |= 0x1234500000000ull;
	CHECK(wasp_virtine_set_regs(v, &r) == 0, "garbage upper halves");
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 0, "exit %s", wasp_exit_reason_name(e.reason));
	close(p[1]);
	CHECK(read(p[0], out, sizeof out - 1) > 0 && !strcmp(out, "hello from real mode\n"),
	      "console got '%s'", out);
	close(p[0]);
	wasp_virtine_destroy(v);
}

/* The sandbox: a fresh directory with a file, a subdirectory, a FIFO and
 * symlinks in and out; the guest's opens go through hcall.asm. */
static void t_sandbox(void)
{
	char dir[] = "/tmp/wasp-sandbox-XXXXXX", p[600];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(p, sizeof p, "%s/inside.txt", dir);
	FILE *f = fopen(p, "w");
	fputs("inside\n", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/sub", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/fifo", dir);
	mkfifo(p, 0644);
	snprintf(p, sizeof p, "%s/link_out", dir);
	symlink("/etc/passwd", p);
	snprintf(p, sizeof p, "%s/link_in", dir);
	symlink("inside.txt", p);

	struct wasp_virtine *v = make("hcall", 0, dir);
	CHECK(wasp_virtine_allow(v, "files") == 0, "allow files");
	char *mem = wasp_virtine_gpa(v, 0, 0x10000);
	static const struct {
		const char *path;
		uint64_t flags;
		bool ok;
	} cases[] = {
		{"inside.txt", WASP_O_RDONLY, true},
		{"link_in", WASP_O_RDONLY, true},
		{"sub/../inside.txt", WASP_O_RDONLY, true},
		{"new.txt", WASP_O_WRONLY | WASP_O_CREAT, true},
		{"../outside.txt", WASP_O_RDONLY, false},
		{"sub/../../outside.txt", WASP_O_RDONLY, false},
		{"/etc/passwd", WASP_O_RDONLY, false},
		{"link_out", WASP_O_RDONLY, false},
		{"fifo", WASP_O_RDONLY, false},
		{"sub", WASP_O_RDONLY, false},
		{".", WASP_O_RDONLY, false},
		{"", WASP_O_RDONLY, false},
		{"missing.txt", WASP_O_RDONLY, false},
		{"inside.txt", 0x80000000u, false}, /* unknown flag */
		{"inside.txt", 3, false},           /* bad access mode */
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		strcpy(mem + 0xa000, cases[i].path);
		int64_t fd = call_once(v, WASP_HC_OPEN, 0xa000, cases[i].flags, 0644);
		CHECK((fd >= 3) == cases[i].ok, "open '%s' gave %lld", cases[i].path, (long long)fd);
		if (fd >= 3)
			CHECK(call_once(v, WASP_HC_CLOSE, (uint64_t)fd, 0, 0) == 0, "close");
	}
	/* read/lseek/fstat/pread/write on a real file */
	strcpy(mem + 0xa000, "inside.txt");
	int64_t fd = call_once(v, WASP_HC_OPEN, 0xa000, WASP_O_RDWR, 0);
	CHECK(fd == 3, "fd %lld", (long long)fd);
	CHECK(call_once(v, WASP_HC_READ, fd, 0xb000, 100) == 7 && !memcmp(mem + 0xb000, "inside\n", 7), "read");
	CHECK(call_once(v, WASP_HC_READ, fd, 0xb000, 100) == 0, "EOF");
	CHECK(call_once(v, WASP_HC_LSEEK, fd, 2, 0) == 2, "lseek");
	CHECK(call_once(v, WASP_HC_READ, fd, 0xb000, 2) == 2 && !memcmp(mem + 0xb000, "si", 2), "read after seek");
	CHECK(call_once(v, WASP_HC_LSEEK, fd, 0, 7) == -EINVAL, "bad whence");
	CHECK(call_once(v, WASP_HC_FSTAT, fd, 0xc000, 0) == 0, "fstat");
	struct wasp_stat st;
	memcpy(&st, mem + 0xc000, sizeof st);
	CHECK(st.size == 7 && S_ISREG(st.mode), "stat size %llu", (unsigned long long)st.size);
	CHECK(call_once(v, WASP_HC_FSTAT, fd, 0xfffffff0ull, 0) == -EFAULT, "fstat bad pointer");
	memcpy(mem + 0xb000, "OUT", 3);
	CHECK(call_once(v, WASP_HC_PWRITE, fd, 0xb000, 3) == 3, "pwrite at 0");
	CHECK(call_once(v, WASP_HC_PREAD, fd, 0xb100, 7) == 7 && !memcmp(mem + 0xb100, "OUTide\n", 7), "pread");
	CHECK(call_once(v, WASP_HC_READ, fd, 0xfff0000, 7) == -EFAULT, "read bad pointer");
	CHECK(call_once(v, WASP_HC_CLOSE, fd, 0, 0) == 0, "close");
	CHECK(call_once(v, WASP_HC_CLOSE, fd, 0, 0) == -EBADF, "double close");
	/* The fd table is bounded. */
	int opened = 0;
	for (int i = 0; i < 40; i++)
		opened += call_once(v, WASP_HC_OPEN, 0xa000, WASP_O_RDONLY, 0) >= 3;
	CHECK(opened == 32, "opened %d of 40 (table holds 32)", opened);
	CHECK(call_once(v, WASP_HC_OPEN, 0xa000, WASP_O_RDONLY, 0) == -EMFILE, "EMFILE");
	wasp_virtine_destroy(v);

	snprintf(p, sizeof p, "rm -rf '%s'", dir);
	CHECK(system(p) == 0, "cleanup");
}


/* A big image file is mapped, not read: the guest sees its bytes, runs
 * it, its writes (and the host's) stay out of the file, and a reload puts
 * zeroed memory back. A small one is read as before. */
static void t_big_image(void)
{
	char path[] = "/tmp/wasp-bigimg-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	size_t len = (1u << 20) + 123; /* not whole pages: the tail reads zero */
	uint8_t *img = malloc(len), *back = malloc(len);
	/* mov eax, 9; out 0xfa, eax; then a pattern */
	static const uint8_t code[] = {0x66, 0xb8, 9, 0, 0, 0, 0x66, 0xe7, 0xfa};
	memcpy(img, code, sizeof code);
	for (size_t i = sizeof code; i < len; i++)
		img[i] = (uint8_t)(i * 131 + 7);
	CHECK(write(fd, img, len) == (ssize_t)len, "write the image");
	close(fd);

	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = 4u << 20;
	struct wasp_virtine *v;
	MUST(wasp_virtine_create(&cfg, &v));
	MUST(wasp_virtine_load_file(v, path, 0, WASP_MODE_REAL));
	CHECK(wasp_virtine_file_mapped(v) != NULL, "a 1 MiB image was not mapped");
	const uint8_t *m = wasp_virtine_gpa(v, WASP_GPA_LOAD, len + 4096);
	CHECK(m && !memcmp(m, img, len), "guest memory is not the image");
	size_t tail = 0;
	for (size_t i = len; i < ((len + 4095) & ~(size_t)4095); i++)
		tail += m[i] != 0;
	CHECK(tail == 0, "%zu bytes after the image are not zero", tail);
	struct wasp_exit e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 9, "ran: %s %lld",
	      wasp_exit_reason_name(e.reason), (long long)e.code);

	/* The host writes into guest memory: private, the file keeps its bytes. */
	uint8_t *w = wasp_virtine_gpa_w(v, WASP_GPA_LOAD + 4096, 4096);
	memset(w, 0xee, 4096);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && read(fd, back, len) == (ssize_t)len && !memcmp(back, img, len),
	      "the image file changed");
	close(fd);

	/* Reload a 3-byte image: plain zeroed memory again. */
	static const uint8_t exit3[] = {0x66, 0xe7, 0xfa};
	MUST(wasp_virtine_load(v, exit3, sizeof exit3, 0, WASP_MODE_REAL));
	CHECK(wasp_virtine_file_mapped(v) == NULL, "still mapped after a reload");
	m = wasp_virtine_gpa(v, WASP_GPA_LOAD + 3, len);
	size_t nz = 0;
	for (size_t i = 0; i < len; i++)
		nz += m[i] != 0;
	CHECK(nz == 0, "%zu bytes of the old image left after a reload", nz);
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 0, "the reloaded image ran");

	/* Below the threshold it is read. */
	CHECK(truncate(path, 4096) == 0, "truncate");
	MUST(wasp_virtine_load_file(v, path, 0, WASP_MODE_REAL));
	CHECK(wasp_virtine_file_mapped(v) == NULL, "a 4 KiB image was mapped");
	e = run(v, 0);
	CHECK(e.reason == WASP_EXIT_EXITED && e.code == 9, "the small image ran");

	wasp_virtine_destroy(v);
	unlink(path);
	free(img);
	free(back);
}

static const struct test_case cases[] = {
	{"big_image", t_big_image},
	{"exit3", t_exit3},
	{"exit_code", t_exit_code},
	{"allow_deny", t_allow_deny},
	{"custom_hypercall", t_custom_hypercall},
	{"hypercall_exits", t_hypercall_exits},
	{"gpa", t_gpa},
	{"bad_pointers", t_bad_pointers},
	{"args_ret", t_args_ret},
	{"faults", t_faults},
	{"timeout", t_timeout},
	{"pause", t_pause},
	{"create_destroy_1000", t_create_destroy},
	{"bad_config", t_bad_config},
	{"real_mode_args", t_real_mode_args},
	{"sandbox", t_sandbox},
};

int main(int argc, char **argv)
{
	const char **vars[] = {&asm_dir};
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, vars, 1, "ASMDIR ", true);
}
