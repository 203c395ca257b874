/*
 * pool_guest: the virtine tests/vmm/test_pool.c drives through a pool.
 *
 * Init: one call of hypercall 64 ("init_count", registered by the test),
 * then the snapshot hypercall, in one asm block that, right after the
 * `out`, stores the general registers and xmm0-15 to `dump`: that is what a
 * call starting at the snapshot sees in them, before any C code runs.
 *
 * Each call reads its argument: op byte, then operands.
 *   'f' u32 n      -> u64 fib(n)
 *   's' u64 s      write s over a static page, 64 KiB of heap, 2 KiB of
 *                  stack, every general register it may and xmm0-15, then
 *                  set_ret(8 bytes of s) with those registers still loaded
 *   'c'            -> dump (13 registers, 16 xmm as 32 words), then
 *                     the first word of the static page and of the heap block
 *   'e' i32 code   exit(code) without a result
 *   'x'            fault (ud2, no IDT: triple fault)
 *   'l'            spin forever
 *   'b' u32 len    -> len bytes 0,1,2,...
 *   'm' u64 s      write s over the static page and exit 0 (no result)
 *   'o'            -> i32 fd of a fresh open of "f" in the sandbox, left open
 */
#include "wasp_guest.h"

#define NDUMP (13 + 32)
static uint64_t dump[NDUMP];
static uint64_t page[512] __attribute__((aligned(4096)));
static uint64_t *heap;
static uint8_t arg[64];
static uint8_t big[1 << 16];

static void snapshot_and_dump(void)
{
	__asm__ volatile("mov %[nr], %%eax\n\t"
			 "outb %%al, %[port]\n\t"
			 "mov %%rbx, 0(%%rdi)\n\t"
			 "mov %%rcx, 8(%%rdi)\n\t"
			 "mov %%rdx, 16(%%rdi)\n\t"
			 "mov %%rsi, 24(%%rdi)\n\t"
			 "mov %%rbp, 32(%%rdi)\n\t"
			 "mov %%r8, 40(%%rdi)\n\t"
			 "mov %%r9, 48(%%rdi)\n\t"
			 "mov %%r10, 56(%%rdi)\n\t"
			 "mov %%r11, 64(%%rdi)\n\t"
			 "mov %%r12, 72(%%rdi)\n\t"
			 "mov %%r13, 80(%%rdi)\n\t"
			 "mov %%r14, 88(%%rdi)\n\t"
			 "mov %%r15, 96(%%rdi)\n\t"
			 "movdqu %%xmm0, 104(%%rdi)\n\t"
			 "movdqu %%xmm1, 120(%%rdi)\n\t"
			 "movdqu %%xmm2, 136(%%rdi)\n\t"
			 "movdqu %%xmm3, 152(%%rdi)\n\t"
			 "movdqu %%xmm4, 168(%%rdi)\n\t"
			 "movdqu %%xmm5, 184(%%rdi)\n\t"
			 "movdqu %%xmm6, 200(%%rdi)\n\t"
			 "movdqu %%xmm7, 216(%%rdi)\n\t"
			 "movdqu %%xmm8, 232(%%rdi)\n\t"
			 "movdqu %%xmm9, 248(%%rdi)\n\t"
			 "movdqu %%xmm10, 264(%%rdi)\n\t"
			 "movdqu %%xmm11, 280(%%rdi)\n\t"
			 "movdqu %%xmm12, 296(%%rdi)\n\t"
			 "movdqu %%xmm13, 312(%%rdi)\n\t"
			 "movdqu %%xmm14, 328(%%rdi)\n\t"
			 "movdqu %%xmm15, 344(%%rdi)\n\t"
			 :
			 : "D"(dump), [nr] "i"(WASP_HC_SNAPSHOT), [port] "i"(WASP_PORT_HYPERCALL)
			 : "rax", "memory");
}

