/*
 * fuzz.h: what the fuzz targets of tests/fuzz/ share.
 *
 * Each fuzz_*.c defines the libFuzzer entry point. The same file is built
 * twice: with clang -fsanitize=fuzzer (scripts/fuzz.sh, build-fuzz/), and
 * with the regular compiler against replay_main.c, which feeds it every
 * file under tests/fuzz/regressions/<target>/ and the generated seeds, so
 * ctest replays each input that ever broke something without libFuzzer.
 *
 * A target abort()s when the library broke a rule (an error without a
 * one-line message, a positive error code, a result that depends on how
 * the bytes were chunked): libFuzzer and the replay both report that.
 */
#ifndef WASP_FUZZ_H
#define WASP_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "vmm_parts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts unless r is 0 or more, or a negative errno with a one-line,
 * non-empty message in wasp_last_error(). Returns r. */
int fuzz_check_error(int r, const char *what);

/* A fresh empty directory under $TMPDIR (or /tmp), removed at exit. */
const char *fuzz_tmpdir(const char *tag);
/* A fresh outer directory (fuzz_tmpdir) holding box/ (the sandbox) and
 * secret.txt with `text`, which fuzz_check_outside() checks afterwards. */
void fuzz_sandbox(const char *tag, const char *text, char outer[4096], char box[4200],
		  char secret[4200]);
/* Links in box that lead out: up -> ../secret.txt, etc -> /etc, root -> /,
 * abs -> the secret's absolute path. */
void fuzz_box_links(const char *box, const char *secret);
/* The input layout of the call fuzzers (hypercall, syscall): a mode byte,
 * a count (at most max), that many calls of 56 bytes (number and six
 * arguments), then memory (at most mem_cap bytes). false: too short. */
struct fuzz_calls {
	uint8_t mode;
	size_t calls;
	const uint8_t *table, *mem;
	size_t mem_len;
};
bool fuzz_split_calls(const uint8_t *data, size_t size, size_t max, size_t mem_cap,
		      struct fuzz_calls *out);
/* Removes everything inside dir (not dir itself). */
void fuzz_empty_dir(const char *dir);
/* Nothing beside the sandbox changed: `outer` holds only box/ and
 * secret.txt, whose text is still `secret`; aborts (as `who`) otherwise. */
void fuzz_check_outside(const char *outer, const char *secret, const char *who);

/* What decoding a checkpoint gave: the result, the guest memory size, the
 * stream's bytes and, when asked for, the CRC-32C of guest memory once
 * applied (when r == 0 and the guest has at most 16 MiB). */
struct fuzz_decoded {
	int r;
	uint64_t mem_size;
	uint64_t bytes;
	uint32_t mem_crc;
	char error[256]; /* the decoder's message when r < 0 */
};

/* Decodes a whole checkpoint from src exactly as a restore reads it (the
 * stream reader, the memory applier, the vCPU record's conversion) but
 * into an anonymous mapping instead of a virtine, so no KVM is needed. */
void fuzz_decode(const struct wasp_source *src, struct fuzz_decoded *out, bool mem_crc);

#endif
