/*
 * vmm.h: the virtine, the one reader-facing header of vmm/.
 *
 * A virtine is one KVM VM with one vCPU and one contiguous guest-physical
 * region at 0, backed by a memfd. The functions here return 0 (or a
 * non-negative value) on success and a negative errno on failure; the
 * failing call leaves a one-line explanation in wasp_last_error(). They
 * never exit or abort the calling process, whatever the guest does.
 *
 * Threads: one thread runs a virtine at a time. wasp_virtine_pause() is the
 * only call that may come from another thread while it runs.
 */
#ifndef WASP_VMM_H
#define WASP_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wasp_api.h"

#include "wasp_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A guest-physical address. Never dereference it: translate it with
 * wasp_virtine_gpa(), which checks it against guest memory. */
typedef uint64_t wasp_gpa_t;

struct wasp_virtine;

/* How the vCPU starts. */
enum wasp_mode {
	WASP_MODE_AUTO = -1, /* from the image header; real mode without one */
	WASP_MODE_REAL = 0,  /* 16-bit real mode at the load address */
	WASP_MODE_LONG = 1,  /* direct 64-bit entry, ring 3, host-built page tables */
};

#define WASP_DIR_QUOTA_DEFAULT (1ull << 30)
#define WASP_DIR_QUOTA_UNLIMITED UINT64_MAX

struct wasp_config {
	size_t mem_size;      /* bytes, page aligned; 0: 16 MiB */
	const char *sandbox_dir; /* host directory the file hypercalls may use; NULL: none */
	/* Bytes the guest may make the sandbox grow by (apparent sizes, so a
	 * sparse file counts whole); a write past it fails with -EDQUOT.
	 * 0: WASP_DIR_QUOTA_DEFAULT; WASP_DIR_QUOTA_UNLIMITED: no limit. */
	uint64_t dir_quota;
	int console_fd;       /* console writes go here; default (0 is taken as) 1 */
	int stdin_fd;         /* WASP_HC_STDIN_READ reads here; default (0 is taken as) 0 */
	bool no_stdin;        /* true: WASP_HC_STDIN_READ reads EOF */
	/* Return unregistered hypercall numbers to the caller as
	 * WASP_EXIT_HYPERCALL instead of answering -ENOSYS. */
	bool hypercall_exits;
	/* A Linux program's fd 2 (docs/linux.md); default (0 is taken as) 2 */
	int stderr_fd;
};

/* Why wasp_virtine_run() returned. */
enum wasp_exit_reason {
	WASP_EXIT_EXITED = 0, /* guest asked to exit; code in exit.code */
	WASP_EXIT_HYPERCALL,  /* unregistered hypercall with hypercall_exits set */
	WASP_EXIT_FAULT,      /* guest cannot go on; exit.fault says why */
	WASP_EXIT_TIMEOUT,    /* the run's wall-clock limit passed */
	WASP_EXIT_PAUSED,     /* wasp_virtine_pause(): stopped at an exit boundary */
};

enum wasp_fault_kind {
	WASP_FAULT_SHUTDOWN = 0, /* triple fault */
	WASP_FAULT_INTERNAL,     /* KVM could not emulate or enter the guest */
	WASP_FAULT_MMIO,         /* access to guest-physical memory that does not exist */
	WASP_FAULT_IO,           /* `in`/`out` to a port with no meaning */
	WASP_FAULT_HALT,         /* `hlt` with nothing to wake the vCPU */
	WASP_FAULT_UNHANDLED,    /* any other KVM exit */
	WASP_FAULT_MEMORY_LOST,  /* guest memory mapped from a file is gone (the file shrank) */
	WASP_FAULT_EXCEPTION,    /* a CPU exception the guest cannot handle (addr: the
				  * vector; regs as it happened): a Linux program on a
				  * KVM that loses the state of a triple fault */
};

