/*
 * calls: a function called several times, for checkpoints at a chosen
 * point (tests/vmm/trace_test.sh). step() is kept out of line so it has an
 * entry address in calls.sym; each call prints, so a run stopped and
 * restored anywhere shows a gap or a repeat in its output.
 * Argument: n (default 6). Prints "step I: acc=X" n times, then
 * "result X", and exits with X & 0xff.
 */
#include "wasp_guest.h"

static volatile uint64_t acc = 1;

__attribute__((noinline)) void step(unsigned i)
{
	acc = acc * 31 + i;
	wasp_printf("step %u: acc=%llu\n", i, (unsigned long long)acc);
}

int main(void)
{
	char **argv;
	unsigned n = 6;

	if (wasp_args(&argv) > 0)
		n = (unsigned)strtoul(argv[0], NULL, 10);
	for (unsigned i = 1; i <= n; i++)
		step(i);
	wasp_printf("result %llu\n", (unsigned long long)acc);
	return (int)(acc & 0xff);
}
