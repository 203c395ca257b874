/*
 * fuzz_stream_chunks: the streaming path of the migration receiver. The
 * input's first bytes are a plan: the capacity of a bounded queue and the
 * sizes of the pieces the stream arrives in (1 byte to 64 KiB); the rest
 * is the stream. A producer thread puts the pieces into the same
 * wasp_bqueue the receiver's HTTP handler fills, and the decoder reads it
 * on this thread as the receiver's restore thread does (wasp_bqueue_get
 * behind a source), failing the queue when it gives up so the producer
 * never waits forever. The same bytes read from one buffer must give the
 * same result: the same error message, or the same memory.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_stream.h"
#include "fuzz.h"
#include "migrate_internal.h"

#define PLAN 16

struct producer {
	struct wasp_bqueue *q;
	const uint8_t *plan;
	const uint8_t *data;
	size_t len;
};

static size_t piece(uint8_t b)
{
	return b < 192 ? (size_t)b + 1 : (size_t)(b - 191) * 1024;
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	size_t off = 0;
	for (unsigned i = 0; off < p->len; i++) {
		size_t n = piece(p->plan[i % (PLAN - 1)]);
		if (n > p->len - off)
			n = p->len - off;
		if (wasp_bqueue_put(p->q, p->data + off, n) < 0)
			return NULL; /* the reader gave up */
		off += n;
	}
	wasp_bqueue_close(p->q);
	return NULL;
}

static ssize_t queue_read(void *ctx, void *buf, size_t len)
{
	struct wasp_bqueue *q = ctx;
	ssize_t n = wasp_bqueue_get(q, buf, len, 0);
	if (n < 0)
		return wasp_fail((int)n, "the queue failed");
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < PLAN)
		return 0;
	const uint8_t *plan = data;
	data += PLAN;
	size -= PLAN;

	struct wasp_buffer_source b = {.buf = data, .len = size};
	struct wasp_source whole_src = wasp_source_buffer(&b);
	struct fuzz_decoded whole, chunked;
	char whole_msg[512];
	fuzz_decode(&whole_src, &whole, true);
	snprintf(whole_msg, sizeof whole_msg, "%s", whole.r < 0 ? wasp_last_error() : "");

	struct wasp_bqueue q;
	size_t cap = 64 + (size_t)plan[0] * 61; /* small: the ring wraps often */
	if (wasp_bqueue_init(&q, cap) < 0)
		abort();
	struct producer p = {.q = &q, .plan = plan + 1, .data = data, .len = size};
	pthread_t t;
	if (pthread_create(&t, NULL, produce, &p))
		abort();
	struct wasp_source qsrc = {.read = queue_read, .ctx = &q};
	fuzz_decode(&qsrc, &chunked, true);
	if (chunked.r < 0)
		wasp_bqueue_fail(&q, chunked.r, "the restore failed");
	pthread_join(t, NULL);
	wasp_bqueue_destroy(&q);

	if (chunked.r != whole.r || chunked.bytes != whole.bytes ||
	    chunked.mem_crc != whole.mem_crc ||
	    (whole.r < 0 && strcmp(whole_msg, wasp_last_error()))) {
		fprintf(stderr,
			"fuzz: chunking changed the result:\n  whole:   %d %s\n  chunked: %d %s\n",
			whole.r, whole_msg, chunked.r, chunked.r < 0 ? wasp_last_error() : "");
		abort();
	}
	return 0;
}
