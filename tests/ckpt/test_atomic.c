/*
 * test_atomic.c: the one atomic-file writer (ckpt.h, wasp_atomic_file)
 * behind every checkpoint file: library saves and merges, wasp-ckpt -o,
 * file:// migrations. No KVM needed, so nothing skips.
 *
 * Linked with -Wl,--wrap=fsync,--wrap=renameat (tests/ckpt/atomic.cmake): the
 * wrappers log which file or directory each call reached, in order, and
 * can make an fsync fail, so the test sees the directory synced after the
 * rename and what a failing sync leaves.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ckpt.h"
#include "harness.h"
#include "migrate.h"

static char tmpdir[128];

/* ---- what the writer did (the --wrap'ed calls) --------------------------- */

enum op { OP_FSYNC_FILE, OP_FSYNC_DIR, OP_RENAME };
struct call {
	enum op op;
	ino_t ino; /* fsync: the file or directory; rename: the directory */
};
static struct call calls[64];
static int ncalls;
static int fail_fsync_file, fail_fsync_dir; /* errno to inject, 0: none */

int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

int __wrap_fsync(int fd)
{
	struct stat st;
	bool dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	if (ncalls < 64)
		calls[ncalls++] = (struct call){dir ? OP_FSYNC_DIR : OP_FSYNC_FILE, st.st_ino};
	int e = dir ? fail_fsync_dir : fail_fsync_file;
	if (e) {
		errno = e;
		return -1;
	}
	return __real_fsync(fd);
}

int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	struct stat st;
	if (fstat(newdirfd, &st) == 0 && ncalls < 64)
		calls[ncalls++] = (struct call){OP_RENAME, st.st_ino};
	return __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

/* ---- helpers ----------------------------------------------------------------- */

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_atomic.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void rm_tmpdir(void)
{
	char cmd[200];
	if (chdir("/") != 0)
		perror("chdir /");
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}

/* Names in dir (without . and ..), or -1. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* Whether path holds exactly `want`. */
static bool holds(const char *path, const char *want)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	return n == (ssize_t)strlen(want) && !memcmp(buf, want, (size_t)n);
}

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static int write_all(struct wasp_atomic_file *f, const char *s, size_t len)
{
	struct wasp_sink sink = wasp_sink_fd(&f->fd);
	return sink.write(sink.ctx, s, len);
}

/* Open, write s, commit. */
static int save(const char *path, const char *s)
{
	struct wasp_atomic_file f;
	int r = wasp_atomic_open(path, &f);
	if (r < 0)
		return r;
	if ((r = write_all(&f, s, strlen(s))) < 0) {
		wasp_atomic_abort(&f);
		return r;
	}
	return wasp_atomic_commit(&f);
}

static ino_t ino_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Runs fn in a child process (for limits and ids it must not keep) and
 * returns its exit status: 0 when all its checks held, 77 when it could
 * not set its scene up. */
