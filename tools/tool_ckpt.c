/*
 * tool_ckpt.c: the checkpoint tools' output file (tool_ckpt.h).
 */
#define _GNU_SOURCE
#include "tool_ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tool_out_open(struct tool_out *o, const char *path, char *err, size_t cap)
{
	memset(o, 0, sizeof *o);
	o->fd = o->file.fd = -1;
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
	int r = wasp_atomic_open(path, &o->file);
	if (r < 0) {
		snprintf(err, cap, "%s", wasp_last_error());
		return r;
	}
	o->fd = o->file.fd;
	return 0;
}

int tool_out_commit(struct tool_out *o, char *err, size_t cap)
{
	if (o->is_stdout)
		return 0;
	o->fd = -1;
	int r = wasp_atomic_commit(&o->file);
	if (r < 0)
		snprintf(err, cap, "%s", wasp_last_error());
	return r;
}

void tool_out_abort(struct tool_out *o)
{
	if (o->is_stdout)
		return;
	o->fd = -1;
	wasp_atomic_abort(&o->file);
}

void tool_out_abort_signal(const struct tool_out *o)
{
	if (!o->is_stdout)
		wasp_atomic_abort_signal(&o->file);
}
