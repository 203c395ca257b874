/*
 * tool_ckpt.c: the checkpoint tools' output file and input (tool_ckpt.h).
 */
#define _GNU_SOURCE
#include "tool_ckpt.h"

#include <errno.h>
#include <fcntl.h>
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

bool tool_src_is_url(const char *path)
{
	return !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8) ||
	       !strncmp(path, "s3://", 5);
}

int tool_src_open(struct tool_src *s, const char *path, const struct wasp_xfer_opts *xo,
		  char *err, size_t cap)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	if (tool_src_is_url(path)) {
		int r = wasp_fetch_open(path, xo, &s->f);
		if (r < 0) {
			snprintf(err, cap, "%s", wasp_last_error());
			return r;
		}
		s->src = wasp_fetch_source(s->f);
		return 0;
	}
	s->fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	if (s->fd < 0) {
		int e = errno;
		snprintf(err, cap, "%s: %s", path, strerror(e));
		return -e;
	}
	s->src = wasp_source_fd(&s->fd);
	return 0;
}

int tool_src_close(struct tool_src *s)
{
	int r = 0;
	if (s->f)
		r = wasp_fetch_close(s->f);
	else if (s->fd > 0)
		close(s->fd);
	s->f = NULL;
	s->fd = -1;
	return r;
}
