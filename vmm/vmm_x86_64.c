/*
 * vmm_x86_64.c: the x86 state a virtine starts in: the CPUID it sees, the
 * 16-bit real-mode entry of the original Wasp, and the direct 64-bit ring-3
 * entry (host-built identity page tables, no guest boot code at all).
 *
 * Why ring 3: on a paravirtual KVM such as PVM, guest ring-0 code is
 * emulated instruction by instruction (~0.7 us each) while ring-3 code runs
 * natively, so function code must run at CPL 3. RFLAGS.IOPL = 3 makes `out`
 * legal there, which is the cheapest way out of ring 3 (docs/design.md).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "vmm_internal.h"

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_AM (1ull << 18)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull
#define PTE_UPPER (PTE_P | PTE_RW | PTE_US)

#define XFEATURE_X87 (1ull << 0)
#define XFEATURE_SSE (1ull << 1)
#define XFEATURE_AVX (1ull << 2)

/*
 * The CPUID filter (docs/cpuid.md). A virtine has no local APIC, no
 * interrupts and no power management, and must not be told otherwise:
 *  - leaf 1: APIC id 0; no x2APIC, TSC-deadline or MONITOR/MWAIT;
 *  - leaf 6 (thermal/power) and leaf 0x40000001 (KVM paravirtual features
 *    such as kvmclock) are emptied;
 *  - everything else is what KVM reports as supported, so a guest may use
 *    SSE/AVX and friends where the host has them.
 */
void wasp_x86_filter_cpuid(struct kvm_cpuid2 *c)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ebx &= 0x00ffffffu;
			e->ecx &= ~((1u << 3) | (1u << 21) | (1u << 24));
			break;
		case 6:
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		case 0x40000001:
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		}
	}
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t fn,
						 uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/* XCR0 for the direct 64-bit entry: x87|SSE, plus AVX where offered. */
uint64_t wasp_x86_pick_xcr0(const struct kvm_cpuid2 *c)
{
	const struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	const struct kvm_cpuid_entry2 *ld = cpuid_find(c, 0xd, 0);
	if (!l1 || !(l1->ecx & (1u << 26)) || !ld)
		return 0;
	uint64_t supported = ld->eax | ((uint64_t)ld->edx << 32);
	return supported & (XFEATURE_X87 | XFEATURE_SSE | XFEATURE_AVX);
}

/* The special registers of a freshly created vCPU, read once per process:
 * each load starts from them instead of asking KVM again (an ioctl costs
 * about as much as a guest exit on PVM), and a reloaded virtine gets the
 * same clean state as a new one. */
static struct kvm_sregs reset_sregs;
static bool have_reset_sregs;
static pthread_mutex_t reset_lock = PTHREAD_MUTEX_INITIALIZER;

int wasp_x86_capture_reset(struct wasp_virtine *v)
{
	int r = 0;
	pthread_mutex_lock(&reset_lock);
	if (!have_reset_sregs) {
		r = kvm_ioctl(v->vcpu_fd, KVM_GET_SREGS, &reset_sregs);
		have_reset_sregs = r == 0;
	}
	pthread_mutex_unlock(&reset_lock);
	return r;
}

/* What a guest on this host really sees: KVM_GET_CPUID2 of the first vCPU
 * after its CPUID was set. On most hosts that is the filtered list we set;
 * PVM instead reports (and lets ring-3 guests see) the host's own, richer
 * features, so a restore must compare against this, not against the list
 * KVM_GET_SUPPORTED_CPUID gave. */
static struct kvm_cpuid2 *effective_cpuid;

int wasp_x86_setup_cpuid(struct wasp_virtine *v)
{
	const struct wasp_kvm *k;
	int r = wasp_kvm_get(&k);
	if (r < 0)
		return r;
	r = kvm_ioctl(v->vcpu_fd, KVM_SET_CPUID2, k->cpuid);
	if (r < 0)
		return r;
	pthread_mutex_lock(&reset_lock);
	if (!effective_cpuid) {
		size_t n = k->cpuid->nent + 64;
		struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof(struct kvm_cpuid_entry2));
		if (c) {
			c->nent = (uint32_t)n;
			if (ioctl(v->vcpu_fd, KVM_GET_CPUID2, c) == 0)
				effective_cpuid = c;
			else
				free(c);
		}
	}
	pthread_mutex_unlock(&reset_lock);
	return 0;
}

const struct kvm_cpuid2 *wasp_x86_effective_cpuid(void)
{
	pthread_mutex_lock(&reset_lock);
	const struct kvm_cpuid2 *c = effective_cpuid;
	pthread_mutex_unlock(&reset_lock);
	return c;
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, uint8_t dpl, bool code64)
{
	struct kvm_segment s = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = dpl,
		.s = 1,
		.l = code64,
		.db = !code64,
		.g = 1,
	};
	return s;
}

