/*
 * ckpt_vcpu.c: capturing and re-applying the vCPU.
 *
 * The order is written down once, here, and both directions follow it:
 *   capture: complete pending I/O, regs, sregs, xsave (or fpu), xcrs, MSRs,
 *            events, debug registers, mp_state, CPUID;
 *   apply:   CPUID, sregs, MSRs, xcrs, xsave (or fpu), events, mp_state,
 *            debug registers, regs (last, as the KVM selftests do, so
 *            nothing set later can disturb rip/rflags).
 * After applying, everything is read back: registers and control state
 * must match exactly or the restore fails; MSRs a host accepts but does
 * not keep (the TSC on PVM) are reported, not hidden.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

#define MSR_IA32_TSC 0x10

static int vioctl(struct wasp_virtine *v, unsigned long cmd, const char *name, void *arg)
{
	return wasp_ckpt_ioctl(wasp_virtine_vcpu_fd(v), cmd, name, arg);
}
#define VIOCTL(v, cmd, arg) vioctl(v, cmd, #cmd, arg)

/* MSRs this host lets us read, found once per process: KVM_GET_MSRS stops
 * at the first index it refuses, so the list is probed entry by entry. */
static uint32_t *readable;
static uint32_t nreadable;
static pthread_once_t readable_once = PTHREAD_ONCE_INIT;
static int readable_err;
static struct wasp_virtine *probe_vcpu;

static void probe_readable(void)
{
	const uint32_t *idx;
	uint32_t n;
	readable_err = wasp_host_msr_list(&idx, &n);
	if (readable_err < 0)
		return;
	readable = calloc(n ? n : 1, sizeof *readable);
	if (!readable) {
		readable_err = -ENOMEM;
		return;
	}
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} one;
	for (uint32_t i = 0; i < n; i++) {
		/* KVM's paravirtual MSRs (kvmclock, async PF, ...) serve
		 * features wasp hides from guests (docs/cpuid.md): not state. */
		if ((idx[i] & 0xffffff00u) == 0x4b564d00u || idx[i] == 0x11 || idx[i] == 0x12)
			continue;
		memset(&one, 0, sizeof one);
		one.hdr.nmsrs = 1;
		one.e.index = idx[i];
		if (ioctl(wasp_virtine_vcpu_fd(probe_vcpu), KVM_GET_MSRS, &one) == 1)
			readable[nreadable++] = idx[i];
	}
}

static int msr_list(struct wasp_virtine *v, const uint32_t **idx, uint32_t *n)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	probe_vcpu = v;
	pthread_once(&readable_once, probe_readable);
	pthread_mutex_unlock(&lock);
	if (readable_err < 0)
		return readable_err;
	*idx = readable;
	*n = nreadable;
	return 0;
}

/* Whether this host's KVM lets a restore set the guest TSC, probed once
 * per process: -1 not yet known, 0 no, 1 yes. */
static _Atomic int tsc_settable = -1;

/* A quick restore cannot tell an ignored TSC write from a TSC that merely
 * moved on, so write a value far off, read it back, then put the old one
 * again. */
static void probe_tsc(struct wasp_virtine *v)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} one;
	int fd = wasp_virtine_vcpu_fd(v);
	memset(&one, 0, sizeof one);
	one.hdr.nmsrs = 1;
	one.e.index = MSR_IA32_TSC;
	if (ioctl(fd, KVM_GET_MSRS, &one) != 1)
		return;
	uint64_t was = one.e.data;
	one.e.data = was + (1ull << 50);
	bool took = ioctl(fd, KVM_SET_MSRS, &one) == 1 && ioctl(fd, KVM_GET_MSRS, &one) == 1 &&
		    one.e.data - was >= (1ull << 49);
	one.e.data = was;
	ioctl(fd, KVM_SET_MSRS, &one);
	tsc_settable = took;
}

int wasp_vcpu_prepare(struct wasp_virtine *v)
{
	const uint32_t *idx;
	uint32_t n;
	int r = msr_list(v, &idx, &n);
	if (r == 0 && tsc_settable < 0)
		probe_tsc(v);
	return r;
}

