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
 *
 * Live migration (docs/migration.md) has three parts here: transports (a
 * small sink interface: HTTP(S) via libcurl, a file, a file descriptor),
 * the pre-copy engine that streams a running virtine into one, and the
 * receiver (an HTTP server via libmicrohttpd) that restores and starts
 * what arrives. The runner ties them to its control socket: the `migrate`
 * request of docs/triggers.md.
 */
#ifndef WASP_MIGRATE_H
#define WASP_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "wasp_api.h"

#include "ckpt.h"
#include "vmm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the control-socket protocol (docs/triggers.md). A server
 * answers `ping` with it; a change that an old client would misread bumps it. */
#define WASP_CONTROL_PROTO 2

/* Longest virtine name: [A-Za-z0-9._-], not all digits, not starting with '.'. */
#define WASP_RUNNER_NAME_MAX 64

/* Longest target a receiver reports for a migrated virtine (a name, a pid
 * or PID.N), with its NUL. */
#define WASP_TARGET_MAX (WASP_RUNNER_NAME_MAX + 1)

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


/* ---- Transports: where a migration stream goes ------------------------
 * One small interface (CRIU's page_xfer): write the stream, then commit,
 * which says what the destination made of it. Backends: HTTP(S) to a
 * `wasp-restore --listen` (libcurl, chunked POST, bearer token), a file
 * (file:///path, written atomically), and a file descriptor (a pipe,
 * stdout, a socket). docs/migration.md has the protocol. */

struct wasp_xfer;

/* What the destination did with a whole stream. */
enum wasp_xfer_verdict {
	/* It has the virtine: a receiver restored it and runs it; a file or fd
	 * holds the whole stream. The source must not run it again. */
	WASP_XFER_ACCEPTED = 0,
	/* It does not, and never will run it (a definite refusal, or the
	 * stream never went out whole). The source goes on. */
	WASP_XFER_REFUSED,
	/* The stream went out whole but no definite answer came back: the
	 * receiver may be running it. */
	WASP_XFER_UNKNOWN,
};

struct wasp_xfer_opts {
	const char *token;        /* HTTP: `Authorization: Bearer TOKEN`; NULL: none */
	const char *ca_file;      /* HTTPS: trust this CA bundle (PEM) too; NULL: system's */
	/* 32 hex digits naming this migration to the receiver; NULL: random. */
	const char *migration_id;
	uint64_t connect_timeout_ns; /* 0: 5 s */
	/* Fail when data waits to be sent but none has moved for this long
	 * (a silently cut link); 0: 10 s. */
	uint64_t stall_timeout_ns;
	/* How long to wait for the receiver's answer once the whole stream is
	 * sent; 0: 30 s. */
	uint64_t commit_timeout_ns;
	/* How long to keep asking a receiver whose answer was lost; 0: 10 s. */
	uint64_t query_timeout_ns;
	size_t queue_bytes;       /* HTTP: bounded buffer to the sender thread; 0: 4 MiB */
	/* HTTP: check first (GET /migrations) that the receiver is there, takes
	 * the token and is free, so a refusal costs no pre-copy. */
	bool preflight;
	/* HTTP: the token may go in clear text over http:// to any address.
	 * false: only to loopback addresses (127.0.0.0/8, ::1), checked on the
	 * address connected to; elsewhere the request is not sent and the
	 * transfer fails (docs/migration.md). https:// is never affected. */
	bool allow_plain_http;
	/* s3://: the endpoint (http[s]://HOST[:PORT]), before
	 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and the profile's endpoint_url;
	 * NULL: those, else AWS itself (docs/object-storage.md). */
	const char *s3_endpoint;
	unsigned s3_threads;  /* parallel part uploads and ranged GETs; 0: 4 (max 16) */
	size_t s3_part_size;  /* bytes a part and a range; 0: 8 MiB (5 MiB to 512 MiB) */
};

WASP_API void wasp_xfer_opts_init(struct wasp_xfer_opts *o);

/* Opens a transport for `url`: http://HOST:PORT[/], https://...,
 * file:///ABSOLUTE/PATH, or s3://BUCKET/KEY (a multipart upload that makes
 * the object appear at commit only, ACCEPTED once it has). HTTP: the preflight, then the stream's POST starts
 * on a thread of its own (its body is what wasp_xfer_write() gives it).
 * -EINVAL for an unknown scheme; -ECONNREFUSED, -EACCES (token refused),
 * -EBUSY (receiver busy), ... with a message. */
