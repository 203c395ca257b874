/*
 * vmm_trace.c: tracing a running virtine (exits, hypercalls, I/O, faults,
 * single steps) and breakpoints, through a few hooks in the run loop of
 * vmm_kvm.c that are called only when a tracer is set.
 *
 * How steps and breakpoints work, and why (measured on PVM, docs/design.md):
 *  - KVM_GUESTDBG_SINGLESTEP sets TF, but PVM does not turn the #DB into
 *    KVM_EXIT_DEBUG: it delivers it to the guest, which has no IDT, so the
 *    vCPU triple-faults (KVM_EXIT_SHUTDOWN) right after the instruction,
 *    with DR6.BS set and exception 1 in the vCPU events. The vCPU keeps its
 *    state and runs on when entered again. So a shutdown with exactly those
 *    marks, while we step, is a step; anything else stays a fault. After an
 *    I/O exit PVM forgets the step (the next instructions run freely), so
 *    guest debugging is set again after each one.
 *  - Hardware breakpoints (KVM_GUESTDBG_USE_HW_BP with debugreg[], or DR7
 *    set through KVM_SET_DEBUGREGS) are accepted and silently never fire on
 *    PVM. Breakpoints are therefore `int3` bytes planted in guest memory;
 *    the #BP ends the same way (a shutdown, exception 3, rip one past the
 *    byte). On KVMs that do report these (KVM_EXIT_DEBUG), that is handled
 *    too.
 *  - The bytes are planted when a run starts and taken out when it returns,
 *    and guest debugging is switched off, so outside wasp_virtine_run()
 *    neither is visible: a checkpoint taken at a breakpoint is the plain
 *    guest, stopped before the instruction at the breakpoint, with RF and
 *    TF clear. A hit breakpoint is taken out, the one instruction under it
 *    single-stepped, and then planted again (unless the run stops there).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "vmm_internal.h"

#define DR6_BS (1u << 14)
#define DR6_RESET 0xffff0ff0ull
#define INT3 0xcc

struct wasp_bp {
	uint64_t addr;
	uint64_t hits;
	uint8_t orig;   /* the byte under the int3 */
	bool planted;
};

struct wasp_trace {
	struct wasp_trace_opts o;
	struct wasp_bp bp[WASP_MAX_BREAKPOINTS];
	unsigned nbp;

	bool debug_on;   /* KVM guest debugging is set for this run */
	bool stepping;   /* steps are traced in this run */
	bool steps_done; /* the step bound was reached */
	uint64_t steps, step_t0;
	uint64_t prev_rip; /* where the next instruction starts */
	bool after_io;     /* an `in`/`out` completed since the last step */
	int over;          /* breakpoint being stepped over, -1: none */
	bool stop;         /* the callback asked to stop */

	uint64_t exit_t;  /* when the exit being handled came */
	bool hc_open; /* a hypercall exit is being served */
	uint64_t hc_t0, hc_nr, hc_args[6];
	struct wasp_regs regs;
};

static const char *const kind_names[WASP_TRACE_KINDS] = {
	[WASP_TRACE_EXIT] = "exit",   [WASP_TRACE_HYPERCALL] = "hypercall",
	[WASP_TRACE_IO] = "io",       [WASP_TRACE_FAULT] = "fault",
	[WASP_TRACE_STEP] = "step",   [WASP_TRACE_BREAK] = "break",
	[WASP_TRACE_SYSCALL] = "syscall",
};

const char *wasp_trace_kind_name(enum wasp_trace_kind k)
{
	return (unsigned)k < WASP_TRACE_KINDS ? kind_names[k] : NULL;
}

const char *wasp_kvm_exit_name(uint32_t r)
{
	static const char *const names[] = {
		[KVM_EXIT_UNKNOWN] = "unknown",   [KVM_EXIT_EXCEPTION] = "exception",
		[KVM_EXIT_IO] = "io",             [KVM_EXIT_HYPERCALL] = "hypercall",
		[KVM_EXIT_DEBUG] = "debug",       [KVM_EXIT_HLT] = "hlt",
		[KVM_EXIT_MMIO] = "mmio",         [KVM_EXIT_IRQ_WINDOW_OPEN] = "irq_window_open",
		[KVM_EXIT_SHUTDOWN] = "shutdown", [KVM_EXIT_FAIL_ENTRY] = "fail_entry",
		[KVM_EXIT_INTR] = "intr",         [KVM_EXIT_SET_TPR] = "set_tpr",
		[KVM_EXIT_TPR_ACCESS] = "tpr_access", [KVM_EXIT_INTERNAL_ERROR] = "internal_error",
	};
	return r < sizeof names / sizeof *names && names[r] ? names[r] : "unknown";
}