/* General-purpose registers, the layout of struct kvm_regs. */
struct wasp_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct wasp_exit {
	enum wasp_exit_reason reason;
	int64_t code; /* EXITED: the guest's exit code */
	struct {
		uint64_t nr;      /* HYPERCALL: rax */
		uint64_t args[6]; /* rdi rsi rdx r10 r8 r9 */
	} hypercall;
	struct {
		enum wasp_fault_kind kind;
		uint32_t kvm_exit;   /* KVM_EXIT_* that caused it */
		uint64_t addr;       /* MMIO: guest-physical address; IO: port */
		struct wasp_regs regs; /* registers when it happened */
		uint64_t cr0, cr3, cr4, efer;
		uint64_t cr2; /* the faulting address of a page fault */
		uint64_t error_code; /* EXCEPTION: the CPU's error code (0 if none) */
	} fault;
	/* EXITED by a signal a Linux program sent itself (abort()): its
	 * number, and code is 128 + it, as a shell shows; 0 otherwise. */
	int signal;
};

/* Counters of one virtine since creation (or the last reset of stats). */
struct wasp_stats {
	uint64_t runs, exits, hypercalls, hypercalls_denied, io_exits;
	uint64_t create_ns, load_ns, run_ns; /* time in create, load, run */
};

/* Sets every field of `cfg` to its default. */
WASP_API void wasp_config_init(struct wasp_config *cfg);

/* Creates a virtine: VM, vCPU, guest memory. Returns 0 and sets *out. */
WASP_API int wasp_virtine_create(const struct wasp_config *cfg, struct wasp_virtine **out);

/* Destroys a virtine and everything it holds. Accepts NULL. */
WASP_API void wasp_virtine_destroy(struct wasp_virtine *v);

/* Copies `len` bytes of image to guest-physical `gpa` (0: WASP_GPA_LOAD)
 * and sets the vCPU to enter it in `mode` (WASP_MODE_AUTO reads the image
 * header). An image that starts with the ELF magic is a Linux program,
 * loaded as wasp_virtine_load_linux() does (argv { "program" }; gpa and
 * mode are not used), or refused with the reason. Memory outside the image is zero afterwards, also in a virtine
 * that ran before. Returns 0, -EINVAL for a bad mode/header, -E2BIG when
 * it does not fit. */
WASP_API int wasp_virtine_load(struct wasp_virtine *v, const void *image, size_t len,
		      wasp_gpa_t gpa, enum wasp_mode mode);

/* Loads an image file as wasp_virtine_load() does. One of 256 KiB or more
 * (at a page-aligned gpa) is mapped copy-on-write instead of read, so
 * loading it costs the same for any size; the file must then not be
 * truncated while the virtine uses it (docs/design.md). */
WASP_API int wasp_virtine_load_file(struct wasp_virtine *v, const char *path, wasp_gpa_t gpa,
			   enum wasp_mode mode);

/* Runs the vCPU until an exit the caller must see; hypercalls the virtine
 * may make are served on the way. timeout_ns > 0 bounds this call in wall
 * time. Returns 0 and fills *exit, or a negative errno when the host failed
 * (not the guest: a guest's failure is a WASP_EXIT_FAULT). */
WASP_API int wasp_virtine_run(struct wasp_virtine *v, uint64_t timeout_ns, struct wasp_exit *exit);

/* Asks a running virtine to stop at its next exit boundary; its run returns
 * WASP_EXIT_PAUSED. Safe from any thread (not from a signal handler). If the
 * virtine is not running, the next run returns PAUSED at once. */
WASP_API void wasp_virtine_pause(struct wasp_virtine *v);

/* The answer (rax) to a WASP_EXIT_HYPERCALL, given before the next run. */
WASP_API int wasp_virtine_set_hypercall_result(struct wasp_virtine *v, int64_t result);

WASP_API int wasp_virtine_get_regs(struct wasp_virtine *v, struct wasp_regs *regs);
WASP_API int wasp_virtine_set_regs(struct wasp_virtine *v, const struct wasp_regs *regs);

/* Host pointer to guest memory [gpa, gpa+len), or NULL when any of it lies
 * outside guest memory (overflow included). Writing through it is invisible
 * to KVM's dirty log: use wasp_virtine_gpa_w() for writes. */
WASP_API void *wasp_virtine_gpa(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len);

