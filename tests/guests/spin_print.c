/*
 * spin_print: prints "tick N" after every million iterations of a busy
 * loop, forever: a guest that is always running and regularly exiting, for
 * pause, checkpoint and migration tests. N counts from 0.
 */
#include "wasp_guest.h"

int main(void)
{
	for (uint64_t n = 0;; n++) {
		for (uint32_t i = 0; i < 1000000; i++)
			__asm__ volatile(""); /* keep the loop */
		wasp_printf("tick %llu\n", (unsigned long long)n);
	}
}
