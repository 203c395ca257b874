/*
 * ckpt_pb.c: the protobuf framing written and read by hand (ckpt_pb.h says
 * why, and which fields). Only the encoding of those few fields lives
 * here; what a chunk holds and when one is written stay with the memory
 * writer (ckpt_memory.c) and the stream reader (ckpt_stream.c).
 */
#include <string.h>

#include "ckpt_pb.h"
#include "ckpt_stream.h" /* WASP_STREAM_MAX_CHUNK_RAW */

#define PAGE 4096u

/* One tag byte each: a field number of 16 or more would need two. */
#define WASP_PB_ONE_BYTE_(name, message, field, number, wire)                                      \
	_Static_assert((number) > 0 && (number) < 16, #name ": tag needs more than one byte");
WASP_PB_FIELDS(WASP_PB_ONE_BYTE_)
#undef WASP_PB_ONE_BYTE_

#define WASP_PB_ROW_(name, message, field, number, wire)                                           \
	{#name, &wasp__##message##__descriptor, #field, WASP_PB_TAG_##name},
const struct wasp_pb_field wasp_pb_fields[] = {WASP_PB_FIELDS(WASP_PB_ROW_)};
#undef WASP_PB_ROW_
const size_t wasp_pb_nfields = sizeof wasp_pb_fields / sizeof *wasp_pb_fields;

/* ---- varints ---------------------------------------------------------- */

size_t wasp_pb_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t wasp_pb_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

int wasp_pb_varint_step(uint64_t *v, unsigned i, uint8_t b)
{
	/* The 10th byte holds bit 63 only: 0 or 1, and it must be the last. */
	if (i >= WASP_PB_VARINT_MAX || (i == WASP_PB_VARINT_MAX - 1 && b > 1))
		return -1;
	*v |= (uint64_t)(b & 0x7f) << (7 * i);
	return !(b & 0x80);
}

bool wasp_pb_varint_get(const uint8_t *b, size_t len, size_t *o, uint64_t *v)
{
	*v = 0;
	for (unsigned i = 0; *o < len; i++) {
		int r = wasp_pb_varint_step(v, i, b[(*o)++]);
		if (r)
			return r > 0;
	}
	return false;
}

/* ---- fields ----------------------------------------------------------- */

size_t wasp_pb_uint_size(uint64_t v)
{
	return 1 + wasp_pb_varint_len(v);
}

size_t wasp_pb_uint_put(uint8_t *p, uint8_t tag, uint64_t v)
{
	p[0] = tag;
	return 1 + wasp_pb_varint_put(p + 1, v);
}

size_t wasp_pb_len_size(uint64_t len)
{
	return 1 + wasp_pb_varint_len(len);
}

size_t wasp_pb_len_put(uint8_t *p, uint8_t tag, uint64_t len)
{
	p[0] = tag;
	return 1 + wasp_pb_varint_put(p + 1, len);
}

/* A PageRange's body: first, count (at most 22 bytes). */
static size_t range_body(const struct wasp_pb_range *r)
{
	return wasp_pb_uint_size(r->first) + wasp_pb_uint_size(r->count);
}

size_t wasp_pb_range_size(const struct wasp_pb_range *r)
{
	size_t body = range_body(r);
	return wasp_pb_len_size(body) + body;
}

size_t wasp_pb_range_put(uint8_t *p, uint8_t tag, const struct wasp_pb_range *r)
{
	size_t n = wasp_pb_len_put(p, tag, range_body(r));
	n += wasp_pb_uint_put(p + n, WASP_PB_TAG_RANGE_FIRST, r->first);
	n += wasp_pb_uint_put(p + n, WASP_PB_TAG_RANGE_COUNT, r->count);
	return n;
}

/* ---- memory records --------------------------------------------------- */

static size_t ranges_size(const struct wasp_pb_range *ranges, size_t n_ranges)
{
	size_t n = 0;
	for (size_t i = 0; i < n_ranges; i++)
		n += wasp_pb_range_size(&ranges[i]);
	return n;
}

size_t wasp_pb_chunk_head_max(const struct wasp_pb_range *ranges, size_t n_ranges)
{
	/* Record length, Record.memory's tag and length (varints of up to
	 * 10 bytes), raw_size, codec, data's tag and length. */
	return ranges_size(ranges, n_ranges) + WASP_PB_VARINT_MAX + 1 + WASP_PB_VARINT_MAX +
	       (1 + WASP_PB_VARINT_MAX) + 2 + (1 + WASP_PB_VARINT_MAX);
}

/* The MemoryChunk's fields before its data. */
static size_t chunk_fields_size(const struct wasp_pb_chunk *c)
{
	return ranges_size(c->ranges, c->n_ranges) + wasp_pb_uint_size(c->raw_size) +
	       (c->stored ? wasp_pb_uint_size(WASP__MEMORY_CHUNK__CODEC__NONE) : 0) +
	       wasp_pb_len_size(c->data_len);
}

size_t wasp_pb_chunk_head_size(const struct wasp_pb_chunk *c)
{
	size_t fields = chunk_fields_size(c);
	uint64_t chunk_len = fields + c->data_len + c->tail;
	uint64_t rec_len = wasp_pb_len_size(chunk_len) + chunk_len;
	return wasp_pb_varint_len(rec_len) + wasp_pb_len_size(chunk_len) + fields;
}

size_t wasp_pb_chunk_head_put(uint8_t *p, const struct wasp_pb_chunk *c)
{
	/* Fields in field-number order, codec only when not the default
	 * (ZSTD), as protobuf-c packs them. */
	uint64_t chunk_len = chunk_fields_size(c) + c->data_len + c->tail;
	size_t n = wasp_pb_varint_put(p, wasp_pb_len_size(chunk_len) + chunk_len);
	n += wasp_pb_len_put(p + n, WASP_PB_TAG_RECORD_MEMORY, chunk_len);
	for (size_t i = 0; i < c->n_ranges; i++)
		n += wasp_pb_range_put(p + n, WASP_PB_TAG_CHUNK_RANGES, &c->ranges[i]);
	n += wasp_pb_uint_put(p + n, WASP_PB_TAG_CHUNK_RAW_SIZE, c->raw_size);
	if (c->stored)
		n += wasp_pb_uint_put(p + n, WASP_PB_TAG_CHUNK_CODEC,
				      WASP__MEMORY_CHUNK__CODEC__NONE);
	n += wasp_pb_len_put(p + n, WASP_PB_TAG_CHUNK_DATA, c->data_len);
	return n;
}

/* The tag byte at b[*o] is `tag` and a varint follows: true with it in *v. */
static bool get_field(const uint8_t *b, size_t len, size_t *o, uint8_t tag, uint64_t *v)
{
	return *o < len && b[(*o)++] == tag && wasp_pb_varint_get(b, len, o, v);
}

bool wasp_pb_mappable_head(const uint8_t *b, size_t len, uint64_t record_len,
			   struct wasp_pb_range *range, size_t *framing)
{
	size_t o = 0;
	uint64_t chunk_len, rlen, raw, codec, dlen;
	if (!get_field(b, len, &o, WASP_PB_TAG_RECORD_MEMORY, &chunk_len) ||
	    chunk_len != record_len - o)
		return false;
	if (o + 2 > len || !get_field(b, len, &o, WASP_PB_TAG_CHUNK_RANGES, &rlen))
		return false;
	size_t range_end = o + rlen;
	if (range_end > len || !get_field(b, len, &o, WASP_PB_TAG_RANGE_FIRST, &range->first) ||
	    !get_field(b, len, &o, WASP_PB_TAG_RANGE_COUNT, &range->count) || o != range_end)
		return false;
	if (!get_field(b, len, &o, WASP_PB_TAG_CHUNK_RAW_SIZE, &raw) ||
	    !get_field(b, len, &o, WASP_PB_TAG_CHUNK_CODEC, &codec) ||
	    codec != WASP__MEMORY_CHUNK__CODEC__NONE ||
	    !get_field(b, len, &o, WASP_PB_TAG_CHUNK_DATA, &dlen))
		return false;
	if (range->count == 0 || range->count > WASP_STREAM_MAX_CHUNK_RAW / PAGE ||
	    raw != range->count * PAGE || dlen != raw || o + dlen != record_len)
		return false;
	*framing = o;
	return true;
}

/* ---- pad records ------------------------------------------------------ */

static size_t pad_record_size(size_t n)
{
	size_t plen = wasp_pb_len_size(n) + n;
	return wasp_pb_varint_len(plen) + plen;
}

bool wasp_pb_pad_record(uint8_t *buf, size_t total)
{
	/* The framing takes 3..8 of the bytes (two varints and a tag). */
	for (size_t k = 3; k <= 8 && k <= total; k++) {
		size_t n = total - k;
		if (pad_record_size(n) != total)
			continue;
		size_t o = wasp_pb_varint_put(buf, wasp_pb_len_size(n) + n);
		o += wasp_pb_len_put(buf + o, WASP_PB_TAG_RECORD_PAD, n);
		memset(buf + o, 0, n);
		return true;
	}
	return false;
}
