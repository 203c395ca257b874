/* hcloop: N trivial hypercalls (the clock) from ring 3, N from its
 * argument: the baseline of wasp-bench-linux's syscall row. */
#include "wasp_guest.h"

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	long n = 0;
	for (const char *p = argc > 0 ? argv[0] : ""; *p >= '0' && *p <= '9'; p++)
		n = n * 10 + (*p - '0');
	for (long i = 0; i < n; i++)
		wasp_clock_ns(WASP_CLOCK_MONOTONIC);
	return 0;
}
