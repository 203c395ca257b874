/*
 * ckpt_stream.c: framing of checkpoint streams (formats/stream.md).
 *
 * The writer packs each record into one reusable buffer behind its varint
 * length and hands the sink one write per record. The reader trusts
 * nothing: every length is bounded before anything is allocated, every
 * error names the record (counted from 0, the header) and the byte offset
 * of its length prefix, and a stream is only "whole" once the end record's
 * counts and checksum match and nothing follows it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include "ckpt_pb.h"
#include "ckpt_stream.h"
#include "vmm_parts.h" /* wasp_fail */

#define PAGE 4096u
#define READ_BLOCK (256u << 10)

static const char *body_name(Wasp__Record__BodyCase c)
{
	switch (c) {
	case WASP__RECORD__BODY_HEADER:
		return "header";
	case WASP__RECORD__BODY_VCPU:
		return "vcpu";
	case WASP__RECORD__BODY_MEMORY:
		return "memory";
	case WASP__RECORD__BODY_HOST:
		return "host";
	case WASP__RECORD__BODY_END:
		return "end";
	case WASP__RECORD__BODY_PAD:
		return "pad";
	default:
		return "unknown";
	}
}

/* ---- writer ----------------------------------------------------------- */

struct wasp_stream_writer {
	struct wasp_sink sink;
	uint8_t *buf; /* reused for every record: varint + packed record */
	size_t cap;
	uint64_t bytes, records, pages;
	uint32_t crc;
	int err; /* sticky: once a write failed the stream is broken */
	bool finished;
};

/* Writes bytes whose CRC-32C is `crc` (computed by the caller). */
static int writer_emit_crc(struct wasp_stream_writer *w, const void *buf, size_t len, uint32_t crc)
{
	int r = w->sink.write(w->sink.ctx, buf, len);
	if (r < 0) {
		w->err = r;
		return r; /* the sink said why */
	}
	w->crc = wasp_crc32c_combine(w->crc, crc, len);
	w->bytes += len;
	return 0;
}

static int writer_emit(struct wasp_stream_writer *w, const void *buf, size_t len)
{
	return writer_emit_crc(w, buf, len, wasp_crc32c(0, buf, len));
}

static int writer_usable(struct wasp_stream_writer *w)
{
	if (w->err)
		return wasp_fail(w->err, "checkpoint stream: an earlier write failed");
	if (w->finished)
		return wasp_fail(-EINVAL, "checkpoint stream: already finished");
	return 0;
}

int wasp_stream_writer_open(const struct wasp_sink *sink, struct wasp_stream_writer **out)
{
	struct wasp_stream_writer *w;
	int r;

	*out = NULL;
	if (!sink || !sink->write)
		return wasp_fail(-EINVAL, "checkpoint stream: no sink");
	w = calloc(1, sizeof *w);
	if (!w)
		return wasp_fail(-ENOMEM, "checkpoint stream: out of memory");
	w->sink = *sink;
	r = writer_emit(w, WASP_STREAM_MAGIC, WASP_STREAM_MAGIC_LEN);
	if (r < 0) {
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

static int writer_pack(struct wasp_stream_writer *w, const Wasp__Record *rec, uint64_t pages)
{
	size_t len = wasp__record__get_packed_size(rec), n;

	if (len > WASP_STREAM_MAX_RECORD)
		return wasp_fail(
		    -EFBIG, "checkpoint stream: %s record of %zu bytes exceeds the %u-byte limit",
		    body_name(rec->body_case), len, WASP_STREAM_MAX_RECORD);
	if (len + WASP_PB_VARINT_MAX > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < len + WASP_PB_VARINT_MAX)
			cap *= 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b)
			return wasp_fail(
			    -ENOMEM, "checkpoint stream: out of memory for a %zu-byte record", len);
		w->buf = b;
		w->cap = cap;
	}
	n = wasp_pb_varint_put(w->buf, len);
	wasp__record__pack(rec, w->buf + n);
	int r = writer_emit(w, w->buf, n + len);
	if (r < 0)
		return r;
	w->records++;
	w->pages += pages;
	return 0;
}

