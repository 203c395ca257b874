/*
 * vmm_linux.c: static x86-64 Linux programs in a virtine (docs/linux.md):
 * the ELF loader, the address space and initial stack Linux gives a
 * process, the `syscall` entry, and the system-call table with the calls
 * that touch neither files nor memory maps (process, time, randomness,
 * signals). Memory calls are in vmm_linux_mem.c, descriptors and paths in
 * vmm_linux_fs.c.
 *
 * The entry: EFER.SCE with STAR/LSTAR pointing `syscall` at a stub of two
 * instructions, `out WASP_PORT_SYSCALL, al; sysretq`. On hardware KVM the
 * stub runs at ring 0 (syscall's own switch), the `out` exits to us, and
 * sysretq returns to ring 3. On PVM `syscall` lands on the stub but stays
 * in ring 3 (DESIGN.md, probed 2026-12-06) and sysretq would #GP there, so
 * the host finishes the return itself: rip = rcx, rflags = r11, as
 * sysretq would. The host learns which at the first call (one
 * KVM_GET_SREGS). No stack is touched either way, so the program's red
 * zone is safe.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "vmm_linux.h"

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull
#define PTE_USER (PTE_P | PTE_RW | PTE_US)
#define SZ_2M (2ull << 20)

#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_CSTAR 0xc0000083u
#define MSR_SFMASK 0xc0000084u
#define MSR_FS_BASE 0xc0000100u
#define MSR_GS_BASE 0xc0000101u
#define MSR_KERNEL_GS_BASE 0xc0000102u

/* The Linux TSS: its own supervisor page, because its I/O bitmap is not
 * zero (only WASP_PORT_SYSCALL is open to ring 3) and so could not share
 * the PML4's page as the flat images' TSS does (its bytes would read as
 * present PML4 entries). */
#define LX_GPA_TSS 0xa000u
#define LX_MAX_PHDRS 64
#define LX_MAX_STRINGS (256u << 10) /* argv + envp bytes, as ARG_MAX/8 */

/* ---- user memory -------------------------------------------------------- */

const void *wasp_lx_user_r(struct wasp_virtine *v, uint64_t addr, size_t len)
{
	if (addr < LX_USER_BASE)
		return NULL;
	return wasp_virtine_gpa(v, addr, len ? len : 1);
}

void *wasp_lx_user_w(struct wasp_virtine *v, uint64_t addr, size_t len)
{
	if (addr < LX_USER_BASE)
		return NULL;
	return wasp_virtine_gpa_w(v, addr, len ? len : 1);
}

int wasp_lx_user_str(struct wasp_virtine *v, uint64_t addr, char *buf, size_t cap)
{
	if (addr < LX_USER_BASE)
		return -EFAULT;
	return wasp_virtine_read_str(v, addr, buf, cap);
}

bool wasp_lx_allowed(struct wasp_virtine *v, unsigned hc_nr)
{
	if (wasp_virtine_allowed(v, hc_nr))
		return true;
	v->stats.hypercalls_denied++;
	return false;
}

/* ---- the ELF file ------------------------------------------------------- */

struct elf_info {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[LX_MAX_PHDRS];
	uint64_t base;   /* added to every p_vaddr: 0, or where a PIE goes */
	uint64_t lo, hi; /* the loaded span, page-rounded, base included */
	uint64_t phdr;   /* AT_PHDR */
	off_t size;
};

static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Reads and checks the headers. 1: a static x86-64 program, 0: no ELF
 * magic (a flat image), -ENOEXEC with the reason and the remedy. */
static int elf_read(int fd, const char *path, struct elf_info *ei)
{
	struct stat st;
	memset(ei, 0, sizeof *ei);
	if (fstat(fd, &st) < 0)
		return wasp_fail(-errno, "%s: %s", path, strerror(errno));
	ei->size = st.st_size;
	unsigned char id[EI_NIDENT];
	if (st.st_size < (off_t)sizeof id || pread_all(fd, id, sizeof id, 0) < 0 ||
	    memcmp(id, ELFMAG, SELFMAG))
		return 0;
	if (id[EI_CLASS] != ELFCLASS64)
		return wasp_fail(-ENOEXEC, "%s: a 32-bit program: wasp runs x86-64 programs (build it with -m64)",
				 path);
	if (id[EI_DATA] != ELFDATA2LSB || (size_t)st.st_size < sizeof ei->eh ||
	    pread_all(fd, &ei->eh, sizeof ei->eh, 0) < 0)
		return wasp_fail(-ENOEXEC, "%s: not a little-endian ELF file", path);
	const Elf64_Ehdr *eh = &ei->eh;
	if (eh->e_machine != EM_X86_64)
		return wasp_fail(-ENOEXEC, "%s: built for another CPU (ELF machine %u): wasp runs x86-64 programs",
				 path, eh->e_machine);
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
		return wasp_fail(-ENOEXEC, "%s: not an executable (ELF type %u; an object file or a core dump?)",
				 path, eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > LX_MAX_PHDRS ||
	    eh->e_phoff > (uint64_t)st.st_size ||
	    (uint64_t)st.st_size - eh->e_phoff < (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) ||
	    pread_all(fd, ei->ph, eh->e_phnum * sizeof(Elf64_Phdr), (off_t)eh->e_phoff) < 0)
		return wasp_fail(-ENOEXEC, "%s: malformed ELF program headers", path);

	uint64_t lo = UINT64_MAX, hi = 0;
	bool pie = eh->e_type == ET_DYN;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ei->ph[i];
		if (p->p_type == PT_INTERP) {
			char interp[256] = "";
			size_t n = p->p_filesz < sizeof interp - 1 ? p->p_filesz : sizeof interp - 1;
			if (p->p_offset < (uint64_t)st.st_size)
				(void)pread_all(fd, interp, n, (off_t)p->p_offset);
			interp[n] = 0;
			interp[strcspn(interp, "\n")] = 0;
			return wasp_fail(-ENOEXEC, "%s: dynamically linked (interpreter %s): build it with -static",
					 path, interp[0] ? interp : "?");
		}
		if (p->p_type == PT_DYNAMIC && !pie)
			return wasp_fail(-ENOEXEC, "%s: dynamically linked (it has a dynamic section): build it with -static",
					 path);
		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > (uint64_t)st.st_size ||
		    p->p_filesz > (uint64_t)st.st_size - p->p_offset ||
		    p->p_vaddr > UINT64_MAX - p->p_memsz - WASP_PAGE_SIZE ||
		    p->p_vaddr % WASP_PAGE_SIZE != p->p_offset % WASP_PAGE_SIZE)
			return wasp_fail(-ENOEXEC, "%s: malformed loadable segment %u", path, i);
		if (p->p_vaddr < lo)
			lo = p->p_vaddr;
		if (p->p_vaddr + p->p_memsz > hi)
			hi = p->p_vaddr + p->p_memsz;
	}
	if (hi == 0)
		return wasp_fail(-ENOEXEC, "%s: no loadable segment", path);
	lo &= ~(uint64_t)(WASP_PAGE_SIZE - 1);
	hi = (hi + WASP_PAGE_SIZE - 1) & ~(uint64_t)(WASP_PAGE_SIZE - 1);
	ei->base = pie ? LX_LOAD_PIE - lo : 0;
	ei->lo = lo + ei->base;
	ei->hi = hi + ei->base;
	if (ei->lo < LX_USER_BASE)
		return wasp_fail(-ENOEXEC,
				 "%s: linked at 0x%llx, below 0x%llx where wasp keeps its page tables: link it higher (the default -static address 0x400000 works)",
				 path, (unsigned long long)ei->lo, LX_USER_BASE);
	if (eh->e_entry + ei->base < ei->lo || eh->e_entry + ei->base >= ei->hi)
		return wasp_fail(-ENOEXEC, "%s: entry point 0x%llx lies outside its segments", path,
				 (unsigned long long)eh->e_entry);
	/* AT_PHDR: the headers' address in memory, from PT_PHDR or from the
	 * segment that maps the file offset e_phoff. */
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ei->ph[i];
		if (p->p_type == PT_PHDR) {
			ei->phdr = p->p_vaddr + ei->base;
			break;
		}
		if (p->p_type == PT_LOAD && eh->e_phoff >= p->p_offset &&
		    eh->e_phoff - p->p_offset < p->p_filesz)
			ei->phdr = p->p_vaddr + (eh->e_phoff - p->p_offset) + ei->base;
	}
	return 1;
}

