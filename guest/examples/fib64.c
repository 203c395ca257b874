/*
 * fib64: recursive Fibonacci in 64-bit C, the counterpart of fib16/fib32.
 * Argument: n (default 20). Prints "fib(N) = X" and exits 0.
 */
#include "wasp_guest.h"

static uint64_t fib(unsigned n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

int main(void)
{
	char **argv;
	unsigned n = 20;

	if (wasp_args(&argv) > 0)
		n = (unsigned)strtoul(argv[0], NULL, 10);
	wasp_printf("fib(%u) = %llu\n", n, (unsigned long long)fib(n));
	return 0;
}
