/*
 * qsort.c: qsort and bsearch on integers, strings and records; prints
 * checksums of the sorted arrays and a few elements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lx_common.h"

#define N 50000

struct rec {
	int key;
	int seq; /* breaks ties, so the order is total and both libcs agree */
	char name[12];
};

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	if (x->key != y->key)
		return (x->key > y->key) - (x->key < y->key);
	return (x->seq > y->seq) - (x->seq < y->seq);
}

int main(void)
{
	static int v[N];
	static char *s[N / 5];
	static struct rec recs[N / 2];
	uint64_t seed = 0xfeedfacecafebeefull, h;

	for (int i = 0; i < N; i++)
		v[i] = (int)(lx_rand(&seed) % 2000001) - 1000000;
	qsort(v, N, sizeof v[0], cmp_int);
	int sorted = 1;
	for (int i = 1; i < N; i++)
		sorted &= v[i - 1] <= v[i];
	h = lx_fnv(LX_FNV_INIT, v, sizeof v);
	printf("ints: sorted %s, min %d, median %d, max %d, sum %016llx\n", sorted ? "yes" : "no",
	       v[0], v[N / 2], v[N - 1], (unsigned long long)h);
	int probe = v[12345];
	int *hit = bsearch(&probe, v, N, sizeof v[0], cmp_int);
	printf("bsearch %d: %s\n", probe, hit && *hit == probe ? "found" : "missing");
	probe = 1000001;
	printf("bsearch %d: %s\n", probe, bsearch(&probe, v, N, sizeof v[0], cmp_int) ? "found" : "missing");

	for (int i = 0; i < N / 5; i++) {
		char buf[32];
		uint64_t r = lx_rand(&seed);
		int len = 3 + (int)(r % 10);
		for (int j = 0; j < len; j++)
			buf[j] = (char)('a' + (r >> (j * 5)) % 26);
		buf[len] = 0;
		s[i] = strdup(buf);
	}
	qsort(s, N / 5, sizeof s[0], cmp_str);
	h = LX_FNV_INIT;
	for (int i = 0; i < N / 5; i++)
		h = lx_fnv(h, s[i], strlen(s[i]) + 1);
	printf("strings: first %s, last %s, sum %016llx\n", s[0], s[N / 5 - 1], (unsigned long long)h);
	for (int i = 0; i < N / 5; i++)
		free(s[i]);

	for (int i = 0; i < N / 2; i++) {
		recs[i].key = (int)(lx_rand(&seed) % 100);
		recs[i].seq = i;
		snprintf(recs[i].name, sizeof recs[i].name, "r%d", i);
	}
	qsort(recs, N / 2, sizeof recs[0], cmp_rec);
	h = LX_FNV_INIT;
	for (int i = 0; i < N / 2; i++)
		h = lx_fnv(h, recs[i].name, strlen(recs[i].name));
	printf("records: first %s key %d, last %s key %d, sum %016llx\n", recs[0].name, recs[0].key,
	       recs[N / 2 - 1].name, recs[N / 2 - 1].key, (unsigned long long)h);
	for (int i = 0; i < 10; i++)
		printf("  rec[%d] = {%d, %s}\n", i * 2500, recs[i * 2500].key, recs[i * 2500].name);
	return 0;
}
