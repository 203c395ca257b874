/*
 * runner_internal.h: what the runner's files share and nobody else sees:
 * the runner itself (struct wasp_runner), its requests and clients, and
 * the functions one role calls in another. Who owns what:
 *
 *   runner.c            create, run, destroy; the vCPU thread's side of a
 *                       request (checkpoint, commit wait, local copy, the
 *                       final step of a migration)
 *   runner_control.c    the control thread: clients, the queue, the loop,
 *                       shutdown
 *   runner_migration.c  a `migrate` request: its pre-copy thread, progress
 *                       lines and last answer
 *   runner_triggers.c   SIGUSR1, the trigger file, the period, checkpoints
 *                       at chosen points
 *   runner_socket.c     where control sockets live and who may trust them;
 *                       binding, name links, one message on a socket
 *   control_client.c    the client side (wasp-ckpt, wasp-migrate)
 *   control_proto.c     the lines both ends write and read
 *
 * Threads: `inflight`, `done`, `state`, `quit` and `migrating` are shared
 * under `lock`; the rest belongs to one thread, as marked.
 *
 * Functions here are wasp_rn_*: hidden from libwasp.so like every internal
 * function, and prefixed because libwasp.a shows every non-static name to
 * the embedder's linker.
 */
#ifndef WASP_RUNNER_INTERNAL_H
#define WASP_RUNNER_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control_proto.h"
#include "migrate_internal.h"

#define MAX_CLIENTS 64     /* connections at once */
#define MAX_QUEUED 64      /* requests waiting for their checkpoint */
#define MSG_MAX WASP_CTL_MSG_MAX /* one request or reply */
#define PROBE_TIMEOUT_NS 2000000000ull /* answering a ping at start-up */

enum trigger { TRIG_SIGNAL, TRIG_FILE, TRIG_PERIOD, TRIG_SOCKET, TRIG_POINT };
/* For log lines, by trigger (runner_triggers.c). */
extern const char *const wasp_rn_trigger_names[];

enum vcpu_state { V_IDLE, V_RUNNING, V_ENDED };

struct client;

enum req_kind { REQ_CHECKPOINT, REQ_MIGRATE };

/* What a `migrate` request carries and what became of it. */
struct migration {
	char url[1024], token[512], ca_file[512], hold[256];
	struct wasp_migrate_opts mo;
	struct wasp_xfer_opts xo;
	bool with_files;
	int progress_fd;       /* a dup of the client's socket: progress lines */
	struct wasp_xfer *x;
	struct wasp_precopy *p;
	atomic_bool cancel;    /* the client went away during pre-copy */
	pthread_t thread;
	bool thread_started;   /* not joined yet */
	bool started;          /* the migration began (the answer is `ok`/`fail`) */
	enum wasp_migrate_outcome outcome;
	bool hold_saved;
	struct wasp_migrate_stats st;
};

struct request {
	struct request *next;
	unsigned long seq;     /* checkpoint number, for the log */
	enum trigger trig;
	enum req_kind kind;
	struct migration *mig; /* REQ_MIGRATE */
	bool incremental;
	bool mappable;
	char id[33];           /* the checkpoint taken */
	int fd;                /* destination (socket requests); -1: checkpoint_path */
	bool stop;
	bool queued;           /* control thread: still in the queue */
	atomic_bool cancel;    /* its client went away while it was being written */
	pid_t peer;            /* socket requests: the client's pid */
	char to[256];          /* the destination, for the log */
	char point[96];        /* TRIG_POINT: which point, for the log */
	struct client *client; /* control thread: who to answer; NULL once gone */
	/* the result, written by whoever finishes the request */
	int err;
	char msg[384];
	uint64_t bytes, ns;
	bool stopped, logged;
	struct wasp_runner *runner; /* REQ_MIGRATE: for its thread */
	/* stop=1 into a client's file: the guest stays paused until the client
	 * says the file is committed (docs/triggers.md, "Stopping"). */
	bool awaiting;         /* lock: the vCPU thread waits for the verdict */
	int verdict;           /* lock: 1 committed, -1 not (or the client went away) */
	bool told;             /* control thread: the client was asked to commit */
	char kept[256];        /* stop=1 into a pipe: where the local copy goes (keep=,
				* else wasp_rn_hold_path()); "" when none was kept */
	bool confirm;          /* stop=1 into a pipe whose reader commits (confirm=1) */
};

