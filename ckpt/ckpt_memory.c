/*
 * ckpt_memory.c: guest memory in and out of a checkpoint stream.
 *
 * Out: the caller's thread scans pages (zero pages cost a read, nothing
 * more), groups the rest into chunks and queues them; worker threads
 * compress and encode each chunk into its slot; the caller's thread writes
 * finished slots strictly in page order. Slots form a window of
 * 2 * threads chunks, so memory stays bounded whatever the guest size.
 *
 * A chunk of one contiguous range is compressed straight from guest
 * memory, and is compressed into its output buffer just behind room
 * reserved for the record's framing: the framing (varint length, record
 * and chunk tags, ranges, raw size) is then written in front of the data
 * by ckpt_pb.c, byte for byte what protobuf-c would pack (tests check
 * this), so compressed data is never copied between compressing and the
 * sink.
 *
 * Workers also compute each record's CRC-32C; the writer combines them, so
 * the caller's thread does little more than scan and hand bytes to the sink.
 *
 * In: worker threads decompress chunks straight into guest memory when a
 * chunk is one range, through a per-thread scratch buffer otherwise. Chunks
 * are applied as if in submission order: one that shares pages with a
 * chunk still in flight waits for it (a bitmap of in-flight pages), so a
 * stream that sends a page twice (pre-copy rounds) ends with the last copy.
 *
 * Errors on worker threads are kept as text and re-raised on the caller's
 * thread, since wasp_last_error() is per thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "ckpt_pb.h"
#include "ckpt_stream.h"
#include "vmm_parts.h" /* wasp_fail */

#define PAGE 4096u
#define MAX_THREADS 64
#define DEFAULT_THREADS 8
#define DEFAULT_CHUNK (1u << 20)
/* Zero ranges one chunk lists at most (keeps a record small: ~24 B each). */
#define MAX_ZERO_RANGES 4096
static int default_threads(int threads)
{
	if (threads > 0)
		return threads > MAX_THREADS ? MAX_THREADS : threads;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > DEFAULT_THREADS ? DEFAULT_THREADS : (int)n;
}

static bool page_is_zero(const uint8_t *p)
{
	uint64_t first;

	/* Non-zero pages nearly always differ in their first word. For the
	 * rest: the first word is zero and each byte equals the one 8 bytes
	 * on, so all are zero. glibc's vectorised memcmp stops at the first
	 * difference and reads ~2x faster than a loop of 64-bit ORs here. */
	memcpy(&first, p, sizeof first);
	return first == 0 && memcmp(p, p + 8, PAGE - 8) == 0;
}

/* ---- writing ---------------------------------------------------------- */

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct mw_slot {
	int state;
	uint64_t seq;
	struct wasp_pb_range *ranges, *zeros;
	size_t n_ranges, n_zeros;
	uint64_t pages;	 /* data pages */
	uint8_t *gather; /* the pages of a chunk of several ranges */
	uint8_t *out;
	size_t out_cap, frame_off, frame_len;
	uint32_t crc; /* of the frame */
	int err;
	char msg[200];
};

struct mw {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct mw_slot *slots;
	unsigned nslots;
	bool stop;
	const uint8_t *mem;
	int level;
	size_t chunk_size;
	/* No worker threads: the writer encodes each chunk itself (a few
	 * pages, as in a migration's last copy, cost less than a thread). */
	bool inline_only;
	ZSTD_CCtx *cctx;
};

static int slot_fail(struct mw_slot *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int slot_fail(struct mw_slot *s, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof s->msg, fmt, ap);
	va_end(ap);
	s->err = err;
	return err;
}

