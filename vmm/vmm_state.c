/*
 * vmm_state.c: a virtine's state as one object (struct wasp_vstate,
 * vmm_parts.h), saved and loaded here and nowhere else. ckpt/ encodes and
 * decodes it; the pool keeps one as its pristine state and loads the parts
 * a call can change on every reset.
 *
 * The order is written down once, here, and every caller follows it
 * whatever subset of parts it asks for (as the KVM selftests'
 * vcpu_save_state/vcpu_load_state do):
 *
 *   save: complete pending I/O (an `out` the vCPU is still inside is
 *         finished, so rip stands after it and the pages its handler
 *         wrote are written), regs, sregs, XSAVE (or FPU), XCRs, MSRs,
 *         events, debug registers, mp_state, CPUID; then the host side:
 *         mode, marks and pending hypercall, console count, sandbox
 *         growth, open files, argument and result, Linux personality.
 *
 *   load: the host side first: Linux personality (open files resolve in
 *         the program's root), open files (every open one closed first),
 *         sandbox growth, argument and result, marks and pending
 *         hypercall, console count. Then the vCPU: CPUID, sregs (EFER and
 *         CR4 decide which MSRs and XSAVE features are valid), MSRs, XCRs
 *         (XCR0 decides which XSAVE components KVM takes), XSAVE (or FPU),
 *         events (an exception is injected into a vCPU already set up),
 *         mp_state, debug registers, regs (last, so nothing set later can
 *         disturb rip/rflags); the entry mode last of all.
 *
 * With WASP_VSTATE_VERIFY the load reads back: registers and control state
 * must match exactly or the load fails; MSRs a host accepts but does not
 * keep (the TSC on PVM) are reported, not hidden.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm_internal.h"

#define MSR_IA32_TSC 0x10

/* ---- what this host's KVM offers, probed once per process ------------- */

/* Asked of KVM once: every load of the FPU part checks the size against
 * it, and a pool's reset should not pay an ioctl for that. */
size_t wasp_vstate_xsave_size(void)
{
	static _Atomic long known = -1;
	long size = known;
	if (size >= 0)
		return (size_t)size;
	const struct wasp_kvm *k;
	if (wasp_kvm_get(&k) < 0)
		return 0;
	int r = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (r > (int)sizeof(struct kvm_xsave)) {
		size = r;
	} else {
		r = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE);
		size = r > 0 ? (long)sizeof(struct kvm_xsave) : 0;
	}
	known = size;
	return (size_t)size;
}

/* MSRs this host lets us read: KVM_GET_MSRS stops at the first index it
 * refuses, so the list is probed entry by entry, once. */
static uint32_t *readable;
static uint32_t nreadable;
static pthread_once_t readable_once = PTHREAD_ONCE_INIT;
static int readable_err;
static int probe_fd;

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
		if (ioctl(probe_fd, KVM_GET_MSRS, &one) == 1)
			readable[nreadable++] = idx[i];
	}
}

static int msr_list(struct wasp_virtine *v, const uint32_t **idx, uint32_t *n)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	probe_fd = v->vcpu_fd;
	pthread_once(&readable_once, probe_readable);
	pthread_mutex_unlock(&lock);
	if (readable_err < 0)
		return readable_err;
	*idx = readable;
	*n = nreadable;
	return 0;
}

/* Whether this host's KVM lets a load set the guest TSC: -1 not yet
 * known, 0 no, 1 yes. */
static _Atomic int tsc_settable = -1;

/* A quick load cannot tell an ignored TSC write from a TSC that merely
 * moved on, so write a value far off, read it back, then put the old one
 * again. */
static void probe_tsc(struct wasp_virtine *v)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} one;
	memset(&one, 0, sizeof one);
	one.hdr.nmsrs = 1;
	one.e.index = MSR_IA32_TSC;
	if (ioctl(v->vcpu_fd, KVM_GET_MSRS, &one) != 1)
		return;
	uint64_t was = one.e.data;
	one.e.data = was + (1ull << 50);
	bool took = ioctl(v->vcpu_fd, KVM_SET_MSRS, &one) == 1 &&
		    ioctl(v->vcpu_fd, KVM_GET_MSRS, &one) == 1 && one.e.data - was >= (1ull << 49);
	one.e.data = was;
	ioctl(v->vcpu_fd, KVM_SET_MSRS, &one);
	tsc_settable = took;
}

