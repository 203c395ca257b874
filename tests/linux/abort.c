/*
 * abort.c: abort() ends the program with SIGABRT, which a shell shows as
 * status 134. What was flushed before stays; what was buffered is lost.
 */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	puts("abort: before, flushed");
	fflush(stdout);
	fputs("abort: on stderr\n", stderr);
	printf("abort: buffered, never written\n");
	abort();
}
