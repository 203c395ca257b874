/*
 * segv.c: a store through a NULL pointer ends the program as SIGSEGV
 * would (status 139).
 */
#include <stdio.h>

int main(void)
{
	puts("segv: before, flushed");
	fflush(stdout);
	fputs("segv: on stderr\n", stderr);
	printf("segv: buffered, never written\n");
	volatile int *p = NULL;
	*p = 1;
	puts("segv: survived the NULL store");
	return 0;
}