int wasp_stream_write_record(struct wasp_stream_writer *w, const Wasp__Record *rec)
{
	uint64_t pages = 0;
	int r = writer_usable(w);

	if (r < 0)
		return r;
	if (rec->body_case == WASP__RECORD__BODY__NOT_SET ||
	    rec->body_case == WASP__RECORD__BODY_END)
		return wasp_fail(-EINVAL, "checkpoint stream: write_record takes no %s record",
				 rec->body_case == WASP__RECORD__BODY_END ? "end" : "empty");
	if (w->records >= WASP_STREAM_MAX_RECORDS)
		return wasp_fail(-EFBIG, "checkpoint stream: more than %u records",
				 WASP_STREAM_MAX_RECORDS);
	if (rec->body_case == WASP__RECORD__BODY_MEMORY)
		for (size_t i = 0; i < rec->memory->n_ranges; i++)
			pages += rec->memory->ranges[i]->count;
	return writer_pack(w, rec, pages);
}

/* A caller-framed record of `len` bytes may go next. */
static int framed_ok(struct wasp_stream_writer *w, size_t len)
{
	int r = writer_usable(w);

	if (r < 0)
		return r;
	if (w->records >= WASP_STREAM_MAX_RECORDS)
		return wasp_fail(-EFBIG, "checkpoint stream: more than %u records",
				 WASP_STREAM_MAX_RECORDS);
	if (len > WASP_STREAM_MAX_RECORD + WASP_PB_VARINT_MAX)
		return wasp_fail(
		    -EFBIG, "checkpoint stream: framed record of %zu bytes exceeds the limit", len);
	return 0;
}

int wasp_stream_write_framed(struct wasp_stream_writer *w, const void *frame, size_t len,
			     uint64_t pages, uint32_t crc)
{
	int r = framed_ok(w, len);
	if (r < 0 || (r = writer_emit_crc(w, frame, len, crc)) < 0)
		return r;
	w->records++;
	w->pages += pages;
	return 0;
}

int wasp_stream_write_framed2(struct wasp_stream_writer *w, const void *prefix, size_t plen,
			      const void *data, size_t dlen, uint64_t pages)
{
	int r = framed_ok(w, plen + dlen);
	if (r < 0 || (r = writer_emit(w, prefix, plen)) < 0 ||
	    (dlen && (r = writer_emit(w, data, dlen)) < 0))
		return r;
	w->records++;
	w->pages += pages;
	return 0;
}

int wasp_stream_writer_finish(struct wasp_stream_writer *w)
{
	Wasp__Record rec = WASP__RECORD__INIT;
	Wasp__End end = WASP__END__INIT;
	int r = writer_usable(w);

	if (r < 0)
		return r;
	end.records = w->records;
	end.bytes = w->bytes;
	end.pages = w->pages;
	end.crc32c = w->crc;
	rec.body_case = WASP__RECORD__BODY_END;
	rec.end = &end;
	r = writer_pack(w, &rec, 0);
	if (r < 0)
		return r;
	w->finished = true;
	return 0;
}

uint64_t wasp_stream_writer_bytes(const struct wasp_stream_writer *w)
{
	return w ? w->bytes : 0;
}

void wasp_stream_writer_free(struct wasp_stream_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

/* ---- chunk check ------------------------------------------------------ */

/* Checks one list of ranges: each in bounds, sorted, not overlapping.
 * Returns the page total in *pages (bounded by mem_pages, so no overflow). */
static int check_ranges(Wasp__PageRange *const *rs, size_t n, uint64_t mem_pages, const char *what,
			uint64_t *pages, char *msg, size_t msz)
{
	uint64_t next = 0, total = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t first = rs[i]->first, count = rs[i]->count, end;
		if (count == 0) {
			snprintf(msg, msz, "%s %zu (first page %" PRIu64 ") is empty", what, i,
				 first);
			return -EINVAL;
		}
		if (__builtin_add_overflow(first, count, &end) || end > mem_pages) {
			snprintf(msg, msz,
				 "%s %zu (pages %" PRIu64 "+%" PRIu64
				 ") is outside guest memory of %" PRIu64 " pages",
				 what, i, first, count, mem_pages);
			return -EINVAL;
		}
		if (i && first < next) {
			snprintf(msg, msz,
				 "%s %zu (first page %" PRIu64
				 ") overlaps or precedes the one before it",
				 what, i, first);
			return -EINVAL;
		}
		next = end;
		total += count; /* <= mem_pages: ranges are disjoint and in bounds */
	}
	*pages = total;
	return 0;
}

