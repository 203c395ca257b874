/*
 * start.c: runtime state set up between _start64 and main.
 */
#include "wasp_guest.h"
#include "rt.h"

static uint64_t mem_size;

void wasp_rt_init(uint64_t size)
{
	/* The heap sets itself up on first use (malloc.c), so a virtine that
	 * never allocates never touches its pages. */
	mem_size = size;
}

uint64_t wasp_mem_size(void)
{
	return mem_size;
}
