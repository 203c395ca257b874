/*
 * bench_floor.h: the floor of the benchmarks, the cheapest bare KVM_RUN
 * round trip of an `out` exit, measured with raw KVM ioctls (no libwasp)
 * as wasp-bench-core and wasp-bench-pool measure it: a guest looping on
 * `out 0x10, al` in real mode, in long mode at ring 0, and at ring 3
 * (IOPL = 3). The cheapest median of the three is the floor.
 *
 * Shared by benchmarks that report their rows against the floor measured
 * in the same run (wasp-bench-http, wasp-bench-pool; wasp-bench-core keeps
 * its own, with variants the others do not need).
 */
#ifndef WASP_BENCH_FLOOR_H
#define WASP_BENCH_FLOOR_H

#include <stddef.h>
#include <stdint.h>

enum bench_floor_mode {
	BENCH_FLOOR_REAL,  /* kvm_out_ring0_real */
	BENCH_FLOOR_LONG0, /* kvm_out_ring0_long */
	BENCH_FLOOR_LONG3, /* kvm_out_ring3_long */
	BENCH_FLOOR_MODES,
};

/* The row names wasp-bench-core and wasp-bench-pool use for the modes. */
extern const char *const bench_floor_names[BENCH_FLOOR_MODES];

/* Builds a VM in `mode` on the /dev/kvm fd `kvm_fd`, runs `warmup`
 * untimed round trips, then `iters` timed ones whose nanoseconds
 * (CLOCK_MONOTONIC around each KVM_RUN) go to ns[0..iters), and tears the
 * VM down. Every exit is checked to be the guest's `out` to port 0x10.
 * Returns 0, or -errno with one line in err[0..errlen). */
int bench_floor_run(int kvm_fd, enum bench_floor_mode mode, int warmup, int iters,
		    uint64_t *ns, char *err, size_t errlen);

#endif
