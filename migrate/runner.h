/*
 * runner.h: running a virtine under a runner, and talking to one: the
 * reader-facing header of the runner (migrate/runner*.c) and of its
 * control socket's client (migrate/control_client.c). It sits on
 * migrate.h (transports, pre-copy, the receiver), which a migration
 * through the socket uses.
 *
 * The runner runs one virtine and, beside it, a control thread that turns
 * requests into checkpoints while the guest runs: SIGUSR1, the appearance
 * of a trigger file, a period, and a per-virtine unix control socket that
 * wasp-ckpt (and any program speaking docs/triggers.md) uses. The runner
 * pauses the vCPU at an exit boundary, saves it with ckpt/ on the vCPU's
 * own thread, and resumes it: the guest sees nothing. Its `migrate`
 * request moves the running virtine elsewhere (docs/migration.md).
 *
 * Like the rest of libwasp, every function returns 0 (or a count) on
 * success and a negative errno on failure, with one line in
 * wasp_last_error(); none exits the process.
 *
 * Threads: wasp_runner_run() runs the vCPU on the calling thread; the
 * control thread is the runner's own. Call create, run and destroy from the
 * same thread.
 *
 * Signals: with handle_sigusr1, SIGUSR1 must be blocked in every thread of
 * the process, or the kernel may deliver it to a thread that does not block
 * it and kill the process. wasp_runner_create() blocks it in the calling
 * thread before it starts its own thread (which inherits the mask); a
 * program with other threads blocks SIGUSR1 before it creates them (first
 * thing in main, as wasp-run does). wasp_runner_destroy() consumes any
 * SIGUSR1 still pending and restores the calling thread's mask.
 * SIGPIPE is blocked on the vCPU thread while a checkpoint is written, so a
 * reader that goes away fails the checkpoint (EPIPE) instead of killing
 * the process.
 */
#ifndef WASP_RUNNER_H
#define WASP_RUNNER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "wasp_api.h"

#include "ckpt.h"
#include "migrate.h"
#include "vmm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the control-socket protocol (docs/triggers.md). A server
 * answers `ping` with it; a change that an old client would misread bumps it. */
#define WASP_CONTROL_PROTO 2

/* Longest unix socket path (sizeof sun_path). */
#define WASP_RUNNER_PATH_MAX 108

struct wasp_runner;

struct wasp_runner_opts {
	/* Also listen as <run dir>/<name>.sock (a symlink to its socket).
	 * Refused when a live virtine holds the name; stale names are
	 * removed. NULL: only <pid>.sock. */
	const char *name;
	/* Directory of the control sockets; NULL: wasp_runner_dir()'s choice. */
	const char *run_dir;
	/* No control socket at all (embedders that only want the triggers). */
	bool no_socket;
	/* Not 0: one of several runners in this process, the socket is
	 * <pid>.<instance>.sock, and wasp-ckpt, wasp-migrate and the control
	 * protocol reach it as the target "PID.INSTANCE". Unique per process. */
	unsigned instance;
	/* Where SIGUSR1, the trigger file and the period write a checkpoint
	 * (atomically: a temporary file beside it, fsync, rename). Each
	 * checkpoint replaces the previous one. s3://BUCKET/KEY: an object,
	 * uploaded while it is captured and completed only when whole
	 * (docs/object-storage.md; s3_endpoint below). NULL: those triggers
	 * are refused (SIGUSR1 is logged and ignored). */
	const char *checkpoint_path;
	/* Its creation (or a rename onto it) asks for a checkpoint; a file
	 * already there at start counts too. The runner removes it once that
	 * checkpoint is written or has failed, so its disappearance tells a
	 * script the checkpoint is done. Its directory must exist. NULL: none. */
	const char *trigger_file;
	/* A checkpoint every this many ns of wall time; 0: none. */
	uint64_t checkpoint_every_ns;
	/* Stop the virtine after a successful checkpoint from SIGUSR1, the
	 * trigger file or the period (socket requests say so themselves). */
	bool stop_after_trigger;
	/* Listen for SIGUSR1 through a signalfd (see "Signals" above). */
	bool handle_sigusr1;
	/* Wall-clock limit of the whole run, checkpoints included; 0: none. */
	uint64_t timeout_ns;
	/* How checkpoints are compressed. The runner sets track_dirty on every
	 * checkpoint it takes (so the next may be incremental) and fills in
	 * incremental/parent_id itself. */
	struct wasp_save_opts save;
	/* The virtine's sandbox directory, what `migrate with_files=1` sends
	 * along (docs/migration.md). NULL: such migrations are refused. */
	const char *sandbox_dir;
	/* One line per checkpoint, taken or failed, e.g.
	 * "wasp-run: checkpoint 1 (SIGUSR1) to ck.wckpt: 1234 bytes in 5.2 ms".
	 * NULL: quiet. */
	FILE *log;
	/* Start of each log line; NULL: "wasp". */
	const char *log_prefix;

