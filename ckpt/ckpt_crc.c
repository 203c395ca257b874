/*
 * ckpt_crc.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of checkpoint streams.
 *
 * x86-64 has it in hardware since SSE4.2 (Nehalem); we ask CPUID once at
 * run time rather than compile with -msse4.2, so one libwasp runs on any
 * x86-64. The portable path is slicing-by-8 over tables built on first use.
 * Both take and return the finished CRC (pre- and post-inverted inside),
 * like zlib's crc32(): crc(a || b) == wasp_crc32c(wasp_crc32c(0, a), b).
 * wasp_crc32c_combine() joins two CRCs computed apart (on worker threads)
 * without touching the bytes again, as zlib's crc32_combine() does.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ckpt_stream.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t wasp_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_table_once, crc_table_init);
	crc = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8); /* little-endian: x86-64 is all we build for */
		w ^= crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
							    size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t wasp_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
	/* __builtin_cpu_supports reads a table libgcc fills before main. */
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, buf, len);
#endif
	return wasp_crc32c_sw(crc, buf, len);
}

/* ---- combining ----------------------------------------------------------
 * CRCs are polynomials over GF(2), reflected: appending len2 bytes to a
 * message multiplies its CRC register by x^(8 * len2) modulo the
 * polynomial. x2n[k] holds x^(2^k) mod P, so the power takes at most one
 * multiplication per bit of len2 (the method of zlib 1.2.12+). */

/* a * b modulo P, reflected (bit 31 is x^0). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return p;
}

static uint32_t x2n[64];
static pthread_once_t x2n_once = PTHREAD_ONCE_INIT;

static void x2n_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */

	x2n[0] = p;
	for (int n = 1; n < 64; n++)
		x2n[n] = p = multmodp(p, p);
}

uint32_t wasp_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	uint32_t p = 1u << 31; /* x^0 */
	unsigned k = 3;	       /* x^(8 * len2) = x^(len2 * 2^3) */

	pthread_once(&x2n_once, x2n_init);
	for (; len2; len2 >>= 1, k++)
		if (len2 & 1)
			p = multmodp(x2n[k & 63], p);
	return multmodp(p, crc1) ^ crc2;
}
