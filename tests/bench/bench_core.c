/*
 * bench_core.c: wasp-bench-core, the core benchmark of wasp.
 *
 * It measures, each over many iterations and reported as median, p10, p90
 * and minimum in microseconds:
 *
 *   1. the floor: a bare KVM_RUN exit round trip driven here with raw KVM
 *      ioctls (no libwasp), a guest looping on `out` in real mode (ring 0),
 *      in long mode at ring 0 and at ring 3 (IOPL 3). The cheapest median of
 *      those is "the floor" every row is compared with. Variants show what
 *      KVM_CAP_SYNC_REGS and KVM_GET/SET_REGS add to an exit, what an MMIO
 *      exit costs next to an `out`, and what a bare VM+vCPU costs;
 *   2. the virtine's life through libwasp: create (16 MiB), load of the
 *      three-byte image `out 0xFA, eax`, its first run, destroy, and the
 *      whole create+load+run+destroy cycle; once with no other VM of ours
 *      alive and once with one resident virtine (KVM's set-up and tear-down
 *      are much dearer for the only VM on a PVM host);
 *   3. a trivial 64-bit image (direct long-mode entry) re-loaded and run on
 *      a virtine that already exists;
 *   4. the hypercall round trip: K hypercalls in one run, per call = run/K,
 *      for an allowed built-in (clock), an embedder-registered no-op and a
 *      denied call; and the no-op again with a tracer attached that asks
 *      for no events, and with its hypercalls traced (what tracing costs);
 *   5. context baselines as in the Wasp paper (Fig. 8): its `vmrun` (a
 *      loaded virtine run again, the reset off the clock as in Wasp),
 *      pthread_create+join, fork+waitpid, vfork+exec of /bin/true;
 *   6. boot by mode (the paper's Table 1): load + run to the exit of an
 *      image that exits at once in real mode, after reaching protected mode
 *      (boot32_exit.asm), after the C runtime's boot stub reaches main() in
 *      long mode, and with direct 64-bit entry (nop.c);
 *   7. fib(20) in real, protected and long mode (Fig. 3);
 *   8. fib(n), n = 0, 5, ..., 25, the paper's naive recursion: the host
 *      function, wasp_call() of pool_fib without a snapshot and with one
 *      (Fig. 11);
 *   9. start latency against image size, 32 B .. 16 MiB (Fig. 12): load +
 *      run on an existing virtine, and wasp_call() through a pool.
 *
 * The machines are noisy and drift over seconds, so the whole suite runs in
 * several rounds, each adding its share of samples to every row: drift then
 * touches every row alike and ratios to the floor stay meaningful. Every exit
 * is checked (reason, port, exit code): a benchmark that times faults is
 * worthless. Nothing here asserts on time.
 *
 * Usage: wasp-bench-core [--quick] [--csv PATH] [--cpu N] [--only LIST]
 * Exit status: 0 done, 1 a step failed, 2 bad usage, 77 no usable /dev/kvm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_fib.h"
#include "bench_floor.h"
#include "bench_rows.h"
#include "vmm.h"

#define EXIT_SKIP 77

/* ---- parameters (totals over all rounds) -------------------------------- */

struct params {
	int rounds;
	int floor_iters;  /* timed KVM_RUN exits per floor variant */
	int floor_warmup; /* untimed exits per variant and round */
	int create_iters; /* create/load/first run/destroy samples */
	int create_warmup;
	int run_iters;    /* load+run samples on an existing virtine */
	int run_warmup;
	int hc_k;         /* hypercalls per run */
	int hc_runs;      /* runs (samples) per hypercall variant */
	int proc_iters;   /* pthread/fork/vfork samples */
	int proc_warmup;
	int boot_iters;   /* boot-by-mode runs (ring-0 boot code is emulated on PVM) */
	int fib20_iters;  /* fib(20) runs per mode (real/protected: ~0.1 s each on PVM) */
	int fibn_iters;   /* fib(n) samples per n and way */
	int size_iters;   /* start-latency samples per image size */
};

static const struct params full_params = {
	.rounds = 5,
	.floor_iters = 20000, .floor_warmup = 200,
	.create_iters = 400, .create_warmup = 3,
	.run_iters = 3000, .run_warmup = 30,
	.hc_k = 1000, .hc_runs = 40,
	.proc_iters = 500, .proc_warmup = 5,
	.boot_iters = 500, .fib20_iters = 10, .fibn_iters = 200, .size_iters = 200,
};

static const struct params quick_params = {
	.rounds = 2,
	.floor_iters = 2000, .floor_warmup = 50,
	.create_iters = 40, .create_warmup = 2,
	.run_iters = 300, .run_warmup = 10,
	.hc_k = 200, .hc_runs = 8,
	.proc_iters = 50, .proc_warmup = 2,
	.boot_iters = 40, .fib20_iters = 2, .fibn_iters = 20, .size_iters = 20,
};

static struct params P;

/* This round's share of a total. */
static int share(int total)
{
	return (total + P.rounds - 1) / P.rounds;
}

/* ---- failure ------------------------------------------------------------ */

static void expect_exit(const struct wasp_exit *e, int64_t code, const char *what)
{
	if (e->reason == WASP_EXIT_EXITED && e->code == code)
		return;
	if (e->reason == WASP_EXIT_EXITED)
		die("%s: guest exited with code %lld, expected %lld", what, (long long)e->code,
		    (long long)code);
	if (e->reason == WASP_EXIT_FAULT)
		die("%s: guest fault %s (kvm exit %u, addr 0x%llx, rip 0x%llx), expected exit %lld",
		    what, wasp_fault_kind_name(e->fault.kind), e->fault.kvm_exit,
		    (unsigned long long)e->fault.addr, (unsigned long long)e->fault.regs.rip,
		    (long long)code);
	die("%s: run ended with %s, expected exit %lld", what, wasp_exit_reason_name(e->reason),
	    (long long)code);
}

/* ---- 1. the floor: raw KVM, no libwasp ---------------------------------- */

#define RAW_PORT 0x10u
#define RAW_MMIO 0x3f000000u /* mapped by the page tables, not backed: MMIO */

static int kvm_fd = -1;
static bool kvm_sync_regs;

static void raw_ioctl(int fd, unsigned long cmd, void *arg, const char *name)
{
	if (ioctl(fd, cmd, arg) < 0)
		die("floor: %s: %s", name, strerror(errno));
}

/* The VM under the floor (bench_floor.c), running `code`. */
static void raw_open(struct bench_vm *r, enum bench_floor_mode mode, const uint8_t *code, size_t len)
{
	char err[256];
	if (bench_vm_open(kvm_fd, mode, code, len, r, err, sizeof err) < 0)
		die("%s", err);
}

static const char *kvm_exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_IO: return "IO";
	case KVM_EXIT_MMIO: return "MMIO";
	case KVM_EXIT_HLT: return "HLT";
	case KVM_EXIT_SHUTDOWN: return "SHUTDOWN (triple fault)";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	case KVM_EXIT_INTR: return "INTR";
	default: return "other";
	}
}

