/*
 * migrate_internal.h: what the files of migrate/ share and nobody else
 * sees: the transport ops (one small sink interface with several backends,
 * as CRIU's page_xfer), the bounded byte queue between a producer and a
 * consumer thread, and small text helpers.
 */
#ifndef WASP_MIGRATE_INTERNAL_H
#define WASP_MIGRATE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migrate.h"
#include "vmm_parts.h"

/* ---- transports ---------------------------------------------------------- */

struct wasp_xfer_ops {
	const char *name;
	int (*write)(struct wasp_xfer *x, const void *buf, size_t len);
	/* NULL: -ENOTSUP */
	int (*send_files)(struct wasp_xfer *x, const char *dir, uint64_t *bytes);
	int (*commit)(struct wasp_xfer *x, enum wasp_xfer_verdict *v);
	/* NULL: UNKNOWN */
	int (*query)(struct wasp_xfer *x, enum wasp_xfer_verdict *v);
	/* NULL: settled once written */
	int (*settle)(struct wasp_xfer *x, uint64_t timeout_ns);
	void (*cancel)(struct wasp_xfer *x);
	void (*destroy)(struct wasp_xfer *x);
};

/* Every backend embeds this first. */
struct wasp_xfer {
	const struct wasp_xfer_ops *ops;
	struct wasp_xfer_opts o;
	char id[33];
	char what[512];
	char target[WASP_TARGET_MAX]; /* from the receiver's answer */
	uint64_t bytes;
	bool committed;
};

/* migrate_http.c */
int wasp_http_xfer_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_xfer **out);
/* curl_global_init, once per process; -EIO with curl's reason. */
int wasp_curl_ready(void);

/* migrate_s3.c: s3://BUCKET/KEY, written as a multipart upload and read
 * with parallel ranged GETs (docs/object-storage.md). */
#include <sys/types.h>
bool wasp_s3_url(const char *url);
int wasp_s3_xfer_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_xfer **out);
struct wasp_s3_get;
int wasp_s3_get_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_s3_get **out);
/* Up to len bytes, in order; 0 at the end; -errno with the reason. */
ssize_t wasp_s3_get_read(struct wasp_s3_get *g, void *buf, size_t len);
uint64_t wasp_s3_get_size(const struct wasp_s3_get *g);
/* Stops the workers and frees; -errno when a range failed. */
int wasp_s3_get_close(struct wasp_s3_get *g);
/* A fresh random migration id (32 hex digits). */
void wasp_migration_id(char out[33]);
bool wasp_migration_id_valid(const char *id);

/* migrate_auth.c: failed authentications at the receiver, per address
 * (IPv4, or IPv6 /64): counted, slowed down, logged at a bounded rate. */
#define WASP_AUTH_FREE_FAILURES 5       /* before an address waits its turn */
#define WASP_AUTH_INTERVAL_NS 1000000000ull /* then: one request looked at a second */
#define WASP_AUTH_MAX_WAIT_NS 2000000000ull /* a turn further away: 429 at once */
#define WASP_AUTH_FORGET_NS 60000000000ull  /* failures older than this are forgotten */
#define WASP_AUTH_LOG_BURST 10          /* log lines at once, */
#define WASP_AUTH_LOG_EVERY_NS 6000000000ull /* then one per 6 s */
struct sockaddr;
struct wasp_auth_limit;
/* free_failures 0: WASP_AUTH_FREE_FAILURES. NULL when out of memory. */
struct wasp_auth_limit *wasp_auth_limit_create(unsigned free_failures);
void wasp_auth_limit_free(struct wasp_auth_limit *a);
/* Before the token of a request from sa is looked at: how long (ns) it
 * must wait for its turn first, usually 0; or -1: refuse it now (429),
 * with *retry_ns until its turn. */
int64_t wasp_auth_limit_admit(struct wasp_auth_limit *a, const struct sockaddr *sa, uint64_t now,
			      uint64_t *retry_ns);
/* The token was right: the address's failures are forgotten. */
void wasp_auth_limit_ok(struct wasp_auth_limit *a, const struct sockaddr *sa);
/* The token was wrong or missing: counts it. True when this failure may
 * be logged; *unlogged is then how many were not since the last line. */
