/*
 * bench_fib.c: the host's copy of pool_fib's function for wasp-bench-core's
 * fib(n) rows (Wasp Fig. 11): guest/examples/fib_naive.h, the same source
 * the virtine runs. This file is compiled with -O2 whatever the build type
 * (tests/bench/CMakeLists.txt), as the guest is, and on its own, so the
 * compiler cannot specialise the recursion for the bench's constant n.
 */
#include "bench_fib.h"

#include "fib_naive.h"

uint64_t bench_fib_native(unsigned n)
{
	return fib_naive(n);
}
