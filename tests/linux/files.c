/*
 * files.c: the file calls a program makes through stdio and unistd, on
 * relative paths in its working directory (the box): fopen/fwrite/fread/
 * fseek/ftell/fflush/fsync, O_APPEND, pread/pwrite, ftruncate, stat,
 * mkdir, rename, unlink, rmdir, opendir/readdir, dup and fcntl. The test
 * seeds the box with input.txt and seed/ and compares the files left
 * behind as well as the output.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lx_common.h"

static int failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("check failed at line %d: %s (errno %s)\n", \
			       __LINE__, #cond, strerror(errno));              \
			failures++;                                            \
		}                                                              \
	} while (0)

/* Prints what a call returned and the errno it left, in that order. */
#define SHOW(label, expr)                                                       \
	do {                                                                    \
		errno = 0;                                                      \
		long long r_ = (long long)(expr);                               \
		int e_ = errno;                                                 \
		printf("%s: %lld (%s)\n", label, r_, r_ < 0 ? strerror(e_) : "ok"); \
	} while (0)

static void show_stat(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		printf("stat %s: %s\n", path, strerror(errno));
		return;
	}
	const char *kind = S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other";
	if (S_ISDIR(st.st_mode))
		printf("stat %s: %s mode %04o\n", path, kind, (unsigned)(st.st_mode & 07777));
	else
		printf("stat %s: %s mode %04o size %lld nlink %lu\n", path, kind,
		       (unsigned)(st.st_mode & 07777), (long long)st.st_size,
		       (unsigned long)st.st_nlink);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists a directory sorted by name, with each entry's type. */
static void list_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		printf("opendir %s: %s\n", path, strerror(errno));
		return;
	}
	char *names[256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256) {
		char buf[300];
		const char *t = e->d_type == DT_DIR ? "d" : e->d_type == DT_REG ? "f"
			      : e->d_type == DT_UNKNOWN ? "?" : "o";
		snprintf(buf, sizeof buf, "%s %s", e->d_name, t);
		names[n++] = strdup(buf);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], cmp_names);
	printf("dir %s: %d entries\n", path, n);
	for (int i = 0; i < n; i++) {
		printf("  %s\n", names[i]);
		free(names[i]);
	}
}

static uint64_t file_sum(const char *path, long *size)
{
	FILE *f = fopen(path, "rb");
	uint64_t h = LX_FNV_INIT;
	*size = -1;
	if (!f)
		return 0;
	char buf[4096];
	size_t n;
	long total = 0;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		h = lx_fnv(h, buf, n);
		total += (long)n;
	}
	fclose(f);
	*size = total;
	return h;
}