int wasp_linux_probe(const char *path)
{
	struct elf_info *ei = malloc(sizeof *ei);
	if (!ei)
		return wasp_fail(-ENOMEM, "out of memory");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = fd < 0 ? wasp_fail(-errno, "%s: %s", path, strerror(errno)) : elf_read(fd, path, ei);
	if (fd >= 0)
		close(fd);
	free(ei);
	return r;
}

/* ---- the address space --------------------------------------------------- */

/* Where a triple fault loses the vCPU's state (AMD SVM re-initialises the
 * VMCB on a shutdown intercept; measured by the probe below), a program's
 * fault could not be reported with its rip and address. There the host
 * adds what catches exceptions instead: a GDT (the gates' code segment), an
 * IDT for vectors 0-31, handlers that push the vector (and a zero error
 * code where the CPU pushes none) and exit through WASP_PORT_EXCEPTION,
 * and a ring-0 stack (TSS.RSP0), all supervisor-only. The run then ends
 * as a WASP_FAULT_EXCEPTION with the frame's registers. KVM intercepts #DB
 * and #BP itself while a tracer steps or breaks, so tracing is unchanged. */
static int host_keeps_fault = -1; /* 1: a shutdown keeps the registers */
#define LX_IDT_VECTORS 32u
#define LX_IDT_STUB 16u /* bytes per handler */

static void put_idt(uint8_t *m)
{
	uint64_t *pt0 = (uint64_t *)(m + WASP_GPA_PT0);
	for (uint64_t a = LX_GPA_GDT; a <= LX_GPA_KSTACK; a += WASP_PAGE_SIZE)
		pt0[a / WASP_PAGE_SIZE] = a | PTE_P | PTE_RW;
	uint64_t *gdt = (uint64_t *)(m + LX_GPA_GDT);
	gdt[2] = 0x00209a0000000000ull; /* 0x10: ring-0 code, 64-bit */
	gdt[3] = 0x0000920000000000ull; /* 0x18: ring-0 data */
	gdt[5] = 0x0000f20000000000ull; /* 0x28: ring-3 data */
	gdt[6] = 0x0020fa0000000000ull; /* 0x30: ring-3 code, 64-bit */
	uint64_t tss = LX_GPA_TSS, lim = WASP_TSS_LIMIT; /* 0x40: the TSS (busy) */
	gdt[8] = (lim & 0xffff) | ((tss & 0xffffff) << 16) | (0x8bull << 40) |
		 (((tss >> 24) & 0xff) << 56);
	gdt[9] = tss >> 32;
	uint64_t rsp0 = LX_GPA_KSTACK + WASP_PAGE_SIZE;
	memcpy(m + LX_GPA_TSS + 4, &rsp0, sizeof rsp0);
	static const uint32_t with_error = (1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) |
					   (1u << 13) | (1u << 14) | (1u << 17) | (1u << 21) |
					   (1u << 29) | (1u << 30);
	uint64_t common = LX_GPA_IDT_CODE + LX_IDT_VECTORS * LX_IDT_STUB;
	for (unsigned vec = 0; vec < LX_IDT_VECTORS; vec++) {
		uint64_t h = LX_GPA_IDT_CODE + vec * LX_IDT_STUB;
		uint8_t *c = m + h;
		unsigned n = 0;
		if (!(with_error & (1u << vec))) {
			c[n++] = 0x6a; /* push 0 */
			c[n++] = 0;
		}
		c[n++] = 0x6a; /* push vec */
		c[n++] = (uint8_t)vec;
		c[n++] = 0xe9; /* jmp common */
		int32_t rel = (int32_t)(common - (h + n + 4));
		memcpy(c + n, &rel, 4);
		uint64_t *gate = (uint64_t *)(m + LX_GPA_IDT + vec * 16);
		gate[0] = (h & 0xffff) | (0x10ull << 16) | (0x8eull << 40) | (((h >> 16) & 0xffff) << 48);
		gate[1] = h >> 32;
	}
	static const uint8_t tail[] = {0xe6, WASP_PORT_EXCEPTION, 0xf4, 0xeb, 0xfd}; /* out; hlt; jmp */
	memcpy(m + common, tail, sizeof tail);
}

/* The TSS and the stub below LX_USER_BASE, and their page-table entries
 * (in PT0): the TSS supervisor-only; the stub's page read-only, and
 * reachable from ring 3 only where `syscall` stays in ring 3 (PVM): on
 * hardware KVM a ring-3 jump to it faults, so a program cannot run the
 * stub's sysretq from ring 3 or pose as a system call. */
static void put_stub(uint8_t *m, int stub_cpl)
{
	uint64_t *pt0 = (uint64_t *)(m + WASP_GPA_PT0);
	pt0[LX_GPA_TSS / WASP_PAGE_SIZE] = LX_GPA_TSS | PTE_P | PTE_RW;
	pt0[LX_GPA_STUB / WASP_PAGE_SIZE] = LX_GPA_STUB | PTE_P | (stub_cpl == 3 ? PTE_US : 0);

	/* TSS: I/O map base, then a bitmap closed but for WASP_PORT_SYSCALL
	 * (ring 3 reaches the stub's `out` on PVM), then the closing byte. */
	uint8_t *tss = m + LX_GPA_TSS;
	uint16_t iomap = WASP_TSS_IOMAP;
	memcpy(tss + 0x66, &iomap, sizeof iomap);
	memset(tss + WASP_TSS_IOMAP, 0xff, WASP_TSS_LIMIT + 1 - WASP_TSS_IOMAP);
	tss[WASP_TSS_IOMAP + WASP_PORT_SYSCALL / 8] &= (uint8_t)~(1u << (WASP_PORT_SYSCALL % 8));

	static const uint8_t stub[] = {0xe6, WASP_PORT_SYSCALL, 0x48, 0x0f, 0x07};
	memcpy(m + LX_GPA_STUB, stub, sizeof stub);
	if (host_keeps_fault == 0)
		put_idt(m);
}

/* Page tables (identity map, as wasp_abi.h lays them out): below
 * LX_USER_BASE only the TSS (supervisor) and the stub (user, read-only)
 * are present, so page 0 and the tables themselves fault from ring 3;
 * user memory is 2 MiB pages, but 4 KiB ones where permissions or holes
 * need them: the program's segments (read-only text stays read-only), the
 * stack's guard page and a last partial 2 MiB. */
static int build_tables(struct wasp_virtine *v, const struct elf_info *ei, int stub_cpl)
{
	uint8_t *m = v->mem;
	uint64_t top = v->lx->stack_top;
	uint64_t guard = v->lx->stack_low - WASP_PAGE_SIZE;
	uint64_t *pml4 = (uint64_t *)(m + WASP_GPA_PML4);
	uint64_t *pdpt = (uint64_t *)(m + WASP_GPA_PDPT);
	uint64_t *pd = (uint64_t *)(m + WASP_GPA_PD);
	unsigned next_pt = 0;

	/* The memory is zero (the loader cleared it): only the entries set
	 * below are written, so only the pages they lie in are touched. */
	pml4[0] = WASP_GPA_PDPT | PTE_USER;
	for (uint64_t g = 0; g * (1ull << 30) < top; g++)
		pdpt[g] = (WASP_GPA_PD + g * WASP_PAGE_SIZE) | PTE_USER;
	pd[0] = WASP_GPA_PT0 | PTE_USER;

	for (uint64_t j = 1; j * SZ_2M < top; j++) {
		uint64_t r0 = j * SZ_2M, r1 = r0 + SZ_2M;
		bool split = r1 > top || (guard >= r0 && guard < r1) ||
			     (ei->lo < r1 && ei->hi > r0);
		if (!split) {
			pd[j] = r0 | PTE_USER | PTE_PS;
			continue;
		}
		if (next_pt == LX_PT_POOL_PAGES)
			return wasp_fail(-E2BIG, "the program's segments span too many 2 MiB regions");
		uint64_t pt_gpa = LX_GPA_PT_POOL + next_pt++ * WASP_PAGE_SIZE;
		uint64_t *pt = (uint64_t *)(m + pt_gpa);
		pd[j] = pt_gpa | PTE_USER;
		for (unsigned k = 0; k < 512; k++) {
			uint64_t a = r0 + k * (uint64_t)WASP_PAGE_SIZE;
			if (a >= top || a == guard)
				continue;
			uint64_t bits = PTE_USER;
			if (a >= ei->lo && a < ei->hi) {
				/* Inside the span: the union of the segments on this
				 * page; a gap between segments stays writable. */
				bool any = false, w = false;
				for (unsigned i = 0; i < ei->eh.e_phnum; i++) {
					const Elf64_Phdr *p = &ei->ph[i];
					if (p->p_type != PT_LOAD || !p->p_memsz)
						continue;
					uint64_t s = (p->p_vaddr + ei->base) & ~(uint64_t)(WASP_PAGE_SIZE - 1);
					uint64_t e = p->p_vaddr + ei->base + p->p_memsz;
					if (a >= s && a < e) {
						any = true;
						w |= (p->p_flags & PF_W) != 0;
					}
				}
				if (any && !w)
					bits &= ~PTE_RW;
			}
			pt[k] = a | bits;
		}
	}

	put_stub(m, stub_cpl);
	return 0;
}

