/*
 * test_files: the host side of the guest's files, without KVM: the file
 * hypercall handlers of vmm/vmm_hc_file.c called as the dispatcher calls
 * them, on a virtine that has only the memory and sandbox they use, and
 * the checkpoint's record of the written files (ckpt/ckpt_files.c)
 * packed and unpacked as in a stream.
 *
 *   rollback      the counter's log: a checkpoint after 20 lines, N more
 *                 lines (N = 0, 1, 2, 5, 13, 40) and a crash; the restore
 *                 and the rest of the run leave the log byte for byte as a
 *                 run nobody touched (issue 12, item 2). Also a file the
 *                 guest had closed before the checkpoint and appended to
 *                 after it.
 *   rewrite       a file overwritten in place after the checkpoint: put
 *                 back from the bytes the checkpoint carries.
 *   refuse        the same with no bytes carried, --files strict after an
 *                 append, and a file removed: each refused naming the file,
 *                 with every file left as it was.
 *   unseen        files made after the checkpoint by the run that crashed:
 *                 the restored guest does not find them until it creates
 *                 them, which makes them anew; a file it never opens is
 *                 left alone; the next checkpoint does not list them.
 *   hostile       records no writer makes: too many, bytes that do not
 *                 match the size or the CRC, paths out of the sandbox;
 *                 each refused, nothing written anywhere. A guest that
 *                 writes a 257th file gets -ENFILE.
 *   incremental   a growing log is summed only from where the last
 *                 checkpoint stopped; a write below that sums it again.
 *   quota         dir_quota: a 1 TiB sparse write is refused with -EDQUOT
 *                 and creates nothing that big; growth is counted in
 *                 apparent size; O_TRUNC gives back what it frees.
 * Exit 0 pass, 1 fail.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ckpt_internal.h"
#include "harness.h"
#include "vmm_internal.h"

#define MEM (1u << 20)
#define DATA 4096 /* guest address of the data buffer; paths go at 0 */

static char box[256];

static struct wasp_virtine *fake(uint64_t quota)
{
	struct wasp_virtine *v = calloc(1, sizeof *v);
	if (!v || !(v->mem = calloc(1, MEM)))
		exit(1);
	v->mem_size = MEM;
	v->mode = WASP_MODE_LONG;
	v->cfg.sandbox_dir = box;
	v->cfg.dir_quota = quota;
	MUST(wasp_hc_files_init(v));
	return v;
}

static void crash(struct wasp_virtine *v)
{
	wasp_hc_files_fini(v);
	free(v->mem);
	free(v);
}

static int64_t g_open(struct wasp_virtine *v, const char *path, uint64_t flags)
{
	strcpy((char *)v->mem, path);
	uint64_t a[6] = {0, flags, 0644};
	return wasp_hc_open(v, a, NULL);
}

static int64_t g_write(struct wasp_virtine *v, int64_t fd, const char *s)
{
	size_t n = strlen(s);
	memcpy(v->mem + DATA, s, n);
	uint64_t a[6] = {(uint64_t)fd, DATA, n};
	return wasp_hc_write(v, a, NULL);
}

static int64_t g_pwrite(struct wasp_virtine *v, int64_t fd, const char *s, uint64_t off)
{
	size_t n = strlen(s);
	memcpy(v->mem + DATA, s, n);
	uint64_t a[6] = {(uint64_t)fd, DATA, n, off};
	return wasp_hc_pwrite(v, a, NULL);
}

static void g_close(struct wasp_virtine *v, int64_t fd)
{
	uint64_t a[6] = {(uint64_t)fd};
	wasp_hc_close(v, a, NULL);
}

static void line(struct wasp_virtine *v, int64_t fd, int i)
{
	char s[64];
	snprintf(s, sizeof s, "step %d hash %016llx\n", i, (unsigned long long)i * 0x9e3779b97f4a7c15ull);
	CHECK(g_write(v, fd, s) == (int64_t)strlen(s), "line %d", i);
}

