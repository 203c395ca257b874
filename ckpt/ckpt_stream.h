/*
 * ckpt_stream.h: the checkpoint stream inside ckpt/: framing, checksum,
 * memory chunks, limits, sinks. Not installed; ckpt.h is the public face.
 *
 * Stream = "WASPCKPT" | record* | end record
 * record = varint length (at most WASP_STREAM_MAX_RECORD) | Wasp__Record
 * The end record carries the record count, the byte count and the CRC-32C
 * of every byte before it. formats/stream.md is the written form.
 */
#ifndef WASP_CKPT_STREAM_H
#define WASP_CKPT_STREAM_H

#include "checkpoint.pb-c.h"
#include "ckpt.h"

#define WASP_STREAM_MAGIC "WASPCKPT"
#define WASP_STREAM_MAGIC_LEN 8
/* Limits: a decoder refuses anything beyond them before allocating
 * (docs/security.md lists them with what each protects). The stream's
 * total is WASP_CKPT_MAX_STREAM_BYTES unless the reader is told another;
 * guest memory is at most WASP_MEM_MAX. */
#define WASP_STREAM_MAX_RECORD (64u << 20)     /* one encoded record */
#define WASP_STREAM_MAX_RECORDS (1u << 22)     /* records in a stream */
#define WASP_STREAM_MAX_CHUNK_RAW (16u << 20)  /* raw bytes of one memory chunk */
/* What decoding one record may allocate: protobuf-c turns every element of
 * a repeated field into a pointer, a struct and a parse slot (~100 bytes
 * for an empty 2-byte element), so a record's decoded size follows its
 * element count, not its length. Legitimate records decode to about their
 * length (their bytes fields) plus at most ~1 MiB of elements (4096 ranges
 * and 4096 zero ranges a chunk, a few hundred MSRs and CPUID entries);
 * the budget is twice the length plus this slack, counted by the
 * allocator protobuf-c is handed, so any record, whatever field it
 * abuses, costs at most that. */
#define WASP_STREAM_DECODE_SLACK (4u << 20)
#define WASP_STREAM_DECODE_BUDGET(len) (2 * (uint64_t)(len) + WASP_STREAM_DECODE_SLACK)

/* CRC-32C (Castagnoli), hardware-accelerated where SSE4.2 is present. */
uint32_t wasp_crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable (table) path of wasp_crc32c, for tests. */
uint32_t wasp_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* The CRC of a || b from crc1 = CRC of a and crc2 = CRC of b (len2 bytes). */
uint32_t wasp_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

/* ---- writing ---------------------------------------------------------- */
struct wasp_stream_writer;

/* Writes the magic. */
int wasp_stream_writer_open(const struct wasp_sink *sink, struct wasp_stream_writer **out);
/* Packs and writes one record (length-prefixed), feeding the checksum. */
int wasp_stream_write_record(struct wasp_stream_writer *w, const Wasp__Record *rec);
/* Writes one record the caller framed itself (varint length + packed
 * Wasp__Record, exactly as write_record would), carrying `pages` memory
 * pages, whose CRC-32C the caller computed (wasp_crc32c(0, frame, len)):
 * the memory writer encodes and checksums chunks on its threads and hands
 * the finished bytes here, in order. */
int wasp_stream_write_framed(struct wasp_stream_writer *w, const void *frame, size_t len,
			     uint64_t pages, uint32_t crc);
/* Writes the end record. Does not free. */
int wasp_stream_writer_finish(struct wasp_stream_writer *w);
uint64_t wasp_stream_writer_bytes(const struct wasp_stream_writer *w);
void wasp_stream_writer_free(struct wasp_stream_writer *w);

/* Writes memory records for the pages of mem[0, size) whose bit is set in
 * `pages` (NULL: every page). Zero pages are skipped (or, with
 * `record_zero`, listed in zero_ranges for incremental checkpoints).
 * Non-zero pages are gathered into chunks of at most opts->chunk_size raw
 * bytes and compressed on opts->threads threads; records are written in
 * page order. `pages` has bit p % 64 of word p / 64 for page p (as
 * wasp_virtine_host_dirty). Adds to the memory fields of *stats (pages,
 * zero_pages, chunks, raw_bytes, compress_ns), so zero it first. */
int wasp_stream_write_memory(struct wasp_stream_writer *w, const uint8_t *mem, size_t size,
			     const uint64_t *pages, bool record_zero,
			     const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats);

/* Pages of a memfd that hold data (bitmap as for write_memory, malloc'ed,
 * the caller frees). Pages in holes were never written and are zero;
 * reading them would allocate them, so pass this bitmap (or its AND with
 * a dirty bitmap) to wasp_stream_write_memory for memfd-backed guests. */
int wasp_memfd_data_pages(int fd, size_t size, uint64_t **bitmap);
/* The pages of a virtine that may hold data: its memfd's data, and the
 * pages mapped from a file (wasp_virtine_map_file). */
int wasp_guest_data_pages(struct wasp_virtine *v, uint64_t **bitmap);