/* Data ranges and zero ranges, each sorted, must not share a page. */
static int check_disjoint(const Wasp__MemoryChunk *c, char *msg, size_t msz)
{
	size_t i = 0, j = 0;

	while (i < c->n_ranges && j < c->n_zero_ranges) {
		const Wasp__PageRange *a = c->ranges[i], *b = c->zero_ranges[j];
		if (a->first + a->count <= b->first)
			i++;
		else if (b->first + b->count <= a->first)
			j++;
		else {
			snprintf(msg, msz, "range %zu and zero range %zu share pages", i, j);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_chunk_msg(const Wasp__MemoryChunk *c, size_t mem_size, char *msg, size_t msz)
{
	uint64_t mem_pages = mem_size / PAGE, pages = 0, zpages = 0;
	int r;

	if (!c) {
		snprintf(msg, msz, "no memory chunk");
		return -EINVAL;
	}
	r = check_ranges(c->ranges, c->n_ranges, mem_pages, "range", &pages, msg, msz);
	if (r < 0)
		return r;
	r = check_ranges(c->zero_ranges, c->n_zero_ranges, mem_pages, "zero range", &zpages, msg,
			 msz);
	if (r < 0)
		return r;
	r = check_disjoint(c, msg, msz);
	if (r < 0)
		return r;
	if (c->raw_size > WASP_STREAM_MAX_CHUNK_RAW) {
		snprintf(msg, msz, "raw size %" PRIu64 " exceeds the %u-byte chunk limit",
			 c->raw_size, WASP_STREAM_MAX_CHUNK_RAW);
		return -EINVAL;
	}
	if (pages > WASP_STREAM_MAX_CHUNK_RAW / PAGE || c->raw_size != pages * PAGE) {
		snprintf(msg, msz,
			 "raw size %" PRIu64 " does not match its ranges (%" PRIu64 " pages)",
			 c->raw_size, pages);
		return -EINVAL;
	}
	switch (c->has_codec ? c->codec : WASP__MEMORY_CHUNK__CODEC__ZSTD) {
	case WASP__MEMORY_CHUNK__CODEC__NONE:
		if (c->data.len != c->raw_size) {
			snprintf(msg, msz, "uncompressed data of %zu bytes, raw size %" PRIu64,
				 c->data.len, c->raw_size);
			return -EINVAL;
		}
		break;
	case WASP__MEMORY_CHUNK__CODEC__ZSTD:
		/* No more than zstd can take for raw_size bytes: a chunk in
		 * the restore's queue holds its data, so a page's chunk must
		 * not carry megabytes. */
		if ((c->raw_size == 0) != (c->data.len == 0) ||
		    c->data.len > ZSTD_COMPRESSBOUND(c->raw_size)) {
			snprintf(msg, msz, "compressed data of %zu bytes for raw size %" PRIu64,
				 c->data.len, c->raw_size);
			return -EINVAL;
		}
		break;
	default:
		snprintf(msg, msz, "unknown codec %d", (int)c->codec);
		return -EINVAL;
	}
	return 0;
}

int wasp_stream_check_chunk(const Wasp__MemoryChunk *c, size_t mem_size)
{
	char msg[256];
	int r = check_chunk_msg(c, mem_size, msg, sizeof msg);
	if (r < 0)
		return wasp_fail(r, "memory chunk: %s", msg);
	return 0;
}

/* ---- reader ----------------------------------------------------------- */

struct wasp_stream_reader {
	struct wasp_source src;
	uint8_t *in; /* read-ahead block: varints come byte by byte */
	size_t in_pos, in_len;
	bool eof;
	uint8_t *rec; /* one record's bytes, reused */
	size_t rec_cap;
	uint64_t bytes; /* consumed so far, magic included */
	uint64_t records, pages;
	uint32_t crc, end_crc;
	int state; /* 0 reading, 1 after a valid end, <0 failed (sticky) */
	bool seen_vcpu, seen_host;
	uint64_t mem_size;
	/* mapping (wasp_stream_reader_set_mapper) */
	wasp_stream_map_fn map;
	void *map_ctx;
	int map_fd;
	uint64_t map_file_size;
	bool mapped;
	uint64_t max_bytes;
	/* what the record being decoded may still allocate (decode_alloc) */
	uint64_t budget;
	bool over_budget;
};

/* The allocator protobuf-c decodes records with: malloc, counted against
 * the record's budget, so that a record of many tiny elements fails
 * instead of costing dozens of times its length. Frees are not counted
 * (protobuf-c frees only its parse slots, at the end): the budget bounds
 * everything allocated during one decode, which bounds the peak. The
 * blocks are plain malloc'ed, so wasp__record__free_unpacked(rec, NULL)
 * frees them. */
#define ALLOC_OVERHEAD 16 /* what malloc spends beside each block */

static void *decode_alloc(void *data, size_t size)
{
	struct wasp_stream_reader *r = data;
	uint64_t cost = (uint64_t)size + ALLOC_OVERHEAD;
	if (cost > r->budget) {
		r->over_budget = true;
		return NULL;
	}
	r->budget -= cost;
	return malloc(size);
}

static void decode_free(void *data, void *p)
{
	(void)data;
	free(p);
}

/* Refills the read-ahead block. >0 bytes available, 0 at end, -errno. */
static int reader_fill(struct wasp_stream_reader *r)
{
	if (r->in_pos < r->in_len)
		return 1;
	if (r->eof)
		return 0;
	r->in_pos = r->in_len = 0;
	ssize_t n = r->src.read(r->src.ctx, r->in, READ_BLOCK);
	if (n < 0)
		return (int)n;
	if (n == 0) {
		r->eof = true;
		return 0;
	}
	if ((size_t)n > READ_BLOCK)
		return wasp_fail(-EIO, "the source returned more bytes than asked for");
	r->in_len = (size_t)n;
	return 1;
}

/* Reads up to len bytes into dst, from the block and then the source
 * directly (a big record is not copied through the block). Returns the
 * bytes read (short only at the end) or -errno. Feeds the checksum. */
static ssize_t reader_get(struct wasp_stream_reader *r, uint8_t *dst, size_t len)
{
	size_t got = 0;

	while (got < len) {
		if (r->in_pos < r->in_len) {
			size_t n = r->in_len - r->in_pos;
			if (n > len - got)
				n = len - got;
			memcpy(dst + got, r->in + r->in_pos, n);
			r->in_pos += n;
			got += n;
			continue;
		}
		if (r->eof)
			break;
		if (len - got >= READ_BLOCK) {
			ssize_t n = r->src.read(r->src.ctx, dst + got, len - got);
			if (n < 0)
				return n;
			if ((size_t)n > len - got)
				return wasp_fail(-EIO,
						 "the source returned more bytes than asked for");
			if (n == 0)
				r->eof = true;
			got += (size_t)n;
			continue;
		}
		int f = reader_fill(r);
		if (f < 0)
			return f;
	}
	r->crc = wasp_crc32c(r->crc, dst, got);
	r->bytes += got;
	return (ssize_t)got;
}

static int reader_failed(struct wasp_stream_reader *r, int err)
{
	r->state = err;
	return err;
}

/* Fails with the source's own message behind ours. */
static int reader_io_error(struct wasp_stream_reader *r, int err, uint64_t n, uint64_t at)
{
	char why[256];
	snprintf(why, sizeof why, "%s", wasp_last_error());
	return reader_failed(
	    r,
	    wasp_fail(err, "record %" PRIu64 " at byte %" PRIu64 ": read failed: %s", n, at, why));
}

int wasp_stream_reader_open(const struct wasp_source *src, struct wasp_stream_reader **out)
{
	struct wasp_stream_reader *r;
	uint8_t magic[WASP_STREAM_MAGIC_LEN];
	ssize_t n;

	*out = NULL;
	if (!src || !src->read)
		return wasp_fail(-EINVAL, "checkpoint stream: no source");
	r = calloc(1, sizeof *r);
	if (!r || !(r->in = malloc(READ_BLOCK))) {
		free(r);
		return wasp_fail(-ENOMEM, "checkpoint stream: out of memory");
	}
	r->src = *src;
	r->max_bytes = WASP_CKPT_MAX_STREAM_BYTES;
	n = reader_get(r, magic, sizeof magic);
	if (n < 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", wasp_last_error());
		wasp_stream_reader_free(r);
		return wasp_fail((int)n, "checkpoint stream: reading the magic failed: %s", why);
	}
	if (n == 0 || memcmp(magic, WASP_STREAM_MAGIC, (size_t)n) != 0) {
		wasp_stream_reader_free(r);
		return wasp_fail(-EINVAL, n ? "not a wasp checkpoint (bad magic)"
					    : "not a wasp checkpoint (empty stream)");
	}
	if (n < WASP_STREAM_MAGIC_LEN) {
		wasp_stream_reader_free(r);
		return wasp_fail(-EINVAL,
				 "truncated: the stream ends inside the magic, at byte %zd", n);
	}
	*out = r;
	return 0;
}

/* Reads a record's varint length: 1 and *len, 0 at a clean end before its
 * first byte, or -errno. At most 10 bytes; the value must fit 64 bits. */
static int read_varint(struct wasp_stream_reader *r, uint64_t n, uint64_t at, uint64_t *len)
{
	uint64_t v = 0;

	for (unsigned i = 0;; i++) {
		uint8_t b;
		ssize_t got = reader_get(r, &b, 1);
		if (got < 0)
			return reader_io_error(r, (int)got, n, at);
		if (got == 0) {
			if (i == 0)
				return 0;
			return reader_failed(r, wasp_fail(-EINVAL,
							  "truncated: record %" PRIu64
							  " at byte %" PRIu64
							  ": the stream ends inside its length",
							  n, at));
		}
		int last = wasp_pb_varint_step(&v, i, b);
		if (last > 0) {
			*len = v;
			return 1;
		}
		if (last < 0)
			break;
	}
	return reader_failed(r,
			     wasp_fail(-EINVAL,
				       "record %" PRIu64 " at byte %" PRIu64
				       ": length is not a valid varint (overlong or over 64 bits)",
				       n, at));
}

static int check_header(struct wasp_stream_reader *r, const Wasp__Header *h, uint64_t at)
{
	uint32_t page = h->has_page_size ? h->page_size : PAGE;

	if (h->version_major > WASP_CKPT_VERSION_MAJOR)
		return wasp_fail(-EPROTONOSUPPORT,
				 "checkpoint format %u.x is newer than this wasp (%d.x)",
				 h->version_major, WASP_CKPT_VERSION_MAJOR);
	if (h->version_major == 0)
		return wasp_fail(-EPROTONOSUPPORT, "checkpoint format 0.%u was never a wasp format",
				 h->version_minor);
	if (page != PAGE)
		return wasp_fail(-EINVAL,
				 "header (record 0 at byte %" PRIu64
				 "): page size %u is not supported (only %u)",
				 at, page, PAGE);
	if (h->mem_size == 0 || h->mem_size % PAGE)
		return wasp_fail(-EINVAL,
				 "header (record 0 at byte %" PRIu64 "): guest memory size %" PRIu64
				 " is not a positive multiple of %u",
				 at, h->mem_size, PAGE);
	if (h->mem_size > WASP_MEM_MAX)
		return wasp_fail(-EFBIG,
				 "header (record 0 at byte %" PRIu64 "): guest memory size %" PRIu64
				 " exceeds the %llu-byte maximum",
				 at, h->mem_size, (unsigned long long)WASP_MEM_MAX);
	if (h->id.len != 16)
		return wasp_fail(-EINVAL,
				 "header (record 0 at byte %" PRIu64 "): id of %zu bytes, not 16",
				 at, h->id.len);
	if (h->has_parent_id && h->parent_id.len != 16)
		return wasp_fail(-EINVAL,
				 "header (record 0 at byte %" PRIu64
				 "): parent id of %zu bytes, not 16",
				 at, h->parent_id.len);
	if (h->kind != WASP__HEADER__KIND__FULL && h->kind != WASP__HEADER__KIND__INCREMENTAL)
		return wasp_fail(-EINVAL, "header (record 0 at byte %" PRIu64 "): unknown kind %d",
				 at, (int)h->kind);
	if (h->kind == WASP__HEADER__KIND__INCREMENTAL && !h->has_parent_id)
		return wasp_fail(-EINVAL,
				 "header (record 0 at byte %" PRIu64
				 "): an incremental checkpoint without a parent id",
				 at);
	r->mem_size = h->mem_size;
	return 0;
}

static int check_end(struct wasp_stream_reader *r, const Wasp__End *e, uint64_t n, uint64_t at,
		     uint32_t crc)
{
	const char *what = NULL;
	uint64_t said = 0, is = 0;

	if (e->records != n)
		what = "records", said = e->records, is = n;
	else if (e->bytes != at)
		what = "bytes", said = e->bytes, is = at;
	else if (e->pages != r->pages)
		what = "pages", said = e->pages, is = r->pages;
	if (what)
		return wasp_fail(-EINVAL,
				 "end record (record %" PRIu64 " at byte %" PRIu64
				 ") counts %" PRIu64 " %s, the stream has %" PRIu64,
				 n, at, said, what, is);
	if (!r->mapped && e->crc32c != crc)
		return wasp_fail(-EBADMSG,
				 "checksum mismatch: end record (record %" PRIu64
				 " at byte %" PRIu64 ") says crc32c 0x%08x, the stream's is 0x%08x",
				 n, at, e->crc32c, crc);
	return 0;
}

/* Checks one decoded record in its place in the stream. */
static int check_record(struct wasp_stream_reader *r, Wasp__Record *rec, uint64_t n, uint64_t at)
{
	char msg[256];
	int err;

	if (n == 0 && rec->body_case != WASP__RECORD__BODY_HEADER)
		return wasp_fail(-EINVAL,
				 "record 0 at byte %" PRIu64 " is not a header (it is a %s record)",
				 at, body_name(rec->body_case));
	switch (rec->body_case) {
	case WASP__RECORD__BODY_HEADER:
		if (n != 0)
			return wasp_fail(-EINVAL,
					 "record %" PRIu64 " at byte %" PRIu64 ": a second header",
					 n, at);
		return check_header(r, rec->header, at);
	case WASP__RECORD__BODY_VCPU:
	case WASP__RECORD__BODY_HOST: {
		bool *seen =
		    rec->body_case == WASP__RECORD__BODY_VCPU ? &r->seen_vcpu : &r->seen_host;
		if (*seen)
			return wasp_fail(
			    -EINVAL, "record %" PRIu64 " at byte %" PRIu64 ": a second %s record",
			    n, at, body_name(rec->body_case));
		*seen = true;
		return 0;
	}
	case WASP__RECORD__BODY_MEMORY: {
		uint64_t pages = 0;
		err = check_chunk_msg(rec->memory, r->mem_size, msg, sizeof msg);
		if (err < 0)
			return wasp_fail(err,
					 "record %" PRIu64 " at byte %" PRIu64 ": memory chunk: %s",
					 n, at, msg);
		for (size_t i = 0; i < rec->memory->n_ranges; i++)
			pages += rec->memory->ranges[i]->count; /* <= 4096 per chunk */
		r->pages += pages;
		return 0;
	}
	default:
		return 0;
	}
}

/* ---- mapping ------------------------------------------------------------ */

#define MAP_MIN_RECORD (64u << 10) /* smaller records are read: no gain */
#define MAP_PEEK 64                /* a mappable chunk's framing fits */

int wasp_stream_reader_set_mapper(struct wasp_stream_reader *r, int fd, wasp_stream_map_fn map,
				  void *ctx)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return wasp_fail(-errno, "fstat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return 0; /* a pipe or a socket: read it */
	/* Map only a file that is ours alone. A mapping shows the guest what
	 * anyone who can write the file changes later, and a truncation takes
	 * its pages away (the virtine then ends with a memory-lost fault):
	 * a file of another user, or one others may write (group or other
	 * write permission, an access ACL), is read instead. */
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
	    fgetxattr(fd, "system.posix_acl_access", NULL, 0) > 0)
		return 0;
	r->map = map;
	r->map_ctx = ctx;
	r->map_fd = fd;
	r->map_file_size = (uint64_t)st.st_size;
	return 0;
}

bool wasp_stream_reader_mapped(const struct wasp_stream_reader *r)
{
	return r->mapped;
}

/* A record of `len` bytes at stream offset `at`: maps it (1), or leaves
 * its first *have bytes in r->rec for the normal path (0), or -errno. */
static int try_map(struct wasp_stream_reader *r, uint64_t n, uint64_t at, uint64_t len,
		   size_t *have)
{
	struct wasp_pb_range range;
	size_t framing;
	if (!r->rec && !(r->rec = malloc(r->rec_cap = 4096))) {
		r->rec_cap = 0;
		return wasp_fail(-ENOMEM, "out of memory");
	}
	ssize_t got = reader_get(r, r->rec, MAP_PEEK);
	if (got < 0)
		return reader_io_error(r, (int)got, n, at);
	*have = (size_t)got;
	if (!wasp_pb_mappable_head(r->rec, *have, len, &range, &framing))
		return 0;
	uint64_t first = range.first, count = range.count;
	uint64_t data_at = r->bytes - *have + framing, dlen = count * PAGE;
	uint64_t mem_pages = r->mem_size / PAGE;
	if (data_at % PAGE)
		return 0;
	if (first > mem_pages || count > mem_pages - first)
		return wasp_fail(-EINVAL,
				 "record %" PRIu64 " at byte %" PRIu64 ": memory chunk: range 0 "
				 "(pages %" PRIu64 "+%" PRIu64 ") is outside guest memory of %" PRIu64
				 " pages",
				 n, at, first, count, mem_pages);
	if (data_at + dlen > r->map_file_size)
		return wasp_fail(-EINVAL,
				 "truncated: record %" PRIu64 " at byte %" PRIu64 " needs %" PRIu64
				 " bytes, the file has %" PRIu64,
				 n, at, len, r->map_file_size - (r->bytes - *have));
	if (n >= WASP_STREAM_MAX_RECORDS)
		return wasp_fail(-EFBIG, "record %" PRIu64 " at byte %" PRIu64 ": more than %u records",
				 n, at, WASP_STREAM_MAX_RECORDS);
	int err = r->map(r->map_ctx, first, count, r->map_fd, data_at);
	if (err == -ENOMEM)
		return 0; /* out of mappings (vm.max_map_count): read it */
	if (err < 0)
		return err;
	/* Past the data: what the read-ahead block holds of it, then a seek. */
	uint64_t skip = dlen - (*have - framing);
	size_t inblock = r->in_len - r->in_pos;
	if (inblock > skip)
		inblock = (size_t)skip;
	r->in_pos += inblock;
	if (skip > inblock && lseek(r->map_fd, (off_t)(skip - inblock), SEEK_CUR) < 0)
		return wasp_fail(-errno, "seeking past record %" PRIu64 ": %s", n, strerror(errno));
	r->bytes += skip;
	r->pages += count;
	r->mapped = true;
	*have = 0;
	return 1;
}

int wasp_stream_read_record(struct wasp_stream_reader *r, Wasp__Record **out)
{
	*out = NULL;
	if (r->state < 0)
		return wasp_fail(r->state, "checkpoint stream: the reader failed earlier");
	if (r->state == 1)
		return 0;

	for (;;) {
		uint64_t n = r->records, at = r->bytes, len = 0;
		uint32_t crc_before = r->crc;
		Wasp__Record *rec;
		ssize_t got;
		int err = read_varint(r, n, at, &len);

		if (err < 0)
			return err;
		if (err == 0)
			return reader_failed(
			    r,
			    wasp_fail(-EINVAL,
				      "truncated: no end record (the stream ends at byte %" PRIu64
				      " after %" PRIu64 " records)",
				      at, n));
		if (len > WASP_STREAM_MAX_RECORD)
			return reader_failed(r, wasp_fail(-EFBIG,
							  "record %" PRIu64 " at byte %" PRIu64
							  ": length %" PRIu64
							  " exceeds the %u-byte limit",
							  n, at, len, WASP_STREAM_MAX_RECORD));
		if (len > r->max_bytes || r->bytes > r->max_bytes - len)
			return reader_failed(
			    r, wasp_fail(-EFBIG,
					 "record %" PRIu64 " at byte %" PRIu64 ": the stream would exceed "
					 "its limit of %" PRIu64 " bytes",
					 n, at, r->max_bytes));
		size_t have = 0; /* bytes of the record already in r->rec */
		if (r->map && len >= MAP_MIN_RECORD && n > 0) {
			err = try_map(r, n, at, len, &have);
			if (err < 0)
				return reader_failed(r, err);
			if (err > 0) {
				r->records = n + 1;
				continue;
			}
		}
		if (len > r->rec_cap) {
			size_t cap = r->rec_cap ? r->rec_cap : 4096;
			while (cap < len)
				cap *= 2;
			uint8_t *old = r->rec;
			r->rec = malloc(cap);
			if (r->rec && have)
				memcpy(r->rec, old, have); /* what try_map peeked at */
			free(old);
			r->rec_cap = r->rec ? cap : 0;
			if (!r->rec)
				return reader_failed(
				    r, wasp_fail(-ENOMEM,
						 "record %" PRIu64 " at byte %" PRIu64
						 ": out of memory for %" PRIu64 " bytes",
						 n, at, len));
		}
		/* (no arithmetic on a NULL buffer: an empty record has none) */
		got = reader_get(r, have ? r->rec + have : r->rec, (size_t)len - have);
		if (got < 0)
			return reader_io_error(r, (int)got, n, at);
		got += (ssize_t)have;
		if ((uint64_t)got < len)
			return reader_failed(r, wasp_fail(-EINVAL,
							  "truncated: record %" PRIu64
							  " at byte %" PRIu64 " needs %" PRIu64
							  " bytes, the stream has %zd",
							  n, at, len, got));
		ProtobufCAllocator alloc = {decode_alloc, decode_free, r};
		r->budget = WASP_STREAM_DECODE_BUDGET(len);
		r->over_budget = false;
		rec = wasp__record__unpack(&alloc, (size_t)len, r->rec);
		if (!rec && r->over_budget)
			return reader_failed(r, wasp_fail(-EFBIG,
							  "record %" PRIu64 " at byte %" PRIu64
							  " (%" PRIu64 " bytes) would take more "
							  "than %" PRIu64 " bytes of memory to "
							  "decode: too many elements",
							  n, at, len, WASP_STREAM_DECODE_BUDGET(len)));
		if (!rec)
			return reader_failed(r, wasp_fail(-EINVAL,
							  "record %" PRIu64 " at byte %" PRIu64
							  " does not decode (%" PRIu64 " bytes)",
							  n, at, len));
		if (rec->body_case != WASP__RECORD__BODY_END && n >= WASP_STREAM_MAX_RECORDS) {
			wasp__record__free_unpacked(rec, NULL);
			return reader_failed(r, wasp_fail(-EFBIG,
							  "record %" PRIu64 " at byte %" PRIu64
							  ": more than %u records",
							  n, at, WASP_STREAM_MAX_RECORDS));
		}
		if (rec->body_case == WASP__RECORD__BODY__NOT_SET && !rec->base.n_unknown_fields) {
			wasp__record__free_unpacked(rec, NULL);
			return reader_failed(r, wasp_fail(-EINVAL,
							  "record %" PRIu64 " at byte %" PRIu64
							  " is empty (no record kind)",
							  n, at));
		}
		err = check_record(r, rec, n, at);
		if (err < 0) {
			wasp__record__free_unpacked(rec, NULL);
			return reader_failed(r, err);
		}
		r->records = n + 1;
		if (rec->body_case == WASP__RECORD__BODY__NOT_SET) {
			/* A record kind newer than this reader (a minor addition,
			 * by the versioning rule): counted, checksummed, skipped. */
			wasp__record__free_unpacked(rec, NULL);
			continue;
		}
		if (rec->body_case != WASP__RECORD__BODY_END) {
			*out = rec;
			return 1;
		}
		err = check_end(r, rec->end, n, at, crc_before);
		wasp__record__free_unpacked(rec, NULL);
		if (err < 0)
			return reader_failed(r, err);
		err = reader_fill(r);
		if (err < 0)
			return reader_io_error(r, err, n + 1, r->bytes);
		if (err > 0)
			return reader_failed(
			    r,
			    wasp_fail(-EINVAL,
				      "trailing bytes after the end record (at byte %" PRIu64 ")",
				      r->bytes));
		r->end_crc = crc_before;
		r->state = 1;
		return 0;
	}
}

uint64_t wasp_stream_reader_bytes(const struct wasp_stream_reader *r)
{
	return r ? r->bytes : 0;
}

void wasp_stream_reader_set_max_bytes(struct wasp_stream_reader *r, uint64_t max)
{
	r->max_bytes = max ? max : WASP_CKPT_MAX_STREAM_BYTES;
}

uint32_t wasp_stream_reader_crc32c(const struct wasp_stream_reader *r)
{
	return r ? r->end_crc : 0;
}

void wasp_stream_reader_free(struct wasp_stream_reader *r)
{
	if (!r)
		return;
	free(r->in);
	free(r->rec);
	free(r);
}
