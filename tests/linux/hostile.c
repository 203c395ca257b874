/*
 * hostile.c: a program that tries to leave its virtine. Run only in a
 * virtine (never natively: some of these calls would succeed on a real
 * kernel), with --dir BOX, where the test planted:
 *   BOX/inbox.txt    a file inside the box
 *   BOX/root  -> /   BOX/up -> ../..   BOX/abs -> (absolute path of a file
 *   outside the box)   BOX/absdir -> (absolute path of the box's parent)
 * and, outside, ../near.txt and ../../outside.txt, both holding "SECRET".
 *
 * Each attempt prints "escape: refused WHAT (result)" or
 * "escape: BREACH WHAT (result)"; other calls print their result only.
 * The program must survive all of it and exit 0; the test checks that
 * nothing outside the box was read or changed. Every call is a raw
 * `syscall`, so no libc wrapper filters an argument first. Output is the
 * same on every run: nothing printed depends on time or addresses chosen
 * at random.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "lx_common.h"

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}
#define SYS(n, ...) sys6_(n, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define sys6_(n, a, b, c, d, e, f, ...) sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static int attempts, refused;

/* One escape attempt: refused when `ok` (the call failed, or did nothing
 * that leads out). */
static void attempt(const char *what, long r, int ok)
{
	attempts++;
	refused += ok;
	printf("escape: %s %s (%ld)\n", ok ? "refused" : "BREACH", what, r);
}