int wasp_vstate_prepare(struct wasp_virtine *v)
{
	const uint32_t *idx;
	uint32_t n;
	int r = msr_list(v, &idx, &n);
	if (r == 0 && tsc_settable < 0)
		probe_tsc(v);
	return r;
}

int wasp_vstate_prepare_host(void)
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
			r = wasp_vstate_prepare(scratch);
			wasp_virtine_destroy(scratch);
		}
	}
	pthread_mutex_unlock(&lock);
	return r;
}

/* ---- save ------------------------------------------------------------- */

void wasp_vstate_free(struct wasp_vstate *st)
{
	free(st->xsave);
	free(st->msrs);
	free(st->cpuid);
	for (unsigned i = 0; i < st->nfiles; i++)
		free(st->files[i].path);
	free(st->arg);
	free(st->ret);
	free((void *)st->linux_state.maps);
	memset(st, 0, sizeof *st);
}

void wasp_vstate_keep_msrs(struct wasp_vstate *st, const uint32_t *indices, size_t n)
{
	if (!st->msrs)
		return;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < st->msrs->nmsrs; i++) {
		for (size_t j = 0; j < n; j++) {
			if (st->msrs->entries[i].index == indices[j]) {
				st->msrs->entries[kept++] = st->msrs->entries[i];
				break;
			}
		}
	}
	st->msrs->nmsrs = kept;
}

static int get_cpuid(struct wasp_virtine *v, struct wasp_vstate *st)
{
	/* Start from the size that fitted last time: one ioctl, not two. */
	static _Atomic int cpuid_nent = 64;
	for (int nent = cpuid_nent; nent <= 4096; nent *= 2) {
		st->cpuid = calloc(1, sizeof *st->cpuid + nent * sizeof(struct kvm_cpuid_entry2));
		if (!st->cpuid)
			return wasp_fail(-ENOMEM, "out of memory for CPUID");
		st->cpuid->nent = (uint32_t)nent;
		if (ioctl(v->vcpu_fd, KVM_GET_CPUID2, st->cpuid) == 0) {
			cpuid_nent = nent;
			return 0;
		}
		free(st->cpuid);
		st->cpuid = NULL;
		if (errno != E2BIG)
			return wasp_fail(-errno, "KVM_GET_CPUID2: %s", strerror(errno));
	}
	return wasp_fail(-E2BIG, "KVM_GET_CPUID2: too many entries");
}

static int save_vcpu(struct wasp_virtine *v, unsigned parts, struct wasp_vstate *st)
{
	int r;
	if ((r = wasp_virtine_complete_io(v)) < 0)
		return r;
	if ((parts & WASP_VSTATE_REGS) && (r = kvm_ioctl(v->vcpu_fd, KVM_GET_REGS, &st->regs)) < 0)
		return r;
	if ((parts & WASP_VSTATE_SREGS) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_GET_SREGS, &st->sregs)) < 0)
		return r;
	if (parts & WASP_VSTATE_FPU) {
		st->xsave_size = wasp_vstate_xsave_size();
		if (st->xsave_size) {
			if (!(st->xsave = calloc(1, st->xsave_size)))
				return wasp_fail(-ENOMEM, "out of memory for XSAVE state");
			r = st->xsave_size > sizeof(struct kvm_xsave)
				    ? kvm_ioctl(v->vcpu_fd, KVM_GET_XSAVE2, (struct kvm_xsave *)st->xsave)
				    : kvm_ioctl(v->vcpu_fd, KVM_GET_XSAVE, (struct kvm_xsave *)st->xsave);
			if (r < 0)
				return r;
		} else {
			if ((r = kvm_ioctl(v->vcpu_fd, KVM_GET_FPU, &st->fpu)) < 0)
				return r;
			st->have_fpu = true;
		}
	}
	if (parts & WASP_VSTATE_XCRS) {
		const struct wasp_kvm *k;
		if ((r = wasp_kvm_get(&k)) < 0)
			return r;
		st->have_xcrs = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
		if (st->have_xcrs && (r = kvm_ioctl(v->vcpu_fd, KVM_GET_XCRS, &st->xcrs)) < 0)
			return r;
	}
	if (parts & WASP_VSTATE_MSRS) {
		const uint32_t *idx;
		uint32_t n;
		if ((r = msr_list(v, &idx, &n)) < 0)
			return r;
		st->msrs = calloc(1, sizeof *st->msrs + n * sizeof(struct kvm_msr_entry));
		if (!st->msrs)
			return wasp_fail(-ENOMEM, "out of memory for MSRs");
		st->msrs->nmsrs = n;
		for (uint32_t i = 0; i < n; i++)
			st->msrs->entries[i].index = idx[i];
		r = ioctl(v->vcpu_fd, KVM_GET_MSRS, st->msrs);
		if (r != (int)n)
			return wasp_fail(r < 0 ? -errno : -EIO, "KVM_GET_MSRS read %d of %u MSRs", r, n);
	}
	if (parts & WASP_VSTATE_EVENTS) {
		if ((r = kvm_ioctl(v->vcpu_fd, KVM_GET_VCPU_EVENTS, &st->events)) < 0)
			return r;
		/* A traced virtine reports the triple-fault state (see
		 * wasp_virtine_triple_fault_events); kept only when a fault is
		 * pending, so that other states load where the kernel lacks it. */
		if ((st->events.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) &&
		    !st->events.triple_fault.pending)
			st->events.flags &= ~(uint32_t)KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
	}
	if ((parts & WASP_VSTATE_DEBUGREGS) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_GET_DEBUGREGS, &st->debugregs)) < 0)
		return r;
	if ((parts & WASP_VSTATE_MP_STATE) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_GET_MP_STATE, &st->mp_state)) < 0)
		return r;
	if ((parts & WASP_VSTATE_CPUID) && (r = get_cpuid(v, st)) < 0)
		return r;
	return 0;
}

