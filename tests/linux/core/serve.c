/*
 * serve.c: a static Linux program that serves wasp_call()s from a pool
 * (tests/linux/test_linux.c). Its initialisation builds a table on the heap;
 * each call counts itself in a global (which must read 1 in every call,
 * since every call starts from the snapshot), allocates small and large
 * blocks (brk and mmap, which must be back as they were at the snapshot),
 * and answers "calls=N len=L sum=S UPPERCASED-INPUT". Run natively with an
 * argument, it answers once on stdout.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasp_linux.h"

static unsigned *table;
static unsigned calls;

static size_t handler(const void *in, size_t len, void *out, size_t cap)
{
	const unsigned char *s = in;
	calls++;
	char *small = malloc(64 << 10), *large = malloc(2 << 20);
	if (!small || !large)
		return (size_t)snprintf(out, cap, "malloc failed");
	unsigned sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = sum * 31 + table[s[i]];
	memset(large, 0x5a, 2 << 20);
	size_t n = (size_t)snprintf(out, cap, "calls=%u len=%zu sum=%u ", calls, len, sum);
	for (size_t i = 0; i < len && n + 1 < cap; i++)
		((char *)out)[n++] = (char)toupper(s[i]);
	free(large);
	free(small);
	return n;
}

int main(int argc, char **argv)
{
	static char in[4096], out[8192];
	table = malloc(256 * sizeof *table);
	for (unsigned i = 0; i < 256; i++)
		table[i] = i * 2654435761u;
	long r = wasp_serve(handler, in, sizeof in, out, sizeof out);
	if (r != -38 /* ENOSYS: no wasp here */)
		return r < 0 ? 1 : 0;
	const char *arg = argc > 1 ? argv[1] : "";
	size_t n = handler(arg, strlen(arg), out, sizeof out);
	fwrite(out, 1, n, stdout);
	putchar('\n');
	return 0;
}