/* Whatever a successful open gave must not be a file from outside. */
static int leaked(long fd)
{
	char buf[4097];
	long n = SYS(SYS_read, fd, buf, 4096);
	SYS(SYS_close, fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strstr(buf, "SECRET") || strstr(buf, "root:");
}

static void try_read(const char *path, int flags)
{
	char what[256];
	snprintf(what, sizeof what, "open %s for reading", path);
	long fd = SYS(SYS_open, path, flags, 0);
	attempt(what, fd < 0 ? fd : 0, fd < 0 || !leaked(fd));
}

/* Must fail: no such file exists in the box, so success means outside. */
static void try_write(const char *path, int flags)
{
	char what[256];
	snprintf(what, sizeof what, "open %s for writing", path);
	long fd = SYS(SYS_open, path, flags, 0644);
	if (fd >= 0) {
		SYS(SYS_write, fd, "PWNED\n", 6);
		SYS(SYS_close, fd);
	}
	attempt(what, fd, fd < 0);
}

/* A directory listing from outside names outside.txt or jail. */
static void try_list(const char *path)
{
	char what[256], buf[8192];
	snprintf(what, sizeof what, "list %s", path);
	long fd = SYS(SYS_open, path, O_RDONLY | O_DIRECTORY, 0);
	int bad = 0;
	if (fd >= 0) {
		long n;
		while ((n = SYS(SYS_getdents64, fd, buf, sizeof buf)) > 0)
			for (long off = 0; off < n;) {
				unsigned short reclen;
				memcpy(&reclen, buf + off + 16, 2);
				const char *name = buf + off + 19;
				bad |= !strcmp(name, "outside.txt") || !strcmp(name, "etc") ||
				       !strcmp(name, "near.txt");
				off += reclen;
			}
		SYS(SYS_close, fd);
	}
	attempt(what, fd < 0 ? fd : 0, !bad);
}

static char stackish[4096];

static void paths(void)
{
	static const char *reads[] = {
		"/etc/passwd", "../../etc/passwd", "../../../../../../../../../../etc/passwd",
		"root/etc/passwd", "up/etc/passwd", "up/outside.txt", "up/jail/near.txt",
		"../near.txt", "../../outside.txt", "/../outside.txt", "abs", "absdir/near.txt",
		"root/proc/self/environ", "/proc/self/mem", "/proc/self/root/etc/passwd",
		"/proc/1/environ", "/dev/kvm", "/dev/mem", "/sys/kernel/notes",
	};
	for (unsigned i = 0; i < sizeof reads / sizeof reads[0]; i++)
		try_read(reads[i], O_RDONLY);
	try_read("/proc/self/mem", O_RDWR);
	try_list("/");
	try_list("..");
	try_list("up");
	try_list("root");
	try_list("absdir/..");

	try_write("../../outside.txt", O_WRONLY | O_TRUNC);
	try_write("up/outside.txt", O_WRONLY | O_APPEND);
	try_write("abs", O_WRONLY | O_TRUNC);
	try_write("absdir/near.txt", O_WRONLY | O_APPEND);
	try_write("/etc/passwd", O_WRONLY | O_APPEND);
	try_write("root/tmp/wasp-escaped", O_WRONLY | O_CREAT);
	try_write("/proc/self/mem", O_WRONLY);

	/* openat from a directory fd that is the box's root. */
	long dfd = SYS(SYS_open, "..", O_RDONLY | O_DIRECTORY, 0);
	long fd = SYS(SYS_openat, dfd, "../outside.txt", O_RDONLY, 0);
	attempt("openat(box, ../outside.txt)", fd, fd < 0 || !leaked(fd));
	fd = SYS(SYS_openat, AT_FDCWD, "up/../../../outside.txt", O_RDONLY, 0);
	attempt("openat(cwd, up/../../../outside.txt)", fd, fd < 0 || !leaked(fd));
	SYS(SYS_close, dfd);

	/* chdir cannot leave either. */
	long r = SYS(SYS_chdir, "../..");
	fd = SYS(SYS_open, "outside.txt", O_RDONLY, 0);
	attempt("chdir ../.. then open outside.txt", fd, fd < 0 || !leaked(fd));
	printf("chdir ../..: %ld\n", r);
	r = SYS(SYS_chdir, "up");
	fd = SYS(SYS_open, "outside.txt", O_RDONLY, 0);
	attempt("chdir up then open outside.txt", fd, fd < 0 || !leaked(fd));
	printf("chdir up: %ld, chdir /: %ld\n", r, SYS(SYS_chdir, "/"));

	r = SYS(SYS_unlink, "../../outside.txt");
	attempt("unlink ../../outside.txt", r, r < 0);
	r = SYS(SYS_unlink, "up/outside.txt");
	attempt("unlink up/outside.txt", r, r < 0);
	r = SYS(SYS_rename, "abs", "stolen");
	printf("rename of the symlink abs itself: %ld\n", r);
	r = SYS(SYS_rename, "up/outside.txt", "stolen.txt");
	attempt("rename up/outside.txt into the box", r, r < 0);
	r = SYS(SYS_rename, "inbox.txt", "../../moved-out.txt");
	printf("rename inbox.txt to ../../moved-out.txt (lands in the box): %ld\n", r);
	r = SYS(SYS_link, "../../outside.txt", "hard");
	attempt("link ../../outside.txt", r, r < 0);
	r = SYS(SYS_truncate, "../../outside.txt", 0);
	attempt("truncate ../../outside.txt", r, r < 0);
	r = SYS(SYS_chmod, "/etc/passwd", 0777);
	attempt("chmod /etc/passwd", r, r < 0);
	r = SYS(SYS_mkdir, "../../escaped-dir", 0755);
	printf("mkdir ../../escaped-dir (lands in the box): %ld\n", r);
	r = SYS(SYS_symlink, "/", "newroot");
	printf("symlink / newroot: %ld\n", r);
	fd = SYS(SYS_open, "newroot/etc/passwd", O_RDONLY, 0);
	attempt("open newroot/etc/passwd", fd, fd < 0 || !leaked(fd));
	memset(stackish, 'a', sizeof stackish - 1);
	r = SYS(SYS_open, stackish, O_RDONLY, 0);
	attempt("open a 4095-byte name", r, r < 0);
}

static void processes(void)
{
	long r = SYS(SYS_socket, 2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
	attempt("socket(AF_INET)", r, r < 0);
	r = SYS(SYS_socket, 1 /* AF_UNIX */, 1, 0);
	attempt("socket(AF_UNIX)", r, r < 0);
	r = SYS(SYS_socket, 16 /* AF_NETLINK */, 3, 0);
	attempt("socket(AF_NETLINK)", r, r < 0);
	int sv[2];
	r = SYS(SYS_socketpair, 1, 1, 0, sv);
	attempt("socketpair", r, r < 0);
	r = SYS(SYS_fork, 0);
	attempt("fork", r, r < 0);
	r = SYS(SYS_vfork, 0);
	attempt("vfork", r, r < 0);
	r = SYS(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	attempt("clone(SIGCHLD)", r, r < 0);
	r = SYS(SYS_clone, 0x50f00 /* a thread: VM|FS|FILES|SIGHAND|THREAD|SYSVSEM */, stackish + 2048, 0, 0, 0);
	attempt("clone(a thread)", r, r < 0);
	uint64_t cl_args[11] = {0};
	cl_args[4] = SIGCHLD; /* exit_signal */
	r = SYS(SYS_clone3, cl_args, 88);
	attempt("clone3", r, r < 0);
	char *argv[] = {"/bin/sh", "-c", "echo escaped", NULL};
	r = SYS(SYS_execve, "/bin/sh", argv, NULL);
	attempt("execve /bin/sh", r, r < 0);
	r = SYS(SYS_execve, "root/bin/sh", argv, NULL);
	attempt("execve root/bin/sh", r, r < 0);
	r = SYS(SYS_execveat, AT_FDCWD, "up/outside.txt", argv, NULL, 0);
	attempt("execveat up/outside.txt", r, r < 0);
	r = SYS(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
	attempt("ptrace(TRACEME)", r, r < 0);
	r = SYS(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0);
	attempt("ptrace(ATTACH, 1)", r, r < 0);
	char dst[16];
	struct { void *base; size_t len; } lio = {dst, 16}, rio = {(void *)0x400000, 16};
	r = SYS(SYS_process_vm_readv, 1, &lio, 1, &rio, 1, 0);
	attempt("process_vm_readv(1)", r, r < 0);
	r = SYS(SYS_pidfd_open, 1, 0);
	attempt("pidfd_open(1)", r, r < 0);
	r = SYS(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */);
	attempt("unshare(CLONE_NEWUSER)", r, r < 0);
	r = SYS(SYS_mount, "none", "root", "tmpfs", 0, 0);
	attempt("mount tmpfs", r, r < 0);
	r = SYS(SYS_chroot, "up");
	attempt("chroot up", r, r < 0);
	r = SYS(SYS_ioctl, 1, 0x5412 /* TIOCSTI */, "x");
	attempt("ioctl(1, TIOCSTI)", r, r < 0);
	r = SYS(SYS_io_uring_setup, 4, stackish);
	attempt("io_uring_setup", r, r < 0);
	r = SYS(SYS_bpf, 0, stackish, 64);
	attempt("bpf", r, r < 0);
	r = SYS(SYS_perf_event_open, stackish, 0, -1, -1, 0);
	attempt("perf_event_open", r, r < 0);
	r = SYS(SYS_userfaultfd, 0);
	attempt("userfaultfd", r, r < 0);
	r = SYS(SYS_init_module, stackish, 16, "");
	attempt("init_module", r, r < 0);
	r = SYS(SYS_kexec_load, 0, 0, 0, 0);
	attempt("kexec_load", r, r < 0);
	r = SYS(SYS_setns, 3, 0);
	attempt("setns", r, r < 0);
}

#define GUEST_PT 0x1000L              /* the page tables live here */
#define GUEST_STUB 0x9000L            /* the syscall stub */
#define GUEST_PT_POOL 0x10000L
#define KERNEL_HALF 0xffff800000000000L
#define NONCANONICAL 0x8000000000000000L

static void pointers(void)
{
	static const long bad[] = {0, GUEST_PT, GUEST_STUB, GUEST_PT_POOL, KERNEL_HALF, NONCANONICAL, -4096L};
	static const char *names[] = {"0x0", "0x1000", "0x9000", "0x10000", "0xffff800000000000",
				      "0x8000000000000000", "-4096"};
	char what[128], buf[64] = "fine";
	long fd = SYS(SYS_open, "scratch.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	SYS(SYS_write, fd, "0123456789abcdef0123456789abcdef", 32);
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long r;
		snprintf(what, sizeof what, "write(1) from %s", names[i]);
		r = SYS(SYS_write, 1, bad[i], 16);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "read(file) into %s", names[i]);
		r = SYS(SYS_pread64, fd, bad[i], 16, 0);
		attempt(what, r, r < 0);
		SYS(SYS_lseek, fd, 0, SEEK_SET);
		r = SYS(SYS_read, fd, bad[i], 16);
		attempt(what, r, r < 0);
		struct { long base; size_t len; } iov = {bad[i], 16};
		snprintf(what, sizeof what, "readv into %s", names[i]);
		r = SYS(SYS_preadv, fd, &iov, 1, 0);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "writev(1) with iovec at %s", names[i]);
		r = SYS(SYS_writev, 1, bad[i], 1);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "getrandom into %s", names[i]);
		r = SYS(SYS_getrandom, bad[i], 64, 0);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "clock_gettime into %s", names[i]);
		r = SYS(SYS_clock_gettime, 1, bad[i]);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "fstat into %s", names[i]);
		r = SYS(SYS_fstat, fd, bad[i]);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "uname into %s", names[i]);
		r = SYS(SYS_uname, bad[i]);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "open path at %s", names[i]);
		r = SYS(SYS_open, bad[i], O_RDONLY, 0);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "nanosleep reading %s", names[i]);
		r = SYS(SYS_nanosleep, bad[i], 0);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "getcwd into %s", names[i]);
		r = SYS(SYS_getcwd, bad[i], 64);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "getdents64 into %s", names[i]);
		long dfd = SYS(SYS_open, ".", O_RDONLY | O_DIRECTORY, 0);
		r = SYS(SYS_getdents64, dfd, bad[i], 4096);
		SYS(SYS_close, dfd);
		attempt(what, r, r < 0);
		if (bad[i]) { /* a NULL old action only means "not wanted" */
			snprintf(what, sizeof what, "rt_sigaction old into %s", names[i]);
			r = SYS(SYS_rt_sigaction, SIGUSR1, 0, bad[i], 8);
			attempt(what, r, r < 0);
		}
	}
	/* Huge lengths from a valid buffer: Linux refuses a range past the
	 * user half; at most the virtine's own memory may be written. */
	long r = SYS(SYS_write, fd, buf, 1L << 62);
	attempt("write of 2^62 bytes", r, r < 0);
	r = SYS(SYS_write, fd, buf, 1L << 40);
	attempt("write of 2^40 bytes", r, r < 0 || r < (1L << 32));
	/* At the end of the file, so a lenient answer reads nothing. */
	SYS(SYS_lseek, fd, 0, SEEK_END);
	r = SYS(SYS_read, fd, buf, -1L);
	attempt("read of 2^64-1 bytes", r, r <= 0);
	struct { void *base; size_t len; } iov2[2] = {{buf, 16}, {buf, (size_t)-1 / 2}};
	r = SYS(SYS_writev, fd, iov2, 2);
	attempt("writev summing past 2^63", r, r < 0 || r < (1L << 32));
	r = SYS(SYS_writev, 1, iov2, 1 << 30);
	attempt("writev with 2^30 iovecs", r, r < 0);
	SYS(SYS_close, fd);
	printf("buffer intact: %s\n", strcmp(buf, "fine") == 0 ? "yes" : "no");
}

