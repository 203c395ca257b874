/*
 * tool_ckpt.h: where a checkpoint tool writes: a file replaced atomically
 * (libwasp's wasp_atomic_file: a temporary file with a random name beside
 * it, fsync, rename, fsync of the directory), or stdout. On any failure
 * before commit the earlier file is left as it was. And where it reads
 * one: a file, stdin, http(s):// or s3://.
 */
#ifndef WASP_TOOL_CKPT_H
#define WASP_TOOL_CKPT_H

#include <stdbool.h>
#include <stddef.h>

#include "ckpt.h"
#include "migrate.h"

struct tool_out {
	int fd;
	bool is_stdout;
	struct wasp_atomic_file file; /* the file case */
};

/* Opens "-" (stdout, refused when it is a terminal) or a temporary file
 * beside `path` (mode 0600: a checkpoint holds all of guest memory; a
 * directory is refused).
 * Returns 0, or -errno with a one-line reason in err. */
int tool_out_open(struct tool_out *o, const char *path, char *err, size_t cap);

/* fsync, rename over the final name, fsync the directory. 0 or -errno with err. */
int tool_out_commit(struct tool_out *o, char *err, size_t cap);

/* Removes the temporary file. */
void tool_out_abort(struct tool_out *o);

/* The same from a signal handler: only unlinkat(2), async-signal-safe
 * (wasp_atomic_abort_signal). */
void tool_out_abort_signal(const struct tool_out *o);

/* A checkpoint to read: a file, "-" (stdin), http(s)://URL (a GET) or
 * s3://BUCKET/KEY (ranged GETs). */
struct tool_src {
	int fd;                /* a file or stdin; -1 otherwise */
	struct wasp_fetch *f;  /* a URL; NULL otherwise */
	struct wasp_source src;
};

/* Whether `path` names a checkpoint to fetch (http://, https://, s3://). */
bool tool_src_is_url(const char *path);

/* Opens `path` (xo: the URL's options; NULL for defaults). Returns 0, or
 * -errno with a one-line reason in err. */
int tool_src_open(struct tool_src *s, const char *path, const struct wasp_xfer_opts *xo,
		  char *err, size_t cap);

/* Closes it: 0, or -errno when a download failed, its reason in
 * wasp_last_error() (it explains a failed read better than the reader's
 * "truncated"). */
int tool_src_close(struct tool_src *s);

#endif
