/*
 * ckpt_live.c: a full checkpoint written while the guest runs, the stream
 * of a live migration.
 *
 * Correctness rests on one order: fetch the dirty bitmap (which re-arms
 * the log), then read the pages. A write that lands after the fetch sets
 * its bit again and the page goes out in a later round; a page read while
 * it changes may arrive torn, but its bit is set, so a later copy (the
 * last, taken with the guest stopped) replaces it: readers apply chunks in
 * stream order. zstd never sees a checksum over input that may change.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

struct wasp_live {
	struct wasp_virtine *v;
	struct wasp_save_opts opts;
	struct wasp_stream_writer *w;
	uint64_t *pending; /* fetched but not yet sent */
	/* Every page fetched here: if tracking was on before (for incremental
	 * checkpoints), these are given back at the end, so the next
	 * incremental checkpoint still sees them. */
	uint64_t *fetched;
	size_t words;
	bool was_tracking;
	struct wasp_ckpt_stats stats;
};

static int fetch(struct wasp_live *l)
{
	int r = wasp_virtine_dirty_fetch(l->v, l->pending);
	for (size_t i = 0; r == 0 && i < l->words; i++)
		l->fetched[i] |= l->pending[i];
	return r;
}

int wasp_live_begin(struct wasp_virtine *v, const struct wasp_save_opts *opts,
		    const struct wasp_sink *sink, struct wasp_live **out)
{
	struct wasp_live *l = calloc(1, sizeof *l);
	uint64_t *data = NULL;
	int r;

	*out = NULL;
	if (!l)
		return wasp_fail(-ENOMEM, "out of memory");
	l->v = v;
	if (opts)
		l->opts = *opts;
	l->opts.incremental = false;
	l->words = (wasp_virtine_mem_size(v) / 4096 + 63) / 64;
	l->was_tracking = wasp_virtine_dirty_active(v);
	if (!(l->pending = calloc(l->words, sizeof *l->pending)) ||
	    !(l->fetched = calloc(l->words, sizeof *l->fetched))) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	/* Track first, then read: everything written from here on is caught.
	 * The vCPU probing is done now, not in the downtime. */
	if ((r = wasp_vstate_prepare_host()) < 0 || (r = wasp_virtine_dirty_start(v)) < 0 ||
	    (r = fetch(l)) < 0)
		goto fail;
	memset(l->pending, 0, l->words * sizeof *l->pending);

	if ((r = wasp_stream_writer_open(sink, &l->w)) < 0 ||
	    (r = wasp_ckpt_write_header(l->w, v, false, NULL, l->stats.id)) < 0)
		goto fail;
	const uint8_t *mem = wasp_virtine_gpa(v, 0, wasp_virtine_mem_size(v));
	if ((r = wasp_guest_data_pages(v, &data)) < 0 ||
	    (r = wasp_stream_write_memory(l->w, mem, wasp_virtine_mem_size(v), data, false, &l->opts,
					  &l->stats)) < 0)
		goto fail;
	free(data);
	*out = l;
	return 0;
fail:
	free(data);
	wasp_live_free(l);
	return r;
}

static uint64_t count_bits(const uint64_t *b, size_t words)
{
	uint64_t n = 0;
	for (size_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(b[i]);
	return n;
}

int wasp_live_dirty_pages(struct wasp_live *l, uint64_t *pages)
{
	int r = fetch(l);
	if (r == 0)
		*pages = count_bits(l->pending, l->words);
	return r;
}

/* Sends what is pending plus what was dirtied since. */
static int send_dirty(struct wasp_live *l, uint64_t *pages, uint64_t *bytes)
{
	uint64_t before = wasp_stream_writer_bytes(l->w);
	int r = fetch(l);
	if (r < 0)
		return r;
	uint64_t n = count_bits(l->pending, l->words);
	if (n) {
		const uint8_t *mem = wasp_virtine_gpa(l->v, 0, wasp_virtine_mem_size(l->v));
		r = wasp_stream_write_memory(l->w, mem, wasp_virtine_mem_size(l->v), l->pending, true,
					     &l->opts, &l->stats);
		if (r < 0)
			return r;
	}
	memset(l->pending, 0, l->words * sizeof *l->pending);
	if (pages)
		*pages = n;
	if (bytes)
		*bytes = wasp_stream_writer_bytes(l->w) - before;
	return 0;
}

int wasp_live_round(struct wasp_live *l, uint64_t *pages, uint64_t *bytes)
{
	return send_dirty(l, pages, bytes);
}

int wasp_live_finish(struct wasp_live *l, struct wasp_ckpt_stats *stats)
{
	/* The stopped vCPU may sit inside an out whose handler wrote guest
	 * memory: complete it before the last fetch. */
	int r = wasp_virtine_complete_io(l->v);
	if (r < 0 || (r = send_dirty(l, NULL, NULL)) < 0 ||
	    (r = wasp_ckpt_write_state(l->w, l->v, &l->opts, &l->stats)) < 0)
		return r;
	l->stats.bytes = wasp_stream_writer_bytes(l->w);
	if (stats)
		*stats = l->stats;
	return 0;
}

uint64_t wasp_live_bytes(const struct wasp_live *l)
{
	return l->w ? wasp_stream_writer_bytes(l->w) : 0;
}

void wasp_live_free(struct wasp_live *l)
{
	if (!l)
		return;
	if (!l->was_tracking)
		wasp_virtine_dirty_stop(l->v);
	else if (l->fetched)
		wasp_virtine_dirty_return(l->v, l->fetched);
	wasp_stream_writer_free(l->w);
	free(l->pending);
	free(l->fetched);
	free(l);
}