static void memory(void)
{
	long r = SYS(SYS_mmap, 0, 1L << 47, 3, 0x22 /* PRIVATE|ANON */, -1, 0);
	attempt("mmap of 2^47 bytes", r, r < 0 && r > -4096);
	r = SYS(SYS_mmap, 0, 1L << 46, 3, 0x22, -1, 0);
	attempt("mmap of 2^46 bytes", r, r < 0 && r > -4096);
	r = SYS(SYS_mmap, 0, -8192L, 3, 0x22, -1, 0);
	attempt("mmap of 2^64-8192 bytes", r, r < 0 && r > -4096);
	static const long fixed[] = {0, GUEST_PT, GUEST_STUB, GUEST_PT_POOL, KERNEL_HALF, (1L << 47) - 4096};
	for (unsigned i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		char what[96];
		snprintf(what, sizeof what, "mmap MAP_FIXED at %#lx", fixed[i]);
		r = SYS(SYS_mmap, fixed[i], 8192, 7, 0x32 /* PRIVATE|ANON|FIXED */, -1, 0);
		attempt(what, r, r < 0 && r > -4096);
		snprintf(what, sizeof what, "mprotect rwx at %#lx", fixed[i]);
		r = SYS(SYS_mprotect, fixed[i], 4096, 7);
		attempt(what, r, r < 0);
		snprintf(what, sizeof what, "mremap from %#lx", fixed[i]);
		r = SYS(SYS_mremap, fixed[i], 4096, 8192, 1 /* MAYMOVE */, 0);
		attempt(what, r, r < 0 && r > -4096);
		snprintf(what, sizeof what, "madvise DONTNEED at %#lx", fixed[i]);
		r = SYS(SYS_madvise, fixed[i], 4096, 4 /* MADV_DONTNEED */);
		attempt(what, r, r < 0);
	}
	/* munmap of memory the program does not own answers 0 on Linux; it
	 * must not take the page tables or the stub with it. */
	printf("munmap 0x1000: %ld\n", SYS(SYS_munmap, GUEST_PT, 4096));
	printf("munmap 0x9000: %ld\n", SYS(SYS_munmap, GUEST_STUB, 4096));
	printf("still running after munmap: yes\n");

	/* brk below its start or past the memory leaves it where it was. */
	long cur = SYS(SYS_brk, 0);
	r = SYS(SYS_brk, 0x1000);
	attempt("brk(0x1000)", r == cur ? 0 : r, r != 0x1000 && r == cur);
	r = SYS(SYS_brk, 1L << 47);
	attempt("brk(2^47)", r == cur ? 0 : r, r == cur);
	r = SYS(SYS_brk, KERNEL_HALF);
	attempt("brk(0xffff800000000000)", r == cur ? 0 : r, r == cur);

	r = SYS(SYS_iopl, 3);
	attempt("iopl(3)", r, r < 0);
	r = SYS(SYS_ioperm, 0, 0x400, 1);
	attempt("ioperm(0..0x3ff)", r, r < 0);
	r = SYS(SYS_modify_ldt, 1, stackish, 16);
	attempt("modify_ldt", r, r < 0);
	r = SYS(SYS_arch_prctl, 0x1001 /* ARCH_SET_GS */, NONCANONICAL);
	attempt("arch_prctl(SET_GS, non-canonical)", r, r < 0);
	r = SYS(SYS_arch_prctl, 0x1001, KERNEL_HALF);
	attempt("arch_prctl(SET_GS, kernel half)", r, r < 0);
	r = SYS(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, NONCANONICAL);
	attempt("arch_prctl(SET_FS, non-canonical)", r, r < 0);
	r = SYS(SYS_arch_prctl, 0x1002, KERNEL_HALF);
	attempt("arch_prctl(SET_FS, kernel half)", r, r < 0);
}

