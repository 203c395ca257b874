/*
 * migrate.h: taking a running virtine's state elsewhere, the one
 * reader-facing header of migrate/.
 *
 * The runner runs one virtine and, beside it, a control thread that turns
 * requests into checkpoints while the guest runs: SIGUSR1, the appearance
 * of a trigger file, a period, and a per-virtine unix control socket that
 * wasp-ckpt (and any program speaking docs/triggers.md) uses. The runner
 * pauses the vCPU at an exit boundary, saves it with ckpt/ on the vCPU's
 * own thread, and resumes it: the guest sees nothing.
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
#ifndef WASP_MIGRATE_H
#define WASP_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ckpt.h"
#include "vmm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the control-socket protocol (docs/triggers.md). A server
 * answers `ping` with it; a change that an old client would misread bumps it. */
#define WASP_CONTROL_PROTO 1

/* Longest virtine name: [A-Za-z0-9._-], not all digits, not starting with '.'. */
#define WASP_RUNNER_NAME_MAX 64

/* Longest unix socket path (sizeof sun_path). */
#define WASP_RUNNER_PATH_MAX 108

struct wasp_runner;

struct wasp_runner_opts {
	/* Also listen as <run dir>/<name>.sock (a symlink to <pid>.sock).
	 * Refused when a live virtine holds the name; stale names are
	 * removed. NULL: only <pid>.sock. */
	const char *name;
	/* Directory of the control sockets; NULL: wasp_runner_dir()'s choice. */
	const char *run_dir;
	/* No control socket at all (embedders that only want the triggers). */
	bool no_socket;
	/* Where SIGUSR1, the trigger file and the period write a checkpoint
	 * (atomically: a temporary file beside it, fsync, rename). Each
	 * checkpoint replaces the previous one. NULL: those triggers are
	 * refused (SIGUSR1 is logged and ignored). */
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
	/* How checkpoints are compressed. */
	struct wasp_save_opts save;
	/* One line per checkpoint, taken or failed, e.g.
	 * "wasp-run: checkpoint 1 (SIGUSR1) to ck.wckpt: 1234 bytes in 5.2 ms".
	 * NULL: quiet. */
	FILE *log;
	/* Start of each log line; NULL: "wasp". */
	const char *log_prefix;
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
};

/* Sets every field of `o` to its default (everything off, socket on). */
void wasp_runner_opts_init(struct wasp_runner_opts *o);

/* Prepares to run `v` (which stays the caller's): binds the control
 * socket(s), sets up the triggers and starts the control thread. Requests
 * that arrive before wasp_runner_run() wait for it. Returns 0 and sets *out;
 * -EADDRINUSE when the name is taken ("name X is in use by pid P"),
 * -EINVAL for options that do not fit together. */
int wasp_runner_create(struct wasp_virtine *v, const struct wasp_runner_opts *o,
		       struct wasp_runner **out);

/* Runs the virtine on the calling thread until it exits, faults, times out,
 * makes a hypercall the caller must answer (hypercall_exits), or stops
 * after a checkpoint; checkpoints requested meanwhile are taken and the
 * guest resumed exactly where it was. Can be called again after a
 * WASP_EXIT_HYPERCALL or a stop. Returns 0 and fills *res, or a negative
 * errno when the host failed (as wasp_virtine_run()). Once the guest has
 * exited, faulted or timed out, requests fail with "the virtine has already
 * exited". */
int wasp_runner_run(struct wasp_runner *r, struct wasp_runner_result *res);

/* Stops the control thread (answering every request still waiting: "the
 * virtine has stopped"), removes the socket files and restores the signal
 * mask. Does not destroy the virtine: destroy it after the runner, which
 * may still be pausing it. Accepts NULL. */
void wasp_runner_destroy(struct wasp_runner *r);

/* The control socket paths: <dir>/<pid>.sock, and <dir>/<name>.sock or NULL.
 * NULL when there is no socket. Valid until destroy. */
const char *wasp_runner_socket_path(const struct wasp_runner *r);
const char *wasp_runner_name_path(const struct wasp_runner *r);

/* The directory control sockets live in, written to buf: $WASP_RUN_DIR if
 * set, else the first usable of /run/wasp, $XDG_RUNTIME_DIR/wasp and
 * /tmp/wasp-<uid>. Usable: a directory owned by this user and writable by
 * no one else. With `create`, a missing one is made (mode 0700, its parent
 * must exist); without, the first that exists is taken. -ENOENT or -EACCES
 * with a message when none will do. */
int wasp_runner_dir(char *buf, size_t cap, bool create);

/* Checks a virtine name (see WASP_RUNNER_NAME_MAX). 0 or -EINVAL with a message. */
int wasp_runner_name_valid(const char *name);

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
int wasp_runner_connect(const char *target, uint64_t timeout_ns, int *sock,
			struct wasp_runner_peer *peer);

struct wasp_checkpoint_request {
	bool stop;        /* stop the virtine once the checkpoint is written */
	bool incremental; /* refused for now: only full checkpoints exist */
	const char *to;   /* what the destination is, for the runner's log; may be NULL */
};

struct wasp_checkpoint_reply {
	uint64_t bytes;  /* size of the checkpoint */
	double ms;       /* time the guest stood still for it */
	bool stopped;    /* the virtine stopped after it */
};

/* Asks the runner on `sock` for a checkpoint written into `dest_fd` (a file,
 * a pipe or a socket: passed with SCM_RIGHTS, so it is the caller's to open
 * and the runner writes it directly) and waits for the answer (timeout_ns:
 * 0 none). Returns 0 with *rep after "ok"; the runner's message with
 * -EREMOTEIO for "error ..."; -ECONNRESET when the connection closed before
 * an answer (the runner died); -ETIMEDOUT. */
int wasp_runner_request_checkpoint(int sock, const struct wasp_checkpoint_request *req,
				   int dest_fd, uint64_t timeout_ns,
				   struct wasp_checkpoint_reply *rep);

#ifdef __cplusplus
}
#endif
#endif /* WASP_MIGRATE_H */
