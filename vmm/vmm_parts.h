/*
 * vmm_parts.h: what libwasp's own parts (ckpt/, migrate/, the tools and
 * tests built with the library) reach inside a virtine for, and embedders
 * never need: the virtine's state object (saved and loaded by
 * vmm_state.c), the guest's written files, the host's CPUID, and
 * wasp_fail(). Not installed, and nothing here is exported from
 * libwasp.so (the build checks: tests/tools/exports_test.sh).
 */
#ifndef WASP_VMM_PARTS_H
#define WASP_VMM_PARTS_H

#include <linux/kvm.h>

#include "vmm.h"

/* Open files a state holds at most (the vmm's WASP_MAX_FILES). */
#define WASP_VSTATE_MAX_FILES 32

/* For libwasp's own parts (ckpt/, migrate/): records the message for
 * wasp_last_error() and returns `err`, so a failure reads
 * `return wasp_fail(-EINVAL, "...", ...)`. */
int wasp_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- The virtine's state (vmm_state.c) -----------------------------------
 * One object holds what a virtine is between two runs: the vCPU as KVM
 * keeps it and the host side behind its hypercalls. ckpt/ encodes and
 * decodes it, the pool keeps one as its pristine state; only vmm/ talks to
 * KVM about it. The order of saving and loading is written down once, at
 * the top of vmm_state.c. */

/* A file the guest holds open. */
struct wasp_vstate_file {
	unsigned guest_fd;
	char *path;     /* as the guest opened it, relative to the sandbox */
	int flags;      /* WASP_O_* (a Linux program: open(2)'s own) */
	int64_t offset; /* where the guest had got to (negative: unknown) */
};

struct wasp_vstate {
	/* the vCPU */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	void *xsave; /* struct kvm_xsave of xsave_size bytes, or NULL */
	size_t xsave_size;
	struct kvm_fpu fpu; /* when there is no XSAVE */
	bool have_fpu;
	struct kvm_xcrs xcrs;
	bool have_xcrs;
	struct kvm_msrs *msrs; /* those this host's KVM reads (probed once) */
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_mp_state mp_state;
	struct kvm_cpuid2 *cpuid;
	/* the host side */
	enum wasp_mode mode; /* entry mode: 32- or 64-bit hypercall arguments */
	bool hypercall_pending; /* the last run ended on an unanswered hypercall */
	uint64_t snapshot_marks;
	uint64_t console_bytes;
	int64_t dir_grown; /* net bytes the guest made its sandbox grow */
	struct wasp_vstate_file files[WASP_VSTATE_MAX_FILES];
	unsigned nfiles;
	void *arg, *ret; /* NULL: none (a zero-length one is not NULL) */
	size_t arg_len, ret_len;
	bool has_linux; /* a Linux program: its personality (maps owned here) */
	struct wasp_linux_state linux_state;
};

/* The parts of a state, saved and loaded always in the order of the
 * list at the top of vmm_state.c whatever the mask. */
enum {
	WASP_VSTATE_REGS = 1u << 0,
	WASP_VSTATE_SREGS = 1u << 1,
	WASP_VSTATE_FPU = 1u << 2,   /* XSAVE, or the legacy FPU area */
	WASP_VSTATE_XCRS = 1u << 3,
	WASP_VSTATE_MSRS = 1u << 4,
	WASP_VSTATE_EVENTS = 1u << 5,
	WASP_VSTATE_DEBUGREGS = 1u << 6,
	WASP_VSTATE_MP_STATE = 1u << 7,
	WASP_VSTATE_CPUID = 1u << 8,
	WASP_VSTATE_MODE = 1u << 9,
	WASP_VSTATE_LINUX = 1u << 10,
	WASP_VSTATE_FILES = 1u << 11,   /* load: closes every open file first */
	WASP_VSTATE_DIR_GROWN = 1u << 12,
	WASP_VSTATE_ARGS = 1u << 13,    /* argument and return buffers */
	WASP_VSTATE_MARKS = 1u << 14,   /* snapshot marks, hypercall pending */
	WASP_VSTATE_CONSOLE = 1u << 15, /* console byte count */
	WASP_VSTATE_VCPU = (1u << 9) - 1,
	WASP_VSTATE_HOST = ((1u << 16) - 1) & ~((1u << 9) - 1),
	WASP_VSTATE_ALL = (1u << 16) - 1,
	/* Load only: */
	/* Read back what the guest depends on: registers and control state
	 * must match or the load fails; MSRs and CPUID the host accepted but
	 * did not keep are named in `unrestored`. */
	WASP_VSTATE_VERIFY = 1u << 16,
	/* Registers and special registers through kvm_run's sync area when
	 * KVM offers it (no ioctl; the next KVM_RUN applies them): a vCPU
	 * that has run before. */
	WASP_VSTATE_LAZY = 1u << 17,
	/* Leave the registers waiting in the sync area as well, so that a
	 * register write before the next run costs no ioctl. */
	WASP_VSTATE_SYNCED = 1u << 18,
};

/* Saves the `parts` of v into *st (which it initialises: free it with
 * wasp_vstate_free). An `out` the vCPU is still inside is completed first,
 * so the state stands at an instruction boundary. v must not be running. */
int wasp_vstate_save(struct wasp_virtine *v, unsigned parts, struct wasp_vstate *st);
/* Loads the `parts` of *st (plus the load flags above) into v. Refused
 * MSRs and, with WASP_VSTATE_VERIFY, what did not read back, are named in
 * `unrestored` (cap bytes, may be NULL); -errno when a part could not be
 * set at all. */
