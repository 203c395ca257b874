/*
 * mmio: writes to a guest-physical address with no memory behind it
 * (0x3f000000 for guests up to ~1 GiB; just past the end otherwise). The
 * host must report an MMIO fault at that address. Exits 1 if the write
 * completes, 2 if memory is too large to leave a hole below 4 GiB.
 *
 * The identity map may stop at the end of memory, and then the write would
 * be a page fault (triple fault) that never reaches the host as MMIO. So the
 * guest maps the target 2 MiB page itself first: the page tables are in
 * guest memory, user-writable (wasp_abi.h layout). Turning a not-present
 * entry present needs no TLB flush.
 */
#include "wasp_guest.h"

#define PAGE_2M (2ull << 20)

int main(void)
{
	uint64_t mem = wasp_mem_size();
	uint64_t target = 0x3f000000;

	if (target < mem + PAGE_2M)
		target = ((mem + PAGE_2M - 1) & ~(PAGE_2M - 1)) + PAGE_2M;
	if (target >= WASP_MEM_MAX) {
		wasp_puts("mmio: SKIP: no unbacked address below 4 GiB");
		return 2;
	}

	volatile uint64_t *pdpt = (volatile uint64_t *)(uintptr_t)WASP_GPA_PDPT;
	unsigned gi = (unsigned)(target >> 30), di = (unsigned)(target >> 21) & 511;
	uint64_t pd_gpa = WASP_GPA_PD + gi * 0x1000ull;
	volatile uint64_t *pd = (volatile uint64_t *)(uintptr_t)pd_gpa;
	bool mapped_here = false;

	if (!(pdpt[gi] & 1)) {
		pdpt[gi] = pd_gpa | 7;
		mapped_here = true;
	}
	if (!(pd[di] & 1)) {
		pd[di] = (target & ~(PAGE_2M - 1)) | 0x87; /* present, rw, user, 2 MiB */
		mapped_here = true;
	}
	wasp_printf("mmio: memory ends at 0x%llx; writing to 0x%llx (%s)\n",
		    (unsigned long long)mem, (unsigned long long)target,
		    mapped_here ? "mapped it first" : "already mapped");
	*(volatile uint32_t *)(uintptr_t)target = 0x12345678;
	wasp_puts("mmio: FAIL: the write completed");
	return 1;
}