static int in_child(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		_exit(failures ? 1 : 0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* ---- cases ------------------------------------------------------------------- */

/* The temporary file: its name, mode, O_EXCL, and nothing at path before
 * the commit; an old file untouched until then, replaced whole by it. */
static void t_basics(void)
{
	struct wasp_atomic_file f;
	char path[256], want[256];
	struct stat st;

	make_tmpdir();
	umask(022);
	snprintf(path, sizeof path, "%s/ck", tmpdir);
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	int n = snprintf(want, sizeof want, "%s.tmp.%ld.", path, (long)getpid());
	CHECK(f.tmp && !strncmp(f.tmp, want, (size_t)n) && strlen(f.tmp) == (size_t)n + 16 &&
		  strspn(f.tmp + n, "0123456789abcdef") == 16,
	      "temp name %s: PATH.tmp.PID.<16 hex>", f.tmp ? f.tmp : "-");
	CHECK(f.path && !strcmp(f.path, path) && f.name && !strcmp(f.name, "ck"), "names");
	CHECK(f.tmp_name && !strcmp(f.tmp_name, f.tmp + strlen(tmpdir) + 1), "temp's last part");
	CHECK(f.tmp && stat(f.tmp, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600,
	      "temp mode 0%o, want 0600", st.st_mode & 07777);
	CHECK((fcntl(f.fd, F_GETFL) & O_ACCMODE) == O_WRONLY, "write-only");
	CHECK(fcntl(f.fd, F_GETFD) & FD_CLOEXEC, "close-on-exec");
	CHECK(access(path, F_OK) != 0, "nothing at path before the commit");
	/* O_EXCL: the name is new; a second writer gets another one. */
	struct wasp_atomic_file g;
	CHECK(wasp_atomic_open(path, &g) == 0 && strcmp(g.tmp, f.tmp), "a second writer");
	CHECK(count_entries(tmpdir) == 2, "two temp files: %d", count_entries(tmpdir));
	wasp_atomic_abort(&g);
	CHECK(write_all(&f, "first", 5) == 0, "write");
	CHECK(access(path, F_OK) != 0, "nothing at path after writing");
	CHECK(wasp_atomic_commit(&f) == 0, "commit");
	CHECK(f.fd == -1 && f.dirfd == -1 && !f.tmp && !f.path && !f.name && !f.tmp_name,
	      "reset after commit");
	CHECK(holds(path, "first"), "content");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "mode 0%o", st.st_mode & 07777);
	CHECK(count_entries(tmpdir) == 1, "no temp file left: %d", count_entries(tmpdir));
	/* Replacing: the old file stays whole (same inode, same bytes) up
	 * to the commit, then the new one is there whole. */
	ino_t old = ino_of(path);
	CHECK(wasp_atomic_open(path, &f) == 0, "open 2");
	CHECK(write_all(&f, "second!", 7) == 0, "write 2");
	CHECK(ino_of(path) == old && holds(path, "first"), "old file untouched before commit");
	CHECK(wasp_atomic_commit(&f) == 0, "commit 2");
	CHECK(ino_of(path) != old && holds(path, "second!"), "replaced");
	/* umask applies (it can only take rights away): still private. */
	umask(077);
	CHECK(save(path, "third") == 0 && stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	      "mode 0%o with umask 077", st.st_mode & 07777);
	umask(022);
	/* Committing twice, or nothing: an error, nothing touched. */
	CHECK(wasp_atomic_commit(&f) == -EINVAL, "commit after commit");
	CHECK(holds(path, "third"), "still there");
	rm_tmpdir();
}

/* Abort, at every stage, leaves the old file and no temporary file. */
static void t_abort(void)
{
	struct wasp_atomic_file f;
	char path[256];

	make_tmpdir();
	snprintf(path, sizeof path, "%s/ck", tmpdir);
	put(path, "old");
	ino_t old = ino_of(path);
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	CHECK(write_all(&f, "never seen", 10) == 0, "write");
	CHECK(count_entries(tmpdir) == 2, "temp file beside: %d", count_entries(tmpdir));
	wasp_atomic_abort(&f);
	CHECK(f.fd == -1 && f.dirfd == -1 && !f.tmp, "reset");
	wasp_atomic_abort(&f); /* twice is harmless */
	CHECK(ino_of(path) == old && holds(path, "old"), "abort kept the old file");
	CHECK(count_entries(tmpdir) == 1, "no temp file left: %d", count_entries(tmpdir));
	/* A never opened one, as callers initialize it. */
	struct wasp_atomic_file z = {.fd = -1};
	wasp_atomic_abort(&z);
	/* From a signal handler: only the unlink; the caller's process dies. */
	CHECK(wasp_atomic_open(path, &f) == 0, "open 2");
	char *tmp = strdup(f.tmp);
	wasp_atomic_abort_signal(&f);
	CHECK(access(tmp, F_OK) != 0 && f.tmp && f.fd >= 0, "signal abort: unlinked, nothing freed");
	wasp_atomic_abort(&f); /* the unlink finds nothing: fine */
	CHECK(count_entries(tmpdir) == 1 && holds(path, "old"), "after both aborts");
	free(tmp);
	rm_tmpdir();
}

/* Becomes nobody when root, in a child only (0 or _exit(77)). */
static void drop_root(void)
{
	if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
		_exit(77);
	if (geteuid() == 0)
		_exit(77);
}

static void root_dir_probe(void)
{
	struct wasp_atomic_file f;

	drop_root();
	if (access("/", W_OK) == 0)
		_exit(77); /* a writable / would really get the file */
	CHECK(wasp_atomic_open("/test_atomic_probe", &f) == -EACCES && !f.tmp, "/name");
	CHECK(strstr(wasp_last_error(), "cannot create a temporary file beside /test_atomic_probe"),
	      "the directory was found: %s", wasp_last_error());
}

/* A path with no slash is in the working directory of the open; a
 * relative one with a directory too; and every step after the open uses
 * that directory even if the process moves (before, the rename looked
 * for the temporary file in the new working directory and failed). */
static void t_relative(void)
{
	char a[256], b[256], sub[300];
	struct wasp_atomic_file f;

	make_tmpdir();
	snprintf(a, sizeof a, "%s/a", tmpdir);
	snprintf(b, sizeof b, "%s/b", tmpdir);
	snprintf(sub, sizeof sub, "%s/sub", a);
	CHECK(mkdir(a, 0700) == 0 && mkdir(b, 0700) == 0 && mkdir(sub, 0700) == 0, "dirs");
	CHECK(chdir(a) == 0, "chdir a");
	ncalls = 0;
	CHECK(save("ck", "no slash") == 0, "save ck");
	CHECK(holds("ck", "no slash") && count_entries(a) == 2, "in a: %d", count_entries(a));
	CHECK(ncalls == 3 && calls[2].op == OP_FSYNC_DIR && calls[2].ino == ino_of(a),
	      "the working directory was synced");
	CHECK(save("sub/ck", "relative") == 0, "save sub/ck");
	CHECK(holds("sub/ck", "relative") && count_entries("sub") == 1, "in a/sub");
	CHECK(save("./ck2", "dot") == 0 && holds("ck2", "dot"), "./ck2");
	/* Open in a, move to b, commit: the file lands in a. */
	CHECK(wasp_atomic_open("moved", &f) == 0, "open moved");
	CHECK(write_all(&f, "where?", 6) == 0, "write");
	CHECK(chdir(b) == 0, "chdir b");
	ncalls = 0;
	CHECK(wasp_atomic_commit(&f) == 0, "commit after chdir");
	CHECK(count_entries(b) == 0, "nothing in b: %d", count_entries(b));
	char moved[300];
	snprintf(moved, sizeof moved, "%s/moved", a);
	CHECK(holds(moved, "where?"), "the file is in the directory of the open");
	CHECK(ncalls == 3 && calls[1].op == OP_RENAME && calls[1].ino == ino_of(a) &&
		  calls[2].op == OP_FSYNC_DIR && calls[2].ino == ino_of(a),
	      "renamed in and synced a");
	/* Directly under the root: "/name" is in "/", which an unprivileged
	 * user may open but not write: the open finds the directory and only
	 * the temporary file's creation fails (nothing is made in /). */
	int r = in_child(root_dir_probe);
	if (r == 77)
		printf("(/name not tried: cannot drop privileges, or / is writable)\n");
	else
		CHECK(r == 0, "/name: child %d", r);
	rm_tmpdir();
}

/* A symlinked directory is followed (the user named it), once: changing
 * the link between open and commit does not move the file. A symlink at
 * the path itself is replaced, its target untouched. */
static void t_symlinks(void)
{
	char real[256], other[256], link[256], path[300], target[300];
	struct wasp_atomic_file f;
	struct stat st;

	make_tmpdir();
	snprintf(real, sizeof real, "%s/real", tmpdir);
	snprintf(other, sizeof other, "%s/other", tmpdir);
	snprintf(link, sizeof link, "%s/link", tmpdir);
	CHECK(mkdir(real, 0700) == 0 && mkdir(other, 0700) == 0 && symlink("real", link) == 0, "scene");
	snprintf(path, sizeof path, "%s/ck", link);
	ncalls = 0;
	CHECK(save(path, "via link") == 0, "save through the link");
	snprintf(target, sizeof target, "%s/ck", real);
	CHECK(holds(target, "via link") && lstat(link, &st) == 0 && S_ISLNK(st.st_mode),
	      "in real, the link still a link");
	CHECK(ncalls == 3 && calls[0].op == OP_FSYNC_FILE && calls[1].op == OP_RENAME &&
		  calls[2].op == OP_FSYNC_DIR && calls[2].ino == ino_of(real),
	      "fsync file, rename, fsync of the real directory (%d calls)", ncalls);
	/* Retarget the link mid-write. */
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	CHECK(write_all(&f, "second", 6) == 0, "write");
	CHECK(unlink(link) == 0 && symlink("other", link) == 0, "retarget");
	CHECK(wasp_atomic_commit(&f) == 0, "commit");
	CHECK(holds(target, "second") && count_entries(other) == 0 && count_entries(real) == 1,
	      "all in real, nothing in other");
	/* A symlink at the path: replaced, never written through. */
	char victim[300], lpath[300];
	snprintf(victim, sizeof victim, "%s/victim", tmpdir);
	snprintf(lpath, sizeof lpath, "%s/lk", tmpdir);
	put(victim, "keep me");
	CHECK(symlink("victim", lpath) == 0, "symlink at path");
	CHECK(save(lpath, "new") == 0, "save over the symlink");
	CHECK(lstat(lpath, &st) == 0 && S_ISREG(st.st_mode) && holds(lpath, "new") &&
		  holds(victim, "keep me"),
	      "the link replaced, its target untouched");
	rm_tmpdir();
}

/* A path that names a directory is refused before anything is made. */
static void t_directory(void)
{
	char path[256], lpath[300];
	struct wasp_atomic_file f;

	make_tmpdir();
	snprintf(path, sizeof path, "%s/d", tmpdir);
	CHECK(mkdir(path, 0700) == 0, "mkdir");
	CHECK(wasp_atomic_open(path, &f) == -EISDIR && f.fd == -1 && f.dirfd == -1 && !f.tmp,
	      "a directory");
	CHECK(strstr(wasp_last_error(), "is a directory"), "message: %s", wasp_last_error());
	snprintf(lpath, sizeof lpath, "%s/dl", tmpdir);
	CHECK(symlink("d", lpath) == 0 && wasp_atomic_open(lpath, &f) == -EISDIR, "a link to one");
	strcat(path, "/");
	CHECK(wasp_atomic_open(path, &f) == -EISDIR, "a trailing slash");
	snprintf(path, sizeof path, "%s/new/", tmpdir);
	CHECK(wasp_atomic_open(path, &f) == -EISDIR, "a trailing slash, nothing there");
	CHECK(count_entries(tmpdir) == 2, "nothing made: %d", count_entries(tmpdir));
	snprintf(path, sizeof path, "%s/d", tmpdir);
	CHECK(count_entries(path) == 0, "nothing made inside");
	CHECK(wasp_atomic_open("", &f) == -EINVAL && wasp_atomic_open(NULL, &f) == -EINVAL,
	      "empty path");
	snprintf(path, sizeof path, "%s/no/such/dir/ck", tmpdir);
	CHECK(wasp_atomic_open(path, &f) == -ENOENT && f.fd == -1 && !f.tmp, "missing dir");
	wasp_atomic_abort(&f);
	rm_tmpdir();
}

/* Someone who made the names a pid-only scheme would use (the file://
 * sink's PATH.tmp.PID before) cannot stop a save, nor receive it. */
static void t_planted(void)
{
	char path[256], name[300];
	struct wasp_atomic_file f;

	make_tmpdir();
	snprintf(path, sizeof path, "%s/ck", tmpdir);
	snprintf(name, sizeof name, "%s.tmp.%ld", path, (long)getpid());
	put(name, "planted");
	snprintf(name, sizeof name, "%s.tmp.%ld.0000000000000000", path, (long)getpid());
	CHECK(symlink("/nonexistent/elsewhere", name) == 0, "planted link");
	CHECK(wasp_atomic_open(path, &f) == 0, "open beside planted names");
	CHECK(write_all(&f, "mine", 4) == 0 && wasp_atomic_commit(&f) == 0, "commit");
	CHECK(holds(path, "mine"), "saved");
	snprintf(name, sizeof name, "%s.tmp.%ld", path, (long)getpid());
	CHECK(holds(name, "planted"), "a live pid's file is not swept");
	rm_tmpdir();
}

/* The directory is synced after the rename (it is what makes the rename
 * survive a crash); a failing file fsync leaves the old file and no
 * temporary one; a failing directory fsync is reported, file in place. */
static void t_sync(void)
{
	char path[256];
	struct wasp_atomic_file f;

	make_tmpdir();
	snprintf(path, sizeof path, "%s/ck", tmpdir);
	put(path, "old");
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	ino_t tmp_ino = ino_of(f.tmp);
	CHECK(write_all(&f, "new", 3) == 0, "write");
	ncalls = 0;
	CHECK(wasp_atomic_commit(&f) == 0, "commit");
	CHECK(ncalls == 3, "calls: %d", ncalls);
	CHECK(calls[0].op == OP_FSYNC_FILE && calls[0].ino == tmp_ino, "first the file's fsync");
	CHECK(calls[1].op == OP_RENAME && calls[1].ino == ino_of(tmpdir), "then the rename");
	CHECK(calls[2].op == OP_FSYNC_DIR && calls[2].ino == ino_of(tmpdir),
	      "then the directory's fsync");
	/* The file's fsync fails (EIO, or ENOSPC when the space is found
	 * missing only at writeback): no rename, nothing left. */
	fail_fsync_file = EIO;
	CHECK(wasp_atomic_open(path, &f) == 0 && write_all(&f, "lost", 4) == 0, "open 2");
	ncalls = 0;
	CHECK(wasp_atomic_commit(&f) == -EIO, "commit with a failing fsync");
	CHECK(ncalls == 1 && f.fd == -1 && f.dirfd == -1 && !f.tmp, "no rename, reset");
	CHECK(holds(path, "new") && count_entries(tmpdir) == 1, "old file kept, temp file gone");
	fail_fsync_file = 0;
	/* The directory's fsync fails: the file is in place (it cannot be
	 * taken back), and the caller hears that it may not be durable. */
	fail_fsync_dir = EIO;
	CHECK(wasp_atomic_open(path, &f) == 0 && write_all(&f, "newer", 5) == 0, "open 3");
	CHECK(wasp_atomic_commit(&f) == -EIO, "commit with a failing directory fsync");
	CHECK(strstr(wasp_last_error(), "is in place"), "message: %s", wasp_last_error());
	CHECK(f.fd == -1 && f.dirfd == -1 && !f.tmp, "reset");
	wasp_atomic_abort(&f); /* harmless: removes nothing */
	CHECK(holds(path, "newer") && count_entries(tmpdir) == 1, "in place, whole");
	fail_fsync_dir = 0;
	/* No descriptor leaks across all that. */
	int fds = count_fds();
	CHECK(save(path, "x") == 0, "save");
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	wasp_atomic_abort(&f);
	CHECK(count_fds() == fds, "fds %d, before %d", count_fds(), fds);
	rm_tmpdir();
}

/* The disk fills while writing (a file size limit, and, where this
 * process may mount, a full tmpfs): the write fails, abort leaves the old
 * file whole and no temporary file; never a half file. */
static void full_by_rlimit(void)
{
	char path[256];
	struct wasp_atomic_file f;
	static char big[65536];

	snprintf(path, sizeof path, "%s/ck", tmpdir);
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &(struct rlimit){4096, 4096}) != 0)
		_exit(77);
	memset(big, 'x', sizeof big);
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	CHECK(write_all(&f, big, sizeof big) == -EFBIG, "write past the limit: %s", wasp_last_error());
	wasp_atomic_abort(&f);
	CHECK(holds(path, "old") && count_entries(tmpdir) == 1, "old file whole, no temp file");
}

