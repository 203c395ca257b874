/*
 * fuzz_common.c: helpers the fuzz targets share (see fuzz.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "fuzz.h"

int fuzz_check_error(int r, const char *what)
{
	if (r >= 0)
		return r;
	const char *msg = wasp_last_error();
	if (r < -4095 || !msg || !*msg || strchr(msg, '\n')) {
		fprintf(stderr, "fuzz: %s returned %d with a bad message: \"%s\"\n", what, r,
			msg ? msg : "(null)");
		abort();
	}
	return r;
}

/* ---- directories ------------------------------------------------------------ */

static char *dirs[8];
static int ndirs;

static void rm_tree_at(int dfd)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			continue;
		int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			rm_tree_at(sub);
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
}

void fuzz_empty_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		rm_tree_at(fd);
}

static void remove_dirs(void)
{
	for (int i = 0; i < ndirs; i++) {
		fuzz_empty_dir(dirs[i]);
		rmdir(dirs[i]);
		free(dirs[i]);
	}
	ndirs = 0;
}

const char *fuzz_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/wasp-fuzz-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(path) || ndirs == (int)(sizeof dirs / sizeof *dirs)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	if (ndirs == 0)
		atexit(remove_dirs);
	dirs[ndirs] = strdup(path);
	if (!dirs[ndirs])
		abort();
	return dirs[ndirs++];
}

void fuzz_sandbox(const char *tag, const char *text, char outer[4096], char box[4200],
		  char secret[4200])
{
	snprintf(outer, 4096, "%s", fuzz_tmpdir(tag));
	snprintf(box, 4200, "%s/box", outer);
	snprintf(secret, 4200, "%s/secret.txt", outer);
	FILE *f = fopen(secret, "w");
	if (!f || mkdir(box, 0700) < 0) {
		perror("fuzz: sandbox setup");
		abort();
	}
	fputs(text, f);
	fclose(f);
}

void fuzz_box_links(const char *box, const char *secret)
{
	static const char *const links[][2] = {{"up", "../secret.txt"}, {"etc", "/etc"}, {"root", "/"}};
	char p[4300];
	for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
		snprintf(p, sizeof p, "%s/%s", box, links[i][0]);
		if (symlink(links[i][1], p) < 0)
			abort();
	}
	snprintf(p, sizeof p, "%s/abs", box);
	if (symlink(secret, p) < 0)
		abort();
}

bool fuzz_split_calls(const uint8_t *data, size_t size, size_t max, size_t mem_cap,
		      struct fuzz_calls *out)
{
	if (size < 2)
		return false;
	out->mode = data[0];
	out->calls = data[1] % (max + 1);
	data += 2;
	size -= 2;
	if (out->calls * 56 > size)
		out->calls = size / 56;
	out->table = data;
	out->mem = data + out->calls * 56;
	out->mem_len = size - out->calls * 56;
	if (out->mem_len > mem_cap)
		out->mem_len = mem_cap;
	return true;
}

/* ---- decoding without KVM --------------------------------------------------------- */

void fuzz_decode(const struct wasp_source *src, struct fuzz_decoded *out, bool mem_crc)
{
	struct wasp_stream_reader *rd = NULL;
	struct wasp_memory_applier *ap = NULL;
	struct wasp_ckpt_stats st;
	Wasp__Record *rec = NULL;
	uint8_t *mem = MAP_FAILED;
	int r;

	memset(out, 0, sizeof *out);
	memset(&st, 0, sizeof st);
	if ((r = wasp_stream_reader_open(src, &rd)) < 0)
		goto done;
	if ((r = wasp_stream_read_record(rd, &rec)) == 0)
		r = wasp_fail(-EINVAL, "checkpoint has no header");
	if (r < 0)
		goto done;
	out->mem_size = rec->header->mem_size; /* the reader bounds it */
	wasp__record__free_unpacked(rec, NULL);
	rec = NULL;
	/* Like a virtine's memfd: untouched pages cost nothing. */
	mem = mmap(NULL, out->mem_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		r = wasp_fail(-errno, "mmap of %llu bytes: %s", (unsigned long long)out->mem_size,
			      strerror(errno));
		goto done;
	}
	if ((r = wasp_memory_applier_new(mem, out->mem_size, 1, &ap)) < 0)
		goto done;
	while ((r = wasp_stream_read_record(rd, &rec)) > 0) {
		if (rec->body_case == WASP__RECORD__BODY_MEMORY) {
			r = wasp_memory_applier_submit(ap, rec);
			rec = NULL;
			if (r < 0)
				break;
		} else if (rec->body_case == WASP__RECORD__BODY_VCPU) {
			struct wasp_vstate vs;
			memset(&vs, 0, sizeof vs);
			r = wasp_vcpu_from_proto(rec->vcpu, &vs);
			wasp_vstate_free(&vs);
			if (r < 0)
				break;
		}
		if (rec)
			wasp__record__free_unpacked(rec, NULL);
		rec = NULL;
	}
	if (r == 0)
		r = wasp_memory_applier_finish(ap, &st);
	if (r == 0) {
		out->bytes = wasp_stream_reader_bytes(rd);
		/* Reading a big guest's untouched pages only costs time. */
		if (mem_crc && out->mem_size <= (16u << 20))
			out->mem_crc = wasp_crc32c(0, mem, out->mem_size);
	}
done:
	if (rec)
		wasp__record__free_unpacked(rec, NULL);
	wasp_memory_applier_free(ap);
	wasp_stream_reader_free(rd);
	if (mem != MAP_FAILED)
		munmap(mem, out->mem_size);
	out->r = fuzz_check_error(r, "decoding a checkpoint");
	snprintf(out->error, sizeof out->error, "%s", out->r < 0 ? wasp_last_error() : "");
}

void fuzz_check_outside(const char *outer, const char *secret, const char *who)
{
	DIR *d = opendir(outer);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			if (strcmp(e->d_name, "box") && strcmp(e->d_name, "secret.txt")) {
				fprintf(stderr, "%s: '%s' appeared beside the sandbox\n", who, e->d_name);
				abort();
			}
			n++;
		}
	if (d)
		closedir(d);
	char path[4200], buf[256] = {0};
	snprintf(path, sizeof path, "%s/secret.txt", outer);
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	if (n != 2 || len != strlen(secret) || strcmp(buf, secret)) {
		fprintf(stderr, "%s: the file outside the sandbox changed\n", who);
		abort();
	}
}
