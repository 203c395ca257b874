/*
 * fuzz_ckpt_restore: a checkpoint from a buffer through the whole
 * wasp_ckpt_restore_buffer() path into a real virtine on KVM: memory into
 * its memfd, the host record (files reopened in a sandbox directory,
 * hypercall policy, argument and return buffers), the CPUID check and the
 * vCPU applied with KVM's ioctls. A restore must either give a virtine or
 * a clean error; what it takes, the plain decoder must take too. The
 * restored virtine is not run (what a guest can do when it runs is the
 * hostile-guest tests' subject).
 *
 * Each input is restored a second time from a file (a memfd named by its
 * /proc path), the way wasp-restore FILE does: that path maps mappable
 * memory chunks instead of reading them (ckpt_stream.c try_map), and skips
 * the end record's checksum once it has mapped one, so it may take what the
 * buffer path refuses for its checksum, and nothing else.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>

#include "ckpt_stream.h"
#include "fuzz.h"

static struct wasp_config cfg;
static bool have_kvm;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	have_kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	if (!have_kvm)
		fprintf(stderr, "fuzz_ckpt_restore: no /dev/kvm: only decoding\n");
	wasp_config_init(&cfg);
	const char *dir = fuzz_tmpdir("restore");
	/* Files a checkpoint may name (the seeds' guests use these). */
	char path[4200];
	static const char *const names[] = {"in.txt", "out.txt", "counter.log"};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "w");
		if (f) {
			fputs("some bytes for a restored guest's file\n", f);
			fclose(f);
		}
	}
	cfg.sandbox_dir = dir;
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.no_stdin = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wasp_buffer_source b = {.buf = data, .len = size};
	struct wasp_source src = wasp_source_buffer(&b);
	struct fuzz_decoded d;
	fuzz_decode(&src, &d, false);
	if (!have_kvm)
		return 0;

	struct wasp_restore_opts ro = {.config = &cfg, .threads = 1};
	struct wasp_virtine *v = NULL;
	struct wasp_ckpt_stats st;
	int r = fuzz_check_error(wasp_ckpt_restore_buffer(&ro, data, size, &v, &st), "restore");
	if (r == 0) {
		if (!v || d.r < 0 || wasp_virtine_mem_size(v) != d.mem_size) {
			fprintf(stderr, "fuzz: restore took what the decoder refused (%s)\n",
				d.r < 0 ? "decode failed" : "another memory size");
			abort();
		}
		wasp_virtine_destroy(v);
	} else if (v) {
		fprintf(stderr, "fuzz: a failed restore left a virtine behind\n");
		abort();
	}

	/* The same bytes as a file. */
	int fd = memfd_create("fuzz-ckpt", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		struct wasp_virtine *fv = NULL;
		int fr = fuzz_check_error(wasp_ckpt_restore_file(&ro, path, &fv, &st), "restore a file");
		if (fr == 0) {
			bool crc_only = d.r < 0 && strstr(d.error, "checksum") && st.mapped_pages > 0;
			if (!fv || (d.r < 0 && !crc_only) ||
			    (d.r == 0 && wasp_virtine_mem_size(fv) != d.mem_size)) {
				fprintf(stderr, "fuzz: a file restore took what the decoder refused (%s)\n",
					d.r < 0 ? d.error : "another memory size");
				abort();
			}
			wasp_virtine_destroy(fv);
		} else if (fv) {
			fprintf(stderr, "fuzz: a failed file restore left a virtine behind\n");
			abort();
		}
	}
	close(fd);
	return 0;
}
