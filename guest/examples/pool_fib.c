/*
 * pool_fib: a function-style virtine for the pool (docs/pool.md).
 *
 * Starts (the C runtime's set-up, standing in for whatever costly set-up a
 * real function has), then calls the snapshot hypercall: a pool captures
 * the virtine there, and every call starts right after it. Each call reads
 * its argument (n as a decimal string, or 4 or 8 bytes little-endian),
 * computes fib(n) by the paper's naive recursion (fib_naive.h: no table,
 * so a call's cost grows with n as in the Wasp paper's Fig. 11) and hands
 * back the 8-byte result with wasp_set_ret(); in a pool that ends the
 * call. Run outside a pool (wasp-run pool_fib.bin -- 20), it goes on to
 * print the result and exit 0.
 */
#include "wasp_guest.h"
#include "fib_naive.h"

int main(void)
{
	/* The snapshot hypercall names a buffer for the argument: a pool
	 * copies each call's argument there and returns its length, which
	 * saves the exit of wasp_get_arg(). Anywhere else it returns 0, and
	 * wasp_get_arg() fetches the argument as usual. */
	char arg[32];
	int64_t len = wasp_hypercall(WASP_HC_SNAPSHOT, (uintptr_t)arg, sizeof arg - 1,
				     WASP_SNAPSHOT_ARG, 0, 0, 0);
	if (len <= 0)
		len = wasp_get_arg(arg, sizeof arg - 1);
	unsigned n = 0;
	if (len == 4 || len == 8) {
		memcpy(&n, arg, 4);
	} else if (len > 0) {
		arg[len < (int64_t)sizeof arg - 1 ? len : (int64_t)sizeof arg - 1] = '\0';
		n = (unsigned)strtoul(arg, NULL, 10);
	}
	uint64_t r = fib_naive(n);
	wasp_set_ret(&r, sizeof r);
	wasp_printf("fib(%u) = %llu\n", n, (unsigned long long)r);
	return 0;
}
