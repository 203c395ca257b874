/*
 * exit3.c: exit(3) runs the atexit handlers (in reverse order) and
 * flushes stdio, and the status is 3.
 */
#include <stdio.h>
#include <stdlib.h>

static void first(void) { puts("atexit: registered first, runs last"); }
static void second(void) { puts("atexit: registered second, runs first"); }

int main(void)
{
	atexit(first);
	atexit(second);
	printf("exit3: buffered output is flushed at exit\n");
	fprintf(stderr, "exit3: stderr\n");
	exit(3);
}