static void *copy_of(const void *p, size_t len)
{
	void *c = malloc(len ? len : 1);
	if (c && len)
		memcpy(c, p, len);
	return c;
}

static int save_host(struct wasp_virtine *v, unsigned parts, struct wasp_vstate *st)
{
	if (parts & WASP_VSTATE_MODE)
		st->mode = v->mode;
	if (parts & WASP_VSTATE_MARKS) {
		st->snapshot_marks = v->snapshot_marks;
		st->hypercall_pending = v->hc_pending;
	}
	if (parts & WASP_VSTATE_CONSOLE)
		st->console_bytes = v->console_bytes;
	if (parts & WASP_VSTATE_DIR_GROWN)
		st->dir_grown = v->dir_grown;
	if (parts & WASP_VSTATE_FILES) {
		_Static_assert(WASP_VSTATE_MAX_FILES == WASP_MAX_FILES, "one file table size");
		for (unsigned i = 0; i < WASP_MAX_FILES; i++) {
			struct wasp_vstate_file *f = &st->files[st->nfiles];
			const char *path;
			if (wasp_virtine_file_at(v, i, &f->guest_fd, &path, &f->flags, &f->offset) != 1)
				continue;
			if (!(f->path = strdup(path)))
				return wasp_fail(-ENOMEM, "out of memory");
			st->nfiles++;
		}
	}
	if (parts & WASP_VSTATE_ARGS) {
		if (v->arg && !(st->arg = copy_of(v->arg, v->arg_len)))
			return wasp_fail(-ENOMEM, "out of memory for the argument");
		st->arg_len = v->arg ? v->arg_len : 0;
		if (v->ret && !(st->ret = copy_of(v->ret, v->ret_len)))
			return wasp_fail(-ENOMEM, "out of memory for the result");
		st->ret_len = v->ret ? v->ret_len : 0;
	}
	if ((parts & WASP_VSTATE_LINUX) && wasp_virtine_linux_get(v, &st->linux_state) == 0) {
		/* The personality's maps are the virtine's: keep a copy. */
		const struct wasp_linux_map *maps = st->linux_state.maps;
		st->linux_state.maps = NULL;
		if (st->linux_state.nmaps &&
		    !(st->linux_state.maps = copy_of(maps, st->linux_state.nmaps * sizeof *maps)))
			return wasp_fail(-ENOMEM, "out of memory for %u mappings",
					 st->linux_state.nmaps);
		st->has_linux = true;
	}
	return 0;
}