/* ---- setting up ----------------------------------------------------------- */

static struct wasp_trace *trace_of(struct wasp_virtine *v)
{
	if (!v->trace) {
		v->trace = calloc(1, sizeof *v->trace);
		if (!v->trace)
			return NULL;
		v->trace->over = -1;
		/* For take_pending(); without it (older kernels) a triple fault
		 * KVM has not reported yet stays out of sight. */
		wasp_virtine_triple_fault_events(v);
	}
	return v->trace;
}

/* No callback and no breakpoint: the run loop need not call us at all. */
static void drop_if_idle(struct wasp_virtine *v)
{
	if (v->trace && !v->trace->o.fn && !v->trace->nbp) {
		free(v->trace);
		v->trace = NULL;
	}
}

int wasp_virtine_trace(struct wasp_virtine *v, const struct wasp_trace_opts *o)
{
	if (atomic_load(&v->running))
		return wasp_fail(-EBUSY, "cannot change the tracer of a running virtine");
	if (!o || !o->fn) {
		if (v->trace) {
			memset(&v->trace->o, 0, sizeof v->trace->o);
			v->trace->stepping = false;
		}
		drop_if_idle(v);
		return 0;
	}
	if (o->events & ~((1u << WASP_TRACE_KINDS) - 1))
		return wasp_fail(-EINVAL, "unknown trace event bits 0x%x", o->events);
	if ((o->events & WASP_TRACE_BIT(WASP_TRACE_STEP)) && !o->max_steps && !o->max_step_ns)
		return wasp_fail(-EINVAL, "tracing steps needs a bound (a count or a time)");
	struct wasp_trace *t = trace_of(v);
	if (!t)
		return wasp_fail(-ENOMEM, "out of memory for a tracer");
	t->o = *o;
	t->steps = t->step_t0 = 0;
	t->steps_done = false;
	return 0;
}

void wasp_virtine_trace_get(const struct wasp_virtine *v, struct wasp_trace_opts *o)
{
	if (v->trace)
		*o = v->trace->o;
	else
		memset(o, 0, sizeof *o);
}

uint64_t wasp_virtine_trace_steps(const struct wasp_virtine *v)
{
	return v->trace ? v->trace->steps : 0;
}

int wasp_virtine_break_add(struct wasp_virtine *v, uint64_t addr)
{
	if (atomic_load(&v->running))
		return wasp_fail(-EBUSY, "cannot set a breakpoint in a running virtine");
	if (addr >= v->mem_size)
		return wasp_fail(-EFAULT, "breakpoint 0x%llx is outside guest memory (0x%zx bytes)",
				 (unsigned long long)addr, v->mem_size);
	if (v->trace)
		for (unsigned i = 0; i < v->trace->nbp; i++)
			if (v->trace->bp[i].addr == addr)
				return wasp_fail(-EEXIST, "a breakpoint is set at 0x%llx already",
						 (unsigned long long)addr);
	struct wasp_trace *t = trace_of(v);
	if (!t)
		return wasp_fail(-ENOMEM, "out of memory for a tracer");
	if (t->nbp == WASP_MAX_BREAKPOINTS)
		return wasp_fail(-ENOSPC, "at most %d breakpoints", WASP_MAX_BREAKPOINTS);
	t->bp[t->nbp++] = (struct wasp_bp){.addr = addr};
	return 0;
}

int wasp_virtine_break_remove(struct wasp_virtine *v, uint64_t addr)
{
	struct wasp_trace *t = v->trace;
	if (atomic_load(&v->running))
		return wasp_fail(-EBUSY, "cannot remove a breakpoint of a running virtine");
	for (unsigned i = 0; t && i < t->nbp; i++) {
		if (t->bp[i].addr != addr)
			continue;
		t->bp[i] = t->bp[--t->nbp];
		t->over = -1;
		drop_if_idle(v);
		return 0;
	}
	return wasp_fail(-ENOENT, "no breakpoint at 0x%llx", (unsigned long long)addr);
}