/* As wasp_virtine_gpa(), and records the pages as dirtied by the host. */
WASP_API void *wasp_virtine_gpa_w(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len);

/* Copies a NUL-terminated guest string of at most cap-1 bytes into buf.
 * Returns its length, -EFAULT outside memory, -ENAMETOOLONG if longer. */
WASP_API int wasp_virtine_read_str(struct wasp_virtine *v, wasp_gpa_t gpa, char *buf, size_t cap);

WASP_API size_t wasp_virtine_mem_size(const struct wasp_virtine *v);
/* The memfd behind guest memory (owned by the virtine). */
WASP_API int wasp_virtine_mem_fd(const struct wasp_virtine *v);
/* Bitmap (one bit per 4 KiB page) of pages the host wrote; may be cleared by the caller. */
WASP_API uint64_t *wasp_virtine_host_dirty(struct wasp_virtine *v);

WASP_API void wasp_virtine_stats(const struct wasp_virtine *v, struct wasp_stats *out);

/* ---- Hypercalls -------------------------------------------------------- */

/* A handler gets the six arguments and returns the guest's rax (a negative
 * errno for failure). It must check every guest pointer it uses. */
typedef int64_t (*wasp_hypercall_fn)(struct wasp_virtine *v, const uint64_t args[6],
				     void *opaque);

/* Registers (or replaces) hypercall `nr` (WASP_HC_USER_BASE..WASP_HC_MAX-1)
 * under `name`. It starts denied, like every hypercall: allow it by name. */
WASP_API int wasp_virtine_register_hypercall(struct wasp_virtine *v, unsigned nr, const char *name,
				    wasp_hypercall_fn fn, void *opaque);

/* Allows the hypercalls named in a comma-separated list ("console_write,open",
 * "all" for every registered one, "" for none; exit is always allowed).
 * Returns -ENOENT naming the first unknown name in wasp_last_error(). */
WASP_API int wasp_virtine_allow(struct wasp_virtine *v, const char *names);
/* Allows or denies one hypercall by number. */
WASP_API int wasp_virtine_allow_nr(struct wasp_virtine *v, unsigned nr, bool allowed);
WASP_API bool wasp_virtine_allowed(const struct wasp_virtine *v, unsigned nr);

/* The name of a built-in or registered hypercall, or NULL. */
WASP_API const char *wasp_virtine_hypercall_name(const struct wasp_virtine *v, unsigned nr);

/* Checks a comma-separated list of built-in hypercall names without a
 * virtine (for argument parsing). Returns 0 or -ENOENT with the bad name
 * in wasp_last_error(). */
WASP_API int wasp_hypercall_names_valid(const char *names);

/* Function-style virtines: the argument buffer WASP_HC_GET_ARG returns (copied). */
WASP_API int wasp_virtine_set_arg(struct wasp_virtine *v, const void *arg, size_t len);
/* The argument buffer as set (NULL if none). */
WASP_API const void *wasp_virtine_arg(const struct wasp_virtine *v, size_t *len);
/* The buffer the guest gave WASP_HC_SET_RET, valid until the next set/run; len 0 if none. */
WASP_API const void *wasp_virtine_ret(const struct wasp_virtine *v, size_t *len);
/* Number of WASP_HC_SNAPSHOT calls seen (the snapshot point). */
WASP_API uint64_t wasp_virtine_snapshot_marks(const struct wasp_virtine *v);

/* ---- Dirty page tracking (incremental checkpoints, live migration) ----
 * Bitmaps have one bit per 4 KiB page: bit p%64 of word p/64. */

/* Starts KVM's dirty log on guest memory; pages the host writes for the
 * guest (hypercall handlers) are counted too. Idempotent. */
WASP_API int wasp_virtine_dirty_start(struct wasp_virtine *v);
/* Stops it. */
WASP_API int wasp_virtine_dirty_stop(struct wasp_virtine *v);
WASP_API bool wasp_virtine_dirty_active(const struct wasp_virtine *v);
/* ORs into `bitmap` the pages written since the previous fetch (or the
 * start) and starts counting afresh. May be called from another thread
 * while the vCPU runs: a page written during the fetch is reported now or
 * next time, never lost. */