bool wasp_auth_limit_failed(struct wasp_auth_limit *a, const struct sockaddr *sa, uint64_t now,
			    unsigned long *unlogged);
/* The same budget, for other lines about it (a 429). */
bool wasp_auth_limit_log(struct wasp_auth_limit *a, uint64_t now, unsigned long *unlogged);

/* migrate_files.c: the bundle that carries a sandbox's files (format in
 * docs/migration.md). The writer is a pull source (for curl's read
 * callback); the reader a push sink (for the receiver's upload handler). */
struct wasp_bundle_writer;
int wasp_bundle_writer_open(const char *dir, struct wasp_bundle_writer **out);
/* Up to len bytes of the bundle; 0 at its end, -errno. */
ssize_t wasp_bundle_writer_read(struct wasp_bundle_writer *w, void *buf, size_t len);
uint64_t wasp_bundle_writer_bytes(const struct wasp_bundle_writer *w);
void wasp_bundle_writer_free(struct wasp_bundle_writer *w);

struct wasp_bundle_reader;
int wasp_bundle_reader_open(const char *dir, uint64_t max_bytes, struct wasp_bundle_reader **out);
int wasp_bundle_reader_push(struct wasp_bundle_reader *r, const void *buf, size_t len);
/* The body ended: checks it was whole and moves every file into place.
 * Returns the number of files, or -errno. */
int wasp_bundle_reader_finish(struct wasp_bundle_reader *r);
void wasp_bundle_reader_free(struct wasp_bundle_reader *r);

/* ---- a bounded byte queue -------------------------------------------------
 * One producer, one consumer, each on its own thread; never holds more
 * than `cap` bytes, so a fast producer waits for a slow consumer. Either
 * side can end it: the producer with close (a clean end: the consumer
 * reads 0 once empty) or either with fail (the other side's calls return
 * that error). */
struct wasp_bqueue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *buf;
	size_t cap, head, len;
	bool closed;     /* producer: no more data */
	bool eof_taken;  /* the consumer got its 0 after close */
	int err;         /* failed: -errno for both sides */
	char msg[256];   /* the failure's reason */
	uint64_t in, out; /* bytes put / taken so far */
};

/* *dl = CLOCK_MONOTONIC now + ns: a deadline for pthread_cond_timedwait on
 * a condition variable set to that clock. */
void wasp_deadline_in(struct timespec *dl, uint64_t ns);

int wasp_bqueue_init(struct wasp_bqueue *q, size_t cap);
void wasp_bqueue_destroy(struct wasp_bqueue *q);
/* Producer: blocks while full. 0, or the failure. */
int wasp_bqueue_put(struct wasp_bqueue *q, const void *buf, size_t len);
/* Producer: the data is complete. */
void wasp_bqueue_close(struct wasp_bqueue *q);
/* Either side: ends it with err (the first failure wins). */
void wasp_bqueue_fail(struct wasp_bqueue *q, int err, const char *msg);
/* Consumer: up to len bytes; blocks while empty and open. 0 at a clean
 * end; the failure otherwise. timeout_ns > 0: -ETIMEDOUT when nothing came. */
ssize_t wasp_bqueue_get(struct wasp_bqueue *q, void *buf, size_t len, uint64_t timeout_ns);
/* Consumer: like get, but never blocks (-EAGAIN when empty and open). */
ssize_t wasp_bqueue_try_get(struct wasp_bqueue *q, void *buf, size_t len);

/* ---- text ------------------------------------------------------------------ */

/* Percent-encodes bytes that may not stand raw in a control line. */
void wasp_pct_encode(const char *s, char *out, size_t cap);
/* Decodes %XX strictly: -EINVAL for a control byte, a bad escape or no room. */
int wasp_pct_decode(const char *s, char *out, size_t cap);
/* Writes s as a JSON string (with quotes) into out. */
void wasp_json_str(const char *s, char *out, size_t cap);
/* Finds "key":"value" (string) or "key":number in a flat JSON object.
 * Returns 1 found, 0 not. */
int wasp_json_get(const char *json, const char *key, char *out, size_t cap);

#endif