	/* Checkpoints at chosen points of the guest's run (docs/triggers.md),
	 * written to checkpoint_path (required) and logged like the others;
	 * stop_after_trigger applies. Each fires once. They use the virtine's
	 * tracer (vmm.h): one the caller set before wasp_runner_create() still
	 * gets its events. */
	bool checkpoint_at_set;          /* a breakpoint at checkpoint_at: */
	uint64_t checkpoint_at;          /* guest address (rip) */
	uint64_t checkpoint_at_count;    /* on its this-many-th hit; 0 is 1 */
	uint64_t checkpoint_after_exits; /* after this many KVM exits; 0: none */
	uint64_t checkpoint_after_hypercalls; /* after this many hypercalls; 0: none */

	/* With an s3:// checkpoint_path: the S3 endpoint, before
	 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and the profile's; NULL: those
	 * (else AWS). Credentials come as the AWS tools find them. */
	const char *s3_endpoint;
};

/* What one wasp_runner_run() ended with. */
struct wasp_runner_result {
	/* The virtine's last exit. WASP_EXIT_PAUSED only when stopped. */
	struct wasp_exit exit;
	/* The run ended because a checkpoint asked to stop the virtine. The
	 * virtine is intact and can be run again (e.g. when the move failed). */
	bool stopped;
	/* Where that last checkpoint went (a path, or what the client said). */
	char stopped_to[256];
	/* Checkpoints taken (successfully) during this run. */
	uint64_t checkpoints;
	/* With `stopped`: the virtine was migrated and runs at stopped_to (the
	 * receiver confirmed it). Do not run it here again. */
	bool migrated;
	/* With `stopped`: a migration's outcome is unknown (the whole stream
	 * went out, no answer came and the receiver could not be asked), so
	 * the virtine was held: saved to held_path (when held_saved) and not
	 * run again. It may be running at stopped_to; run the checkpoint only
	 * when it is known not to be. */
	bool held;
	bool held_saved;
	char held_path[256];
	/* With `stopped`, after a checkpoint into a pipe or socket (whose
	 * reader cannot confirm that it has the virtine safe): the local copy
	 * of the same state kept before stopping. "" otherwise. */
	char kept_path[256];
};

/* Sets every field of `o` to its default (everything off, socket on). */
WASP_API void wasp_runner_opts_init(struct wasp_runner_opts *o);

/* Prepares to run `v` (which stays the caller's): binds the control
 * socket(s), sets up the triggers and starts the control thread. Requests
 * that arrive before wasp_runner_run() wait for it. Returns 0 and sets *out;
 * -EADDRINUSE when the name is taken ("name X is in use by pid P"),
 * -EINVAL for options that do not fit together. */
WASP_API int wasp_runner_create(struct wasp_virtine *v, const struct wasp_runner_opts *o,
		       struct wasp_runner **out);

/* Runs the virtine on the calling thread until it exits, faults, times out,
 * makes a hypercall the caller must answer (hypercall_exits), or stops
 * after a checkpoint; checkpoints requested meanwhile are taken and the
 * guest resumed exactly where it was. Can be called again after a
 * WASP_EXIT_HYPERCALL or a stop. Returns 0 and fills *res, or a negative
 * errno when the host failed (as wasp_virtine_run()). Once the guest has
 * exited, faulted or timed out, requests fail with "the virtine has already
 * exited". */
WASP_API int wasp_runner_run(struct wasp_runner *r, struct wasp_runner_result *res);