/* Puts the segments in place. A segment's file bytes of LX_MAP_MIN or
 * more are mapped copy-on-write from the file, as Linux maps them (whole
 * pages, the bytes around the segment included; vmm_map.c): nothing is
 * copied now and pages come from the page cache when first touched. The
 * part of its last page past the file bytes is zeroed when the segment
 * goes on in memory (the start of .bss). Smaller ones are read. The rest
 * of memory is zero already. */
#define LX_MAP_MIN (64u << 10)
static int load_segments(struct wasp_virtine *v, int fd, const char *path, const struct elf_info *ei)
{
	const uint64_t pg = WASP_PAGE_SIZE;
	for (unsigned i = 0; i < ei->eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ei->ph[i];
		if (p->p_type != PT_LOAD || !p->p_filesz)
			continue;
		uint64_t va = p->p_vaddr + ei->base;
		uint64_t start = va & ~(pg - 1), end = (va + p->p_filesz + pg - 1) & ~(pg - 1);
		/* Mapped only when no other segment shares one of its pages
		 * (a mapping would replace that segment's bytes there). */
		bool alone = true;
		for (unsigned k = 0; k < ei->eh.e_phnum && alone; k++) {
			const Elf64_Phdr *q = &ei->ph[k];
			uint64_t qs = (q->p_vaddr + ei->base) & ~(pg - 1);
			uint64_t qe = (q->p_vaddr + ei->base + q->p_memsz + pg - 1) & ~(pg - 1);
			alone = k == i || q->p_type != PT_LOAD || !q->p_memsz || qe <= start || qs >= end;
		}
		if (p->p_filesz >= LX_MAP_MIN && alone) {
			int r = wasp_virtine_map_file(v, start, end - start, fd, p->p_offset & ~(pg - 1));
			if (r == 0) {
				uint64_t fend = va + p->p_filesz;
				if (p->p_memsz > p->p_filesz && fend % pg)
					memset(v->mem + fend, 0, end - fend);
				continue;
			}
			if (r != -ENOMEM)
				return wasp_fail(r, "%s: mapping segment %u: %s", path, i, wasp_last_error());
			/* out of mappings: read it */
		}
		int r = pread_all(fd, v->mem + va, p->p_filesz, (off_t)p->p_offset);
		if (r < 0)
			return wasp_fail(r, "%s: reading segment %u: %s", path, i, strerror(-r));
	}
	return 0;
}

/* The initial stack (System V x86-64 ABI, 3.4.1): argc, argv[], NULL,
 * envp[], NULL, auxv pairs, AT_NULL; strings and AT_RANDOM's bytes above.
 * rsp points at argc, 16-byte aligned. Returns rsp or -errno. */
static int64_t build_stack(struct wasp_virtine *v, const struct elf_info *ei, const char *execfn,
			   const char *const argv[], const char *const envp[])
{
	size_t argc = 0, envc = 0, strings = strlen(execfn) + 1 + sizeof "x86_64" + 16;
	for (; argv && argv[argc]; argc++)
		strings += strlen(argv[argc]) + 1;
	for (; envp && envp[envc]; envc++)
		strings += strlen(envp[envc]) + 1;
	if (strings > LX_MAX_STRINGS || argc + envc > LX_MAX_STRINGS / 8)
		return wasp_fail(-E2BIG, "arguments and environment exceed %u KiB", LX_MAX_STRINGS >> 10);

	uint64_t top = v->lx->stack_top;
	uint64_t p = top - 16; /* a zero end marker, as Linux leaves */
	uint8_t *m = v->mem;
#define PUT_STR(s)                                                                               \
	({                                                                                       \
		size_t l_ = strlen(s) + 1;                                                       \
		p -= l_;                                                                         \
		memcpy(m + p, (s), l_);                                                          \
		p;                                                                               \
	})
	uint64_t a_execfn = PUT_STR(execfn);
	uint64_t *av = malloc((argc + envc + 1) * sizeof *av);
	if (!av)
		return wasp_fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < argc; i++)
		av[i] = PUT_STR(argv[i]);
	for (size_t i = 0; i < envc; i++)
		av[argc + i] = PUT_STR(envp[i]);
	uint64_t a_platform = PUT_STR("x86_64");
#undef PUT_STR
	p -= 16;
	uint64_t a_random = p;
	if (getrandom(m + p, 16, 0) != 16) {
		free(av);
		return wasp_fail(-EIO, "getrandom: %s", strerror(errno));
	}

	uint32_t hwcap = 0;
	const struct kvm_cpuid2 *c = wasp_x86_effective_cpuid();
	for (uint32_t i = 0; c && i < c->nent; i++)
		if (c->entries[i].function == 1)
			hwcap = c->entries[i].edx;
	const uint64_t aux[][2] = {
		{AT_PHDR, ei->phdr},      {AT_PHENT, sizeof(Elf64_Phdr)},
		{AT_PHNUM, ei->eh.e_phnum}, {AT_PAGESZ, WASP_PAGE_SIZE},
		{AT_BASE, 0},             {AT_FLAGS, 0},
		{AT_ENTRY, ei->eh.e_entry + ei->base},
		{AT_UID, LX_UID},         {AT_EUID, LX_UID},
		{AT_GID, LX_UID},         {AT_EGID, LX_UID},
		{AT_SECURE, 0},           {AT_CLKTCK, 100},
		{AT_HWCAP, hwcap},        {AT_HWCAP2, 0},
		{AT_RANDOM, a_random},    {AT_PLATFORM, a_platform},
		{AT_EXECFN, a_execfn},    {AT_NULL, 0},
	};
	size_t words = 1 + argc + 1 + envc + 1 + 2 * (sizeof aux / sizeof *aux);
	p = (p - words * 8) & ~15ull;
	uint64_t *sp = (uint64_t *)(m + p), *w = sp;
	*w++ = argc;
	for (size_t i = 0; i < argc; i++)
		*w++ = av[i];
	*w++ = 0;
	for (size_t i = 0; i < envc; i++)
		*w++ = av[argc + i];
	*w++ = 0;
	memcpy(w, aux, sizeof aux);
	free(av);
	return (int64_t)p;
}

static int set_msrs(struct wasp_virtine *v, const uint32_t *idx, const uint64_t *val, unsigned n)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[8];
	} m = {.h.nmsrs = n};
	for (unsigned i = 0; i < n; i++)
		m.e[i] = (struct kvm_msr_entry){.index = idx[i], .data = val[i]};
	int r = wasp__ioctl(v->vcpu_fd, KVM_SET_MSRS, &m.h);
	if (r < 0)
		return wasp_fail(r, "KVM_SET_MSRS: %s", strerror(-r));
	if ((unsigned)r != n)
		return wasp_fail(-EIO, "KVM_SET_MSRS: MSR 0x%x refused", idx[r]);
	return 0;
}

/* The vCPU as Linux starts a process: 64-bit ring 3 at the entry, rsp at
 * argc, every other register zero (rdx too: no rtld_fini), syscall wired
 * to the stub. User selectors are Linux's (cs 0x33, ss 0x2b), so that
 * STAR's sysret selectors match them. */
