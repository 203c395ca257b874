/*
 * control_proto.h: the line format of the runner's control socket
 * (docs/triggers.md), written once for both ends: the runner formats
 * replies and parses requests, the client (wasp-ckpt, wasp-migrate,
 * wasp_runner_connect and friends) formats requests and parses replies,
 * each with the same field names, escapes and number formats from here.
 * Not installed: the socket's protocol is documented, its code is not API.
 *
 * A message is one line of `word k=v k=v ...`; values that may hold
 * spaces or bytes outside printable ASCII are percent-encoded
 * (wasp_pct_encode). Text only: sockets, fds and timeouts stay with the
 * two ends. Lines here carry no trailing newline; wasp_ctl_frame() adds
 * it, the receiver cuts it with wasp_ctl_unframe().
 */
#ifndef WASP_CONTROL_PROTO_H
#define WASP_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner.h"

/* One request or reply, with its newline and NUL. */
#define WASP_CTL_MSG_MAX 4096

/* Requests without arguments. */
#define WASP_CTL_PING "ping"
#define WASP_CTL_COMMIT "commit"
#define WASP_CTL_ABORT "abort"
/* Request words that take `k=v` arguments. */
#define WASP_CTL_CHECKPOINT "checkpoint"
#define WASP_CTL_MIGRATE "migrate"
/* The refusal of a client of another user; the client tells it by this text. */
#define WASP_CTL_DENIED "permission denied"

/* ---- framing --------------------------------------------------------------- */

/* Makes `line` (NUL-terminated, in a buffer of cap bytes) one message: any
 * newline inside becomes a space, and one newline ends it (the text is cut
 * to make room). Returns its length. */
size_t wasp_ctl_frame(char *line, size_t cap);
/* A received message: cuts it at its newline. */
void wasp_ctl_unframe(char *line);

/* ---- errors ---------------------------------------------------------------- */

/* "error MSG". */
void wasp_ctl_format_error(char *buf, size_t cap, const char *msg);
/* The message of an "error MSG" line, or NULL when the line is not one. */
const char *wasp_ctl_parse_error(const char *line);

/* ---- ping -------------------------------------------------------------------- */

/* The answer to `ping`: "ok wasp-run pid=P name=N proto=V" (name NULL or
 * "": "-"). */
void wasp_ctl_format_pong(char *buf, size_t cap, int pid, const char *name);
/* Parses a pong into peer->pid and peer->name ("" for "-"); 0, or -EPROTO
 * when the line is not one (another program, or a bad pid or name). */
int wasp_ctl_parse_pong(const char *line, struct wasp_runner_peer *peer);

/* ---- checkpoint -------------------------------------------------------------- */

/* A `checkpoint` request as the runner reads it. */
struct wasp_ctl_checkpoint {
	bool stop, incremental, mappable;
	char to[256];   /* the destination for the log; "?" when it did not decode */
	char keep[256]; /* an absolute path, or "" */
	bool confirm;   /* a pipe whose reader commits (confirm=1) */
};

/* "checkpoint stop=S kind=K [format=mappable] [to=T] [keep=P] [confirm=1]". 0, or
 * -E2BIG when it does not fit in cap. */
int wasp_ctl_format_checkpoint(char *buf, size_t cap, const struct wasp_checkpoint_request *req);
/* Parses the arguments of a `checkpoint` request (the line after the
 * word; modified). 0, or -EINVAL with the reason for the client in bad. */
int wasp_ctl_parse_checkpoint(char *args, struct wasp_ctl_checkpoint *out, char *bad, size_t cap);

/* The `ok` answer to a checkpoint: bytes, ms, stopped, id, incremental and
 * kept of rep ("ok bytes=B ms=M [stopped=1] id=I kind=K [kept=P]"), and
 * with commit_wait " commit=wait": the client is to commit its file
 * (docs/triggers.md, "Stopping"). rep->committed is the client's own. */
void wasp_ctl_format_checkpoint_reply(char *buf, size_t cap,
				      const struct wasp_checkpoint_reply *rep, bool commit_wait);
/* Parses an `ok` answer to a checkpoint into *rep (committed untouched)
 * and *commit_wait. 0, or -EPROTO when the line is not one. */
int wasp_ctl_parse_checkpoint_reply(const char *line, struct wasp_checkpoint_reply *rep,
				    bool *commit_wait);

/* ---- migrate ----------------------------------------------------------------- */

/* A `migrate` request as the runner reads it: where to, and the options it
 * sets over the caller's defaults. */
struct wasp_ctl_migrate {
	char url[1024], token[512], ca_file[512], hold[256];
	struct wasp_migrate_opts mo; /* max_downtime_ns, max_rounds, bandwidth_limit */
	struct wasp_xfer_opts xo;    /* the timeouts, allow_plain_http */
	bool with_files;
};

/* "migrate url=U token=T ..." with the fields req sets (a 0 or NULL field
 * is left out). 0, or -E2BIG. The line holds the token: clear it after use. */
int wasp_ctl_format_migrate(char *buf, size_t cap, const struct wasp_migrate_request *req);
/* Parses the arguments of a `migrate` request into *out, over what it
 * holds already (the runner's defaults); only the fields the line names
 * change. 0, or -EINVAL with the reason for the client in bad. */
int wasp_ctl_parse_migrate(char *args, struct wasp_ctl_migrate *out, char *bad, size_t cap);

/* A progress line, "progress phase=P ...", with the fields of its phase:
 * "connected" id; "precopy" round, pages, bytes, dirty, dirty_rate, bw,
 * expected_ms, elapsed_ms; "stop" round, dirty, expected_ms; "commit"
 * none. id: the migration's ("" or NULL: "-"), for "connected" only. */
void wasp_ctl_format_progress(char *buf, size_t cap, const struct wasp_migrate_progress *p,
			      const char *id);
/* Parses a progress line into *p (p->phase points into phase, of cap
 * bytes). 1 when the line is one, 0 when it is not a progress line. */
int wasp_ctl_parse_progress(const char *line, struct wasp_migrate_progress *p, char *phase,
			    size_t cap);

/* The last line of a migration that began: "ok migrated ...", "fail held
 * ... hold=P saved=S msg=M" or "fail resumed ... msg=M" by rep->outcome. */
void wasp_ctl_format_migrate_reply(char *buf, size_t cap, const struct wasp_migrate_reply *rep);
/* Parses the last line of a migration into *rep. 0, or -EPROTO when the
 * line is not one (a progress or error line is not). */
int wasp_ctl_parse_migrate_reply(const char *line, struct wasp_migrate_reply *rep);

#endif
