/*
 * ckpt_pb.h: the protobuf framing that ckpt/ writes and reads by hand.
 * Not installed; the memory writer (ckpt_memory.c), the stream reader
 * (ckpt_stream.c) and tests use it.
 *
 * protobuf-c packs every record but memory ones. A memory record's data
 * is compressed by a worker straight into its output buffer, or (mappable
 * checkpoints) is guest memory the writer places at a page-aligned stream
 * offset; the few bytes of framing in front of it are written here, byte
 * for byte what protobuf-c packs (fields in field-number order, codec
 * only when not the default), which tests check by re-packing. A restore
 * recognises a mappable record from its first bytes without reading its
 * data, which protobuf-c cannot do (it decodes whole messages), so that
 * parse lives here too. docs/design.md ("Framing and checksums") says why
 * the writer does not use protobuf_c_message_pack_to_buffer().
 *
 * Every tag is built from a field number in WASP_PB_FIELDS, and the
 * stream.pb_tags test checks each against protobuf-c's descriptors of
 * formats/checkpoint.proto, so a renumbered field fails that test rather
 * than writing checkpoints no reader understands.
 */
#ifndef WASP_CKPT_PB_H
#define WASP_CKPT_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.pb-c.h"

/* Protobuf wire types. */
enum wasp_pb_wire { WASP_PB_VARINT = 0, WASP_PB_I64 = 1, WASP_PB_LEN = 2, WASP_PB_I32 = 5 };
/* A tag byte: every hand-framed field number is below 16 (checked at
 * compile time in ckpt_pb.c), so each tag is one byte. */
#define WASP_PB_TAG(number, wire) ((uint8_t)((number) << 3 | (wire)))
/* A varint takes at most 10 bytes (64 bits, 7 a byte). */
#define WASP_PB_VARINT_MAX 10

/* Every field framed by hand: X(NAME, message, field, number, wire), the
 * message and field as protobuf-c names them (wasp__<message>__descriptor),
 * the number as formats/checkpoint.proto gives it. */
#define WASP_PB_FIELDS(X)                                                                          \
	X(RECORD_MEMORY, record, memory, 3, WASP_PB_LEN)                                           \
	X(RECORD_PAD, record, pad, 6, WASP_PB_LEN)                                                 \
	X(CHUNK_RANGES, memory_chunk, ranges, 1, WASP_PB_LEN)                                      \
	X(CHUNK_RAW_SIZE, memory_chunk, raw_size, 2, WASP_PB_VARINT)                               \
	X(CHUNK_CODEC, memory_chunk, codec, 3, WASP_PB_VARINT)                                     \
	X(CHUNK_DATA, memory_chunk, data, 4, WASP_PB_LEN)                                          \
	X(CHUNK_ZERO_RANGES, memory_chunk, zero_ranges, 5, WASP_PB_LEN)                            \
	X(RANGE_FIRST, page_range, first, 1, WASP_PB_VARINT)                                       \
	X(RANGE_COUNT, page_range, count, 2, WASP_PB_VARINT)

/* WASP_PB_TAG_RECORD_MEMORY (0x1a), ... */
#define WASP_PB_TAG_ENUM_(name, message, field, number, wire)                                      \
	WASP_PB_TAG_##name = WASP_PB_TAG(number, wire),
enum { WASP_PB_FIELDS(WASP_PB_TAG_ENUM_) };
#undef WASP_PB_TAG_ENUM_

/* One row of WASP_PB_FIELDS, for the test that holds them to the .proto. */
struct wasp_pb_field {
	const char *name; /* "RECORD_MEMORY" */
	const ProtobufCMessageDescriptor *message;
	const char *field; /* as in the .proto */
	uint8_t tag;
};
extern const struct wasp_pb_field wasp_pb_fields[];
extern const size_t wasp_pb_nfields;

/* ---- varints ---------------------------------------------------------- */

/* Bytes the varint of v takes (1..10). */
size_t wasp_pb_varint_len(uint64_t v);
/* Writes the varint of v at p; returns its length. */
size_t wasp_pb_varint_put(uint8_t *p, uint64_t v);
/* Feeds byte i (from 0) of a varint into *v (0 before byte 0): 1 when it
 * was the last byte, 0 when more follow, -1 when the bytes are no varint
 * (an 11th byte, or bits beyond 64 in the 10th). */
int wasp_pb_varint_step(uint64_t *v, unsigned i, uint8_t b);
/* Reads a varint from b[*o, len) into *v and moves *o past it; false when
 * the bytes end first or are no varint. */
bool wasp_pb_varint_get(const uint8_t *b, size_t len, size_t *o, uint64_t *v);

/* ---- fields ----------------------------------------------------------- */

/* A varint field (tag, value): its size, and writing it (returns the size). */
size_t wasp_pb_uint_size(uint64_t v);
size_t wasp_pb_uint_put(uint8_t *p, uint8_t tag, uint64_t v);
/* The head of a length-delimited field of len bytes (tag, varint length):
 * its size, and writing it (returns the size); the len bytes follow it. */
size_t wasp_pb_len_size(uint64_t len);
size_t wasp_pb_len_put(uint8_t *p, uint8_t tag, uint64_t len);

/* A PageRange. */
struct wasp_pb_range {
	uint64_t first, count;
};
/* A PageRange field (tag, length, first, count): its size, and writing it
 * with `tag` (WASP_PB_TAG_CHUNK_RANGES or _ZERO_RANGES; returns the size). */
size_t wasp_pb_range_size(const struct wasp_pb_range *r);
size_t wasp_pb_range_put(uint8_t *p, uint8_t tag, const struct wasp_pb_range *r);

/* ---- memory records --------------------------------------------------- */

/* A memory record (Record.memory, a MemoryChunk) as it is written: the
 * framing in front of the data, the data, then `tail` bytes of zero-range
 * fields (wasp_pb_range_put with WASP_PB_TAG_CHUNK_ZERO_RANGES). */
struct wasp_pb_chunk {
	const struct wasp_pb_range *ranges;
	size_t n_ranges;
	uint64_t raw_size;
	bool stored; /* codec NONE: data is the pages themselves */
	uint64_t data_len;
	uint64_t tail;
};
/* Room the framing can take at most for these ranges, whatever the sizes:
 * what a writer reserves in front of data it has yet to compress. */
size_t wasp_pb_chunk_head_max(const struct wasp_pb_range *ranges, size_t n_ranges);
/* The framing's size: the record's varint length, Record.memory's tag and
 * length, the ranges, raw_size, codec NONE when stored, data's tag and
 * length. */
size_t wasp_pb_chunk_head_size(const struct wasp_pb_chunk *c);
/* Writes the framing at p; returns its size. */
size_t wasp_pb_chunk_head_put(uint8_t *p, const struct wasp_pb_chunk *c);

/* Parses a record's first bytes b[0, len) (after its length prefix; the
 * record is record_len bytes) as a mappable checkpoint writes memory: one
 * range, codec NONE, raw_size and data of exactly its pages (at most
 * WASP_STREAM_MAX_CHUNK_RAW), nothing after the data. True with the range
 * and the framing's length (where the data starts) when it is one. */
bool wasp_pb_mappable_head(const uint8_t *b, size_t len, uint64_t record_len,
			   struct wasp_pb_range *range, size_t *framing);

/* A pad record (varint length, Record.pad of zeros) of exactly `total`
 * bytes into buf; false when none has that size (below 3 bytes, and a few
 * totals the varint lengths skip, such as 129 and 132). */
bool wasp_pb_pad_record(uint8_t *buf, size_t total);

#endif /* WASP_CKPT_PB_H */
