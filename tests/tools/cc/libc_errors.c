/*
 * libc_errors.c: how virtine functions with the C library fail, and that
 * each call starts from the snapshot (tests/tools/cc_test.sh, case libc_errors).
 * Only built by wasp-cc; main() checks each case and exits non-zero on a
 * miss.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasp/virtine.h>

#include "cc_check.h"

/* abort(): the virtine ends by SIGABRT, the caller goes on. */
virtine int checked_div(int a, int b)
{
	if (b == 0)
		abort();
	return a / b;
}

/* exit() ends the virtine without a result. */
virtine int quit(int code)
{
	exit(code);
}

/* printf without virtine_allow(console_write): the write is denied. */
virtine int noisy(int x)
{
	printf("should not appear %d\n", x);
	return x + 1;
}

/* The heap as the snapshot left it: the same address every call, and
 * what a previous call stored there is gone. */
virtine uintptr_t fresh_heap(int mark)
{
	static char *last;
	char *p = malloc(100);
	if (!p || last)
		return 0;
	last = p;
	if (p[0] != 0)
		return 1; /* the previous call's mark survived */
	p[0] = (char)mark;
	return (uintptr_t)p;
}

/* A fault after the C library is up: a write through NULL. */
virtine int scribble(int x)
{
	volatile char *p = (volatile char *)(uintptr_t)(x - x);
	p[0] = 'x';
	return x + p[1];
}

int main(void)
{
	CHECK(checked_div(84, 2) == 42 && wasp_virtine_errno() == 0, "checked_div(84, 2) == 42");
	int r = checked_div(1, 0);
	CHECK(r == 0 && wasp_virtine_errno() == -ECANCELED &&
		  strstr(wasp_virtine_error(), "SIGABRT"),
	      "checked_div(1, 0) calls abort(): -ECANCELED, SIGABRT named");
	CHECK(checked_div(9, 3) == 3 && wasp_virtine_errno() == 0,
	      "the next call after the abort works");
	CHECK(quit(3) == 0 && wasp_virtine_errno() == -EPROTO &&
		  strstr(wasp_virtine_error(), "code 3"),
	      "quit(3) calls exit(3): -EPROTO, the code named");
	CHECK(noisy(1) == 0 && wasp_virtine_errno() == -EPERM,
	      "noisy (printf, console not allowed) fails with -EPERM");
	uintptr_t a = fresh_heap(1), b = fresh_heap(2);
	CHECK(a > 1 && a == b && wasp_virtine_errno() == 0,
	      "malloc gives the same fresh block each call (%#lx, %#lx)", (unsigned long)a,
	      (unsigned long)b);
	CHECK(scribble(1) == 0 && wasp_virtine_errno() == -EFAULT,
	      "scribble (a write through NULL) fails with -EFAULT");
	CHECK(checked_div(10, 5) == 2 && wasp_virtine_errno() == 0, "still working at the end");
	wasp_virtine_shutdown();
	printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