void wasp_trace_free(struct wasp_virtine *v)
{
	free(v->trace);
	v->trace = NULL;
}

/* ---- mechanics ------------------------------------------------------------ */

/* Registers right after an exit: kvm_run holds them (and any write not yet
 * applied) when KVM syncs them; otherwise one ioctl. */
static int exit_regs(struct wasp_virtine *v, struct wasp_regs *regs)
{
	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS) {
		memcpy(regs, &v->run->s.regs.regs, sizeof *regs);
		return 0;
	}
	return wasp_virtine_get_regs(v, regs);
}

/* Written at once, not through kvm_run's sync registers: those would be
 * applied at the next entry, after KVM_SET_GUEST_DEBUG, and PVM then loses
 * the TF that single-stepping set (measured: the step over a breakpoint
 * ran the rest of the guest freely). */
static int set_rip(struct wasp_virtine *v, uint64_t rip)
{
	struct wasp_regs r;
	int err = exit_regs(v, &r);
	if (err < 0)
		return err;
	r.rip = rip;
	struct kvm_regs k;
	memcpy(&k, &r, sizeof k);
	if ((err = kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &k)) < 0)
		return err;
	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS) {
		v->run->s.regs.regs = k;
		v->run->kvm_dirty_regs &= ~(uint64_t)KVM_SYNC_X86_REGS;
	}
	return 0;
}

static void plant(struct wasp_virtine *v, struct wasp_bp *b)
{
	if (b->planted)
		return;
	b->orig = v->mem[b->addr];
	v->mem[b->addr] = INT3;
	wasp_mark_dirty(v, b->addr, 1);
	b->planted = true;
}

static void unplant(struct wasp_virtine *v, struct wasp_bp *b)
{
	if (!b->planted)
		return;
	/* A guest that wrote over its own code keeps what it wrote. */
	if (v->mem[b->addr] == INT3) {
		v->mem[b->addr] = b->orig;
		wasp_mark_dirty(v, b->addr, 1);
	}
	b->planted = false;
}

/* Sets KVM guest debugging for what this run needs now (`step`: single
 * step the next instruction(s)). */
static int set_debug(struct wasp_virtine *v, bool step)
{
	struct wasp_trace *t = v->trace;
	struct kvm_guest_debug dbg = {.control = 0};
	if (step || t->nbp)
		dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP |
			      (step ? KVM_GUESTDBG_SINGLESTEP : 0);
	if (!dbg.control && !t->debug_on)
		return 0;
	int r = kvm_ioctl(v->vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg);
	if (r == 0)
		t->debug_on = dbg.control != 0;
	return r;
}

static bool want_step(const struct wasp_trace *t)
{
	return t->stepping || t->over >= 0;
}

static bool asked(const struct wasp_trace *t, enum wasp_trace_kind k)
{
	return t->o.fn && (t->o.events & WASP_TRACE_BIT(k));
}

/* Hands one event to the callback (registers read now); a STOP is kept for
 * the run loop. */
static void emit(struct wasp_virtine *v, struct wasp_trace_event *ev)
{
	struct wasp_trace *t = v->trace;
	if (!t->o.fn)
		return;
	if (!ev->regs && exit_regs(v, &t->regs) == 0)
		ev->regs = &t->regs;
	if (!ev->t_ns)
		ev->t_ns = wasp_now_ns();
	if (t->o.fn(v, ev, t->o.opaque) == WASP_TRACE_STOP)
		t->stop = true;
}

int wasp_trace_enter(struct wasp_virtine *v)
{
	struct wasp_trace *t = v->trace;
	struct wasp_regs regs;
	int r = wasp_virtine_get_regs(v, &regs);
	if (r < 0)
		return r;
	t->stop = t->hc_open = t->after_io = false;
	/* A run that starts on a breakpoint (resumed after stopping there, or
	 * restored from a checkpoint taken there) steps over it first. */
	t->over = -1;
	for (unsigned i = 0; i < t->nbp; i++) {
		if (regs.rip == t->bp[i].addr)
			t->over = (int)i;
		else
			plant(v, &t->bp[i]);
	}
	t->stepping = asked(t, WASP_TRACE_STEP) && !t->steps_done;
	if (t->stepping) {
		t->prev_rip = regs.rip;
		if (!t->step_t0)
			t->step_t0 = wasp_now_ns();
	}
	return set_debug(v, want_step(t));
}

