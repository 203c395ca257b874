/*
 * fuzz_hypercall: the hypercall layer with hostile registers and guest
 * memory, on a real virtine (1 MiB) whose file hypercalls are confined to
 * a sandbox directory.
 *
 * Input: a mode byte, a count (at most 16), that many hypercalls (number
 * and six arguments, 8 bytes each, little-endian) and the rest as guest
 * memory placed at 0x20000 (paths, buffers, structures the pointers may
 * name). Mode bit 0 picks the path:
 *   0: the dispatcher is called directly (wasp_hc_dispatch, the function
 *      the run loop calls): fast, every handler, any 64-bit value;
 *   1: a guest (hcseq.asm) makes the calls itself through `out 0xFF` and
 *      the real run loop, which reads the registers from KVM, truncates
 *      them in 32-bit modes and writes the result back.
 * Mode bit 1 denies everything (deny by default must hold); otherwise all
 * hypercalls are allowed, so the handlers' own checks are what stands.
 *
 * Checked after each input: every result of a direct call is >= 0 or a
 * negative errno, a run through the guest ends without a host error; the
 * directory around the sandbox still holds exactly the sandbox and an
 * untouched file that a symlink inside the sandbox points to (escapes
 * through `..`, absolute paths and symlinks must all fail).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "vmm_internal.h"

#define MEM (1u << 20)
#define TABLE 0x9000
#define DATA 0x20000
#define MAX_CALLS 16
#define SECRET "the host's own file: no guest may touch it\n"

static struct wasp_virtine *v;
static char outer[4096], box[4200], secret[4200];
static void *image;
static size_t image_len;

static void *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	void *buf = malloc(4096);
	*len = buf ? fread(buf, 1, 4096, f) : 0;
	fclose(f);
	return buf;
}

static void destroy(void)
{
	wasp_virtine_destroy(v);
	free(image);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* hcseq.bin lies beside the binary (the build puts it there). */
	char self[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof path, "%s/hcseq.bin", self);
	image = read_all(getenv("WASP_FUZZ_HCSEQ") ? getenv("WASP_FUZZ_HCSEQ") : path, &image_len);
	(void)argc, (void)argv;
	if (!image || !image_len) {
		fprintf(stderr, "fuzz_hypercall: cannot read %s\n", path);
		abort();
	}
	fuzz_sandbox("hc", SECRET, outer, box, secret);

	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = MEM;
	cfg.sandbox_dir = box;
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.no_stdin = true;
	if (access("/dev/kvm", R_OK | W_OK) || wasp_virtine_create(&cfg, &v) < 0) {
		fprintf(stderr, "fuzz_hypercall: no virtine: %s\n", wasp_last_error());
		exit(77); /* the replay test skips without KVM */
	}
	atexit(destroy);
	return 0;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t x;
	memcpy(&x, p, 8);
	return x;
}

static void check_result(uint64_t nr, int64_t r)
{
	if (r < -4095) {
		fprintf(stderr, "fuzz_hypercall: hypercall %llu returned %lld\n",
			(unsigned long long)nr, (long long)r);
		abort();
	}
}

/* Puts the sandbox back as it starts: empty but for links that lead out. */
static void reset_box(void)
{
	for (unsigned fd = WASP_FIRST_FD; fd < WASP_FIRST_FD + WASP_MAX_FILES; fd++) {
		uint64_t a[6] = {fd};
		wasp_hc_close(v, a, NULL);
	}
	fuzz_empty_dir(box);
	fuzz_box_links(box, secret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_calls in;
	if (!fuzz_split_calls(data, size, MAX_CALLS, MEM - DATA, &in))
		return 0;
	uint8_t mode = in.mode;
	size_t calls = in.calls, mem_len = in.mem_len;
	const uint8_t *table = in.table, *mem = in.mem;

	reset_box();
	for (unsigned nr = 1; nr < WASP_HC_MAX; nr++)
		if (wasp_virtine_hypercall_name(v, nr))
			wasp_virtine_allow_nr(v, nr, !(mode & 2));

	if (!(mode & 1)) {
		uint8_t *g = wasp_virtine_gpa_w(v, DATA, MEM - DATA);
		memset(g, 0, MEM - DATA);
		memcpy(g, mem, mem_len);
		for (size_t i = 0; i < calls; i++) {
			uint64_t nr = le64(table + 56 * i), args[6];
			for (int k = 0; k < 6; k++)
				args[k] = le64(table + 56 * i + 8 + 8 * k);
			int64_t result = 0;
			if (wasp_hc_dispatch(v, nr, args, &result))
				check_result(nr, result);
		}
	} else {
		struct wasp_exit e;
		if (fuzz_check_error(wasp_virtine_load(v, image, image_len, 0, WASP_MODE_AUTO), "load") < 0)
			abort();
		uint8_t *t = wasp_virtine_gpa_w(v, TABLE, 8 + MAX_CALLS * 56);
		uint64_t count = calls;
		memcpy(t, &count, 8);
		memcpy(t + 8, table, calls * 56);
		memcpy(wasp_virtine_gpa_w(v, DATA, MEM - DATA), mem, mem_len);
		/* Any exit reason will do (a call may overwrite the guest's own
		 * code or table); the host failing will not. */
		int r = fuzz_check_error(wasp_virtine_run(v, 2000000000ull, &e), "run");
		if (r < 0) {
			fprintf(stderr, "fuzz_hypercall: the host failed: %s\n", wasp_last_error());
			abort();
		}
	}
	fuzz_check_outside(outer, SECRET, "fuzz_hypercall");
	return 0;
}
