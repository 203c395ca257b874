/*
 * files2.c: the less common file calls on relative paths: symlinks the test
 * planted (readlink, lstat, O_NOFOLLOW), chmod/fchmod/fchmodat, truncate,
 * rename over a file, renameat2 flags, utimensat, fallocate, fadvise,
 * flock, dup2/dup3/F_DUPFD_CLOEXEC, getcwd, *at calls on a directory fd, preadv/pwritev, SEEK_DATA/SEEK_HOLE, poll, odd names. The
 * test seeds input.txt, link -> input.txt, dirlink -> seed, seed/f.txt.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Prints what a call returned and the errno it left, in that order. */
#define SHOW(label, expr)                                                            \
	do {                                                                         \
		errno = 0;                                                           \
		long long r_ = (long long)(expr);                                    \
		int e_ = errno;                                                      \
		printf("%-40s %lld (%s)\n", label, r_, r_ < 0 ? strerror(e_) : "ok"); \
	} while (0)

static void st(const char *label, const char *path, int flags)
{
	struct stat s;
	if (fstatat(AT_FDCWD, path, &s, flags) != 0) {
		printf("%-40s %s\n", label, strerror(errno));
		return;
	}
	const char *k = S_ISLNK(s.st_mode) ? "link" : S_ISDIR(s.st_mode) ? "dir" : S_ISREG(s.st_mode) ? "file" : "other";
	printf("%-40s %s mode %04o size %lld\n", label, k, (unsigned)(s.st_mode & 07777),
	       S_ISDIR(s.st_mode) ? 0LL : (long long)s.st_size);
}