/* Compresses one chunk and frames it as a memory record in s->out. */
static int encode_chunk(struct mw *m, struct mw_slot *s, ZSTD_CCtx *cctx)
{
	size_t raw = (size_t)s->pages * PAGE, zero_bytes = 0;
	size_t bound = raw ? ZSTD_compressBound(raw) : 0, room, need, dlen;
	const uint8_t *src = NULL;
	bool none = false;

	if (s->n_ranges == 1) {
		src = m->mem + s->ranges[0].first * PAGE; /* no copy */
	} else if (s->n_ranges > 1) {
		uint8_t *g = s->gather;
		if (!g && !(g = s->gather = malloc(m->chunk_size)))
			return slot_fail(s, -ENOMEM, "out of memory for a memory chunk");
		for (size_t i = 0; i < s->n_ranges; i++) {
			memcpy(g, m->mem + s->ranges[i].first * PAGE, s->ranges[i].count * PAGE);
			g += s->ranges[i].count * PAGE;
		}
		src = s->gather;
	}
	for (size_t i = 0; i < s->n_zeros; i++)
		zero_bytes += wasp_pb_range_size(&s->zeros[i]);
	room = wasp_pb_chunk_head_max(s->ranges, s->n_ranges);
	need = room + (bound > raw ? bound : raw) + zero_bytes;
	if (need > s->out_cap) {
		free(s->out);
		s->out_cap = 0;
		if (!(s->out = malloc(need)))
			return slot_fail(s, -ENOMEM, "out of memory for a memory chunk");
		s->out_cap = need;
	}

	uint8_t *data = s->out + room;
	if (raw == 0) {
		none = true; /* only zero ranges */
		dlen = 0;
	} else {
		dlen = ZSTD_compressCCtx(cctx, data, bound, src, raw, m->level);
		if (ZSTD_isError(dlen))
			return slot_fail(s, -EIO, "zstd: %s", ZSTD_getErrorName(dlen));
		if (dlen >= raw) { /* incompressible: store it */
			memcpy(data, src, raw);
			dlen = raw;
			none = true;
		}
	}
	uint8_t *q = data + dlen;
	for (size_t i = 0; i < s->n_zeros; i++)
		q += wasp_pb_range_put(q, WASP_PB_TAG_CHUNK_ZERO_RANGES, &s->zeros[i]);

	/* The framing, in front of the data. */
	struct wasp_pb_chunk c = {.ranges = s->ranges,
				  .n_ranges = s->n_ranges,
				  .raw_size = raw,
				  .stored = none,
				  .data_len = dlen,
				  .tail = zero_bytes};
	size_t prefix = wasp_pb_chunk_head_size(&c);
	uint8_t *p = data - prefix;

	s->frame_off = (size_t)(p - s->out);
	s->frame_len = prefix + dlen + zero_bytes;
	p += wasp_pb_chunk_head_put(p, &c);
	if (p != data) /* cannot happen: the sizes above are the ones written */
		return slot_fail(s, -EFAULT, "memory record framing is %td bytes off", p - data);
	/* Checksummed here, in parallel; the writer only combines CRCs. */
	s->crc = wasp_crc32c(0, s->out + s->frame_off, s->frame_len);
	return 0;
}

static void *compress_worker(void *arg)
{
	struct mw *m = arg;
	ZSTD_CCtx *cctx = NULL;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		struct mw_slot *s = NULL;
		while (!m->stop) {
			for (unsigned i = 0; i < m->nslots; i++)
				if (m->slots[i].state == SLOT_QUEUED &&
				    (!s || m->slots[i].seq < s->seq))
					s = &m->slots[i];
			if (s)
				break;
			pthread_cond_wait(&m->work, &m->mu);
		}
		if (m->stop)
			break;
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&m->mu);

		s->err = 0;
		if (!cctx && !(cctx = ZSTD_createCCtx()))
			slot_fail(s, -ENOMEM, "out of memory for a zstd context");
		else
			encode_chunk(m, s, cctx);

		pthread_mutex_lock(&m->mu);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&m->done);
	}
	pthread_mutex_unlock(&m->mu);
	ZSTD_freeCCtx(cctx);
	return NULL;
}

struct mw_run {
	struct mw m;
	struct wasp_stream_writer *w;
	uint64_t seq, written; /* chunks queued, chunks written */
	uint64_t chunks;
};

