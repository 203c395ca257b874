/*
 * nullderef: reads address 0. Page 0 is not mapped, so the #PF becomes a
 * triple fault the host must report. Exits 1 if the read succeeds.
 */
#include "wasp_guest.h"

int main(void)
{
	volatile int *p;

	/* Hide the NULL from the compiler, which would otherwise emit ud2. */
	__asm__("" : "=r"(p) : "0"((uintptr_t)0));
	wasp_puts("nullderef: reading address 0");
	int v = *p;
	wasp_printf("nullderef: FAIL: read %d from address 0\n", v);
	return 1;
}