WASP_API int wasp_xfer_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_xfer **out);
/* A transport into an open fd (not closed by the transport). `what`
 * describes it in messages. Commit fsyncs a regular file. */
WASP_API int wasp_xfer_open_fd(int fd, const char *what, struct wasp_xfer **out);

/* Appends to the stream; thread-safe against wasp_xfer_cancel() only. */
WASP_API int wasp_xfer_write(struct wasp_xfer *x, const void *buf, size_t len);
/* A ckpt sink writing into the transport. */
WASP_API struct wasp_sink wasp_xfer_sink(struct wasp_xfer *x);
/* Sends the regular files under `dir` (the sandbox) before the stream
 * ends (HTTP only: PUT /migrations/ID/files). -ENOTSUP elsewhere. */
WASP_API int wasp_xfer_send_files(struct wasp_xfer *x, const char *dir, uint64_t *bytes);
/* Ends the stream and waits for the verdict (message in wasp_last_error()
 * for REFUSED and UNKNOWN). Returns 0 with *v, or -errno when called out
 * of turn. */
WASP_API int wasp_xfer_commit(struct wasp_xfer *x, enum wasp_xfer_verdict *v);
/* After UNKNOWN: asks the destination, a few times within
 * query_timeout_ns, whether it runs the virtine. *v: ACCEPTED, REFUSED, or
 * UNKNOWN when it cannot tell. */
WASP_API int wasp_xfer_query(struct wasp_xfer *x, enum wasp_xfer_verdict *v);
/* Waits, with the guest still running, until what was written has left
 * this host and the receiver has taken it in (HTTP: its restore has read
 * all but WASP_XFER_SETTLE_SLACK bytes of the stream), at most timeout_ns.
 * The pre-copy engine calls it before it stops the guest, so the stop
 * does not also wait out a backlog in queues and socket buffers. 0 when
 * settled (at once for a file or a pipe), -ETIMEDOUT when the receiver
 * is still behind, another -errno when the link failed. */
WASP_API int wasp_xfer_settle(struct wasp_xfer *x, uint64_t timeout_ns);
#define WASP_XFER_SETTLE_SLACK (64u << 10)

/* Gives up the stream (the destination sees it cut short). Safe from any
 * thread, also while another is blocked in write. Idempotent. */
WASP_API void wasp_xfer_cancel(struct wasp_xfer *x);
/* Stream bytes accepted by write so far. */
WASP_API uint64_t wasp_xfer_bytes(const struct wasp_xfer *x);
/* The migration id (32 hex digits; "" for file and fd transports). */
WASP_API const char *wasp_xfer_id(const struct wasp_xfer *x);
/* Once accepted: how the receiver says the virtine is reached there
 * (wasp_listener_set_target); "" when it did not say. */
WASP_API const char *wasp_xfer_target(const struct wasp_xfer *x);
/* Where it goes, for messages. */
WASP_API const char *wasp_xfer_what(const struct wasp_xfer *x);
/* Cancels if not committed, frees. Accepts NULL. */
WASP_API void wasp_xfer_free(struct wasp_xfer *x);

/* A checkpoint fetched over HTTP(S) (GET), as a ckpt source: curl runs on
 * its own thread and feeds a bounded buffer. s3://BUCKET/KEY: parallel
 * ranged GETs, handed on in order (o->s3_*). */
struct wasp_fetch;
WASP_API int wasp_fetch_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_fetch **out);
WASP_API struct wasp_source wasp_fetch_source(struct wasp_fetch *f);
/* Waits for the transfer; 0 when it was whole (HTTP 200), else -errno with
 * curl's or the server's reason. Frees. */
WASP_API int wasp_fetch_close(struct wasp_fetch *f);

/* ---- The pre-copy engine ---------------------------------------------- */

#define WASP_MIGRATE_MAX_ROUNDS 100

struct wasp_migrate_stats;