struct client {
	int fd;                /* -1: free slot */
	pid_t pid;
	struct request *req;   /* the request being answered, or NULL */
};

/* epoll tags; clients are CLIENT_TAG + slot. */
enum { TAG_WAKE = 1, TAG_SIGNAL, TAG_INOTIFY, TAG_TIMER, TAG_LISTEN, CLIENT_TAG = 16 };

struct wasp_runner {
	struct wasp_virtine *v;
	struct wasp_runner_opts o;
	char *name, *ckpt_path, *trigger_path, *trigger_base, *log_prefix;
	char sock_path[WASP_RUNNER_PATH_MAX], name_path[WASP_RUNNER_PATH_MAX];
	char sock_base[40]; /* <pid>[.<instance>]: the socket's file name less ".sock" */
	dev_t sock_dev;
	ino_t sock_ino;
	bool have_sock, have_name;

	int epfd, wakefd, sigfd, inofd, timerfd, lfd;
	int cancelfd; /* wakes a checkpoint write blocked on its destination */
	sigset_t old_mask;
	bool mask_set;
	pthread_t thread;
	bool thread_started;
	uint64_t start_ns; /* first run, for the timeout */

	pthread_mutex_t lock;
	pthread_cond_t verdict_cond;       /* a request's verdict came (lock) */
	struct request *migrating;         /* lock: the migration under way */
	struct request *inflight;          /* lock */
	struct request *done, **done_tail; /* lock */
	enum vcpu_state state;             /* lock */
	bool quit;                         /* lock */

	/* vCPU thread only: the last checkpoint, parent of an incremental one */
	uint8_t last_id[16];
	bool have_last;
	char *sandbox_dir;
	char *s3_endpoint; /* for an s3:// ckpt_path; NULL: the AWS order */

	/* control thread only */
	struct request *queue, **queue_tail;
	unsigned nqueued;
	unsigned long seq;
	bool sig_pending, file_pending, period_pending;
	struct client clients[MAX_CLIENTS];

	/* vCPU thread only: checkpoints at chosen points (the tracer's callback
	 * runs on the vCPU thread). The caller's own tracer is chained. */
	struct wasp_trace_opts user_trace;
	bool tracing;             /* our callback is the virtine's tracer */
	uint64_t n_exits, n_hypercalls;
	bool at_fired, exits_fired, hc_fired;
	char point[96];           /* set when a point was reached: take it */
};

/* ---- runner.c ---------------------------------------------------------------- */

/* *dst = a copy of src (NULL stays NULL). 0 or -ENOMEM with a message. */
int wasp_rn_copy_str(char **dst, const char *src);
/* The next checkpoint number; from either thread. */
unsigned long wasp_rn_next_seq(struct wasp_runner *r);
/* Wakes the control thread. */
void wasp_rn_wake(struct wasp_runner *r);
/* The request's log line, once. */
void wasp_rn_log_result(struct wasp_runner *r, struct request *q);
void wasp_rn_fail_request(struct request *q, int err, const char *msg);
/* A request of trigger t with no fd; NULL when out of memory. */
struct request *wasp_rn_new_request(enum trigger t);
/* Where a virtine stopped with no confirmed copy elsewhere is kept. */
void wasp_rn_hold_path(const struct wasp_runner *r, char *buf, size_t cap);
/* Hands q to the control thread (lock held). */
void wasp_rn_post_done(struct wasp_runner *r, struct request *q);

/* ---- runner_socket.c ----------------------------------------------------------- */

/* ms until the deadline (0: none, UINT64_MAX). */
uint64_t wasp_rn_remaining_ms(uint64_t deadline);
/* Sends one message (and an fd, if fd >= 0) on a SEQPACKET socket. 0 or -errno. */
int wasp_rn_send_msg(int sock, const char *line, int fd);
/* 0 when a runner may put its sockets in d (private to this user, ours
 * to write; created 0700 when missing and create); -errno, reason in why. */
int wasp_rn_dir_usable(const char *d, bool create, char *why, size_t cap);
/* 0 when a client may trust sockets in d (this user's or root's, written
 * by nobody else); -errno, reason in why. */
