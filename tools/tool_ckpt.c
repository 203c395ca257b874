/*
 * tool_ckpt.c: the checkpoint tools' output file (tool_ckpt.h).
 */
#define _GNU_SOURCE
#include "tool_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"

int tool_out_open(struct tool_out *o, const char *path, char *err, size_t cap)
{
	struct stat st;

	memset(o, 0, sizeof *o);
	o->fd = -1;
	if (!strcmp(path, "-")) {
		if (isatty(STDOUT_FILENO)) {
			snprintf(err, cap, "refusing to write a checkpoint to a terminal "
					   "(redirect stdout or give -o FILE)");
			return -ENOTTY;
		}
		o->fd = STDOUT_FILENO;
		o->is_stdout = true;
		return 0;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, cap, "%s: is a directory", path);
		return -EISDIR;
	}
	o->path = strdup(path);
	if (!o->path || asprintf(&o->tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
		free(o->path);
		o->path = o->tmp = NULL;
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd < 0) {
		int e = errno;
		snprintf(err, cap, "%s: %s", o->tmp, strerror(e));
		free(o->path);
		free(o->tmp);
		o->path = o->tmp = NULL;
		return -e;
	}
	/* Held while anyone (this tool or the virtine it hands the fd to)
	 * still writes; leftovers of killed writers go. */
	wasp_ckpt_tmp_hold(o->fd);
	wasp_ckpt_tmp_sweep(path);
	return 0;
}

int tool_out_commit(struct tool_out *o, char *err, size_t cap)
{
	if (o->is_stdout)
		return 0;
	int e = 0;
	if (fsync(o->fd) < 0) {
		e = errno;
		snprintf(err, cap, "fsync %s: %s", o->tmp, strerror(e));
	} else if (close(o->fd) < 0) {
		e = errno;
		snprintf(err, cap, "close %s: %s", o->tmp, strerror(e));
	}
	o->fd = -1;
	if (!e && rename(o->tmp, o->path) < 0) {
		e = errno;
		snprintf(err, cap, "rename %s to %s: %s", o->tmp, o->path, strerror(e));
	}
	if (e) {
		tool_out_abort(o);
		return -e;
	}
	/* The rename is durable once the directory is. */
	char *dir = strdup(o->path), *slash = dir ? strrchr(dir, '/') : NULL;
	const char *d = !dir ? NULL : !slash ? "." : slash == dir ? "/" : (*slash = '\0', dir);
	int dfd = d ? open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
	free(o->tmp);
	o->tmp = NULL;
	return 0;
}

void tool_out_abort(struct tool_out *o)
{
	if (o->is_stdout)
		return;
	if (o->fd >= 0) {
		close(o->fd);
		o->fd = -1;
	}
	if (o->tmp)
		unlink(o->tmp);
}