/* The calls the sweep leaves out: those that end the process or wait for
 * something that never comes, and the memory-map calls whose random
 * arguments could legitimately unmap the program itself (memory() above
 * aims them at the host's pages instead). */
static int skipped(long nr)
{
	static const short skip[] = {
		SYS_rt_sigreturn, SYS_exit, SYS_exit_group, SYS_kill, SYS_tkill, SYS_tgkill,
		SYS_pause, SYS_nanosleep, SYS_clock_nanosleep, SYS_rt_sigsuspend,
		SYS_rt_sigtimedwait, SYS_poll, SYS_select, SYS_pselect6, SYS_ppoll,
		SYS_epoll_wait, SYS_epoll_pwait, 441 /* epoll_pwait2 */, SYS_wait4, SYS_waitid,
		SYS_futex, 449 /* futex_waitv */, SYS_io_getevents, SYS_io_pgetevents,
		SYS_msgrcv, SYS_semop, SYS_semtimedop, SYS_mq_timedreceive, SYS_mmap,
		SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise, SYS_brk, SYS_arch_prctl,
		SYS_pkey_mprotect, SYS_shmat, SYS_clone, SYS_fork, SYS_vfork, SYS_execve,
		SYS_execveat, SYS_clone3, SYS_ptrace, SYS_close_range, SYS_rt_sigqueueinfo,
		SYS_rt_tgsigqueueinfo, 424 /* pidfd_send_signal */, SYS_reboot, SYS_restart_syscall,
	};
	for (unsigned i = 0; i < sizeof skip / sizeof skip[0]; i++)
		if (skip[i] == nr)
			return 1;
	return 0;
}