static void full_by_tmpfs(void)
{
	char dir[256], path[300];
	struct wasp_atomic_file f;
	static char big[1 << 20];

	snprintf(dir, sizeof dir, "%s/small", tmpdir);
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700") != 0)
		_exit(77);
	snprintf(path, sizeof path, "%s/ck", dir);
	put(path, "old");
	memset(big, 'x', sizeof big);
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	CHECK(write_all(&f, big, sizeof big) == -ENOSPC, "write to a full disk: %s",
	      wasp_last_error());
	wasp_atomic_abort(&f);
	CHECK(holds(path, "old") && count_entries(dir) == 1, "old file whole, no temp file");
	/* And the full save through the library's own path. */
	CHECK(save(path, "small enough") == 0 && holds(path, "small enough"), "then a save fits");
}

/* The directory cannot be written (or, write-only, cannot be opened to
 * sync it): refused at the open, before any byte, nothing made. */
static void unwritable(void)
{
	char ro[256], wo[256], path[300];
	struct wasp_atomic_file f;

	snprintf(ro, sizeof ro, "%s/ro", tmpdir);
	snprintf(wo, sizeof wo, "%s/wo", tmpdir);
	/* Root passes permission checks: become nobody, in this child only. */
	drop_root();
	snprintf(path, sizeof path, "%s/ck", ro);
	CHECK(wasp_atomic_open(path, &f) == -EACCES && f.fd == -1 && f.dirfd == -1 && !f.tmp,
	      "a read-only directory: %s", wasp_last_error());
	snprintf(path, sizeof path, "%s/ck", wo);
	CHECK(wasp_atomic_open(path, &f) == -EACCES && f.fd == -1 && !f.tmp,
	      "a write-only directory (no sync possible): %s", wasp_last_error());
	CHECK(strstr(wasp_last_error(), "cannot open the directory"), "message: %s",
	      wasp_last_error());
}

