/*
 * ckpt_files.c: the files the guest wrote, recorded at a checkpoint and
 * found (or put back) at a restore, so that a restore after a crash never
 * runs a guest on files that moved on since its memory was saved.
 *
 * Every file write goes through the host, so the vmm keeps a table of the
 * files the guest opened for writing (vmm_hc_file.c, `written`). A
 * checkpoint records, for each: whether it exists, its size and the
 * CRC-32C of its bytes, and, within a byte budget, the bytes themselves.
 * The CRC is kept between checkpoints with the length it covers, and the
 * vmm drops it when the guest writes below that length: a file that only
 * grew (an append log, the common case) is read only from where the last
 * checkpoint stopped, so periodic checkpoints cost what was written since,
 * not the file's size.
 *
 * A restore first checks every file, changing none, then puts back:
 *   same size and CRC              nothing to do;
 *   longer, first `size` bytes     cut back to `size`: what the guest
 *   with the CRC                   appended after the checkpoint (it will
 *                                  append it again);
 *   anything else                  rewritten from the carried bytes, or,
 *                                  when the checkpoint does not carry
 *                                  them, refused naming the file.
 * Files made after the checkpoint (by the run that crashed) are told by a
 * listing of the sandbox the checkpoint also holds: a restore marks each
 * new one as unseen by the guest, which then finds no such file until it
 * creates it, and creating it empties it, as in a run that never crashed.
 * docs/checkpoint-format.md ("Files") is the reader's version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"

#define READ_BUF (256u << 10)

/* Reads fd's bytes [from, to): into dst when given, else through buf
 * (READ_BUF bytes) for their CRC-32C, continuing *crc. */
static int read_range(int fd, uint64_t from, uint64_t to, uint8_t *dst, uint32_t *crc,
		      uint8_t *buf, const char *path)
{
	uint64_t start = from;
	while (from < to) {
		uint8_t *p = dst ? dst + (from - start) : buf;
		size_t want = dst || to - from < READ_BUF ? (size_t)(to - from) : READ_BUF;
		ssize_t n = pread(fd, p, want, (off_t)from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return wasp_fail(-errno, "reading the guest's file '%s': %s", path,
					 strerror(errno));
		if (n == 0)
			return wasp_fail(-EIO, "the guest's file '%s' shrank while it was read", path);
		if (crc)
			*crc = wasp_crc32c(*crc, p, (size_t)n);
		from += (uint64_t)n;
	}
	return 0;
}

/* CRC-32C of fd's bytes [from, to), continuing `crc`. */
static int sum_range(int fd, uint64_t from, uint64_t to, uint32_t *crc, uint8_t *buf,
		     const char *path)
{
	return read_range(fd, from, to, NULL, crc, buf, path);
}

static int read_all(int fd, uint8_t *dst, uint64_t len, const char *path)
{
	return read_range(fd, 0, len, dst, NULL, NULL, path);
}

/* ---- save ------------------------------------------------------------- */

void wasp_files_pb_free(struct wasp_files_pb *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->states[i].content.data);
	for (size_t i = 0; i < b->nlisting; i++)
		free(b->listing[i]);
	free(b->listing);
	free(b->states);
	free(b->ptrs);
	memset(b, 0, sizeof *b);
}

struct listing {
	char **names;
	size_t n, cap, bytes;
};

static int list_one(void *ctx, const char *path)
{
	struct listing *l = ctx;
	size_t len = strlen(path);
	if (l->bytes + len > WASP_CKPT_LIST_MAX_BYTES)
		return -E2BIG;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		char **p = realloc(l->names, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		l->names = p;
		l->cap = cap;
	}
	if (!(l->names[l->n] = strdup(path)))
		return -ENOMEM;
	l->n++;
	l->bytes += len;
	return 0;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof *l);
}

/* The sandbox's regular files now; 1 with *l filled, 0 when there are
 * too many to list, -errno. */