int wasp_vstate_save(struct wasp_virtine *v, unsigned parts, struct wasp_vstate *st)
{
	int r = 0;
	memset(st, 0, sizeof *st);
	if ((parts & WASP_VSTATE_VCPU) && (r = save_vcpu(v, parts, st)) < 0)
		goto fail;
	if ((r = save_host(v, parts, st)) < 0)
		goto fail;
	return 0;
fail:
	wasp_vstate_free(st);
	return r;
}

/* ---- load ------------------------------------------------------------- */

static void note(char *buf, size_t cap, const char *fmt, uint32_t a)
{
	if (!buf || !cap)
		return;
	size_t len = strlen(buf);
	if (len + 1 >= cap)
		return;
	snprintf(buf + len, cap - len, "%s", len ? "," : "");
	len = strlen(buf);
	snprintf(buf + len, cap - len, fmt, a);
}

static int load_host(struct wasp_virtine *v, const struct wasp_vstate *st, unsigned parts)
{
	int r;
	if ((parts & WASP_VSTATE_LINUX) && st->has_linux &&
	    (r = wasp_virtine_linux_set(v, &st->linux_state)) < 0)
		return r;
	if (parts & WASP_VSTATE_FILES) {
		/* Close what is open, reopen what was (offsets included). */
		for (unsigned i = 0; i < WASP_MAX_FILES; i++) {
			struct wasp_file *f = &v->files[i];
			if (f->host_fd < 0)
				continue;
			close(f->host_fd);
			free(f->path);
			*f = (struct wasp_file){.host_fd = -1, .written = -1};
		}
		for (unsigned i = 0; i < st->nfiles; i++) {
			const struct wasp_vstate_file *f = &st->files[i];
			if ((r = wasp_virtine_file_restore(v, f->guest_fd, f->path, f->flags,
							   f->offset)) < 0)
				return r;
		}
	}
	if (parts & WASP_VSTATE_DIR_GROWN)
		v->dir_grown = st->dir_grown;
	if (parts & WASP_VSTATE_ARGS) {
		free(v->arg);
		v->arg = NULL;
		v->arg_len = 0;
		free(v->ret);
		v->ret = NULL;
		v->ret_len = 0;
		if (st->arg && (r = wasp_virtine_set_arg(v, st->arg, st->arg_len)) < 0)
			return r;
		if (st->ret && (r = wasp_virtine_set_ret(v, st->ret, st->ret_len)) < 0)
			return r;
	}
	if (parts & WASP_VSTATE_MARKS) {
		v->snapshot_marks = st->snapshot_marks;
		v->hc_pending = st->hypercall_pending;
	}
	if (parts & WASP_VSTATE_CONSOLE)
		v->console_bytes = st->console_bytes;
	return 0;
}

/* Whether the vCPU's CPUID is `want`, entry for entry. */
static bool cpuid_is(struct wasp_virtine *v, const struct kvm_cpuid2 *want)
{
	struct kvm_cpuid2 *have = calloc(1, sizeof *have + want->nent * sizeof(struct kvm_cpuid_entry2));
	if (!have)
		return false;
	have->nent = want->nent;
	bool same = ioctl(v->vcpu_fd, KVM_GET_CPUID2, have) == 0 && have->nent == want->nent &&
		    !memcmp(have->entries, want->entries, want->nent * sizeof(struct kvm_cpuid_entry2));
	free(have);
	return same;
}

/* MSRs in as few calls as KVM allows: KVM_SET_MSRS stops at the first index
 * it refuses (and says how many it set), so a refused one is named and the
 * rest go on in the next call. */
static int set_msrs(struct wasp_virtine *v, const struct kvm_msrs *msrs, char *unrestored,
		    size_t cap)
{
	uint32_t nm = msrs->nmsrs;
	if (!nm)
		return 0;
	int set = ioctl(v->vcpu_fd, KVM_SET_MSRS, msrs);
	if (set == (int)nm)
		return 0; /* the usual case: one call, no copy */
	struct kvm_msrs *batch = calloc(1, sizeof *batch + nm * sizeof(struct kvm_msr_entry));
	if (!batch)
		return wasp_fail(-ENOMEM, "out of memory");
	for (uint32_t i = set > 0 ? (uint32_t)set : 0;;) {
		note(unrestored, cap, "msr 0x%x (refused)", msrs->entries[i++].index);
		if (i >= nm)
			break;
		batch->nmsrs = nm - i;
		memcpy(batch->entries, msrs->entries + i, (nm - i) * sizeof *batch->entries);
		set = ioctl(v->vcpu_fd, KVM_SET_MSRS, batch);
		i += set > 0 ? (uint32_t)set : 0;
		if (i >= nm)
			break;
	}
	free(batch);
	return 0;
}

