/*
 * bench_floor.h: the floor of the benchmarks, the cheapest bare KVM_RUN
 * round trip of an `out` exit, measured with raw KVM ioctls (no libwasp)
 * as wasp-bench-core and wasp-bench-pool measure it: a guest looping on
 * `out 0x10, al` in real mode, in long mode at ring 0, and at ring 3
 * (IOPL = 3). The cheapest median of the three is the floor.
 *
 * Shared by benchmarks that report their rows against the floor measured
 * in the same run (wasp-bench-http, wasp-bench-pool), and the bare VM
 * under it, for wasp-bench-core's variants (MMIO, sync regs, ioctls).
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

#endif