static int list_sandbox(struct wasp_virtine *v, struct listing *l)
{
	memset(l, 0, sizeof *l);
	int r = wasp_virtine_sandbox_walk(v, WASP_CKPT_LIST_MAX_FILES, list_one, l);
	if (r == -E2BIG) {
		listing_free(l);
		return 0;
	}
	if (r < 0) {
		listing_free(l);
		return wasp_fail(r, "listing the sandbox: %s", strerror(-r));
	}
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int wasp_files_to_proto(struct wasp_virtine *v, int64_t carry, struct wasp_files_pb *b,
			struct wasp_ckpt_stats *stats)
{
	uint64_t budget = carry < 0 ? 0 : carry == 0 ? WASP_CKPT_CARRY_DEFAULT : (uint64_t)carry;
	if (budget > WASP_CKPT_CARRY_MAX)
		budget = WASP_CKPT_CARRY_MAX; /* the host record must stay one record */
	uint8_t *buf = NULL;
	int r = 0;

	memset(b, 0, sizeof *b);
	b->states = calloc(WASP_CKPT_MAX_WRITTEN, sizeof *b->states);
	b->ptrs = calloc(WASP_CKPT_MAX_WRITTEN, sizeof *b->ptrs);
	if (!b->states || !b->ptrs) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; r == 0 && b->n < WASP_CKPT_MAX_WRITTEN; i++) {
		struct wasp_written_file wf;
		int k = wasp_virtine_written_at(v, i, &wf);
		if (k <= 0)
			break;
		Wasp__FileState *fs = &b->states[b->n];
		wasp__file_state__init(fs);
		fs->path = (char *)wf.path;
		b->ptrs[b->n++] = fs;
		int fd = wasp_virtine_written_open(v, i);
		if (fd == -ENOENT) {
			fs->present = false; /* removed behind the guest's back */
			continue;
		}
		if (fd < 0) {
			r = wasp_fail(fd, "the guest's file '%s': %s", wf.path, strerror(-fd));
			break;
		}
		/* written_open may have reset the sum: read it again. */
		wasp_virtine_written_at(v, i, &wf);
		struct stat st;
		if (fstat(fd, &st) < 0) {
			r = wasp_fail(-errno, "the guest's file '%s': %s", wf.path, strerror(errno));
			close(fd);
			break;
		}
		uint64_t size = (uint64_t)st.st_size, from = wf.sum_len;
		uint32_t crc = wf.sum;
		if (from > size)
			from = crc = 0; /* shrank behind the guest's back */
		fs->present = true;
		fs->has_size = true;
		fs->size = size;
		if (size && size <= budget) {
			fs->content.data = malloc(size);
			if (!fs->content.data) {
				r = wasp_fail(-ENOMEM, "out of memory for the guest's file '%s'", wf.path);
				close(fd);
				break;
			}
			fs->content.len = size;
			fs->has_content = true;
			budget -= size;
			if ((r = read_all(fd, fs->content.data, size, wf.path)) == 0)
				crc = wasp_crc32c(crc, fs->content.data + from, size - from);
			stats->file_bytes += size;
		} else if (from < size) {
			if (!buf && !(buf = malloc(READ_BUF)))
				r = wasp_fail(-ENOMEM, "out of memory");
			else
				r = sum_range(fd, from, size, &crc, buf, wf.path);
			stats->file_bytes += size - from;
		}
		close(fd);
		if (r < 0)
			break;
		fs->has_crc32c = true;
		fs->crc32c = crc;
		wasp_virtine_written_set_sum(v, i, size, crc);
		stats->files++;
	}
	if (r == 0) {
		struct listing l;
		int k = list_sandbox(v, &l);
		if (k < 0)
			r = k;
		b->listed = k > 0;
		b->listing = l.names;
		b->nlisting = l.n;
	}
out:
	free(buf);
	if (r < 0)
		wasp_files_pb_free(b);
	return r;
}

/* ---- restore ---------------------------------------------------------- */

enum action { KEEP, CUT, REWRITE, CREATE, ABSENT, HIDE };

static const char *policy_hint(enum wasp_files_policy p)
{
	return p == WASP_FILES_STRICT ? "--files strict puts nothing back"
				      : "the checkpoint does not carry its bytes";
}

