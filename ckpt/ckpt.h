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

#include "wasp_api.h"

#include "vmm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WASP_CKPT_VERSION_MAJOR 2
#define WASP_CKPT_VERSION_MINOR 0
/* What this wasp writes for a checkpoint without a Linux program: 1.1. */
#define WASP_CKPT_VERSION_MINOR_1 1

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
	/* Save only the pages dirtied since the checkpoint named parent_id,
	 * which must be the last one taken of this virtine with tracking on
	 * (see track_dirty). -ENOENT "no parent" otherwise. */
	bool incremental;
	const uint8_t *parent_id; /* 16 bytes, with incremental */
	/* Start (or keep) tracking dirty pages from this checkpoint on, so
	 * the next one can be incremental. Costs the guest a fault on the
	 * first write to each page after each checkpoint. */
	bool track_dirty;
	/* Full checkpoints only: store memory uncompressed, each run of pages
	 * page-aligned in the stream (formats/stream.md, "mappable"), so a
	 * restore from a local file maps guest memory copy-on-write instead of
	 * reading it (cost independent of guest size). Bigger on disk; still
	 * a valid stream for pipes and the network. */
	bool mappable;
	/* Bytes of the guest's written files (whole files, in the order it
	 * opened them) the checkpoint carries, so a restore can put back a
	 * file that changed in ways other than growing. 0:
	 * WASP_CKPT_CARRY_DEFAULT; < 0: none (a restore can then only cut
	 * back what was appended, and refuses the rest). */
	int64_t carry_files;
};

/* What a checkpoint carries of the guest's files by default: small ones
 * whole (docs/checkpoint-format.md, "Files"). */
#define WASP_CKPT_CARRY_DEFAULT (1u << 20)
/* ... and at most (whatever carry_files says): the host record is one
 * record of the stream, which a reader takes up to 64 MiB. */
#define WASP_CKPT_CARRY_MAX (32u << 20)

/* What a restore does with the files the guest wrote when they are not
 * as the checkpoint recorded them (docs/checkpoint-format.md, "Files"). */
enum wasp_files_policy {
	/* Put them back: cut what was appended after the checkpoint, rewrite
	 * from the checkpoint's bytes what changed otherwise; refuse, naming
	 * the file and changing none, when that cannot be done. */
	WASP_FILES_ROLLBACK = 0,
	/* Change nothing: refuse unless every file is as recorded. */
	WASP_FILES_STRICT,
	/* Take the files as they are (the caller put them back itself). */
	WASP_FILES_IGNORE,
};

/* Time (ns) and size of each phase, for tools and the benchmark. */
struct wasp_ckpt_stats {
	uint64_t capture_ns, compress_ns, write_ns, total_ns; /* save */
	uint64_t read_ns, decompress_ns, apply_ns;            /* restore (total_ns too) */
	uint64_t bytes;       /* stream size */
	uint64_t pages, zero_pages, chunks;
	uint64_t mapped_pages; /* restore: pages mapped from the file, not read */
	uint64_t raw_bytes;   /* bytes of the non-zero pages before compression */
	/* restore: fields this host accepted but did not restore (e.g. the TSC
	 * on PVM), as a comma-separated list; "" when everything round-tripped */
	char unrestored[256];
	uint8_t id[16];        /* save: the new checkpoint's id; restore: the last one's */
	bool incremental;      /* save: it was incremental */
	uint64_t files;        /* save: written files recorded */
	uint64_t file_bytes;   /* save: bytes of them read (summed or carried) */
	uint64_t files_ns;     /* save: time spent on them (part of capture_ns) */
	uint64_t files_put_back; /* restore: files cut back or rewritten */
	uint64_t files_unseen;   /* restore: files made after the checkpoint, hidden */
};

/* Saves a stopped virtine to a sink. */
WASP_API int wasp_ckpt_save(struct wasp_virtine *v, const struct wasp_save_opts *opts,
		   const struct wasp_sink *sink, struct wasp_ckpt_stats *stats);

/* Saves to `path` atomically: a temporary file beside it, fsync, rename,
 * fsync of the directory. A crash at any point leaves the old file whole. */
WASP_API int wasp_ckpt_save_file(struct wasp_virtine *v, const struct wasp_save_opts *opts,
			const char *path, struct wasp_ckpt_stats *stats);

/* Saves into a malloc'ed buffer the caller frees. */
WASP_API int wasp_ckpt_save_buffer(struct wasp_virtine *v, const struct wasp_save_opts *opts,
			  void **buf, size_t *len, struct wasp_ckpt_stats *stats);