/* Checks that the exit just taken is the one the loop makes. */
static void raw_check_exit(struct bench_vm *r, uint32_t want, const char *what)
{
	struct kvm_run *run = r->run;
	if (run->exit_reason == want) {
		if (want == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
		    run->io.port == RAW_PORT)
			return;
		if (want == KVM_EXIT_MMIO && run->mmio.is_write && run->mmio.phys_addr == RAW_MMIO)
			return;
	}
	struct kvm_regs g;
	unsigned long long rip = ioctl(r->vcpu, KVM_GET_REGS, &g) == 0 ? g.rip : 0;
	if (run->exit_reason == KVM_EXIT_IO)
		die("%s: IO exit %s port 0x%x, expected out to 0x%x (rip 0x%llx)", what,
		    run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port, RAW_PORT, rip);
	if (run->exit_reason == KVM_EXIT_MMIO)
		die("%s: MMIO %s at 0x%llx, expected write at 0x%x (rip 0x%llx)", what,
		    run->mmio.is_write ? "write" : "read", (unsigned long long)run->mmio.phys_addr,
		    RAW_MMIO, rip);
	die("%s: KVM exit %u (%s), expected %s (rip 0x%llx)", what, run->exit_reason,
	    kvm_exit_name(run->exit_reason), kvm_exit_name(want), rip);
}

static void raw_run(struct bench_vm *r, const char *what)
{
	while (ioctl(r->vcpu, KVM_RUN, 0) < 0)
		if (errno != EINTR)
			die("%s: KVM_RUN: %s", what, strerror(errno));
}

enum raw_regs {
	REGS_NONE,       /* plain KVM_RUN */
	REGS_SYNC,       /* kvm_valid_regs = REGS: KVM copies regs into kvm_run on exit */
	REGS_SYNC_DIRTY, /* ... and the host hands them back (kvm_dirty_regs) each entry */
	REGS_IOCTL,      /* KVM_GET_REGS + KVM_SET_REGS around each KVM_RUN */
};

/* Times consecutive exits of a guest looping on the exit `want`, each
 * KVM_RUN on its own (clock_gettime costs ~30 ns here, nothing next to it). */
static void floor_bench(const char *name, enum bench_floor_mode mode, const uint8_t *code, size_t len,
			uint32_t want, enum raw_regs regs)
{
	struct row *row_ = row(name);
	int iters = share(P.floor_iters);
	struct bench_vm r;
	struct kvm_regs g;

	raw_open(&r, mode, code, len);
	if (regs == REGS_SYNC || regs == REGS_SYNC_DIRTY)
		r.run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	for (int i = -P.floor_warmup; i < iters; i++) {
		bool dirty = regs == REGS_SYNC_DIRTY && i > -P.floor_warmup;
		uint64_t t0, t1;
		if (dirty) {
			r.run->s.regs.regs.rax = (uint64_t)i; /* what a hypercall answer does */
			r.run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
		}
		t0 = now_ns();
		if (regs == REGS_IOCTL) {
			raw_ioctl(r.vcpu, KVM_GET_REGS, &g, "KVM_GET_REGS");
			g.rax = (uint64_t)i;
			raw_ioctl(r.vcpu, KVM_SET_REGS, &g, "KVM_SET_REGS");
		}
		raw_run(&r, name);
		t1 = now_ns();
		raw_check_exit(&r, want, name);
		if (dirty && r.run->s.regs.regs.rax != (uint64_t)i)
			die("%s: synced rax 0x%llx, expected 0x%llx (sync regs not applied)", name,
			    (unsigned long long)r.run->s.regs.regs.rax, (unsigned long long)i);
		if (i >= 0)
			add_ns(row_, t1 - t0);
	}
	bench_vm_close(&r);
}

/* What one vCPU state ioctl costs (a PVM host charges for each one; the
 * load and hypercall paths are made of them). */