int wasp_rn_dir_trusted(const char *d, char *why, size_t cap);
/* The default socket directories, in order; returns how many. */
int wasp_rn_candidate_dirs(char dirs[3][PATH_MAX]);
/* Connects to a SEQPACKET socket by path; 0 with *out, or -errno. */
int wasp_rn_connect_path(const char *path, uint64_t deadline, int *out);
/* One reply message, newline cut. 0, -ECONNRESET at end of stream,
 * -ETIMEDOUT, -errno. */
int wasp_rn_recv_line(int s, char *buf, size_t cap, uint64_t deadline);
/* Pings a connected socket: 0 with *peer, -EACCES when refused, -EPROTO
 * when the answer is not a runner's, -ECONNRESET, -ETIMEDOUT. */
int wasp_rn_ping(int s, uint64_t deadline, struct wasp_runner_peer *peer, char *line, size_t cap);
/* Binds and listens on DIR/<pid>[.<instance>].sock (r->lfd). */
int wasp_rn_bind_pid_socket(struct wasp_runner *r, const char *dir);
/* Whether the name's symlink points at this runner's socket. */
bool wasp_rn_name_is_ours(const struct wasp_runner *r);
/* Links DIR/<name>.sock to the socket, unless a live runner holds it. */
int wasp_rn_link_name(struct wasp_runner *r, const char *dir);

/* ---- runner_triggers.c --------------------------------------------------------- */

/* A trigger fired (control thread): queues its checkpoint unless one is
 * on its way already. */
void wasp_rn_trigger(struct wasp_runner *r, enum trigger t);
void wasp_rn_read_signals(struct wasp_runner *r);
bool wasp_rn_trigger_file_exists(struct wasp_runner *r);
void wasp_rn_read_inotify(struct wasp_runner *r);
void wasp_rn_read_timer(struct wasp_runner *r);
/* The signalfd, the inotify watch and the timerfd the options ask for. */
int wasp_rn_setup_triggers(struct wasp_runner *r);
/* Checkpoints at chosen points (vCPU thread): wanted by o, armed (our
 * tracer in front of the caller's), disarmed (the caller's back). */
bool wasp_rn_points_wanted(const struct wasp_runner_opts *o);
int wasp_rn_points_arm(struct wasp_runner *r);
void wasp_rn_points_disarm(struct wasp_runner *r);

/* ---- runner_control.c ---------------------------------------------------------- */

/* Sends one line (in a buffer of MSG_MAX, framed here) to a client. */
void wasp_rn_client_send(struct wasp_runner *r, int slot, char *line);
/* Ends a request on the control thread: answer, log, clean up, free. */
void wasp_rn_finish_request(struct wasp_runner *r, struct request *q);
void wasp_rn_enqueue(struct wasp_runner *r, struct request *q);
/* The virtine can take no more checkpoints. */
bool wasp_rn_virtine_ended(struct wasp_runner *r);
/* The control thread. */
void *wasp_rn_control_main(void *arg);
/* Adds fd to the control thread's epoll set under tag. */
int wasp_rn_watch_fd(struct wasp_runner *r, int fd, uint64_t tag);

/* ---- runner_migration.c -------------------------------------------------------- */

void wasp_rn_migration_free(struct migration *m);
/* A progress line to the migration's client; never waits. */
void wasp_rn_progress_line(struct migration *m, const struct wasp_migrate_progress *p,
			   const char *id);
/* Gives up a migration in pre-copy (runner lock held). */
void wasp_rn_migration_cancel(struct migration *m);
/* The last line of a migration that began. */
void wasp_rn_migration_reply(struct wasp_runner *r, int slot, struct request *q);
/* Control thread: the migration's request is done; joins its thread. */
void wasp_rn_migration_end(struct wasp_runner *r, struct request *q);
/* Starts the pre-copy thread of q. */
void wasp_rn_start_migration(struct wasp_runner *r, struct request *q);
/* A `migrate` request's arguments into a new request; NULL with *bad set. */
struct request *wasp_rn_parse_migrate(struct wasp_runner *r, char *args, const char **bad,
				      char *badbuf, size_t cap);
/* Where a held virtine goes when the request names no place. */
void wasp_rn_default_hold(struct wasp_runner *r, struct migration *m);

#endif