/* Waits for the oldest queued chunk and writes it. */
static int flush_one(struct mw_run *run)
{
	struct mw *m = &run->m;
	struct mw_slot *s = &m->slots[run->written % m->nslots];
	int r;

	if (m->inline_only && s->state == SLOT_QUEUED) {
		s->err = 0;
		if (!m->cctx && !(m->cctx = ZSTD_createCCtx()))
			slot_fail(s, -ENOMEM, "out of memory for a zstd context");
		else
			encode_chunk(m, s, m->cctx);
		s->state = SLOT_DONE;
	}
	pthread_mutex_lock(&m->mu);
	while (s->state != SLOT_DONE)
		pthread_cond_wait(&m->done, &m->mu);
	pthread_mutex_unlock(&m->mu);
	if (s->err)
		return wasp_fail(s->err, "memory chunk %" PRIu64 ": %s", run->written, s->msg);
	r = wasp_stream_write_framed(run->w, s->out + s->frame_off, s->frame_len, s->pages, s->crc);
	if (r < 0)
		return r;
	run->chunks++;
	pthread_mutex_lock(&m->mu);
	s->state = SLOT_FREE;
	pthread_mutex_unlock(&m->mu);
	run->written++;
	return 0;
}

/* The slot for chunk run->seq, free and empty (writes older chunks first). */
static int next_slot(struct mw_run *run, struct mw_slot **out)
{
	struct mw_slot *s = &run->m.slots[run->seq % run->m.nslots];

	while (run->written + run->m.nslots <= run->seq) {
		int r = flush_one(run);
		if (r < 0)
			return r;
	}
	s->n_ranges = s->n_zeros = 0;
	s->pages = 0;
	*out = s;
	return 0;
}

static int queue_slot(struct mw_run *run, struct mw_slot **s)
{
	struct mw *m = &run->m;

	pthread_mutex_lock(&m->mu);
	(*s)->seq = run->seq++;
	(*s)->state = SLOT_QUEUED;
	pthread_cond_signal(&m->work);
	pthread_mutex_unlock(&m->mu);
	return next_slot(run, s);
}