/* A sink writing to a file descriptor (pipes, sockets, files). */
WASP_API struct wasp_sink wasp_sink_fd(int *fd);
/* A source reading a file descriptor. */
WASP_API struct wasp_source wasp_source_fd(int *fd);

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
	/* Read a mappable checkpoint file's memory instead of mapping it
	 * copy-on-write (wasp_ckpt_restore_file/_files only map). */
	bool no_map;
	/* Refuse a stream longer than this many bytes (each stream of a
	 * chain); 0: WASP_CKPT_MAX_STREAM_BYTES. docs/security.md. */
	uint64_t max_stream_bytes;
	/* The guest's written files that moved on since the checkpoint. */
	enum wasp_files_policy files;
};

/* The default bound on one checkpoint stream: 16 times the largest guest
 * (WASP_MEM_MAX), room for a live migration's pre-copy rounds, which may
 * send a page many times. Bounds the time a stream can keep a restore
 * busy; memory is bounded by the per-record limits. */
#define WASP_CKPT_MAX_STREAM_BYTES (64ull << 30)

/* Reads a whole checkpoint, checks every byte of it (magic, version,
 * lengths, addresses, checksum, this host's CPUID features, open files) and
 * only then returns a new virtine in the captured state, not running. */
WASP_API int wasp_ckpt_restore(const struct wasp_restore_opts *opts, const struct wasp_source *src,
		      struct wasp_virtine **out, struct wasp_ckpt_stats *stats);
WASP_API int wasp_ckpt_restore_file(const struct wasp_restore_opts *opts, const char *path,
			   struct wasp_virtine **out, struct wasp_ckpt_stats *stats);
WASP_API int wasp_ckpt_restore_buffer(const struct wasp_restore_opts *opts, const void *buf, size_t len,
			     struct wasp_virtine **out, struct wasp_ckpt_stats *stats);

/* Restores a chain: a full checkpoint followed by incremental ones, each
 * naming the one before as its parent (checked: a missing or mismatched
 * link is an error naming both ids). vCPU and host state come from the
 * last. Same guarantees as wasp_ckpt_restore(). */
WASP_API int wasp_ckpt_restore_chain(const struct wasp_restore_opts *opts,
			    const struct wasp_source *const *srcs, size_t n,
			    struct wasp_virtine **out, struct wasp_ckpt_stats *stats);
WASP_API int wasp_ckpt_restore_files(const struct wasp_restore_opts *opts, const char *const *paths,
			    size_t n, struct wasp_virtine **out, struct wasp_ckpt_stats *stats);

/* Writes one full checkpoint equal to the chain `srcs` (full first, each
 * naming the one before as its parent) to `sink`, without running the
 * guest: the chain's memory as the last link has it, its last host and
 * vCPU state. */
WASP_API int wasp_ckpt_merge(const struct wasp_source *const *srcs, size_t n,
			     const struct wasp_sink *sink, const struct wasp_save_opts *opts,
			     struct wasp_ckpt_stats *stats);
/* The same from files to the file `out_path` (atomically). */
WASP_API int wasp_ckpt_merge_files(const char *const *paths, size_t n, const char *out_path,
			  const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats);

/* ---- Live checkpoints (the stream of a live migration) -----------------
 * A full checkpoint written while the guest runs: all memory first, then
 * rounds of the pages dirtied meanwhile (a page may come several times;
 * readers apply chunks in stream order, so the last copy wins), and, with
 * the guest stopped, the last dirty pages, host and vCPU state and the end
 * record. The result restores like any checkpoint. */
struct wasp_live;

/* Starts tracking dirty pages and writes the header and all of memory.
 * The virtine may run meanwhile (on another thread). */
WASP_API int wasp_live_begin(struct wasp_virtine *v, const struct wasp_save_opts *opts,
		    const struct wasp_sink *sink, struct wasp_live **out);
/* Pages dirtied since the last round (or begin), without sending them. */
WASP_API int wasp_live_dirty_pages(struct wasp_live *l, uint64_t *pages);
/* Sends the pages dirtied since the last round; *pages gets their count
 * and *bytes the stream bytes it took. The guest may run. */
WASP_API int wasp_live_round(struct wasp_live *l, uint64_t *pages, uint64_t *bytes);
/* The guest must be stopped (its run returned): sends the last dirty
 * pages, host and vCPU state and the end record. Dirty tracking stays on
 * until wasp_live_free() so a failed migration can simply resume. */
