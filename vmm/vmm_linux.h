/*
 * vmm_linux.h: the Linux personality's parts (docs/linux.md), shared by the
 * vmm_linux*.c files and the run loop only.
 *
 * A static x86-64 Linux executable runs at ring 3 with no kernel in the
 * guest. Its `syscall` lands on a stub the host placed at LSTAR, whose
 * `out` to WASP_PORT_SYSCALL exits to the host; the host serves the call
 * from a table (vmm_linux.c) and answers in rax, as Linux does.
 *
 * Memory is identity-mapped (virtual = guest-physical) as for every
 * long-mode virtine. Below LX_USER_BASE lie the page tables, the TSS and
 * the stub, all supervisor-only but the stub's page: a program's pointer
 * into them is -EFAULT in every call, and a load or store there faults.
 */
#ifndef WASP_VMM_LINUX_H
#define WASP_VMM_LINUX_H

#include "vmm_internal.h"

#define LX_USER_BASE 0x200000ull   /* the lowest address a program may own */
#define LX_GPA_STUB 0x9000u        /* `out WASP_PORT_SYSCALL, al; sysretq` */
#define LX_GPA_GDT 0xb000u         /* where exceptions are caught (lx_idt): */
#define LX_GPA_IDT 0xc000u         /*   GDT, IDT, handlers, the ring-0 stack */
#define LX_GPA_IDT_CODE 0xd000u
#define LX_GPA_KSTACK 0xe000u
#define LX_GPA_PT_POOL 0x10000u    /* 4 KiB page tables for 2 MiB regions */
#define LX_PT_POOL_PAGES 64u
#define LX_LOAD_PIE 0x400000ull    /* where a static-pie program is placed */
#define LX_STACK_SIZE WASP_LINUX_STACK_SIZE /* a guard page lies below */
#define LX_PID 1                   /* the one process: pid = tid */
#define LX_UID 1000                /* uid = gid = euid = egid */
#define LX_NSIG 64
/* RLIMIT_NOFILE as prlimit64 reports it, and the bound on fd numbers the
 * calls take; at most WASP_MAX_FILES of them are open at once (EMFILE). */
#define LX_NOFILE 1024

/* One mapping made by mmap (brk, the program's segments and the stack
 * are not in this list). prot/flags are Linux's values, as asked. */
struct wasp_lx_map {
	uint64_t start, len;
	uint32_t prot, flags;
};

struct wasp_lx_sigaction {
	uint64_t handler, flags, restorer, mask;
};

/* The personality's state: everything here but stub_cpl is part of a
 * checkpoint (ckpt/ reads and writes it through vmm.h). */
struct wasp_linux {
	uint64_t entry;                /* AT_ENTRY */
	uint64_t image_lo, image_hi;   /* the program's segments, page-rounded */
	uint64_t brk_start, brk, brk_max;
	uint64_t mmap_min, mmap_top;   /* mmap hands out [mmap_min, mmap_top) */
	uint64_t stack_low, stack_top; /* the guard page is just below stack_low */
	struct wasp_lx_map *maps;      /* sorted by start, never overlapping */
	unsigned nmaps, mapcap;
	struct wasp_lx_sigaction sig[LX_NSIG]; /* index: signal number - 1 */
	uint64_t sigmask;
	uint64_t tid_address, robust_list, robust_len;
	uint64_t altstack_sp, altstack_size, altstack_flags;
	uint32_t umask;
	/* bit n: the program closed its fd n (0..2); bit 8+n: it set
	 * O_NONBLOCK on fd n (vmm_linux_fs.c; never on the host's fd) */
	uint32_t stdio_closed;
	/* A sleep a pause cut short: the `syscall` at sleep_rip sleeps only
	 * sleep_left_ns more when the program runs it again (0: none). */
	uint64_t sleep_rip, sleep_left_ns;
	/* The privilege level the stub runs at on this host: 0 on hardware
	 * KVM (syscall entered ring 0; the stub's sysretq returns), 3 on PVM
	 * (syscall stays in ring 3 and sysretq would #GP, so the host sets
	 * rip = rcx and rflags = r11 itself). A property of the host, probed
	 * once per process in a throwaway virtine (vmm_linux.c), never saved. */
	int stub_cpl;
	/* Set by a handler that must run again when the program resumes (a
	 * blocking read or sleep the run's kick interrupted): the host points
	 * the program back at its `syscall` with rax = the same number. */
	bool restart;
	uint64_t cur_nr, cur_rip; /* the call being served */
};

/* A syscall handler: the six arguments (rdi rsi rdx r10 r8 r9); returns
 * rax (a negative errno for failure). It must check every pointer with
 * the wasp_lx_user_*() calls below. */
typedef int64_t (*wasp_lx_fn)(struct wasp_virtine *v, const uint64_t a[6]);

/* ---- vmm_linux.c ------------------------------------------------------- */

/* Host pointer to program memory [addr, addr+len) to read, or NULL (the
 * handler answers -EFAULT): outside guest memory, wrapping, or below
 * LX_USER_BASE. len 0 is a valid empty range at any user address. */
