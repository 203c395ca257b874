/*
 * heap.c: malloc-heavy work. Many malloc/calloc/realloc/free of mixed
 * sizes, some above the 128 KiB mmap threshold (glibc and musl serve those
 * with mmap, munmap and mremap), every block filled with a pattern that is
 * checked before it is resized or freed; a checksum of all of it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lx_common.h"

#define SLOTS 256

struct slot {
	unsigned char *p;
	size_t n;
	unsigned char tag;
};

static int bad;

static size_t pick_size(uint64_t r)
{
	switch (r % 32) {
	case 0:
		return 128 * 1024 + (r >> 8) % (512 * 1024); /* above the mmap threshold */
	case 1: case 2:
		return 4096 + (r >> 8) % 60000;
	default:
		return 1 + (r >> 8) % 512;
	}
}

static void fill(struct slot *s, size_t from)
{
	for (size_t i = from; i < s->n; i++)
		s->p[i] = (unsigned char)(s->tag + i * 7);
}

static uint64_t verify(const struct slot *s, size_t upto, uint64_t h)
{
	for (size_t i = 0; i < upto; i++)
		if (s->p[i] != (unsigned char)(s->tag + i * 7)) {
			bad++;
			break;
		}
	return lx_fnv(h, s->p, upto < 64 ? upto : 64);
}

int main(void)
{
	static struct slot slots[SLOTS];
	uint64_t seed = 0x1234567887654321ull, h = LX_FNV_INIT;
	unsigned long nmalloc = 0, nrealloc = 0, nfree = 0, ncalloc = 0, big = 0;
	size_t live = 0, peak = 0;

	for (int op = 0; op < 8000; op++) {
		uint64_t r = lx_rand(&seed);
		struct slot *s = &slots[r % SLOTS];
		r = lx_rand(&seed);
		if (!s->p) {
			s->n = pick_size(r);
			s->tag = (unsigned char)(r >> 56);
			if (r & 0x100) {
				s->p = calloc(1, s->n);
				ncalloc++;
				for (size_t i = 0; s->p && i < s->n; i += 509)
					if (s->p[i])
						bad++;
			} else {
				s->p = malloc(s->n);
				nmalloc++;
			}
			if (!s->p) {
				printf("allocation of %zu failed at op %d\n", s->n, op);
				return 1;
			}
			if (s->n > 128 * 1024)
				big++;
			fill(s, 0);
			live += s->n;
		} else if (r & 1) {
			size_t n = pick_size(r >> 1);
			h = verify(s, s->n < n ? s->n : n, h);
			unsigned char *q = realloc(s->p, n);
			if (!q) {
				printf("realloc to %zu failed at op %d\n", n, op);
				return 1;
			}
			nrealloc++;
			live = live - s->n + n;
			size_t old = s->n;
			s->p = q;
			s->n = n;
			if (n > old)
				fill(s, old);
		} else {
			h = verify(s, s->n, h);
			free(s->p);
			nfree++;
			live -= s->n;
			s->p = NULL;
		}
		if (live > peak)
			peak = live;
	}
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].p) {
			h = verify(&slots[i], slots[i].n, h);
			free(slots[i].p);
			nfree++;
		}

	/* A direct anonymous mapping, grown with mremap and given back. */
	size_t len = 1 << 20;
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		puts("mmap failed");
		return 1;
	}
	int zero = 1;
	for (size_t i = 0; i < len; i += 4096)
		zero &= m[i] == 0;
	memset(m, 0x5a, len);
	unsigned char *m2 = mremap(m, len, 4 * len, MREMAP_MAYMOVE);
	if (m2 == MAP_FAILED) {
		puts("mremap failed");
		return 1;
	}
	int kept = m2[0] == 0x5a && m2[len - 1] == 0x5a && m2[len] == 0 && m2[4 * len - 1] == 0;
	printf("mmap zeroed: %s, mremap kept contents: %s, munmap: %d\n", zero ? "yes" : "no",
	       kept ? "yes" : "no", munmap(m2, 4 * len));

	printf("malloc %lu calloc %lu realloc %lu free %lu, above 128 KiB %lu\n", nmalloc, ncalloc,
	       nrealloc, nfree, big);
	printf("peak live bytes %zu\n", peak);
	printf("pattern errors %d\n", bad);
	printf("checksum %016llx\n", (unsigned long long)h);
	return bad ? 1 : 0;
}