/* What a debug-looking exit was. */
enum dbg_kind { DBG_NONE, DBG_STEP, DBG_BREAK };

static enum dbg_kind classify(struct wasp_virtine *v, uint64_t rip, int *bp)
{
	struct wasp_trace *t = v->trace;
	unsigned exc;
	uint64_t pc = rip;

	if (v->run->exit_reason == KVM_EXIT_DEBUG) {
		exc = v->run->debug.arch.exception;
		pc = v->run->debug.arch.pc;
	} else {
		/* PVM: the #DB/#BP met no IDT and became a triple fault. */
		struct kvm_vcpu_events ev;
		struct kvm_debugregs dr;
		if (wasp__ioctl(v->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
		    wasp__ioctl(v->vcpu_fd, KVM_GET_DEBUGREGS, &dr) < 0)
			return DBG_NONE;
		exc = ev.exception.nr;
		if (exc == 1) {
			if (!(dr.dr6 & DR6_BS) || !want_step(t))
				return DBG_NONE;
			/* Left set, a later real fault would read as a step. */
			dr.dr6 = DR6_RESET;
			wasp__ioctl(v->vcpu_fd, KVM_SET_DEBUGREGS, &dr);
		}
	}
	if (exc == 1)
		return want_step(t) ? DBG_STEP : DBG_NONE;
	if (exc == 3) {
		/* #BP is a trap: rip is past the int3 (KVM_EXIT_DEBUG may say either). */
		for (unsigned i = 0; i < t->nbp; i++) {
			const struct wasp_bp *b = &t->bp[i];
			if (b->planted && (b->addr == pc || b->addr + 1 == rip)) {
				*bp = (int)i;
				return DBG_BREAK;
			}
		}
	}
	return DBG_NONE;
}

/* Reports the instruction at prev_rip as executed; ends stepping at its bound. */
static void count_step(struct wasp_virtine *v, uint64_t t_ns)
{
	struct wasp_trace *t = v->trace;
	t->steps++;
	struct wasp_trace_event ev = {.kind = WASP_TRACE_STEP, .addr = t->prev_rip, .t_ns = t_ns};
	emit(v, &ev);
	uint64_t now = wasp_now_ns();
	if ((t->o.max_steps && t->steps >= t->o.max_steps) ||
	    (t->o.max_step_ns && now - t->step_t0 >= t->o.max_step_ns)) {
		t->stepping = false;
		t->steps_done = true;
	}
}

static int on_step(struct wasp_virtine *v, uint64_t rip)
{
	struct wasp_trace *t = v->trace;
	/* On a KVM that traps after a completed `out`, nothing ran since. */
	bool ran = !(t->after_io && rip == t->prev_rip);
	t->after_io = false;
	if (t->stepping && ran)
		count_step(v, 0);
	t->prev_rip = rip;
	if (t->over >= 0 && ran) {
		plant(v, &t->bp[t->over]);
		t->over = -1;
	}
	return set_debug(v, want_step(t));
}

static int on_break(struct wasp_virtine *v, int i)
{
	struct wasp_trace *t = v->trace;
	struct wasp_bp *b = &t->bp[i];
	unplant(v, b);
	int r = set_rip(v, b->addr);
	if (r < 0)
		return r;
	b->hits++;
	struct wasp_trace_event ev = {.kind = WASP_TRACE_BREAK, .addr = b->addr, .hits = b->hits};
	emit(v, &ev);
	/* Run the instruction under it, then plant it again (on_step). */
	t->over = i;
	t->prev_rip = b->addr;
	return set_debug(v, true);
}

/* A signal can end KVM_RUN after a step or an int3 has happened but before
 * PVM made a shutdown exit of its #DB/#BP: the exception then waits in the
 * vCPU events, queued, or already escalated to a triple fault that KVM has
 * yet to report (seen once in ~15 pauses during the step over a
 * breakpoint). It is ours, not the guest's, so it is settled here as its
 * exit would have been; kept, the next run or a restored checkpoint
 * triple-faults on it. The pending triple fault is visible only with
 * KVM_CAP_X86_TRIPLE_FAULT_EVENT, which trace_of() turns on. */
static void take_pending(struct wasp_virtine *v)
{
	struct wasp_trace *t = v->trace;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dr;
	struct wasp_regs regs;
	if (wasp__ioctl(v->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return;
	bool fault = (ev.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) && ev.triple_fault.pending;
	if (!(ev.exception.injected || ev.exception.pending || fault) ||
	    wasp__ioctl(v->vcpu_fd, KVM_GET_DEBUGREGS, &dr) < 0 ||
	    wasp_virtine_get_regs(v, &regs) < 0)
		return;
	unsigned nr = ev.exception.nr;
	int bp = -1;
	for (unsigned i = 0; i < t->nbp && nr == 3; i++)
		if (t->bp[i].planted && t->bp[i].addr + 1 == regs.rip)
			bp = (int)i;
	if (nr == 1 && (dr.dr6 & DR6_BS) && want_step(t)) {
		if (t->stepping && !(t->after_io && regs.rip == t->prev_rip))
			count_step(v, 0);
		t->over = -1;
	} else if (bp >= 0) {
		/* As on_break, without the step: the next run steps over it. */
		if (set_rip(v, t->bp[bp].addr) < 0)
			return;
		t->bp[bp].hits++;
		struct wasp_trace_event be = {.kind = WASP_TRACE_BREAK, .addr = t->bp[bp].addr,
					      .hits = t->bp[bp].hits};
		emit(v, &be);
		t->stop = false; /* the run ends here anyway */
	} else {
		return; /* the guest's own */
	}
	memset(&ev.exception, 0, sizeof ev.exception);
	ev.triple_fault.pending = 0;
	if (wasp__ioctl(v->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) == 0 && nr == 1) {
		dr.dr6 = DR6_RESET;
		wasp__ioctl(v->vcpu_fd, KVM_SET_DEBUGREGS, &dr);
	}
}

void wasp_trace_leave(struct wasp_virtine *v)
{
	struct wasp_trace *t = v->trace;
	if (t->debug_on)
		take_pending(v);
	for (unsigned i = 0; i < t->nbp; i++)
		unplant(v, &t->bp[i]);
	t->stepping = false;
	if (t->debug_on) {
		struct kvm_guest_debug off = {.control = 0};
		if (wasp__ioctl(v->vcpu_fd, KVM_SET_GUEST_DEBUG, &off) == 0)
			t->debug_on = false;
	}
}

int wasp_trace_exit(struct wasp_virtine *v, struct wasp_exit *e, int *err)
{
	struct wasp_trace *t = v->trace;
	struct kvm_run *run = v->run;
	uint32_t reason = run->exit_reason;

	if (reason == KVM_EXIT_INTR)
		return 0;
	t->exit_t = wasp_now_ns();
	if (asked(t, WASP_TRACE_EXIT)) {
		struct wasp_trace_event ev = {.kind = WASP_TRACE_EXIT, .kvm_exit = reason,
					      .t_ns = t->exit_t};
		emit(v, &ev);
	}
	if (t->debug_on && (reason == KVM_EXIT_DEBUG || reason == KVM_EXIT_SHUTDOWN)) {
		struct wasp_regs regs;
		int bp = -1;
		if ((*err = exit_regs(v, &regs)) < 0)
			return -1;
		enum dbg_kind k = classify(v, regs.rip, &bp);
		if (k == DBG_STEP)
			*err = on_step(v, regs.rip);
		else if (k == DBG_BREAK)
			*err = on_break(v, bp);
		if (k != DBG_NONE) {
			if (*err < 0)
				return -1;
			if (t->stop) {
				t->stop = false;
				e->reason = WASP_EXIT_PAUSED;
				return -1;
			}
			return 1;
		}
	}
	if (reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
	    run->io.port == WASP_PORT_HYPERCALL && asked(t, WASP_TRACE_HYPERCALL)) {
		struct wasp_regs regs;
		if (exit_regs(v, &regs) == 0) {
			uint64_t a[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};
			/* As the dispatcher reads them: 32-bit outside long mode (a
			 * real-mode image hands EFER and CS over with each exit). */
			const struct kvm_sregs *sr = &run->s.regs.sregs;
			bool lm = v->mode == WASP_MODE_LONG ||
				  ((run->kvm_valid_regs & KVM_SYNC_X86_SREGS) && (sr->efer & (1u << 10)) &&
				   sr->cs.l);
			uint64_t mask = lm ? ~0ull : 0xffffffffull;
			t->hc_nr = regs.rax & mask;
			for (int i = 0; i < 6; i++)
				t->hc_args[i] = a[i] & mask;
			t->hc_t0 = t->exit_t;
			t->hc_open = true;
		}
	}
	return 0;
}

void wasp_trace_syscall(struct wasp_virtine *v, uint64_t nr, const uint64_t a[6], int64_t result,
			uint64_t ns, const char *name)
{
	struct wasp_trace *t = v->trace;
	if (!t || !asked(t, WASP_TRACE_SYSCALL))
		return;
	struct wasp_trace_event ev = {.kind = WASP_TRACE_SYSCALL};
	ev.hc.nr = nr;
	memcpy(ev.hc.args, a, sizeof ev.hc.args);
	ev.hc.result = result;
	ev.hc.ns = ns;
	ev.hc.name = name;
	emit(v, &ev);
}

bool wasp_trace_after(struct wasp_virtine *v, struct wasp_exit *e, bool go)
{
	struct wasp_trace *t = v->trace;
	struct kvm_run *run = v->run;

	if (run->exit_reason == KVM_EXIT_IO) {
		uint64_t now = wasp_now_ns();
		if (want_step(t)) {
			/* The `in`/`out` ran; PVM drops the step across the exit, so
			 * guest debugging is set again before the guest goes on. */
			struct wasp_regs regs;
			if (t->stepping)
				count_step(v, t->exit_t);
			if (exit_regs(v, &regs) == 0)
				t->prev_rip = regs.rip;
			t->after_io = true;
			if (go)
				set_debug(v, want_step(t));
		}
		if (asked(t, WASP_TRACE_IO)) {
			struct wasp_trace_event ev = {
				.kind = WASP_TRACE_IO,
				.t_ns = t->exit_t,
				.io = {.port = run->io.port, .size = run->io.size,
				       .out = run->io.direction == KVM_EXIT_IO_OUT},
			};
			if (ev.io.out && run->io.size <= 8)
				memcpy(&ev.io.value, (uint8_t *)run + run->io.data_offset, run->io.size);
			emit(v, &ev);
		}
		if (t->hc_open) {
			t->hc_open = false;
			struct wasp_trace_event ev = {.kind = WASP_TRACE_HYPERCALL, .t_ns = t->hc_t0};
			ev.hc.nr = t->hc_nr;
			memcpy(ev.hc.args, t->hc_args, sizeof ev.hc.args);
			ev.hc.ns = now - t->hc_t0;
			ev.hc.name = t->hc_nr < WASP_HC_MAX ? v->hc[t->hc_nr].name : NULL;
			if (e->reason == WASP_EXIT_EXITED && !go)
				ev.hc.result = 0;
			else if (e->reason == WASP_EXIT_HYPERCALL && !go)
				ev.hc.result = -ENOSYS;
			else
				ev.hc.result = (int64_t)run->s.regs.regs.rax;
			if (!(run->kvm_valid_regs & KVM_SYNC_X86_REGS)) {
				struct wasp_regs regs;
				if (wasp_virtine_get_regs(v, &regs) == 0)
					ev.hc.result = (int64_t)regs.rax;
			}
			emit(v, &ev);
		}
	}
	if (!go && e->reason == WASP_EXIT_FAULT && asked(t, WASP_TRACE_FAULT)) {
		struct wasp_trace_event ev = {.kind = WASP_TRACE_FAULT, .addr = e->fault.addr,
					      .kvm_exit = e->fault.kvm_exit, .exit = e,
					      .regs = &e->fault.regs};
		emit(v, &ev);
	}
	if (t->stop) {
		t->stop = false;
		if (go) {
			e->reason = WASP_EXIT_PAUSED;
			return false;
		}
	}
	return go;
}
