/*
 * migrate_files.c: the bundle that carries a virtine's sandbox files
 * along with a migration (`wasp-migrate --with-files`), as the body of
 * `PUT /migrations/ID/files`. The checkpoint stream holds no file
 * contents (its host record names open files by path and offset), so the
 * files travel beside it, sent while the guest is stopped and before the
 * stream ends, so the receiver has them when it reopens them.
 *
 * The format is text lines and raw bytes (docs/migration.md):
 *     WASPFILES 1\n
 *     F <mode, octal> <size> <path, percent-encoded>\n <size bytes>   (per file)
 *     E <files> <content bytes>\n
 * Only regular files go; symbolic links and special files are skipped,
 * since the sandbox refuses them anyway. The reader trusts nothing: paths
 * are relative, without "." or ".." parts, and are created below its
 * directory without following any link; every file lands under a
 * temporary name and is renamed into place only when the whole bundle
 * has arrived.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate_internal.h"

#define BUNDLE_MAGIC "WASPFILES 1\n"
#define MAX_FILES 100000
#define MAX_DEPTH 32
#define LINE_MAX_LEN (3 * PATH_MAX + 64)

/* ---- writer -------------------------------------------------------------------- */

struct wasp_bundle_writer {
	int dirfd;
	char **paths;
	size_t n, cap, next;
	int fd;             /* the file being sent */
	uint64_t left;      /* its bytes still to send */
	char head[LINE_MAX_LEN];
	size_t head_len, head_off;
	bool ended;
	uint64_t bytes, content;
};

static int add_path(struct wasp_bundle_writer *w, const char *rel)
{
	if (w->n == MAX_FILES)
		return wasp_fail(-E2BIG, "more than %d files in the sandbox", MAX_FILES);
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		char **p = realloc(w->paths, cap * sizeof *p);
		if (!p)
			return wasp_fail(-ENOMEM, "out of memory");
		w->paths = p;
		w->cap = cap;
	}
	if (!(w->paths[w->n] = strdup(rel)))
		return wasp_fail(-ENOMEM, "out of memory");
	w->n++;
	return 0;
}

static int walk(struct wasp_bundle_writer *w, int dfd, const char *prefix, int depth)
{
	if (depth > MAX_DEPTH)
		return wasp_fail(-ELOOP, "the sandbox is nested more than %d deep", MAX_DEPTH);
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return wasp_fail(-e, "reading the sandbox: %s", strerror(e));
	}
	int r = 0;
	struct dirent *de;
	while (!r && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char rel[PATH_MAX];
		if ((size_t)snprintf(rel, sizeof rel, "%s%s%s", prefix, *prefix ? "/" : "",
				     de->d_name) >= sizeof rel) {
			r = wasp_fail(-ENAMETOOLONG, "a sandbox path is too long");
			break;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* vanished meanwhile */
		if (S_ISREG(st.st_mode)) {
			r = add_path(w, rel);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = walk(w, sub, rel, depth + 1);
		}
	}
	closedir(d);
	return r;
}

int wasp_bundle_writer_open(const char *dir, struct wasp_bundle_writer **out)
{
	*out = NULL;
	struct wasp_bundle_writer *w = calloc(1, sizeof *w);
	if (!w)
		return wasp_fail(-ENOMEM, "out of memory");
	w->fd = -1;
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		int e = errno;
		free(w);
		return wasp_fail(-e, "sandbox %s: %s", dir, strerror(e));
	}
	int dup_fd = fcntl(w->dirfd, F_DUPFD_CLOEXEC, 0);
	int r = dup_fd < 0 ? wasp_fail(-errno, "dup: %s", strerror(errno)) : walk(w, dup_fd, "", 0);
	if (r < 0) {
		wasp_bundle_writer_free(w);
		return r;
	}
	memcpy(w->head, BUNDLE_MAGIC, strlen(BUNDLE_MAGIC));
	w->head_len = strlen(BUNDLE_MAGIC);
	*out = w;
	return 0;
}

/* Makes the next header line (a file's, or the end); false when done. */
static int next_head(struct wasp_bundle_writer *w)
{
	while (w->next < w->n) {
		const char *rel = w->paths[w->next++];
		int fd = openat(w->dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0 && errno == ENOENT)
			continue; /* removed since the walk */
		if (fd < 0)
			return wasp_fail(-errno, "%s: %s", rel, strerror(errno));
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		char enc[LINE_MAX_LEN - 64];
		wasp_pct_encode(rel, enc, sizeof enc);
		w->head_len = (size_t)snprintf(w->head, sizeof w->head, "F %o %" PRIu64 " %s\n",
					       (unsigned)(st.st_mode & 07777), (uint64_t)st.st_size, enc);
		w->head_off = 0;
		w->fd = fd;
		w->left = (uint64_t)st.st_size;
		return 1;
	}
	w->head_len = (size_t)snprintf(w->head, sizeof w->head, "E %zu %" PRIu64 "\n", w->n,
				       w->content);
	w->head_off = 0;
	w->ended = true;
	return 1;
}

