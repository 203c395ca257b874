/*
 * ptwrite: a guest that rewrites its own page tables.
 *
 * The host-built identity tables of the direct 64-bit entry live in guest
 * memory (wasp_abi.h: PML4 0x1000, PT0 0x2000, PDPT 0x3000, PD 0x4000) and
 * are mapped user-writable, so ring-3 code can change them. That is by
 * design: they translate guest-virtual to guest-physical addresses only,
 * every hypercall pointer is guest-physical, and KVM bounds guest-physical
 * memory, so a guest that rewrites them can only hurt itself.
 * docs/hostile-guests.md has the outcomes.
 *
 * Argument (default "probe"):
 *   probe  reports the bits of the entries mapping the tables; maps its own
 *          .bss a second time at 300 GiB and checks that writes through the
 *          alias land in the original; hands the alias to the host as a
 *          hypercall pointer (must be -EFAULT: the host sees guest-physical
 *          300 GiB); fills every unused entry with garbage, prints
 *          "ptwrite: garbage in place", keeps making clock hypercalls for
 *          SPIN_MS (a window for a checkpoint), checks the garbage is still
 *          there and exits 0 ("ptwrite: done"). 1 on any failed check.
 *   far    maps a page at guest-physical 512 GiB (nothing there) and
 *          writes to it: the host must report an MMIO fault.
 *   wreck  overwrites PML4 entry 0 (the one everything runs through) with
 *          garbage and keeps running: the next TLB miss cannot be
 *          translated, and with no IDT that is a triple fault. Exits 3 if
 *          it is still alive after touching 8 MiB.
 *   tss    sets every bit of the TSS I/O permission map in the PML4 page's
 *          upper half, then makes a hypercall: the `out` is no longer
 *          allowed, #GP, triple fault. Exits 3 if the hypercall returns.
 */
#include "wasp_guest.h"

#define PAGE_2M (2ull << 20)
#define SPIN_MS 300
#define ALIAS_BASE (300ull << 30)     /* PDPT entry 300 */
#define GARBAGE 0x7ff0dead0000beefull /* reserved bits set, present bit set */

static uint64_t pd_alias[512] __attribute__((aligned(4096)));
static volatile uint64_t data[512] __attribute__((aligned(4096)));

static int failures;

static void check(bool ok, const char *what)
{
	if (!ok)
		failures++;
	wasp_printf("ptwrite: %s: %s\n", what, ok ? "ok" : "FAIL");
}

static volatile uint64_t *table(uint64_t gpa)
{
	return (volatile uint64_t *)(uintptr_t)gpa;
}

/* Every entry that maps nothing this guest uses, so garbage there cannot
 * hurt it unless it touches those addresses: PML4 1..255 (256..511 hold the
 * TSS), PDPT 4..511 except the alias, PD entries past memory. */
static void for_unused(void (*fn)(volatile uint64_t *e))
{
	uint64_t mem = wasp_mem_size();

	for (unsigned i = 1; i < 256; i++)
		fn(&table(WASP_GPA_PML4)[i]);
	for (unsigned i = 4; i < 512; i++)
		if (i != ALIAS_BASE >> 30)
			fn(&table(WASP_GPA_PDPT)[i]);
	for (uint64_t j = (mem + PAGE_2M - 1) / PAGE_2M; j < 512; j++)
		fn(&table(WASP_GPA_PD)[j]);
}

static unsigned garbage_put, garbage_seen;
static void put_garbage(volatile uint64_t *e)
{
	*e = GARBAGE ^ (uintptr_t)e;
	garbage_put++;
}
static void count_garbage(volatile uint64_t *e)
{
	garbage_seen += *e == (GARBAGE ^ (uintptr_t)e);
}

