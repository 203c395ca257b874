/*
 * bench_floor.h: the floor of the benchmarks, the cheapest bare KVM_RUN
 * round trip of an `out` exit, measured with raw KVM ioctls (no libwasp)
 * as wasp-bench-core and wasp-bench-pool measure it: a guest looping on
 * `out 0x10, al` in real mode, in long mode at ring 0, and at ring 3
 * (IOPL = 3). The cheapest median of the three is the floor.
 *
 * Shared by benchmarks that report their rows against the floor measured
 * in the same run (wasp-bench-http, wasp-bench-pool), and the bare VM
 * under it, for wasp-bench-core's variants (MMIO, sync regs, ioctls). Also
 * the ring-3 exits (bench_ring3_run): the floor of calls into C virtines,
 * which run at ring 3.
 */
#ifndef WASP_BENCH_FLOOR_H
#define WASP_BENCH_FLOOR_H

#include <stddef.h>
#include <stdint.h>

struct kvm_run;

enum bench_floor_mode {
	BENCH_FLOOR_REAL,  /* kvm_out_ring0_real */
	BENCH_FLOOR_LONG0, /* kvm_out_ring0_long */
	BENCH_FLOOR_LONG3, /* kvm_out_ring3_long */
	BENCH_FLOOR_MODES,
};

/* The row names wasp-bench-core and wasp-bench-pool use for the modes. */
extern const char *const bench_floor_names[BENCH_FLOOR_MODES];

/* A bare VM: 4 MiB, the first GiB identity-mapped with user pages, one
 * vCPU entering BENCH_VM_CODE directly in its mode. */
#define BENCH_VM_CODE 0x8000u
struct bench_vm {
	int vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
};
/* Builds one running `code` (len bytes). 0, or -errno with one line in
 * err[0..errlen) and nothing left open. */
int bench_vm_open(int kvm_fd, enum bench_floor_mode mode, const uint8_t *code, size_t len,
		  struct bench_vm *vm, char *err, size_t errlen);
void bench_vm_close(struct bench_vm *vm);

/* Builds a VM in `mode` on the /dev/kvm fd `kvm_fd`, runs `warmup`
 * untimed round trips, then `iters` timed ones whose nanoseconds
 * (CLOCK_MONOTONIC around each KVM_RUN) go to ns[0..iters), and tears the
 * VM down. Every exit is checked to be the guest's `out` to port 0x10.
 * Returns 0, or -errno with one line in err[0..errlen). */
int bench_floor_run(int kvm_fd, enum bench_floor_mode mode, int warmup, int iters,
		    uint64_t *ns, char *err, size_t errlen);

/*
 * The ring-3 exits: every way found for code at CPL 3 (where C virtines
 * run) to make KVM_RUN return to the VMM and be resumed, each a guest
 * looping on it in long mode at ring 3. `floor_ring3` is the cheapest
 * median of those measured in a run. Not candidates, and why: `hlt`,
 * `wrmsr`/`rdmsr` and `mov cr` fault at CPL 3 (#GP); `vmcall` from CPL 3
 * is answered inside KVM (-KVM_EPERM in rax) and never reaches the VMM,
 * unless the VM enables KVM's Xen emulation (KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL
 * sends Xen hypercalls from any CPL out as KVM_EXIT_XEN: another ABI, not
 * measured here); `cpuid`, `rdtsc`, `pause` are handled in the kernel; an
 * exception with no IDT is a triple fault (KVM_EXIT_SHUTDOWN), which is
 * not resumable on hardware KVM.
 */
enum bench_ring3_exit {
	BENCH_RING3_OUT,  /* kvm_out_ring3_long: `out 0x10, al` with IOPL 3 */
	BENCH_RING3_MMIO, /* kvm_mmio_ring3_long: a store to an unbacked address */
	BENCH_RING3_INT3, /* kvm_int3_ring3_guestdbg: `int3` under KVM_GUESTDBG_USE_SW_BP */
	BENCH_RING3_EXITS,
};
extern const char *const bench_ring3_names[BENCH_RING3_EXITS];

/* As bench_floor_run, for the ring-3 exit `kind`. Every exit is checked
 * (the port, the address, or KVM_EXIT_DEBUG for #BP); the int3 loop moves
 * rip past the `int3` through the sync registers after each exit, as a VMM
 * using that exit must (without KVM_CAP_SYNC_REGS: -EOPNOTSUPP). -EOPNOTSUPP
 * too when this KVM does not report the exit the kind needs (PVM turns the
 * #BP into a shutdown): a candidate this KVM lacks, not a failure. */
int bench_ring3_run(int kvm_fd, enum bench_ring3_exit kind, int warmup, int iters, uint64_t *ns,
		    char *err, size_t errlen);

#endif
