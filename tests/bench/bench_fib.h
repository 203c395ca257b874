/*
 * bench_fib.h: the naive fib of guest/examples/fib_naive.h, run on the host
 * (bench_fib.c), the native baseline of wasp-bench-core's Fig. 11 rows.
 */
#ifndef WASP_BENCH_FIB_H
#define WASP_BENCH_FIB_H

#include <stdint.h>

/* fib(n) by plain double recursion (exponential in n, as in the guest). */
uint64_t bench_fib_native(unsigned n);

#endif