ssize_t wasp_bundle_writer_read(struct wasp_bundle_writer *w, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		if (w->head_off < w->head_len) {
			size_t n = w->head_len - w->head_off;
			if (n > len - got)
				n = len - got;
			memcpy(p + got, w->head + w->head_off, n);
			w->head_off += n;
			got += n;
			continue;
		}
		if (w->fd >= 0) {
			if (w->left == 0) {
				close(w->fd);
				w->fd = -1;
				continue;
			}
			size_t want = len - got;
			if (want > w->left)
				want = (size_t)w->left;
			ssize_t n = read(w->fd, p + got, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return wasp_fail(-errno, "reading a sandbox file: %s", strerror(errno));
			if (n == 0)
				return wasp_fail(-EIO, "a sandbox file shrank while it was sent");
			w->left -= (uint64_t)n;
			w->content += (uint64_t)n;
			got += (size_t)n;
			continue;
		}
		if (w->ended)
			break;
		int r = next_head(w);
		if (r < 0)
			return r;
	}
	w->bytes += got;
	return (ssize_t)got;
}

uint64_t wasp_bundle_writer_bytes(const struct wasp_bundle_writer *w)
{
	return w->bytes;
}

void wasp_bundle_writer_free(struct wasp_bundle_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	for (size_t i = 0; i < w->n; i++)
		free(w->paths[i]);
	free(w->paths);
	free(w);
}

/* ---- reader ----------------------------------------------------------------------- */

struct incoming {
	char *rel;  /* final path, relative */
	char *tmp;  /* its temporary name, relative */
};

struct wasp_bundle_reader {
	int dirfd;
	uint64_t max_bytes, content;
	char line[LINE_MAX_LEN];
	size_t line_len;
	bool magic_ok, ended, bad;
	int fd;            /* the file being received */
	uint64_t left;
	struct incoming *files;
	size_t n, cap;
	uint64_t end_files, end_bytes;
};

int wasp_bundle_reader_open(const char *dir, uint64_t max_bytes, struct wasp_bundle_reader **out)
{
	*out = NULL;
	struct wasp_bundle_reader *r = calloc(1, sizeof *r);
	if (!r)
		return wasp_fail(-ENOMEM, "out of memory");
	r->fd = -1;
	r->max_bytes = max_bytes;
	r->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		int e = errno;
		free(r);
		return wasp_fail(-e, "%s: %s", dir, strerror(e));
	}
	*out = r;
	return 0;
}

/* Checks a relative path: no empty, "." or ".." parts, no leading '/'. */
static bool path_ok(const char *p)
{
	if (!*p || *p == '/' || strlen(p) >= PATH_MAX)
		return false;
	for (const char *s = p; *s;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!e)
			break;
		s = e + 1;
	}
	return true;
}

/* Opens (making them) the directories of `rel` below dirfd, following no
 * link; returns the parent's fd and sets *base to the last part. */
static int open_parent(int dirfd, const char *rel, bool create, const char **base)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", rel);
	int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return -errno;
	char *s = buf;
	for (char *slash; (slash = strchr(s, '/')); s = slash + 1) {
		*slash = '\0';
		if (create && mkdirat(cur, s, 0755) < 0 && errno != EEXIST) {
			int e = -errno;
			close(cur);
			return e;
		}
		int next = openat(cur, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = -errno;
		close(cur);
		if (next < 0)
			return e;
		cur = next;
	}
	*base = rel + (s - buf);
	return cur;
}

/* The file is whole. No fsync: the files go with a virtine that will run
 * here, which would not survive a crash of this host either, and the
 * guest stands still while they come; the rename alone keeps anyone from
 * seeing half a file. */
static int close_file(struct wasp_bundle_reader *r)
{
	int fd = r->fd;
	r->fd = -1;
	if (close(fd) < 0)
		return wasp_fail(-errno, "files: %s", strerror(errno));
	return 0;
}