static int load_vcpu(struct wasp_virtine *v, const struct wasp_vstate *st, unsigned parts,
		     char *unrestored, size_t cap)
{
	const struct wasp_kvm *k;
	int r = wasp_kvm_get(&k);
	if (r < 0)
		return r;

	/* KVM_SET_CPUID2 is among the dearest calls here (~0.2 ms on PVM):
	 * skip it when the vCPU already has exactly this CPUID, as a fresh
	 * one on a host like the saving one's does. */
	if ((parts & WASP_VSTATE_CPUID) && st->cpuid && !cpuid_is(v, st->cpuid)) {
		if ((r = kvm_ioctl(v->vcpu_fd, KVM_SET_CPUID2, st->cpuid)) < 0)
			return r;
		/* PVM reports (and runs ring 3 against) the host's CPUID
		 * whatever was set (docs/design.md): say so. */
		if (!cpuid_is(v, st->cpuid))
			note(unrestored, cap, "cpuid", 0);
	}
	/* A register write still waiting in the sync area would undo what
	 * is loaded here at the next KVM_RUN. */
	if (parts & WASP_VSTATE_REGS)
		v->run->kvm_dirty_regs &= ~(uint64_t)KVM_SYNC_X86_REGS;
	if (parts & WASP_VSTATE_SREGS)
		v->run->kvm_dirty_regs &= ~(uint64_t)KVM_SYNC_X86_SREGS;
	bool lazy = (parts & WASP_VSTATE_LAZY) && k->sync_sregs;
	if (lazy) {
		if (parts & WASP_VSTATE_REGS) {
			v->run->s.regs.regs = st->regs;
			v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		}
		if (parts & WASP_VSTATE_SREGS) {
			v->run->s.regs.sregs = st->sregs;
			v->run->kvm_dirty_regs |= KVM_SYNC_X86_SREGS;
		}
	}
	if (!lazy && (parts & WASP_VSTATE_SREGS) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_SET_SREGS, (struct kvm_sregs *)&st->sregs)) < 0)
		return r;
	if ((parts & WASP_VSTATE_MSRS) && st->msrs && (r = set_msrs(v, st->msrs, unrestored, cap)) < 0)
		return r;
	if ((parts & WASP_VSTATE_XCRS) && st->have_xcrs &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_SET_XCRS, (struct kvm_xcrs *)&st->xcrs)) < 0)
		return r;
	if (parts & WASP_VSTATE_FPU) {
		if (st->xsave) {
			size_t have = wasp_vstate_xsave_size();
			if (st->xsave_size != have)
				return wasp_fail(-EINVAL,
						 "XSAVE area of %zu bytes does not fit this host's %zu",
						 st->xsave_size, have);
			/* SET takes the larger area too */
			if ((r = kvm_ioctl(v->vcpu_fd, KVM_SET_XSAVE, (struct kvm_xsave *)st->xsave)) < 0)
				return r;
		} else if (st->have_fpu &&
			   (r = kvm_ioctl(v->vcpu_fd, KVM_SET_FPU, (struct kvm_fpu *)&st->fpu)) < 0) {
			return r;
		}
	}
	if (parts & WASP_VSTATE_EVENTS) {
		struct kvm_vcpu_events events = st->events;
		if ((events.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) &&
		    wasp_virtine_triple_fault_events(v) < 0) {
			events.flags &= ~(uint32_t)KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
			note(unrestored, cap, "triple fault", 0);
		}
		if ((r = kvm_ioctl(v->vcpu_fd, KVM_SET_VCPU_EVENTS, &events)) < 0)
			return r;
	}
	if ((parts & WASP_VSTATE_MP_STATE) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_SET_MP_STATE, (struct kvm_mp_state *)&st->mp_state)) < 0)
		return r;
	if ((parts & WASP_VSTATE_DEBUGREGS) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_SET_DEBUGREGS, (struct kvm_debugregs *)&st->debugregs)) < 0)
		return r;
	if (!lazy && (parts & WASP_VSTATE_REGS) &&
	    (r = kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, (struct kvm_regs *)&st->regs)) < 0)
		return r;
	/* The registers also wait in the sync area (harmless after the ioctl),
	 * so a caller's register write before the next run is free. */
	if ((parts & WASP_VSTATE_REGS) && (parts & WASP_VSTATE_SYNCED) && k->sync_regs) {
		v->run->s.regs.regs = st->regs;
		v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	}
	return 0;
}