WASP_API int wasp_virtine_dirty_fetch(struct wasp_virtine *v, uint64_t *bitmap);
/* Puts pages back as dirty (after a fetch whose use failed). */
WASP_API void wasp_virtine_dirty_return(struct wasp_virtine *v, const uint64_t *bitmap);

/* ---- Memory mapped from a file (fast local restore) -------------------- */

/* Maps `len` bytes of file `fd` at `offset` copy-on-write into guest memory
 * at `gpa` (all page aligned): the guest sees the file's bytes, its writes
 * stay private, and nothing is copied now. The memfd no longer backs those
 * pages until the next load. -EINVAL unaligned, -EFAULT outside memory. */
WASP_API int wasp_virtine_map_file(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len, int fd,
			  uint64_t offset);
/* Pages mapped from files (bitmap as the dirty log's), or NULL when none:
 * they hold data although the memfd has holes there. */
WASP_API const uint64_t *wasp_virtine_file_mapped(const struct wasp_virtine *v);
/* Whether a file under such pages shrank and the host found a page gone
 * (it reads as zeros now): the run ends with WASP_FAULT_MEMORY_LOST and a
 * checkpoint of it is refused. */
WASP_API bool wasp_virtine_mem_lost(const struct wasp_virtine *v);

/* ---- Linux programs (docs/linux.md) --------------------------------------
 * A static x86-64 Linux executable (gcc -static, musl-gcc -static, static
 * PIE) runs unmodified at ring 3 with no kernel in the guest: its system
 * calls are served by the host under the virtine's policy. */

/* Guest memory wasp-run gives a Linux program when -m is not given. */
#define WASP_LINUX_MEM_DEFAULT (256u << 20)
/* The stack a Linux program gets at the top of its memory (RLIMIT_STACK). */
#define WASP_LINUX_STACK_SIZE (8ull << 20)

/* Whether `path` is a Linux program: 1 a static x86-64 executable wasp
 * runs; 0 not an ELF file (a flat image); -ENOEXEC with the reason and the
 * remedy in wasp_last_error() for an ELF file it cannot run (dynamically
 * linked, 32-bit, another CPU, an object file); -errno. */
WASP_API int wasp_linux_probe(const char *path);

/* Loads a static Linux executable: its segments, the page tables, the
 * initial stack with argv (NULL: { path }), envp (NULL: empty) and the
 * auxiliary vector, and the vCPU at its entry point. Memory outside is
 * zero. Fds 0-2 are cfg.stdin_fd, console_fd and stderr_fd; file calls
 * need the "open" permission and a sandbox, console ones
 * "console_write", stdin "stdin_read" (docs/hypercalls.md). */
WASP_API int wasp_virtine_load_linux(struct wasp_virtine *v, const char *path, const char *const argv[],
			    const char *const envp[]);
WASP_API bool wasp_virtine_is_linux(const struct wasp_virtine *v);
/* The address of symbol `name` in the program's own symbol table (a
 * static-pie's as loaded), for --checkpoint-at and breakpoints. -ENOENT
 * (with the reason) when it has none or no such symbol. */
WASP_API int wasp_linux_symbol(const char *path, const char *name, uint64_t *addr);
/* A Linux system call's name ("openat"), or NULL when wasp has none. */
WASP_API const char *wasp_linux_syscall_name(uint64_t nr);

/* A Linux program's personality state, as a checkpoint holds it (ckpt/):
 * the address-space layout, mmap's mappings, signal dispositions and
 * mask, and the rest of what its system calls remembered. Its open files
 * are the virtine's files (wasp_virtine_file_at). */
