/*
 * http_echo.h: what wasp-bench-http's request handler computes, shared by
 * the virtine (http_echo.c, freestanding) and the host (bench_http.c: the
 * native handler and the client's check), so both modes answer byte for
 * byte alike and the client can check every response.
 *
 * The answer to a request body `in` is `in` in upper case, a space, and
 * the 32-bit FNV-1a hash of `in` as eight lower-case hex digits: a pass
 * over every byte, like a real handler that parses or transforms what it
 * got, and a result that depends on all of it.
 */
#ifndef WASP_BENCH_HTTP_ECHO_H
#define WASP_BENCH_HTTP_ECHO_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_ECHO_MAX_IN 4096u                  /* longest request body */
#define HTTP_ECHO_MAX_OUT (HTTP_ECHO_MAX_IN + 9u) /* its answer */

/* Writes the answer to in[0..len) into out (room for len + 9 bytes) and
 * returns its length, len + 9. */
static inline size_t http_echo_compute(const void *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = in;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		h = (h ^ c) * 16777619u;
		out[i] = (char)(c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c);
	}
	out[len] = ' ';
	for (int i = 0; i < 8; i++)
		out[len + 1 + (size_t)i] = hex[(h >> (28 - 4 * i)) & 0xf];
	return len + 9;
}

#endif
