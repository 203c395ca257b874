/*
 * tool_ckpt.h: where a checkpoint tool writes: a file replaced atomically
 * (a temporary file beside it, fsync, rename, fsync of the directory), or
 * stdout. Only public libwasp calls are behind the tools, so the tools keep
 * their own small copy of the atomic write (ckpt/ has one for its own
 * saves). On any failure before commit the earlier file is left as it was.
 */
#ifndef WASP_TOOL_CKPT_H
#define WASP_TOOL_CKPT_H

#include <stdbool.h>
#include <stddef.h>

struct tool_out {
	int fd;
	bool is_stdout;
	char *path; /* the final name (NULL for stdout) */
	char *tmp;  /* PATH.tmp.<pid>, removed unless committed */
};

/* Opens "-" (stdout, refused when it is a terminal) or a temporary file
 * beside `path` (O_EXCL, mode 0600: a checkpoint holds all of guest memory).
 * Returns 0, or -errno with a one-line reason in err. */
int tool_out_open(struct tool_out *o, const char *path, char *err, size_t cap);

/* fsync, rename over the final name, fsync the directory. 0 or -errno with err. */
int tool_out_commit(struct tool_out *o, char *err, size_t cap);

/* Removes the temporary file (async-signal-safe once opened). */
void tool_out_abort(struct tool_out *o);

#endif