static void t_errors(void)
{
	char path[256], dir[256];

	make_tmpdir();
	CHECK(chmod(tmpdir, 0755) == 0, "chmod");
	snprintf(path, sizeof path, "%s/ck", tmpdir);
	put(path, "old");
	int st = in_child(full_by_rlimit);
	CHECK(st == 0, "file size limit: child %d", st);

	snprintf(dir, sizeof dir, "%s/small", tmpdir);
	CHECK(mkdir(dir, 0700) == 0, "mkdir small");
	st = in_child(full_by_tmpfs);
	if (st == 77)
		printf("(no full tmpfs: this process may not mount; the size limit stood in)\n");
	else
		CHECK(st == 0, "full tmpfs: child %d", st);

	/* A read-only and a write-only directory, owned by nobody's other. */
	snprintf(dir, sizeof dir, "%s/ro", tmpdir);
	CHECK(mkdir(dir, 0755) == 0, "mkdir ro");
	snprintf(dir, sizeof dir, "%s/wo", tmpdir);
	CHECK(mkdir(dir, 0733) == 0 && chmod(dir, 0733) == 0, "mkdir wo");
	st = in_child(unwritable);
	if (st == 77)
		printf("(unwritable directories not tried: cannot drop privileges)\n");
	else
		CHECK(st == 0, "unwritable directories: child %d", st);
	snprintf(dir, sizeof dir, "%s/ro", tmpdir);
	CHECK(count_entries(dir) == 0, "nothing in ro");
	snprintf(dir, sizeof dir, "%s/wo", tmpdir);
	CHECK(count_entries(dir) == 0, "nothing in wo");
	rm_tmpdir();
}