struct wasp_migrate_opts {
	uint64_t max_downtime_ns; /* stop-and-copy once it is expected to take this long; 0: 50 ms */
	unsigned max_rounds;      /* pre-copy passes, the first (all memory) included; 0: 30 */
	uint64_t bandwidth_limit; /* bytes/s into the transport; 0: none */
	struct wasp_save_opts save; /* compression (incremental/track_dirty ignored) */
	/* Send this directory's regular files along (wasp_xfer_send_files). */
	const char *files_dir;
	/* Called after each pre-copy pass, on the engine's thread. */
	void (*progress)(void *opaque, const struct wasp_migrate_stats *s);
	void *opaque;
	/* Becomes true (another thread): give up. Looked at during pre-copy
	 * only; once the guest is stopped, the commit decides. NULL: never. */
	const atomic_bool *cancel;
};

struct wasp_migrate_stats {
	unsigned rounds;            /* pre-copy passes (1: memory only) */
	uint64_t round_pages[WASP_MIGRATE_MAX_ROUNDS]; /* pages sent per pass (pass 1: guest pages) */
	uint64_t final_pages;       /* pages sent with the guest stopped */
	uint64_t bytes;             /* stream bytes */
	uint64_t raw_bytes;         /* page bytes those carried, uncompressed */
	uint64_t file_bytes;        /* --with-files */
	uint64_t dirty_pages;       /* dirty set at the last check */
	double dirty_rate;          /* pages/s dirtied during the last pass */
	double bandwidth;           /* bytes/s into the transport, measured */
	double expected_downtime_ms; /* the estimate that ended pre-copy */
	uint64_t precopy_ns, downtime_ns, total_ns;
	/* Of precopy_ns: waiting for the transport and the receiver to catch
	 * up before the stop (wasp_xfer_settle). */
	uint64_t settle_ns;
	/* The downtime split up: sending the files, the last pages and state,
	 * and waiting for the verdict (restore and start at the receiver). */
	uint64_t files_ns, finish_ns, commit_ns;
	/* Why pre-copy ended: "converged", "round limit", "no dirty pages". */
	const char *stop_reason;
	/* Migrated: how the receiver reaches it (wasp_xfer_target), or "". */
	char target[WASP_TARGET_MAX];
	/* When the guest stopped (wasp_now_ns(), CLOCK_MONOTONIC): against a
	 * receiver's resumed_mono_ns on the same machine, the guest's pause. */
	uint64_t stopped_ns;
};

struct wasp_precopy;

/* Starts a migration of `v` (running on another thread, or not at all)
 * into `x`: dirty tracking on, header and all memory sent. */
WASP_API int wasp_precopy_begin(struct wasp_virtine *v, const struct wasp_migrate_opts *o,
		       struct wasp_xfer *x, struct wasp_precopy **out);
/* Rounds of dirty pages while the guest runs, until the rest fits the
 * downtime target or the round limit. Returns 0 when it is time to stop
 * the guest; -ECANCELED when the cancel flag became true. */
WASP_API int wasp_precopy_iterate(struct wasp_precopy *p);
/* The guest stopped (its run returned): `stopped_ns` is when. Sends the
 * files (if asked), the last pages and state, commits, and on UNKNOWN
 * queries. Returns 0 with *v (the stream's fate, see enum), -errno when the
 * stream could not be finished (then the destination never has it:
 * *v = REFUSED). */
WASP_API int wasp_precopy_finish(struct wasp_precopy *p, uint64_t stopped_ns, enum wasp_xfer_verdict *v);
WASP_API const struct wasp_migrate_stats *wasp_precopy_stats(const struct wasp_precopy *p);
/* Stops dirty tracking and frees (not the transport). Accepts NULL. */
WASP_API void wasp_precopy_free(struct wasp_precopy *p);

/* ---- The receiver ------------------------------------------------------ */

struct wasp_listener;

