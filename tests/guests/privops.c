/*
 * privops: one instruction a virtine's ring 3 may not (or may only
 * harmlessly) execute, chosen by the argument. With no IDT, an exception is
 * a triple fault; `in`/`out` on a port without meaning is an IO fault. The
 * outcomes are in docs/hostile-guests.md. Exits 3 if the instruction
 * completed where it should not have, 0 after the harmless ones.
 *   hlt rdmsr wrmsr cr3 lgdt int3 int80 syscall   exception: triple fault
 *   in      `in al, 0x60`: a port with no meaning, IO fault (port 0x60)
 *   out80   `out 0x80, al`: likewise (port 0x80)
 *   out3f8  `out dx, al` to 0x3f8, beyond the TSS I/O map: #GP, triple fault
 *   cli     legal with IOPL 3; harmless (no interrupts exist): exits 0
 *   rdtsc   legal; exits 0
 */
#include "wasp_guest.h"

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	const char *op = argc > 0 ? argv[0] : "";

	wasp_printf("privops: executing %s\n", op);
	if (!strcmp(op, "hlt"))
		__asm__ volatile("hlt");
	else if (!strcmp(op, "rdmsr"))
		__asm__ volatile("rdmsr" ::"c"(0x10) : "rax", "rdx");
	else if (!strcmp(op, "wrmsr"))
		__asm__ volatile("wrmsr" ::"c"(0xc0000080), "a"(0), "d"(0));
	else if (!strcmp(op, "cr3"))
		__asm__ volatile("mov %0, %%cr3" ::"r"(0x5000ull));
	else if (!strcmp(op, "lgdt")) {
		static const struct __attribute__((packed)) {
			uint16_t limit;
			uint64_t base;
		} gdtr = {0xffff, 0};
		__asm__ volatile("lgdt %0" ::"m"(gdtr));
	} else if (!strcmp(op, "int3"))
		__asm__ volatile("int3");
	else if (!strcmp(op, "int80"))
		__asm__ volatile("int $0x80");
	else if (!strcmp(op, "syscall"))
		__asm__ volatile("syscall" ::: "rcx", "r11", "memory");
	else if (!strcmp(op, "in")) {
		uint8_t v;
		__asm__ volatile("inb $0x60, %0" : "=a"(v));
	} else if (!strcmp(op, "out80"))
		__asm__ volatile("outb %%al, $0x80" ::"a"(0));
	else if (!strcmp(op, "out3f8"))
		__asm__ volatile("outb %%al, %%dx" ::"a"(0), "d"(0x3f8));
	else if (!strcmp(op, "cli")) {
		__asm__ volatile("cli; sti");
		wasp_puts("privops: cli/sti are harmless here");
		return 0;
	} else if (!strcmp(op, "rdtsc")) {
		uint32_t lo, hi;
		__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
		wasp_puts("privops: rdtsc works");
		return 0;
	} else {
		wasp_printf("privops: unknown op '%s'\n", op);
		return 2;
	}
	wasp_printf("privops: FAIL: %s completed\n", op);
	return 3;
}
