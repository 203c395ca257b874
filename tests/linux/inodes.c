/*
 * inodes.c: what programs rely on about inode numbers, printed as facts
 * that hold on Linux (so natively and in a virtine alike): a file's
 * number is the same through fstat, stat, statx and readdir, follows it
 * through symlinks, ".." and a rename, and differs between files. In a
 * virtine the numbers are made from paths (docs/linux.md, "Inode
 * numbers"), so they also survive a restore in a copy of the directory,
 * which tests/workloads/workloads_test.sh checks with SQLite.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static ino_t ino_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* readdir's d_ino for `name` in `dir`. */
static ino_t dirent_ino(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	ino_t ino = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		if (!strcmp(e->d_name, name))
			ino = e->d_ino;
	if (d)
		closedir(d);
	return ino;
}

static void fact(const char *what, int holds)
{
	printf("%s: %s\n", what, holds ? "yes" : "NO");
}

int main(void)
{
	mkdir("sub", 0755);
	mkdir("sub/deep", 0755);
	FILE *f = fopen("sub/a.txt", "w");
	fputs("a\n", f);
	fclose(f);
	f = fopen("b.txt", "w");
	fputs("b\n", f);
	fclose(f);
	/* "link" -> sub/a.txt is in the box already (symlink() is not served) */
	int fd = open("sub/a.txt", O_RDWR);
	struct stat fs, ls, bs;
	fstat(fd, &fs);
	stat("b.txt", &bs);
	lstat("link", &ls);
	/* statx by number: musl 1.2.3 has no wrapper. stx_ino is at byte 32. */
	unsigned char sx[256];
	uint64_t sx_ino = 0;
	if (syscall(SYS_statx, AT_FDCWD, "sub/a.txt", 0, 0x100 /* STATX_INO */, sx) == 0)
		memcpy(&sx_ino, sx + 32, sizeof sx_ino);

	fact("fstat = stat", fs.st_ino == ino_of("sub/a.txt"));
	fact("statx = stat", sx_ino == fs.st_ino);
	fact("readdir = stat", dirent_ino("sub", "a.txt") == fs.st_ino);
	fact("readdir of a directory = stat", dirent_ino(".", "sub") == ino_of("sub"));
	fact("'.' in readdir = stat", dirent_ino("sub", ".") == ino_of("sub"));
	fact("'..' in readdir = stat", dirent_ino("sub/deep", "..") == ino_of("sub"));
	fact("sub/deep/.. = sub", ino_of("sub/deep/..") == ino_of("sub"));
	fact("a symlink followed = its target", ino_of("link") == fs.st_ino);
	fact("a symlink itself differs", ls.st_ino != fs.st_ino);
	fact("readdir of a symlink = lstat", dirent_ino(".", "link") == ls.st_ino);
	fact("two files differ", bs.st_ino != fs.st_ino && ino_of("sub") != ino_of("."));
	fact("one device", bs.st_dev == fs.st_dev);
	rename("sub/a.txt", "sub/moved.txt");
	struct stat after;
	fstat(fd, &after);
	fact("renamed: the open file = stat of its new name", after.st_ino == ino_of("sub/moved.txt"));
	fact("renamed: the old name is gone", ino_of("sub/a.txt") == 0);
	close(fd);
	return 0;
}
