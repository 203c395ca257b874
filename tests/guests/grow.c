/*
 * grow: a guest that tries to use more memory than it was given.
 *
 * Argument (default "heap"):
 *   heap   mallocs 64 KiB blocks until malloc says NULL, writes every byte
 *          it got, frees it all and mallocs again; absurd requests
 *          (malloc(SIZE_MAX), an overflowing calloc, a huge realloc) must
 *          return NULL. Prints "grow: heap gave N KiB of M KiB" and exits 0,
 *          or 1 if a check failed. The heap never reaches past memory.
 *   touch  reads the first byte past the end of guest memory. With memory a
 *          multiple of 2 MiB that address is not mapped (page fault, triple
 *          fault); otherwise it is mapped by the last 2 MiB page but has no
 *          memory behind it (an MMIO exit). Either way the host reports a
 *          fault. Exits 1 if the read returns.
 *   stack  recurses without end, 1 KiB of stack per call. Nothing guards the
 *          stack: it runs down through the heap, the image and the page
 *          tables until the guest can no longer run. The host reports a fault.
 */
#include "wasp_guest.h"

#define BLOCK (64u * 1024u)

static int failures;

static void check(bool ok, const char *what)
{
	if (!ok)
		failures++;
	if (!ok)
		wasp_printf("grow: FAIL: %s\n", what);
}

static void **blocks;

static int heap(void)
{
	uint64_t mem = wasp_mem_size();
	size_t max = mem / BLOCK + 1, n = 0;

	blocks = malloc(max * sizeof *blocks);
	check(blocks != NULL, "a small malloc");
	if (!blocks)
		return 1;
	for (;;) {
		void *p = malloc(BLOCK);
		if (!p)
			break;
		check((uintptr_t)p + BLOCK <= mem, "a block lies inside memory");
		check(n < max, "more blocks than memory could hold");
		if (n >= max)
			break;
		memset(p, 0xa5, BLOCK);
		blocks[n++] = p;
	}
	wasp_printf("grow: heap gave %zu KiB of %llu KiB, then NULL\n", n * BLOCK / 1024,
		    (unsigned long long)(mem / 1024));
	check(n > 0, "some heap");
	check(malloc((size_t)-1) == NULL, "malloc(SIZE_MAX) is NULL");
	check(calloc((size_t)1 << 40, (size_t)1 << 30) == NULL, "an overflowing calloc is NULL");
	check(malloc(mem) == NULL, "malloc(all of memory) is NULL");
	void *r = realloc(blocks[0], (size_t)1 << 50);
	check(r == NULL, "a huge realloc is NULL");
	for (size_t i = 0; i < n; i++)
		free(blocks[i]);
	void *again = malloc(BLOCK * 4);
	check(again != NULL, "malloc works again after freeing");
	free(again);
	wasp_printf("grow: heap %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}

static int touch(void)
{
	uint64_t end = wasp_mem_size();

	wasp_printf("grow: reading 0x%llx, the first byte past memory\n", (unsigned long long)end);
	char c = *(volatile char *)(uintptr_t)end;
	wasp_printf("grow: FAIL: read %d past memory\n", c);
	return 1;
}

/* Stops only at a depth no guest memory could hold, so the compiler sees an
 * end (it refuses to build an endless recursion). */
static unsigned recurse(unsigned depth)
{
	volatile char frame[1024];

	frame[0] = (char)depth;
	if (depth > (4u << 20))
		return 0;
	if (depth % 4096 == 0)
		wasp_printf("grow: stack depth %u (rsp near 0x%llx)\n", depth,
			    (unsigned long long)(uintptr_t)frame);
	return recurse(depth + 1) + frame[0];
}

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	const char *mode = argc > 0 ? argv[0] : "heap";

	if (!strcmp(mode, "heap"))
		return heap();
	if (!strcmp(mode, "touch"))
		return touch();
	if (!strcmp(mode, "stack"))
		return (int)recurse(1);
	wasp_printf("grow: unknown mode '%s'\n", mode);
	return 2;
}