/* Stops the control thread (answering every request still waiting: "the
 * virtine has stopped"), removes the socket files and restores the signal
 * mask. Does not destroy the virtine: destroy it after the runner, which
 * may still be pausing it. Accepts NULL. */
WASP_API void wasp_runner_destroy(struct wasp_runner *r);

/* The control socket paths: <dir>/<pid>.sock, and <dir>/<name>.sock or NULL.
 * NULL when there is no socket. Valid until destroy. */
WASP_API const char *wasp_runner_socket_path(const struct wasp_runner *r);
WASP_API const char *wasp_runner_name_path(const struct wasp_runner *r);

/* The directory control sockets live in, written to buf: $WASP_RUN_DIR if
 * set, else the first usable of /run/wasp, $XDG_RUNTIME_DIR/wasp and
 * /tmp/wasp-<uid>. Usable: a directory owned by this user and writable by
 * no one else. With `create`, a missing one is made (mode 0700, its parent
 * must exist); without, the first that exists is taken. -ENOENT or -EACCES
 * with a message when none will do. */
WASP_API int wasp_runner_dir(char *buf, size_t cap, bool create);

/* Checks a virtine name (see WASP_RUNNER_NAME_MAX). 0 or -EINVAL with a message. */
WASP_API int wasp_runner_name_valid(const char *name);

/* ---- The client side of the control socket ---------------------------- */

/* Who answered a connect. */
struct wasp_runner_peer {
	pid_t pid;
	char name[WASP_RUNNER_NAME_MAX + 1]; /* "" when it has none */
	char path[WASP_RUNNER_PATH_MAX];     /* the socket connected to */
};

/* Connects to the runner of a virtine: `target` is a pid (all digits) or a
 * name, looked up in wasp_runner_dir() (or the other usual directories when
 * $WASP_RUN_DIR is not set), and checks with `ping` that a runner answers.
 * timeout_ns bounds the exchange (0: none). Returns 0 with *sock (close it)
 * and *peer, or -errno with a message meant for a user: -ESRCH "no wasp-run
 * with pid 123", -ENOTSOCK "pid 123 is not a virtine (no control socket)",
 * -ENOENT "no virtine named foo", -EACCES, -ETIMEDOUT, -EPROTO. */
WASP_API int wasp_runner_connect(const char *target, uint64_t timeout_ns, int *sock,
			struct wasp_runner_peer *peer);

struct wasp_checkpoint_request {
	bool stop;        /* stop the virtine once the checkpoint is written */
	/* Only the pages dirtied since the last checkpoint this runner took
	 * (its parent). Refused ("no parent checkpoint: take a full one
	 * first") before the first, and after a migration attempt. */
	bool incremental;
	/* A full checkpoint with memory stored uncompressed and page-aligned,
	 * which a restore from a file maps instead of reading (ckpt.h). */
	bool mappable;
	const char *to;   /* what the destination is, for the runner's log; may be NULL */
	/* With stop, into a regular file: the runner writes and syncs it, then
	 * waits, guest paused, until the client has put the file where it
	 * belongs. `commit` does that (e.g. renames a temporary file into
	 * place) and returns 0, and only then does the virtine stop; -errno and
	 * it goes on. NULL: the file is already where it belongs. */
	int (*commit)(void *ctx);
	void *commit_ctx;
	/* With stop, into a pipe: where the runner keeps its local copy (an
	 * absolute path, < 256 bytes); NULL: its --checkpoint-path, else
	 * DIR/PID-held.wckpt beside its socket. */
	const char *keep;
	/* With stop, into a pipe whose reader confirms what it read through
	 * `commit` (wasp-ckpt -o s3://: the upload's completion): the runner
	 * closes its end once the checkpoint is written and waits for the
	 * commit, as for a file, instead of keeping a local copy. */
	bool confirm;
};

struct wasp_checkpoint_reply {
	uint64_t bytes;  /* size of the checkpoint */
	double ms;       /* time the guest stood still for it */
	bool stopped;    /* the virtine stopped after it */
	char id[33];     /* the checkpoint's id in hex ("" from an old runner) */
	bool incremental;
	/* stop into a pipe or socket: the runner's local copy of the state it
	 * carried (kept since the reader cannot confirm it has it), or "" */
	char kept[256];
	/* stop into a file: `commit` succeeded, so the file holds the virtine
	 * even when the runner's last answer was lost */
	bool committed;
};

