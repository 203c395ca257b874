/*
 * triple: executes ud2 in ring 3. There is no IDT, so the #UD becomes a
 * triple fault: the host must report a fault (shutdown), not hang or crash.
 * Exits 1 if execution somehow continues.
 */
#include "wasp_guest.h"

int main(void)
{
	wasp_puts("triple: executing ud2");
	__asm__ volatile("ud2");
	wasp_puts("triple: FAIL: still running after ud2");
	return 1;
}