int wasp_vcpu_prepare_host(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int r = 0;
	pthread_mutex_lock(&lock);
	if (tsc_settable < 0) {
		/* A vCPU of its own: a running guest's vCPU answers no ioctl
		 * before its next exit, and its TSC is not ours to probe. */
		struct wasp_config cfg;
		struct wasp_virtine *scratch;
		wasp_config_init(&cfg);
		cfg.mem_size = 64u << 10;
		if ((r = wasp_virtine_create(&cfg, &scratch)) == 0) {
			r = wasp_vcpu_prepare(scratch);
			wasp_virtine_destroy(scratch);
		}
	}
	pthread_mutex_unlock(&lock);
	return r;
}

static size_t xsave_size(void)
{
	const void *unused;
	/* wasp_host_cpuid opens KVM; KVM_CAP_XSAVE2 says how big XSAVE is. */
	if (wasp_host_cpuid(&unused) < 0)
		return 0;
	int r = ioctl(wasp_kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (r > (int)sizeof(struct kvm_xsave))
		return (size_t)r;
	r = ioctl(wasp_kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE);
	return r > 0 ? sizeof(struct kvm_xsave) : 0;
}

void wasp_vcpu_state_free(struct wasp_vcpu_state *s)
{
	free(s->xsave);
	free(s->msrs);
	free(s->cpuid);
	memset(s, 0, sizeof *s);
}

int wasp_vcpu_capture(struct wasp_virtine *v, struct wasp_vcpu_state *s)
{
	int r;
	memset(s, 0, sizeof *s);

	r = wasp_virtine_complete_io(v);
	if (r < 0)
		return r;
	if ((r = VIOCTL(v, KVM_GET_REGS, &s->regs)) < 0 ||
	    (r = VIOCTL(v, KVM_GET_SREGS, &s->sregs)) < 0)
		goto fail;

	s->xsave_size = xsave_size();
	if (s->xsave_size) {
		s->xsave = calloc(1, s->xsave_size);
		if (!s->xsave) {
			r = wasp_fail(-ENOMEM, "out of memory for XSAVE state");
			goto fail;
		}
		r = s->xsave_size > sizeof(struct kvm_xsave)
			    ? VIOCTL(v, KVM_GET_XSAVE2, s->xsave)
			    : VIOCTL(v, KVM_GET_XSAVE, s->xsave);
		if (r < 0)
			goto fail;
	} else if ((r = VIOCTL(v, KVM_GET_FPU, &s->fpu)) < 0) {
		goto fail;
	} else {
		s->have_fpu = true;
	}
	s->have_xcrs = ioctl(wasp_kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	if (s->have_xcrs && (r = VIOCTL(v, KVM_GET_XCRS, &s->xcrs)) < 0)
		goto fail;

	const uint32_t *idx;
	uint32_t n;
	if ((r = msr_list(v, &idx, &n)) < 0)
		goto fail;
	s->msrs = calloc(1, sizeof *s->msrs + n * sizeof(struct kvm_msr_entry));
	if (!s->msrs) {
		r = wasp_fail(-ENOMEM, "out of memory for MSRs");
		goto fail;
	}
	s->msrs->nmsrs = n;
	for (uint32_t i = 0; i < n; i++)
		s->msrs->entries[i].index = idx[i];
	r = ioctl(wasp_virtine_vcpu_fd(v), KVM_GET_MSRS, s->msrs);
	if (r != (int)n) {
		r = wasp_fail(r < 0 ? -errno : -EIO, "KVM_GET_MSRS read %d of %u MSRs", r, n);
		goto fail;
	}

	if ((r = VIOCTL(v, KVM_GET_VCPU_EVENTS, &s->events)) < 0 ||
	    (r = VIOCTL(v, KVM_GET_DEBUGREGS, &s->debugregs)) < 0 ||
	    (r = VIOCTL(v, KVM_GET_MP_STATE, &s->mp_state)) < 0)
		goto fail;
	/* A traced virtine reports the triple-fault state (see
	 * wasp_virtine_triple_fault_events); kept only when a fault is pending,
	 * so that other checkpoints restore where the kernel lacks it. */
	if ((s->events.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) && !s->events.triple_fault.pending)
		s->events.flags &= ~(uint32_t)KVM_VCPUEVENT_VALID_TRIPLE_FAULT;

	/* Start from the size that fitted last time: one ioctl, not two. */
	static _Atomic int cpuid_nent = 64;
	for (int nent = cpuid_nent; nent <= 4096; nent *= 2) {
		s->cpuid = calloc(1, sizeof *s->cpuid + nent * sizeof(struct kvm_cpuid_entry2));
		if (!s->cpuid) {
			r = wasp_fail(-ENOMEM, "out of memory for CPUID");
			goto fail;
		}
		s->cpuid->nent = (uint32_t)nent;
		r = ioctl(wasp_virtine_vcpu_fd(v), KVM_GET_CPUID2, s->cpuid);
		if (r == 0) {
			cpuid_nent = nent;
			break;
		}
		free(s->cpuid);
		s->cpuid = NULL;
		if (errno != E2BIG) {
			r = wasp_fail(-errno, "KVM_GET_CPUID2: %s", strerror(errno));
			goto fail;
		}
	}
	if (!s->cpuid) {
		r = wasp_fail(-E2BIG, "KVM_GET_CPUID2: too many entries");
		goto fail;
	}
	s->mode = wasp_virtine_mode(v);
	return 0;
fail:
	wasp_vcpu_state_free(s);
	return r;
}

static void note(char *buf, size_t cap, const char *fmt, uint32_t a)
{
	size_t len = strlen(buf);
	if (len + 1 >= cap)
		return;
	snprintf(buf + len, cap - len, "%s", len ? "," : "");
	len = strlen(buf);
	snprintf(buf + len, cap - len, fmt, a);
}

static bool same_segment(const struct kvm_segment *a, const struct kvm_segment *b)
{
	return a->base == b->base && a->limit == b->limit && a->selector == b->selector &&
	       a->type == b->type && a->present == b->present && a->dpl == b->dpl &&
	       a->l == b->l && a->db == b->db && a->s == b->s && a->g == b->g;
}

/* Whether the vCPU's CPUID is `want`, entry for entry. */
static bool cpuid_is(struct wasp_virtine *v, const struct kvm_cpuid2 *want)
{
	struct kvm_cpuid2 *have = calloc(1, sizeof *have + want->nent * sizeof(struct kvm_cpuid_entry2));
	if (!have)
		return false;
	have->nent = want->nent;
	bool same = ioctl(wasp_virtine_vcpu_fd(v), KVM_GET_CPUID2, have) == 0 &&
		    have->nent == want->nent &&
		    !memcmp(have->entries, want->entries, want->nent * sizeof(struct kvm_cpuid_entry2));
	free(have);
	return same;
}

int wasp_vcpu_apply(struct wasp_virtine *v, const struct wasp_vcpu_state *s, char *unrestored,
		    size_t cap)
{
	int r;
	unrestored[0] = 0;

	/* KVM_SET_CPUID2 is among the dearest calls here (~0.2 ms on PVM):
	 * skip it when the vCPU already has exactly this CPUID, as a fresh
	 * one on a host like the checkpoint's does. */
	if (!cpuid_is(v, s->cpuid)) {
		if ((r = VIOCTL(v, KVM_SET_CPUID2, s->cpuid)) < 0)
			return r;
		/* PVM reports (and runs ring 3 against) the host's CPUID
		 * whatever was set (docs/design.md): say so. */
		if (!cpuid_is(v, s->cpuid))
			note(unrestored, cap, "cpuid", 0);
	}
	if ((r = VIOCTL(v, KVM_SET_SREGS, (void *)&s->sregs)) < 0)
		return r;

	/* MSRs in as few calls as KVM allows: KVM_SET_MSRS stops at the first
	 * index it refuses (and says how many it set), so a refused one is
	 * named and the rest go on in the next call. */
	uint32_t nm = s->msrs->nmsrs;
	struct kvm_msrs *batch = calloc(1, sizeof *batch + nm * sizeof(struct kvm_msr_entry));
	if (!batch)
		return wasp_fail(-ENOMEM, "out of memory");
	for (uint32_t i = 0; i < nm;) {
		batch->nmsrs = nm - i;
		memcpy(batch->entries, s->msrs->entries + i, (nm - i) * sizeof *batch->entries);
		int set = ioctl(wasp_virtine_vcpu_fd(v), KVM_SET_MSRS, batch);
		if (set < 0)
			set = 0;
		i += (uint32_t)set;
		if (i < nm)
			note(unrestored, cap, "msr 0x%x (refused)", s->msrs->entries[i++].index);
	}
	free(batch);

	if (s->have_xcrs && (r = VIOCTL(v, KVM_SET_XCRS, (void *)&s->xcrs)) < 0)
		return r;
	if (s->xsave) {
		if (s->xsave_size != xsave_size())
			return wasp_fail(-EINVAL,
					 "XSAVE area of %zu bytes does not fit this host's %zu",
					 s->xsave_size, xsave_size());
		r = VIOCTL(v, KVM_SET_XSAVE, s->xsave); /* SET takes the larger area too */
		if (r < 0)
			return r;
	} else if (s->have_fpu && (r = VIOCTL(v, KVM_SET_FPU, (void *)&s->fpu)) < 0) {
		return r;
	}
	struct kvm_vcpu_events events = s->events;
	if ((events.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) &&
	    wasp_virtine_triple_fault_events(v) < 0) {
		events.flags &= ~(uint32_t)KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
		note(unrestored, cap, "triple fault", 0);
	}
	if ((r = VIOCTL(v, KVM_SET_VCPU_EVENTS, &events)) < 0 ||
	    (r = VIOCTL(v, KVM_SET_MP_STATE, (void *)&s->mp_state)) < 0 ||
	    (r = VIOCTL(v, KVM_SET_DEBUGREGS, (void *)&s->debugregs)) < 0 ||
	    (r = VIOCTL(v, KVM_SET_REGS, (void *)&s->regs)) < 0)
		return r;
	wasp_virtine_set_mode(v, s->mode);

	/* Read back: what the guest depends on must be exactly as captured. */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	if ((r = VIOCTL(v, KVM_GET_REGS, &regs)) < 0 || (r = VIOCTL(v, KVM_GET_SREGS, &sregs)) < 0)
		return r;
	if (memcmp(&regs, &s->regs, sizeof regs))
		return wasp_fail(-EIO, "general registers did not round-trip through KVM");
	if (sregs.cr0 != s->sregs.cr0 || sregs.cr3 != s->sregs.cr3 || sregs.cr4 != s->sregs.cr4 ||
	    sregs.efer != s->sregs.efer || !same_segment(&sregs.cs, &s->sregs.cs) ||
	    !same_segment(&sregs.ss, &s->sregs.ss) || !same_segment(&sregs.tr, &s->sregs.tr) ||
	    sregs.gdt.base != s->sregs.gdt.base || sregs.idt.base != s->sregs.idt.base)
		return wasp_fail(-EIO, "control registers or segments did not round-trip through KVM");

	struct kvm_msrs *back = calloc(1, sizeof *back + s->msrs->nmsrs * sizeof(struct kvm_msr_entry));
	if (!back)
		return wasp_fail(-ENOMEM, "out of memory");
	back->nmsrs = s->msrs->nmsrs;
	for (uint32_t i = 0; i < back->nmsrs; i++)
		back->entries[i].index = s->msrs->entries[i].index;
	if (ioctl(wasp_virtine_vcpu_fd(v), KVM_GET_MSRS, back) == (int)back->nmsrs) {
		for (uint32_t i = 0; i < back->nmsrs; i++) {
			uint64_t want = s->msrs->entries[i].data, got = back->entries[i].data;
			if (got == want)
				continue;
			if (back->entries[i].index == MSR_IA32_TSC)
				continue; /* it moves on by itself: probed below */
			note(unrestored, cap, "msr 0x%x", back->entries[i].index);
		}
	}
	free(back);

	/* Does this host let us set the TSC at all? (Probed once per process,
	 * best before the stream's end: wasp_vcpu_prepare.) */
	bool has_tsc = false;
	for (uint32_t i = 0; i < s->msrs->nmsrs; i++)
		has_tsc |= s->msrs->entries[i].index == MSR_IA32_TSC;
	if (has_tsc) {
		if (tsc_settable < 0) {
			probe_tsc(v);
			/* the probe put the TSC back as it found it: as captured */
		}
		if (tsc_settable != 1)
			note(unrestored, cap, "tsc", 0);
	}
	return 0;
}