/* Asks the runner on `sock` for a checkpoint written into `dest_fd` (a file,
 * a pipe or a socket: passed with SCM_RIGHTS, so it is the caller's to open
 * and the runner writes it directly) and waits for the answer (timeout_ns:
 * 0 none). With req->stop the virtine stops only once a durable copy is
 * known to exist: a file the caller committed (req->commit), or, for a
 * pipe, a local copy the runner keeps (rep->kept). Returns 0 with *rep
 * after "ok"; the runner's message with -EREMOTEIO for "error ..." (the
 * virtine goes on); a failed commit's own value; -ECONNRESET when the
 * connection closed before an answer (the runner died); -ETIMEDOUT. */
WASP_API int wasp_runner_request_checkpoint(int sock, const struct wasp_checkpoint_request *req,
				   int dest_fd, uint64_t timeout_ns,
				   struct wasp_checkpoint_reply *rep);

/* ---- Migrating through a runner's control socket ----------------------- */

struct wasp_migrate_request {
	/* http(s)://... or file:///PATH; with dest_fd >= 0, a description. */
	const char *url;
	const char *token;
	const char *ca_file;
	uint64_t max_downtime_ns, bandwidth_limit, commit_timeout_ns, query_timeout_ns;
	uint64_t stall_timeout_ns;
	unsigned max_rounds;
	bool with_files;
	/* The token may go over plain http:// to a non-loopback address
	 * (wasp_xfer_opts.allow_plain_http). */
	bool allow_plain_http;
	/* Where the runner saves the virtine when the outcome is unknown;
	 * NULL: the runner's choice (docs/triggers.md). */
	const char *hold_path;
};

enum wasp_migrate_outcome {
	WASP_MIGRATED = 0, /* it runs at the destination; gone here */
	WASP_MIGRATE_RESUMED, /* failed; it runs on at the source */
	WASP_MIGRATE_HELD,    /* unknown; held in a checkpoint at the source */
};

struct wasp_migrate_reply {
	enum wasp_migrate_outcome outcome;
	char id[33];
	char message[512];     /* why, for RESUMED and HELD */
	char hold_path[256];   /* HELD: the checkpoint (when saved) */
	bool hold_saved;
	unsigned rounds;
	uint64_t bytes, raw_bytes, file_bytes, final_pages;
	double total_ms, downtime_ms, precopy_ms, dirty_rate, bandwidth, expected_downtime_ms;
	double files_ms, finish_ms, commit_ms, settle_ms;
	char stop_reason[32];
	char round_pages[1024]; /* "a,b,c" */
	char remote_target[WASP_TARGET_MAX]; /* MIGRATED: its target at the receiver, or "" */
	uint64_t stopped_ns;   /* the source's stop, CLOCK_MONOTONIC (0: not stopped) */
};

/* One progress line as the runner sent it (`progress k=v ...`, parsed). */
struct wasp_migrate_progress {
	const char *phase;   /* "precopy", "stop", "commit", "query" */
	unsigned round;
	uint64_t pages, bytes, dirty_pages;
	double dirty_rate, bandwidth, expected_downtime_ms, elapsed_ms;
};

/* Asks the runner on `sock` to migrate its virtine (dest_fd >= 0: into
 * that fd) and waits for the outcome, calling `progress` for every
 * progress line. Returns 0 with *rep (whatever the outcome: see
 * rep->outcome); -EREMOTEIO when the runner refused the request (nothing
 * happened); -ECONNRESET when it died. Closing `sock` (e.g. by exiting)
 * during pre-copy cancels the migration. */
WASP_API int wasp_runner_request_migrate(int sock, const struct wasp_migrate_request *req, int dest_fd,
				void (*progress)(void *opaque, const struct wasp_migrate_progress *p),
				void *opaque, struct wasp_migrate_reply *rep);

#ifdef __cplusplus
}
#endif
#endif /* WASP_RUNNER_H */
