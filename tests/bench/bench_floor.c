/*
 * bench_floor.c: the raw KVM floor measurement (bench_floor.h), the same
 * VM and loop as wasp-bench-pool's, with errors returned instead of
 * exiting so any benchmark can use it.
 */
#define _GNU_SOURCE
#include "bench_floor.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

const char *const bench_floor_names[BENCH_FLOOR_MODES] = {
	"kvm_out_ring0_real", "kvm_out_ring0_long", "kvm_out_ring3_long"};

const char *const bench_ring3_names[BENCH_RING3_EXITS] = {
	"kvm_out_ring3_long", "kvm_mmio_ring3_long", "kvm_int3_ring3_guestdbg"};

#define RAW_MMIO 0x3f000000u /* mapped by the page tables, not backed: MMIO */

#define RAW_MEM (4u << 20)

/* Where a failure's one line goes. */
struct errbuf {
	char *err;
	size_t errlen;
};

static int fail(struct errbuf *b, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct errbuf *b, int e, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(b->err, b->errlen, "floor: ");
	if (n >= 0 && (size_t)n < b->errlen) {
		va_start(ap, fmt);
		vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -e;
}

static int checked(struct errbuf *b, int fd, unsigned long cmd, void *arg, const char *name)
{
	if (ioctl(fd, cmd, arg) < 0)
		return fail(b, errno, "%s: %s", name, strerror(errno));
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Identity-mapped first GiB (2 MiB pages, user-accessible; page 0 too:
 * PVM triple-faults a ring-3 `out` without it), the code at BENCH_VM_CODE,
 * and the vCPU entering it directly in `mode`. */
static int vm_setup(struct bench_vm *r, struct errbuf *eb, int kvm_fd, enum bench_floor_mode mode,
		    const uint8_t *code, size_t len)
{
	int ret;
	r->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (r->vm < 0)
		return fail(eb, errno, "KVM_CREATE_VM: %s", strerror(errno));
	ioctl(r->vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	r->mem = mmap(NULL, RAW_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r->mem == MAP_FAILED) {
		r->mem = NULL;
		return fail(eb, errno, "mmap: %s", strerror(errno));
	}
	uint64_t *pml4 = (uint64_t *)(r->mem + 0x1000), *pdpt = (uint64_t *)(r->mem + 0x2000),
		 *pd = (uint64_t *)(r->mem + 0x3000);
	pml4[0] = 0x2000 | 7;
	pdpt[0] = 0x3000 | 7;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | 0x87;
	memcpy(r->mem + BENCH_VM_CODE, code, len);
	struct kvm_userspace_memory_region region = {
		.memory_size = RAW_MEM, .userspace_addr = (uint64_t)(uintptr_t)r->mem};
	if ((ret = checked(eb, r->vm, KVM_SET_USER_MEMORY_REGION, &region,
			   "KVM_SET_USER_MEMORY_REGION")) < 0)
		return ret;
	r->vcpu = ioctl(r->vm, KVM_CREATE_VCPU, 0);
	if (r->vcpu < 0)
		return fail(eb, errno, "KVM_CREATE_VCPU: %s", strerror(errno));
	int size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return fail(eb, EINVAL, "KVM_GET_VCPU_MMAP_SIZE: %d", size);
	r->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, r->vcpu, 0);
	if (r->run == MAP_FAILED) {
		r->run = NULL;
		return fail(eb, errno, "mmap kvm_run: %s", strerror(errno));
	}
	r->run_size = (size_t)size;

	int n = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + (size_t)n * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		return fail(eb, ENOMEM, "out of memory");
	cpuid->nent = (uint32_t)n;
	ret = checked(eb, kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
	if (ret == 0)
		ret = checked(eb, r->vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
	free(cpuid);
	if (ret < 0)
		return ret;

	struct kvm_sregs s;
	if ((ret = checked(eb, r->vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS")) < 0)
		return ret;
	struct kvm_regs g = {.rip = BENCH_VM_CODE, .rsp = 0x7000, .rflags = 2};
	if (mode == BENCH_FLOOR_REAL) {
		struct kvm_segment seg = {.limit = 0xffff, .type = 3, .present = 1, .s = 1};
		s.ds = s.es = s.fs = s.gs = s.ss = seg;
		seg.type = 11;
		s.cs = seg;
		s.cr0 = 0x10;
		s.cr3 = s.cr4 = s.efer = 0;
	} else {
		int cpl = mode == BENCH_FLOOR_LONG3 ? 3 : 0;
		s.cr3 = 0x1000;
		s.cr4 = 0x20 | 0x200;
		s.cr0 = 0x80050033;
		s.efer = 0x500;
		struct kvm_segment cs = {.limit = 0xffffffff, .selector = cpl ? 0x1b : 0x08,
					 .type = 11, .present = 1, .dpl = (uint8_t)cpl, .s = 1,
					 .l = 1, .g = 1};
		struct kvm_segment ds = {.limit = 0xffffffff, .selector = cpl ? 0x23 : 0x10,
					 .type = 3, .present = 1, .dpl = (uint8_t)cpl, .db = 1,
					 .s = 1, .g = 1};
		s.cs = cs;
		s.ds = s.es = s.fs = s.gs = s.ss = ds;
		if (cpl)
			g.rflags |= 0x3000; /* IOPL 3: `out` from ring 3 exits, not #GP */
	}
	if ((ret = checked(eb, r->vcpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS")) < 0)
		return ret;
	return checked(eb, r->vcpu, KVM_SET_REGS, &g, "KVM_SET_REGS");
}

void bench_vm_close(struct bench_vm *r)
{
	if (r->run)
		munmap(r->run, r->run_size);
	if (r->vcpu >= 0)
		close(r->vcpu);
	if (r->vm >= 0)
		close(r->vm);
	if (r->mem)
		munmap(r->mem, RAW_MEM);
}

int bench_vm_open(int kvm_fd, enum bench_floor_mode mode, const uint8_t *code, size_t len,
		  struct bench_vm *vm, char *err, size_t errlen)
{
	struct errbuf eb = {err, errlen};
	memset(vm, 0, sizeof *vm);
	vm->vm = vm->vcpu = -1;
	if ((unsigned)mode >= BENCH_FLOOR_MODES || len > RAW_MEM - BENCH_VM_CODE)
		return fail(&eb, EINVAL, "bad mode or code size");
	int ret = vm_setup(vm, &eb, kvm_fd, mode, code, len);
	if (ret < 0)
		bench_vm_close(vm);
	return ret;
}

/* One KVM_RUN, retried on EINTR. */
static int run_once(struct bench_vm *r, struct errbuf *eb)
{
	while (ioctl(r->vcpu, KVM_RUN, 0) < 0)
		if (errno != EINTR)
			return fail(eb, errno, "KVM_RUN: %s", strerror(errno));
	return 0;
}

int bench_floor_run(int kvm_fd, enum bench_floor_mode mode, int warmup, int iters,
		    uint64_t *ns, char *err, size_t errlen)
{
	static const uint8_t loop[] = {0xe6, 0x10, 0xeb, 0xfc}; /* out 0x10, al; jmp $-2 */
	struct errbuf eb = {err, errlen};
	struct bench_vm r;
	if (warmup < 0 || iters < 0)
		return fail(&eb, EINVAL, "bad count");
	int ret = bench_vm_open(kvm_fd, mode, loop, sizeof loop, &r, err, errlen);
	if (ret < 0)
		return ret;
	for (int i = -warmup; ret == 0 && i < iters; i++) {
		uint64_t t0 = now_ns();
		ret = run_once(&r, &eb);
		uint64_t t1 = now_ns();
		if (ret < 0)
			break;
		if (r.run->exit_reason != KVM_EXIT_IO || r.run->io.port != 0x10 ||
		    r.run->io.direction != KVM_EXIT_IO_OUT)
			ret = fail(&eb, EPROTO, "%s: exit %u, expected out to 0x10",
				   bench_floor_names[mode], r.run->exit_reason);
		else if (i >= 0)
			ns[i] = t1 - t0;
	}
	bench_vm_close(&r);
	return ret;
}

/* Is the exit just taken the one the ring-3 loop of `kind` makes? */
static bool ring3_exit_ok(const struct kvm_run *run, enum bench_ring3_exit kind)
{
	switch (kind) {
	case BENCH_RING3_OUT:
		return run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
		       run->io.port == 0x10;
	case BENCH_RING3_MMIO:
		return run->exit_reason == KVM_EXIT_MMIO && run->mmio.is_write &&
		       run->mmio.phys_addr == RAW_MMIO;
	case BENCH_RING3_INT3:
		return run->exit_reason == KVM_EXIT_DEBUG && run->debug.arch.exception == 3;
	default:
		return false;
	}
}

int bench_ring3_run(int kvm_fd, enum bench_ring3_exit kind, int warmup, int iters, uint64_t *ns,
		    char *err, size_t errlen)
{
	/* l: out 0x10, al; jmp l */
	static const uint8_t out[] = {0xe6, 0x10, 0xeb, 0xfc};
	/* mov rax, RAW_MMIO; l: mov [rax], eax; jmp l */
	static const uint8_t mmio[] = {0x48, 0xc7, 0xc0, 0x00, 0x00, 0x00, 0x3f,
				       0x89, 0x00, 0xeb, 0xfc};
	/* l: int3; jmp l (the host moves rip to the jmp after each exit) */
	static const uint8_t int3[] = {0xcc, 0xeb, 0xfd};
	static const struct {
		const uint8_t *code;
		size_t len;
	} loops[BENCH_RING3_EXITS] = {
		[BENCH_RING3_OUT] = {out, sizeof out},
		[BENCH_RING3_MMIO] = {mmio, sizeof mmio},
		[BENCH_RING3_INT3] = {int3, sizeof int3},
	};
	struct errbuf eb = {err, errlen};
	struct bench_vm r;
	if (warmup < 0 || iters < 0 || (unsigned)kind >= BENCH_RING3_EXITS)
		return fail(&eb, EINVAL, "bad count or exit kind");
	const char *name = bench_ring3_names[kind];
	if (kind == BENCH_RING3_INT3) {
		int sync = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
		if (sync <= 0 || !(sync & KVM_SYNC_X86_REGS))
			return fail(&eb, EOPNOTSUPP, "%s: no KVM_CAP_SYNC_REGS to move rip with",
				    name);
	}
	int ret = bench_vm_open(kvm_fd, BENCH_FLOOR_LONG3, loops[kind].code, loops[kind].len, &r,
				err, errlen);
	if (ret < 0)
		return ret;
	if (kind == BENCH_RING3_INT3) {
		/* #BP exits to the VMM (not the guest's absent IDT). */
		struct kvm_guest_debug dbg = {.control = KVM_GUESTDBG_ENABLE |
							  KVM_GUESTDBG_USE_SW_BP};
		if ((ret = checked(&eb, r.vcpu, KVM_SET_GUEST_DEBUG, &dbg,
				   "KVM_SET_GUEST_DEBUG")) < 0) {
			bench_vm_close(&r);
			return ret == -EINVAL ? -EOPNOTSUPP : ret;
		}
		r.run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	}
	for (int i = -warmup; ret == 0 && i < iters; i++) {
		uint64_t t0 = now_ns();
		if (kind == BENCH_RING3_INT3 && i > -warmup) {
			/* Past the int3, whether KVM left rip on it or after it. */
			r.run->s.regs.regs.rip = BENCH_VM_CODE + 1;
			r.run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
		}
		ret = run_once(&r, &eb);
		uint64_t t1 = now_ns();
		if (ret < 0)
			break;
		if (!ring3_exit_ok(r.run, kind)) {
			/* A KVM that turns the first #BP into something else has
			 * no such exit; any other surprise is a failure. */
			bool lacks = kind == BENCH_RING3_INT3 && i == -warmup;
			ret = fail(&eb, lacks ? EOPNOTSUPP : EPROTO,
				   "%s: KVM exit %u%s", name, r.run->exit_reason,
				   lacks ? ", not KVM_EXIT_DEBUG: this KVM does not report #BP to the VMM"
					 : ", not the loop's exit");
		} else if (i >= 0) {
			ns[i] = t1 - t0;
		}
	}
	bench_vm_close(&r);
	return ret;
}
