/*
 * vmm_pool.c: a pool of ready virtines of one image, reset from a pristine
 * state (the guest's snapshot point, or the image just loaded) off the
 * caller's thread, and function-style calls through it. docs/pool.md says
 * what is guaranteed; this file says how.
 *
 * Why a template: the pristine state is built once, in the first virtine;
 * every later virtine is a clone of it (its pages copied in, its vCPU state
 * set), so guest initialisation runs once per pool, and one private copy
 * of the pristine memory serves every reset.
 *
 * Why reset is cheap: KVM's dirty log (manual-protect mode) names the
 * pages the guest wrote since the last reset, the vmm's own bitmap the
 * pages its handlers wrote, and only those are copied back; pages written
 * by every call stay writable ("hot", fetch_dirty) so calls do not fault on
 * them. The vCPU and host state go back through the vmm's one state
 * object (vmm_state.c), loading only the parts a call can change
 * (RESET_PARTS): the registers and special registers through
 * KVM_CAP_SYNC_REGS (kvm_run's shared area, applied by the next KVM_RUN),
 * so they cost no ioctl; the FPU/SSE/AVX state costs one KVM_SET_XSAVE.
 * Each vCPU ioctl costs about a guest exit on PVM (docs/design.md), hence
 * the counting.
 *
 * Why calls are cheap: a get pops a ready virtine; the argument can arrive
 * with the snapshot hypercall's return (no WASP_HC_GET_ARG exit), and
 * WASP_HC_SET_RET ends the run (no exit after it). Resets happen on the
 * pool's thread, or in a get that would otherwise sleep.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm_internal.h"
#include "vmm_linux.h"

#define POOL_DEFAULT_SIZE 4u
#define POOL_DEFAULT_ALLOW "get_arg,set_ret,snapshot,console_write"
#define POOL_INIT_TIMEOUT_NS (10ull * 1000000000ull)

#define CR0_PE 1ull
#define EFER_SCE 1ull

/* MSRs a guest at CPL 0 can write and a later call could read back: the
 * only ones the pristine state keeps, put back on reset when it can reach
 * ring 0. (FS/GS base and EFER travel in the special registers.) */
static const uint32_t ring0_msrs[] = {
	0x174, 0x175, 0x176,                 /* SYSENTER_CS/ESP/EIP */
	0x277,                               /* PAT */
	0xc0000081, 0xc0000082, 0xc0000083,  /* STAR, LSTAR, CSTAR */
	0xc0000084,                          /* SFMASK */
	0xc0000102, 0xc0000103,              /* KERNEL_GS_BASE, TSC_AUX */
};
#define N_RING0_MSRS (sizeof ring0_msrs / sizeof *ring0_msrs)

/* What a call can change, put back by every reset: the registers, the
 * FPU/SSE state (ordinary ring-3 state: C code leaves data in them), the
 * open files, the argument and result, the snapshot marks. Not the
 * console count (it adds up over the virtine's life) nor the sandbox's
 * growth (the files the guest wrote stay written). */
#define RESET_PARTS                                                                          \
	(WASP_VSTATE_REGS | WASP_VSTATE_SREGS | WASP_VSTATE_FPU | WASP_VSTATE_LINUX |         \
	 WASP_VSTATE_FILES | WASP_VSTATE_ARGS | WASP_VSTATE_MARKS)
/* ... and what only code at CPL 0 can change. */
#define RING0_PARTS (WASP_VSTATE_XCRS | WASP_VSTATE_DEBUGREGS | WASP_VSTATE_MSRS)
/* A clone's fresh vCPU needs both; its events, mp_state and CPUID are a
 * fresh vCPU's already. */
#define CLONE_PARTS (RESET_PARTS | RING0_PARTS | WASP_VSTATE_MODE)

/* The state every virtine handed out is in. */
struct pristine {
	struct wasp_vstate vs;
	/* The guest may reach ring 0 from here: MSRs, debug registers and
	 * XCR0 are then put back on every reset, not only on a clone. */
	bool ring0;
	uint8_t *mem;       /* private anonymous copy; untouched pages read zero */
	uint64_t *present;  /* pages that held data when captured */
	size_t npresent;
	/* The buffer the guest named in its snapshot hypercall (0: none): each
	 * call's argument is copied there before it starts, and its length
	 * becomes the hypercall's result (docs/pool.md). */
	wasp_gpa_t arg_buf;
	uint64_t arg_cap;
};

struct wasp_pool {
	struct wasp_pool_config cfg;
	uint8_t *image; /* our copy, or NULL when loading from image_path */
	char *image_path;
	char **argv, **envp; /* a Linux program's (our copies), or NULL */
	char *allow;
	bool snapshot;

	size_t mem_size, words;
	struct pristine st;

	pthread_mutex_t lock;
	pthread_cond_t work;  /* the pool thread waits here */
	pthread_cond_t ready_cv; /* getters and fill wait here */
	pthread_t thread;
	bool thread_started;