struct wasp_linux_map {
	uint64_t start, len;
	uint32_t prot, flags;
};
struct wasp_linux_state {
	uint64_t entry, image_lo, image_hi, brk_start, brk, brk_max, mmap_min, mmap_top;
	uint64_t stack_low, stack_top;
	const struct wasp_linux_map *maps; /* get: valid until the next call on v */
	unsigned nmaps;
	struct {
		uint64_t handler, flags, restorer, mask;
	} sig[64]; /* signal n at [n - 1] */
	uint64_t sigmask, tid_address, robust_list, robust_len;
	uint64_t altstack_sp, altstack_size, altstack_flags;
	uint32_t umask, stdio_closed;
	uint64_t sleep_rip, sleep_left_ns;
};
/* Fills *out; -ENOENT when v runs no Linux program. */
WASP_API int wasp_virtine_linux_get(const struct wasp_virtine *v, struct wasp_linux_state *out);
/* Makes v a Linux program in state *in (a restore: memory and vCPU come
 * from the checkpoint). Every field is checked against v's memory first:
 * -EINVAL with the reason, and nothing changed, for a state that could not
 * have been saved. */
WASP_API int wasp_virtine_linux_set(struct wasp_virtine *v, const struct wasp_linux_state *in);

/* ---- Names and errors -------------------------------------------------- */

WASP_API const char *wasp_exit_reason_name(enum wasp_exit_reason r);
WASP_API const char *wasp_fault_kind_name(enum wasp_fault_kind k);

/* The message the last failing wasp call on this thread left. */
WASP_API const char *wasp_last_error(void);

/* The process's /dev/kvm fd (opened on first use), or -errno. */
WASP_API int wasp_kvm_fd(void);

/* Bare measurements used by the benchmark: nanoseconds on CLOCK_MONOTONIC. */
WASP_API uint64_t wasp_now_ns(void);

/* ---- Virtine pool, snapshot starts, function calls (docs/pool.md) --------
 *
 * A pool holds ready virtines of one image. The first virtine loads the
 * image and, unless snapshots are off, runs it until it makes the
 * WASP_HC_SNAPSHOT hypercall (the end of its initialisation); its memory
 * and vCPU state there are the pool's *pristine state*. Every virtine the
 * pool hands out is in exactly that state: later ones are cloned from it,
 * and a virtine that comes back is reset to it by writing back only the
 * pages dirtied since (KVM's dirty log plus the pages host handlers wrote),
 * and the registers, FPU/SSE/AVX state and host-side state (argument,
 * result, open files). Resets and creation happen on the pool's own
 * thread, off the caller's path. Without a snapshot (snapshot off, an image
 * without a header such as the three-byte `out 0xFA, eax`, or
 * WASP_NO_SNAPSHOT=1 in the environment) the pristine state is the image
 * just loaded, so every call starts at the image's entry.
 *
 * Threads: every function below may be called from any thread at the same
 * time, except wasp_pool_destroy() (once).
 *
 * A pool virtine's dirty log belongs to the pool: do not fetch it
 * (wasp_virtine_dirty_fetch, incremental checkpoints, live migration) or
 * stop it, or its reset would miss pages the call wrote.
 */
struct wasp_pool;

enum wasp_pool_snapshot {
	WASP_POOL_SNAPSHOT_AUTO = 0, /* at the guest's snapshot hypercall when the image
				      * has a header (C images), unless WASP_NO_SNAPSHOT=1 */
	WASP_POOL_SNAPSHOT_OFF,      /* start every call at the image's entry */
};

struct wasp_pool_config {
	struct wasp_config vm; /* each virtine's settings (memory size, console, ...) */
	const void *image;     /* the image (copied), or NULL and image_path */
	size_t image_len;
	const char *image_path;
	wasp_gpa_t load_gpa;  /* 0: WASP_GPA_LOAD */
	enum wasp_mode mode;  /* WASP_MODE_AUTO: from the image header */
	enum wasp_pool_snapshot snapshot;
	unsigned size;        /* most virtines alive at once (ready + out + being
			       * reset); 0: 4. A get waits while all are out. */
	/* Hypercalls the guest may make (wasp_virtine_allow() syntax); NULL:
	 * "get_arg,set_ret,snapshot,console_write". */
	const char *allow;
	/* A Linux program's argv and environment (NULL-terminated, copied);
	 * NULL: argv { image_path, or "program" for bytes } and an empty
	 * environment. Flat images take no arguments: ignored for them. */
	const char *const *argv;
	const char *const *envp;
	uint64_t init_timeout_ns; /* bound on the run up to the snapshot; 0: 10 s */
	uint64_t call_timeout_ns; /* bound on each wasp_call(); 0: none */
	/* Called for each new virtine before it first runs (e.g. to register
	 * embedder hypercalls, which the allow list may then name). Returns 0
	 * or a negative errno, which fails the virtine's creation. Runs on the
	 * pool's thread or the creating caller's, never twice at once. */
	int (*setup)(struct wasp_virtine *v, void *opaque);
	void *setup_opaque;
};