int main(void)
{
	umask(022);
	char buf[512];
	struct stat s;

	/* Symlinks planted in the box. */
	ssize_t n = readlink("link", buf, sizeof buf);
	printf("readlink link: %zd [%.*s]\n", n, n > 0 ? (int)n : 0, buf);
	n = readlinkat(AT_FDCWD, "dirlink", buf, sizeof buf);
	printf("readlinkat dirlink: %zd [%.*s]\n", n, n > 0 ? (int)n : 0, buf);
	SHOW("readlink of a file", readlink("input.txt", buf, sizeof buf));
	st("lstat link", "link", AT_SYMLINK_NOFOLLOW);
	st("stat link", "link", 0);
	st("stat dirlink", "dirlink", 0);
	st("stat dirlink/f.txt", "dirlink/f.txt", 0);
	SHOW("open link O_NOFOLLOW", open("link", O_RDONLY | O_NOFOLLOW));
	int fd = open("link", O_RDONLY);
	n = read(fd, buf, 10);
	printf("read through link: %zd [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
	close(fd);

	/* Modes. */
	SHOW("chmod input.txt 0600", chmod("input.txt", 0600));
	st("stat input.txt", "input.txt", 0);
	fd = open("input.txt", O_RDWR);
	SHOW("fchmod 0640", fchmod(fd, 0640));
	st("stat input.txt", "input.txt", 0);
	SHOW("fchmodat 0644", fchmodat(AT_FDCWD, "input.txt", 0644, 0));
	st("stat input.txt", "input.txt", 0);

	/* Sizes: truncate by path, fallocate, holes. */
	SHOW("truncate input.txt 100", truncate("input.txt", 100));
	st("stat input.txt", "input.txt", 0);
	SHOW("fallocate 64 KiB", fallocate(fd, 0, 0, 65536));
	fstat(fd, &s);
	printf("size after fallocate: %lld\n", (long long)s.st_size);
	SHOW("fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
	SHOW("flock LOCK_EX", flock(fd, LOCK_EX));
	SHOW("flock LOCK_UN", flock(fd, LOCK_UN));
	int hole = open("holes.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	pwrite(hole, "data", 4, 1 << 20);
	SHOW("SEEK_DATA from 0", lseek(hole, 0, SEEK_DATA));
	SHOW("SEEK_HOLE from 1 MiB", lseek(hole, 1 << 20, SEEK_HOLE));
	SHOW("SEEK_DATA past the end", lseek(hole, 2 << 20, SEEK_DATA));

	/* preadv / pwritev. */
	char a[6] = "AAAAA", b[6] = "BBBBB";
	struct iovec wv[2] = {{a, 5}, {b, 5}};
	SHOW("pwritev 2 x 5", pwritev(hole, wv, 2, 10));
	char ra[4] = {0}, rb[8] = {0};
	struct iovec rv[2] = {{ra, 3}, {rb, 7}};
	SHOW("preadv 3 + 7", preadv(hole, rv, 2, 8));
	printf("preadv got [%d %d %c] [%.7s]\n", ra[0], ra[1], ra[2], rb);
	close(hole);

	/* Descriptors. */
	SHOW("dup2 to 10", dup2(fd, 10));
	SHOW("dup3 to 11 cloexec", dup3(fd, 11, O_CLOEXEC));
	printf("fd 11 cloexec: %s\n", (fcntl(11, F_GETFD) & FD_CLOEXEC) ? "yes" : "no");
	SHOW("dup3 same fd", dup3(fd, fd, 0));
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, 20);
	printf("F_DUPFD_CLOEXEC >= 20: %s\n", hi >= 20 ? "yes" : "no");
	SHOW("lseek through dup 10", lseek(10, 7, SEEK_SET));
	printf("offset shared with the original: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
	close(10), close(11), close(hi);
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
	int pr = poll(&p, 1, 0);
	printf("poll a file: %d, revents in/out: %s/%s\n", pr, (p.revents & POLLIN) ? "yes" : "no",
	       (p.revents & POLLOUT) ? "yes" : "no");
	p.fd = 1234;
	pr = poll(&p, 1, 0);
	printf("poll a closed fd: %d, POLLNVAL: %s\n", pr, (p.revents & POLLNVAL) ? "yes" : "no");
	close(fd);

	/* Times. */
	struct timespec ts[2] = {{1000000000, 5}, {1234567890, 0}};
	SHOW("utimensat", utimensat(AT_FDCWD, "input.txt", ts, 0));
	stat("input.txt", &s);
	printf("atime %lld mtime %lld\n", (long long)s.st_atime, (long long)s.st_mtime);

	/* Renames. */
	int c = creat("c.txt", 0644);
	write(c, "c\n", 2);
	close(c);
	c = creat("d.txt", 0644);
	write(c, "dd\n", 3);
	close(c);
	SHOW("rename c over d", rename("c.txt", "d.txt"));
	st("stat d.txt", "d.txt", 0);
	c = creat("e.txt", 0644);
	close(c);
	SHOW("renameat2 NOREPLACE", syscall(SYS_renameat2, AT_FDCWD, "e.txt", AT_FDCWD, "d.txt", 1));
	SHOW("renameat2 EXCHANGE", syscall(SYS_renameat2, AT_FDCWD, "e.txt", AT_FDCWD, "d.txt", 2));
	st("stat d.txt", "d.txt", 0);
	st("stat e.txt", "e.txt", 0);
	mkdir("dir", 0755);
	SHOW("rename dir into itself", rename("dir", "dir/inner"));
	SHOW("rename a file over a dir", rename("e.txt", "dir"));

	/* Working directory: in a virtine it is always the box's root
	 * (docs/linux.md), so only "." is a place to change to. */
	SHOW("chdir .", chdir("."));
	char cwd[PATH_MAX];
	printf("getcwd: %s\n", getcwd(cwd, sizeof cwd) ? "ok" : strerror(errno));
	int dfd = open("dir", O_RDONLY | O_DIRECTORY);
	c = openat(dfd, "made-in-dir.txt", O_WRONLY | O_CREAT, 0644);
	printf("%-40s %s\n", "openat dir/made-in-dir.txt", c >= 0 ? "created" : strerror(errno));
	close(c);
	SHOW("access dir/made-in-dir.txt", access("dir/made-in-dir.txt", F_OK));
	SHOW("mkdirat sub", mkdirat(dfd, "sub", 0750));
	st("stat dir/sub", "dir/sub", 0);
	SHOW("faccessat", faccessat(dfd, "made-in-dir.txt", R_OK, 0));
	SHOW("unlinkat a file", unlinkat(dfd, "made-in-dir.txt", 0));
	SHOW("unlinkat a dir without REMOVEDIR", unlinkat(dfd, "sub", 0));
	SHOW("unlinkat REMOVEDIR", unlinkat(dfd, "sub", AT_REMOVEDIR));
	SHOW("renameat", renameat(AT_FDCWD, "d.txt", dfd, "moved.txt"));
	close(dfd);

	/* Odd names. */
	SHOW("open empty name", open("", O_RDONLY));
	SHOW("open input.txt/", open("input.txt/", O_RDONLY));
	fd = open("dir/../input.txt", O_RDONLY);
	printf("%-40s %s\n", "open dir/../input.txt", fd >= 0 ? "opened" : strerror(errno));
	close(fd);
	SHOW("mkdir trailing slash", mkdir("slash/", 0755));
	SHOW("rmdir .", rmdir("."));
	memset(buf, 'n', 255);
	buf[255] = 0;
	fd = open(buf, O_WRONLY | O_CREAT, 0644);
	printf("%-40s %s\n", "255-byte name", fd >= 0 ? "created" : strerror(errno));
	close(fd);
	unlink(buf);
	buf[255] = 'n', buf[256] = 0;
	SHOW("256-byte name", open(buf, O_WRONLY | O_CREAT, 0644));
	puts("files2: done");
	return 0;
}