struct wasp_listen_opts {
	/* Numeric address to bind (IPv4 or IPv6; "0.0.0.0" or "::" for every
	 * interface); NULL: 127.0.0.1 only. */
	const char *addr;
	unsigned port;      /* 0: any free one (wasp_listener_port says which) */
	const char *token;  /* required bearer token; NULL: no check */
	const char *tls_cert, *tls_key; /* PEM files: serve HTTPS */
	/* How each virtine is restored (config: sandbox, console, stdin). */
	struct wasp_restore_opts restore;
	/* Where `--with-files` files are written; NULL: refused. */
	const char *files_dir;
	/* Virtines to take; 0: no limit. After that, 409 to new migrations
	 * (status queries are still answered). */
	unsigned max_virtines;
	/* A virtine arrived whole and restored, not running: make it run (it
	 * is the callee's from here, even on failure) and return 0 once it
	 * does, or a negative errno (message in wasp_last_error()) to refuse;
	 * the source then keeps it. Called on a listener thread. */
	int (*start)(void *opaque, struct wasp_virtine *v, const char *id);
	void *opaque;
	FILE *log;               /* one line per event; NULL: quiet */
	const char *log_prefix;  /* NULL: "wasp" */
	/* Cut off a source that sends nothing for this long (libmicrohttpd's
	 * connection timeout, whole seconds); 0: WASP_LISTEN_IDLE_TIMEOUT_NS. */
	uint64_t idle_timeout_ns;
	/* Cut off a stream still arriving this long after its POST began;
	 * 0: WASP_LISTEN_STREAM_TIMEOUT_NS. The stream's size is bounded by
	 * restore.max_stream_bytes (a Content-Length beyond it gets 413 at
	 * once). A stream cut off for either is refused, with the reason in
	 * the log and in GET /migrations/ID; the listener goes on. */
	uint64_t stream_timeout_ns;
	/* Close a connection that has not sent a whole request with the
	 * token this long after it connected, however steadily it trickles
	 * (the idle timeout cannot see that); 0:
	 * WASP_LISTEN_HEADER_TIMEOUT_NS. */
	uint64_t header_timeout_ns;
	/* Connections at once from one address; 0:
	 * WASP_LISTEN_PER_ADDRESS_CONNECTIONS. */
	unsigned max_connections_per_address;
	/* Take a checkpoint whose id this listener has already started (a
	 * replay); by default it is refused with 409. */
	bool allow_replay;
	/* Failed authentications one address (IPv4, IPv6 /64) may make
	 * before its requests are taken one a second, in turn (429 to those
	 * that would wait longer than 2 s); 0: 5; UINT_MAX: never (fuzzing).
	 * Failures are logged at a bounded rate either way. */
	unsigned auth_free_failures;
	/* Tests only: "die-before-resume" (_exit after a whole restore),
	 * "drop-answer" (start it, then close without answering),
	 * "forget-answer" (refuse it, then close without answering). */
	const char *test_fault;
};

#define WASP_LISTEN_IDLE_TIMEOUT_NS (60ull * 1000000000)
#define WASP_LISTEN_STREAM_TIMEOUT_NS (30ull * 60 * 1000000000)
#define WASP_LISTEN_HEADER_TIMEOUT_NS (10ull * 1000000000)
#define WASP_LISTEN_PER_ADDRESS_CONNECTIONS 16u
/* Connections at once in all, and how many of them may be still without
 * a whole request with the token: a newer connection closes the oldest of
 * those beyond it, so the rest stay free for requests with the token. */
#define WASP_LISTEN_MAX_CONNECTIONS 256u
#define WASP_LISTEN_MAX_UNAUTHENTICATED 64u
/* Checkpoint ids a listener remembers having started (oldest forgotten). */
#define WASP_LISTEN_STARTED_IDS 4096u

WASP_API int wasp_listener_create(const struct wasp_listen_opts *o, struct wasp_listener **out);
WASP_API unsigned wasp_listener_port(const struct wasp_listener *l);
/* Records how a virtine the listener handed over ended ("exited",
 * "faulted", ...), for status queries. */
WASP_API void wasp_listener_set_status(struct wasp_listener *l, const char *id, const char *status);
/* How the virtine of migration `id` is reached on this host (a wasp-ckpt
 * TARGET: "4242", "job", "4242.1"); set by start() before it returns, it
 * goes to the source in the answer and status queries as "target". */
WASP_API void wasp_listener_set_target(struct wasp_listener *l, const char *id, const char *target);
/* Waits, at most timeout_ns, until the answer to migration `id` has been
 * handed to its connection. A receiver calls it between start() and
 * running the guest: on a busy host a woken thread can wait milliseconds
 * behind a running vCPU, and the source stands still until the answer. */
WASP_API void wasp_listener_wait_answered(struct wasp_listener *l, const char *id, uint64_t timeout_ns);
/* Stops serving and frees; waits for a migration in progress. Accepts NULL. */
WASP_API void wasp_listener_destroy(struct wasp_listener *l);

/* Compares two strings in time that depends on `expected`'s length only. */
WASP_API bool wasp_token_equal(const char *expected, const char *given);

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
#endif /* WASP_MIGRATE_H */