/* Temporary files of dead writers at this path are swept by the open,
 * the rest stay (the KVM test crash.sweep does it through wasp-run). */
static void t_sweep(void)
{
	char path[256], name[300];
	struct wasp_atomic_file f;

	make_tmpdir();
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	CHECK(chdir(tmpdir) == 0, "chdir");
	const char *junk[] = {"ck.tmp.%d", "ck.tmp.%d.0123abcd", "ck.tmp.%dx", "other.tmp.%d"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(name, sizeof name, junk[i], (int)dead);
		put(name, "junk");
	}
	snprintf(name, sizeof name, "ck.tmp.%ld", (long)getpid());
	put(name, "live");
	snprintf(path, sizeof path, "ck"); /* relative, no slash: swept in "." */
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	CHECK(count_entries(".") == 4, "left: %d (want ck.tmp.<dead>x, other.tmp.<dead>, "
				       "ck.tmp.<me>, the new temp file)",
	      count_entries("."));
	snprintf(name, sizeof name, "ck.tmp.%d", (int)dead);
	CHECK(access(name, F_OK) != 0, "dead writer's file removed");
	wasp_atomic_abort(&f);
	rm_tmpdir();
}

/* The file:// sink of a migration goes through the same writer: random
 * name, 0600, ACCEPTED only once renamed and synced; freed unfinished it
 * leaves the old file and nothing else. */