int wasp_vstate_load(struct wasp_virtine *v, const struct wasp_vstate *st, unsigned parts,
		     char *unrestored, size_t cap);
void wasp_vstate_free(struct wasp_vstate *st);
/* Keeps only the MSRs in indices[0..n) (the pool's: those a guest can
 * change). */
void wasp_vstate_keep_msrs(struct wasp_vstate *st, const uint32_t *indices, size_t n);
/* Does the once-per-process probing (which MSRs this host reads, whether
 * the TSC can be set) ahead of time, so a save or load in a migration's
 * downtime does not pay for it. v must not be running: its TSC is
 * written (and put back). */
int wasp_vstate_prepare(struct wasp_virtine *v);
/* The same on a throwaway vCPU, for when the virtine's own may be running
 * (a live stream begins while the guest runs). Once per process. */
int wasp_vstate_prepare_host(void);
/* The XSAVE area's size on this host (KVM_CAP_XSAVE2), 0 without XSAVE. */
size_t wasp_vstate_xsave_size(void);

/* Finishes an `out` the vCPU is still inside (after a HYPERCALL or EXITED
 * exit) by re-entering KVM_RUN with immediate_exit, so the vCPU state is
 * at an instruction boundary. Harmless when nothing is pending. */
int wasp_virtine_complete_io(struct wasp_virtine *v);

/* ---- Raw access (the tests, and vmm/ itself; ckpt/ and the pool go
 * through a wasp_vstate) ---------------------------------------------------- */

/* The KVM vCPU fd. Never KVM_RUN it: wasp_virtine_run() owns that. */
int wasp_virtine_vcpu_fd(const struct wasp_virtine *v);
/* Makes a triple fault that KVM has not reported yet part of the vCPU
 * events (KVM_CAP_X86_TRIPLE_FAULT_EVENT), to read, clear or restore it.
 * -errno where the kernel lacks it. */
int wasp_virtine_triple_fault_events(struct wasp_virtine *v);
/* The entry mode of the loaded image (decides 32/64-bit hypercall args). */
enum wasp_mode wasp_virtine_mode(const struct wasp_virtine *v);
/* Reopens a file as the guest had it: same guest fd, flags (without
 * creating or truncating) and offset, inside this virtine's sandbox.
 * -ENOENT with a message naming the file when it has vanished. */
int wasp_virtine_file_restore(struct wasp_virtine *v, unsigned guest_fd, const char *path,
			      int flags, int64_t offset);
/* Bytes the guest has written to its console (kept across checkpoints). */
uint64_t wasp_virtine_console_bytes(const struct wasp_virtine *v);
/* Net bytes the guest has made its sandbox grow (dir_quota's count). */
int64_t wasp_virtine_dir_grown(const struct wasp_virtine *v);
void wasp_virtine_set_dir_grown(struct wasp_virtine *v, int64_t n);

/* ---- Files the guest wrote (what a checkpoint checks and puts back) ----
 * Every file the guest opened for writing in this life, by index 0..255. */
struct wasp_written_file {
	const char *path;  /* relative to the sandbox */
	uint64_t sum_len;  /* the CRC-32C of its first sum_len bytes is sum, */
	uint32_t sum;      /* as last set (0, 0: nothing known) */
};
/* Fills *out for entry idx and returns 1; 0 when it is free; -EINVAL past
 * the last one. */
int wasp_virtine_written_at(const struct wasp_virtine *v, unsigned idx,
			    struct wasp_written_file *out);
/* A read-only fd on entry idx's file, to sum or copy it: the guest's own
 * file when open, else the path reopened in the sandbox (when another file
 * now stands there, the entry's sum is reset). -ENOENT when it is gone.
 * The caller closes it. */
int wasp_virtine_written_open(struct wasp_virtine *v, unsigned idx);
/* Records the CRC-32C `sum` of the first `len` bytes of entry idx. */
void wasp_virtine_written_set_sum(struct wasp_virtine *v, unsigned idx, uint64_t len,
				  uint32_t sum);
/* Adds `path` (which must exist in the sandbox) as a written file whose
 * first len bytes sum to `sum`: a restore rebuilding the table. */
int wasp_virtine_written_add(struct wasp_virtine *v, const char *path, uint64_t len,
			     uint32_t sum);
/* Opens `path` beneath the sandbox with open(2) flags (O_RDONLY, O_RDWR,
 * O_CREAT|O_EXCL|O_WRONLY), confined as the guest's opens are, regular
 * files only. fd or -errno (no message). */
int wasp_virtine_sandbox_open(struct wasp_virtine *v, const char *path, int flags);
/* Calls fn for every regular file beneath the sandbox (depth-first, not
 * following links, at most `max` files and 32 levels), with its path
 * relative to the sandbox, skipping files the guest cannot see (unseen,
 * below). Returns the number of files, -E2BIG past `max`, -errno. */
int wasp_virtine_sandbox_walk(struct wasp_virtine *v, unsigned max,
			      int (*fn)(void *ctx, const char *path), void *ctx);
/* Marks `path` (a regular file in the sandbox) as one the guest has not
 * seen: it did not exist at the checkpoint being restored. The guest's
 * open finds no such file, and its O_CREAT makes it anew (empty), as in
 * a run that never crashed. */
int wasp_virtine_unseen_add(struct wasp_virtine *v, const char *path);
/* The CPUID a guest on this host sees: read back from the first vCPU made
 * (KVM's supported list after wasp's filter, as this host's KVM applied
 * it); before any virtine exists, the filtered list itself. What a restore
 * checks a checkpoint's features against. */
int wasp_host_cpuid(const void **kvm_cpuid2);

#endif /* WASP_VMM_PARTS_H */