/* Counters since the pool was created. */
struct wasp_pool_stats {
	bool snapshot;        /* calls start at a snapshot (false: at the entry) */
	uint64_t created;     /* virtines made (the first one included) */
	uint64_t destroyed;   /* ... and destroyed (after faults and timeouts too) */
	uint64_t gets, puts, discards;
	uint64_t get_waits;   /* gets that found no ready virtine (waited, or reset one) */
	uint64_t inline_resets; /* ... of them, gets that reset a returned virtine
				 * themselves rather than wait for the pool thread */
	uint64_t resets;
	uint64_t reset_pages; /* pages written back by all resets */
	uint64_t reset_ns;    /* time spent resetting (on the pool's thread) */
	uint64_t init_ns;     /* load + run up to the snapshot + capture */
	uint64_t pristine_pages; /* pages the pristine state holds */
	unsigned ready, out;  /* right now */
};

/* Sets every field of `cfg` to its default. */
WASP_API void wasp_pool_config_init(struct wasp_pool_config *cfg);

/* Creates a pool: builds the pristine state in the calling thread (load,
 * run to the snapshot, capture) and starts the pool's thread, which fills
 * the pool to `size` ready virtines. Returns 0 and sets *out; -ENOEXEC
 * when snapshots are on and the guest exited or faulted before its
 * snapshot hypercall (the message says how), -ETIMEDOUT when it did not
 * get there within init_timeout_ns. */
WASP_API int wasp_pool_create(const struct wasp_pool_config *cfg, struct wasp_pool **out);

/* Destroys the pool: stops its thread and destroys every virtine it holds.
 * Virtines still out stay valid: wasp_pool_put()/discard() of each one
 * destroys it, and the last one frees what the pool still holds. Gets and
 * fills waiting when destroy begins return -ESHUTDOWN (destroy waits for
 * them to leave); while virtines are out the pool still exists, and a get
 * then also answers -ESHUTDOWN. Once the last is back, the pool is gone:
 * no call may use it. Accepts NULL. */
WASP_API void wasp_pool_destroy(struct wasp_pool *p);

/* Hands out a ready virtine in the pristine state. With none ready it
 * resets a returned one itself if one is waiting for its reset (sooner
 * than the pool's thread would), else waits while all `size` are out or
 * being made. Run it with wasp_virtine_run() (or any virtine call but
 * load, whose host writes the reset would not see, and the dirty-log
 * calls), then give it back with wasp_pool_put(). Returns 0 and
 * sets *out, or a negative errno when the pool cannot make virtines (the
 * pool thread's error) or is being destroyed (-ESHUTDOWN). */
WASP_API int wasp_pool_get(struct wasp_pool *p, struct wasp_virtine **out);

/* Gives a virtine back (one this pool's get handed out; any other is
 * ignored); the pool's thread resets it to the pristine state
 * and hands it out again. A virtine whose last run ended in a fault or a
 * timeout, or that is paused inside a hypercall the caller did not answer,
 * is destroyed and replaced instead (its state is not worth trusting). */
WASP_API void wasp_pool_put(struct wasp_pool *p, struct wasp_virtine *v);

/* Gives a virtine back to be destroyed (and replaced), never reused. */
WASP_API void wasp_pool_discard(struct wasp_pool *p, struct wasp_virtine *v);

/* Waits until the pool holds `size` virtines in all (ready or out), none
 * being made or reset. Returns 0 or the error that stopped it. */