/* A checkpoint's host record of v, packed as it travels. */
static uint8_t *checkpoint(struct wasp_virtine *v, int64_t carry, size_t *len,
			   struct wasp_ckpt_stats *st)
{
	struct wasp_files_pb b;
	struct wasp_ckpt_stats local = {0};
	Wasp__Host h;
	MUST(wasp_files_to_proto(v, carry, &b, st ? st : &local));
	wasp__host__init(&h);
	h.n_written = b.n;
	h.written = b.ptrs;
	h.has_dir_grown = true;
	h.dir_grown = wasp_virtine_dir_grown(v);
	h.has_listed = true;
	h.listed = b.listed;
	h.n_sandbox_files = b.nlisting;
	h.sandbox_files = b.listing;
	*len = wasp__host__get_packed_size(&h);
	uint8_t *buf = malloc(*len ? *len : 1);
	wasp__host__pack(&h, buf);
	wasp_files_pb_free(&b);
	return buf;
}

/* Restores the files of a packed host record into a new virtine. */
static int restore(const uint8_t *rec, size_t len, enum wasp_files_policy p,
		   struct wasp_virtine **out, uint64_t *put_back)
{
	Wasp__Host *h = wasp__host__unpack(NULL, len, rec);
	struct wasp_ckpt_stats st = {0};
	if (!h)
		exit(1);
	struct wasp_virtine *v = fake(0);
	int r = wasp_files_apply(v, h, p, box, &st);
	if (r == 0 && h->has_dir_grown)
		wasp_virtine_set_dir_grown(v, h->dir_grown);
	wasp__host__free_unpacked(h, NULL);
	if (put_back)
		*put_back = st.files_put_back;
	if (r < 0) {
		crash(v);
		v = NULL;
	}
	*out = v;
	return r;
}

static char *slurp(const char *name, size_t *len)
{
	char p[400];
	snprintf(p, sizeof p, "%s/%s", box, name);
	FILE *f = fopen(p, "rb");
	if (!f) {
		*len = 0;
		return NULL;
	}
	char *buf = malloc(1 << 24);
	*len = fread(buf, 1, 1 << 24, f);
	fclose(f);
	return buf;
}