static int enter(struct wasp_virtine *v, uint64_t rip, uint64_t rsp)
{
	const struct wasp_kvm *k;
	int r = wasp_kvm_get(&k);
	if (r < 0)
		return r;
	struct kvm_sregs s;
	if ((r = kvm_ioctl(v->vcpu_fd, KVM_GET_SREGS, &s)) < 0)
		return r;
	struct kvm_segment code = {.limit = 0xffffffff, .selector = 0x33, .type = 11, .present = 1,
				   .dpl = 3, .s = 1, .l = 1, .g = 1};
	struct kvm_segment data = {.limit = 0xffffffff, .selector = 0x2b, .type = 3, .present = 1,
				   .dpl = 3, .s = 1, .db = 1, .g = 1};
	s.cs = code;
	s.ds = s.es = s.ss = data;
	s.fs = s.gs = data;
	s.fs.selector = s.gs.selector = 0;
	s.cr3 = WASP_GPA_PML4;
	s.cr4 = (1ull << 5) | (1ull << 9) | (1ull << 10) | (k->xcr0 ? 1ull << 18 : 0);
	s.cr0 = (1ull << 31) | (1ull << 18) | (1ull << 16) | (1ull << 5) | (1ull << 4) | (1ull << 1) |
		1ull;
	s.cr2 = 0;
	s.efer = (1ull << 8) | (1ull << 10) | 1ull; /* LME, LMA, SCE */
	s.idt.base = s.gdt.base = 0;
	s.idt.limit = s.gdt.limit = 0;
	if (host_keeps_fault == 0) {
		s.gdt.base = LX_GPA_GDT;
		s.gdt.limit = 10 * 8 - 1;
		s.idt.base = LX_GPA_IDT;
		s.idt.limit = LX_IDT_VECTORS * 16 - 1;
	}
	s.tr = (struct kvm_segment){.base = LX_GPA_TSS, .limit = WASP_TSS_LIMIT, .selector = 0x40,
				    .type = 11, .present = 1};
	memset(s.interrupt_bitmap, 0, sizeof s.interrupt_bitmap);
	if ((r = kvm_ioctl(v->vcpu_fd, KVM_SET_SREGS, &s)) < 0)
		return r;
	if (k->xcr0) {
		struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = k->xcr0}}};
		if ((r = kvm_ioctl(v->vcpu_fd, KVM_SET_XCRS, &xcrs)) < 0)
			return r;
	}
	/* STAR: syscall enters with cs 0x10/ss 0x18, sysretq returns with
	 * cs 0x23+16 = 0x33 and ss 0x23+8 = 0x2b, at RPL 3. SFMASK clears TF,
	 * IF, DF, NT, RF and AC on entry, as Linux does. */
	static const uint32_t idx[] = {MSR_STAR,    MSR_LSTAR,   MSR_CSTAR,         MSR_SFMASK,
				       MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE};
	const uint64_t val[] = {(0x23ull << 48) | (0x10ull << 32), LX_GPA_STUB, LX_GPA_STUB,
				0x54700, 0, 0, 0};
	if ((r = set_msrs(v, idx, val, sizeof idx / sizeof *idx)) < 0)
		return r;
	struct kvm_regs regs = {.rip = rip, .rsp = rsp, .rflags = 2};
	v->run->kvm_dirty_regs = 0;
	return kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &regs);
}

static void lx_reset(struct wasp_linux *lx)
{
	free(lx->maps);
	memset(lx, 0, sizeof *lx);
	lx->umask = 022;
	lx->stub_cpl = -1;
}

/* The privilege level `syscall` lands at on this host (docs/design.md):
 * learnt once per process, in a throwaway virtine that only makes one
 * `syscall` from ring 3, so no program can sway it. */
static int host_cpl = -1;
static pthread_mutex_t cpl_lock = PTHREAD_MUTEX_INITIALIZER;

/* One KVM_RUN of the probe to its exit (a stray signal retried). */
static int probe_run(struct wasp_virtine *p)
{
	for (int i = 0; i < 100; i++) {
		if (ioctl(p->vcpu_fd, KVM_RUN, 0) == 0)
			return 0;
		if (errno != EINTR)
			break;
	}
	return wasp_fail(-errno, "probing this KVM: KVM_RUN: %s", strerror(errno));
}

static int probe_stub_cpl(void)
{
	pthread_mutex_lock(&cpl_lock);
	int r = host_cpl;
	if (r >= 0) {
		pthread_mutex_unlock(&cpl_lock);
		return r;
	}
	struct wasp_config c;
	wasp_config_init(&c);
	c.mem_size = 4u << 20;
	struct wasp_virtine *p;
	if ((r = wasp_virtine_create(&c, &p)) < 0)
		goto out;
	uint8_t *m = p->mem;
	((uint64_t *)(m + WASP_GPA_PML4))[0] = WASP_GPA_PDPT | PTE_USER;
	((uint64_t *)(m + WASP_GPA_PDPT))[0] = WASP_GPA_PD | PTE_USER;
	((uint64_t *)(m + WASP_GPA_PD))[0] = WASP_GPA_PT0 | PTE_USER;
	put_stub(m, 3); /* reachable from ring 3 here: the probe runs there */
	static const uint8_t code[] = {0x0f, 0x05}; /* syscall */
	memcpy(m + LX_GPA_STUB + 0x100, code, sizeof code);
	if ((r = enter(p, LX_GPA_STUB + 0x100, 0)) < 0 || (r = probe_run(p)) < 0)
		goto out_destroy;
	if (p->run->exit_reason != KVM_EXIT_IO || p->run->io.port != WASP_PORT_SYSCALL) {
		r = wasp_fail(-ENOTSUP,
			      "this KVM does not take `syscall` to the stub (exit %s): Linux programs cannot run here",
			      wasp_kvm_exit_name(p->run->exit_reason));
		goto out_destroy;
	}
	struct kvm_sregs sr;
	if ((r = kvm_ioctl(p->vcpu_fd, KVM_GET_SREGS, &sr)) < 0)
		goto out_destroy;
	int cpl = sr.cs.dpl == 0 ? 0 : 3;
	/* Second: does a triple fault keep the registers? A `ud2` at a known
	 * rip, with no IDT yet, shuts the vCPU down. */
	static const uint8_t ud2[] = {0x0f, 0x0b};
	memcpy(m + LX_GPA_STUB + 0x110, ud2, sizeof ud2);
	if ((r = wasp_virtine_complete_io(p)) < 0)
		goto out_destroy;
	struct kvm_regs regs = {.rip = LX_GPA_STUB + 0x110, .rflags = 2};
	p->run->kvm_dirty_regs = 0;
	if ((r = kvm_ioctl(p->vcpu_fd, KVM_SET_REGS, &regs)) < 0 || (r = probe_run(p)) < 0)
		goto out_destroy;
	if ((r = kvm_ioctl(p->vcpu_fd, KVM_GET_REGS, &regs)) < 0)
		goto out_destroy;
	host_keeps_fault = p->run->exit_reason == KVM_EXIT_SHUTDOWN && regs.rip == LX_GPA_STUB + 0x110;
	r = host_cpl = cpl;
out_destroy:
	wasp_virtine_destroy(p);
out:
	pthread_mutex_unlock(&cpl_lock);
	return r;
}

void wasp_lx_exception(struct wasp_virtine *v, struct wasp_exit *e)
{
	struct kvm_regs regs;
	memset(&e->fault, 0, sizeof e->fault);
	e->reason = WASP_EXIT_FAULT;
	e->fault.kind = WASP_FAULT_EXCEPTION;
	e->fault.kvm_exit = v->run->exit_reason;
	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS)
		regs = v->run->s.regs.regs;
	else if (wasp__ioctl(v->vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return;
	memcpy(&e->fault.regs, &regs, sizeof regs);
	/* The frame the handler left on the ring-0 stack: vector, error
	 * code, then what the CPU pushed (rip, cs, rflags, rsp, ss). */
	uint64_t f[7];
	if (regs.rsp >= LX_GPA_KSTACK && regs.rsp <= LX_GPA_KSTACK + WASP_PAGE_SIZE - sizeof f) {
		memcpy(f, v->mem + regs.rsp, sizeof f);
		e->fault.addr = f[0];
		e->fault.error_code = f[1];
		e->fault.regs.rip = f[2];
		e->fault.regs.rflags = f[4];
		e->fault.regs.rsp = f[5];
	}
	wasp_fault_sregs(v, e);
}

void wasp_lx_free(struct wasp_virtine *v)
{
	if (v->lx) {
		free(v->lx->maps);
		free(v->lx);
		v->lx = NULL;
	}
}

static int load_linux_fd(struct wasp_virtine *v, int fd, const char *path, const char *const argv[],
			 const char *const envp[]);

int wasp_virtine_load_linux(struct wasp_virtine *v, const char *path, const char *const argv[],
			    const char *const envp[])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return wasp_fail(-errno, "%s: %s", path, strerror(errno));
	int r = load_linux_fd(v, fd, path, argv, envp);
	close(fd);
	return r;
}

/* An ELF program handed over in memory (wasp_virtine_load, a pool's
 * image): it goes into a sealed memfd, which the loader reads and maps
 * as it would a file. */