/* Writes the pages of mem[0, size) whose bit is set in `pages` as a
 * mappable checkpoint does: uncompressed chunks of one range each, each
 * run's data at a page-aligned stream offset (a pad record in front when
 * needed). Runs bridge gaps of a few pages, so the restore maps few
 * ranges. Adds to the memory fields of *stats. */
int wasp_stream_write_memory_mappable(struct wasp_stream_writer *w, const uint8_t *mem,
				      size_t size, const uint64_t *pages,
				      struct wasp_ckpt_stats *stats);
/* Writes a record the caller framed in two parts (prefix, then data);
 * checksums both. */
int wasp_stream_write_framed2(struct wasp_stream_writer *w, const void *prefix, size_t plen,
			      const void *data, size_t dlen, uint64_t pages);

/* ---- reading ---------------------------------------------------------- */
struct wasp_stream_reader;

/* Reads and checks the magic. The reader also holds the stream to its
 * rules (formats/stream.md): record 0 is a header of a major version it
 * knows, at most one vcpu and one host record, every memory chunk passes
 * wasp_stream_check_chunk against the header's mem_size; records of a kind
 * it does not know are skipped. */
int wasp_stream_reader_open(const struct wasp_source *src, struct wasp_stream_reader **out);
/* Returns 1 and *rec (free with wasp__record__free_unpacked(rec, NULL)),
 * 0 after a valid end record (counts and checksum verified, nothing after
 * it), or -errno with a message naming the record number and byte offset:
 * truncated stream, oversized record, undecodable record, a record that
 * would take more than WASP_STREAM_DECODE_BUDGET to decode, bad checksum. */
int wasp_stream_read_record(struct wasp_stream_reader *r, Wasp__Record **rec);
uint64_t wasp_stream_reader_bytes(const struct wasp_stream_reader *r);

/* Mapping instead of reading: for a reader whose source reads `fd`, a
 * regular file holding the stream from offset 0. A memory record laid out
 * as a mappable checkpoint writes it (one range, codec NONE, nothing after
 * the data, the data page-aligned and inside the file) is checked like any
 * chunk and handed to `map` (first page, pages, fd, file offset of the
 * data) instead of being read; the reader then seeks past it. The end
 * record's checksum covers bytes never read, so once a record was mapped
 * only its counts are checked (formats/stream.md). */
typedef int (*wasp_stream_map_fn)(void *ctx, uint64_t first, uint64_t pages, int fd,
				  uint64_t offset);
int wasp_stream_reader_set_mapper(struct wasp_stream_reader *r, int fd, wasp_stream_map_fn map,
				  void *ctx);
/* Whether any record was mapped (and the checksum not checked). */
bool wasp_stream_reader_mapped(const struct wasp_stream_reader *r);
/* Refuse a stream longer than max bytes (0: WASP_CKPT_MAX_STREAM_BYTES):
 * a record that would end beyond it fails with -EFBIG before it is read. */
void wasp_stream_reader_set_max_bytes(struct wasp_stream_reader *r, uint64_t max);
/* Once read_record returned 0: the verified CRC-32C of the end record. */
uint32_t wasp_stream_reader_crc32c(const struct wasp_stream_reader *r);
void wasp_stream_reader_free(struct wasp_stream_reader *r);

/* Checks a memory chunk against a guest of mem_size bytes (ranges in
 * bounds and not overlapping each other, raw_size matching the ranges,
 * raw_size within the limit) without decompressing. 0 or -EINVAL. */
int wasp_stream_check_chunk(const Wasp__MemoryChunk *c, size_t mem_size);

/* Decompresses chunks straight into guest memory on several threads.
 * submit() takes ownership of the record; finish() waits for all and
 * returns the first error (a chunk that fails to decompress, or whose
 * decompressed size differs from raw_size). Pages in zero_ranges are
 * zeroed. submit() checks the chunk first and owns the record even when
 * it fails; chunks sharing pages land in submission order (the last
 * wins). One thread calls submit/finish; free() also stops a pool that
 * was never finished. */
struct wasp_memory_applier;
int wasp_memory_applier_new(uint8_t *mem, size_t mem_size, int threads,
			    struct wasp_memory_applier **out);
int wasp_memory_applier_submit(struct wasp_memory_applier *a, Wasp__Record *memory_rec);
int wasp_memory_applier_finish(struct wasp_memory_applier *a, struct wasp_ckpt_stats *stats);
void wasp_memory_applier_free(struct wasp_memory_applier *a);

/* ---- sinks and files -------------------------------------------------- */

/* A growing in-memory sink; *buf is malloc'ed. */
struct wasp_buffer_sink {
	uint8_t *buf;
	size_t len, cap;
};
struct wasp_sink wasp_sink_buffer(struct wasp_buffer_sink *b);
struct wasp_buffer_source {
	const uint8_t *buf;
	size_t len, pos;
};
struct wasp_source wasp_source_buffer(struct wasp_buffer_source *b);

#endif /* WASP_CKPT_STREAM_H */