static int start_file(struct wasp_bundle_reader *r, const char *line)
{
	unsigned mode;
	uint64_t size;
	int off = 0;
	char path[PATH_MAX];
	if (sscanf(line, "F %o %" SCNu64 " %n", &mode, &size, &off) != 2 || !off)
		return wasp_fail(-EINVAL, "files: bad line '%.80s'", line);
	if (wasp_pct_decode(line + off, path, sizeof path) < 0 || !path_ok(path))
		return wasp_fail(-EINVAL, "files: refused path '%.200s'", line + off);
	if (r->n >= MAX_FILES)
		return wasp_fail(-E2BIG, "files: more than %d", MAX_FILES);
	if (size > r->max_bytes - r->content)
		return wasp_fail(-EFBIG, "files: more than %" PRIu64 " bytes", r->max_bytes);
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct incoming *p = realloc(r->files, cap * sizeof *p);
		if (!p)
			return wasp_fail(-ENOMEM, "out of memory");
		r->files = p;
		r->cap = cap;
	}
	struct incoming *in = &r->files[r->n];
	in->rel = strdup(path);
	if (!in->rel || asprintf(&in->tmp, "%s.wasp-in.%d", path, (int)getpid()) < 0) {
		free(in->rel);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	r->n++;
	const char *base = NULL; /* set by open_parent() when it succeeds */
	int pfd = open_parent(r->dirfd, in->tmp, true, &base);
	if (pfd < 0)
		return wasp_fail(pfd, "files: %s: %s", path, strerror(-pfd));
	unlinkat(pfd, base, 0); /* a temporary file left by an earlier try */
	r->fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
	int e = errno;
	close(pfd);
	if (r->fd < 0)
		return wasp_fail(-e, "files: %s: %s", path, strerror(e));
	r->left = size;
	return size ? 0 : close_file(r);
}

int wasp_bundle_reader_push(struct wasp_bundle_reader *r, const void *buf, size_t len)
{
	const char *p = buf;
	if (r->bad)
		return -EINVAL;
	while (len) {
		if (r->fd >= 0) {
			size_t n = len < r->left ? len : (size_t)r->left;
			ssize_t w = write(r->fd, p, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r->bad = true;
				return wasp_fail(-errno, "files: write: %s", strerror(errno));
			}
			p += w;
			len -= (size_t)w;
			r->left -= (uint64_t)w;
			r->content += (uint64_t)w;
			if (r->left == 0 && close_file(r) < 0) {
				r->bad = true;
				return -EIO;
			}
			continue;
		}
		if (r->ended) {
			r->bad = true;
			return wasp_fail(-EINVAL, "files: bytes after the end line");
		}
		char c = *p++;
		len--;
		if (r->line_len + 1 >= sizeof r->line) {
			r->bad = true;
			return wasp_fail(-EINVAL, "files: line too long");
		}
		if (c != '\n') {
			r->line[r->line_len++] = c;
			continue;
		}
		r->line[r->line_len] = '\0';
		r->line_len = 0;
		int rc = 0;
		if (!r->magic_ok) {
			if (strcmp(r->line, "WASPFILES 1"))
				rc = wasp_fail(-EINVAL, "files: not a wasp file bundle");
			r->magic_ok = true;
		} else if (r->line[0] == 'F') {
			rc = start_file(r, r->line);
		} else if (r->line[0] == 'E') {
			if (sscanf(r->line, "E %" SCNu64 " %" SCNu64, &r->end_files, &r->end_bytes) != 2)
				rc = wasp_fail(-EINVAL, "files: bad end line");
			r->ended = true;
		} else {
			rc = wasp_fail(-EINVAL, "files: bad line '%.80s'", r->line);
		}
		if (rc < 0) {
			r->bad = true;
			return rc;
		}
	}
	return 0;
}

int wasp_bundle_reader_finish(struct wasp_bundle_reader *r)
{
	if (r->bad)
		return -EINVAL;
	if (!r->ended || r->fd >= 0)
		return wasp_fail(-EPIPE, "files: the bundle was cut short");
	if (r->end_files < r->n || r->end_bytes != r->content)
		return wasp_fail(-EINVAL, "files: the end line does not match what came");
	for (size_t i = 0; i < r->n; i++) {
		const char *base, *tbase;
		int pfd = open_parent(r->dirfd, r->files[i].rel, false, &base);
		if (pfd < 0)
			return wasp_fail(pfd, "files: %s: %s", r->files[i].rel, strerror(-pfd));
		tbase = strrchr(r->files[i].tmp, '/');
		tbase = tbase ? tbase + 1 : r->files[i].tmp;
		int rc = renameat(pfd, tbase, pfd, base);
		int e = errno;
		close(pfd);
		if (rc < 0)
			return wasp_fail(-e, "files: %s: %s", r->files[i].rel, strerror(e));
		free(r->files[i].tmp);
		r->files[i].tmp = NULL;
	}
	return (int)r->n;
}

void wasp_bundle_reader_free(struct wasp_bundle_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	for (size_t i = 0; i < r->n; i++) {
		if (r->files[i].tmp) {
			const char *base;
			int pfd = open_parent(r->dirfd, r->files[i].tmp, false, &base);
			if (pfd >= 0) {
				unlinkat(pfd, base, 0);
				close(pfd);
			}
		}
		free(r->files[i].rel);
		free(r->files[i].tmp);
	}
	free(r->files);
	close(r->dirfd);
	free(r);
}
