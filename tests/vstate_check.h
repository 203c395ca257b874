/*
 * vstate_check.h: comparing two saved virtine states (struct wasp_vstate,
 * vmm_parts.h) field by field, for the tests that check a load or a pool
 * reset puts back exactly what was saved. Include after harness.h.
 */
#ifndef WASP_TEST_VSTATE_CHECK_H
#define WASP_TEST_VSTATE_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* MSRs that count time by themselves: the TSC, and KVM's Hyper-V clocks
 * (HV_X64_MSR_VP_RUNTIME, HV_X64_MSR_TIME_REF_COUNT). */
static inline bool vstate_clock_msr(uint32_t index)
{
	return index == 0x10 || index == 0x40000010 || index == 0x40000020;
}

/* Whether `unrestored` (a load's list) names MSR `index`. */
static inline bool vstate_named(const char *unrestored, uint32_t index)
{
	char name[32];
	snprintf(name, sizeof name, "msr 0x%x", index);
	const char *p = unrestored;
	while (p && (p = strstr(p, name))) {
		char after = p[strlen(name)];
		if (after == 0 || after == ',' || after == ' ')
			return true;
		p++;
	}
	return false;
}

/* CHECKs every field of the `parts` of a and b. MSRs that move on by
 * themselves and those named in `unrestored` (what this host did not
 * keep) are left out; `what` names the comparison in failures. */