static char scratch[128 * 1024];

/* Arguments of a few kinds, chosen by a fixed sequence: zero, small
 * descriptors (never stdout or stderr), a valid buffer, host pages,
 * the kernel half, and large values that are negative as off_t. */
static long pick(uint64_t *s)
{
	uint64_t r = lx_rand(s);
	switch (r % 9) {
	case 0: return 0;
	case 1: return 3 + (long)((r >> 8) % 13);
	case 2: return (long)scratch;
	case 3: return (long)(scratch + 65536 - 8);
	case 4: return GUEST_PT;
	case 5: return KERNEL_HALF;
	case 6: return (long)(r | (1ull << 63));
	case 7: return (long)((r >> 16) & 0xffff);
	default: return GUEST_STUB;
	}
}

/* `out 0xFF` is wasp's own hypercall. Where the syscall stub runs at ring 3
 * (PVM) ring 3 may execute `out`, so a program could bypass `syscall`;
 * elsewhere the `out` faults and ends the program (as on Linux, status
 * 139). Either way the sandbox must hold: run as `hostile hypercalls`. */
static long hypercall(long nr, long a0, long a1, long a2)
{
	long r;
	__asm__ volatile("outb %%al, $0xFF" : "=a"(r) : "a"(nr), "D"(a0), "S"(a1), "d"(a2) : "memory");
	return r;
}