const void *wasp_lx_user_r(struct wasp_virtine *v, uint64_t addr, size_t len);
/* The same to write: the pages are marked dirty for checkpoints. */
void *wasp_lx_user_w(struct wasp_virtine *v, uint64_t addr, size_t len);
/* Copies a NUL-terminated string of at most cap-1 bytes; its length,
 * -EFAULT, or -ENAMETOOLONG. */
int wasp_lx_user_str(struct wasp_virtine *v, uint64_t addr, char *buf, size_t cap);

/* Whether hypercall `nr`'s permission is granted (the Linux groups reuse
 * the hypercall names: docs/hypercalls.md); counts a denial. */
bool wasp_lx_allowed(struct wasp_virtine *v, unsigned hc_nr);

/* Serves the syscall the vCPU exited for (port WASP_PORT_SYSCALL). Returns
 * true when the run goes on, false with *e filled (exit_group, a signal
 * that ends the program) or *err set. */
bool wasp_lx_syscall(struct wasp_virtine *v, struct wasp_exit *e, int *err);

/* Serves system call `nr` from the table alone (not exit, kill and the
 * wasp hypercall range, which wasp_lx_syscall handles): what the fuzzer
 * drives directly. rax, or -ENOSYS. */
int64_t wasp_lx_dispatch(struct wasp_virtine *v, uint64_t nr, const uint64_t a[6]);

/* Ends the run on a CPU exception the host's handlers caught (port
 * WASP_PORT_EXCEPTION): fills *e as a WASP_FAULT_EXCEPTION with the
 * program's registers from the exception frame. */
void wasp_lx_exception(struct wasp_virtine *v, struct wasp_exit *e);

/* Loads an ELF program given in memory (argv NULL: {"program"}; envp NULL:
 * none). */
int wasp_lx_load_buffer(struct wasp_virtine *v, const void *image, size_t len,
			const char *const argv[], const char *const envp[]);

void wasp_lx_free(struct wasp_virtine *v);

/* ---- vmm_linux_mem.c: brk, mmap, munmap, mremap, mprotect, madvise ----- */
int64_t wasp_lx_sys_brk(struct wasp_virtine *v, const uint64_t a[6]);
int64_t wasp_lx_sys_mmap(struct wasp_virtine *v, const uint64_t a[6]);
int64_t wasp_lx_sys_munmap(struct wasp_virtine *v, const uint64_t a[6]);
int64_t wasp_lx_sys_mremap(struct wasp_virtine *v, const uint64_t a[6]);
int64_t wasp_lx_sys_mprotect(struct wasp_virtine *v, const uint64_t a[6]);
int64_t wasp_lx_sys_madvise(struct wasp_virtine *v, const uint64_t a[6]);

/* ---- vmm_linux_fs.c: descriptors and paths ------------------------------
 * fds 0, 1, 2 are the process's stdin (cfg.stdin_fd, permission
 * "stdin_read"), stdout (cfg.console_fd) and stderr (cfg.stderr_fd), both
 * "console_write"; fds 3.. are v->files[] (shared with the file
 * hypercalls, so checkpoints carry them), permission "open". Paths resolve
 * in the sandbox as in its root (RESOLVE_IN_ROOT): "/x" and "x" are the
 * same file, nothing leads out. Without a sandbox every path call fails
 * with -ENOENT. */
#define WASP_LX_FS_CALLS(X)                                                               \
	X(0, read) X(1, write) X(2, open) X(3, close) X(4, stat) X(5, fstat) X(6, lstat)  \
	X(7, poll) X(8, lseek) X(16, ioctl) X(17, pread64) X(18, pwrite64) X(19, readv)   \
	X(20, writev) X(21, access) X(32, dup) X(33, dup2) X(72, fcntl) X(73, flock)      \
	X(74, fsync) X(75, fdatasync) X(76, truncate) X(77, ftruncate) X(79, getcwd)      \
	X(80, chdir) X(81, fchdir) X(82, rename) X(83, mkdir) X(84, rmdir) X(85, creat)   \
	X(87, unlink) X(89, readlink) X(90, chmod) X(91, fchmod) X(95, umask)             \
	X(217, getdents64) X(221, fadvise64) X(257, openat) X(258, mkdirat)               \
	X(262, newfstatat) X(263, unlinkat) X(264, renameat) X(267, readlinkat)           \
	X(268, fchmodat) X(269, faccessat) X(271, ppoll) X(280, utimensat)                \
	X(285, fallocate) X(292, dup3) X(295, preadv) X(296, pwritev) X(316, renameat2)   \
	X(332, statx) X(437, openat2) X(439, faccessat2)
#define WASP_LX_DECLARE(nr, name)                                                         \
	int64_t wasp_lx_sys_##name(struct wasp_virtine *v, const uint64_t a[6]);
WASP_LX_FS_CALLS(WASP_LX_DECLARE)

#endif /* WASP_VMM_LINUX_H */
