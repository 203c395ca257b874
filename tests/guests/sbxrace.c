/*
 * sbxrace: sandbox escapes that need the host's help to even try: special
 * files, a dangling symlink used to create a file outside, running out of
 * guest file descriptors, and symlinks swapped while the guest opens
 * through them.
 *
 * The harness (tests/harden/test_hostile.c) prepares, for sandbox directory D and
 * a directory X outside it:
 *   D/fifo          a FIFO (opening it must not hang the host)
 *   D/dir           a directory
 *   D/dangle        a symlink to X/created.txt, which does not exist
 *   D/plain.txt     "inside\n"
 *   D/swap/secret.txt, D/flip   "inside\n" (a directory and a file), which a
 *                   host thread keeps exchanging (renameat2 RENAME_EXCHANGE)
 *                   with symlinks to X and to X/secret.txt ("OUTSIDE\n")
 * Argument: how many opens through the swapped names (default 1000).
 * Every open that succeeds must read "inside"; the ones that hit a symlink
 * must fail (openat2 RESOLVE_BENEATH refuses them atomically).
 * Prints "sbxrace: N opens: I inside, R refused, O outside" and exits 0
 * when O is 0 and the other checks passed.
 */
#include "wasp_guest.h"

static int failures;

static void expect(bool ok, const char *what, int64_t r)
{
	if (!ok)
		failures++;
	wasp_printf("sbxrace: %-46s -> %lld %s %s\n", what, (long long)r,
		    r < 0 ? wasp_errname(r) : "", ok ? "ok" : "FAIL");
}

/* Opens path and reads its first bytes: 1 inside, 0 refused, -1 outside. */
static int probe(const char *path)
{
	char buf[16];
	int fd = wasp_open(path, WASP_O_RDONLY, 0);

	if (fd < 0)
		return 0;
	int64_t n = wasp_read(fd, buf, sizeof buf - 1);
	wasp_close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (!strcmp(buf, "inside\n"))
		return 1;
	wasp_printf("sbxrace: FAIL: %s read \"%s\"\n", path, buf);
	return -1;
}

int main(void)
{
	char **argv;
	int argc = wasp_args(&argv);
	unsigned long rounds = argc > 0 ? strtoul(argv[0], NULL, 0) : 1000;

	int fd = wasp_open("fifo", WASP_O_RDONLY, 0);
	expect(fd == -WASP_EACCES, "open(fifo) is refused, without hanging", fd);
	fd = wasp_open("fifo", WASP_O_WRONLY, 0);
	expect(fd < 0, "open(fifo, write) is refused", fd);
	fd = wasp_open("dir", WASP_O_RDONLY, 0);
	expect(fd == -WASP_EACCES, "open(dir) is refused", fd);
	fd = wasp_open("dangle", WASP_O_WRONLY | WASP_O_CREAT, 0644);
	expect(fd < 0, "open(dangling symlink out, O_CREAT) fails", fd);

	static char longpath[5000];
	memset(longpath, 'a', sizeof longpath - 1);
	fd = wasp_open(longpath, WASP_O_RDONLY, 0);
	expect(fd == -WASP_ENAMETOOLONG, "open(4999-byte path)", fd);

	/* Guest fds are a fixed table: the 33rd open says EMFILE. */
	int fds[40], opened = 0, last = 0;
	for (int i = 0; i < 40; i++) {
		fds[i] = wasp_open("plain.txt", WASP_O_RDONLY, 0);
		if (fds[i] >= 0)
			opened++;
		else
			last = fds[i];
	}
	expect(opened == 32 && last == -WASP_EMFILE, "40 opens: 32 succeed, then EMFILE", last);
	for (int i = 0; i < 40; i++)
		if (fds[i] >= 0)
			wasp_close(fds[i]);
	fd = wasp_open("plain.txt", WASP_O_RDONLY, 0);
	expect(fd >= 0, "open after closing them all", fd);
	wasp_close(fd);

	unsigned long inside = 0, refused = 0, outside = 0;
	for (unsigned long i = 0; i < rounds; i++) {
		int r = probe(i % 2 ? "swap/secret.txt" : "flip");
		inside += r == 1, refused += r == 0, outside += r < 0;
	}
	wasp_printf("sbxrace: %lu opens: %lu inside, %lu refused, %lu outside\n", rounds, inside,
		    refused, outside);
	if (outside)
		failures++;
	wasp_printf("sbxrace: %s\n", failures ? "FAILED" : "all as expected");
	return failures ? 1 : 0;
}