static void t_xfer(void)
{
	char url[300], path[256], name[300];
	struct wasp_xfer *x;
	enum wasp_xfer_verdict v;
	struct stat st;

	make_tmpdir();
	snprintf(path, sizeof path, "%s/m.wckpt", tmpdir);
	snprintf(url, sizeof url, "file://%s", path);
	/* The pid-only name the sink used before: it no longer blocks it. */
	snprintf(name, sizeof name, "%s.tmp.%ld", path, (long)getpid());
	put(name, "planted");
	ncalls = 0;
	CHECK(wasp_xfer_open(url, NULL, &x) == 0, "open %s", url);
	CHECK(wasp_xfer_write(x, "stream", 6) == 0, "write");
	CHECK(access(path, F_OK) != 0, "nothing at path before the commit");
	CHECK(count_entries(tmpdir) == 2, "its temp file beside: %d", count_entries(tmpdir));
	CHECK(wasp_xfer_commit(x, &v) == 0 && v == WASP_XFER_ACCEPTED, "accepted: %s",
	      wasp_last_error());
	wasp_xfer_free(x);
	CHECK(holds(path, "stream") && stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	      "written, 0600");
	CHECK(ncalls == 3 && calls[2].op == OP_FSYNC_DIR && calls[2].ino == ino_of(tmpdir),
	      "the directory synced");
	CHECK(unlink(name) == 0 && count_entries(tmpdir) == 1, "no temp file left");
	/* Freed without a commit (a failed migration): the old file stays. */
	CHECK(wasp_xfer_open(url, NULL, &x) == 0 && wasp_xfer_write(x, "half", 4) == 0, "open 2");
	wasp_xfer_free(x);
	CHECK(holds(path, "stream") && count_entries(tmpdir) == 1, "old file, no temp file");
	/* Canceled: refused, nothing renamed. */
	CHECK(wasp_xfer_open(url, NULL, &x) == 0 && wasp_xfer_write(x, "half", 4) == 0, "open 3");
	wasp_xfer_cancel(x);
	CHECK(wasp_xfer_commit(x, &v) == 0 && v == WASP_XFER_REFUSED, "canceled: refused");
	wasp_xfer_free(x);
	CHECK(holds(path, "stream") && count_entries(tmpdir) == 1, "old file, no temp file");
	/* A directory sync that fails: not durable, so not ACCEPTED. */
	CHECK(wasp_xfer_open(url, NULL, &x) == 0 && wasp_xfer_write(x, "new", 3) == 0, "open 4");
	fail_fsync_dir = EIO;
	CHECK(wasp_xfer_commit(x, &v) == 0 && v == WASP_XFER_REFUSED, "refused: %s",
	      wasp_last_error());
	fail_fsync_dir = 0;
	wasp_xfer_free(x);
	/* Refusals at the open. */
	CHECK(wasp_xfer_open("file://relative", NULL, &x) == -EINVAL && !x, "relative");
	snprintf(url, sizeof url, "file://%s", tmpdir);
	CHECK(wasp_xfer_open(url, NULL, &x) == -EISDIR && !x, "a directory");
	snprintf(url, sizeof url, "file://%s/no/such/m.wckpt", tmpdir);
	CHECK(wasp_xfer_open(url, NULL, &x) == -ENOENT && !x, "a missing directory");
	rm_tmpdir();
}

static const struct test_case cases[] = {
    {"basics", t_basics},
    {"abort", t_abort},
    {"relative", t_relative},
    {"symlinks", t_symlinks},
    {"directory", t_directory},
    {"planted", t_planted},
    {"sync", t_sync},
    {"errors", t_errors},
    {"sweep", t_sweep},
    {"xfer", t_xfer},
};

int main(int argc, char **argv)
{
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, NULL, 0, "", false);
}
