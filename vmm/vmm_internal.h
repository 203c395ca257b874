/*
 * vmm_internal.h: what the files of vmm/ share and nobody else sees.
 */
#ifndef WASP_VMM_INTERNAL_H
#define WASP_VMM_INTERNAL_H

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include "vmm.h"
#include "vmm_parts.h"

#define WASP_PAGE_SIZE 4096u
#define WASP_DEFAULT_MEM (16u << 20)
#define WASP_MAX_FILES 32      /* guest fds 3 .. 3+WASP_MAX_FILES-1 */
#define WASP_FIRST_FD 3
#define WASP_MAX_ARG (1u << 20)  /* argument and return buffers */

/* ---- errors and logs --------------------------------------------------- */

/* wasp_fail() is declared in vmm.h: ckpt/ and migrate/ use it too. */

/* ---- ioctl wrappers ----------------------------------------------------
 * Raw tier: returns ioctl's result or -errno. Checked tier: the same, and a
 * failure names the command in wasp_last_error(). The static assert catches
 * an argument whose size disagrees with the command's encoded size. */
static inline int wasp__ioctl(int fd, unsigned long cmd, void *arg)
{
	int r = ioctl(fd, cmd, arg);
	return r < 0 ? -errno : r;
}
int wasp__ioctl_checked(int fd, unsigned long cmd, const char *name, void *arg);
#define kvm_ioctl(fd, cmd, arg)                                                          \
	({                                                                               \
		_Static_assert(!_IOC_SIZE(cmd) || sizeof(*(arg)) == _IOC_SIZE(cmd),      \
			       "ioctl argument does not match " #cmd);                    \
		wasp__ioctl_checked(fd, cmd, #cmd, arg);                                 \
	})

/* ---- host-side state (vmm_state.c saves and loads it) -------------------- */
void wasp_virtine_set_mode(struct wasp_virtine *v, enum wasp_mode mode);
int wasp_virtine_file_at(const struct wasp_virtine *v, unsigned idx, unsigned *guest_fd,
			 const char **path, int *flags, int64_t *offset);
int wasp_virtine_set_ret(struct wasp_virtine *v, const void *ret, size_t len);
/* The MSRs KVM reports as saveable (KVM_GET_MSR_INDEX_LIST), read once. */
int wasp_host_msr_list(const uint32_t **indices, uint32_t *count);

/* ---- the KVM system fd, opened once per process ------------------------ */
struct wasp_kvm {
	int fd;
	int run_size;
	bool sync_regs;              /* KVM_CAP_SYNC_REGS offers regs */
	bool sync_sregs;             /* ... and sregs */
	struct kvm_cpuid2 *cpuid;    /* supported, already filtered */
	uint64_t xcr0;               /* XCR0 to give long-mode guests (0: no XSAVE) */
	int kick_signal;
};
/* Opens /dev/kvm on first use. Returns 0, or -errno with wasp_last_error() set. */
int wasp_kvm_get(const struct wasp_kvm **out);

/* ---- hypercall table --------------------------------------------------- */
struct wasp_hc_entry {
	const char *name;
	wasp_hypercall_fn fn;
	void *opaque;
	bool allowed;
};

struct wasp_file {
	int host_fd; /* -1: slot free */
	int flags;   /* WASP_O_* as opened (kept for checkpoints) */
	char *path;  /* relative to the sandbox */
	int written; /* its entry in wasp_virtine.written, -1: opened read-only */
};

/* A file the guest opened for writing in this life, open or closed since:
 * what a checkpoint records (size and CRC-32C) so that a restore after a
 * crash finds, or puts back, the file the guest's memory expects. One
 * entry per inode. sum/sum_len are the CRC-32C of the first sum_len bytes
 * as ckpt/ last read them: writes below sum_len (and O_TRUNC) reset them,
 * so a file that only grew is summed again from where it was, not whole. */
#define WASP_MAX_WRITTEN 256
struct wasp_written {
	char *path; /* NULL: free */
	dev_t dev;
	ino_t ino;
	uint64_t sum_len;
	uint32_t sum;
};

/* Image files from this size up are mapped, not read (load_file). */
#define WASP_MAP_IMAGE_MIN (256u << 10)
/* vmm_map.c: puts the memfd back under every file-mapped page. */
int wasp_unmap_files(struct wasp_virtine *v);
/* vmm_map.c: forgets v in the SIGBUS handler's table (before its memory
 * is unmapped). */
void wasp_map_unwatch(struct wasp_virtine *v);

struct wasp_virtine {
	struct wasp_config cfg;
	int vm_fd, vcpu_fd, mem_fd;
	uint8_t *mem;
	size_t mem_size;
	struct kvm_run *run;
	uint64_t *host_dirty; /* one bit per page the host wrote (atomic OR) */
	/* Pages mapped copy-on-write from a file (vmm_map.c); NULL: none.
	 * mem_lost: the file shrank under them and the host touched one
	 * (vmm_map.c's SIGBUS handler put a zero page there). */
	uint64_t *file_mapped;
	atomic_bool mem_lost;
	/* KVM's dirty log, on while dirty_active; manual_protect: re-arm with
	 * KVM_CLEAR_DIRTY_LOG after each fetch instead of at GET time */
	bool dirty_active, manual_protect;
	uint64_t *kvm_dirty; /* scratch for KVM_GET_DIRTY_LOG */
	pthread_mutex_t dirty_lock;

	/* set by load: whether arguments are 64-bit (long mode) is read from
	 * EFER on each hypercall, since a boot stub changes mode on its own */
	enum wasp_mode mode;
	bool used; /* has run since memory was last known to be zero */

	/* pause/kick: `runner` is the thread inside wasp_virtine_run() */
	atomic_bool pause_req;
	atomic_bool timed_out;
	atomic_bool running;
	pthread_t runner;
	pthread_mutex_t kick_lock;

	/* a WASP_EXIT_HYPERCALL answered by the caller before the next run */
	bool hc_pending;
	struct wasp_hc_entry hc[WASP_HC_MAX];

	/* host state behind hypercalls */
	int sandbox_fd; /* -1: no file access */
	struct wasp_file files[WASP_MAX_FILES];
	struct wasp_written written[WASP_MAX_WRITTEN];
	unsigned nwritten;
	/* Files that a restore found in the sandbox but that did not exist
	 * at the checkpoint (made after it by the run that crashed): absent
	 * in the guest's view until it creates them, which empties them. */
	struct wasp_unseen {
		dev_t dev;
		ino_t ino;
	} *unseen;
	unsigned nunseen;
	/* Net bytes the guest made the sandbox grow (apparent sizes: writes
	 * past the end, minus what O_TRUNC freed), held to cfg.dir_quota. */
	int64_t dir_grown;
	uint8_t *arg;
	size_t arg_len;
	uint8_t *ret;
	size_t ret_len;
	uint64_t snapshot_marks;
	uint64_t console_bytes;

	struct wasp_stats stats;

	/* The virtine pool (vmm_pool.c). hc_stop: hypercalls (bit = number,
	 * below 64) that end the run once answered with a result >= 0, as
	 * WASP_EXIT_HYPERCALL with hc_pending false: the snapshot point while
	 * the pool builds its pristine state, the result of a call. last_exit:
	 * how the last run ended (-1: the host failed, or never ran). */
	uint64_t hc_stop;
	int last_exit;
	struct wasp_pool *pool; /* owner, or NULL */
	/* The pool's bitmaps for this virtine, one block (NULL until its first
	 * reset): pages it leaves writable (hot, always restored), pages the
	 * previous reset found dirty, and two scratch maps for a reset. */
	uint64_t *pool_maps;
	unsigned pool_nhot;
	struct wasp_trace *trace; /* vmm_trace.c; NULL: no tracer */
	struct wasp_linux *lx;    /* vmm_linux.c: a Linux program's state; NULL: none */
};

/* vmm_x86_64.c: the CPU state each entry mode starts from */
int wasp_x86_setup_cpuid(struct wasp_virtine *v);
/* CPUID a guest here sees (read back from the first vCPU), NULL before one. */
const struct kvm_cpuid2 *wasp_x86_effective_cpuid(void);
/* Records a new vCPU's special registers as every load's starting point. */
int wasp_x86_capture_reset(struct wasp_virtine *v);
int wasp_x86_enter_real(struct wasp_virtine *v, wasp_gpa_t ip);
int wasp_x86_enter_long(struct wasp_virtine *v, wasp_gpa_t rip);
void wasp_x86_filter_cpuid(struct kvm_cpuid2 *cpuid);
uint64_t wasp_x86_pick_xcr0(const struct kvm_cpuid2 *cpuid);

/* vmm_hypercall.c */
void wasp_hc_init(struct wasp_virtine *v);
void wasp_hc_fini(struct wasp_virtine *v);
/* Serves hypercall `nr`; returns true and sets *result when the table
 * handled it, false when the caller should see it (hypercall_exits). */
bool wasp_hc_dispatch(struct wasp_virtine *v, uint64_t nr, const uint64_t args[6],
		      int64_t *result);
/* Built-in handlers and their names, in vmm_hc_builtin.c / vmm_hc_file.c */
void wasp_hc_register_builtins(struct wasp_virtine *v);
int64_t wasp_hc_open(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_close(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_read(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_write(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_pread(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_pwrite(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_lseek(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int64_t wasp_hc_fstat(struct wasp_virtine *v, const uint64_t a[6], void *opaque);
int wasp_hc_files_init(struct wasp_virtine *v);
void wasp_hc_files_fini(struct wasp_virtine *v);
/* Forgets the files written so far (a pool's reset starts a new life). */
void wasp_hc_files_forget(struct wasp_virtine *v);

/* vmm_kvm.c, for a hypercall that waits on the host's behalf (a console
 * nobody reads): whether the run was asked to stop (a pause, the
 * deadline: both set immediate_exit, the deadline from the kick signal's
 * handler), and that signal, which the waiter blocks while it checks so
 * that a kick between the check and the wait is not lost. */
bool wasp_virtine_kicked(const struct wasp_virtine *v);
int wasp_kick_signal(void);

/* vmm_kvm.c: a fault's control registers (cr0, cr2, cr3, cr4, efer). */
void wasp_fault_sregs(struct wasp_virtine *v, struct wasp_exit *e);
/* vmm_kvm.c: clears guest memory a run used (punching out the memfd),
 * except the pages of [keep, keep + keep_len), which the caller is about
 * to overwrite: those stay in place, only their bytes outside the range
 * zeroed. keep_len 0 clears everything. */
int wasp_zero_if_used(struct wasp_virtine *v, wasp_gpa_t keep, size_t keep_len);
/* vmm_trace.c: reports a Linux system call served (when a tracer asked). */
void wasp_trace_syscall(struct wasp_virtine *v, uint64_t nr, const uint64_t a[6], int64_t result,
			uint64_t ns, const char *name);

/* Marks host-written pages dirty */
void wasp_mark_dirty(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len);

/* ---- vmm_trace.c: the run loop's hooks, called only when v->trace ----- */
/* Before the first KVM_RUN of a run: plants breakpoints, turns on guest
 * debugging. 0 or -errno. */
int wasp_trace_enter(struct wasp_virtine *v);
/* Right after KVM_RUN returned an exit, before it is handled: 1 when it was
 * the tracer's own (a step or breakpoint) and the run goes on, -1 when the
 * run stops (*e filled, or *err set), 0 to handle it as usual. */
int wasp_trace_exit(struct wasp_virtine *v, struct wasp_exit *e, int *err);
/* After the exit was handled (`go`: the run would go on); returns whether
 * it goes on (false with e->reason PAUSED when the tracer stopped it). */
bool wasp_trace_after(struct wasp_virtine *v, struct wasp_exit *e, bool go);
/* When the run returns: takes breakpoints out, turns guest debugging off. */
void wasp_trace_leave(struct wasp_virtine *v);
void wasp_trace_free(struct wasp_virtine *v);

/* ---- shared with the Linux personality's descriptor calls -------------
 * (vmm_linux_fs.c; the hypercalls use the same code, so both behave alike) */
struct pollfd;
struct iovec;
/* vmm_hc_builtin.c: waits until one of the n fds is ready (poll(2)
 * semantics, p[].revents filled), timeout_ns passes (-1: never) or the run
 * is kicked (a pause, the deadline). The number ready, 0 at the timeout,
 * -EINTR on the kick, -errno. The kick signal stays blocked from the
 * check of the kick to the ppoll() that unblocks it, so a kick landing in
 * between is not lost. */
int wasp_wait_fds(struct wasp_virtine *v, struct pollfd *p, unsigned n, int64_t timeout_ns);
/* One fd for `events`, no timeout: 1 ready (or in error), 0 kicked, -errno. */
int wasp_wait_ready(struct wasp_virtine *v, int fd, short events);
/* Writes buf to a console-like fd (a pipe or terminal may block): waits
 * for room kick-aware. The bytes written, -EINTR when a kick came before
 * any, -errno. */
int64_t wasp_console_write(struct wasp_virtine *v, int fd, const char *buf, size_t len);

/* vmm_hc_file.c. Opens `path` (relative to the sandbox; with v->lx, as in
 * the sandbox as a root: RESOLVE_IN_ROOT, else RESOLVE_BENEATH) into
 * files[slot] with host open(2) `flags`, keeping `guest_flags` and `path`
 * for checkpoints. Regular files only, and directories (O_RDONLY, or
 * O_PATH) for a Linux program. Does the written-file, quota and unseen
 * bookkeeping. `resolve`: openat2's, 0 for the sandbox's own. 0 or -errno. */
int wasp_file_open(struct wasp_virtine *v, int slot, const char *path, int guest_flags, int flags,
		   mode_t mode, uint64_t resolve);
/* Writes the iovecs to f at `offset` (-1: at the file position; O_APPEND
 * at the end), held to the quota and keeping the written-file sums. The
 * bytes written or -errno. */
int64_t wasp_file_writev(struct wasp_virtine *v, struct wasp_file *f, const struct iovec *iov,
			 int n, int64_t offset);
/* ftruncate(2) and fallocate(2) on f, held to the quota (apparent size)
 * and keeping the written-file sums. 0 or -errno. */
int wasp_file_truncate(struct wasp_virtine *v, struct wasp_file *f, int64_t len);
int wasp_file_fallocate(struct wasp_virtine *v, struct wasp_file *f, int mode, int64_t off,
			int64_t len);
/* Whether the file is one a restore hid (made after the checkpoint). */
bool wasp_file_unseen(const struct wasp_virtine *v, dev_t dev, ino_t ino);
/* vmm_linux_fs.c: puts back a Linux program's duplicate of its stdin,
 * stdout or stderr (a files[] slot whose path is "/stdin", "/stdout" or
 * "/stderr") at guest_fd. 0 or -errno with a message. */
int wasp_lx_stdio_restore(struct wasp_virtine *v, unsigned guest_fd, const char *path, int flags);

#endif /* WASP_VMM_INTERNAL_H */