/* What file fs needs; -errno with the one-line refusal naming it. */
static int judge(struct wasp_virtine *v, const Wasp__FileState *fs, enum wasp_files_policy policy,
		 const char *dir, uint8_t *buf, enum action *act)
{
	const char *why = NULL;
	char detail[160] = "";
	int fd = wasp_virtine_sandbox_open(v, fs->path, O_RDONLY);

	if (fd == -ENOENT) {
		if (!fs->present) {
			*act = ABSENT;
			return 0;
		}
		*act = CREATE;
		why = "was removed";
		snprintf(detail, sizeof detail, " (the checkpoint has %llu bytes)",
			 (unsigned long long)fs->size);
	} else if (fd < 0) {
		return wasp_fail(fd, "restore refused: the guest's file '%s' in %s cannot be read: %s",
				 fs->path, dir, strerror(-fd));
	} else if (!fs->present) {
		close(fd);
		*act = HIDE; /* made after the checkpoint, by the run that crashed */
		if (policy == WASP_FILES_ROLLBACK)
			return 0;
		return wasp_fail(-EEXIST,
				 "restore refused: the guest's file '%s' in %s exists, but did not at "
				 "the checkpoint",
				 fs->path, dir);
	} else {
		struct stat st;
		uint32_t crc = 0;
		int r = fstat(fd, &st) < 0 ? -errno : 0;
		uint64_t now = r == 0 ? (uint64_t)st.st_size : 0;
		if (r == 0 && now >= fs->size)
			r = sum_range(fd, 0, fs->size, &crc, buf, fs->path);
		close(fd);
		if (r < 0)
			return r;
		if (now >= fs->size && crc == fs->crc32c) {
			*act = now == fs->size ? KEEP : CUT;
			if (*act == KEEP || policy != WASP_FILES_STRICT)
				return 0;
			why = "grew";
			snprintf(detail, sizeof detail, " to %llu bytes (the checkpoint has %llu)",
				 (unsigned long long)now, (unsigned long long)fs->size);
		} else {
			*act = REWRITE;
			why = "changed";
			snprintf(detail, sizeof detail, " (%llu bytes, the checkpoint has %llu%s)",
				 (unsigned long long)now, (unsigned long long)fs->size,
				 now >= fs->size ? " with other bytes" : "");
		}
	}
	/* An empty file needs no bytes to be put back. */
	if (policy == WASP_FILES_ROLLBACK && (*act == CUT || fs->has_content || fs->size == 0))
		return 0;
	return wasp_fail(-ESTALE,
			 "restore refused: the guest's file '%s' in %s %s since the checkpoint%s and %s",
			 fs->path, dir, why, detail, policy_hint(policy));
}

static int put_back(struct wasp_virtine *v, const Wasp__FileState *fs, enum action act,
		    const char *dir)
{
	int flags = act == CREATE ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY;
	int fd = wasp_virtine_sandbox_open(v, fs->path, flags), r = 0;
	if (fd < 0)
		return wasp_fail(fd, "putting back the guest's file '%s' in %s: %s", fs->path, dir,
				 strerror(-fd));
	for (uint64_t done = 0; act != CUT && done < fs->content.len;) {
		ssize_t n = pwrite(fd, fs->content.data + done, fs->content.len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = wasp_fail(n < 0 ? -errno : -EIO, "putting back the guest's file '%s' in %s: %s",
				      fs->path, dir, n < 0 ? strerror(errno) : "short write");
			break;
		}
		done += (uint64_t)n;
	}
	if (r == 0 && ftruncate(fd, (off_t)fs->size) < 0)
		r = wasp_fail(-errno, "cutting the guest's file '%s' in %s back to %llu bytes: %s",
			      fs->path, dir, (unsigned long long)fs->size, strerror(errno));
	close(fd);
	return r;
}

