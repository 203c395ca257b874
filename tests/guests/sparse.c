/*
 * sparse: tries to make the sandbox hold a 1 TiB sparse file, and more than
 * the quota in ordinary writes (issue 12, item 12). With the default
 * --dir-quota (1 GiB) every write that would grow the sandbox past it must
 * fail with -EDQUOT, however few blocks it would take; small writes work.
 * Exits 0 only when every write behaved. The harness then checks that no
 * file in the sandbox is bigger than 1 GiB.
 * Run with --allow=console_write,files and a sandbox directory.
 */
#include "wasp_guest.h"

static int failures;

static void expect(const char *what, int64_t got, int64_t want)
{
	bool ok = got == want;

	if (!ok)
		failures++;
	wasp_printf("sparse: %s -> %lld %s %s\n", what, (long long)got,
		    got < 0 ? wasp_errname(got) : "", ok ? "ok" : "FAIL");
}

int main(void)
{
	static char block[65536];
	int fd = wasp_open("big", WASP_O_RDWR | WASP_O_CREAT, 0644);

	if (fd < 0) {
		wasp_printf("sparse: open big -> %d %s FAIL\n", fd, wasp_errname(fd));
		return 1;
	}
	expect("pwrite 1 byte at 1 TiB - 1", wasp_pwrite(fd, "x", 1, (1ull << 40) - 1),
	       -WASP_EDQUOT);
	expect("pwrite 1 byte at 2 GiB", wasp_pwrite(fd, "x", 1, 2ull << 30), -WASP_EDQUOT);
	expect("pwrite 1 byte at 2^62", wasp_pwrite(fd, "x", 1, 1ull << 62), -WASP_EDQUOT);
	expect("pwrite 64 KiB at 0", wasp_pwrite(fd, block, sizeof block, 0), sizeof block);
	/* Up to the quota exactly, then one byte more, in another file. */
	int fd2 = wasp_open("second", WASP_O_WRONLY | WASP_O_CREAT, 0644);
	expect("pwrite up to the quota", wasp_pwrite(fd2, "y", 1, (1ull << 30) - sizeof block - 1), 1);
	expect("pwrite 1 byte past it", wasp_pwrite(fd2, "y", 1, (1ull << 30) - sizeof block), -WASP_EDQUOT);
	expect("append to big past it", wasp_pwrite(fd, "z", 1, sizeof block), -WASP_EDQUOT);
	expect("overwrite inside big", wasp_pwrite(fd, "z", 1, 5), 1);
	wasp_close(fd);
	wasp_close(fd2);
	wasp_printf("sparse: %d failed\n", failures);
	return failures ? 1 : 0;
}
