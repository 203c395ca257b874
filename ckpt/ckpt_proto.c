/*
 * ckpt_proto.c: the vCPU between KVM's structs and the Vcpu record.
 *
 * Registers and control state get named fields (wasp-inspect shows them and
 * another reader can use them); XSAVE, events and debug registers travel as
 * the kernel's fixed ABI structs, size-checked on the way in.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

/* ---- to the record ---------------------------------------------------- */

/* Every message of the record lives in one allocation, freed at once. */
struct vcpu_pb {
	Wasp__Vcpu vcpu;
	Wasp__Regs regs;
	Wasp__Sregs sregs;
	Wasp__Segment seg[8];
	Wasp__Dtable gdt, idt;
	Wasp__Xcr xcr[KVM_MAX_XCRS], *xcrp[KVM_MAX_XCRS];
	Wasp__Msr *msr, **msrp;
	Wasp__CpuidEntry *cpuid, **cpuidp;
};

static void seg_to(Wasp__Segment *p, const struct kvm_segment *s)
{
	wasp__segment__init(p);
	p->base_addr = s->base;
	p->limit = s->limit;
	p->selector = s->selector;
	p->type = s->type;
	p->present = s->present;
	p->dpl = s->dpl;
	p->db = s->db;
	p->s = s->s;
	p->l = s->l;
	p->g = s->g;
	p->avl = s->avl;
	p->unusable = s->unusable;
}

static void seg_from(struct kvm_segment *s, const Wasp__Segment *p)
{
	s->base = p->base_addr;
	s->limit = p->limit;
	s->selector = (uint16_t)p->selector;
	s->type = (uint8_t)p->type;
	s->present = (uint8_t)p->present;
	s->dpl = (uint8_t)p->dpl;
	s->db = (uint8_t)p->db;
	s->s = (uint8_t)p->s;
	s->l = (uint8_t)p->l;
	s->g = (uint8_t)p->g;
	s->avl = (uint8_t)p->avl;
	s->unusable = (uint8_t)p->unusable;
}

/* The regs fields in kvm_regs order; both structs list them alike. */
#define REGS(X)                                                                            \
	X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9) X(r10) X(r11)  \
	X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags)

