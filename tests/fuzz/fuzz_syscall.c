/*
 * fuzz_syscall: a Linux program's system-call layer (docs/linux.md) with
 * hostile arguments and memory, on a real virtine running a static
 * program (tests/linux/core/counter.c, loaded but never run: the calls
 * are made from here) whose file calls are confined to a sandbox.
 *
 * Input: a mode byte, a count (at most 16), that many calls (number and
 * six arguments, 8 bytes each, little-endian; the number taken modulo
 * 1024) and the rest as program memory at 0x1000000 (paths, buffers,
 * iovecs, timespecs the pointers may name). Mode bit 1 denies the file
 * and console groups (deny by default must hold). The run counts as
 * kicked throughout, so a call that would block or sleep gives way at
 * once, as it does for a pause.
 *
 * Checked after each input: every result is >= 0 or a negative errno;
 * the personality is still one a checkpoint could hold (it is set back
 * into the virtine, which re-checks every field); the directory around
 * the sandbox holds exactly the sandbox and an untouched file that
 * symlinks inside the sandbox point to.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "vmm_linux.h"

#define MEM (64u << 20)
#define DATA 0x1000000u
#define DATA_LEN (1u << 20)
#define MAX_CALLS 16
#define SECRET "the host's own file: no program may touch it\n"

#ifndef FUZZ_LX_PROG
#define FUZZ_LX_PROG "counter-glibc"
#endif

static struct wasp_virtine *v;
static char outer[4096], box[4200], secret[4200];
static const char *prog;

static void destroy(void)
{
	wasp_virtine_destroy(v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	prog = getenv("WASP_FUZZ_LXPROG") ? getenv("WASP_FUZZ_LXPROG") : FUZZ_LX_PROG;
	fuzz_sandbox("sys", SECRET, outer, box, secret);

	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = MEM;
	cfg.sandbox_dir = box;
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.stderr_fd = cfg.console_fd;
	cfg.no_stdin = true;
	if (access("/dev/kvm", R_OK | W_OK) || wasp_virtine_create(&cfg, &v) < 0) {
		fprintf(stderr, "fuzz_syscall: no virtine: %s\n", wasp_last_error());
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

/* The sandbox as each input starts: empty but for links that lead out. */
static void reset_box(void)
{
	fuzz_empty_dir(box);
	fuzz_box_links(box, secret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_calls in;
	if (!fuzz_split_calls(data, size, MAX_CALLS, DATA_LEN, &in))
		return 0;
	uint8_t mode = in.mode;
	size_t calls = in.calls, mem_len = in.mem_len;
	const uint8_t *table = in.table, *mem = in.mem;

	reset_box();
	const char *argv[] = {prog, NULL};
	if (fuzz_check_error(wasp_virtine_load_linux(v, prog, argv, NULL), "load") < 0)
		abort();
	if (fuzz_check_error(wasp_virtine_allow(v, mode & 2 ? "get_arg" : "all"), "allow") < 0)
		abort();
	memcpy(wasp_virtine_gpa_w(v, DATA, DATA_LEN), mem, mem_len);
	v->run->immediate_exit = 1; /* as if paused: nothing blocks or sleeps */
	for (size_t i = 0; i < calls; i++) {
		uint64_t nr = le64(table + 56 * i) % 1024, a[6];
		for (int k = 0; k < 6; k++)
			a[k] = le64(table + 56 * i + 8 + 8 * k);
		int64_t r = wasp_lx_dispatch(v, nr, a);
		if (r < -4095) {
			fprintf(stderr, "fuzz_syscall: call %llu returned %lld\n", (unsigned long long)nr,
				(long long)r);
			abort();
		}
	}
	v->run->immediate_exit = 0;
	struct wasp_linux_state st;
	if (wasp_virtine_linux_get(v, &st) < 0 ||
	    fuzz_check_error(wasp_virtine_linux_set(v, &st), "the personality after the calls") < 0) {
		fprintf(stderr, "fuzz_syscall: the calls left a personality no checkpoint could hold\n");
		abort();
	}
	/* Close what the calls opened, so the next input starts afresh. */
	for (unsigned fd = 0; fd < WASP_FIRST_FD + WASP_MAX_FILES; fd++) {
		const uint64_t c[6] = {fd};
		if (fd >= WASP_FIRST_FD)
			wasp_lx_dispatch(v, 3 /* close */, c);
	}
	fuzz_check_outside(outer, SECRET, "fuzz_syscall");
	return 0;
}
