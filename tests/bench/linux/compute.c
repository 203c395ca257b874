/* compute [N]: compute-bound work with memory traffic (hashing over an
 * 8 MiB table), one line of output: the same binary runs natively and in
 * a virtine for wasp-bench-linux's linux_compute row. Static Linux
 * program. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 60000000;
	size_t words = (8u << 20) / sizeof(uint64_t);
	uint64_t *t = malloc(words * sizeof *t), h = 0x9e3779b97f4a7c15ull;
	if (!t)
		return 1;
	for (size_t i = 0; i < words; i++)
		t[i] = i * 0x2545f4914f6cdd1dull;
	for (long i = 0; i < n; i++) {
		h ^= h << 13;
		h ^= h >> 7;
		h ^= h << 17;
		t[h % words] += h;
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < words; i++)
		sum += t[i];
	printf("%016llx\n", (unsigned long long)sum);
	free(t);
	return 0;
}