WASP_API int wasp_live_finish(struct wasp_live *l, struct wasp_ckpt_stats *stats);
/* Stream bytes written so far. */
WASP_API uint64_t wasp_live_bytes(const struct wasp_live *l);
/* Stops tracking (unless it was on before begin) and frees. Accepts NULL. */
WASP_API void wasp_live_free(struct wasp_live *l);

/* What a checkpoint's header says, read without the rest of the stream. */
struct wasp_ckpt_info {
	uint8_t id[16];
	bool incremental;
	uint8_t parent_id[16]; /* with incremental */
	uint64_t mem_size;
};
WASP_API int wasp_ckpt_header_info(const struct wasp_source *src, struct wasp_ckpt_info *info);

/* Checks that infos[0..n) form a chain: a full checkpoint, then
 * incremental ones each naming the one before. 0, or -EINVAL with the
 * broken link named. */
WASP_API int wasp_ckpt_chain_check(const struct wasp_ckpt_info *infos, size_t n);

/* Decodes a checkpoint without restoring it and prints a description to
 * `out`: text, or one JSON object when json is set. Returns 0 when the
 * stream is whole and its checksum matches, a negative errno otherwise
 * (after printing what it could). */
WASP_API int wasp_ckpt_inspect(const struct wasp_source *src, bool json, FILE *out);

/* ---- Atomic files --------------------------------------------------------
 * The one writer behind every checkpoint file wasp makes (saves, merges,
 * wasp-ckpt's output, file:// migrations): a temporary file beside `path`
 * with a random name (PATH.tmp.<pid>.<16 hex>, O_EXCL, mode 0600, so
 * nobody can guess and plant it, nor read it), then commit (fsync, rename
 * over path, fsync the directory) or abort (unlink). Until the rename an
 * earlier file at path is untouched; a crash at any point leaves either it
 * (and perhaps the temporary file, swept by the next save) or the new one.
 *
 * The directory is opened once, by wasp_atomic_open(): the temporary file,
 * the rename and the directory's fsync all use that descriptor, so they
 * act on one directory even if a symlink on the way is changed or the
 * process changes its working directory meanwhile (a path with no slash
 * is in the working directory of the open). A symlink at path itself is
 * replaced, never followed. */
struct wasp_atomic_file {
	int fd;           /* write here; -1 once committed or aborted */
	char *path, *tmp; /* the final and the temporary name, as given */
	int dirfd;        /* the directory of both; -1 when not open */
	const char *name, *tmp_name; /* their last components (inside path, tmp) */
};
/* Opens path's directory (O_DIRECTORY: a directory that cannot be opened
 * could not be fsynced, so it is refused here, before any byte is
 * written), creates the temporary file in it and holds it
 * (wasp_ckpt_tmp_hold), then sweeps PATH's leftovers (wasp_ckpt_tmp_sweep).
 * A path that names a directory (existing, or ending in '/') is -EISDIR.
 * 0, or -errno with a message and *f reset (fd and dirfd -1, names NULL). */
WASP_API int wasp_atomic_open(const char *path, struct wasp_atomic_file *f);
/* fsync, close, rename, fsync the directory. 0 or -errno with a message.
 * A failure up to the rename removes the temporary file and leaves path as
 * it was. Only the directory's fsync comes after the rename: if it fails
 * the new file is in place and whole but may not survive a crash (so the
 * caller must not count on it), and that is reported. *f is reset either
 * way. */
WASP_API int wasp_atomic_commit(struct wasp_atomic_file *f);
/* Removes the temporary file. Accepts a committed or aborted one, and one
 * zeroed with fd -1 that was never opened. */
WASP_API void wasp_atomic_abort(struct wasp_atomic_file *f);
/* The same from a signal handler: only unlinkat(2), async-signal-safe;
 * *f is left as it is (no descriptor closed, nothing freed). */
WASP_API void wasp_atomic_abort_signal(const struct wasp_atomic_file *f);

/* ---- Temporary files of killed writers ---------------------------------
 * Checkpoint files are written as PATH.tmp.<pid>[.<hex>] and renamed over
 * PATH. A writer killed mid-write (SIGKILL, OOM) leaves that file behind;
 * every later save to PATH removes such leftovers (docs/hostile-guests.md). */

/* Marks fd, an open temporary checkpoint file, as being written: an flock
 * held until the file (every copy of the fd) is closed. 0 or -errno. */
WASP_API int wasp_ckpt_tmp_hold(int fd);
/* Removes PATH's temporary files whose writer is gone: its pid is not a
 * live process and nobody holds the file's flock. Best effort; returns how
 * many it removed. */
WASP_API int wasp_ckpt_tmp_sweep(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* WASP_CKPT_H */