	/* Virtines by state; each array holds at most cfg.size. */
	struct wasp_virtine **ready, **dirty, **dead;
	unsigned nready, ndirty, ndead;
	unsigned total;  /* alive, in any state (also being made or reset) */
	unsigned out;    /* handed out */
	unsigned busy;   /* being made, reset or destroyed (pool thread or a get) */
	bool closing;    /* wasp_pool_destroy has begun */
	bool destroyed;  /* ... and done its part: the last give-back frees */
	unsigned waiters; /* in get or fill: destroy waits for them to leave */
	int err;         /* the pool thread's last failure, for a waiting get */
	char errmsg[256];

	struct wasp_pool_stats stats;
};

void wasp_pool_config_init(struct wasp_pool_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	wasp_config_init(&cfg->vm);
	cfg->mode = WASP_MODE_AUTO;
}

/* ---- capture and apply ---------------------------------------------- */

static void pristine_free(struct pristine *st, size_t mem_size)
{
	wasp_vstate_free(&st->vs);
	if (st->mem && st->mem != MAP_FAILED)
		munmap(st->mem, mem_size);
	free(st->present);
	memset(st, 0, sizeof *st);
}

/* Copies the pages of guest memory that hold data into the pristine copy.
 * The memfd says which (SEEK_DATA), so a big guest that touched little
 * costs little, and holes are never read (reading one would allocate it). */