int wasp_x86_enter_real(struct wasp_virtine *v, wasp_gpa_t ip)
{
	struct kvm_sregs s;
	int r;

	if (ip >= 0x100000)
		return wasp_fail(-EINVAL, "real mode cannot start above 1 MiB (load address 0x%llx)",
				 (unsigned long long)ip);
	s = reset_sregs;
	/* cs:ip = 0:load as in the original Wasp (so `[org 0x8000]` with ds = 0
	 * addresses linearly); above 64 KiB the segment takes the high part. */
	uint16_t cs = ip > 0xffff ? (uint16_t)(ip >> 4) : 0;
	struct kvm_segment seg = {.limit = 0xffff, .type = 3, .present = 1, .s = 1};
	s.ds = s.es = s.fs = s.gs = s.ss = seg;
	seg.type = 11;
	seg.selector = cs;
	seg.base = (uint64_t)cs << 4;
	s.cs = seg;
	s.cr0 = CR0_ET;
	s.cr3 = s.cr4 = s.efer = 0;
	s.idt.base = 0;
	s.idt.limit = 0x3ff;
	s.gdt.base = 0;
	s.gdt.limit = 0;
	r = kvm_ioctl(v->vcpu_fd, KVM_SET_SREGS, &s);
	if (r < 0)
		return r;

	struct kvm_regs regs = {
		.rip = ip - ((uint64_t)cs << 4),
		.rsp = 0x1000, /* below the page-table area a boot stub builds */
		.rdi = v->mem_size,
		.rflags = 2,
	};
	return kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &regs);
}

/* Identity map of guest memory with user bits (wasp_abi.h's layout). Page 0
 * is not mapped, so a NULL dereference faults instead of reading zeros; the
 * TSS lives in the upper half of the PML4 page (see below). */
static void build_page_tables(struct wasp_virtine *v)
{
	uint64_t *pml4 = (uint64_t *)(v->mem + WASP_GPA_PML4);
	uint64_t *pt0 = (uint64_t *)(v->mem + WASP_GPA_PT0);
	uint64_t *pdpt = (uint64_t *)(v->mem + WASP_GPA_PDPT);
	uint64_t *pd = (uint64_t *)(v->mem + WASP_GPA_PD);
	uint64_t mem = v->mem_size;

	memset(v->mem + WASP_GPA_PML4, 0, WASP_GPA_LOAD - WASP_GPA_PML4);
	pml4[0] = WASP_GPA_PDPT | PTE_UPPER;
	for (uint64_t g = 0; g * (1ull << 30) < mem; g++)
		pdpt[g] = (WASP_GPA_PD + g * WASP_PAGE_SIZE) | PTE_UPPER;
	pd[0] = WASP_GPA_PT0 | PTE_UPPER;
	for (uint64_t j = 1; j * (2ull << 20) < mem; j++)
		pd[j] = (j * (2ull << 20)) | PTE_UPPER | PTE_PS;
	for (uint64_t p = 1; p < 512 && p * WASP_PAGE_SIZE < mem; p++)
		pt0[p] = (p * WASP_PAGE_SIZE) | PTE_UPPER;
	/* The TSS's I/O map base; the all-zero bitmap after it allows ports 0-255. */
	uint16_t iomap = WASP_TSS_IOMAP;
	memcpy(v->mem + WASP_GPA_TSS + 0x66, &iomap, sizeof iomap);
}

int wasp_x86_enter_long(struct wasp_virtine *v, wasp_gpa_t rip)
{
	const struct wasp_kvm *k;
	struct kvm_sregs s;
	int r;

	r = wasp_kvm_get(&k);
	if (r < 0)
		return r;
	if (rip >= v->mem_size)
		return wasp_fail(-EINVAL, "64-bit entry 0x%llx lies outside guest memory",
				 (unsigned long long)rip);
	build_page_tables(v);

	s = reset_sregs;
	s.cr3 = WASP_GPA_PML4;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (k->xcr0 ? CR4_OSXSAVE : 0);
	s.cr0 = CR0_PG | CR0_AM | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE;
	s.efer = EFER_LME | EFER_LMA;
	/* Selectors match the GDT the guest's real-mode boot stub installs, so
	 * both ways into long mode end in the same state. No IDT: any exception
	 * escalates to a triple fault, which the host reports as a fault. */
	s.cs = segment(0x1b, 11, 3, true);
	s.ds = s.es = s.fs = s.gs = s.ss = segment(0x23, 3, 3, false);
	s.idt.base = 0;
	s.idt.limit = 0;
	s.gdt.base = 0;
	s.gdt.limit = 0;
	/* IOPL 3 alone should let ring 3 use `out`, but PVM consults the TSS
	 * I/O bitmap anyway; the reset TR points at page 0, which is unmapped,
	 * and every hypercall would triple-fault (measured). So TR names a
	 * 64-bit TSS whose bitmap allows the low ports (wasp_abi.h). */
	s.tr = (struct kvm_segment){
		.base = WASP_GPA_TSS,
		.limit = WASP_TSS_LIMIT,
		.selector = 0x28,
		.type = 11, /* busy 64-bit TSS */
		.present = 1,
	};
	r = kvm_ioctl(v->vcpu_fd, KVM_SET_SREGS, &s);
	if (r < 0)
		return r;

	if (k->xcr0) {
		struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = k->xcr0}}};
		r = kvm_ioctl(v->vcpu_fd, KVM_SET_XCRS, &xcrs);
		if (r < 0)
			return r;
	}

	uint64_t top = v->mem_size < WASP_MEM_MAX ? v->mem_size : WASP_MEM_MAX;
	struct kvm_regs regs = {
		.rip = rip,
		.rsp = top,
		.rdi = v->mem_size,
		.rflags = 0x3002, /* IOPL 3: `out` is legal at CPL 3; IF clear */
	};
	return kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &regs);
}
