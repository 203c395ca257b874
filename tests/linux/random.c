/*
 * random.c: getrandom. The bytes differ every run, so it prints lengths
 * and facts: two draws differ, a large draw is not all zeros, AT_RANDOM
 * points at 16 bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>

int main(void)
{
	unsigned char a[32], b[32];
	ssize_t na = getrandom(a, sizeof a, 0);
	ssize_t nb = getrandom(b, sizeof b, 0);
	printf("getrandom 32: %zd and %zd\n", na, nb);
	printf("two draws differ: %s\n", memcmp(a, b, sizeof a) ? "yes" : "no");
	printf("getrandom 0: %zd\n", getrandom(a, 0, 0));
	printf("getrandom nonblock 16: %zd\n", getrandom(a, 16, GRND_NONBLOCK));

	size_t big = 1 << 20;
	unsigned char *p = calloc(1, big);
	ssize_t n = getrandom(p, big, 0);
	size_t zeros = 0;
	int counts[256] = {0};
	for (size_t i = 0; i < big; i++) {
		zeros += p[i] == 0;
		counts[p[i]]++;
	}
	int every_value = 1;
	for (int i = 0; i < 256; i++)
		every_value &= counts[i] > 0;
	printf("getrandom 1 MiB: %zd, every byte value seen: %s, zero bytes < 1%%: %s\n", n,
	       every_value ? "yes" : "no", zeros < big / 100 ? "yes" : "no");
	free(p);

	errno = 0;
	n = getrandom(a, 16, 0x40);
	printf("getrandom bad flags: %zd (%s)\n", n, strerror(errno));

	unsigned long at = getauxval(AT_RANDOM);
	int nonzero = 0;
	if (at)
		for (int i = 0; i < 16; i++)
			nonzero |= ((unsigned char *)at)[i];
	printf("AT_RANDOM present: %s, not all zero: %s\n", at ? "yes" : "no", nonzero ? "yes" : "no");
	return 0;
}
