/*
 * ckpt.h: checkpoints of virtines, the one reader-facing header of ckpt/.
 *
 * A checkpoint is a stream (docs/checkpoint-format.md): the same bytes go
 * to a file, a pipe, a buffer or any sink, and are read back without
 * seeking. Saving needs the virtine stopped at an exit boundary (after a
 * run returned); restoring builds a new virtine and never runs it: the
 * caller resumes it with wasp_virtine_run().
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure, with one line in wasp_last_error(). A failed restore leaves
 * nothing behind; a failed file save leaves any earlier file at that path
 * as it was.
 */
#ifndef WASP_CKPT_H
#define WASP_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "vmm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WASP_CKPT_VERSION_MAJOR 1
#define WASP_CKPT_VERSION_MINOR 0

/* Where a checkpoint goes: write all of buf or fail (-errno). */
struct wasp_sink {
	int (*write)(void *ctx, const void *buf, size_t len);
	void *ctx;
};

/* Where a checkpoint comes from: up to len bytes, 0 at end, -errno. */
struct wasp_source {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	void *ctx;
};

struct wasp_save_opts {
	int threads;       /* compression threads; 0: one per online CPU (max 8) */
	int level;         /* zstd level; 0: 1 (fast) */
	size_t chunk_size; /* raw bytes per memory chunk; 0: 1 MiB (max 16 MiB) */
};

/* Time (ns) and size of each phase, for tools and the benchmark. */
struct wasp_ckpt_stats {
	uint64_t capture_ns, compress_ns, write_ns, total_ns; /* save */
	uint64_t read_ns, decompress_ns, apply_ns;            /* restore (total_ns too) */
	uint64_t bytes;       /* stream size */
	uint64_t pages, zero_pages, chunks;
	uint64_t raw_bytes;   /* bytes of the non-zero pages before compression */
	/* restore: fields this host accepted but did not restore (e.g. the TSC
	 * on PVM), as a comma-separated list; "" when everything round-tripped */
	char unrestored[256];
};

/* Saves a stopped virtine to a sink. */
int wasp_ckpt_save(struct wasp_virtine *v, const struct wasp_save_opts *opts,
		   const struct wasp_sink *sink, struct wasp_ckpt_stats *stats);

/* Saves to `path` atomically: a temporary file beside it, fsync, rename,
 * fsync of the directory. A crash at any point leaves the old file whole. */
int wasp_ckpt_save_file(struct wasp_virtine *v, const struct wasp_save_opts *opts,
			const char *path, struct wasp_ckpt_stats *stats);

/* Saves into a malloc'ed buffer the caller frees. */
int wasp_ckpt_save_buffer(struct wasp_virtine *v, const struct wasp_save_opts *opts,
			  void **buf, size_t *len, struct wasp_ckpt_stats *stats);

/* A sink writing to a file descriptor (pipes, sockets, files). */
struct wasp_sink wasp_sink_fd(int *fd);
/* A source reading a file descriptor. */
struct wasp_source wasp_source_fd(int *fd);

struct wasp_restore_opts {
	/* The virtine's config: sandbox_dir, console and stdin come from here,
	 * not from the checkpoint (they are this host's). mem_size is ignored:
	 * the checkpoint says. NULL: defaults. */
	const struct wasp_config *config;
	/* Hypercalls to allow instead of the checkpoint's list (NULL: keep). */
	const char *allow;
	int threads;    /* decompression threads; 0: as for save */
	/* Testing hook: pretend this host's KVM lacks these CPUID features
	 * ("leaf.reg.bit,..." e.g. "7.ebx.5"). NULL: none. */
	const char *simulate_missing_cpuid;
};

/* Reads a whole checkpoint, checks every byte of it (magic, version,
 * lengths, addresses, checksum, this host's CPUID features, open files) and
 * only then returns a new virtine in the captured state, not running. */
int wasp_ckpt_restore(const struct wasp_restore_opts *opts, const struct wasp_source *src,
		      struct wasp_virtine **out, struct wasp_ckpt_stats *stats);
int wasp_ckpt_restore_file(const struct wasp_restore_opts *opts, const char *path,
			   struct wasp_virtine **out, struct wasp_ckpt_stats *stats);
int wasp_ckpt_restore_buffer(const struct wasp_restore_opts *opts, const void *buf, size_t len,
			     struct wasp_virtine **out, struct wasp_ckpt_stats *stats);

/* Decodes a checkpoint without restoring it and prints a description to
 * `out`: text, or one JSON object when json is set. Returns 0 when the
 * stream is whole and its checksum matches, a negative errno otherwise
 * (after printing what it could). */
int wasp_ckpt_inspect(const struct wasp_source *src, bool json, FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* WASP_CKPT_H */