int wasp_lx_load_buffer(struct wasp_virtine *v, const void *image, size_t len,
			const char *const argv[], const char *const envp[])
{
	int fd = memfd_create("wasp-program", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return wasp_fail(-errno, "memfd_create: %s", strerror(errno));
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)image + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return wasp_fail(-e, "writing the program to a memfd: %s", strerror(e));
		}
		done += (size_t)n;
	}
	/* Sealed, so that nothing can shrink it under the mapped segments. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	int r = load_linux_fd(v, fd, "program", argv, envp);
	close(fd);
	return r;
}

static int load_linux_fd(struct wasp_virtine *v, int fd, const char *path, const char *const argv[],
			 const char *const envp[])
{
	uint64_t t0 = wasp_now_ns();
	struct elf_info *ei = NULL;
	int r;
	if (!(ei = malloc(sizeof *ei))) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	r = elf_read(fd, path, ei);
	if (r == 0)
		r = wasp_fail(-ENOEXEC, "%s: not an ELF program", path);
	if (r < 0)
		goto out;

	/* Room: the segments, then brk, the mmap area and the stack. The
	 * program sees memory up to the top of guest memory (4 GiB at most,
	 * what the page tables map). */
	uint64_t top = v->mem_size < WASP_MEM_MAX ? v->mem_size : WASP_MEM_MAX;
	top &= ~(uint64_t)(WASP_PAGE_SIZE - 1);
	if (ei->hi > top || top - ei->hi < LX_STACK_SIZE + (4ull << 20)) {
		r = wasp_fail(-E2BIG,
			      "%s: needs more than %zu MiB of guest memory (its segments end at %llu MiB, and a stack of %llu MiB goes on top): raise -m",
			      path, v->mem_size >> 20, (unsigned long long)(ei->hi >> 20),
			      LX_STACK_SIZE >> 20);
		goto out;
	}
	if ((r = wasp_zero_if_used(v, 0, 0)) < 0)
		goto out;
	if (!v->lx && !(v->lx = calloc(1, sizeof *v->lx))) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	struct wasp_linux *lx = v->lx;
	lx_reset(lx);
	lx->entry = ei->eh.e_entry + ei->base;
	lx->image_lo = ei->lo;
	lx->image_hi = ei->hi;
	lx->stack_top = top;
	lx->stack_low = top - LX_STACK_SIZE;
	lx->brk_start = lx->brk = ei->hi;
	lx->mmap_top = lx->stack_low - WASP_PAGE_SIZE;
	lx->brk_max = lx->mmap_min = lx->brk_start; /* brk and mmap meet where they meet */

	int cpl = probe_stub_cpl();
	if (cpl < 0) {
		r = cpl;
		goto out;
	}
	lx->stub_cpl = cpl;
	if ((r = build_tables(v, ei, cpl)) < 0 || (r = load_segments(v, fd, path, ei)) < 0)
		goto out;
	const char *const def_argv[] = {path, NULL};
	int64_t sp = build_stack(v, ei, path, argv ? argv : def_argv, envp);
	if (sp < 0) {
		r = (int)sp;
		goto out;
	}
	wasp_mark_dirty(v, 0, WASP_PAGE_SIZE * 16); /* tables, TSS, stub */
	v->hc_pending = false;
	wasp_virtine_set_mode(v, WASP_MODE_LONG);
	r = enter(v, lx->entry, (uint64_t)sp);
out:
	if (r < 0 && v->lx)
		wasp_lx_free(v);
	free(ei);
	v->stats.load_ns = wasp_now_ns() - t0;
	return r;
}

bool wasp_virtine_is_linux(const struct wasp_virtine *v)
{
	return v->lx != NULL;
}

/* ---- process, time, randomness, signals --------------------------------- */

static int64_t sys_getpid(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return LX_PID;
}

static int64_t sys_getppid(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return 0;
}

static int64_t sys_getuid(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return LX_UID;
}

static int64_t sys_eperm(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -EPERM;
}

static int64_t sys_set_tid_address(struct wasp_virtine *v, const uint64_t a[6])
{
	v->lx->tid_address = a[0];
	return LX_PID;
}

static int64_t sys_set_robust_list(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[1] != 24) /* sizeof(struct robust_list_head) */
		return -EINVAL;
	v->lx->robust_list = a[0];
	v->lx->robust_len = a[1];
	return 0;
}

static int64_t sys_arch_prctl(struct wasp_virtine *v, const uint64_t a[6])
{
	enum { SET_GS = 0x1001, SET_FS = 0x1002, GET_FS = 0x1003, GET_GS = 0x1004 };
	uint32_t msr;
	switch (a[0]) {
	case SET_FS: msr = MSR_FS_BASE; break;
	case SET_GS: msr = MSR_GS_BASE; break;
	case GET_FS:
	case GET_GS: {
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} m = {.h.nmsrs = 1, .e.index = a[0] == GET_FS ? MSR_FS_BASE : MSR_GS_BASE};
		if (wasp__ioctl(v->vcpu_fd, KVM_GET_MSRS, &m.h) != 1)
			return -EIO;
		uint64_t *out = wasp_lx_user_w(v, a[1], 8);
		if (!out)
			return -EFAULT;
		memcpy(out, &m.e.data, 8);
		return 0;
	}
	default: return -EINVAL;
	}
	/* A non-canonical base would make the next entry fail. */
	if (a[1] >= 0x800000000000ull)
		return -EPERM;
	uint64_t val = a[1];
	return set_msrs(v, &msr, &val, 1) < 0 ? -EIO : 0;
}

static int64_t sys_uname(struct wasp_virtine *v, const uint64_t a[6])
{
	struct {
		char sysname[65], nodename[65], release[65], version[65], machine[65], domain[65];
	} u = {"Linux", "virtine", "6.1.0-wasp", "#1 wasp", "x86_64", "(none)"};
	void *out = wasp_lx_user_w(v, a[0], sizeof u);
	if (!out)
		return -EFAULT;
	memcpy(out, &u, sizeof u);
	return 0;
}

static int64_t sys_getrandom(struct wasp_virtine *v, const uint64_t a[6])
{
	size_t len = a[1] > 0x2000000 ? 0x2000000 : a[1]; /* Linux's 32 MiB per call */
	if (a[2] & ~(uint64_t)(GRND_NONBLOCK | GRND_RANDOM | 4 /* GRND_INSECURE */))
		return -EINVAL;
	void *out = wasp_lx_user_w(v, a[0], len);
	if (!out)
		return -EFAULT;
	ssize_t n = getrandom(out, len, 0);
	return n < 0 ? -errno : n;
}

static bool host_clock(uint64_t id, clockid_t *out)
{
	switch (id) {
	case CLOCK_REALTIME: case CLOCK_REALTIME_COARSE:
		*out = CLOCK_REALTIME; return true;
	case CLOCK_MONOTONIC: case CLOCK_MONOTONIC_COARSE: case CLOCK_MONOTONIC_RAW:
	case CLOCK_BOOTTIME:
		*out = CLOCK_MONOTONIC; return true;
	case CLOCK_PROCESS_CPUTIME_ID: case CLOCK_THREAD_CPUTIME_ID:
		*out = CLOCK_THREAD_CPUTIME_ID; return true; /* the vCPU thread's */
	default: return false;
	}
}

static int64_t sys_clock_gettime(struct wasp_virtine *v, const uint64_t a[6])
{
	clockid_t id;
	struct timespec t;
	if (!host_clock(a[0], &id))
		return -EINVAL;
	void *out = wasp_lx_user_w(v, a[1], sizeof t);
	if (!out)
		return -EFAULT;
	clock_gettime(id, &t);
	memcpy(out, &t, sizeof t);
	return 0;
}

static int64_t sys_clock_getres(struct wasp_virtine *v, const uint64_t a[6])
{
	clockid_t id;
	struct timespec t = {0, 1};
	if (!host_clock(a[0], &id))
		return -EINVAL;
	if (!a[1])
		return 0;
	void *out = wasp_lx_user_w(v, a[1], sizeof t);
	if (!out)
		return -EFAULT;
	memcpy(out, &t, sizeof t);
	return 0;
}

static int64_t sys_gettimeofday(struct wasp_virtine *v, const uint64_t a[6])
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	if (a[0]) {
		struct timeval tv = {t.tv_sec, t.tv_nsec / 1000};
		void *out = wasp_lx_user_w(v, a[0], sizeof tv);
		if (!out)
			return -EFAULT;
		memcpy(out, &tv, sizeof tv);
	}
	if (a[1]) {
		void *tz = wasp_lx_user_w(v, a[1], 8);
		if (!tz)
			return -EFAULT;
		memset(tz, 0, 8);
	}
	return 0;
}