static bool same_segment(const struct kvm_segment *a, const struct kvm_segment *b)
{
	return a->base == b->base && a->limit == b->limit && a->selector == b->selector &&
	       a->type == b->type && a->present == b->present && a->dpl == b->dpl &&
	       a->l == b->l && a->db == b->db && a->s == b->s && a->g == b->g;
}

/* Reads back what was loaded: what the guest depends on must be exactly as
 * saved. */
static int verify(struct wasp_virtine *v, const struct wasp_vstate *st, unsigned parts,
		  char *unrestored, size_t cap)
{
	int r;
	if (parts & WASP_VSTATE_REGS) {
		struct kvm_regs regs;
		if ((r = kvm_ioctl(v->vcpu_fd, KVM_GET_REGS, &regs)) < 0)
			return r;
		if (memcmp(&regs, &st->regs, sizeof regs))
			return wasp_fail(-EIO, "general registers did not round-trip through KVM");
	}
	if (parts & WASP_VSTATE_SREGS) {
		struct kvm_sregs s;
		if ((r = kvm_ioctl(v->vcpu_fd, KVM_GET_SREGS, &s)) < 0)
			return r;
		const struct kvm_sregs *w = &st->sregs;
		if (s.cr0 != w->cr0 || s.cr3 != w->cr3 || s.cr4 != w->cr4 || s.efer != w->efer ||
		    !same_segment(&s.cs, &w->cs) || !same_segment(&s.ss, &w->ss) ||
		    !same_segment(&s.tr, &w->tr) || s.gdt.base != w->gdt.base ||
		    s.idt.base != w->idt.base)
			return wasp_fail(-EIO, "control registers or segments did not round-trip "
					 "through KVM");
	}
	if (!(parts & WASP_VSTATE_MSRS) || !st->msrs)
		return 0;

	const struct kvm_msrs *want = st->msrs;
	struct kvm_msrs *back = calloc(1, sizeof *back + want->nmsrs * sizeof(struct kvm_msr_entry));
	if (!back)
		return wasp_fail(-ENOMEM, "out of memory");
	back->nmsrs = want->nmsrs;
	for (uint32_t i = 0; i < back->nmsrs; i++)
		back->entries[i].index = want->entries[i].index;
	if (ioctl(v->vcpu_fd, KVM_GET_MSRS, back) == (int)back->nmsrs) {
		for (uint32_t i = 0; i < back->nmsrs; i++) {
			if (back->entries[i].data == want->entries[i].data)
				continue;
			if (back->entries[i].index == MSR_IA32_TSC)
				continue; /* it moves on by itself: probed below */
			note(unrestored, cap, "msr 0x%x", back->entries[i].index);
		}
	}
	free(back);

	/* Does this host let us set the TSC at all? (Probed once per process,
	 * best ahead of time: wasp_vstate_prepare.) */
	bool has_tsc = false;
	for (uint32_t i = 0; i < want->nmsrs; i++)
		has_tsc |= want->entries[i].index == MSR_IA32_TSC;
	if (has_tsc) {
		if (tsc_settable < 0)
			probe_tsc(v); /* it put the TSC back as it found it: as loaded */
		if (tsc_settable != 1)
			note(unrestored, cap, "tsc", 0);
	}
	return 0;
}

int wasp_vstate_load(struct wasp_virtine *v, const struct wasp_vstate *st, unsigned parts,
		     char *unrestored, size_t cap)
{
	int r;
	if (unrestored && cap)
		unrestored[0] = 0;
	if ((r = load_host(v, st, parts)) < 0)
		return r;
	if ((parts & WASP_VSTATE_VCPU) && (r = load_vcpu(v, st, parts, unrestored, cap)) < 0)
		return r;
	if (parts & WASP_VSTATE_MODE)
		wasp_virtine_set_mode(v, st->mode);
	if ((parts & WASP_VSTATE_VERIFY) && (r = verify(v, st, parts, unrestored, cap)) < 0)
		return r;
	return 0;
}