static void ioctl_bench(void)
{
	static const uint8_t pio[] = {0xe7, RAW_PORT, 0xeb, 0xfc};
	struct row *r_get = row("kvm_ioctl_get_regs");
	struct row *r_set = row("kvm_ioctl_set_regs");
	struct row *r_sget = row("kvm_ioctl_get_sregs");
	struct row *r_sset = row("kvm_ioctl_set_sregs");
	int iters = share(P.floor_iters) / 4;
	struct kvm_regs g;
	struct kvm_sregs s;
	struct bench_vm r;

	raw_open(&r, BENCH_FLOOR_LONG3, pio, sizeof pio);
	raw_run(&r, "ioctl cost");
	raw_check_exit(&r, KVM_EXIT_IO, "ioctl cost");
	for (int i = -P.floor_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		raw_ioctl(r.vcpu, KVM_GET_REGS, &g, "KVM_GET_REGS");
		uint64_t t1 = now_ns();
		raw_ioctl(r.vcpu, KVM_SET_REGS, &g, "KVM_SET_REGS");
		uint64_t t2 = now_ns();
		raw_ioctl(r.vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS");
		uint64_t t3 = now_ns();
		raw_ioctl(r.vcpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS");
		uint64_t t4 = now_ns();
		if (i >= 0) {
			add_ns(r_get, t1 - t0);
			add_ns(r_set, t2 - t1);
			add_ns(r_sget, t3 - t2);
			add_ns(r_sset, t4 - t3);
		}
	}
	/* The vCPU still runs the loop it ran before. */
	raw_run(&r, "ioctl cost");
	raw_check_exit(&r, KVM_EXIT_IO, "ioctl cost (after)");
	bench_vm_close(&r);
}

/* KVM_CREATE_VM + KVM_CREATE_VCPU + close, bare. With `resident`, another
 * VM of ours stays alive meanwhile. */
static void kvm_create_bench(bool resident)
{
	struct row *row_ = row(resident ? "kvm_create_vm_vcpu_close_resident"
					: "kvm_create_vm_vcpu_close");
	int iters = share(P.create_iters);
	int keep_vm = -1, keep_vcpu = -1;

	if (resident) {
		keep_vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
		if (keep_vm < 0)
			die("KVM_CREATE_VM: %s", strerror(errno));
		keep_vcpu = ioctl(keep_vm, KVM_CREATE_VCPU, 0);
		if (keep_vcpu < 0)
			die("KVM_CREATE_VCPU: %s", strerror(errno));
	}
	for (int i = -P.create_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
		if (vm < 0)
			die("KVM_CREATE_VM: %s", strerror(errno));
		int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
		if (vcpu < 0)
			die("KVM_CREATE_VCPU: %s", strerror(errno));
		close(vcpu);
		close(vm);
		uint64_t t1 = now_ns();
		if (i >= 0)
			add_ns(row_, t1 - t0);
	}
	if (resident) {
		close(keep_vcpu);
		close(keep_vm);
	}
}

/* The third ring-3 exit (bench_floor.h): `int3` under guest debugging,
 * rip moved past it through the sync registers. A KVM that does not report
 * #BP to the VMM (PVM) has no such exit: noted once, no row. */
static char int3_missing[256];

static void int3_bench(void)
{
	if (int3_missing[0])
		return;
	int iters = share(P.floor_iters);
	uint64_t *ns = malloc((size_t)iters * sizeof *ns);
	char err[256];
	if (!ns)
		die("out of memory");
	int r = bench_ring3_run(kvm_fd, BENCH_RING3_INT3, P.floor_warmup, iters, ns, err,
				sizeof err);
	if (r == -EOPNOTSUPP)
		snprintf(int3_missing, sizeof int3_missing, "%s", err);
	else if (r < 0)
		die("%s", err);
	else
		for (int i = 0; i < iters; i++)
			add_ns(row(bench_ring3_names[BENCH_RING3_INT3]), ns[i]);
	free(ns);
}

static void round_floor(void)
{
	/* l: out 0x10, eax (out ax in 16-bit code); jmp l */
	static const uint8_t pio[] = {0xe7, RAW_PORT, 0xeb, 0xfc};
	/* mov rax, RAW_MMIO; l: mov [rax], eax; jmp l */
	static const uint8_t mmio[] = {0x48, 0xc7, 0xc0, 0x00, 0x00, 0x00, 0x3f,
				       0x89, 0x00, 0xeb, 0xfc};

	cur_section = "floor: raw KVM_RUN round trip of an `out` exit (no libwasp)";
	floor_bench(bench_floor_names[BENCH_FLOOR_REAL], BENCH_FLOOR_REAL, pio, sizeof pio, KVM_EXIT_IO, REGS_NONE);
	floor_bench(bench_floor_names[BENCH_FLOOR_LONG0], BENCH_FLOOR_LONG0, pio, sizeof pio, KVM_EXIT_IO, REGS_NONE);
	floor_bench(bench_floor_names[BENCH_FLOOR_LONG3], BENCH_FLOOR_LONG3, pio, sizeof pio, KVM_EXIT_IO, REGS_NONE);

	cur_section = "exit-path variants and bare VM cost (raw KVM)";
	if (kvm_sync_regs) {
		floor_bench("kvm_out_ring3_sync_regs", BENCH_FLOOR_LONG3, pio, sizeof pio, KVM_EXIT_IO,
			    REGS_SYNC);
		floor_bench("kvm_out_ring3_sync_regs_dirty", BENCH_FLOOR_LONG3, pio, sizeof pio,
			    KVM_EXIT_IO, REGS_SYNC_DIRTY);
	}
	floor_bench("kvm_out_ring3_get_set_regs", BENCH_FLOOR_LONG3, pio, sizeof pio, KVM_EXIT_IO,
		    REGS_IOCTL);
	ioctl_bench();
	floor_bench("kvm_mmio_ring0_long", BENCH_FLOOR_LONG0, mmio, sizeof mmio, KVM_EXIT_MMIO, REGS_NONE);
	floor_bench("kvm_mmio_ring3_long", BENCH_FLOOR_LONG3, mmio, sizeof mmio, KVM_EXIT_MMIO, REGS_NONE);
	int3_bench();
	kvm_create_bench(false);
	kvm_create_bench(true);
}

/* ---- 2. a virtine's life through libwasp -------------------------------- */

/* The smallest virtine: `out 0xFA, eax` in real mode (eax = 0 at entry). */
static const uint8_t img_exit3[] = {0x66, 0xe7, 0xfa};

static struct wasp_config bench_config(void)
{
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = 16u << 20;
	cfg.no_stdin = true;
	return cfg;
}

static struct row *rowf(const char *base, bool resident)
{
	char name[48];
	snprintf(name, sizeof name, "%s%s", base, resident ? "_resident" : "");
	return row(name);
}

/* Create, load, first run, destroy, each timed, then the cycle as one. With
 * `resident`, one more virtine stays alive meanwhile (as a pool would). */
static void lifecycle_bench(bool resident)
{
	struct wasp_config cfg = bench_config();
	struct row *r_create = rowf("virtine_create_16m", resident);
	struct row *r_load = rowf("virtine_load_3b", resident);
	struct row *r_run = rowf("virtine_first_run_3b", resident);
	struct row *r_destroy = rowf("virtine_destroy", resident);
	struct row *r_cycle = rowf("virtine_cycle", resident);
	int iters = share(P.create_iters);
	struct wasp_virtine *v, *keep = NULL;
	struct wasp_exit e;

	if (resident)
		check(wasp_virtine_create(&cfg, &keep), "wasp_virtine_create (resident)");
	for (int i = -P.create_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
		uint64_t t1 = now_ns();
		check(wasp_virtine_load(v, img_exit3, sizeof img_exit3, 0, WASP_MODE_AUTO),
		      "wasp_virtine_load");
		uint64_t t2 = now_ns();
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run");
		uint64_t t3 = now_ns();
		expect_exit(&e, 0, "first run of the 3-byte image");
		wasp_virtine_destroy(v);
		uint64_t t4 = now_ns();
		if (i >= 0) {
			add_ns(r_create, t1 - t0);
			add_ns(r_load, t2 - t1);
			add_ns(r_run, t3 - t2);
			add_ns(r_destroy, t4 - t3);
		}
	}
	/* The whole cycle timed as one, as a user of virtines pays it. */
	for (int i = -P.create_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
		check(wasp_virtine_load(v, img_exit3, sizeof img_exit3, 0, WASP_MODE_AUTO),
		      "wasp_virtine_load");
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run");
		wasp_virtine_destroy(v);
		uint64_t t1 = now_ns();
		expect_exit(&e, 0, "create+load+run+destroy");
		if (i >= 0)
			add_ns(r_cycle, t1 - t0);
	}
	wasp_virtine_destroy(keep);
}

static void round_lifecycle(void)
{
	cur_section = "virtine life (libwasp, 16 MiB, 3-byte real-mode image)";
	lifecycle_bench(false);
	lifecycle_bench(true);
}

/* ---- 3. trivial run on an existing virtine ------------------------------ */

/* Wraps 64-bit code in the image header of wasp_abi.h (a short jump over
 * the header, then the code): loaded with WASP_MODE_AUTO it enters long mode
 * at ring 3 directly. Returns the image length. */
static size_t make_long_image(uint8_t *buf, size_t cap, const uint8_t *code, size_t len)
{
	struct wasp_image_header h;
	size_t off = WASP_IMAGE_HEADER_OFFSET + sizeof h;

	if (off + len > cap || off - 2 > 127)
		die("image buffer too small");
	memset(&h, 0, sizeof h);
	memcpy(h.magic, WASP_IMAGE_MAGIC, sizeof h.magic);
	h.abi_version = WASP_ABI_VERSION;
	h.mode = WASP_IMAGE_LONG;
	h.load_addr = WASP_GPA_LOAD;
	h.entry64 = WASP_GPA_LOAD + off;
	h.mem_end = WASP_GPA_LOAD + off + len;
	buf[0] = 0xeb; /* jmp short over the header */
	buf[1] = (uint8_t)(off - 2);
	memcpy(buf + WASP_IMAGE_HEADER_OFFSET, &h, sizeof h);
	memcpy(buf + off, code, len);
	return off + len;
}

static void round_reuse(void)
{
	/* mov rax, rsp; out 0xFA, eax. The exit code is the entry rsp: the top of
	 * guest memory in 64-bit entry (0x1000 if it ran in real mode by mistake). */
	static const uint8_t code64[] = {0x48, 0x89, 0xe0, 0xe7, 0xfa};
	struct wasp_config cfg = bench_config();
	struct wasp_virtine *v;
	struct wasp_exit e;
	uint8_t img[128];
	size_t len = make_long_image(img, sizeof img, code64, sizeof code64);
	int64_t want = (int64_t)cfg.mem_size;
	int iters = share(P.run_iters);

	cur_section = "trivial run on an existing virtine (re-load resets the vCPU)";
	struct row *r_load = row("long_load");
	struct row *r_run = row("long_run");
	struct row *r_both = row("long_load_run");
	struct row *r_real = row("real_load_run_3b");

	check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
	for (int i = -P.run_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		check(wasp_virtine_load(v, img, len, 0, WASP_MODE_AUTO), "wasp_virtine_load (64-bit)");
		uint64_t t1 = now_ns();
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run (64-bit)");
		uint64_t t2 = now_ns();
		expect_exit(&e, want, "trivial 64-bit run");
		if (i >= 0) {
			add_ns(r_load, t1 - t0);
			add_ns(r_run, t2 - t1);
			add_ns(r_both, t2 - t0);
		}
	}
	/* The same with the 3-byte real-mode image: the emulated ring-0 path. */
	for (int i = -P.run_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		check(wasp_virtine_load(v, img_exit3, sizeof img_exit3, 0, WASP_MODE_AUTO),
		      "wasp_virtine_load (3 bytes)");
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run (3 bytes)");
		uint64_t t1 = now_ns();
		expect_exit(&e, 0, "3-byte run on a reused virtine");
		if (i >= 0)
			add_ns(r_real, t1 - t0);
	}
	wasp_virtine_destroy(v);
}

/* ---- 4. hypercall round trip -------------------------------------------- */

#define HC_NOOP (WASP_HC_USER_BASE + 0)

static int64_t hc_noop(struct wasp_virtine *v, const uint64_t args[6], void *opaque)
{
	(void)v;
	(void)args;
	++*(uint64_t *)opaque;
	return 0;
}

/*
 * K hypercalls in a loop at ring 3, counting the negative answers:
 *
 *      mov ebx, K
 *      xor ebp, ebp
 *   l: mov eax, NR
 *      mov edi, ARG
 *      out 0xFF, al
 *      test rax, rax
 *      jns ok
 *      inc ebp
 *  ok: dec ebx
 *      jnz l
 *      mov eax, ebp
 *      out 0xFA, eax      ; exit code = number of failed calls
 */
static size_t make_hc_image(uint8_t *buf, size_t cap, uint32_t k, uint32_t nr, uint32_t arg)
{
	uint8_t c[] = {
		0xbb, 0, 0, 0, 0,          /*  0 mov ebx, K */
		0x31, 0xed,                /*  5 xor ebp, ebp */
		0xb8, 0, 0, 0, 0,          /*  7 l: mov eax, NR */
		0xbf, 0, 0, 0, 0,          /* 12 mov edi, ARG */
		0xe6, WASP_PORT_HYPERCALL, /* 17 out 0xFF, al */
		0x48, 0x85, 0xc0,          /* 19 test rax, rax */
		0x79, 0x02,                /* 22 jns ok */
		0xff, 0xc5,                /* 24 inc ebp */
		0xff, 0xcb,                /* 26 ok: dec ebx */
		0x75, (uint8_t)(7 - 30),   /* 28 jnz l */
		0x89, 0xe8,                /* 30 mov eax, ebp */
		0xe7, WASP_PORT_EXIT,      /* 32 out 0xFA, eax */
	};
	memcpy(c + 1, &k, 4);
	memcpy(c + 8, &nr, 4);
	memcpy(c + 13, &arg, 4);
	return make_long_image(buf, cap, c, sizeof c);
}

/* Tracers for the tracing rows: none (the run loop's `if (v->trace)`
 * branches untaken), attached with no event asked for (every hook runs and
 * finds nothing to do), and hypercalls traced into a counter (no I/O: the
 * cost of the event itself, not of writing it anywhere). */
enum hc_tracer { TRACER_NONE, TRACER_IDLE, TRACER_HYPERCALLS };

static int count_events(struct wasp_virtine *v, const struct wasp_trace_event *ev, void *opaque)
{
	(void)v;
	if (ev->kind == WASP_TRACE_HYPERCALL && ev->hc.nr == HC_NOOP && ev->hc.result == 0)
		++*(uint64_t *)opaque;
	return WASP_TRACE_CONTINUE;
}

static void hc_bench_traced(const char *name, uint32_t nr, uint32_t arg, const char *allow,
			    bool expect_fail, enum hc_tracer tracer);

static void hc_bench(const char *name, uint32_t nr, uint32_t arg, const char *allow,
		     bool expect_fail)
{
	hc_bench_traced(name, nr, arg, allow, expect_fail, TRACER_NONE);
}

static void hc_bench_traced(const char *name, uint32_t nr, uint32_t arg, const char *allow,
			    bool expect_fail, enum hc_tracer tracer)
{
	uint64_t events = 0;
	struct wasp_config cfg = bench_config();
	struct wasp_virtine *v;
	struct wasp_exit e;
	struct wasp_stats st;
	struct row *row_ = row(name);
	uint64_t noop_calls = 0;
	uint8_t img[128];
	uint32_t k = (uint32_t)P.hc_k;
	size_t len = make_hc_image(img, sizeof img, k, nr, arg);
	int runs = share(P.hc_runs), warm = 1;

	check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
	if (nr == HC_NOOP)
		check(wasp_virtine_register_hypercall(v, HC_NOOP, "bench_noop", hc_noop, &noop_calls),
		      "wasp_virtine_register_hypercall");
	if (allow)
		check(wasp_virtine_allow(v, allow), "wasp_virtine_allow");
	else if (wasp_virtine_allowed(v, nr))
		die("%s: hypercall %u is allowed by default", name, nr);
	if (tracer != TRACER_NONE) {
		struct wasp_trace_opts to = {
			.events = tracer == TRACER_HYPERCALLS ? WASP_TRACE_BIT(WASP_TRACE_HYPERCALL) : 0,
			.fn = count_events,
			.opaque = &events,
		};
		check(wasp_virtine_trace(v, &to), "wasp_virtine_trace");
	}

	for (int i = -warm; i < runs; i++) {
		check(wasp_virtine_load(v, img, len, 0, WASP_MODE_AUTO),
		      "wasp_virtine_load (hypercalls)");
		uint64_t t0 = now_ns();
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run (hypercalls)");
		uint64_t t1 = now_ns();
		expect_exit(&e, expect_fail ? (int64_t)k : 0, name);
		if (i >= 0)
			add_us(row_, (double)(t1 - t0) / 1000.0 / (double)k);
	}
	/* The counters say every call took the path this row names. */
	wasp_virtine_stats(v, &st);
	uint64_t total = (uint64_t)k * (uint64_t)(runs + warm);
	if (nr == HC_NOOP && noop_calls != total)
		die("%s: handler ran %llu times, expected %llu", name,
		    (unsigned long long)noop_calls, (unsigned long long)total);
	if (events != (tracer == TRACER_HYPERCALLS ? total : 0))
		die("%s: the tracer saw %llu hypercall events, expected %llu", name,
		    (unsigned long long)events,
		    (unsigned long long)(tracer == TRACER_HYPERCALLS ? total : 0));
	if (st.hypercalls != total)
		die("%s: libwasp counted %llu hypercalls, expected %llu", name,
		    (unsigned long long)st.hypercalls, (unsigned long long)total);
	if (st.hypercalls_denied != (expect_fail ? total : 0))
		die("%s: libwasp counted %llu denied hypercalls, expected %llu", name,
		    (unsigned long long)st.hypercalls_denied,
		    (unsigned long long)(expect_fail ? total : 0));
	wasp_virtine_destroy(v);
}

static void round_hypercalls(void)
{
	cur_section = "hypercall round trip (ring 3 `out 0xFF`; per call = run time / K)";
	hc_bench("hypercall_clock", WASP_HC_CLOCK, WASP_CLOCK_MONOTONIC, "clock", false);
	hc_bench("hypercall_noop_user", HC_NOOP, 0, "bench_noop", false);
	hc_bench("hypercall_denied", WASP_HC_CLOCK, WASP_CLOCK_MONOTONIC, NULL, true);
	hc_bench_traced("hypercall_noop_tracer_idle", HC_NOOP, 0, "bench_noop", false, TRACER_IDLE);
	hc_bench_traced("hypercall_noop_traced", HC_NOOP, 0, "bench_noop", false,
			TRACER_HYPERCALLS);
}

/* ---- 5. context baselines ------------------------------------------------ */

static void *thread_fn(void *arg)
{
	return arg;
}

static void wait_child(pid_t pid, const char *what)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("%s: waitpid: %s", what, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s: child ended with status 0x%x", what, status);
}

/*
 * Fig. 8's `vmrun`: re-running a virtine that is already made and loaded,
 * timed as the Wasp paper's bench/vmrun does: write the image, point rip
 * at it, run to the exit, with the reset *outside* the clock (Wasp resets
 * registers, special registers and FPU after taking its end time). Here
 * the reset is a pool's (wasp_pool_fill() before the clock: the vCPU state
 * and every page the last run dirtied put back, the page mappings kept),
 * then, timed: wasp_pool_get, the image's bytes written again and rip set
 * as Wasp's load_raw() does, wasp_virtine_run. The other way round,
 * real_load_run_3b has the reset inside: wasp_virtine_load zeroes guest
 * memory and re-enters real mode on every sample.
 */
static struct wasp_pool *vmrun_pool;
static uint64_t vmrun_rip;

static void vmrun_bench(void)
{
	struct wasp_virtine *v;
	struct wasp_exit e;
	struct wasp_regs g;
	if (!vmrun_pool) {
		struct wasp_pool_config pc;
		wasp_pool_config_init(&pc);
		pc.vm = bench_config();
		pc.image = img_exit3;
		pc.image_len = sizeof img_exit3;
		pc.mode = WASP_MODE_REAL;
		pc.size = 2;
		check(wasp_pool_create(&pc, &vmrun_pool), "wasp_pool_create (vmrun)");
		/* The entry rip of the pristine virtine, which each sample sets. */
		check(wasp_pool_get(vmrun_pool, &v), "wasp_pool_get (vmrun)");
		check(wasp_virtine_get_regs(v, &g), "wasp_virtine_get_regs (vmrun)");
		vmrun_rip = g.rip;
		wasp_pool_put(vmrun_pool, v);
	}
	struct row *r = row("vmrun_3b");
	int iters = share(P.run_iters);
	for (int i = -P.run_warmup; i < iters; i++) {
		check(wasp_pool_fill(vmrun_pool), "wasp_pool_fill (vmrun: the reset)");
		uint64_t t0 = now_ns();
		check(wasp_pool_get(vmrun_pool, &v), "wasp_pool_get (vmrun)");
		void *at = wasp_virtine_gpa_w(v, WASP_GPA_LOAD, sizeof img_exit3);
		if (!at)
			die("vmrun: the load address is outside guest memory");
		memcpy(at, img_exit3, sizeof img_exit3);
		check(wasp_virtine_get_regs(v, &g), "wasp_virtine_get_regs (vmrun)");
		g.rip = vmrun_rip;
		check(wasp_virtine_set_regs(v, &g), "wasp_virtine_set_regs (vmrun)");
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run (vmrun)");
		uint64_t t1 = now_ns();
		wasp_pool_put(vmrun_pool, v);
		expect_exit(&e, 0, "vmrun of the 3-byte image");
		if (i >= 0)
			add_ns(r, t1 - t0);
	}
}

static void round_baselines(void)
{
	static char arg0[] = "true";
	char *argv[] = {arg0, NULL};
	char *envp[] = {NULL};
	int iters = share(P.proc_iters);

	cur_section = "context baselines (Wasp paper, Fig. 8)";
	vmrun_bench();
	struct row *r = row("pthread_create_join");
	for (int i = -P.proc_warmup; i < iters; i++) {
		pthread_t t;
		void *ret;
		uint64_t t0 = now_ns();
		int err = pthread_create(&t, NULL, thread_fn, NULL);
		if (err)
			die("pthread_create: %s", strerror(err));
		err = pthread_join(t, &ret);
		if (err)
			die("pthread_join: %s", strerror(err));
		uint64_t t1 = now_ns();
		if (i >= 0)
			add_ns(r, t1 - t0);
	}

	r = row("fork_waitpid");
	fflush(NULL); /* nothing buffered may be written twice */
	for (int i = -P.proc_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		wait_child(pid, "fork");
		uint64_t t1 = now_ns();
		if (i >= 0)
			add_ns(r, t1 - t0);
	}

	if (access("/bin/true", X_OK) != 0)
		return; /* no row; noted at the end */
	r = row("vfork_exec_true");
	for (int i = -P.proc_warmup; i < iters; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = vfork();
		if (pid < 0)
			die("vfork: %s", strerror(errno));
		if (pid == 0) {
			execve("/bin/true", argv, envp);
			_exit(127);
		}
		wait_child(pid, "vfork+exec /bin/true");
		uint64_t t1 = now_ns();
		if (i >= 0)
			add_ns(r, t1 - t0);
	}
}

/* ---- 6-9. the Wasp paper's figures -------------------------------------- */

static void *read_image(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s: %s (build the guest images first)", path, strerror(errno));
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if (!n || n == sizeof buf)
		die("%s: empty or over 1 MiB", path);
	void *img = malloc(n);
	if (!img)
		die("out of memory");
	memcpy(img, buf, n);
	*len = n;
	return img;
}

/* Load + run of `img` on an existing virtine, `iters` times into `r`;
 * every run must exit `code`. */
static void load_run_rows(struct wasp_virtine *v, struct row *r, const void *img, size_t len,
			  enum wasp_mode mode, const char *arg, int iters, int64_t code)
{
	struct wasp_exit e;
	for (int i = -1; i < iters; i++) {
		uint64_t t0 = now_ns();
		check(wasp_virtine_load(v, img, len, 0, mode), "wasp_virtine_load");
		if (arg)
			check(wasp_virtine_set_arg(v, arg, strlen(arg)), "wasp_virtine_set_arg");
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run");
		uint64_t t1 = now_ns();
		expect_exit(&e, code, r->name);
		if (i >= 0)
			add_ns(r, t1 - t0);
	}
}

/* 6. Boot by mode (Table 1): from the first instruction to the exit, for an
 * image that exits at once in real mode, after reaching protected mode,
 * after the C runtime's climb to long mode, and with the host's direct
 * 64-bit entry. Load + run on an existing virtine; ring-0 boot code is
 * emulated on PVM, so each mode switch shows. */
static void round_boot_modes(void)
{
	static void *nop, *b32;
	static size_t nop_len, b32_len;
	if (!nop) {
		nop = read_image(WASP_BENCH_NOP_IMAGE, &nop_len);
		b32 = read_image(WASP_BENCH_BOOT32_IMAGE, &b32_len);
	}
	struct wasp_config cfg = bench_config();
	struct wasp_virtine *v;
	int iters = share(P.boot_iters);
	cur_section = "boot by mode (Wasp Table 1): load + run to the exit, existing virtine";
	check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
	load_run_rows(v, row("boot_real_exit"), img_exit3, sizeof img_exit3, WASP_MODE_REAL, NULL,
		      iters, 0);
	load_run_rows(v, row("boot_protected_exit"), b32, b32_len, WASP_MODE_REAL, NULL, iters, 0);
	load_run_rows(v, row("boot_long_via_stub_c_main"), nop, nop_len, WASP_MODE_REAL, NULL,
		      iters, 0);
	load_run_rows(v, row("boot_long_direct_c_main"), nop, nop_len, WASP_MODE_LONG, NULL, iters,
		      0);
	wasp_virtine_destroy(v);
}

/* 7. fib(20) by mode (Fig. 3): the same recursive function in 16-bit real
 * mode and 32-bit protected mode (ring 0: emulated on PVM) and in 64-bit C
 * at ring 3 (native). */
static void round_fib_modes(void)
{
	static void *img[3];
	static size_t len[3];
	static const char *const paths[3] = {WASP_BENCH_FIB16_IMAGE, WASP_BENCH_FIB32_IMAGE,
					     WASP_BENCH_FIB64_IMAGE};
	static const char *const names[3] = {"fib20_real_mode", "fib20_protected_mode",
					     "fib20_long_mode"};
	for (int m = 0; m < 3; m++)
		if (!img[m])
			img[m] = read_image(paths[m], &len[m]);
	struct wasp_config cfg = bench_config();
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (cfg.console_fd < 0)
		die("/dev/null: %s", strerror(errno));
	struct wasp_virtine *v;
	cur_section = "fib(20) by mode (Wasp Fig. 3): load + run, existing virtine";
	check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
	check(wasp_virtine_allow(v, "console_write,get_arg"), "wasp_virtine_allow");
	for (int m = 0; m < 3; m++)
		load_run_rows(v, row(names[m]), img[m], len[m], WASP_MODE_AUTO, "20",
			      share(P.fib20_iters), 0);
	wasp_virtine_destroy(v);
	close(cfg.console_fd);
}

/* fib(n) by iteration: the check of the recursive rows' answers. */
static uint64_t fib_iter(unsigned n)
{
	uint64_t a = 0, b = 1;
	for (unsigned i = 0; i < n; i++) {
		uint64_t t = a + b;
		a = b;
		b = t;
	}
	return a;
}

/* 8. fib(n) for n = 0, 5, ..., 25 (Fig. 11): the paper's naive recursive
 * fib (guest/examples/fib_naive.h) as a host function (bench_fib.c, the
 * same source at the guest's -O2), and through wasp_call() of pool_fib with
 * a snapshot (the call starts after the C runtime's start) and without
 * (every call boots). All three compute the same recursion, so the ratios
 * are like for like with the paper's. */
static struct wasp_pool *snap, *nosnap;
static int pool_console = -1;

static void round_fib_n(void)
{
	if (!snap) {
		struct wasp_pool_config pc;
		wasp_pool_config_init(&pc);
		pc.vm = bench_config();
		pc.vm.console_fd = pool_console = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (pool_console < 0)
			die("/dev/null: %s", strerror(errno));
		pc.image_path = WASP_BENCH_POOL_FIB_IMAGE;
		pc.size = 2;
		check(wasp_pool_create(&pc, &snap), "wasp_pool_create (snapshot)");
		pc.snapshot = WASP_POOL_SNAPSHOT_OFF;
		check(wasp_pool_create(&pc, &nosnap), "wasp_pool_create (no snapshot)");
		check(wasp_pool_fill(snap), "wasp_pool_fill");
		check(wasp_pool_fill(nosnap), "wasp_pool_fill");
		struct wasp_pool_stats st;
		wasp_pool_stats(snap, &st);
		if (!st.snapshot)
			die("%s: the pool took no snapshot", WASP_BENCH_POOL_FIB_IMAGE);
	}
	cur_section = "fib(n): native vs virtine call vs virtine call from a snapshot (Wasp Fig. 11)";
	int iters = share(P.fibn_iters);
	for (unsigned n = 0; n <= 25; n += 5) {
		char name[48];
		uint32_t arg = n;
		uint64_t want = fib_iter(n), got = 0;
		snprintf(name, sizeof name, "fib%u_native", n);
		struct row *rn = row(name);
		snprintf(name, sizeof name, "fib%u_virtine", n);
		struct row *rv = row(name);
		snprintf(name, sizeof name, "fib%u_virtine_snapshot", n);
		struct row *rs = row(name);
		for (int i = -1; i < iters; i++) {
			uint64_t t0 = now_ns();
			volatile uint64_t x = bench_fib_native(n);
			uint64_t t1 = now_ns();
			if (x != want)
				die("native fib(%u)", n);
			int r = wasp_call(nosnap, &arg, sizeof arg, &got, sizeof got, NULL);
			uint64_t t2 = now_ns();
			if (r != sizeof got || got != want)
				die("fib(%u) virtine: %d, %llu: %s", n, r, (unsigned long long)got,
				    wasp_last_error());
			got = 0;
			r = wasp_call(snap, &arg, sizeof arg, &got, sizeof got, NULL);
			uint64_t t3 = now_ns();
			if (r != sizeof got || got != want)
				die("fib(%u) virtine+snapshot: %d, %llu: %s", n, r,
				    (unsigned long long)got, wasp_last_error());
			if (i >= 0) {
				add_ns(rn, t1 - t0);
				add_ns(rv, t2 - t1);
				add_ns(rs, t3 - t2);
			}
		}
	}
}

/* 9. Start latency against image size (Fig. 12): a real-mode image that
 * exits at once, padded to each size, loaded and run on an existing 32 MiB
 * virtine (the load copies the image and zeroes what the last run used). */
static void round_image_sizes(void)
{
	static const size_t sizes[] = {32, 4096, 65536, 1u << 20, 4u << 20, 16u << 20};
	static uint8_t *img;
	if (!img) {
		img = calloc(1, 16u << 20);
		if (!img)
			die("out of memory");
		memcpy(img, img_exit3, sizeof img_exit3);
		/* Not zero, so no load can skip it. */
		for (size_t i = sizeof img_exit3; i < (16u << 20); i++)
			img[i] = (uint8_t)(i * 131u + 7u);
	}
	struct wasp_config cfg = bench_config();
	cfg.mem_size = 32u << 20;
	struct wasp_virtine *v;
	cur_section = "start latency vs image size (Wasp Fig. 12): load + run on an existing 32 MiB "
		      "virtine; a call through a pool";
	check(wasp_virtine_create(&cfg, &v), "wasp_virtine_create");
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		char name[48];
		if (sizes[k] >= (1u << 20))
			snprintf(name, sizeof name, "image_%zuMiB_load_run", sizes[k] >> 20);
		else if (sizes[k] >= 1024)
			snprintf(name, sizeof name, "image_%zuKiB_load_run", sizes[k] >> 10);
		else
			snprintf(name, sizeof name, "image_%zuB_load_run", sizes[k]);
		load_run_rows(v, row(name), img, sizes[k], WASP_MODE_REAL, NULL, share(P.size_iters),
			      0);
	}
	/* The load alone (Fig. 12 without a pool, issue 16) against a plain
	 * memcpy of the same bytes into a host buffer this process already
	 * touched: what a load costs beyond moving the bytes. The virtine
	 * has run, so each load also clears what the last run used. */
	static uint8_t *dst;
	if (!dst) {
		dst = malloc(16u << 20);
		if (!dst)
			die("out of memory");
		memset(dst, 1, 16u << 20);
	}
	struct row *lr = row("image_16MiB_load"), *mr = row("memcpy_16MiB");
	for (int i = -1; i < share(P.size_iters); i++) {
		struct wasp_exit e;
		uint64_t t0 = now_ns();
		check(wasp_virtine_load(v, img, 16u << 20, 0, WASP_MODE_REAL), "wasp_virtine_load");
		uint64_t t1 = now_ns();
		check(wasp_virtine_run(v, 0, &e), "wasp_virtine_run");
		expect_exit(&e, 0, lr->name);
		uint64_t t2 = now_ns();
		memcpy(dst, img, 16u << 20);
		uint64_t t3 = now_ns();
		/* The copy must land: compare a byte the compiler cannot know. */
		if (dst[(size_t)(t3 & 0xffff) + 4096] != img[(size_t)(t3 & 0xffff) + 4096])
			die("memcpy_16MiB: the copy differs");
		if (i >= 0) {
			add_ns(lr, t1 - t0);
			add_ns(mr, t3 - t2);
		}
	}
	wasp_virtine_destroy(v);

	/* The same images through a pool: a call starts from a reset shell
	 * (only the pages the last call dirtied are put back), so the image's
	 * size stays out of the start. */
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		char name[48];
		struct wasp_pool_config pc;
		struct wasp_pool *pool;
		wasp_pool_config_init(&pc);
		pc.vm = cfg;
		pc.image = img;
		pc.image_len = sizes[k];
		pc.mode = WASP_MODE_REAL;
		pc.size = 2;
		check(wasp_pool_create(&pc, &pool), "wasp_pool_create (image size)");
		check(wasp_pool_fill(pool), "wasp_pool_fill");
		if (sizes[k] >= (1u << 20))
			snprintf(name, sizeof name, "image_%zuMiB_pool_call", sizes[k] >> 20);
		else if (sizes[k] >= 1024)
			snprintf(name, sizeof name, "image_%zuKiB_pool_call", sizes[k] >> 10);
		else
			snprintf(name, sizeof name, "image_%zuB_pool_call", sizes[k]);
		struct row *r = row(name);
		for (int i = -1; i < share(P.size_iters); i++) {
			uint64_t t0 = now_ns();
			int rc = wasp_call(pool, NULL, 0, NULL, 0, NULL);
			uint64_t t1 = now_ns();
			if (rc != 0)
				die("%s: wasp_call: %d: %s", name, rc, wasp_last_error());
			if (i >= 0)
				add_ns(r, t1 - t0);
		}
		wasp_pool_destroy(pool);
	}
}

