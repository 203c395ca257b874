/*
 * badptr: every pointer-taking hypercall, handed pointers the host must
 * refuse: outside guest memory, straddling its end, wrapping around 2^64,
 * aliasing a valid address modulo 2^32, and lengths larger than memory.
 * Each must fail with -EFAULT (or -EINVAL; set_ret may also say -E2BIG for
 * a huge length) without the host touching anything. Prints one line per
 * check and exits 0 if all were refused, 1 otherwise.
 *
 * Run with --allow=all, a sandbox directory (badptr.tmp is created there)
 * and a non-empty argument (so get_arg has bytes it could copy), e.g.
 *   wasp-run --allow=all --dir D badptr.bin -- x
 * Without a usable open, the fd-based checks are skipped and say so.
 */
#include "wasp_guest.h"

static int checks, failures;

static void expect_refused(const char *what, int64_t got, bool allow_e2big)
{
	bool ok = got == -WASP_EFAULT || got == -WASP_EINVAL || (allow_e2big && got == -WASP_E2BIG);

	checks++;
	if (!ok)
		failures++;
	wasp_printf("badptr: %-44s -> %lld %s %s\n", what, (long long)got,
		    got < 0 ? wasp_errname(got) : "(accepted)", ok ? "ok" : "FAIL");
}

/* A pointer that names a valid address if the host truncates to 32 bits. */
#define ALIAS32(p) ((uint64_t)(uintptr_t)(p) + (1ull << 32))
#define WRAP_PTR 0xfffffffffffff000ull
#define WRAP_LEN 0x2000ull
#define HUGE_LEN (1ull << 62)

static char buf[64];