static bool same_file(const char *name, const char *want, size_t want_len)
{
	size_t n;
	char *got = slurp(name, &n);
	bool same = got && n == want_len && !memcmp(got, want, n);
	free(got);
	return same;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void new_box(void)
{
	if (box[0])
		nftw(box, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(box, sizeof box, "/tmp/wasp-files-XXXXXX");
	if (!mkdtemp(box))
		exit(1);
}

/* ---- cases ---------------------------------------------------------------- */

#define STEPS 60
#define AT 20

static void case_rollback(void)
{
	static const int extra[] = {0, 1, 2, 5, 13, 40};
	size_t ref_len, log_len;

	/* The run nobody touched. */
	new_box();
	struct wasp_virtine *v = fake(0);
	int64_t fd = g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	for (int i = 1; i <= STEPS; i++)
		line(v, fd, i);
	g_close(v, fd);
	crash(v);
	char *ref = slurp("counter.log", &ref_len);
	CHECK(ref && ref_len > 0, "no reference log");

	for (size_t k = 0; k < sizeof extra / sizeof *extra; k++) {
		new_box();
		v = fake(0);
		fd = g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
		int64_t notes = g_open(v, "notes.txt", WASP_O_WRONLY | WASP_O_CREAT);
		CHECK(g_write(v, notes, "before\n") == 7, "notes");
		g_close(v, notes);
		for (int i = 1; i <= AT; i++)
			line(v, fd, i);
		size_t len;
		uint8_t *rec = checkpoint(v, 0, &len, NULL);
		for (int i = AT + 1; i <= AT + extra[k] && i <= STEPS; i++)
			line(v, fd, i);
		/* The guest reopens a file it closed before the checkpoint. */
		notes = g_open(v, "notes.txt", WASP_O_WRONLY | WASP_O_APPEND);
		CHECK(g_write(v, notes, "after\n") == 6, "notes again");
		crash(v); /* kill -9: nothing more happens to the files */

		uint64_t put_back;
		struct wasp_virtine *r;
		int rc = restore(rec, len, WASP_FILES_ROLLBACK, &r, &put_back);
		CHECK(rc == 0, "restore after %d more lines", extra[k]);
		if (rc < 0) {
			free(rec);
			continue;
		}
		CHECK(put_back == (extra[k] ? 2u : 1u), "%d more lines: %llu files put back",
		      extra[k], (unsigned long long)put_back);
		CHECK(same_file("notes.txt", "before\n", 7), "notes.txt is not as at the checkpoint");
		/* The guest had the log open: it is reopened, and the rest runs. */
		MUST(wasp_virtine_file_restore(r, (unsigned)fd, "counter.log",
					       WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND, 0));
		for (int i = AT + 1; i <= STEPS; i++)
			line(r, fd, i);
		crash(r);
		char *got = slurp("counter.log", &log_len);
		CHECK(got && log_len == ref_len && !memcmp(got, ref, ref_len),
		      "crash %d lines after the checkpoint: the log has %zu bytes, the reference %zu",
		      extra[k], log_len, ref_len);
		free(got);
		free(rec);
	}
	free(ref);
}

static void case_rewrite(void)
{
	new_box();
	struct wasp_virtine *v = fake(0);
	int64_t fd = g_open(v, "state.bin", WASP_O_RDWR | WASP_O_CREAT);
	CHECK(g_write(v, fd, "AAAAAAAAAA") == 10, "write");
	size_t len;
	uint8_t *rec = checkpoint(v, 0, &len, NULL);
	CHECK(g_pwrite(v, fd, "BBBB", 2) == 4, "overwrite");
	CHECK(g_pwrite(v, fd, "CCCCCCCC", 8) == 8, "overwrite and grow");
	crash(v);
	struct wasp_virtine *r;
	uint64_t put_back;
	CHECK(restore(rec, len, WASP_FILES_ROLLBACK, &r, &put_back) == 0, "restore");
	CHECK(put_back == 1, "%llu put back", (unsigned long long)put_back);
	CHECK(same_file("state.bin", "AAAAAAAAAA", 10), "state.bin not put back");
	if (r)
		crash(r);
	free(rec);
}

/* Every file of the box, to prove a refusal changed none. */
static char *snapshot_box(size_t *len)
{
	size_t a, b, c;
	char *x = slurp("counter.log", &a), *y = slurp("state.bin", &b), *z = slurp("gone.txt", &c);
	char *all = malloc(a + b + c + 64);
	*len = (size_t)sprintf(all, "%zu %zu %zu|", a, b, c);
	const char *parts[] = {x, y, z};
	size_t lens[] = {a, b, c};
	for (int i = 0; i < 3; i++)
		if (parts[i]) {
			memcpy(all + *len, parts[i], lens[i]);
			*len += lens[i];
		}
	free(x), free(y), free(z);
	return all;
}

static void expect_refusal(const uint8_t *rec, size_t len, enum wasp_files_policy p,
			   const char *file, const char *what)
{
	size_t before_len, after_len;
	char *before = snapshot_box(&before_len);
	struct wasp_virtine *r;
	int rc = restore(rec, len, p, &r, NULL);
	const char *msg = wasp_last_error();
	CHECK(rc < 0, "%s: restored", what);
	CHECK(strstr(msg, file) && strstr(msg, "refused") && !strchr(msg, '\n'),
	      "%s: the refusal does not name %s in one line: %s", what, file, msg);
	printf("%s: %s\n", what, msg);
	char *after = snapshot_box(&after_len);
	CHECK(before_len == after_len && !memcmp(before, after, before_len),
	      "%s: a refused restore changed files", what);
	free(before);
	free(after);
}

static void case_refuse(void)
{
	new_box();
	struct wasp_virtine *v = fake(0);
	int64_t log = g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	int64_t fd = g_open(v, "state.bin", WASP_O_RDWR | WASP_O_CREAT);
	line(v, log, 1);
	CHECK(g_write(v, fd, "AAAAAAAAAA") == 10, "write");
	size_t len;
	uint8_t *rec = checkpoint(v, -1, &len, NULL); /* carries no bytes */
	line(v, log, 2); /* appended: can be cut back */
	CHECK(g_pwrite(v, fd, "BBBB", 2) == 4, "overwrite");
	crash(v);
	expect_refusal(rec, len, WASP_FILES_ROLLBACK, "'state.bin'", "overwritten, not carried");
	expect_refusal(rec, len, WASP_FILES_STRICT, "'counter.log'", "appended, --files strict");
	/* Put state.bin back by hand: now rollback can do the rest. */
	char p[400];
	snprintf(p, sizeof p, "%s/state.bin", box);
	FILE *f = fopen(p, "w");
	fputs("AAAAAAAAAA", f);
	fclose(f);
	struct wasp_virtine *r;
	CHECK(restore(rec, len, WASP_FILES_ROLLBACK, &r, NULL) == 0, "restore once put back");
	if (r)
		crash(r);
	free(rec);

	/* A file the checkpoint has, removed since. */
	new_box();
	v = fake(0);
	fd = g_open(v, "gone.txt", WASP_O_WRONLY | WASP_O_CREAT);
	CHECK(g_write(v, fd, "x") == 1, "write");
	rec = checkpoint(v, -1, &len, NULL);
	crash(v);
	snprintf(p, sizeof p, "%s/gone.txt", box);
	unlink(p);
	expect_refusal(rec, len, WASP_FILES_ROLLBACK, "'gone.txt'", "removed, not carried");
	free(rec);
}

static void case_unseen(void)
{
	new_box();
	struct wasp_virtine *v = fake(0);
	size_t len;
	uint8_t *rec = checkpoint(v, 0, &len, NULL); /* before the guest opened anything */
	int64_t fd = g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	line(v, fd, 1);
	int64_t ex = g_open(v, "excl.txt", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_EXCL);
	CHECK(g_write(v, ex, "old") == 3, "excl");
	crash(v);
	char p[400];
	snprintf(p, sizeof p, "%s/user.txt", box);
	FILE *f = fopen(p, "w");
	fputs("the user's\n", f);
	fclose(f);

	Wasp__Host *h = wasp__host__unpack(NULL, len, rec);
	struct wasp_ckpt_stats st = {0};
	v = fake(0);
	CHECK(h && wasp_files_apply(v, h, WASP_FILES_ROLLBACK, box, &st) == 0, "restore");
	CHECK(st.files_unseen == 3, "%llu files unseen, not 3", (unsigned long long)st.files_unseen);
	/* Strict refuses them, naming one. */
	struct wasp_virtine *v2 = fake(0);
	CHECK(wasp_files_apply(v2, h, WASP_FILES_STRICT, box, &st) < 0 &&
	      strstr(wasp_last_error(), "did not exist at the checkpoint"), "strict took new files");
	crash(v2);
	wasp__host__free_unpacked(h, NULL);
	/* A checkpoint now does not list them: they are not the guest's yet. */
	free(rec);
	rec = checkpoint(v, 0, &len, NULL);
	h = wasp__host__unpack(NULL, len, rec);
	CHECK(h && h->listed && h->n_sandbox_files == 0, "%zu files listed, not 0",
	      h ? h->n_sandbox_files : 99);
	wasp__host__free_unpacked(h, NULL);
	free(rec);

	CHECK(g_open(v, "counter.log", WASP_O_RDONLY) == -ENOENT, "the guest sees a file it did not make");
	CHECK(g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_APPEND) == -ENOENT, "... without O_CREAT");
	fd = g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	CHECK(fd >= 0, "create");
	line(v, fd, 1);
	ex = g_open(v, "excl.txt", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_EXCL);
	CHECK(ex >= 0, "O_EXCL on a file made after the checkpoint: %lld", (long long)ex);
	CHECK(g_write(v, ex, "new") == 3, "excl");
	CHECK(g_open(v, "excl.txt", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_EXCL) == -EEXIST,
	      "O_EXCL twice");
	crash(v);
	char want[64];
	int n = snprintf(want, sizeof want, "step 1 hash %016llx\n", 0x9e3779b97f4a7c15ull);
	CHECK(same_file("counter.log", want, (size_t)n), "counter.log is not one line");
	CHECK(same_file("excl.txt", "new", 3), "excl.txt");
	CHECK(same_file("user.txt", "the user's\n", 11), "a file the guest never opened changed");
}

static void case_hostile(void)
{
	static Wasp__FileState states[300], *ptrs[300];
	char outside[300];
	new_box();
	snprintf(outside, sizeof outside, "%s.outside", box);
	unlink(outside);
	for (int i = 0; i < 300; i++) {
		wasp__file_state__init(&states[i]);
		states[i].path = "f";
		states[i].present = true;
		states[i].has_size = states[i].has_crc32c = true;
		ptrs[i] = &states[i];
	}
	Wasp__Host h;
	wasp__host__init(&h);
	h.written = ptrs;
	struct wasp_ckpt_stats st = {0};
	struct wasp_virtine *v = fake(0);

	h.n_written = 257;
	CHECK(wasp_files_apply(v, &h, WASP_FILES_ROLLBACK, box, &st) == -EINVAL, "257 files taken");
	h.n_written = 1;
	states[0].size = 5;
	states[0].has_content = true;
	states[0].content.data = (uint8_t *)"abc";
	states[0].content.len = 3;
	CHECK(wasp_files_apply(v, &h, WASP_FILES_ROLLBACK, box, &st) == -EINVAL, "3 bytes for 5 taken");
	states[0].size = 3;
	states[0].crc32c = 1;
	CHECK(wasp_files_apply(v, &h, WASP_FILES_ROLLBACK, box, &st) == -EINVAL, "a wrong CRC taken");
	states[0].crc32c = wasp_crc32c(0, "abc", 3);
	static char up[320];
	snprintf(up, sizeof up, "../%s", strrchr(outside, '/') + 1);
	const char *paths[] = {up, outside, "/etc/passwd"};
	for (int i = 0; i < 3; i++) {
		states[0].path = (char *)paths[i];
		CHECK(wasp_files_apply(v, &h, WASP_FILES_ROLLBACK, box, &st) < 0, "%s taken", paths[i]);
	}
	CHECK(access(outside, F_OK) != 0, "a file was made outside the sandbox");
	states[0].path = "inside";
	CHECK(wasp_files_apply(v, &h, WASP_FILES_ROLLBACK, box, &st) == 0, "a good record: %s",
	      wasp_last_error());
	CHECK(same_file("inside", "abc", 3), "the carried bytes were not put back");
	crash(v);

	/* A guest cannot grow the table of written files without bound. */
	v = fake(0);
	int64_t last = 0;
	for (int i = 0; i < 257; i++) {
		char name[32];
		snprintf(name, sizeof name, "w%d", i);
		last = g_open(v, name, WASP_O_WRONLY | WASP_O_CREAT);
		if (last >= 0)
			g_close(v, last);
	}
	CHECK(last == -ENFILE, "the 257th written file: %lld", (long long)last);
	CHECK(g_open(v, "w3", WASP_O_WRONLY) >= 0, "a file already written opens again");
	crash(v);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* What the files cost a checkpoint of the counter example: its 60-line
 * log, a checkpoint after each line (as --checkpoint-every does); the
 * median, since the machine is shared. */
static void counter_cost(int64_t carry, const char *what)
{
	uint64_t ns[STEPS], bytes = 0;
	new_box();
	struct wasp_virtine *v = fake(0);
	int64_t fd = g_open(v, "counter.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	for (int i = 1; i <= STEPS; i++) {
		line(v, fd, i);
		struct wasp_ckpt_stats st = {0};
		size_t len;
		uint64_t t0 = wasp_now_ns();
		free(checkpoint(v, carry, &len, &st));
		ns[i - 1] = wasp_now_ns() - t0;
		bytes += st.file_bytes;
	}
	qsort(ns, STEPS, sizeof *ns, cmp_u64);
	printf("counter.log, %s: the files' part of a checkpoint (encoding included) %.1f us "
	       "median, %.1f us at 90%%, %.0f bytes read on average\n",
	       what, ns[STEPS / 2] / 1e3, ns[STEPS * 9 / 10] / 1e3, (double)bytes / STEPS);
	crash(v);
}

static void case_incremental(void)
{
	counter_cost(0, "carried whole (default)");
	counter_cost(-1, "nothing carried");
	new_box();
	struct wasp_virtine *v = fake(0);
	int64_t fd = g_open(v, "big.log", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	char *chunk = malloc(65537);
	memset(chunk, 'x', 65536);
	chunk[65536] = 0;
	for (int i = 0; i < 64; i++) /* 4 MiB: more than the default carry */
		CHECK(g_write(v, fd, chunk) == 65536, "write");
	struct wasp_ckpt_stats st = {0};
	size_t len;
	uint64_t t0 = wasp_now_ns();
	free(checkpoint(v, 0, &len, &st));
	uint64_t t_full = wasp_now_ns() - t0;
	CHECK(st.file_bytes == 4u << 20, "first checkpoint read %llu bytes",
	      (unsigned long long)st.file_bytes);
	CHECK(g_write(v, fd, "one more line\n") == 14, "append");
	memset(&st, 0, sizeof st);
	t0 = wasp_now_ns();
	uint8_t *rec = checkpoint(v, 0, &len, &st);
	uint64_t t_inc = wasp_now_ns() - t0;
	CHECK(st.file_bytes == 14, "after an append, the checkpoint read %llu bytes, not 14",
	      (unsigned long long)st.file_bytes);
	printf("4 MiB log: first checkpoint %.3f ms, after a 14-byte append %.3f ms\n",
	       t_full / 1e6, t_inc / 1e6);
	/* A write below what was summed: summed again, and still right. */
	CHECK(g_pwrite(v, fd, "y", 0) == 1, "pwrite"); /* O_APPEND: lands at the end */
	int64_t fd2 = g_open(v, "big.log", WASP_O_WRONLY);
	CHECK(g_pwrite(v, fd2, "z", 10) == 1, "overwrite");
	memset(&st, 0, sizeof st);
	free(rec);
	rec = checkpoint(v, 0, &len, &st);
	CHECK(st.file_bytes == (4u << 20) + 15, "after an overwrite, read %llu",
	      (unsigned long long)st.file_bytes);
	crash(v);
	struct wasp_virtine *r;
	CHECK(restore(rec, len, WASP_FILES_STRICT, &r, NULL) == 0, "the sums agree with the file");
	if (r)
		crash(r);
	free(rec);
	free(chunk);
}

static void case_quota(void)
{
	struct stat st;
	char p[400];

	new_box();
	snprintf(p, sizeof p, "%s/big", box);
	/* The default quota (1 GiB) refuses a 1 TiB sparse file. */
	struct wasp_virtine *v = fake(0);
	int64_t fd = g_open(v, "big", WASP_O_WRONLY | WASP_O_CREAT);
	CHECK(g_pwrite(v, fd, "x", (1ull << 40) - 1) == -EDQUOT, "1 TiB sparse write allowed");
	CHECK(g_pwrite(v, fd, "x", 1ull << 30) == -EDQUOT, "1 GiB + 1 sparse write allowed");
	CHECK(stat(p, &st) == 0 && st.st_size == 0, "the file grew to %lld", (long long)st.st_size);
	CHECK(g_pwrite(v, fd, "x", (1ull << 30) - 1) == 1, "a write up to the quota is refused");
	CHECK(g_pwrite(v, fd, "y", 1ull << 30) == -EDQUOT, "a byte past the quota allowed");
	CHECK(g_pwrite(v, fd, "z", 5) == 1, "a write inside the file is refused");
	g_close(v, fd);
	/* O_TRUNC gives it back. */
	fd = g_open(v, "big", WASP_O_WRONLY | WASP_O_TRUNC);
	CHECK(fd >= 0, "reopen");
	CHECK(wasp_virtine_dir_grown(v) == 0, "after O_TRUNC, %lld counted",
	      (long long)wasp_virtine_dir_grown(v));
	CHECK(g_pwrite(v, fd, "x", (1ull << 29)) == 1, "half the quota after O_TRUNC");
	crash(v);

	/* A small quota, and unlimited. */
	new_box();
	v = fake(1000);
	fd = g_open(v, "a", WASP_O_WRONLY | WASP_O_CREAT | WASP_O_APPEND);
	int64_t fd2 = g_open(v, "b", WASP_O_WRONLY | WASP_O_CREAT);
	char buf[601];
	memset(buf, 'q', 600);
	buf[600] = 0;
	CHECK(g_write(v, fd, buf) == 600, "600 of 1000");
	CHECK(g_write(v, fd2, buf) == -EDQUOT, "1200 of 1000 allowed");
	buf[400] = 0;
	CHECK(g_write(v, fd2, buf) == 400, "1000 of 1000");
	CHECK(g_write(v, fd, "x") == -EDQUOT, "1001 of 1000 allowed");
	size_t len;
	uint8_t *rec = checkpoint(v, 0, &len, NULL);
	crash(v);
	Wasp__Host *h = wasp__host__unpack(NULL, len, rec);
	CHECK(h && h->has_dir_grown && h->dir_grown == 1000, "the checkpoint records the growth");
	wasp__host__free_unpacked(h, NULL);
	free(rec);
	v = fake(WASP_DIR_QUOTA_UNLIMITED);
	fd = g_open(v, "huge", WASP_O_WRONLY | WASP_O_CREAT);
	CHECK(g_pwrite(v, fd, "x", 1ull << 34) == 1, "unlimited refused 16 GiB");
	crash(v);
	new_box();
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		{"rollback", case_rollback}, {"rewrite", case_rewrite},
		{"refuse", case_refuse},     {"unseen", case_unseen},
		{"hostile", case_hostile},
		{"incremental", case_incremental},
		{"quota", case_quota},
	};
	int r = test_main(argc, argv, cases, sizeof cases / sizeof *cases, NULL, 0, "", false);
	if (box[0])
		nftw(box, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}
