/* The console hypercall, spelled out: the virtine functions in these tests
 * are plain C that include no guest header, so that the same file also
 * builds for the host. A guest with the C library (WASP_VIRTINE_LIBC) is a
 * Linux program, which reaches wasp's hypercalls as system calls. */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H
#include <stddef.h>
#include <wasp/wasp_abi.h>

static inline long long guest_console_write(const void *buf, size_t len)
{
#ifdef WASP_VIRTINE_LIBC
	unsigned long long rax = WASP_LINUX_HC_BASE + WASP_HC_CONSOLE_WRITE;
	__asm__ volatile("syscall" : "+a"(rax) : "D"(buf), "S"(len), "d"(0)
			 : "rcx", "r11", "memory");
#else
	unsigned long long rax = WASP_HC_CONSOLE_WRITE;
	__asm__ volatile("outb %%al, %[port]" : "+a"(rax)
			 : [port] "i"(WASP_PORT_HYPERCALL), "D"(buf), "S"(len), "d"(0)
			 : "memory", "r10", "r8", "r9");
#endif
	return (long long)rax;
}
#endif