static int64_t sys_time(struct wasp_virtine *v, const uint64_t a[6])
{
	int64_t now = (int64_t)time(NULL);
	if (a[0]) {
		void *out = wasp_lx_user_w(v, a[0], 8);
		if (!out)
			return -EFAULT;
		memcpy(out, &now, 8);
	}
	return now;
}

/* Sleeps until `ns` more have passed or the run is kicked (a pause, the
 * deadline); then the call is restarted with what was left. */
static int64_t sleep_ns(struct wasp_virtine *v, uint64_t ns)
{
	struct wasp_linux *lx = v->lx;
	if (lx->sleep_left_ns && lx->sleep_rip == lx->cur_rip)
		ns = lx->sleep_left_ns; /* the rest of a sleep a pause cut */
	lx->sleep_left_ns = 0;
	uint64_t end = wasp_now_ns() + ns;
	sigset_t kick, old;
	sigemptyset(&kick);
	sigaddset(&kick, wasp_kick_signal());
	pthread_sigmask(SIG_BLOCK, &kick, &old);
	for (;;) {
		uint64_t now = wasp_now_ns();
		if (now >= end)
			break;
		if (wasp_virtine_kicked(v)) {
			lx->sleep_rip = lx->cur_rip;
			lx->sleep_left_ns = end - now;
			lx->restart = true;
			break;
		}
		struct timespec ts = {(time_t)((end - now) / 1000000000u), (long)((end - now) % 1000000000u)};
		ppoll(NULL, 0, &ts, &old);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

static int read_timespec(struct wasp_virtine *v, uint64_t addr, uint64_t *ns)
{
	struct timespec t;
	const void *p = wasp_lx_user_r(v, addr, sizeof t);
	if (!p)
		return -EFAULT;
	memcpy(&t, p, sizeof t);
	if (t.tv_sec < 0 || t.tv_nsec < 0 || t.tv_nsec >= 1000000000)
		return -EINVAL;
	*ns = (uint64_t)t.tv_sec > UINT64_MAX / 2000000000u ? UINT64_MAX / 2
							   : (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	return 0;
}

static int64_t sys_nanosleep(struct wasp_virtine *v, const uint64_t a[6])
{
	uint64_t ns;
	int r = read_timespec(v, a[0], &ns);
	return r < 0 ? r : sleep_ns(v, ns);
}

static int64_t sys_clock_nanosleep(struct wasp_virtine *v, const uint64_t a[6])
{
	clockid_t id;
	uint64_t ns;
	if (!host_clock(a[0], &id) || id == CLOCK_THREAD_CPUTIME_ID)
		return -EINVAL;
	int r = read_timespec(v, a[2], &ns);
	if (r < 0)
		return r;
	if (a[1] & 1 /* TIMER_ABSTIME */) {
		struct timespec now;
		clock_gettime(id, &now);
		uint64_t n = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
		ns = ns > n ? ns - n : 0;
	}
	return sleep_ns(v, ns);
}

static int64_t sys_sched_getaffinity(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[1] < 8 || a[1] % 8)
		return -EINVAL;
	uint8_t *out = wasp_lx_user_w(v, a[2], 8);
	if (!out)
		return -EFAULT;
	uint64_t one = 1; /* one vCPU */
	memcpy(out, &one, 8);
	return 8;
}

static int64_t sys_prlimit64(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[0] != 0 && a[0] != LX_PID)
		return -ESRCH;
	if (a[1] >= 16)
		return -EINVAL;
	uint64_t lim[2] = {UINT64_MAX, UINT64_MAX};
	switch (a[1]) {
	case 3: /* RLIMIT_STACK */ lim[0] = lim[1] = LX_STACK_SIZE; break;
	case 7: /* RLIMIT_NOFILE */ lim[0] = lim[1] = LX_NOFILE; break;
	case 9: /* RLIMIT_AS */
	case 2: /* RLIMIT_DATA */ lim[0] = lim[1] = v->mem_size; break;
	case 6: /* RLIMIT_NPROC */ lim[0] = lim[1] = 1; break;
	case 4: /* RLIMIT_CORE */ lim[0] = lim[1] = 0; break;
	}
	if (a[3]) {
		void *out = wasp_lx_user_w(v, a[3], sizeof lim);
		if (!out)
			return -EFAULT;
		memcpy(out, lim, sizeof lim);
	}
	if (a[2] && !wasp_lx_user_r(v, a[2], sizeof lim))
		return -EFAULT;
	return 0; /* a new limit is accepted and changes nothing */
}

static int64_t sys_getrlimit(struct wasp_virtine *v, const uint64_t a[6])
{
	const uint64_t b[6] = {0, a[0], 0, a[1]};
	return sys_prlimit64(v, b);
}

/* The host's struct sysinfo is Linux x86-64's; the numbers are the
 * virtine's own: its memory, one process, no swap. */
static int64_t sys_sysinfo(struct wasp_virtine *v, const uint64_t a[6])
{
	_Static_assert(sizeof(struct sysinfo) == 112, "struct sysinfo");
	struct sysinfo si;
	memset(&si, 0, sizeof si);
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	si.uptime = t.tv_sec;
	si.totalram = v->mem_size;
	si.freeram = v->mem_size / 2;
	si.procs = 1;
	si.mem_unit = 1;
	void *out = wasp_lx_user_w(v, a[0], sizeof si);
	if (!out)
		return -EFAULT;
	memcpy(out, &si, sizeof si);
	return 0;
}

static int64_t sys_getrusage(struct wasp_virtine *v, const uint64_t a[6])
{
	void *out = wasp_lx_user_w(v, a[1], 144);
	if (!out)
		return -EFAULT;
	memset(out, 0, 144);
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	int64_t tv[2] = {t.tv_sec, t.tv_nsec / 1000};
	memcpy(out, tv, sizeof tv); /* ru_utime */
	return 0;
}

static int64_t sys_rt_sigaction(struct wasp_virtine *v, const uint64_t a[6])
{
	uint64_t sig = a[0];
	if (sig < 1 || sig > LX_NSIG || a[3] != 8)
		return -EINVAL;
	struct wasp_lx_sigaction *s = &v->lx->sig[sig - 1];
	struct wasp_lx_sigaction in;
	if (a[1]) {
		const void *p = wasp_lx_user_r(v, a[1], sizeof in);
		if (!p)
			return -EFAULT;
		memcpy(&in, p, sizeof in);
		if (sig == SIGKILL || sig == SIGSTOP)
			return -EINVAL;
	}
	if (a[2]) {
		void *out = wasp_lx_user_w(v, a[2], sizeof *s);
		if (!out)
			return -EFAULT;
		memcpy(out, s, sizeof *s);
	}
	if (a[1])
		*s = in;
	return 0;
}

static int64_t sys_rt_sigprocmask(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[3] != 8)
		return -EINVAL;
	uint64_t set = 0, old = v->lx->sigmask;
	if (a[1]) {
		const void *p = wasp_lx_user_r(v, a[1], 8);
		if (!p)
			return -EFAULT;
		memcpy(&set, p, 8);
		set &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));
		switch (a[0]) {
		case SIG_BLOCK: v->lx->sigmask |= set; break;
		case SIG_UNBLOCK: v->lx->sigmask &= ~set; break;
		case SIG_SETMASK: v->lx->sigmask = set; break;
		default: return -EINVAL;
		}
	}
	if (a[2]) {
		void *out = wasp_lx_user_w(v, a[2], 8);
		if (!out)
			return -EFAULT;
		memcpy(out, &old, 8);
	}
	return 0;
}

static int64_t sys_sigaltstack(struct wasp_virtine *v, const uint64_t a[6])
{
	struct wasp_linux *lx = v->lx;
	uint64_t old[3] = {lx->altstack_sp, lx->altstack_flags ? lx->altstack_flags : 2 /* SS_DISABLE */,
			   lx->altstack_size};
	if (a[0]) {
		uint64_t in[3];
		const void *p = wasp_lx_user_r(v, a[0], sizeof in);
		if (!p)
			return -EFAULT;
		memcpy(in, p, sizeof in);
		lx->altstack_sp = in[0];
		lx->altstack_flags = in[1] & 0xffffffffu;
		lx->altstack_size = in[2];
	}
	if (a[1]) {
		void *out = wasp_lx_user_w(v, a[1], sizeof old);
		if (!out)
			return -EFAULT;
		memcpy(out, old, sizeof old);
	}
	return 0;
}