int wasp_vcpu_to_proto(const struct wasp_vstate *s, Wasp__Vcpu **out)
{
	uint32_t nmsr = s->msrs ? s->msrs->nmsrs : 0, ncpuid = s->cpuid ? s->cpuid->nent : 0;
	struct vcpu_pb *b = calloc(1, sizeof *b);
	if (!b)
		return wasp_fail(-ENOMEM, "out of memory");
	b->msr = calloc(nmsr + 1, sizeof *b->msr);
	b->msrp = calloc(nmsr + 1, sizeof *b->msrp);
	b->cpuid = calloc(ncpuid + 1, sizeof *b->cpuid);
	b->cpuidp = calloc(ncpuid + 1, sizeof *b->cpuidp);
	if (!b->msr || !b->msrp || !b->cpuid || !b->cpuidp) {
		wasp_vcpu_proto_free(&b->vcpu);
		return wasp_fail(-ENOMEM, "out of memory");
	}

	Wasp__Vcpu *p = &b->vcpu;
	wasp__vcpu__init(p);
	wasp__regs__init(&b->regs);
#define TO(r) b->regs.r = s->regs.r;
	REGS(TO)
#undef TO
	p->regs = &b->regs;

	wasp__sregs__init(&b->sregs);
	const struct kvm_segment *segs[8] = {&s->sregs.cs, &s->sregs.ds, &s->sregs.es,
					     &s->sregs.fs, &s->sregs.gs, &s->sregs.ss,
					     &s->sregs.tr, &s->sregs.ldt};
	for (int i = 0; i < 8; i++)
		seg_to(&b->seg[i], segs[i]);
	b->sregs.cs = &b->seg[0];
	b->sregs.ds = &b->seg[1];
	b->sregs.es = &b->seg[2];
	b->sregs.fs = &b->seg[3];
	b->sregs.gs = &b->seg[4];
	b->sregs.ss = &b->seg[5];
	b->sregs.tr = &b->seg[6];
	b->sregs.ldt = &b->seg[7];
	wasp__dtable__init(&b->gdt);
	wasp__dtable__init(&b->idt);
	b->gdt.base_addr = s->sregs.gdt.base;
	b->gdt.limit = s->sregs.gdt.limit;
	b->idt.base_addr = s->sregs.idt.base;
	b->idt.limit = s->sregs.idt.limit;
	b->sregs.gdt = &b->gdt;
	b->sregs.idt = &b->idt;
	b->sregs.cr0 = s->sregs.cr0;
	b->sregs.cr2 = s->sregs.cr2;
	b->sregs.cr3 = s->sregs.cr3;
	b->sregs.cr4 = s->sregs.cr4;
	b->sregs.cr8 = s->sregs.cr8;
	b->sregs.efer = s->sregs.efer;
	b->sregs.apic_base = s->sregs.apic_base;
	p->sregs = &b->sregs;

	/* Raw structs point into s: s outlives the record (packed at once). */
	if (s->xsave) {
		p->has_xsave = true;
		p->xsave.data = s->xsave;
		p->xsave.len = s->xsave_size;
	}
	if (s->have_fpu) {
		p->has_fpu = true;
		p->fpu.data = (uint8_t *)&s->fpu;
		p->fpu.len = sizeof s->fpu;
	}
	if (s->have_xcrs) {
		uint32_t n = s->xcrs.nr_xcrs < KVM_MAX_XCRS ? s->xcrs.nr_xcrs : KVM_MAX_XCRS;
		for (uint32_t i = 0; i < n; i++) {
			wasp__xcr__init(&b->xcr[i]);
			b->xcr[i].xcr = s->xcrs.xcrs[i].xcr;
			b->xcr[i].value = s->xcrs.xcrs[i].value;
			b->xcrp[i] = &b->xcr[i];
		}
		p->n_xcrs = n;
		p->xcrs = b->xcrp;
	}
	for (uint32_t i = 0; i < nmsr; i++) {
		wasp__msr__init(&b->msr[i]);
		b->msr[i].index = s->msrs->entries[i].index;
		b->msr[i].value = s->msrs->entries[i].data;
		b->msrp[i] = &b->msr[i];
		if (b->msr[i].index == 0x10) {
			p->has_tsc = true;
			p->tsc = b->msr[i].value;
		}
	}
	p->n_msrs = nmsr;
	p->msrs = b->msrp;
	p->has_events = true;
	p->events.data = (uint8_t *)&s->events;
	p->events.len = sizeof s->events;
	p->has_debugregs = true;
	p->debugregs.data = (uint8_t *)&s->debugregs;
	p->debugregs.len = sizeof s->debugregs;
	p->has_mp_state = true;
	p->mp_state = s->mp_state.mp_state;
	for (uint32_t i = 0; i < ncpuid; i++) {
		const struct kvm_cpuid_entry2 *e = &s->cpuid->entries[i];
		Wasp__CpuidEntry *c = &b->cpuid[i];
		wasp__cpuid_entry__init(c);
		c->function = e->function;
		c->index = e->index;
		c->flags = e->flags;
		c->eax = e->eax;
		c->ebx = e->ebx;
		c->ecx = e->ecx;
		c->edx = e->edx;
		b->cpuidp[i] = c;
	}
	p->n_cpuid = ncpuid;
	p->cpuid = b->cpuidp;
	p->has_entry_mode = true;
	p->entry_mode = (uint32_t)s->mode;
	*out = p;
	return 0;
}

void wasp_vcpu_proto_free(Wasp__Vcpu *p)
{
	if (!p)
		return;
	struct vcpu_pb *b = (struct vcpu_pb *)p; /* vcpu is the first member */
	free(b->msr);
	free(b->msrp);
	free(b->cpuid);
	free(b->cpuidp);
	free(b);
}

/* ---- from the record: trust nothing ----------------------------------- */

static int raw(const ProtobufCBinaryData *d, void *dst, size_t size, const char *what)
{
	if (d->len != size)
		return wasp_fail(-EINVAL, "checkpoint vCPU %s is %zu bytes, this host's is %zu", what,
				 d->len, size);
	memcpy(dst, d->data, size);
	return 0;
}