static uint64_t fib(unsigned n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/* Fills registers with s and returns s as the result without touching
 * them again: set_ret ends the call with the secret still in them. */
static __attribute__((noinline)) void secret_return(uint64_t s, const uint64_t *buf)
{
	volatile uint64_t stack[256];
	for (int i = 0; i < 256; i++)
		stack[i] = s;
	__asm__ volatile("movq %[s], %%xmm0\n\t"
			 "punpcklqdq %%xmm0, %%xmm0\n\t"
			 "movdqa %%xmm0, %%xmm1\n\t"
			 "movdqa %%xmm0, %%xmm2\n\t"
			 "movdqa %%xmm0, %%xmm3\n\t"
			 "movdqa %%xmm0, %%xmm4\n\t"
			 "movdqa %%xmm0, %%xmm5\n\t"
			 "movdqa %%xmm0, %%xmm6\n\t"
			 "movdqa %%xmm0, %%xmm7\n\t"
			 "movdqa %%xmm0, %%xmm8\n\t"
			 "movdqa %%xmm0, %%xmm9\n\t"
			 "movdqa %%xmm0, %%xmm10\n\t"
			 "movdqa %%xmm0, %%xmm11\n\t"
			 "movdqa %%xmm0, %%xmm12\n\t"
			 "movdqa %%xmm0, %%xmm13\n\t"
			 "movdqa %%xmm0, %%xmm14\n\t"
			 "movdqa %%xmm0, %%xmm15\n\t"
			 "mov %[s], %%rbx\n\t"
			 "mov %[s], %%rcx\n\t"
			 "mov %[s], %%rdx\n\t"
			 "mov %[s], %%r8\n\t"
			 "mov %[s], %%r9\n\t"
			 "mov %[s], %%r10\n\t"
			 "mov %[s], %%r11\n\t"
			 "mov %[s], %%r12\n\t"
			 "mov %[s], %%r13\n\t"
			 "mov %[s], %%r14\n\t"
			 "mov %[s], %%r15\n\t"
			 "mov %[nr], %%eax\n\t"
			 "outb %%al, %[port]\n\t"
			 :
			 : [s] "m"(s), "D"(buf), "S"((uint64_t)8), [nr] "i"(WASP_HC_SET_RET),
			   [port] "i"(WASP_PORT_HYPERCALL)
			 : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
			   "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
			   "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
			   "memory");
	(void)stack[0];
}

int main(void)
{
	wasp_hypercall(64, 0, 0, 0, 0, 0, 0); /* init_count */
	heap = malloc(1 << 16);
	if (!heap)
		return 90;
	snapshot_and_dump();

	int64_t len = wasp_get_arg(arg, sizeof arg);
	if (len < 1)
		return 91;
	uint64_t u64;
	uint32_t u32;
	memcpy(&u64, arg + 1, 8);
	memcpy(&u32, arg + 1, 4);
	switch (arg[0]) {
	case 'f': {
		uint64_t r = fib(u32);
		wasp_set_ret(&r, sizeof r);
		break;
	}
	case 's':
		for (int i = 0; i < 512; i++)
			page[i] = u64;
		for (int i = 0; i < (1 << 16) / 8; i++)
			heap[i] = u64;
		secret_return(u64, &page[0]);
		break;
	case 'c': {
		uint64_t r[NDUMP + 2];
		memcpy(r, dump, sizeof dump);
		r[NDUMP] = page[0];
		r[NDUMP + 1] = heap[0];
		wasp_set_ret(r, sizeof r);
		break;
	}
	case 'e':
		return (int)u32;
	case 'x':
		__asm__ volatile("ud2");
		break;
	case 'l':
		for (;;)
			__asm__ volatile("" ::: "memory");
	case 'b':
		if (u32 > sizeof big)
			return 92;
		for (uint32_t i = 0; i < u32; i++)
			big[i] = (uint8_t)i;
		wasp_set_ret(big, u32);
		break;
	case 'm':
		for (int i = 0; i < 512; i++)
			page[i] = u64;
		return 0;
	case 'o': {
		int32_t fd = wasp_open("f", WASP_O_RDONLY, 0);
		wasp_set_ret(&fd, sizeof fd);
		break;
	}
	}
	return 93;
}