int wasp_stream_write_memory(struct wasp_stream_writer *w, const uint8_t *mem, size_t size,
			     const uint64_t *pages, bool record_zero,
			     const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats)
{
	struct wasp_save_opts o = opts ? *opts : (struct wasp_save_opts){0};
	uint64_t t0 = wasp_now_ns(), npages = size / PAGE, carried = 0, zero = 0;
	struct mw_run run = {.w = w};
	struct mw *m = &run.m;
	pthread_t th[MAX_THREADS];
	int nth = default_threads(o.threads), started = 0, r = 0;
	size_t chunk_pages;
	struct mw_slot *s;

	if (size % PAGE)
		return wasp_fail(-EINVAL, "guest memory of %zu bytes is not whole pages", size);
	if (o.level == 0)
		o.level = 1;
	if (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel())
		return wasp_fail(-EINVAL, "zstd level %d is outside %d..%d", o.level,
				 ZSTD_minCLevel(), ZSTD_maxCLevel());
	if (o.chunk_size == 0)
		o.chunk_size = DEFAULT_CHUNK;
	if (o.chunk_size > WASP_STREAM_MAX_CHUNK_RAW)
		o.chunk_size = WASP_STREAM_MAX_CHUNK_RAW;
	chunk_pages = o.chunk_size / PAGE ? o.chunk_size / PAGE : 1;
	/* No more threads (and slot buffers) than the guest has chunks. */
	if ((uint64_t)nth > (npages + chunk_pages - 1) / chunk_pages)
		nth = npages ? (int)((npages + chunk_pages - 1) / chunk_pages) : 1;
	/* A set of pages that fits one chunk is encoded right here. */
	if (pages) {
		uint64_t n = 0;
		for (size_t i = 0; i < (npages + 63) / 64 && n <= chunk_pages; i++)
			n += (uint64_t)__builtin_popcountll(pages[i]);
		m->inline_only = n <= chunk_pages;
	}

	m->mem = mem;
	m->level = o.level;
	m->chunk_size = chunk_pages * PAGE;
	m->nslots = 2 * (unsigned)nth;
	m->slots = calloc(m->nslots, sizeof *m->slots);
	if (!m->slots)
		return wasp_fail(-ENOMEM, "out of memory for memory chunks");
	for (unsigned i = 0; i < m->nslots; i++) {
		m->slots[i].ranges = malloc(chunk_pages * sizeof(struct wasp_pb_range));
		if (record_zero)
			m->slots[i].zeros = malloc(MAX_ZERO_RANGES * sizeof(struct wasp_pb_range));
		if (!m->slots[i].ranges || (record_zero && !m->slots[i].zeros)) {
			r = wasp_fail(-ENOMEM, "out of memory for memory chunks");
			goto out_slots;
		}
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->work, NULL);
	pthread_cond_init(&m->done, NULL);
	for (; !m->inline_only && started < nth; started++) {
		int e = pthread_create(&th[started], NULL, compress_worker, m);
		if (e) {
			r = wasp_fail(-e, "starting a compression thread: %s", strerror(e));
			goto out_threads;
		}
	}

	r = next_slot(&run, &s);
	for (uint64_t p = 0; r == 0 && p < npages;) {
		if (pages) {
			uint64_t word = pages[p / 64] >> (p % 64);
			if (!word) {
				p = (p / 64 + 1) * 64;
				continue;
			}
			p += (uint64_t)__builtin_ctzll(word);
			if (p >= npages)
				break;
		}
		if (!page_is_zero(mem + p * PAGE)) {
			struct wasp_pb_range *last =
			    s->n_ranges ? &s->ranges[s->n_ranges - 1] : NULL;
			if (last && last->first + last->count == p)
				last->count++;
			else
				s->ranges[s->n_ranges++] = (struct wasp_pb_range){p, 1};
			s->pages++;
			carried++;
			if (s->pages == chunk_pages)
				r = queue_slot(&run, &s);
		} else {
			zero++;
			if (record_zero) {
				struct wasp_pb_range *last =
				    s->n_zeros ? &s->zeros[s->n_zeros - 1] : NULL;
				if (last && last->first + last->count == p) {
					last->count++;
				} else {
					if (s->n_zeros == MAX_ZERO_RANGES &&
					    (r = queue_slot(&run, &s)) < 0)
						break;
					s->zeros[s->n_zeros++] = (struct wasp_pb_range){p, 1};
				}
			}
		}
		p++;
	}
	if (r == 0 && (s->n_ranges || s->n_zeros)) {
		pthread_mutex_lock(&m->mu);
		s->seq = run.seq++;
		s->state = SLOT_QUEUED;
		pthread_cond_signal(&m->work);
		pthread_mutex_unlock(&m->mu);
	}
	while (r == 0 && run.written < run.seq)
		r = flush_one(&run);

out_threads:
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_broadcast(&m->work);
	pthread_mutex_unlock(&m->mu);
	while (started > 0)
		pthread_join(th[--started], NULL);
	pthread_cond_destroy(&m->done);
	pthread_cond_destroy(&m->work);
	pthread_mutex_destroy(&m->mu);
out_slots:
	for (unsigned i = 0; i < m->nslots; i++) {
		free(m->slots[i].ranges);
		free(m->slots[i].zeros);
		free(m->slots[i].gather);
		free(m->slots[i].out);
	}
	free(m->slots);
	ZSTD_freeCCtx(m->cctx);
	if (r == 0 && stats) {
		stats->pages += carried;
		stats->zero_pages += zero;
		stats->chunks += run.chunks;
		stats->raw_bytes += carried * PAGE;
		stats->compress_ns += wasp_now_ns() - t0;
	}
	return r;
}

/* ---- memfd holes -------------------------------------------------------
 * Reading a page of a memfd that was never written allocates it (shmem has
 * no shared zero page): scanning a 256 MiB guest that touched one page
 * costs ~200 ms and leaves 256 MiB allocated. SEEK_DATA/SEEK_HOLE name the
 * written pages without touching any. */