/* ---- output ------------------------------------------------------------- */

#define NAME_W 38

/* The result table in order, with a "floor" row after the candidates. */
static struct row *out_rows[MAX_ROWS + 1];
static size_t nout;
static struct row floor_row;
static const char *floor_name;
static double floor_us;

static void choose_floor(void)
{
	const struct row *best = NULL;
	size_t last = 0;
	for (size_t i = 0; i < nrows; i++) {
		finish(&rows[i]);
		for (size_t c = 0; c < BENCH_FLOOR_MODES; c++) {
			if (strcmp(rows[i].name, bench_floor_names[c]))
				continue;
			last = i;
			if (!best || rows[i].median < best->median)
				best = &rows[i];
		}
	}
	if (!best)
		die("no floor measured");
	floor_row = *best;
	snprintf(floor_row.name, sizeof floor_row.name, "floor");
	floor_name = best->name;
	floor_us = best->median;
	for (size_t i = 0; i < nrows; i++) {
		out_rows[nout++] = &rows[i];
		if (i == last)
			out_rows[nout++] = &floor_row;
	}
}

static void print_table(void)
{
	const char *section = NULL;
	printf("%-*s %10s %10s %10s %10s %7s %8s\n", NAME_W, "name", "median_us", "p10_us",
	       "p90_us", "min_us", "iters", "x_floor");
	for (size_t i = 0; i < nout; i++) {
		const struct row *r = out_rows[i];
		if (r->section && r->section != section) {
			section = r->section;
			printf("-- %s\n", section);
		}
		printf("%-*s %10.2f %10.2f %10.2f %10.2f %7zu %8.2f\n", NAME_W, r->name, r->median,
		       r->p10, r->p90, r->min, r->n, r->median / floor_us);
	}
}