static inline void vstate_same(const struct wasp_vstate *a, const struct wasp_vstate *b,
			       unsigned parts, const char *unrestored, const char *what)
{
	if (parts & WASP_VSTATE_REGS) {
		CHECK(!memcmp(&a->regs, &b->regs, sizeof a->regs),
		      "%s: regs differ (rip 0x%llx vs 0x%llx, rsp 0x%llx vs 0x%llx)", what,
		      (unsigned long long)a->regs.rip, (unsigned long long)b->regs.rip,
		      (unsigned long long)a->regs.rsp, (unsigned long long)b->regs.rsp);
	}
	if (parts & WASP_VSTATE_SREGS) {
		CHECK(!memcmp(&a->sregs, &b->sregs, sizeof a->sregs),
		      "%s: sregs differ (cr0 %llx/%llx cr3 %llx/%llx cr4 %llx/%llx efer %llx/%llx)",
		      what, (unsigned long long)a->sregs.cr0, (unsigned long long)b->sregs.cr0,
		      (unsigned long long)a->sregs.cr3, (unsigned long long)b->sregs.cr3,
		      (unsigned long long)a->sregs.cr4, (unsigned long long)b->sregs.cr4,
		      (unsigned long long)a->sregs.efer, (unsigned long long)b->sregs.efer);
	}
	if (parts & WASP_VSTATE_FPU) {
		CHECK(a->xsave_size == b->xsave_size && a->have_fpu == b->have_fpu,
		      "%s: XSAVE %zu vs %zu bytes", what, a->xsave_size, b->xsave_size);
		if (a->xsave && b->xsave && a->xsave_size == b->xsave_size) {
			size_t at = 0;
			const uint8_t *x = a->xsave, *y = b->xsave;
			while (at < a->xsave_size && x[at] == y[at])
				at++;
			CHECK(at == a->xsave_size, "%s: XSAVE areas differ from byte %zu", what, at);
		}
		if (a->have_fpu && b->have_fpu)
			CHECK(!memcmp(&a->fpu, &b->fpu, sizeof a->fpu), "%s: FPU state differs", what);
	}
	if (parts & WASP_VSTATE_XCRS) {
		CHECK(a->have_xcrs == b->have_xcrs && a->xcrs.nr_xcrs == b->xcrs.nr_xcrs,
		      "%s: XCR count", what);
		for (uint32_t i = 0; i < a->xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
			CHECK(a->xcrs.xcrs[i].xcr == b->xcrs.xcrs[i].xcr &&
				      a->xcrs.xcrs[i].value == b->xcrs.xcrs[i].value,
			      "%s: XCR%u %llx vs %llx", what, a->xcrs.xcrs[i].xcr,
			      (unsigned long long)a->xcrs.xcrs[i].value,
			      (unsigned long long)b->xcrs.xcrs[i].value);
	}
	if ((parts & WASP_VSTATE_MSRS) && a->msrs && b->msrs) {
		CHECK(a->msrs->nmsrs == b->msrs->nmsrs, "%s: %u vs %u MSRs", what, a->msrs->nmsrs,
		      b->msrs->nmsrs);
		for (uint32_t i = 0; i < a->msrs->nmsrs && i < b->msrs->nmsrs; i++) {
			const struct kvm_msr_entry *x = &a->msrs->entries[i], *y = &b->msrs->entries[i];
			CHECK(x->index == y->index, "%s: MSR %u is 0x%x vs 0x%x", what, i, x->index,
			      y->index);
			if (vstate_clock_msr(x->index) || vstate_named(unrestored, x->index))
				continue;
			CHECK(x->data == y->data, "%s: MSR 0x%x is %llx vs %llx", what, x->index,
			      (unsigned long long)x->data, (unsigned long long)y->data);
		}
	}
	if (parts & WASP_VSTATE_EVENTS)
		CHECK(!memcmp(&a->events, &b->events, sizeof a->events),
		      "%s: vCPU events differ (flags %x vs %x)", what, a->events.flags,
		      b->events.flags);
	if (parts & WASP_VSTATE_DEBUGREGS)
		CHECK(!memcmp(&a->debugregs, &b->debugregs, sizeof a->debugregs),
		      "%s: debug registers differ (dr7 %llx vs %llx)", what,
		      (unsigned long long)a->debugregs.dr7, (unsigned long long)b->debugregs.dr7);
	if (parts & WASP_VSTATE_MP_STATE)
		CHECK(a->mp_state.mp_state == b->mp_state.mp_state, "%s: mp_state %u vs %u", what,
		      a->mp_state.mp_state, b->mp_state.mp_state);
	if ((parts & WASP_VSTATE_CPUID) && a->cpuid && b->cpuid)
		CHECK(a->cpuid->nent == b->cpuid->nent &&
			      !memcmp(a->cpuid->entries, b->cpuid->entries,
				      a->cpuid->nent * sizeof *a->cpuid->entries),
		      "%s: CPUID differs (%u vs %u entries)", what, a->cpuid->nent, b->cpuid->nent);
	if (parts & WASP_VSTATE_MODE)
		CHECK(a->mode == b->mode, "%s: mode %d vs %d", what, a->mode, b->mode);
	if (parts & WASP_VSTATE_MARKS)
		CHECK(a->snapshot_marks == b->snapshot_marks &&
			      a->hypercall_pending == b->hypercall_pending,
		      "%s: marks %llu vs %llu, pending %d vs %d", what,
		      (unsigned long long)a->snapshot_marks, (unsigned long long)b->snapshot_marks,
		      a->hypercall_pending, b->hypercall_pending);
	if (parts & WASP_VSTATE_CONSOLE)
		CHECK(a->console_bytes == b->console_bytes, "%s: console %llu vs %llu bytes", what,
		      (unsigned long long)a->console_bytes, (unsigned long long)b->console_bytes);
	if (parts & WASP_VSTATE_DIR_GROWN)
		CHECK(a->dir_grown == b->dir_grown, "%s: sandbox grown %lld vs %lld", what,
		      (long long)a->dir_grown, (long long)b->dir_grown);
	if (parts & WASP_VSTATE_FILES) {
		CHECK(a->nfiles == b->nfiles, "%s: %u vs %u open files", what, a->nfiles, b->nfiles);
		for (unsigned i = 0; i < a->nfiles && i < b->nfiles; i++)
			CHECK(a->files[i].guest_fd == b->files[i].guest_fd &&
				      !strcmp(a->files[i].path, b->files[i].path) &&
				      a->files[i].flags == b->files[i].flags &&
				      a->files[i].offset == b->files[i].offset,
			      "%s: open file %u: fd %u '%s' at %lld vs fd %u '%s' at %lld", what, i,
			      a->files[i].guest_fd, a->files[i].path, (long long)a->files[i].offset,
			      b->files[i].guest_fd, b->files[i].path, (long long)b->files[i].offset);
	}
	if (parts & WASP_VSTATE_ARGS) {
		CHECK(!a->arg == !b->arg && a->arg_len == b->arg_len &&
			      (!a->arg || !memcmp(a->arg, b->arg, a->arg_len)),
		      "%s: argument differs (%zu vs %zu bytes)", what, a->arg_len, b->arg_len);
		CHECK(!a->ret == !b->ret && a->ret_len == b->ret_len &&
			      (!a->ret || !memcmp(a->ret, b->ret, a->ret_len)),
		      "%s: result differs (%zu vs %zu bytes)", what, a->ret_len, b->ret_len);
	}
	if (parts & WASP_VSTATE_LINUX)
		CHECK(a->has_linux == b->has_linux, "%s: Linux personality %d vs %d", what,
		      a->has_linux, b->has_linux);
}

#endif