static int64_t sys_futex(struct wasp_virtine *v, const uint64_t a[6])
{
	/* One thread: nobody to wake, nobody to wait for. */
	switch (a[1] & 0x7f) {
	case 1: /* FUTEX_WAKE */
		return 0;
	case 0: /* FUTEX_WAIT: it would wait forever */
	case 9: { /* FUTEX_WAIT_BITSET */
		const void *p = wasp_lx_user_r(v, a[0], 4);
		if (!p)
			return -EFAULT;
		uint32_t cur;
		memcpy(&cur, p, 4);
		return cur != (uint32_t)a[2] ? -EAGAIN : -EDEADLK;
	}
	default:
		return -ENOSYS;
	}
}

static int64_t sys_sched_yield(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return 0;
}

/* Signals a program sends itself: the default action, since no handler
 * runs asynchronously here (docs/linux.md). Returns 1 when the program
 * ends (e filled), 0 when the signal is ignored. */
static int self_signal(struct wasp_virtine *v, uint64_t sig, struct wasp_exit *e)
{
	if (sig == 0)
		return 0;
	switch (sig) {
	case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:
		return 0; /* ignored by default */
	}
	if (sig != SIGKILL && sig != SIGSTOP && v->lx->sig[sig - 1].handler == 1 /* SIG_IGN */)
		return 0;
	e->reason = WASP_EXIT_EXITED;
	e->code = 128 + (int64_t)sig;
	e->signal = (int)sig;
	return 1;
}

/* The table: number → handler and name (the name is what --trace shows). */
struct lx_call {
	const char *name;
	wasp_lx_fn fn;
};

#define LX_FS_ENTRY(nr, name) [nr] = {#name, wasp_lx_sys_##name},
static const struct lx_call table[] = {
	WASP_LX_FS_CALLS(LX_FS_ENTRY)
	[9] = {"mmap", wasp_lx_sys_mmap},
	[10] = {"mprotect", wasp_lx_sys_mprotect},
	[11] = {"munmap", wasp_lx_sys_munmap},
	[12] = {"brk", wasp_lx_sys_brk},
	[13] = {"rt_sigaction", sys_rt_sigaction},
	[14] = {"rt_sigprocmask", sys_rt_sigprocmask},
	[24] = {"sched_yield", sys_sched_yield},
	[25] = {"mremap", wasp_lx_sys_mremap},
	[28] = {"madvise", wasp_lx_sys_madvise},
	[35] = {"nanosleep", sys_nanosleep},
	[39] = {"getpid", sys_getpid},
	[56] = {"clone", sys_eperm},
	[57] = {"fork", sys_eperm},
	[58] = {"vfork", sys_eperm},
	[59] = {"execve", sys_eperm},
	[63] = {"uname", sys_uname},
	[96] = {"gettimeofday", sys_gettimeofday},
	[97] = {"getrlimit", sys_getrlimit},
	[98] = {"getrusage", sys_getrusage},
	[99] = {"sysinfo", sys_sysinfo},
	[101] = {"ptrace", sys_eperm},
	[102] = {"getuid", sys_getuid},
	[104] = {"getgid", sys_getuid},
	[107] = {"geteuid", sys_getuid},
	[108] = {"getegid", sys_getuid},
	[110] = {"getppid", sys_getppid},
	[111] = {"getpgrp", sys_getpid},
	[112] = {"setsid", sys_eperm},
	[121] = {"getpgid", sys_getpid},
	[124] = {"getsid", sys_getpid},
	[131] = {"sigaltstack", sys_sigaltstack},
	[158] = {"arch_prctl", sys_arch_prctl},
	[186] = {"gettid", sys_getpid},
	[201] = {"time", sys_time},
	[202] = {"futex", sys_futex},
	[204] = {"sched_getaffinity", sys_sched_getaffinity},
	[218] = {"set_tid_address", sys_set_tid_address},
	[228] = {"clock_gettime", sys_clock_gettime},
	[229] = {"clock_getres", sys_clock_getres},
	[230] = {"clock_nanosleep", sys_clock_nanosleep},
	[273] = {"set_robust_list", sys_set_robust_list},
	[302] = {"prlimit64", sys_prlimit64},
	[318] = {"getrandom", sys_getrandom},
	[322] = {"execveat", sys_eperm},
	[435] = {"clone3", sys_eperm},
};
#define LX_NCALLS (sizeof table / sizeof *table)

int64_t wasp_lx_dispatch(struct wasp_virtine *v, uint64_t nr, const uint64_t a[6])
{
	return nr < LX_NCALLS && table[nr].fn ? table[nr].fn(v, a) : -ENOSYS;
}

const char *wasp_linux_syscall_name(uint64_t nr)
{
	switch (nr) {
	case 60: return "exit";
	case 62: return "kill";
	case 200: return "tkill";
	case 231: return "exit_group";
	case 234: return "tgkill";
	case 334: return "rseq";
	}
	return nr < LX_NCALLS ? table[nr].name : NULL;
}

bool wasp_lx_syscall(struct wasp_virtine *v, struct wasp_exit *e, int *err)
{
	struct wasp_linux *lx = v->lx;
	struct kvm_regs regs;

	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS)
		regs = v->run->s.regs.regs;
	else if ((*err = kvm_ioctl(v->vcpu_fd, KVM_GET_REGS, &regs)) < 0)
		return false;

	uint64_t nr = regs.rax;
	const uint64_t a[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};
	uint64_t t0 = v->trace ? wasp_now_ns() : 0;
	uint64_t hc = nr - WASP_LINUX_HC_BASE;
	int64_t res = 0;
	bool go = true;
	lx->cur_nr = nr;
	lx->cur_rip = regs.rcx - 2; /* `syscall` is 0f 05 */
	lx->restart = false;
	v->stats.hypercalls++;

	switch (nr) {
	case 60:  /* exit */
	case 231: /* exit_group */
		e->reason = WASP_EXIT_EXITED;
		e->code = (int64_t)(a[0] & 0xff);
		go = false;
		break;
	case 62: /* kill */
		if (a[0] != LX_PID && a[0] != 0 && (int64_t)a[0] != -1)
			res = -ESRCH;
		else if (a[1] > LX_NSIG)
			res = -EINVAL;
		else
			go = !self_signal(v, a[1], e);
		break;
	case 200: /* tkill */
	case 234: /* tgkill */ {
		uint64_t tid = nr == 200 ? a[0] : a[1], sig = nr == 200 ? a[1] : a[2];
		if (tid != LX_PID || (nr == 234 && a[0] != LX_PID))
			res = -ESRCH;
		else if (sig > LX_NSIG)
			res = -EINVAL;
		else
			go = !self_signal(v, sig, e);
		break;
	}
	default:
		if (hc == WASP_HC_EXIT) {
			e->reason = WASP_EXIT_EXITED;
			e->code = (int64_t)(int32_t)a[0];
			go = false;
		} else if (hc < WASP_HC_MAX) {
			/* A wasp hypercall made as a syscall (guest/wasp_linux.h),
			 * under the same allow list as an `out` hypercall. */
			if (!wasp_hc_dispatch(v, hc, a, &res))
				res = -ENOSYS;
			if (hc < 64 && (v->hc_stop & (1ull << hc)) && res >= 0) {
				e->reason = WASP_EXIT_HYPERCALL; /* the pool's stop point */
				e->hypercall.nr = hc;
				memcpy(e->hypercall.args, a, sizeof e->hypercall.args);
				go = false;
			}
		} else {
			res = wasp_lx_dispatch(v, nr, a);
		}
	}
	if (v->trace)
		wasp_trace_syscall(v, nr, a, lx->restart ? -EINTR : res, wasp_now_ns() - t0,
				   wasp_linux_syscall_name(nr));

	if (lx->restart) {
		regs.rcx -= 2; /* back to the `syscall`, with the same number */
		regs.rax = nr;
	} else {
		regs.rax = (uint64_t)res;
	}
	if (lx->stub_cpl == 3) {
		/* What sysretq would do, which cannot run at ring 3. */
		regs.rip = regs.rcx;
		regs.rflags = (regs.r11 & 0x3c7fd7u) | 2;
	}
	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS) {
		v->run->s.regs.regs = regs;
		v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	} else if ((*err = kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &regs)) < 0) {
		return false;
	}
	/* A pause during a restarted call: the run loop sees the kick next. */
	return go;
}

/* ---- state for checkpoints ---------------------------------------------- */