static void write_csv(FILE *f)
{
	fprintf(f, "name,median_us,p10_us,p90_us,min_us,iterations,ratio_to_floor\n");
	for (size_t i = 0; i < nout; i++) {
		const struct row *r = out_rows[i];
		fprintf(f, "%s,%.3f,%.3f,%.3f,%.3f,%zu,%.3f\n", r->name, r->median, r->p10, r->p90,
			r->min, r->n, r->median / floor_us);
	}
}

/* The sections after the floor, by the names --only takes. */
static const struct {
	const char *name;
	void (*run)(void);
} sections[] = {
	{"life", round_lifecycle},   {"reuse", round_reuse},
	{"hypercalls", round_hypercalls}, {"fig8", round_baselines},
	{"boot", round_boot_modes}, {"fib20", round_fib_modes},
	{"fib", round_fib_n},       {"image", round_image_sizes},
};

/* The bit mask of the sections named in `list` (comma-separated); 0 when
 * a name is unknown. */
static unsigned parse_only(const char *list)
{
	unsigned mask = 0;
	char buf[256];
	snprintf(buf, sizeof buf, "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t k = 0;
		while (k < sizeof sections / sizeof *sections && strcmp(sections[k].name, t))
			k++;
		if (k == sizeof sections / sizeof *sections)
			return 0;
		mask |= 1u << k;
	}
	return mask;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wasp-bench-core [--quick] [--csv PATH] [--cpu N] [--only LIST]\n"
		"  --quick     fewer iterations (a smoke run of a few seconds)\n"
		"  --csv PATH  also write the results as CSV to PATH\n"
		"  --cpu N     pin the benchmark (and its vCPUs) to CPU N\n"
		"  --only LIST these sections after the floor, comma-separated, of: life, reuse,\n"
		"              hypercalls, fig8, boot, fib20, fib, image (default: all; an\n"
		"              emulated KVM, e.g. the nested test VM, runs real mode very slowly)\n"
		"Times are in microseconds over many iterations; x_floor is a row's median over\n"
		"the cheapest raw KVM `out` exit round trip (the floor). Exit 77: no usable KVM.\n");
}

