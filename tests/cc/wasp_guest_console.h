/* The console hypercall, spelled out: the virtine functions in these tests
 * are plain C that include no guest header, so that the same file also
 * builds for the host. */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H
#include <stddef.h>
#include <wasp/wasp_abi.h>

static inline long long guest_console_write(const void *buf, size_t len)
{
	unsigned long long rax = WASP_HC_CONSOLE_WRITE;
	__asm__ volatile("outb %%al, %[port]" : "+a"(rax)
			 : [port] "i"(WASP_PORT_HYPERCALL), "D"(buf), "S"(len), "d"(0)
			 : "memory", "r10", "r8", "r9");
	return (long long)rax;
}
#endif