static int probe(void)
{
	/* The PT0 entries of pages 1..7 map the tables themselves. */
	volatile uint64_t *pt0 = table(WASP_GPA_PT0);
	for (unsigned p = 1; p < 8; p++)
		wasp_printf("ptwrite: page 0x%x (tables/TSS) present=%d writable=%d user=%d\n",
			    p * 0x1000, (int)(pt0[p] & 1), (int)(pt0[p] >> 1 & 1),
			    (int)(pt0[p] >> 2 & 1));

	/* A second mapping of data[] at 300 GiB + its offset in its 2 MiB page. */
	uint64_t phys = (uintptr_t)data, region = phys & ~(PAGE_2M - 1);
	pd_alias[0] = region | 0x87; /* present, writable, user, 2 MiB */
	table(WASP_GPA_PDPT)[ALIAS_BASE >> 30] = (uintptr_t)pd_alias | 7;
	volatile uint64_t *alias = (volatile uint64_t *)(uintptr_t)(ALIAS_BASE + (phys - region));
	alias[5] = 0x1234567890abcdefull;
	check(data[5] == 0x1234567890abcdefull, "a write through a self-made alias lands in guest memory");

	/* The host reads hypercall pointers as guest-physical: the alias is
	 * an address 300 GiB up, outside memory, whatever the guest maps. */
	int64_t r = wasp_hypercall(WASP_HC_CONSOLE_WRITE, (uintptr_t)alias, 8, 0, 0, 0, 0);
	wasp_printf("ptwrite: console_write(alias) -> %lld %s\n", (long long)r, wasp_errname(r));
	check(r == -WASP_EFAULT, "the host refuses the alias (pointers are guest-physical)");

	for_unused(put_garbage);
	wasp_puts("ptwrite: garbage in place");
	int64_t t0 = wasp_clock_ns(WASP_CLOCK_MONOTONIC), calls = 0;
	while (wasp_clock_ns(WASP_CLOCK_MONOTONIC) - t0 < SPIN_MS * 1000000ll)
		calls++;
	for_unused(count_garbage);
	wasp_printf("ptwrite: %lld clock calls; %u of %u garbage entries intact\n", (long long)calls,
		    garbage_seen, garbage_put);
	check(garbage_seen == garbage_put, "garbage entries survive (also a checkpoint)");
	check(data[5] == 0x1234567890abcdefull && alias[5] == data[5], "the alias still works");
	wasp_printf("ptwrite: done, %d failed\n", failures);
	return failures ? 1 : 0;
}

static int far(void)
{
	table(WASP_GPA_PDPT)[ALIAS_BASE >> 30] = (uintptr_t)pd_alias | 7;
	pd_alias[1] = (512ull << 30) | 0x87;
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)(ALIAS_BASE + PAGE_2M);
	wasp_puts("ptwrite: writing to guest-physical 512 GiB");
	*p = 1;
	wasp_puts("ptwrite: FAIL: the write completed");
	return 1;
}

static int wreck(void)
{
	wasp_puts("ptwrite: overwriting PML4[0]");
	table(WASP_GPA_PML4)[0] = GARBAGE;
	/* A TLB may still hold old translations: walk far enough to miss. */
	for (uint64_t a = 0x100000; a < 0x900000 && a < wasp_mem_size(); a += 4096)
		(void)*(volatile char *)(uintptr_t)a;
	wasp_puts("ptwrite: FAIL: still running with PML4[0] garbage");
	return 3;
}

static int tss(void)
{
	wasp_puts("ptwrite: closing every port in the TSS I/O map");
	volatile uint8_t *map = (volatile uint8_t *)(uintptr_t)(WASP_GPA_TSS + WASP_TSS_IOMAP);
	for (unsigned i = 0; i < 32; i++)
		map[i] = 0xff;
	int64_t r = wasp_clock_ns(WASP_CLOCK_MONOTONIC);
	wasp_printf("ptwrite: FAIL: a hypercall still worked (%lld)\n", (long long)r);
	return 3;
}

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	const char *mode = argc > 0 ? argv[0] : "probe";

	if (!strcmp(mode, "probe"))
		return probe();
	if (!strcmp(mode, "far"))
		return far();
	if (!strcmp(mode, "wreck"))
		return wreck();
	if (!strcmp(mode, "tss"))
		return tss();
	wasp_printf("ptwrite: unknown mode '%s'\n", mode);
	return 2;
}