int wasp_vcpu_from_proto(const Wasp__Vcpu *p, struct wasp_vstate *s)
{
	int r;
	memset(s, 0, sizeof *s);
	if (!p->regs || !p->sregs)
		return wasp_fail(-EINVAL, "checkpoint vCPU record lacks registers");
#define FROM(r) s->regs.r = p->regs->r;
	REGS(FROM)
#undef FROM

	const Wasp__Sregs *q = p->sregs;
	const Wasp__Segment *segs[8] = {q->cs, q->ds, q->es, q->fs, q->gs, q->ss, q->tr, q->ldt};
	struct kvm_segment *dst[8] = {&s->sregs.cs, &s->sregs.ds, &s->sregs.es, &s->sregs.fs,
				      &s->sregs.gs, &s->sregs.ss, &s->sregs.tr, &s->sregs.ldt};
	for (int i = 0; i < 8; i++) {
		if (!segs[i])
			return wasp_fail(-EINVAL, "checkpoint vCPU record lacks a segment");
		seg_from(dst[i], segs[i]);
	}
	if (!q->gdt || !q->idt)
		return wasp_fail(-EINVAL, "checkpoint vCPU record lacks descriptor tables");
	s->sregs.gdt.base = q->gdt->base_addr;
	s->sregs.gdt.limit = (uint16_t)q->gdt->limit;
	s->sregs.idt.base = q->idt->base_addr;
	s->sregs.idt.limit = (uint16_t)q->idt->limit;
	s->sregs.cr0 = q->cr0;
	s->sregs.cr2 = q->cr2;
	s->sregs.cr3 = q->cr3;
	s->sregs.cr4 = q->cr4;
	s->sregs.cr8 = q->cr8;
	s->sregs.efer = q->efer;
	s->sregs.apic_base = q->apic_base;

	if (p->has_xsave) {
		if (p->xsave.len < sizeof(struct kvm_xsave) || p->xsave.len > (1u << 20))
			return wasp_fail(-EINVAL, "checkpoint XSAVE area of %zu bytes", p->xsave.len);
		s->xsave = malloc(p->xsave.len);
		if (!s->xsave)
			return wasp_fail(-ENOMEM, "out of memory");
		memcpy(s->xsave, p->xsave.data, p->xsave.len);
		s->xsave_size = p->xsave.len;
	} else if (p->has_fpu) {
		if ((r = raw(&p->fpu, &s->fpu, sizeof s->fpu, "FPU state")) < 0)
			goto fail;
		s->have_fpu = true;
	}
	if (p->n_xcrs) {
		if (p->n_xcrs > KVM_MAX_XCRS) {
			r = wasp_fail(-EINVAL, "checkpoint has %zu XCRs", p->n_xcrs);
			goto fail;
		}
		s->have_xcrs = true;
		s->xcrs.nr_xcrs = (uint32_t)p->n_xcrs;
		for (size_t i = 0; i < p->n_xcrs; i++) {
			s->xcrs.xcrs[i].xcr = p->xcrs[i]->xcr;
			s->xcrs.xcrs[i].value = p->xcrs[i]->value;
		}
	}
	if (p->n_msrs > 4096) {
		r = wasp_fail(-EINVAL, "checkpoint has %zu MSRs", p->n_msrs);
		goto fail;
	}
	s->msrs = calloc(1, sizeof *s->msrs + p->n_msrs * sizeof(struct kvm_msr_entry));
	if (!s->msrs) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	s->msrs->nmsrs = (uint32_t)p->n_msrs;
	for (size_t i = 0; i < p->n_msrs; i++) {
		s->msrs->entries[i].index = p->msrs[i]->index;
		s->msrs->entries[i].data = p->msrs[i]->value;
	}
	if (!p->has_events || !p->has_debugregs || !p->has_mp_state) {
		r = wasp_fail(-EINVAL, "checkpoint vCPU record lacks events, debug registers or mp_state");
		goto fail;
	}
	if ((r = raw(&p->events, &s->events, sizeof s->events, "event state")) < 0 ||
	    (r = raw(&p->debugregs, &s->debugregs, sizeof s->debugregs, "debug registers")) < 0)
		goto fail;
	s->mp_state.mp_state = p->mp_state;

	if (p->n_cpuid == 0 || p->n_cpuid > 4096) {
		r = wasp_fail(-EINVAL, "checkpoint has %zu CPUID entries", p->n_cpuid);
		goto fail;
	}
	s->cpuid = calloc(1, sizeof *s->cpuid + p->n_cpuid * sizeof(struct kvm_cpuid_entry2));
	if (!s->cpuid) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	s->cpuid->nent = (uint32_t)p->n_cpuid;
	for (size_t i = 0; i < p->n_cpuid; i++) {
		struct kvm_cpuid_entry2 *e = &s->cpuid->entries[i];
		e->function = p->cpuid[i]->function;
		e->index = p->cpuid[i]->index;
		e->flags = p->cpuid[i]->flags;
		e->eax = p->cpuid[i]->eax;
		e->ebx = p->cpuid[i]->ebx;
		e->ecx = p->cpuid[i]->ecx;
		e->edx = p->cpuid[i]->edx;
	}
	if (p->has_entry_mode && p->entry_mode > WASP_MODE_LONG) {
		r = wasp_fail(-EINVAL, "checkpoint names entry mode %u", p->entry_mode);
		goto fail;
	}
	s->mode = p->has_entry_mode ? (enum wasp_mode)p->entry_mode : WASP_MODE_LONG;
	return 0;
fail:
	wasp_vstate_free(s);
	return r;
}
