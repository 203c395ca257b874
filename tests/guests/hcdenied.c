/*
 * hcdenied: a flood of hypercalls the host must refuse. Run with only
 * console_write allowed (wasp-run's --allow=console_write).
 *
 * Cycles through numbers that are denied (open, write, stdin_read, clock,
 * ...: -EPERM), numbers nobody registered (15..127: -ENOSYS) and numbers
 * past the table (128, 2^32, 2^63, 2^64-1: -ENOSYS), with garbage in every
 * argument register. Each answer is checked.
 * Argument: the number of calls (default 20000), or "forever" to keep
 * calling until the host's timeout stops it (a guest that exits constantly
 * must still be stoppable).
 * Prints "hcdenied: N calls, K wrong answers" and exits 0 when K is 0.
 */
#include "wasp_guest.h"

static const uint64_t denied[] = {
	WASP_HC_STDIN_READ, WASP_HC_OPEN, WASP_HC_CLOSE, WASP_HC_READ, WASP_HC_WRITE,
	WASP_HC_PREAD, WASP_HC_LSEEK, WASP_HC_FSTAT, WASP_HC_CLOCK, WASP_HC_PWRITE,
};
static const uint64_t unknown[] = {
	WASP_HC_BUILTIN_COUNT, 63, WASP_HC_USER_BASE, 100, WASP_HC_MAX - 1, WASP_HC_MAX,
	1ull << 32, 1ull << 63, ~0ull,
};

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	bool forever = argc > 0 && !strcmp(argv[0], "forever");
	uint64_t calls = argc > 0 && !forever ? strtoul(argv[0], NULL, 0) : 20000;
	uint64_t wrong = 0, x = 0x9e3779b97f4a7c15ull;
	const size_t nd = sizeof denied / sizeof *denied, nu = sizeof unknown / sizeof *unknown;

	if (forever)
		wasp_puts("hcdenied: calling until stopped");
	for (uint64_t i = 0; forever || i < calls; i++) {
		bool is_denied = i % 2 == 0;
		uint64_t nr = is_denied ? denied[(i / 2) % nd] : unknown[(i / 2) % nu];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int64_t r = wasp_hypercall(nr, x, ~x, x >> 1, x << 3, x * 7, 0 - x);
		if (r != (is_denied ? -WASP_EPERM : -WASP_ENOSYS)) {
			if (wrong++ < 5)
				wasp_printf("hcdenied: call %llu (nr 0x%llx) -> %lld %s, expected %s\n",
					    (unsigned long long)i, (unsigned long long)nr, (long long)r,
					    wasp_errname(r), is_denied ? "EPERM" : "ENOSYS");
		}
	}
	wasp_printf("hcdenied: %llu calls, %llu wrong answers\n", (unsigned long long)calls,
		    (unsigned long long)wrong);
	return wrong ? 1 : 0;
}