int main(void)
{
	umask(022);
	long size;
	uint64_t h;

	/* The seeded input. */
	h = file_sum("input.txt", &size);
	printf("input.txt: %ld bytes, sum %016llx\n", size, (unsigned long long)h);
	show_stat("input.txt");
	CHECK(access("input.txt", R_OK) == 0);
	CHECK(access("missing.txt", F_OK) == -1 && errno == ENOENT);

	/* stdio write, flush, fsync, tell. */
	FILE *f = fopen("out.txt", "w");
	CHECK(f != NULL);
	for (int i = 0; i < 2000; i++)
		fprintf(f, "line %04d of out.txt\n", i);
	printf("ftell after writing: %ld\n", ftell(f));
	CHECK(fflush(f) == 0);
	CHECK(fsync(fileno(f)) == 0);
	CHECK(fdatasync(fileno(f)) == 0);
	fclose(f);
	show_stat("out.txt");

	/* Overwrite in the middle, then read it all back. */
	f = fopen("out.txt", "r+");
	CHECK(f != NULL);
	CHECK(fseek(f, 10, SEEK_SET) == 0);
	fwrite("XYZ", 1, 3, f);
	CHECK(fseek(f, -5, SEEK_END) == 0);
	printf("ftell at end-5: %ld\n", ftell(f));
	char tail[8] = {0};
	printf("read at end-5: %zu bytes\n", fread(tail, 1, 7, f));
	printf("tail: [%.4s]\n", tail);
	rewind(f);
	char head[32] = {0};
	fread(head, 1, 20, f);
	printf("head: [%.20s]\n", head);
	fclose(f);
	h = file_sum("out.txt", &size);
	printf("out.txt: %ld bytes, sum %016llx\n", size, (unsigned long long)h);

	/* O_APPEND: a seek does not move where writes land. */
	int fd = open("app.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, "first\n", 6) == 6);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(write(fd, "second\n", 7) == 7);
	printf("append offset: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
	int fl = fcntl(fd, F_GETFL);
	printf("fcntl O_APPEND: %s, accmode wronly: %s\n", (fl & O_APPEND) ? "yes" : "no",
	       (fl & O_ACCMODE) == O_WRONLY ? "yes" : "no");
	CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC) == 0);
	printf("cloexec: %s\n", (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? "yes" : "no");
	int fd2 = dup(fd);
	CHECK(fd2 > fd);
	CHECK(write(fd2, "third via dup\n", 14) == 14);
	close(fd2);
	close(fd);
	h = file_sum("app.log", &size);
	printf("app.log: %ld bytes, sum %016llx\n", size, (unsigned long long)h);

	/* pwrite past the end leaves a hole of zeros; pread reads it. */
	fd = open("sparse.bin", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "HELLO", 5, 100) == 5);
	CHECK(pwrite(fd, "AB", 2, 3) == 2);
	printf("offset after pwrite: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
	char buf[200];
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	printf("pread: %zd bytes, [0]=%d [3]=%c [50]=%d [100]=%c\n", n, buf[0], buf[3], buf[50], buf[100]);
	n = pread(fd, buf, 10, 1000);
	printf("pread past end: %zd\n", n);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	printf("fstat size %lld\n", (long long)st.st_size);
	CHECK(ftruncate(fd, 50) == 0);
	CHECK(fstat(fd, &st) == 0);
	printf("after ftruncate 50: %lld\n", (long long)st.st_size);
	CHECK(ftruncate(fd, 8192) == 0);
	CHECK(fstat(fd, &st) == 0);
	printf("after ftruncate 8192: %lld\n", (long long)st.st_size);
	printf("lseek SEEK_END: %lld\n", (long long)lseek(fd, 0, SEEK_END));
	SHOW("lseek negative", lseek(fd, -1, SEEK_SET));
	close(fd);
	show_stat("sparse.bin");

	/* Directories. */
	CHECK(mkdir("sub", 0755) == 0);
	CHECK(mkdir("sub/deeper", 0700) == 0);
	SHOW("mkdir again", mkdir("sub", 0755));
	f = fopen("sub/deeper/note.txt", "w");
	CHECK(f != NULL);
	fputs("a note in a deeper directory\n", f);
	fclose(f);
	f = fopen("tmp.txt", "w");
	CHECK(f != NULL);
	fputs("to be removed\n", f);
	fclose(f);
	show_stat("sub");
	show_stat("sub/deeper");
	CHECK(rename("out.txt", "sub/moved.txt") == 0);
	SHOW("old name after rename", access("out.txt", F_OK));
	CHECK(unlink("tmp.txt") == 0);
	SHOW("unlink again", unlink("tmp.txt"));
	CHECK(mkdir("empty", 0755) == 0);
	CHECK(rmdir("empty") == 0);
	SHOW("rmdir non-empty", rmdir("sub"));
	SHOW("open a directory for writing", open("sub", O_WRONLY));
	SHOW("O_DIRECTORY on a file", open("input.txt", O_RDONLY | O_DIRECTORY));
	SHOW("mkdir under a missing parent", mkdir("nowhere/x", 0755));

	/* openat relative to a directory fd. */
	int dfd = open("sub", O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	fd = openat(dfd, "deeper/note.txt", O_RDONLY);
	CHECK(fd >= 0);
	n = read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("openat read: %zd [%s]\n", n, strtok(buf, "\n"));
	close(fd);
	fd = openat(dfd, "made-by-openat.txt", O_WRONLY | O_CREAT | O_EXCL, 0640);
	CHECK(fd >= 0);
	CHECK(write(fd, "x\n", 2) == 2);
	close(fd);
	SHOW("O_EXCL again", openat(dfd, "made-by-openat.txt", O_WRONLY | O_CREAT | O_EXCL, 0640));
	close(dfd);

	list_dir(".");
	list_dir("sub");
	list_dir("seed");
	show_stat("seed/a.txt");
	show_stat("sub/moved.txt");
	show_stat("sub/made-by-openat.txt");
	show_stat("app.log");

	/* Many small files, then read them all back in readdir order. */
	CHECK(mkdir("many", 0755) == 0);
	for (int i = 0; i < 60; i++) {
		char name[64];
		snprintf(name, sizeof name, "many/file-%02d.txt", i);
		fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		CHECK(fd >= 0);
		dprintf(fd, "file %d\n", i);
		close(fd);
	}
	DIR *d = opendir("many");
	CHECK(d != NULL);
	int count = 0;
	uint64_t total = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char name[300];
		snprintf(name, sizeof name, "many/%s", e->d_name);
		total += (uint64_t)file_sum(name, &size) ^ (uint64_t)size;
		count++;
	}
	if (d)
		closedir(d);
	printf("many: %d files, xor of sums %016llx\n", count, (unsigned long long)total);

	printf("files: %d failures\n", failures);
	return failures ? 1 : 0;
}