int wasp_memfd_data_pages(int fd, size_t size, uint64_t **out)
{
	size_t npages = size / PAGE, words = (npages + 63) / 64;
	uint64_t *bm = calloc(words ? words : 1, sizeof *bm);
	off_t saved = lseek(fd, 0, SEEK_CUR), pos = 0;
	int r = 0;

	*out = NULL;
	if (!bm)
		return wasp_fail(-ENOMEM, "out of memory for a page bitmap");
	while ((uint64_t)pos < size) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;
		if (d < 0 && errno == ENXIO)
			break; /* only holes from pos on */
		if (d < 0 || (h = lseek(fd, d, SEEK_HOLE)) < 0) {
			r = wasp_fail(-errno, "finding the data in guest memory: %s",
				      strerror(errno));
			break;
		}
		if ((uint64_t)d >= size)
			break;
		if ((uint64_t)h > size)
			h = (off_t)size;
		for (uint64_t p = (uint64_t)d / PAGE;
		     p < ((uint64_t)h + PAGE - 1) / PAGE && p < npages; p++)
			bm[p / 64] |= 1ull << (p % 64);
		pos = h;
	}
	if (saved >= 0)
		lseek(fd, saved, SEEK_SET);
	if (r < 0) {
		free(bm);
		return r;
	}
	*out = bm;
	return 0;
}

/* ---- applying --------------------------------------------------------- */

struct applier_item {
	Wasp__Record *rec;
	uint64_t n; /* chunk number, for messages */
};

struct applier_thread {
	struct wasp_memory_applier *a;
	pthread_t th;
	ZSTD_DCtx *dctx;
	uint8_t *scratch;
	size_t scratch_cap;
	char msg[200];
};

struct wasp_memory_applier {
	uint8_t *mem;
	size_t mem_size;
	pthread_mutex_t mu;
	pthread_cond_t work, space, idle;
	struct applier_item *q;
	size_t qcap, qhead, qlen;
	unsigned active; /* items being applied */
	uint64_t *busy;	 /* pages of queued and active items */
	struct applier_thread *t;
	int nth;
	bool stop, finished;
	int err;
	char msg[256];
	uint64_t submitted, t_first;
};

static void bits_apply(uint64_t *bm, uint64_t first, uint64_t count, bool set)
{
	for (uint64_t p = first, end = first + count; p < end;) {
		uint64_t bit = p % 64, n = end - p < 64 - bit ? end - p : 64 - bit;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
		if (set)
			bm[p / 64] |= mask;
		else
			bm[p / 64] &= ~mask;
		p += n;
	}
}

static bool bits_any(const uint64_t *bm, uint64_t first, uint64_t count)
{
	for (uint64_t p = first, end = first + count; p < end;) {
		uint64_t bit = p % 64, n = end - p < 64 - bit ? end - p : 64 - bit;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
		if (bm[p / 64] & mask)
			return true;
		p += n;
	}
	return false;
}

static void chunk_bits(uint64_t *bm, const Wasp__MemoryChunk *c, bool set)
{
	for (size_t i = 0; i < c->n_ranges; i++)
		bits_apply(bm, c->ranges[i]->first, c->ranges[i]->count, set);
	for (size_t i = 0; i < c->n_zero_ranges; i++)
		bits_apply(bm, c->zero_ranges[i]->first, c->zero_ranges[i]->count, set);
}

static bool chunk_busy(const uint64_t *bm, const Wasp__MemoryChunk *c)
{
	for (size_t i = 0; i < c->n_ranges; i++)
		if (bits_any(bm, c->ranges[i]->first, c->ranges[i]->count))
			return true;
	for (size_t i = 0; i < c->n_zero_ranges; i++)
		if (bits_any(bm, c->zero_ranges[i]->first, c->zero_ranges[i]->count))
			return true;
	return false;
}

static void scatter(uint8_t *mem, const Wasp__MemoryChunk *c, const uint8_t *src)
{
	for (size_t i = 0; i < c->n_ranges; i++) {
		size_t len = c->ranges[i]->count * PAGE;
		memcpy(mem + c->ranges[i]->first * PAGE, src, len);
		src += len;
	}
}

