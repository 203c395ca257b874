/*
 * fib_naive.h: the Wasp paper's fib (Fig. 11): plain double recursion, no
 * table, no memo, so its cost grows with n as the paper's does.
 *
 * One definition for both sides of the comparison: guest/examples/pool_fib.c
 * runs it in the virtine, and wasp-bench-core's host row (tests/bench/
 * bench_fib.c) runs the very same code natively, both compiled with -O2
 * (the guest's flags, guest/virtine.cmake; a per-file -O2 on the host, so
 * the build type does not change the baseline). Freestanding: it needs only
 * <stdint.h>.
 */
#ifndef WASP_FIB_NAIVE_H
#define WASP_FIB_NAIVE_H

#include <stdint.h>

/* noinline: a call the compiler could see through (a constant n) must not
 * fold the recursion away on one side only. */
static __attribute__((noinline)) uint64_t fib_naive(unsigned n)
{
	return n < 2 ? n : fib_naive(n - 1) + fib_naive(n - 2);
}

#endif
