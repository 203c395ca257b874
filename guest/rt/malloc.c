/*
 * malloc.c: a bounded first-fit heap.
 *
 * The heap is [align16(_end), mem_size - WASP_STACK_RESERVE): after the
 * image's .bss, below the stack (a quarter of memory is kept for the stack
 * instead when memory is under 1 MiB). It is set up on first use, so a virtine that
 * never allocates never touches those pages (each first touch of a page can
 * cost an exit on a shadow-paging host, and later shows up as a dirty page
 * in an incremental checkpoint).
 *
 * Every block starts with a 16-byte header. Free blocks form a singly linked
 * list in address order, so freeing can merge with both neighbours in one
 * walk. A tag word catches double frees and pointers that malloc never gave
 * out; those frees are ignored rather than corrupting the list.
 */
#include "wasp_guest.h"
#include "rt.h"

#define ALIGN 16u
#define HDR 16u                 /* sizeof(struct block) without `next` */
#define MIN_BLOCK 32u           /* header + room for `next` when free */
#define TAG_USED 0x4445535550534157ull /* "WASPUSED" */
#define TAG_FREE 0x4545524650534157ull /* "WASPFREE" */

struct block {
	size_t size;            /* bytes including the header; multiple of ALIGN */
	uint64_t tag;
	struct block *next;     /* free blocks only: next free block, higher address */
};

static uintptr_t heap_lo, heap_hi;
static struct block *free_list;
static bool heap_ready;

static void heap_init(void)
{
	uintptr_t lo = ((uintptr_t)_end + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
	uint64_t mem = wasp_mem_size();
	/* Small guests (under 1 MiB) keep a quarter of memory for the stack. */
	uint64_t reserve = mem >= 4 * WASP_STACK_RESERVE ? WASP_STACK_RESERVE : mem / 4;
	uintptr_t hi = (mem - reserve) & ~(uintptr_t)(ALIGN - 1);

	heap_ready = true;
	if (hi < lo + MIN_BLOCK)
		return; /* memory too small for a heap: malloc returns NULL */
	heap_lo = lo;
	heap_hi = hi;
	free_list = (struct block *)lo;
	free_list->size = hi - lo;
	free_list->tag = TAG_FREE;
	free_list->next = NULL;
}

/* Bytes of block needed for a request of n, or 0 if n is absurd. */
static size_t block_size(size_t n)
{
	if (n > (size_t)1 << 40)
		return 0; /* more than any guest memory; also avoids overflow below */
	size_t need = (n + HDR + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	return need < MIN_BLOCK ? MIN_BLOCK : need;
}

/* The header of a pointer malloc returned, or NULL for anything else. */
static struct block *owner(void *p)
{
	uintptr_t a = (uintptr_t)p;

	if (a < heap_lo + HDR || a >= heap_hi || (a & (ALIGN - 1)))
		return NULL;
	struct block *b = (struct block *)(a - HDR);
	return b->tag == TAG_USED ? b : NULL;
}

/* Cuts b down to `need` bytes if the rest is big enough to be a block;
 * returns the rest (not yet on any list) or NULL. */
static struct block *split(struct block *b, size_t need)
{
	if (b->size - need < MIN_BLOCK)
		return NULL;
	struct block *rest = (struct block *)((char *)b + need);
	rest->size = b->size - need;
	b->size = need;
	return rest;
}

void *malloc(size_t n)
{
	if (!heap_ready)
		heap_init();
	size_t need = block_size(n);
	if (!need)
		return NULL;

	for (struct block **link = &free_list; *link; link = &(*link)->next) {
		struct block *b = *link;

		if (b->size < need)
			continue;
		struct block *rest = split(b, need);
		if (rest) {
			rest->tag = TAG_FREE;
			rest->next = b->next;
			*link = rest;
		} else {
			*link = b->next;
		}
		b->tag = TAG_USED;
		return (char *)b + HDR;
	}
	return NULL;
}

/* Puts a block (not on the list) back, merging with free neighbours. */
static void release(struct block *b)
{
	struct block *prev = NULL, *cur = free_list;

	while (cur && cur < b) {
		prev = cur;
		cur = cur->next;
	}
	b->tag = TAG_FREE;
	b->next = cur;
	if (cur && (char *)b + b->size == (char *)cur) {
		b->size += cur->size;
		b->next = cur->next;
		cur->tag = 0;
	}
	if (prev && (char *)prev + prev->size == (char *)b) {
		prev->size += b->size;
		prev->next = b->next;
		b->tag = 0;
	} else if (prev) {
		prev->next = b;
	} else {
		free_list = b;
	}
}

void free(void *p)
{
	struct block *b = owner(p);

	if (b)
		release(b);
}

void *calloc(size_t n, size_t size)
{
	if (size && n > ~(size_t)0 / size)
		return NULL;
	void *p = malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	struct block *b = owner(p);
	if (!b)
		return NULL;
	if (n == 0) {
		release(b);
		return NULL;
	}
	size_t need = block_size(n);
	if (!need)
		return NULL;

	if (need > b->size) {
		/* Grow in place when the next block is free and big enough. */
		struct block **link = &free_list;
		while (*link && *link < b)
			link = &(*link)->next;
		struct block *next = *link;
		if (next && (char *)b + b->size == (char *)next && b->size + next->size >= need) {
			*link = next->next;
			next->tag = 0;
			b->size += next->size;
		} else {
			void *q = malloc(n);
			if (!q)
				return NULL;
			memcpy(q, p, b->size - HDR);
			release(b);
			return q;
		}
	}
	struct block *rest = split(b, need);
	if (rest)
		release(rest);
	return p;
}