static void hypercalls(void)
{
	static const char *paths[] = {"../../outside.txt", "/etc/passwd", "up/outside.txt", "abs"};
	for (unsigned i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		char what[128], buf[4097];
		long fd = hypercall(3 /* WASP_HC_OPEN */, (long)paths[i], 0 /* WASP_O_RDONLY */, 0);
		int bad = 0;
		if (fd >= 0) {
			long n = hypercall(5 /* WASP_HC_READ */, fd, (long)buf, 4096);
			if (n > 0) {
				buf[n] = 0;
				bad = strstr(buf, "SECRET") || strstr(buf, "root:");
			}
			hypercall(4 /* WASP_HC_CLOSE */, fd, 0, 0);
		}
		snprintf(what, sizeof what, "hypercall open %s", paths[i]);
		attempt(what, fd, !bad);
	}
	long r = hypercall(1 /* WASP_HC_CONSOLE_WRITE */, GUEST_PT, 16, 0);
	attempt("hypercall console_write from 0x1000", r, r < 0);
	r = hypercall(2 /* WASP_HC_STDIN_READ */, GUEST_STUB, 16, 0);
	attempt("hypercall stdin_read into 0x9000", r, r <= 0);
	r = hypercall(127, 0, 0, 0);
	attempt("hypercall 127 (unregistered)", r, r < 0);
}

static void sweep(void)
{
	long fd = SYS(SYS_open, "sweep-target.txt", O_RDWR | O_CREAT, 0644);
	printf("sweep target fd %ld\n", fd);
	int served = 0, nosys = 0;
	for (long nr = 0; nr < 1024; nr++) {
		if (skipped(nr))
			continue;
		uint64_t s = 0x5eed0000u + (uint64_t)nr * 2654435761u;
		long a[6];
		for (int i = 0; i < 6; i++)
			a[i] = pick(&s);
		for (size_t i = 0; i < sizeof scratch; i++)
			scratch[i] = "sweepfile"[i % 10];
		long r = sys6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		/* time() and times() answer the clock itself. */
		if (nr == SYS_time || nr == SYS_times)
			printf("sys %ld: %s\n", nr, r >= 0 ? "a time" : "an error");
		else
			printf("sys %ld: %ld\n", nr, r);
		nosys += r == -ENOSYS;
		served += r != -ENOSYS;
	}
	printf("sweep: %d answered, %d ENOSYS\n", served, nosys);
	fflush(stdout);
	long w = SYS(SYS_write, 1, "sweep: stdout still works\n", 26);
	printf("sweep: write to stdout after the sweep: %ld\n", w);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Natively, as root, the sweep alone could set the clock or mount
	 * things: run only where "/" is the box (its marker file is there). */
	if (SYS(SYS_access, "/inbox.txt", F_OK) != 0) {
		puts("hostile: /inbox.txt is missing: this runs only in a virtine with --dir BOX");
		return 2;
	}
	if (argc > 1 && !strcmp(argv[1], "stub")) {
		/* Calls the host's syscall stub (0x9000) from ring 3, as if it
		 * were a function: on hardware KVM its page is supervisor-only
		 * (a fault); where syscall stays in ring 3 (PVM) the stub's
		 * `out` returns to whatever rcx holds. Either way the run ends
		 * in a guest fault, never at ring 0 (docs/linux.md). */
		puts("hostile: stub start");
		fflush(stdout);
		((void (*)(void))GUEST_STUB)();
		puts("hostile: survived a call into the stub");
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "hypercalls")) {
		puts("hostile: hypercalls start");
		hypercalls();
		printf("hostile: %d escape attempts, %d refused\n", attempts, refused);
		puts("hostile: done");
		return 0;
	}
	puts("hostile: start");
	paths();
	puts("hostile: paths done");
	processes();
	puts("hostile: processes done");
	pointers();
	puts("hostile: pointers done");
	memory();
	puts("hostile: memory done");
	sweep();
	printf("hostile: %d escape attempts, %d refused\n", attempts, refused);
	puts("hostile: done");
	return 0;
}
