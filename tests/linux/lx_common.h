/*
 * lx_common.h: helpers the differential Linux programs share. Everything
 * printed must be the same on every run and on every host, so the
 * programs print checksums and derived facts, never addresses or times.
 */
#ifndef LX_COMMON_H
#define LX_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64-bit: a checksum both libcs compute the same way. */
static inline uint64_t lx_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define LX_FNV_INIT 0xcbf29ce484222325ull

/* xorshift64*: a fixed sequence from a fixed seed (never 0). */
static inline uint64_t lx_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

#endif