int main(void)
{
	uint64_t mem = wasp_mem_size();
	uint64_t out = mem;             /* first byte past guest memory */
	uint64_t far = 1ull << 40;
	uint64_t straddle = mem - 8;    /* 8 bytes inside, the rest outside */
	uint64_t b = (uintptr_t)buf;

	wasp_printf("badptr: guest memory 0x%llx bytes\n", (unsigned long long)mem);

	/* console_write reads guest memory */
	expect_refused("console_write(end of memory, 16)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, out, 16, 0, 0, 0, 0), false);
	expect_refused("console_write(1 TiB, 16)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, far, 16, 0, 0, 0, 0), false);
	expect_refused("console_write(buf + 4 GiB, 16)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, ALIAS32(buf), 16, 0, 0, 0, 0), false);
	expect_refused("console_write(0xfffffffffffff000, 0x2000)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, WRAP_PTR, WRAP_LEN, 0, 0, 0, 0), false);
	expect_refused("console_write(end - 8, 16)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, straddle, 16, 0, 0, 0, 0), false);
	expect_refused("console_write(buf, 2^62)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, b, HUGE_LEN, 0, 0, 0, 0), false);
	expect_refused("console_write(buf, -1)",
		       wasp_hypercall(WASP_HC_CONSOLE_WRITE, b, ~0ull, 0, 0, 0, 0), false);

	/* stdin_read writes guest memory */
	expect_refused("stdin_read(end of memory, 16)",
		       wasp_hypercall(WASP_HC_STDIN_READ, out, 16, 0, 0, 0, 0), false);
	expect_refused("stdin_read(0xfffffffffffff000, 0x2000)",
		       wasp_hypercall(WASP_HC_STDIN_READ, WRAP_PTR, WRAP_LEN, 0, 0, 0, 0), false);
	expect_refused("stdin_read(buf, 2^62)",
		       wasp_hypercall(WASP_HC_STDIN_READ, b, HUGE_LEN, 0, 0, 0, 0), false);

	/* open reads a NUL-terminated path */
	expect_refused("open(path = end of memory)",
		       wasp_hypercall(WASP_HC_OPEN, out, WASP_O_RDONLY, 0, 0, 0, 0), false);
	expect_refused("open(path = 1 TiB)",
		       wasp_hypercall(WASP_HC_OPEN, far, WASP_O_RDONLY, 0, 0, 0, 0), false);
	expect_refused("open(path = 0xfffffffffffff000)",
		       wasp_hypercall(WASP_HC_OPEN, WRAP_PTR, WASP_O_RDONLY, 0, 0, 0, 0), false);
	{
		/* "abc" in the last three bytes of memory, no NUL before the end.
		 * Those bytes are the top of our stack: put them back after. */
		volatile char *tail = (volatile char *)(uintptr_t)(mem - 3);
		char saved[3] = {tail[0], tail[1], tail[2]};

		tail[0] = 'a', tail[1] = 'b', tail[2] = 'c';
		int64_t r = wasp_hypercall(WASP_HC_OPEN, mem - 3, WASP_O_RDONLY, 0, 0, 0, 0);
		tail[0] = saved[0], tail[1] = saved[1], tail[2] = saved[2];
		expect_refused("open(unterminated path at end of memory)", r, false);
	}

	/* fd-based calls need a real file, so the host has something to copy */
	int fd = wasp_open("badptr.tmp", WASP_O_RDWR | WASP_O_CREAT | WASP_O_TRUNC, 0600);
	if (fd < 0) {
		wasp_printf("badptr: SKIP read/write/pread/pwrite/fstat: open badptr.tmp: %d %s\n", fd,
			    wasp_errname(fd));
	} else {
		memset(buf, 'x', sizeof buf);
		wasp_write(fd, buf, sizeof buf);
		const struct {
			const char *name;
			uint64_t ptr, len;
		} bad[] = {
			{"end of memory, 16", out, 16},
			{"0xfffffffffffff000, 0x2000", WRAP_PTR, WRAP_LEN},
			{"end - 8, 16", straddle, 16},
			{"buf, 2^62", b, HUGE_LEN},
			{"buf + 4 GiB, 16", ALIAS32(buf), 16},
		};
		char what[80];

		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			uint64_t p = bad[i].ptr, len = bad[i].len;

			wasp_lseek(fd, 0, WASP_SEEK_SET);
			snprintf(what, sizeof what, "read(fd, %s)", bad[i].name);
			expect_refused(what, wasp_hypercall(WASP_HC_READ, (uint64_t)fd, p, len, 0, 0, 0),
				       false);
			snprintf(what, sizeof what, "pread(fd, %s, 0)", bad[i].name);
			expect_refused(what, wasp_hypercall(WASP_HC_PREAD, (uint64_t)fd, p, len, 0, 0, 0),
				       false);
			snprintf(what, sizeof what, "write(fd, %s)", bad[i].name);
			expect_refused(what, wasp_hypercall(WASP_HC_WRITE, (uint64_t)fd, p, len, 0, 0, 0),
				       false);
			snprintf(what, sizeof what, "pwrite(fd, %s, 0)", bad[i].name);
			expect_refused(what,
				       wasp_hypercall(WASP_HC_PWRITE, (uint64_t)fd, p, len, 0, 0, 0), false);
		}
		expect_refused("fstat(fd, end of memory)",
			       wasp_hypercall(WASP_HC_FSTAT, (uint64_t)fd, out, 0, 0, 0, 0), false);
		expect_refused("fstat(fd, end - 8)",
			       wasp_hypercall(WASP_HC_FSTAT, (uint64_t)fd, straddle, 0, 0, 0, 0), false);
		expect_refused("fstat(fd, 0xfffffffffffff000)",
			       wasp_hypercall(WASP_HC_FSTAT, (uint64_t)fd, WRAP_PTR, 0, 0, 0, 0), false);
		wasp_close(fd);
	}

	/* get_arg writes guest memory; set_ret reads it */
	if (wasp_get_arg(NULL, 0) <= 0)
		wasp_puts("badptr: note: empty argument; get_arg checks are weaker (pass -- x)");
	expect_refused("get_arg(end of memory, 16)",
		       wasp_hypercall(WASP_HC_GET_ARG, out, 16, 0, 0, 0, 0), false);
	expect_refused("get_arg(0xfffffffffffff000, 0x2000)",
		       wasp_hypercall(WASP_HC_GET_ARG, WRAP_PTR, WRAP_LEN, 0, 0, 0, 0), false);
	expect_refused("get_arg(end - 8, 16)",
		       wasp_hypercall(WASP_HC_GET_ARG, straddle, 16, 0, 0, 0, 0), false);
	expect_refused("get_arg(buf, 2^62)",
		       wasp_hypercall(WASP_HC_GET_ARG, b, HUGE_LEN, 0, 0, 0, 0), false);
	expect_refused("set_ret(end of memory, 16)",
		       wasp_hypercall(WASP_HC_SET_RET, out, 16, 0, 0, 0, 0), true);
	expect_refused("set_ret(0xfffffffffffff000, 0x2000)",
		       wasp_hypercall(WASP_HC_SET_RET, WRAP_PTR, WRAP_LEN, 0, 0, 0, 0), true);
	expect_refused("set_ret(buf, 2^62)",
		       wasp_hypercall(WASP_HC_SET_RET, b, HUGE_LEN, 0, 0, 0, 0), true);

	wasp_printf("badptr: %d checks, %d failed\n", checks, failures);
	/* Exit directly, not by returning: a host that accepted a straddling
	 * write may have scribbled over the top of the stack. */
	wasp_exit(failures ? 1 : 0);
}