int wasp_virtine_linux_get(const struct wasp_virtine *v, struct wasp_linux_state *out)
{
	const struct wasp_linux *lx = v->lx;
	if (!lx)
		return -ENOENT;
	_Static_assert(sizeof(struct wasp_linux_map) == sizeof(struct wasp_lx_map), "map layout");
	_Static_assert(sizeof out->sig == sizeof lx->sig, "sigaction layout");
	memset(out, 0, sizeof *out);
	out->entry = lx->entry;
	out->image_lo = lx->image_lo;
	out->image_hi = lx->image_hi;
	out->brk_start = lx->brk_start;
	out->brk = lx->brk;
	out->brk_max = lx->brk_max;
	out->mmap_min = lx->mmap_min;
	out->mmap_top = lx->mmap_top;
	out->stack_low = lx->stack_low;
	out->stack_top = lx->stack_top;
	out->maps = (const struct wasp_linux_map *)lx->maps;
	out->nmaps = lx->nmaps;
	memcpy(out->sig, lx->sig, sizeof out->sig);
	out->sigmask = lx->sigmask;
	out->tid_address = lx->tid_address;
	out->robust_list = lx->robust_list;
	out->robust_len = lx->robust_len;
	out->altstack_sp = lx->altstack_sp;
	out->altstack_size = lx->altstack_size;
	out->altstack_flags = lx->altstack_flags;
	out->umask = lx->umask;
	out->stdio_closed = lx->stdio_closed;
	out->sleep_rip = lx->sleep_rip;
	out->sleep_left_ns = lx->sleep_left_ns;
	return 0;
}

static bool page_aligned(uint64_t x)
{
	return x % WASP_PAGE_SIZE == 0;
}

int wasp_virtine_linux_set(struct wasp_virtine *v, const struct wasp_linux_state *in)
{
	uint64_t top = v->mem_size < WASP_MEM_MAX ? v->mem_size : WASP_MEM_MAX;
	/* The layout the loader makes: segments, brk, maps, guard, stack. */
	if (!(LX_USER_BASE <= in->image_lo && in->image_lo < in->image_hi &&
	      in->image_hi <= in->brk_start && in->brk_start <= in->brk &&
	      in->brk <= in->brk_max && in->mmap_min >= in->brk_start &&
	      in->mmap_top + WASP_PAGE_SIZE == in->stack_low && in->stack_low < in->stack_top &&
	      in->stack_top <= top && in->brk <= in->mmap_top && in->brk_max <= in->mmap_top &&
	      page_aligned(in->image_lo) && page_aligned(in->image_hi) &&
	      page_aligned(in->stack_low) && page_aligned(in->stack_top) &&
	      in->entry >= in->image_lo && in->entry < in->image_hi))
		return wasp_fail(-EINVAL, "Linux state: its address-space layout does not fit %zu bytes of memory",
				 v->mem_size);
	if (in->nmaps > 65536)
		return wasp_fail(-EINVAL, "Linux state: %u mappings (at most 65536)", in->nmaps);
	uint64_t prev = 0;
	for (unsigned i = 0; i < in->nmaps; i++) {
		const struct wasp_linux_map *m = &in->maps[i];
		if (!m->len || !page_aligned(m->start) || !page_aligned(m->len) ||
		    m->start < prev || m->start < LX_USER_BASE || m->start > in->mmap_top ||
		    m->len > in->mmap_top - m->start)
			return wasp_fail(-EINVAL, "Linux state: mapping %u (0x%llx, %llu bytes) is out of place",
					 i, (unsigned long long)m->start, (unsigned long long)m->len);
		prev = m->start + m->len;
	}
	if (in->umask > 0777 || in->stdio_closed & ~0x707u)
		return wasp_fail(-EINVAL, "Linux state: bad umask or closed stdio");

	int cpl = probe_stub_cpl();
	if (cpl < 0)
		return cpl;
	struct wasp_lx_map *maps = NULL;
	if (in->nmaps && !(maps = malloc(in->nmaps * sizeof *maps)))
		return wasp_fail(-ENOMEM, "out of memory");
	if (in->nmaps)
		memcpy(maps, in->maps, in->nmaps * sizeof *maps);
	if (!v->lx && !(v->lx = calloc(1, sizeof *v->lx))) {
		free(maps);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	struct wasp_linux *lx = v->lx;
	lx_reset(lx);
	lx->stub_cpl = cpl;
	/* The memory may come from a host of the other kind: the stub's
	 * page is reachable from ring 3 only where it must be (put_stub). */
	put_stub(v->mem, cpl);
	wasp_mark_dirty(v, WASP_GPA_PT0, WASP_PAGE_SIZE);
	wasp_mark_dirty(v, LX_GPA_TSS, WASP_PAGE_SIZE);
	wasp_mark_dirty(v, LX_GPA_STUB, WASP_PAGE_SIZE);
	lx->entry = in->entry;
	lx->image_lo = in->image_lo;
	lx->image_hi = in->image_hi;
	lx->brk_start = in->brk_start;
	lx->brk = in->brk;
	lx->brk_max = in->brk_max;
	lx->mmap_min = in->mmap_min;
	lx->mmap_top = in->mmap_top;
	lx->stack_low = in->stack_low;
	lx->stack_top = in->stack_top;
	lx->maps = maps;
	lx->nmaps = lx->mapcap = in->nmaps;
	memcpy(lx->sig, in->sig, sizeof lx->sig);
	lx->sigmask = in->sigmask;
	lx->tid_address = in->tid_address;
	lx->robust_list = in->robust_list;
	lx->robust_len = in->robust_len;
	lx->altstack_sp = in->altstack_sp;
	lx->altstack_size = in->altstack_size;
	lx->altstack_flags = in->altstack_flags;
	lx->umask = in->umask;
	lx->stdio_closed = in->stdio_closed;
	lx->sleep_rip = in->sleep_rip;
	lx->sleep_left_ns = in->sleep_left_ns;
	return 0;
}

/* ---- symbols ------------------------------------------------------------- */

int wasp_linux_symbol(const char *path, const char *name, uint64_t *addr)
{
	struct elf_info *ei = malloc(sizeof *ei);
	Elf64_Shdr *sh = NULL;
	char *strtab = NULL;
	Elf64_Sym *syms = NULL;
	int r, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!ei) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	if (fd < 0) {
		r = wasp_fail(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((r = elf_read(fd, path, ei)) <= 0) {
		if (r == 0)
			r = wasp_fail(-ENOEXEC, "%s: not an ELF program", path);
		goto out;
	}
	const Elf64_Ehdr *eh = &ei->eh;
	r = wasp_fail(-ENOENT, "%s: no symbol table (was it stripped?)", path);
	if (eh->e_shentsize != sizeof(Elf64_Shdr) || !eh->e_shnum || eh->e_shnum > 4096 ||
	    eh->e_shoff > (uint64_t)ei->size ||
	    (uint64_t)ei->size - eh->e_shoff < (uint64_t)eh->e_shnum * sizeof *sh)
		goto out;
	if (!(sh = malloc(eh->e_shnum * sizeof *sh)) ||
	    pread_all(fd, sh, eh->e_shnum * sizeof *sh, (off_t)eh->e_shoff) < 0)
		goto out;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *s = &sh[i];
		if (s->sh_type != SHT_SYMTAB || s->sh_link >= eh->e_shnum ||
		    s->sh_entsize != sizeof(Elf64_Sym))
			continue;
		const Elf64_Shdr *st = &sh[s->sh_link];
		if (s->sh_offset > (uint64_t)ei->size || s->sh_size > (uint64_t)ei->size - s->sh_offset ||
		    st->sh_offset > (uint64_t)ei->size || st->sh_size > (uint64_t)ei->size - st->sh_offset ||
		    !st->sh_size)
			break;
		free(strtab);
		free(syms);
		strtab = malloc(st->sh_size + 1);
		syms = malloc(s->sh_size ? s->sh_size : 1);
		if (!strtab || !syms || pread_all(fd, strtab, st->sh_size, (off_t)st->sh_offset) < 0 ||
		    pread_all(fd, syms, s->sh_size, (off_t)s->sh_offset) < 0)
			break;
		strtab[st->sh_size] = 0;
		for (size_t k = 0; k < s->sh_size / sizeof *syms; k++) {
			const Elf64_Sym *y = &syms[k];
			if (y->st_name >= st->sh_size || !y->st_value || y->st_shndx == SHN_UNDEF ||
			    strcmp(strtab + y->st_name, name))
				continue;
			*addr = y->st_value + ei->base;
			r = 0;
			goto out;
		}
		r = wasp_fail(-ENOENT, "%s: no symbol '%s'", path, name);
	}
out:
	if (fd >= 0)
		close(fd);
	free(sh);
	free(strtab);
	free(syms);
	free(ei);
	return r;
}