WASP_API int wasp_pool_fill(struct wasp_pool *p);

WASP_API void wasp_pool_stats(struct wasp_pool *p, struct wasp_pool_stats *out);

/* Gives a virtine from this pool its call argument (as
 * wasp_virtine_set_arg(), which WASP_HC_GET_ARG reads). When the guest
 * named a buffer in its snapshot hypercall (rdi = buffer, rsi = capacity),
 * the argument is also copied there and its full length becomes that
 * hypercall's result, so the call needs no WASP_HC_GET_ARG exit. Call it
 * once, before the virtine's first run. Returns 0 or a negative errno. */
WASP_API int wasp_pool_set_arg(struct wasp_pool *p, struct wasp_virtine *v, const void *in, size_t len);

/* What a wasp_call() ended in. */
enum wasp_call_status {
	WASP_CALL_RETURNED = 0, /* the guest gave its result (WASP_HC_SET_RET), or exited 0 */
	WASP_CALL_EXITED,       /* it exited with a non-zero code and no result */
	WASP_CALL_FAULT,        /* it faulted (info.exit.fault says how) */
	WASP_CALL_TIMEOUT,      /* call_timeout_ns passed */
	WASP_CALL_HOST_ERROR,   /* the host failed (not the guest) */
};

struct wasp_call_info {
	enum wasp_call_status status;
	int64_t exit_code;    /* EXITED (and RETURNED by exit): the guest's code */
	size_t ret_len;       /* the whole result's length (may exceed out_cap) */
	struct wasp_exit exit; /* how the run ended, registers for a fault */
};

/* Calls the pool's function once: takes a pristine virtine, hands it the
 * argument `in` (WASP_HC_GET_ARG reads it), runs it until it gives its
 * result with WASP_HC_SET_RET (the call ends there: what the guest would
 * do after it never runs) or exits, copies at most out_cap bytes of the
 * result to `out` and gives the virtine back. `info` may be NULL.
 *
 * Returns the result's length (>= 0; an exit with code 0 and no result is
 * length 0), or a negative errno with one line in wasp_last_error():
 *   -EMSGSIZE  the result is longer than out_cap (the first out_cap bytes
 *              are in `out`; info->ret_len is the full length)
 *   -ECHILD    the guest exited with a non-zero code and no result
 *   -EFAULT    the guest faulted (kind, rip in the message)
 *   -ETIMEDOUT call_timeout_ns passed
 *   -E2BIG     `in` is larger than the 1 MiB argument limit
 *   other      the host failed (pool shut down, KVM error, ...)
 * Whatever the guest does, the pool stays healthy: a virtine that faulted
 * or timed out is destroyed and replaced, never reused. */
WASP_API int wasp_call(struct wasp_pool *p, const void *in, size_t in_len, void *out, size_t out_cap,
	      struct wasp_call_info *info);

WASP_API const char *wasp_call_status_name(enum wasp_call_status s);


/* ---- Tracing and guest debugging (vmm_trace.c) ---------------------------
 * A virtine can report what it does as it runs: its exits, hypercalls
 * (with arguments, result and host time), I/O, faults, and single steps;
 * and it can stop at breakpoints. Events go to a callback on the thread
 * that runs the virtine; writing them anywhere is the caller's business.
 * With no tracer set the run loop pays one untaken branch per exit.
 *
 * Guest addresses here are the guest's virtual addresses (rip). Breakpoints
 * are planted as `int3` at the same guest-physical address, which holds for
 * images entered in long mode (identity-mapped). docs/tracing.md says how
 * steps and breakpoints work on PVM, where neither KVM's hardware
 * breakpoints nor its single-step exit reach userspace. Whenever
 * wasp_virtine_run() is not running, guest memory holds no breakpoint and
 * KVM guest debugging is off, so a checkpoint never sees either. */

