/*
 * square.c: the `virtine` keyword (docs/embedding.md). Built by wasp-cc,
 * a drop-in for cc; every call of square() runs in a virtine of its own.
 *
 *   wasp-cc square.c -o square && ./square
 */
#include <stdio.h>

#include <wasp/virtine.h>
#include <wasp/wasp_abi.h>

virtine int square(int x)
{
	return x * x;
}

/* Copied in and back out: the pointer points at the guest's copy. */
virtine void square_ref(int *x)
{
	*x = *x * *x;
}

/* Deny by default: this one may write to the console, nothing else.
 * With the C library (wasp-cc's default) that is printf; on the
 * freestanding runtime (no musl-gcc) the console hypercall itself. */
virtine_allow(console_write) virtine virtine_mem(1M) int hello(int x)
{
#if defined(WASP_VIRTINE_GUEST) && !defined(WASP_VIRTINE_LIBC)
	static const char msg[] = "hello from inside a virtine\n";
	unsigned long long rax = WASP_HC_CONSOLE_WRITE;
	__asm__ volatile("outb %%al, %[port]" : "+a"(rax)
			 : [port] "i"(WASP_PORT_HYPERCALL), "D"(msg), "S"(sizeof msg - 1), "d"(0)
			 : "memory", "r10", "r8", "r9");
#else
	printf("hello from inside a virtine\n");
#endif
	return x;
}

int main(void)
{
	int n = 5;
	square_ref(&n);
	printf("%d %d\n", square(3), n);
	if (hello(1) != 1 || wasp_virtine_errno()) {
		fprintf(stderr, "square: %s\n", wasp_virtine_error());
		return 1;
	}
	return 0;
}