/* Applies one checked chunk. 0, or -errno with t->msg. */
static int apply_chunk(struct applier_thread *t, const Wasp__MemoryChunk *c, uint64_t n)
{
	uint8_t *mem = t->a->mem;
	size_t raw = c->raw_size, got;
	unsigned long long fcs;

	for (size_t i = 0; i < c->n_zero_ranges; i++)
		memset(mem + c->zero_ranges[i]->first * PAGE, 0, c->zero_ranges[i]->count * PAGE);
	if (raw == 0)
		return 0;
	if (c->has_codec && c->codec == WASP__MEMORY_CHUNK__CODEC__NONE) {
		scatter(mem, c, c->data.data);
		return 0;
	}
	fcs = ZSTD_getFrameContentSize(c->data.data, c->data.len);
	if (fcs == ZSTD_CONTENTSIZE_ERROR) {
		snprintf(t->msg, sizeof t->msg, "memory chunk %" PRIu64 ": not a zstd frame", n);
		return -EINVAL;
	}
	if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != raw) {
		snprintf(t->msg, sizeof t->msg,
			 "memory chunk %" PRIu64 ": frame holds %llu bytes, raw size is %zu", n,
			 fcs, raw);
		return -EINVAL;
	}
	if (!t->dctx && !(t->dctx = ZSTD_createDCtx())) {
		snprintf(t->msg, sizeof t->msg, "memory chunk %" PRIu64 ": out of memory for zstd",
			 n);
		return -ENOMEM;
	}
	if (c->n_ranges == 1 && fcs == raw) {
		/* Straight into guest memory; zstd never writes past raw bytes. */
		got = ZSTD_decompressDCtx(t->dctx, mem + c->ranges[0]->first * PAGE, raw,
					  c->data.data, c->data.len);
	} else {
		if (t->scratch_cap < raw) {
			free(t->scratch);
			t->scratch_cap = 0;
			if (!(t->scratch = malloc(raw))) {
				snprintf(t->msg, sizeof t->msg,
					 "memory chunk %" PRIu64 ": out of memory", n);
				return -ENOMEM;
			}
			t->scratch_cap = raw;
		}
		got = ZSTD_decompressDCtx(t->dctx, t->scratch, raw, c->data.data, c->data.len);
	}
	if (ZSTD_isError(got)) {
		snprintf(t->msg, sizeof t->msg, "memory chunk %" PRIu64 ": zstd: %s", n,
			 ZSTD_getErrorName(got));
		return -EINVAL;
	}
	if (got != raw) {
		snprintf(t->msg, sizeof t->msg,
			 "memory chunk %" PRIu64 ": decompresses to %zu bytes, raw size is %zu", n,
			 got, raw);
		return -EINVAL;
	}
	if (!(c->n_ranges == 1 && fcs == raw))
		scatter(mem, c, t->scratch);
	return 0;
}

static void *apply_worker(void *arg)
{
	struct applier_thread *t = arg;
	struct wasp_memory_applier *a = t->a;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->stop && a->qlen == 0)
			pthread_cond_wait(&a->work, &a->mu);
		if (a->qlen == 0)
			break; /* stopping, nothing left */
		struct applier_item it = a->q[a->qhead];
		a->qhead = (a->qhead + 1) % a->qcap;
		a->qlen--;
		a->active++;
		bool skip = a->err != 0;
		pthread_cond_signal(&a->space);
		pthread_mutex_unlock(&a->mu);

		int r = skip ? 0 : apply_chunk(t, it.rec->memory, it.n);

		pthread_mutex_lock(&a->mu);
		if (r < 0 && !a->err) {
			a->err = r;
			snprintf(a->msg, sizeof a->msg, "%s", t->msg);
		}
		chunk_bits(a->busy, it.rec->memory, false);
		a->active--;
		pthread_cond_broadcast(&a->idle);
		pthread_mutex_unlock(&a->mu);
		wasp__record__free_unpacked(it.rec, NULL);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	/* Freed here, on this thread's own time, not the finishing caller's. */
	ZSTD_freeDCtx(t->dctx);
	free(t->scratch);
	t->dctx = NULL;
	t->scratch = NULL;
	return NULL;
}

int wasp_memory_applier_new(uint8_t *mem, size_t mem_size, int threads,
			    struct wasp_memory_applier **out)
{
	struct wasp_memory_applier *a;
	size_t words = (mem_size / PAGE + 63) / 64;
	int r;