static int capture_memory(struct wasp_pool *p, struct wasp_virtine *v)
{
	struct pristine *st = &p->st;
	off_t end = (off_t)v->mem_size, pos = 0;

	st->mem = mmap(NULL, v->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (st->mem == MAP_FAILED) {
		st->mem = NULL;
		return wasp_fail(-errno, "pool: mmap of the pristine copy: %s", strerror(errno));
	}
	st->present = calloc(p->words, sizeof(uint64_t));
	if (!st->present)
		return wasp_fail(-ENOMEM, "pool: out of memory for the pristine page map");
	while (pos < end) {
		off_t data = lseek(v->mem_fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return wasp_fail(-errno, "pool: SEEK_DATA on guest memory: %s", strerror(errno));
		off_t hole = lseek(v->mem_fd, data, SEEK_HOLE);
		if (hole < 0)
			return wasp_fail(-errno, "pool: SEEK_HOLE on guest memory: %s", strerror(errno));
		if (hole > end)
			hole = end;
		size_t first = (size_t)data / WASP_PAGE_SIZE;
		size_t last = ((size_t)hole + WASP_PAGE_SIZE - 1) / WASP_PAGE_SIZE;
		memcpy(st->mem + first * WASP_PAGE_SIZE, v->mem + first * WASP_PAGE_SIZE,
		       (last - first) * WASP_PAGE_SIZE);
		for (size_t pg = first; pg < last; pg++)
			st->present[pg / 64] |= 1ull << (pg % 64);
		st->npresent += last - first;
		pos = (off_t)(last * WASP_PAGE_SIZE);
	}
	/* Pages mapped from a file (a big image, a Linux program's segments:
	 * vmm_map.c) hold data the memfd does not: a clone needs them too. */
	const uint64_t *fm = wasp_virtine_file_mapped(v);
	for (size_t pg = 0; fm && pg < v->mem_size / WASP_PAGE_SIZE; pg++) {
		if (!(fm[pg / 64] & (1ull << (pg % 64))) || (st->present[pg / 64] & (1ull << (pg % 64))))
			continue;
		memcpy(st->mem + pg * WASP_PAGE_SIZE, v->mem + pg * WASP_PAGE_SIZE, WASP_PAGE_SIZE);
		st->present[pg / 64] |= 1ull << (pg % 64);
		st->npresent++;
	}
	return 0;
}

/* Records the state of a virtine standing at an instruction boundary. */
static int capture(struct wasp_pool *p, struct wasp_virtine *v)
{
	struct pristine *st = &p->st;
	struct wasp_vstate *vs = &st->vs;
	int r;

	if ((r = wasp_vstate_save(v, CLONE_PARTS, vs)) < 0)
		return r;
	/* A pending interrupt in the bitmap would be injected on every reset. */
	memset(vs->sregs.interrupt_bitmap, 0, sizeof vs->sregs.interrupt_bitmap);
	wasp_vstate_keep_msrs(vs, ring0_msrs, N_RING0_MSRS);
	/* Every call starts with its snapshot hypercall answered (the pool
	 * completed its `out`), and with no argument or result of its own. */
	vs->hypercall_pending = false;
	free(vs->arg);
	free(vs->ret);
	vs->arg = vs->ret = NULL;
	vs->arg_len = vs->ret_len = 0;
	/* Ring 3 without an IDT or SYSCALL has no way into ring 0 (any
	 * exception triple-faults), so its MSRs cannot change. */
	st->ring0 = !(vs->sregs.cr0 & CR0_PE) || vs->sregs.cs.dpl == 0 || vs->sregs.ss.dpl == 0 ||
		    vs->sregs.idt.limit != 0 || (vs->sregs.efer & EFER_SCE);
	return capture_memory(p, v);
}

/* Puts v in the pristine state: `parts` of it through the vmm's state
 * object, then the run loop's own bookkeeping. Registers go through the
 * sync area, and wait there after an ioctl too, so a call can hand over
 * its argument's length in rax for free. */
static int apply(struct wasp_pool *p, struct wasp_virtine *v, unsigned parts)
{
	/* What the last call wrote is not this one's. */
	wasp_hc_files_forget(v);
	/* An MSR this host refuses to set stays as the vCPU has it, as a
	 * checkpoint's would: nothing to report to a caller. */
	int r = wasp_vstate_load(v, &p->st.vs, parts | WASP_VSTATE_SYNCED, NULL, 0);
	if (r < 0)
		return r;
	v->last_exit = -2; /* pristine: wasp_pool_put() may take it back unrun */
	atomic_store(&v->pause_req, false);
	v->run->immediate_exit = 0;
	return 0;
}

/* Does the vCPU still owe the completion of the `out` it exited on at the
 * address the pristine state starts at? KVM finishes a pending `out` on the
 * next entry by skipping the instruction at the recorded linear rip, unless
 * rip has moved away; starting again at that very address (the three-byte
 * image does: its only instruction is the exit) would skip it. */
static bool pending_io_at_start(struct wasp_pool *p, struct wasp_virtine *v)
{
	const struct kvm_run *run = v->run;
	if (!(run->kvm_valid_regs & KVM_SYNC_X86_REGS))
		return true; /* cannot tell: finish it */
	if (run->exit_reason != KVM_EXIT_IO)
		return false;
	uint64_t base = run->kvm_valid_regs & KVM_SYNC_X86_SREGS ? run->s.regs.sregs.cs.base : 0;
	return run->s.regs.regs.rip + base == p->st.vs.regs.rip + p->st.vs.sregs.cs.base;
}

/* Most pages a virtine keeps writable: a reset copies each of them every
 * time, so the set stays small (1 MiB). */
#define POOL_MAX_HOT 256u

/* wasp_virtine_dirty_fetch(), with one twist that takes KVM's write-protect
 * fault off the call path: a page dirtied by two resets in a row becomes
 * *hot*. Hot pages are left out of KVM_CLEAR_DIRTY_LOG, so they stay
 * writable (no fault when the next call writes them) and stay set in KVM's
 * bitmap, so every later fetch reports them and every reset restores
 * them: leaving a page unprotected can only make a reset copy more, never
 * miss a page. A call that writes its stack page saves ~30 us (a fault on
 * PVM's shadow paging, measured) for a 4 KiB copy on the pool's thread. */
static int fetch_dirty(struct wasp_pool *p, struct wasp_virtine *v, uint64_t *bm)
{
	size_t words = p->words;
	uint64_t *hot = v->pool_maps, *last = hot + words, *rearm = hot + 3 * words;
	int r;

	pthread_mutex_lock(&v->dirty_lock);
	if (!v->dirty_active || !v->manual_protect) {
		pthread_mutex_unlock(&v->dirty_lock);
		return wasp_virtine_dirty_fetch(v, bm);
	}
	struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = v->kvm_dirty};
	memset(v->kvm_dirty, 0, words * sizeof(uint64_t));
	if ((r = kvm_ioctl(v->vm_fd, KVM_GET_DIRTY_LOG, &log)) < 0)
		goto out;
	for (size_t w = 0; w < words; w++) {
		uint64_t fresh = v->kvm_dirty[w] & last[w] & ~hot[w];
		while (fresh && v->pool_nhot < POOL_MAX_HOT) {
			hot[w] |= fresh & -fresh;
			fresh &= fresh - 1;
			v->pool_nhot++;
		}
		last[w] = v->kvm_dirty[w];
		rearm[w] = v->kvm_dirty[w] & ~hot[w];
	}
	struct kvm_clear_dirty_log clear = {
		.slot = 0,
		.first_page = 0,
		.num_pages = (uint32_t)(v->mem_size / WASP_PAGE_SIZE),
		.dirty_bitmap = rearm,
	};
	if ((r = kvm_ioctl(v->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear)) < 0)
		goto out;
	for (size_t w = 0; w < words; w++)
		bm[w] |= v->kvm_dirty[w] | __atomic_exchange_n(&v->host_dirty[w], 0, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&v->dirty_lock);
	return r;
}

/* Puts a used virtine back into the pristine state. Whoever took it off
 * the dirty list does this (the pool thread, or a get that would wait):
 * everything it writes belongs to this virtine. */
static int reset(struct wasp_pool *p, struct wasp_virtine *v, uint64_t *pages)
{
	int r;
	*pages = 0;
	if (!v->pool_maps && !(v->pool_maps = calloc(4 * p->words, sizeof(uint64_t))))
		return wasp_fail(-ENOMEM, "pool: out of memory for the page maps");
	uint64_t *bm = v->pool_maps + 2 * p->words;
	if (pending_io_at_start(p, v) && (r = wasp_virtine_complete_io(v)) < 0)
		return r;
	memset(bm, 0, p->words * sizeof(uint64_t));
	if ((r = fetch_dirty(p, v, bm)) < 0)
		return r;
	for (size_t w = 0; w < p->words; w++) {
		uint64_t bits = bm[w];
		while (bits) {
			size_t pg = w * 64 + (size_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			memcpy(v->mem + pg * WASP_PAGE_SIZE, p->st.mem + pg * WASP_PAGE_SIZE,
			       WASP_PAGE_SIZE);
			(*pages)++;
		}
	}
	return apply(p, v, RESET_PARTS | WASP_VSTATE_LAZY | (p->st.ring0 ? RING0_PARTS : 0));
}

/* ---- making virtines -------------------------------------------------- */

static int new_virtine(struct wasp_pool *p, struct wasp_virtine **out)
{
	struct wasp_virtine *v;
	int r = wasp_virtine_create(&p->cfg.vm, &v);
	if (r < 0)
		return r;
	v->pool = p;
	if (p->cfg.setup && (r = p->cfg.setup(v, p->cfg.setup_opaque)) < 0)
		goto fail;
	if ((r = wasp_virtine_allow(v, p->allow)) < 0)
		goto fail;
	*out = v;
	return 0;
fail:
	wasp_virtine_destroy(v);
	return r;
}

/* A new virtine in the pristine state: the pristine pages copied into its
 * (empty) memory, its vCPU set from scratch, dirty logging on. */
static int clone_virtine(struct wasp_pool *p, struct wasp_virtine **out)
{
	struct wasp_virtine *v;
	int r = new_virtine(p, &v);
	if (r < 0)
		return r;
	for (size_t w = 0; w < p->words; w++) {
		uint64_t bits = p->st.present[w];
		while (bits) {
			/* Runs of present pages are copied as one. */
			size_t first = w * 64 + (size_t)__builtin_ctzll(bits);
			size_t n = 0;
			while (bits && w * 64 + (size_t)__builtin_ctzll(bits) == first + n) {
				bits &= bits - 1;
				n++;
			}
			memcpy(v->mem + first * WASP_PAGE_SIZE, p->st.mem + first * WASP_PAGE_SIZE,
			       n * WASP_PAGE_SIZE);
		}
	}
	v->used = true;
	if ((r = apply(p, v, CLONE_PARTS)) < 0 || (r = wasp_virtine_dirty_start(v)) < 0)
		goto fail;
	v->hc_stop = 1ull << WASP_HC_SET_RET;
	*out = v;
	return 0;
fail:
	wasp_virtine_destroy(v);
	return r;
}

static bool image_has_header(const uint8_t *img, size_t len)
{
	return len >= WASP_IMAGE_HEADER_OFFSET + sizeof(struct wasp_image_header) &&
	       img[0] == 0xEB &&
	       !memcmp(img + WASP_IMAGE_HEADER_OFFSET, WASP_IMAGE_MAGIC, 8);
}

static bool is_elf(const uint8_t *img, size_t len)
{
	return len >= 4 && !memcmp(img, "\177ELF", 4);
}

/* Loads the pool's image into v; a Linux program with its arguments. */
static int load_image(struct wasp_pool *p, struct wasp_virtine *v)
{
	const char *const *argv = (const char *const *)p->argv;
	const char *const *envp = (const char *const *)p->envp;
	if (p->image) {
		if (is_elf(p->image, p->cfg.image_len))
			return wasp_lx_load_buffer(v, p->image, p->cfg.image_len, argv, envp);
		return wasp_virtine_load(v, p->image, p->cfg.image_len, p->cfg.load_gpa, p->cfg.mode);
	}
	if ((argv || envp) && wasp_linux_probe(p->image_path) > 0)
		return wasp_virtine_load_linux(v, p->image_path, argv, envp);
	return wasp_virtine_load_file(v, p->image_path, p->cfg.load_gpa, p->cfg.mode);
}

/* A deep copy of a NULL-terminated string vector (NULL stays NULL); false
 * when out of memory. */
static bool copy_strv(const char *const *in, char ***out)
{
	*out = NULL;
	if (!in)
		return true;
	size_t n = 0;
	while (in[n])
		n++;
	char **c = calloc(n + 1, sizeof *c);
	if (!c)
		return false;
	*out = c;
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(in[i])))
			return false;
	return true;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* The first virtine: load, run to the snapshot point, capture. It stays in
 * the pool as its first ready virtine. */
static int build_pristine(struct wasp_pool *p, struct wasp_virtine **out)
{
	struct wasp_virtine *v;
	struct wasp_exit e;
	int r = new_virtine(p, &v);
	if (r < 0)
		return r;
	r = load_image(p, v);
	if (r < 0)
		goto fail;
	if (p->snapshot) {
		v->hc_stop = 1ull << WASP_HC_SNAPSHOT;
		uint64_t limit = p->cfg.init_timeout_ns ? p->cfg.init_timeout_ns : POOL_INIT_TIMEOUT_NS;
		if ((r = wasp_virtine_run(v, limit, &e)) < 0)
			goto fail;
		if (e.reason == WASP_EXIT_TIMEOUT) {
			r = wasp_fail(-ETIMEDOUT, "pool: the guest did not reach its snapshot "
				      "hypercall within %llu ms", (unsigned long long)(limit / 1000000));
			goto fail;
		}
		if (e.reason != WASP_EXIT_HYPERCALL || e.hypercall.nr != WASP_HC_SNAPSHOT) {
			if (e.reason == WASP_EXIT_EXITED)
				r = wasp_fail(-ENOEXEC, "pool: the guest exited (code %lld) before its "
					      "snapshot hypercall; make it call wasp_snapshot() or "
					      "turn snapshots off", (long long)e.code);
			else if (e.reason == WASP_EXIT_FAULT)
				r = wasp_fail(-ENOEXEC, "pool: the guest faulted (%s at rip 0x%llx) "
					      "before its snapshot hypercall",
					      wasp_fault_kind_name(e.fault.kind),
					      (unsigned long long)e.fault.regs.rip);
			else
				r = wasp_fail(-ENOEXEC, "pool: the guest stopped (%s) before its "
					      "snapshot hypercall", wasp_exit_reason_name(e.reason));
			goto fail;
		}
		/* Finish the `out` so rip stands after it with rax = 0: calls
		 * resume right there, seeing wasp_snapshot() return 0 (or the
		 * argument's length). */
		if ((r = wasp_virtine_complete_io(v)) < 0)
			goto fail;
		uint64_t buf = e.hypercall.args[0], cap = e.hypercall.args[1];
		if (e.hypercall.args[2] == WASP_SNAPSHOT_ARG && cap) {
			if (cap > WASP_MAX_ARG || !wasp_virtine_gpa(v, buf, cap)) {
				r = wasp_fail(-EFAULT, "pool: the snapshot hypercall names an "
					      "argument buffer outside guest memory (0x%llx, %llu bytes)",
					      (unsigned long long)buf, (unsigned long long)cap);
				goto fail;
			}
			p->st.arg_buf = buf;
			p->st.arg_cap = cap;
		}
	}
	if ((r = capture(p, v)) < 0 || (r = wasp_virtine_dirty_start(v)) < 0)
		goto fail;
	v->hc_stop = 1ull << WASP_HC_SET_RET;
	v->last_exit = -2;
	v->run->kvm_dirty_regs = 0;
	const struct wasp_kvm *k;
	if (wasp_kvm_get(&k) == 0 && k->sync_regs) {
		v->run->s.regs.regs = p->st.vs.regs;
		v->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
	}
	*out = v;
	return 0;
fail:
	wasp_virtine_destroy(v);
	return r;
}

/* ---- the pool thread ---------------------------------------------------- */

static void set_err(struct wasp_pool *p, int r)
{
	p->err = r;
	snprintf(p->errmsg, sizeof p->errmsg, "%s", wasp_last_error());
}

/* Takes a virtine off the dirty list and resets it, with the lock held on
 * entry and exit (dropped meanwhile). Returns it, or NULL when the reset
 * failed and it was destroyed. */
static struct wasp_virtine *reset_one(struct wasp_pool *p)
{
	struct wasp_virtine *v = p->dirty[--p->ndirty];
	uint64_t pages;
	p->busy++;
	pthread_mutex_unlock(&p->lock);
	uint64_t t0 = wasp_now_ns();
	int r = reset(p, v, &pages);
	uint64_t dt = wasp_now_ns() - t0;
	if (r < 0)
		wasp_virtine_destroy(v);
	pthread_mutex_lock(&p->lock);
	p->busy--;
	if (r < 0) {
		p->total--;
		p->stats.destroyed++;
		set_err(p, r);
		return NULL;
	}
	p->stats.resets++;
	p->stats.reset_pages += pages;
	p->stats.reset_ns += dt;
	return v;
}

static void *pool_thread(void *arg)
{
	struct wasp_pool *p = arg;

	/* A batch thread does not preempt the thread that woke it: without
	 * this, a put's wake-up ran the whole reset before the put returned
	 * (measured: put 18 us instead of 0.3), i.e. on the caller's time. */
	struct sched_param sp = {0};
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct wasp_virtine *v;
		int r;
		if (p->closing)
			break;
		if (p->ndead) {
			v = p->dead[--p->ndead];
			p->busy++;
			pthread_mutex_unlock(&p->lock);
			wasp_virtine_destroy(v);
			pthread_mutex_lock(&p->lock);
			p->busy--;
			p->total--;
			p->stats.destroyed++;
			continue;
		}
		if (p->ndirty) {
			if ((v = reset_one(p)))
				p->ready[p->nready++] = v;
			pthread_cond_broadcast(&p->ready_cv);
			continue;
		}
		if (p->total < p->cfg.size && !p->err) {
			p->total++;
			p->busy++;
			pthread_mutex_unlock(&p->lock);
			r = clone_virtine(p, &v);
			pthread_mutex_lock(&p->lock);
			p->busy--;
			if (r < 0) {
				p->total--;
				set_err(p, r);
			} else {
				p->ready[p->nready++] = v;
				p->stats.created++;
			}
			pthread_cond_broadcast(&p->ready_cv);
			continue;
		}
		pthread_cond_broadcast(&p->ready_cv); /* wasp_pool_fill waits for quiet */
		pthread_cond_wait(&p->work, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- the public calls --------------------------------------------------- */

static void pool_free(struct wasp_pool *p)
{
	pristine_free(&p->st, p->mem_size);
	free(p->ready);
	free(p->dirty);
	free(p->dead);
	free(p->image);
	free(p->image_path);
	free_strv(p->argv);
	free_strv(p->envp);
	free(p->allow);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->ready_cv);
	free(p);
}

int wasp_pool_create(const struct wasp_pool_config *cfg, struct wasp_pool **out)
{
	struct wasp_pool *p;
	struct wasp_virtine *first = NULL;
	uint64_t t0 = wasp_now_ns();
	int r;

	*out = NULL;
	if (!cfg || (!cfg->image == !cfg->image_path) || (cfg->image && !cfg->image_len))
		return wasp_fail(-EINVAL, "pool: give exactly one of image (with its length) "
				 "and image_path");
	if (!(p = calloc(1, sizeof *p)))
		return wasp_fail(-ENOMEM, "pool: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->ready_cv, NULL);
	p->cfg = *cfg;
	if (!p->cfg.size)
		p->cfg.size = POOL_DEFAULT_SIZE;
	if (!p->cfg.vm.mem_size)
		p->cfg.vm.mem_size = WASP_DEFAULT_MEM;
	p->mem_size = p->cfg.vm.mem_size;
	p->words = (p->mem_size / WASP_PAGE_SIZE + 63) / 64;
	p->allow = strdup(cfg->allow ? cfg->allow : POOL_DEFAULT_ALLOW);
	p->ready = calloc(p->cfg.size, sizeof *p->ready);
	p->dirty = calloc(p->cfg.size, sizeof *p->dirty);
	p->dead = calloc(p->cfg.size, sizeof *p->dead);
	if (cfg->image) {
		if ((p->image = malloc(cfg->image_len)))
			memcpy(p->image, cfg->image, cfg->image_len);
	} else {
		p->image_path = strdup(cfg->image_path);
	}
	bool strv_ok = copy_strv(cfg->argv, &p->argv) && copy_strv(cfg->envp, &p->envp);
	if (!p->allow || !p->ready || !p->dirty || !p->dead || !strv_ok ||
	    (!p->image && !p->image_path)) {
		r = wasp_fail(-ENOMEM, "pool: out of memory");
		goto fail;
	}
	p->cfg.image = NULL;
	p->cfg.image_path = NULL;
	p->cfg.allow = NULL;
	p->cfg.argv = NULL;
	p->cfg.envp = NULL;

	/* Snapshots need an image that says it is a C virtine (header):
	 * a bare real-mode image has no runtime that could make the call. */
	const char *env = getenv("WASP_NO_SNAPSHOT");
	bool env_off = env && *env && strcmp(env, "0");
	bool header = false;
	if (p->image) {
		header = image_has_header(p->image, cfg->image_len) ||
			 is_elf(p->image, cfg->image_len); /* a Linux program */
	} else {
		uint8_t head[WASP_IMAGE_HEADER_OFFSET + sizeof(struct wasp_image_header)];
		int fd = open(p->image_path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, head, sizeof head);
			header = n == (ssize_t)sizeof head && image_has_header(head, sizeof head);
			close(fd);
		}
		/* A Linux program snapshots where it calls wasp_serve() */
		header = header || wasp_linux_probe(p->image_path) > 0;
	}
	p->snapshot = cfg->snapshot == WASP_POOL_SNAPSHOT_AUTO && header && !env_off;

	if ((r = build_pristine(p, &first)) < 0)
		goto fail;
	p->ready[p->nready++] = first;
	p->total = 1;
	p->stats.created = 1;
	p->stats.snapshot = p->snapshot;
	p->stats.pristine_pages = p->st.npresent;
	p->stats.init_ns = wasp_now_ns() - t0;

	if ((r = pthread_create(&p->thread, NULL, pool_thread, p)) != 0) {
		r = wasp_fail(-r, "pool: cannot start its thread: %s", strerror(r));
		wasp_virtine_destroy(first);
		goto fail;
	}
	p->thread_started = true;
	*out = p;
	return 0;
fail:
	pool_free(p);
	return r;
}

void wasp_pool_destroy(struct wasp_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->closing = true;
	pthread_cond_broadcast(&p->work);
	pthread_cond_broadcast(&p->ready_cv);
	pthread_mutex_unlock(&p->lock);
	if (p->thread_started)
		pthread_join(p->thread, NULL);
	/* Gets and fills already waiting return -ESHUTDOWN; let them leave
	 * before anything is freed. */
	pthread_mutex_lock(&p->lock);
	while (p->waiters)
		pthread_cond_wait(&p->ready_cv, &p->lock);
	pthread_mutex_unlock(&p->lock);

	/* The thread is gone: what is not out is ours alone. */
	while (p->nready)
		wasp_virtine_destroy(p->ready[--p->nready]);
	while (p->ndirty)
		wasp_virtine_destroy(p->dirty[--p->ndirty]);
	while (p->ndead)
		wasp_virtine_destroy(p->dead[--p->ndead]);
	pthread_mutex_lock(&p->lock);
	p->destroyed = true;
	bool last = p->out == 0;
	pthread_mutex_unlock(&p->lock);
	if (last)
		pool_free(p);
}

/* A waiting get or fill is done (lock held); destroy waits for the last. */
static void leave(struct wasp_pool *p)
{
	if (!--p->waiters && p->closing)
		pthread_cond_broadcast(&p->ready_cv);
}

int wasp_pool_get(struct wasp_pool *p, struct wasp_virtine **out)
{
	bool waited = false;
	*out = NULL;
	pthread_mutex_lock(&p->lock);
	while (!p->nready || p->closing) {
		if (p->closing) {
			if (waited)
				leave(p);
			pthread_mutex_unlock(&p->lock);
			return wasp_fail(-ESHUTDOWN, "pool: it is being destroyed");
		}
		if (p->err && !p->busy && !p->ndirty && !p->ndead) {
			/* Nothing in flight will bring a virtine: report why, and
			 * let the pool thread try again for the next get. */
			int r = p->err;
			char msg[sizeof p->errmsg];
			memcpy(msg, p->errmsg, sizeof msg);
			p->err = 0;
			if (waited)
				leave(p);
			pthread_cond_signal(&p->work);
			pthread_mutex_unlock(&p->lock);
			return wasp_fail(r, "%s", msg);
		}
		if (p->ndirty) {
			/* Rather than sleep until the pool thread gets to it, reset
			 * one here: the caller would wait at least that long, and
			 * a wake-up on a busy host costs more than the reset. */
			struct wasp_virtine *v = reset_one(p);
			if (!v)
				continue;
			p->stats.inline_resets++;
			if (waited)
				leave(p);
			*out = v;
			p->out++;
			p->stats.gets++;
			p->stats.get_waits++;
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		if (!waited)
			p->waiters++;
		waited = true;
		pthread_cond_wait(&p->ready_cv, &p->lock);
	}
	if (waited)
		leave(p);
	*out = p->ready[--p->nready];
	p->out++;
	p->stats.gets++;
	p->stats.get_waits += waited;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void give_back(struct wasp_pool *p, struct wasp_virtine *v, bool reuse)
{
	if (!v || v->pool != p)
		return; /* not ours: taking it would corrupt the counts */
	pthread_mutex_lock(&p->lock);
	p->out--;
	if (p->closing) {
		bool last = p->out == 0 && p->destroyed;
		pthread_mutex_unlock(&p->lock);
		wasp_virtine_destroy(v);
		if (last)
			pool_free(p);
		return;
	}
	if (reuse) {
		p->dirty[p->ndirty++] = v;
		p->stats.puts++;
	} else {
		p->dead[p->ndead++] = v;
		p->stats.discards++;
	}
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

void wasp_pool_put(struct wasp_pool *p, struct wasp_virtine *v)
{
	/* A fault or a timeout may leave the vCPU mid-exception or in a
	 * shutdown state; a host error says nothing reliable at all. */
	bool ok = v && v->pool == p && !v->hc_pending &&
		  (v->last_exit == WASP_EXIT_EXITED || v->last_exit == WASP_EXIT_HYPERCALL ||
		   v->last_exit == WASP_EXIT_PAUSED || v->last_exit == -2);
	give_back(p, v, ok);
}

void wasp_pool_discard(struct wasp_pool *p, struct wasp_virtine *v)
{
	give_back(p, v, false);
}

int wasp_pool_fill(struct wasp_pool *p)
{
	int r = 0;
	pthread_mutex_lock(&p->lock);
	pthread_cond_signal(&p->work);
	p->waiters++;
	while (!p->closing && !p->err &&
	       (p->total < p->cfg.size || p->busy || p->ndirty || p->ndead))
		pthread_cond_wait(&p->ready_cv, &p->lock);
	leave(p);
	if (p->closing)
		r = wasp_fail(-ESHUTDOWN, "pool: it is being destroyed");
	else if (p->err)
		r = wasp_fail(p->err, "%s", p->errmsg);
	pthread_mutex_unlock(&p->lock);
	return r;
}

void wasp_pool_stats(struct wasp_pool *p, struct wasp_pool_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	out->ready = p->nready;
	out->out = p->out;
	pthread_mutex_unlock(&p->lock);
}

/* ---- function-style calls ---------------------------------------------- */

const char *wasp_call_status_name(enum wasp_call_status s)
{
	switch (s) {
	case WASP_CALL_RETURNED: return "returned";
	case WASP_CALL_EXITED: return "exited";
	case WASP_CALL_FAULT: return "fault";
	case WASP_CALL_TIMEOUT: return "timeout";
	case WASP_CALL_HOST_ERROR: return "host error";
	}
	return "?";
}

int wasp_pool_set_arg(struct wasp_pool *p, struct wasp_virtine *v, const void *in, size_t len)
{
	int r = wasp_virtine_set_arg(v, in, len);
	if (r < 0 || !p->st.arg_buf)
		return r;
	/* The guest's snapshot hypercall returns the length, with the bytes
	 * already in its buffer: no WASP_HC_GET_ARG exit. The page is marked
	 * dirty (host write), so the next reset restores it. */
	size_t n = len < p->st.arg_cap ? len : (size_t)p->st.arg_cap;
	void *dst = wasp_virtine_gpa_w(v, p->st.arg_buf, n);
	if (!dst)
		return wasp_fail(-EFAULT, "pool: argument buffer outside guest memory");
	if (n)
		memcpy(dst, in, n);
	struct wasp_regs regs;
	if ((r = wasp_virtine_get_regs(v, &regs)) < 0)
		return r;
	regs.rax = (uint64_t)len;
	return wasp_virtine_set_regs(v, &regs);
}

int wasp_call(struct wasp_pool *p, const void *in, size_t in_len, void *out, size_t out_cap,
	      struct wasp_call_info *info)
{
	struct wasp_call_info scratch;
	struct wasp_virtine *v;
	int r;

	if (!info)
		info = &scratch;
	memset(info, 0, sizeof *info);
	info->status = WASP_CALL_HOST_ERROR;
	if (in_len > WASP_MAX_ARG)
		return wasp_fail(-E2BIG, "call: argument of %zu bytes exceeds %u", in_len,
				 WASP_MAX_ARG);
	if ((r = wasp_pool_get(p, &v)) < 0)
		return r;
	if ((r = wasp_pool_set_arg(p, v, in, in_len)) < 0) {
		wasp_pool_put(p, v);
		return r;
	}
	struct wasp_exit *e = &info->exit;
	if ((r = wasp_virtine_run(v, p->cfg.call_timeout_ns, e)) < 0) {
		wasp_pool_discard(p, v);
		return r;
	}
	switch (e->reason) {
	case WASP_EXIT_HYPERCALL:
		if (e->hypercall.nr == WASP_HC_SET_RET) {
			size_t len;
			const void *ret = wasp_virtine_ret(v, &len);
			info->status = WASP_CALL_RETURNED;
			info->ret_len = len;
			if (len)
				memcpy(out, ret, len < out_cap ? len : out_cap);
			r = len > out_cap ? wasp_fail(-EMSGSIZE, "call: result of %zu bytes, room "
						     "for %zu", len, out_cap)
					  : (int)len;
		} else {
			r = wasp_fail(-ENOSYS, "call: the guest made hypercall %llu, which nobody "
				      "answers", (unsigned long long)e->hypercall.nr);
		}
		break;
	case WASP_EXIT_EXITED:
		info->exit_code = e->code;
		if (e->code == 0) {
			info->status = WASP_CALL_RETURNED;
			r = 0;
		} else {
			info->status = WASP_CALL_EXITED;
			r = wasp_fail(-ECHILD, "call: the guest exited with code %lld and no result",
				      (long long)e->code);
		}
		break;
	case WASP_EXIT_FAULT:
		info->status = WASP_CALL_FAULT;
		r = wasp_fail(-EFAULT, "call: the guest faulted: %s at rip 0x%llx",
			      wasp_fault_kind_name(e->fault.kind),
			      (unsigned long long)e->fault.regs.rip);
		break;
	case WASP_EXIT_TIMEOUT:
		info->status = WASP_CALL_TIMEOUT;
		r = wasp_fail(-ETIMEDOUT, "call: the guest ran past %llu us",
			      (unsigned long long)(p->cfg.call_timeout_ns / 1000));
		break;
	default:
		r = wasp_fail(-EINTR, "call: the run ended %s", wasp_exit_reason_name(e->reason));
		break;
	}
	wasp_pool_put(p, v);
	return r;
}
