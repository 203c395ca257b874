/*
 * counter: the checkpoint workload. Deterministic, CPU-bound, with state in
 * memory, in a file and on the console, so a checkpoint taken at any point and
 * restored (here or on another host) must end with byte-identical output.
 *
 * Arguments: STEPS (default 100) WORK (default 2000000 inner iterations per
 * step, a few ms at native speed). State: a 1 MiB array and a running 64-bit
 * FNV-1a hash. Each step
 *   - rewrites a 16 KiB window of the array, walking through all of it (so an
 *     incremental checkpoint sees a few dirty pages per step),
 *   - spins WORK rounds of xorshift arithmetic folded into the hash,
 *   - appends "step I hash H" to counter.log in the sandbox (if open is
 *     allowed) and prints "step I/STEPS hash H" on the console.
 * At the end it prints "done hash H" and exits with H & 0x7f.
 * No clock is read: the output depends on the arguments alone.
 */
#include "wasp_guest.h"

#define STATE_SIZE (1u << 20)
#define WINDOW (16u * 1024u)
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t state[STATE_SIZE / sizeof(uint64_t)];
static uint64_t hash = FNV_OFFSET;

static void fnv_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		hash = (hash ^ b[i]) * FNV_PRIME;
}

/* A window per step; 7 is odd, so the windows visit all 64 positions. */
static void mutate(uint64_t step)
{
	size_t words = WINDOW / sizeof(uint64_t);
	size_t first = (size_t)((step * 7) % (STATE_SIZE / WINDOW)) * words;
	uint64_t x = hash ^ step;

	for (size_t i = 0; i < words; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		state[first + i] ^= x;
	}
	fnv_bytes(&state[first], WINDOW);
}

static void spin(uint64_t work)
{
	uint64_t y = hash | 1;

	for (uint64_t k = 0; k < work; k++) {
		y ^= y << 13;
		y ^= y >> 7;
		y ^= y << 17;
		y += k;
	}
	fnv_bytes(&y, sizeof y);
}

/* write() may be short; a log line is all or an error. */
static int64_t write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		int64_t n = wasp_write(fd, buf, len);
		if (n <= 0)
			return n < 0 ? n : -WASP_EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	uint64_t steps = argc > 0 ? strtoul(argv[0], NULL, 10) : 100;
	uint64_t work = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
	int log = wasp_open("counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND, 0644);

	if (log < 0)
		wasp_printf("counter: no counter.log (%d %s), console only\n", log,
			    wasp_errname(log));
	for (uint64_t i = 1; i <= steps; i++) {
		char line[64];
		int n;

		mutate(i);
		spin(work);
		if (log >= 0) {
			n = snprintf(line, sizeof line, "step %llu hash %016llx\n",
				     (unsigned long long)i, (unsigned long long)hash);
			int64_t r = write_all(log, line, (size_t)n);
			if (r < 0) {
				wasp_printf("counter: counter.log: %lld %s\n", (long long)r,
					    wasp_errname(r));
				return 1;
			}
		}
		wasp_printf("step %llu/%llu hash %016llx\n", (unsigned long long)i,
			    (unsigned long long)steps, (unsigned long long)hash);
	}
	if (log >= 0)
		wasp_close(log);
	wasp_printf("done hash %016llx\n", (unsigned long long)hash);
	return (int)(hash & 0x7f);
}