	*out = NULL;
	a = calloc(1, sizeof *a);
	if (!a)
		return wasp_fail(-ENOMEM, "out of memory for the memory applier");
	a->mem = mem;
	a->mem_size = mem_size;
	a->nth = default_threads(threads);
	a->qcap = 2 * (size_t)a->nth;
	a->q = calloc(a->qcap, sizeof *a->q);
	a->busy = calloc(words ? words : 1, sizeof *a->busy);
	a->t = calloc((size_t)a->nth, sizeof *a->t);
	if (!a->q || !a->busy || !a->t) {
		free(a->q);
		free(a->busy);
		free(a->t);
		free(a);
		return wasp_fail(-ENOMEM, "out of memory for the memory applier");
	}
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->space, NULL);
	pthread_cond_init(&a->idle, NULL);
	for (int i = 0; i < a->nth; i++) {
		a->t[i].a = a;
		r = pthread_create(&a->t[i].th, NULL, apply_worker, &a->t[i]);
		if (r) {
			a->nth = i; /* free() joins the ones that started */
			wasp_memory_applier_free(a);
			return wasp_fail(-r, "starting a decompression thread: %s", strerror(r));
		}
	}
	*out = a;
	return 0;
}

int wasp_memory_applier_submit(struct wasp_memory_applier *a, Wasp__Record *rec)
{
	uint64_t n = a->submitted++;
	int r;

	if (!a->t_first)
		a->t_first = wasp_now_ns();
	if (a->finished) {
		wasp__record__free_unpacked(rec, NULL);
		return wasp_fail(-EINVAL, "memory chunk %" PRIu64 ": the applier has finished", n);
	}
	if (!rec || rec->body_case != WASP__RECORD__BODY_MEMORY) {
		if (rec)
			wasp__record__free_unpacked(rec, NULL);
		return wasp_fail(-EINVAL, "memory chunk %" PRIu64 ": not a memory record", n);
	}
	r = wasp_stream_check_chunk(rec->memory, a->mem_size);
	if (r < 0) {
		static const char prefix[] = "memory chunk: ";
		char why[256];
		snprintf(why, sizeof why, "%s", wasp_last_error());
		wasp__record__free_unpacked(rec, NULL);
		return wasp_fail(r, "memory chunk %" PRIu64 ": %s", n,
				 strncmp(why, prefix, sizeof prefix - 1) ? why
									 : why + sizeof prefix - 1);
	}

	pthread_mutex_lock(&a->mu);
	/* Pages still in flight in another chunk: let that one land first. */
	if (!a->err && chunk_busy(a->busy, rec->memory))
		while (!a->err && (a->qlen || a->active))
			pthread_cond_wait(&a->idle, &a->mu);
	while (!a->err && a->qlen == a->qcap)
		pthread_cond_wait(&a->space, &a->mu);
	if (a->err) {
		r = a->err;
		pthread_mutex_unlock(&a->mu);
		wasp__record__free_unpacked(rec, NULL);
		return wasp_fail(r, "%s", a->msg);
	}
	chunk_bits(a->busy, rec->memory, true);
	a->q[(a->qhead + a->qlen) % a->qcap] = (struct applier_item){rec, n};
	a->qlen++;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

/* Waits until every submitted chunk has landed, then lets the workers go.
 * They are joined only in free: a join costs ~0.1 ms a thread here (PVM,
 * measured), and on a migration's receiver finish is on the path to the
 * guest running again, while free comes after that. */
static void applier_drain(struct wasp_memory_applier *a)
{
	pthread_mutex_lock(&a->mu);
	while (a->qlen || a->active)
		pthread_cond_wait(&a->idle, &a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->mu);
	a->finished = true;
}

int wasp_memory_applier_finish(struct wasp_memory_applier *a, struct wasp_ckpt_stats *stats)
{
	if (!a->finished) {
		applier_drain(a);
		if (stats && a->t_first)
			stats->decompress_ns += wasp_now_ns() - a->t_first;
	}
	if (a->err)
		return wasp_fail(a->err, "%s", a->msg);
	return 0;
}

void wasp_memory_applier_free(struct wasp_memory_applier *a)
{
	if (!a)
		return;
	if (!a->finished) {
		/* Nothing more is wanted: let the workers drop what is queued. */
		pthread_mutex_lock(&a->mu);
		if (!a->err) {
			a->err = -ECANCELED;
			snprintf(a->msg, sizeof a->msg, "memory applier freed before finish");
		}
		pthread_mutex_unlock(&a->mu);
		applier_drain(a);
	}
	for (int i = 0; i < a->nth; i++)
		pthread_join(a->t[i].th, NULL);
	pthread_cond_destroy(&a->idle);
	pthread_cond_destroy(&a->space);
	pthread_cond_destroy(&a->work);
	pthread_mutex_destroy(&a->mu);
	free(a->q);
	free(a->busy);
	free(a->t);
	free(a);
}

int wasp_guest_data_pages(struct wasp_virtine *v, uint64_t **out)
{
	size_t size = wasp_virtine_mem_size(v), words = (size / PAGE + 63) / 64;
	int r = wasp_memfd_data_pages(wasp_virtine_mem_fd(v), size, out);
	const uint64_t *mapped = wasp_virtine_file_mapped(v);
	for (size_t i = 0; r == 0 && mapped && i < words; i++)
		(*out)[i] |= mapped[i];
	return r;
}

/* ---- mappable memory ----------------------------------------------------
 * One chunk per run of pages, codec NONE, its data at a page-aligned stream
 * offset, so a reader of a file can mmap the data (formats/stream.md). */

/* Pages without data a run may bridge (written as zero pages) rather than
 * start a new run: fewer, longer mappings at a few KiB of file each. */
#define MAP_BRIDGE 32

static int write_mappable_run(struct wasp_stream_writer *w, const uint8_t *mem, uint64_t first,
			      uint64_t count)
{
	uint8_t prefix[64], pad[2 * PAGE + 16];
	uint64_t raw = count * PAGE;
	struct wasp_pb_range range = {first, count};
	struct wasp_pb_chunk c = {
	    .ranges = &range, .n_ranges = 1, .raw_size = raw, .stored = true, .data_len = raw};
	size_t o = wasp_pb_chunk_head_put(prefix, &c);

	size_t at = (size_t)((wasp_stream_writer_bytes(w) + o) % PAGE);
	if (at) {
		size_t need = PAGE - at;
		if (!wasp_pb_pad_record(pad, need)) {
			need += PAGE;
			if (!wasp_pb_pad_record(pad, need))
				return wasp_fail(-EFAULT, "no pad record of %zu bytes", need);
		}
		int r = wasp_stream_write_framed(w, pad, need, 0, wasp_crc32c(0, pad, need));
		if (r < 0)
			return r;
	}
	return wasp_stream_write_framed2(w, prefix, o, mem + first * PAGE, raw, count);
}

static bool page_bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}

