/*
 * migrate.h: taking a running virtine's state elsewhere, the one
 * reader-facing header of migrate/.
 *
 * Like the rest of libwasp, every function returns 0 (or a count) on
 * success and a negative errno on failure, with one line in
 * wasp_last_error(); none exits the process.
 *
 * Live migration (docs/migration.md) has three parts here: transports (a
 * small sink interface: HTTP(S) via libcurl, a file, a file descriptor),
 * the pre-copy engine that streams a running virtine into one, and the
 * receiver (an HTTP server via libmicrohttpd) that restores and starts
 * what arrives. The runner (runner.h) ties them to its control socket:
 * the `migrate` request of docs/triggers.md.
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

/* Longest virtine name: [A-Za-z0-9._-], not all digits, not starting with
 * '.' (runner.h names virtines; a receiver reports them as targets). */
#define WASP_RUNNER_NAME_MAX 64

/* Longest target a receiver reports for a migrated virtine (a name, a pid
 * or PID.N), with its NUL. */
#define WASP_TARGET_MAX (WASP_RUNNER_NAME_MAX + 1)

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

#ifdef __cplusplus
}
#endif
#endif /* WASP_MIGRATE_H */