/* Event kinds, and the bits that ask for them in wasp_trace_opts.events. */
enum wasp_trace_kind {
	WASP_TRACE_EXIT = 0,  /* a KVM exit (any reason) */
	WASP_TRACE_HYPERCALL, /* a hypercall was served (or denied) */
	WASP_TRACE_IO,        /* an `in`/`out` exit, hypercall ports included */
	WASP_TRACE_FAULT,     /* the run ends in WASP_EXIT_FAULT */
	WASP_TRACE_STEP,      /* one guest instruction executed (single step) */
	WASP_TRACE_BREAK,     /* a breakpoint was reached (always reported) */
	WASP_TRACE_SYSCALL,   /* a Linux program's system call was served (hc.*) */
	WASP_TRACE_KINDS
};
#define WASP_TRACE_BIT(kind) (1u << (kind))

struct wasp_trace_event {
	enum wasp_trace_kind kind;
	uint64_t t_ns;                /* wasp_now_ns() when it happened */
	const struct wasp_regs *regs; /* guest registers after the event */
	uint32_t kvm_exit;            /* EXIT: KVM_EXIT_* */
	uint64_t addr;                /* STEP: the instruction executed; BREAK:
				       * the breakpoint; FAULT: as wasp_exit */
	uint64_t hits;                /* BREAK: times this breakpoint was reached */
	struct {
		uint64_t nr, args[6];
		int64_t result;       /* rax given back; -ENOSYS for one the caller answers */
		uint64_t ns;          /* host time serving it */
		const char *name;     /* NULL for an unknown number */
	} hc;
	struct {
		uint16_t port;
		uint8_t size, out; /* out: 1 for `out` */
		uint64_t value;    /* data of an `out` (low `size` bytes) */
	} io;
	const struct wasp_exit *exit; /* FAULT: how the run ends */
};

/* What the callback returns: go on, or stop the run here (it returns
 * WASP_EXIT_PAUSED, at an instruction boundary, ready for a checkpoint). */
enum { WASP_TRACE_CONTINUE = 0, WASP_TRACE_STOP = 1 };
typedef int (*wasp_trace_fn)(struct wasp_virtine *v, const struct wasp_trace_event *ev,
			     void *opaque);

struct wasp_trace_opts {
	unsigned events;     /* WASP_TRACE_BIT()s; 0 with fn set: attached, nothing asked */
	/* Steps end (the guest runs on at full speed) after this many
	 * instructions or this much wall time since the first step, whichever
	 * comes first; 0: no bound of that kind (at least one must be set). */
	uint64_t max_steps, max_step_ns;
	wasp_trace_fn fn;
	void *opaque;
};

/* Sets (or, with o == NULL or o->fn == NULL, removes) the virtine's tracer.
 * Not while it runs. -EINVAL for an unknown event bit or steps without a
 * bound. */
WASP_API int wasp_virtine_trace(struct wasp_virtine *v, const struct wasp_trace_opts *o);
/* The tracer as set (events 0 and fn NULL when none). */
WASP_API void wasp_virtine_trace_get(const struct wasp_virtine *v, struct wasp_trace_opts *o);
/* Steps taken since the tracer was set. */
WASP_API uint64_t wasp_virtine_trace_steps(const struct wasp_virtine *v);

/* Adds a breakpoint at guest address `addr` (a tracer must be set to hear
 * of it: WASP_TRACE_BREAK is reported whatever `events` says). A run that
 * starts exactly at a breakpoint does not stop there again: it steps over
 * it first. -EFAULT when addr is outside guest memory, -ENOSPC beyond
 * WASP_MAX_BREAKPOINTS, -EEXIST when set already. */
#define WASP_MAX_BREAKPOINTS 16
WASP_API int wasp_virtine_break_add(struct wasp_virtine *v, uint64_t addr);
/* Removes one; -ENOENT when there is none at addr. */
WASP_API int wasp_virtine_break_remove(struct wasp_virtine *v, uint64_t addr);

/* A KVM exit reason's name ("io", "shutdown"), or "unknown". */
WASP_API const char *wasp_kvm_exit_name(uint32_t kvm_exit);
/* An event kind's name ("hypercall"), or NULL. */
WASP_API const char *wasp_trace_kind_name(enum wasp_trace_kind k);

#ifdef __cplusplus
}
#endif
#endif /* WASP_VMM_H */