int wasp_stream_write_memory_mappable(struct wasp_stream_writer *w, const uint8_t *mem,
				      size_t size, const uint64_t *pages,
				      struct wasp_ckpt_stats *stats)
{
	uint64_t npages = size / PAGE, max_run = WASP_STREAM_MAX_CHUNK_RAW / PAGE;
	uint64_t t0 = wasp_now_ns(), carried = 0, chunks = 0;
	int r = 0;

	if (size % PAGE)
		return wasp_fail(-EINVAL, "guest memory of %zu bytes is not whole pages", size);
	for (uint64_t p = 0; r == 0 && p < npages;) {
		if (!(pages[p / 64] >> (p % 64))) {
			p = (p / 64 + 1) * 64;
			continue;
		}
		if (!page_bit(pages, p)) {
			p++;
			continue;
		}
		uint64_t first = p, last = p;
		for (uint64_t q = p + 1; q < npages && q - first < max_run && q - last <= MAP_BRIDGE;
		     q++)
			if (page_bit(pages, q))
				last = q;
		r = write_mappable_run(w, mem, first, last - first + 1);
		carried += last - first + 1;
		chunks++;
		p = last + 1;
	}
	if (r == 0 && stats) {
		stats->pages += carried;
		stats->chunks += chunks;
		stats->raw_bytes += carried * PAGE;
		stats->compress_ns += wasp_now_ns() - t0;
	}
	return r;
}