int wasp_files_apply(struct wasp_virtine *v, const Wasp__Host *h, enum wasp_files_policy policy,
		     const char *dir, struct wasp_ckpt_stats *stats)
{
	enum action *acts = NULL;
	uint8_t *buf = NULL;
	int r = 0;

	struct listing now = {0};
	char **before = NULL;

	if (!h->n_written && !h->listed)
		return 0;
	if (!dir && h->n_written && policy != WASP_FILES_IGNORE)
		return wasp_fail(-EACCES,
				 "the guest wrote '%s' but no sandbox directory was given to restore it in",
				 h->written[0]->path);
	if (!dir)
		dir = "(no directory)";
	/* No more than a writer makes: the work below is per file. */
	if (h->n_written > WASP_CKPT_MAX_WRITTEN || h->n_sandbox_files > WASP_CKPT_LIST_MAX_FILES)
		return wasp_fail(-EINVAL, "checkpoint records %zu written files and lists %zu; at most %u and %u",
				 h->n_written, h->n_sandbox_files, WASP_CKPT_MAX_WRITTEN,
				 WASP_CKPT_LIST_MAX_FILES);
	for (size_t i = 0; i < h->n_written; i++) {
		const Wasp__FileState *fs = h->written[i];
		if (!*fs->path)
			return wasp_fail(-EINVAL, "checkpoint names a written file with an empty path");
		if (fs->present && (!fs->has_size || !fs->has_crc32c || fs->size > INT64_MAX ||
				    (fs->has_content && fs->content.len != fs->size)))
			return wasp_fail(-EINVAL, "checkpoint record of the guest's file '%s' is bad",
					 fs->path);
		if (fs->has_content && wasp_crc32c(0, fs->content.data, fs->content.len) != fs->crc32c)
			return wasp_fail(-EINVAL,
					 "checkpoint bytes of the guest's file '%s' do not match its CRC",
					 fs->path);
	}
	if (policy == WASP_FILES_IGNORE) {
		/* The caller vouches for the files: take them as they are, and
		 * count from here (sums unknown). */
		for (size_t i = 0; i < h->n_written; i++)
			if (h->written[i]->present)
				(void)wasp_virtine_written_add(v, h->written[i]->path, 0, 0);
		return 0;
	}
	acts = calloc(h->n_written, sizeof *acts);
	buf = malloc(READ_BUF);
	if (!acts || !buf) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	/* All checks first: a refusal changes nothing. */
	for (size_t i = 0; i < h->n_written && r == 0; i++)
		r = judge(v, h->written[i], policy, dir, buf, &acts[i]);
	/* Files made after the checkpoint: in the sandbox now, not in its
	 * listing (nor a written file it knew as absent, judged above). */
	if (r == 0 && h->listed) {
		if (!(before = malloc((h->n_sandbox_files + 1) * sizeof *before))) {
			r = wasp_fail(-ENOMEM, "out of memory");
			goto out;
		}
		if (h->n_sandbox_files)
			memcpy(before, h->sandbox_files, h->n_sandbox_files * sizeof *before);
		qsort(before, h->n_sandbox_files, sizeof *before, cmp_str);
		/* 0: too many files now to tell: take them as they are */
		int k = list_sandbox(v, &now);
		if (k < 0)
			r = k;
		for (size_t i = 0; i < now.n && r == 0; i++) {
			char *key = now.names[i];
			if (bsearch(&key, before, h->n_sandbox_files, sizeof *before, cmp_str)) {
				free(now.names[i]);
				now.names[i] = NULL;
			} else if (policy == WASP_FILES_STRICT) {
				r = wasp_fail(-ESTALE,
					      "restore refused: '%s' in %s did not exist at the checkpoint and "
					      "--files strict puts nothing back",
					      key, dir);
			}
		}
	}
	for (size_t i = 0; i < h->n_written && r == 0; i++) {
		const Wasp__FileState *fs = h->written[i];
		if (acts[i] == CUT || acts[i] == REWRITE || acts[i] == CREATE) {
			if ((r = put_back(v, fs, acts[i], dir)) < 0)
				break;
			stats->files_put_back++;
		}
		if (acts[i] == HIDE)
			r = wasp_virtine_unseen_add(v, fs->path);
		else if (acts[i] != ABSENT)
			r = wasp_virtine_written_add(v, fs->path, fs->size, fs->crc32c);
	}
	for (size_t i = 0; i < now.n && r == 0; i++)
		if (now.names[i]) {
			r = wasp_virtine_unseen_add(v, now.names[i]);
			stats->files_unseen++;
		}
out:
	listing_free(&now);
	free(before);
	free(acts);
	free(buf);
	return r;
}
