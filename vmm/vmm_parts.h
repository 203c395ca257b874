/*
 * vmm_parts.h: what libwasp's own parts (ckpt/, migrate/, the tools and
 * tests built with the library) reach inside a virtine for, and embedders
 * never need: the state a checkpoint reads and puts back, the guest's
 * written files, the host's MSR and CPUID lists, and wasp_fail(). Not
 * installed, and nothing here is exported from libwasp.so (the build
 * checks: tests/tools/exports_test.sh).
 */
#ifndef WASP_VMM_PARTS_H
#define WASP_VMM_PARTS_H

#include "vmm.h"

/* For libwasp's own parts (ckpt/, migrate/): records the message for
 * wasp_last_error() and returns `err`, so a failure reads
 * `return wasp_fail(-EINVAL, "...", ...)`. */
int wasp_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- State access for checkpoints (ckpt/) -------------------------------
 * ckpt/ captures and re-applies vCPU state with the KVM ioctls itself; the
 * vmm hands it the vCPU and keeps the host-side state behind hypercalls. */

/* The KVM vCPU fd. Never KVM_RUN it: wasp_virtine_run() owns that. */
int wasp_virtine_vcpu_fd(const struct wasp_virtine *v);
/* Makes a triple fault that KVM has not reported yet part of the vCPU
 * events (KVM_CAP_X86_TRIPLE_FAULT_EVENT), to read, clear or restore it.
 * -errno where the kernel lacks it. */
int wasp_virtine_triple_fault_events(struct wasp_virtine *v);

/* Finishes an `out` the vCPU is still inside (after a HYPERCALL or EXITED
 * exit) by re-entering KVM_RUN with immediate_exit, so the vCPU state is
 * at an instruction boundary. Harmless when nothing is pending. */
int wasp_virtine_complete_io(struct wasp_virtine *v);

/* The entry mode of the loaded image (decides 32/64-bit hypercall args). */
enum wasp_mode wasp_virtine_mode(const struct wasp_virtine *v);
void wasp_virtine_set_mode(struct wasp_virtine *v, enum wasp_mode mode);

/* Whether the last run ended on a hypercall the caller has not answered. */
bool wasp_virtine_hypercall_pending(const struct wasp_virtine *v);
void wasp_virtine_set_hypercall_pending(struct wasp_virtine *v, bool pending);

/* The guest's open files: fills the fields of the idx-th slot and returns 1,
 * 0 when that slot is free, -EINVAL past the last slot. */
int wasp_virtine_file_at(const struct wasp_virtine *v, unsigned idx, unsigned *guest_fd,
			 const char **path, int *flags, int64_t *offset);
/* Reopens a file as the guest had it: same guest fd, flags (without
 * creating or truncating) and offset, inside this virtine's sandbox.
 * -ENOENT with a message naming the file when it has vanished. */
int wasp_virtine_file_restore(struct wasp_virtine *v, unsigned guest_fd, const char *path,
			      int flags, int64_t offset);

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
/* Net bytes the guest has made its sandbox grow (dir_quota's count). */
int64_t wasp_virtine_dir_grown(const struct wasp_virtine *v);
void wasp_virtine_set_dir_grown(struct wasp_virtine *v, int64_t n);

/* The return buffer and snapshot marks, as a restored virtine had them. */
int wasp_virtine_set_ret(struct wasp_virtine *v, const void *ret, size_t len);
void wasp_virtine_set_snapshot_marks(struct wasp_virtine *v, uint64_t marks);
/* Bytes the guest has written to its console (kept across checkpoints). */
uint64_t wasp_virtine_console_bytes(const struct wasp_virtine *v);
void wasp_virtine_set_console_bytes(struct wasp_virtine *v, uint64_t n);

/* The MSRs KVM reports as saveable (KVM_GET_MSR_INDEX_LIST), read once. */
int wasp_host_msr_list(const uint32_t **indices, uint32_t *count);

/* The CPUID a guest on this host sees: read back from the first vCPU made
 * (KVM's supported list after wasp's filter, as this host's KVM applied
 * it); before any virtine exists, the filtered list itself. What a restore
 * checks a checkpoint's features against. */
int wasp_host_cpuid(const void **kvm_cpuid2);

#endif /* WASP_VMM_PARTS_H */