int main(int argc, char **argv)
{
	const char *csv_path = NULL;
	bool quick = false;
	int cpu = -1;
	unsigned only = ~0u;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv_path = argv[++i];
		} else if (!strncmp(argv[i], "--csv=", 6) && argv[i][6]) {
			csv_path = argv[i] + 6;
		} else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
			char *end;
			long n = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || n < 0 || n >= CPU_SETSIZE) {
				fprintf(stderr, "wasp-bench-core: --cpu wants a CPU number, not '%s'\n",
					argv[i]);
				return 2;
			}
			cpu = (int)n;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = parse_only(argv[++i]);
			if (!only) {
				fprintf(stderr, "wasp-bench-core: --only: unknown section in '%s'\n",
					argv[i]);
				usage(stderr);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wasp-bench-core: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	bench_prog = "wasp-bench-core";
	P = quick ? quick_params : full_params;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0) {
			fprintf(stderr, "wasp-bench-core: cannot pin to CPU %d: %s\n", cpu,
				strerror(errno));
			return 2;
		}
	}

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		int err = errno;
		fprintf(stderr, "wasp-bench-core: /dev/kvm: %s (%s); skipping: this benchmark needs KVM\n",
			strerror(err),
			err == ENOENT ? "this host offers no KVM" : "this user may not use it");
		return EXIT_SKIP;
	}
	if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		fprintf(stderr, "wasp-bench-core: /dev/kvm speaks an unknown API version; skipping\n");
		return EXIT_SKIP;
	}
	int sync = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	kvm_sync_regs = sync > 0 && (sync & KVM_SYNC_X86_REGS);

	/* Fail early, with the path in the message, rather than after the run. */
	FILE *csv = NULL;
	if (csv_path) {
		csv = fopen(csv_path, "w");
		if (!csv)
			die("%s: %s", csv_path, strerror(errno));
	}

	printf("wasp-bench-core (%s): %d rounds; times in microseconds (CLOCK_MONOTONIC)",
	       quick ? "quick" : "full", P.rounds);
	if (cpu >= 0)
		printf("; pinned to CPU %d", cpu);
	printf("\n");
	fflush(stdout);
	uint64_t t0 = now_ns();
	for (int round = 1; round <= P.rounds; round++) {
		round_floor(); /* always: every row is reported against it */
		for (size_t k = 0; k < sizeof sections / sizeof *sections; k++) {
			if (!(only & (1u << k)))
				continue;
			/* Where a slow (emulated) host spends its time, and where a
			 * run that was stopped got to. */
			fprintf(stderr, "wasp-bench-core: round %d: %s (%.1f s)\n", round,
				sections[k].name, (double)(now_ns() - t0) / 1e9);
			sections[k].run();
		}
		fprintf(stderr, "wasp-bench-core: round %d/%d done (%.1f s)\n", round, P.rounds,
			(double)(now_ns() - t0) / 1e9);
	}

	wasp_pool_destroy(snap);
	wasp_pool_destroy(nosnap);
	wasp_pool_destroy(vmrun_pool);
	if (pool_console >= 0)
		close(pool_console);

	choose_floor();
	print_table();
	printf("floor = %s = %.2f us; hypercall K = %d per run", floor_name, floor_us, P.hc_k);
	if (!kvm_sync_regs)
		printf("; no KVM_CAP_SYNC_REGS (sync rows skipped)");
	if (access("/bin/true", X_OK) != 0)
		printf("; no /bin/true (vfork+exec skipped)");
	printf("; %.1f s\n", (double)(now_ns() - t0) / 1e9);
	/* The floor of calls into C virtines (ring 3): the cheapest ring-3 exit. */
	const struct row *ring3 = NULL;
	for (int k = 0; k < BENCH_RING3_EXITS; k++) {
		if (k == BENCH_RING3_INT3 && int3_missing[0])
			continue;
		const struct row *r = find(bench_ring3_names[k]);
		if (!ring3 || r->median < ring3->median)
			ring3 = r;
	}
	printf("floor_ring3 = %s = %.2f us (x%.2f of the floor)\n", ring3->name, ring3->median,
	       ring3->median / floor_us);
	if (int3_missing[0])
		printf("ring-3 exit %s not measured: %s\n", bench_ring3_names[BENCH_RING3_INT3],
		       int3_missing);
	if (only & parse_only("fig8"))
		printf("ratio vmrun_3b/floor %.2f (for comparison)\n",
		       find("vmrun_3b")->median / floor_us);
	/* What tracing costs, against the same call with no tracer, measured
	 * in the same rounds (docs/tracing.md). */
	const struct row *off = row("hypercall_noop_user"), *idle = row("hypercall_noop_tracer_idle"),
			 *on = row("hypercall_noop_traced");
	if ((only & parse_only("hypercalls")) && off->median > 0)
		printf("tracing: tracer attached, no events x%.3f; hypercalls traced x%.3f "
		       "(of hypercall_noop_user)\n",
		       idle->median / off->median, on->median / off->median);
	const struct row *load = row("image_16MiB_load"), *copy = row("memcpy_16MiB");
	if (copy->median > 0)
		printf("ratio image_load_16MiB/memcpy_16MiB %.2f (target 3)\n",
		       load->median / copy->median);
	printf("\n");
	write_csv(stdout);
	if (csv) {
		write_csv(csv);
		if (fflush(csv) != 0 || ferror(csv) || fclose(csv) != 0)
			die("%s: write failed: %s", csv_path, strerror(errno));
		printf("(CSV written to %s)\n", csv_path);
	}
	close(kvm_fd);
	return 0;
}
