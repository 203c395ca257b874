/*
 * ckpt.c: save and restore, putting the pieces together.
 *
 * Save writes: magic, header, host, memory chunks, vCPU, end. The vCPU
 * comes last so a live migration can send memory first and the vCPU at the
 * stop, with the same reader.
 *
 * Restore reads the whole stream before anything runs: memory is
 * decompressed straight into a new virtine's memory as it arrives (no
 * second copy), host and vCPU records are kept aside, and only after the
 * end record's checksum matched and the CPU features were checked are the
 * files reopened and the vCPU applied. Any failure destroys the new
 * virtine: the caller never sees a partly restored guest.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_internal.h"

#define PRODUCER "wasp 0.1.0"

/* A sink that times and counts what passes through it. */
struct timed_sink {
	const struct wasp_sink *inner;
	uint64_t ns, bytes;
};

static int timed_write(void *ctx, const void *buf, size_t len)
{
	struct timed_sink *t = ctx;
	uint64_t t0 = wasp_now_ns();
	int r = t->inner->write(t->inner->ctx, buf, len);
	t->ns += wasp_now_ns() - t0;
	t->bytes += len;
	return r;
}

/* ---- host state ------------------------------------------------------- */

struct host_pb {
	Wasp__Host host;
	Wasp__OpenFile files[64], *filep[64];
	uint32_t allowed[WASP_HC_MAX];
	char *names[WASP_HC_MAX];
	struct wasp_files_pb written;
	/* a Linux program's personality; maps allocated, the rest here */
	Wasp__LinuxState lx;
	Wasp__LinuxMap *maps, **mapp;
	Wasp__LinuxSignal sigs[64], *sigp[64];
};

/* The Linux personality into b->lx (host.linux_state); 0 when the state
 * is no Linux program's. */
static int linux_to_proto(const struct wasp_vstate *vs, struct host_pb *b)
{
	if (!vs->has_linux)
		return 0;
	const struct wasp_linux_state st = vs->linux_state;
	Wasp__LinuxState *l = &b->lx;
	wasp__linux_state__init(l);
	l->entry = st.entry;
	l->image_lo = st.image_lo;
	l->image_hi = st.image_hi;
	l->brk_start = st.brk_start;
	l->brk = st.brk;
	l->brk_max = st.brk_max;
	l->mmap_min = st.mmap_min;
	l->mmap_top = st.mmap_top;
	l->stack_low = st.stack_low;
	l->stack_top = st.stack_top;
	if (st.nmaps) {
		b->maps = calloc(st.nmaps, sizeof *b->maps);
		b->mapp = calloc(st.nmaps, sizeof *b->mapp);
		if (!b->maps || !b->mapp)
			return wasp_fail(-ENOMEM, "out of memory for %u mappings", st.nmaps);
		for (unsigned i = 0; i < st.nmaps; i++) {
			wasp__linux_map__init(&b->maps[i]);
			b->maps[i].start = st.maps[i].start;
			b->maps[i].len = st.maps[i].len;
			b->maps[i].prot = st.maps[i].prot;
			b->maps[i].flags = st.maps[i].flags;
			b->mapp[i] = &b->maps[i];
		}
		l->n_maps = st.nmaps;
		l->maps = b->mapp;
	}
	for (unsigned i = 0; i < 64; i++) {
		if (!st.sig[i].handler && !st.sig[i].flags && !st.sig[i].restorer && !st.sig[i].mask)
			continue;
		Wasp__LinuxSignal *g = &b->sigs[l->n_signals];
		wasp__linux_signal__init(g);
		g->signo = i + 1;
		g->handler = st.sig[i].handler;
		g->flags = st.sig[i].flags;
		g->restorer = st.sig[i].restorer;
		g->mask = st.sig[i].mask;
		b->sigp[l->n_signals++] = g;
	}
	l->signals = b->sigp;
#define OPT(f)                                                                                   	do {                                                                                     		l->has_##f = true;                                                               		l->f = st.f;                                                                     	} while (0)
	OPT(sigmask);
	OPT(tid_address);
	OPT(robust_list);
	OPT(robust_len);
	OPT(altstack_sp);
	OPT(altstack_size);
	OPT(altstack_flags);
	OPT(umask);
	OPT(stdio_closed);
	OPT(sleep_rip);
	OPT(sleep_left_ns);
#undef OPT
	b->host.linux_state = l;
	return 0;
}

/* The checkpoint's Linux personality into vs (the vmm makes v that
 * program when the state is loaded, before its files are reopened: they
 * resolve in the program's root). */
static int linux_from_proto(const Wasp__LinuxState *l, struct wasp_vstate *vs)
{
	struct wasp_linux_state st;
	memset(&st, 0, sizeof st);
	st.entry = l->entry;
	st.image_lo = l->image_lo;
	st.image_hi = l->image_hi;
	st.brk_start = l->brk_start;
	st.brk = l->brk;
	st.brk_max = l->brk_max;
	st.mmap_min = l->mmap_min;
	st.mmap_top = l->mmap_top;
	st.stack_low = l->stack_low;
	st.stack_top = l->stack_top;
	if (l->n_maps > 65536)
		return wasp_fail(-EINVAL, "Linux state: %zu mappings (at most 65536)", l->n_maps);
	struct wasp_linux_map *maps = l->n_maps ? calloc(l->n_maps, sizeof *maps) : NULL;
	if (l->n_maps && !maps)
		return wasp_fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n_maps; i++)
		maps[i] = (struct wasp_linux_map){l->maps[i]->start, l->maps[i]->len,
						  l->maps[i]->prot, l->maps[i]->flags};
	st.maps = maps;
	st.nmaps = (unsigned)l->n_maps;
	for (size_t i = 0; i < l->n_signals; i++) {
		const Wasp__LinuxSignal *g = l->signals[i];
		if (g->signo < 1 || g->signo > 64) {
			free(maps);
			return wasp_fail(-EINVAL, "Linux state: signal %u", g->signo);
		}
		st.sig[g->signo - 1].handler = g->handler;
		st.sig[g->signo - 1].flags = g->flags;
		st.sig[g->signo - 1].restorer = g->restorer;
		st.sig[g->signo - 1].mask = g->mask;
	}
	st.sigmask = l->sigmask;
	st.tid_address = l->tid_address;
	st.robust_list = l->robust_list;
	st.robust_len = l->robust_len;
	st.altstack_sp = l->altstack_sp;
	st.altstack_size = l->altstack_size;
	st.altstack_flags = l->altstack_flags;
	st.umask = l->has_umask ? l->umask : 022;
	st.stdio_closed = l->stdio_closed;
	st.sleep_rip = l->sleep_rip;
	st.sleep_left_ns = l->sleep_left_ns;
	vs->linux_state = st; /* vs owns maps now */
	vs->has_linux = true;
	return 0;
}

/* The host record: the host side of the state, plus what only a
 * checkpoint keeps (the allowed hypercalls, the files the guest wrote). */
static void host_to_proto(struct wasp_virtine *v, const struct wasp_vstate *vs, struct host_pb *b)
{
	Wasp__Host *h = &b->host;
	wasp__host__init(h);
	_Static_assert(WASP_VSTATE_MAX_FILES <= 64, "room for every open file");
	for (unsigned i = 0; i < vs->nfiles; i++) {
		const struct wasp_vstate_file *sf = &vs->files[i];
		Wasp__OpenFile *f = &b->files[h->n_files];
		wasp__open_file__init(f);
		f->guest_fd = sf->guest_fd;
		f->path = sf->path;
		f->flags = (uint32_t)sf->flags;
		f->offset = sf->offset > 0 ? (uint64_t)sf->offset : 0;
		b->filep[h->n_files++] = f;
	}
	h->files = b->filep;
	for (unsigned nr = 0; nr < WASP_HC_MAX; nr++) {
		if (!wasp_virtine_allowed(v, nr))
			continue;
		b->allowed[h->n_allowed] = nr;
		b->names[h->n_allowed] = (char *)wasp_virtine_hypercall_name(v, nr);
		h->n_allowed++;
	}
	h->allowed = b->allowed;
	h->n_allowed_names = h->n_allowed;
	h->allowed_names = b->names;
	if (vs->arg) {
		h->has_arg = true;
		h->arg.data = vs->arg;
		h->arg.len = vs->arg_len;
	}
	if (vs->ret) {
		h->has_ret = true;
		h->ret.data = vs->ret;
		h->ret.len = vs->ret_len;
	}
	h->has_snapshot_marks = true;
	h->snapshot_marks = vs->snapshot_marks;
	h->has_hypercall_pending = true;
	h->hypercall_pending = vs->hypercall_pending;
	h->has_console_bytes = true;
	h->console_bytes = vs->console_bytes;
	h->n_written = b->written.n;
	h->written = b->written.ptrs;
	h->has_listed = true;
	h->listed = b->written.listed;
	h->n_sandbox_files = b->written.nlisting;
	h->sandbox_files = b->written.listing;
	h->has_dir_grown = true;
	h->dir_grown = vs->dir_grown;
}

/* The host record into the host side of vs; *parts says which parts
 * the record holds (an older one has no sandbox growth). */
static int host_from_proto(const Wasp__Host *h, struct wasp_vstate *vs, unsigned *parts)
{
	int r;
	*parts = WASP_VSTATE_FILES | WASP_VSTATE_ARGS | WASP_VSTATE_MARKS | WASP_VSTATE_CONSOLE;
	if (h->linux_state) {
		if ((r = linux_from_proto(h->linux_state, vs)) < 0)
			return r;
		*parts |= WASP_VSTATE_LINUX;
	}
	if (h->n_files > WASP_VSTATE_MAX_FILES)
		return wasp_fail(-EINVAL, "checkpoint has %zu open files (at most %u)", h->n_files,
				 WASP_VSTATE_MAX_FILES);
	for (size_t i = 0; i < h->n_files; i++) {
		const Wasp__OpenFile *f = h->files[i];
		if (f->offset > INT64_MAX)
			return wasp_fail(-EINVAL, "checkpoint file '%s' has offset %llu", f->path,
					 (unsigned long long)f->offset);
		struct wasp_vstate_file *sf = &vs->files[vs->nfiles];
		if (!(sf->path = strdup(f->path)))
			return wasp_fail(-ENOMEM, "out of memory");
		vs->nfiles++;
		sf->guest_fd = f->guest_fd;
		sf->flags = (int)f->flags;
		sf->offset = (int64_t)f->offset;
	}
	if (h->has_arg) {
		if (h->arg.len > (1u << 20))
			return wasp_fail(-E2BIG, "argument of %zu bytes exceeds %u", h->arg.len, 1u << 20);
		if (!(vs->arg = malloc(h->arg.len ? h->arg.len : 1)))
			return wasp_fail(-ENOMEM, "out of memory for the argument");
		if (h->arg.len)
			memcpy(vs->arg, h->arg.data, h->arg.len);
		vs->arg_len = h->arg.len;
	}
	if (h->has_ret) {
		if (h->ret.len > (1u << 20))
			return wasp_fail(-E2BIG, "return buffer of %zu bytes exceeds %u", h->ret.len,
					 1u << 20);
		if (!(vs->ret = malloc(h->ret.len ? h->ret.len : 1)))
			return wasp_fail(-ENOMEM, "out of memory for the return buffer");
		if (h->ret.len)
			memcpy(vs->ret, h->ret.data, h->ret.len);
		vs->ret_len = h->ret.len;
	}
	vs->snapshot_marks = h->snapshot_marks;
	vs->hypercall_pending = h->hypercall_pending;
	vs->console_bytes = h->console_bytes;
	if (h->has_dir_grown) {
		vs->dir_grown = h->dir_grown;
		*parts |= WASP_VSTATE_DIR_GROWN;
	}
	return 0;
}

/* What only a checkpoint restores (the files the guest wrote, checked and
 * put back; the allowed hypercalls), between the Linux personality and the
 * rest of the state. */
static int host_apply(struct wasp_virtine *v, const Wasp__Host *h,
		      const struct wasp_restore_opts *opts, struct wasp_ckpt_stats *stats)
{
	const char *allow = opts->allow;
	int r;
	/* Files first, before any is reopened: each must be what the guest's
	 * memory expects, or be put back so, or the restore is refused. */
	if ((r = wasp_files_apply(v, h, opts->files,
				  opts->config ? opts->config->sandbox_dir : NULL, stats)) < 0)
		return r;
	if (allow)
		return wasp_virtine_allow(v, allow);
	for (size_t i = 0; i < h->n_allowed; i++) {
		uint32_t nr = h->allowed[i];
		/* Embedder hypercalls must be registered again after a restore;
		 * their numbers mean nothing here until then. */
		if (nr >= WASP_HC_USER_BASE)
			continue;
		if (nr >= WASP_HC_MAX || !wasp_virtine_hypercall_name(v, nr))
			return wasp_fail(-ENOTSUP,
					 "the checkpoint allows hypercall %u, which this host does not have",
					 nr);
		if ((r = wasp_virtine_allow_nr(v, nr, true)) < 0)
			return r;
	}
	return 0;
}

/* ---- save ------------------------------------------------------------- */

static size_t bitmap_words(struct wasp_virtine *v)
{
	return (wasp_virtine_mem_size(v) / 4096 + 63) / 64;
}

static int write_header_full(struct wasp_stream_writer *w, size_t mem_size, bool incremental,
			     const uint8_t *parent_id, uint8_t id[16], bool linux_prog);

/* A checkpoint of a Linux program is format 2.0 (checkpoint.proto's
 * LinuxState): a 1.x reader would restore it without its system calls. */
int wasp_ckpt_write_header(struct wasp_stream_writer *w, struct wasp_virtine *v, bool incremental,
			   const uint8_t *parent_id, uint8_t id[16])
{
	return write_header_full(w, wasp_virtine_mem_size(v), incremental, parent_id, id,
				 wasp_virtine_is_linux(v));
}

static int write_header_raw(struct wasp_stream_writer *w, size_t mem_size, uint8_t id[16],
			    bool linux_prog)
{
	return write_header_full(w, mem_size, false, NULL, id, linux_prog);
}

static int write_header_full(struct wasp_stream_writer *w, size_t mem_size, bool incremental,
			     const uint8_t *parent_id, uint8_t id[16], bool linux_prog)
{
	Wasp__Header hdr;
	wasp__header__init(&hdr);
	if (getrandom(id, 16, 0) != 16)
		return wasp_fail(-EIO, "getrandom: %s", strerror(errno));
	char vendor[13];
	wasp_cpu_vendor(vendor);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	hdr.version_major = linux_prog ? WASP_CKPT_VERSION_MAJOR : 1;
	hdr.version_minor = linux_prog ? 0 : WASP_CKPT_VERSION_MINOR_1;
	hdr.kind = incremental ? WASP__HEADER__KIND__INCREMENTAL : WASP__HEADER__KIND__FULL;
	hdr.id.data = id;
	hdr.id.len = 16;
	if (incremental) {
		hdr.has_parent_id = true;
		hdr.parent_id.data = (uint8_t *)parent_id;
		hdr.parent_id.len = 16;
	}
	hdr.mem_size = mem_size;
	hdr.cpu_vendor = vendor;
	hdr.has_created_unix_ns = true;
	hdr.created_unix_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	hdr.producer = PRODUCER;
	hdr.has_abi_version = true;
	hdr.abi_version = WASP_ABI_VERSION;

	Wasp__Record rec;
	wasp__record__init(&rec);
	rec.body_case = WASP__RECORD__BODY_HEADER;
	rec.header = &hdr;
	return wasp_stream_write_record(w, &rec);
}

/* Host and vCPU records and the end: what every stream closes with. The
 * guest must be stopped. */
int wasp_ckpt_write_state(struct wasp_stream_writer *w, struct wasp_virtine *v,
			  const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats)
{
	struct wasp_vstate vs;
	Wasp__Vcpu *vpb = NULL;
	struct host_pb *hb = NULL;
	Wasp__Record rec;
	uint64_t t0 = wasp_now_ns();
	int r = wasp_vstate_save(v, WASP_VSTATE_ALL, &vs);
	if (r < 0)
		return r;
	hb = calloc(1, sizeof *hb);
	if (!hb) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	uint64_t tf = wasp_now_ns();
	if ((r = wasp_files_to_proto(v, opts ? opts->carry_files : 0, &hb->written, stats)) < 0)
		goto out;
	stats->files_ns += wasp_now_ns() - tf;
	host_to_proto(v, &vs, hb);
	if ((r = linux_to_proto(&vs, hb)) < 0 || (r = wasp_vcpu_to_proto(&vs, &vpb)) < 0)
		goto out;
	stats->capture_ns += wasp_now_ns() - t0;

	wasp__record__init(&rec);
	rec.body_case = WASP__RECORD__BODY_HOST;
	rec.host = &hb->host;
	if ((r = wasp_stream_write_record(w, &rec)) < 0)
		goto out;
	wasp__record__init(&rec);
	rec.body_case = WASP__RECORD__BODY_VCPU;
	rec.vcpu = vpb;
	if ((r = wasp_stream_write_record(w, &rec)) < 0)
		goto out;
	r = wasp_stream_writer_finish(w);
out:
	wasp_vcpu_proto_free(vpb);
	wasp_vstate_free(&vs);
	if (hb) {
		wasp_files_pb_free(&hb->written);
		free(hb->maps);
		free(hb->mapp);
	}
	free(hb);
	return r;
}

int wasp_ckpt_save(struct wasp_virtine *v, const struct wasp_save_opts *opts,
		   const struct wasp_sink *sink, struct wasp_ckpt_stats *stats)
{
	struct wasp_ckpt_stats local;
	struct wasp_save_opts defaults = {0};
	struct timed_sink ts = {.inner = sink};
	struct wasp_sink timed = {.write = timed_write, .ctx = &ts};
	struct wasp_stream_writer *w = NULL;
	uint64_t *pages = NULL, *dirty = NULL;
	uint64_t t0 = wasp_now_ns();
	size_t words = bitmap_words(v);
	int r;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	if (!opts)
		opts = &defaults;
	if (opts->incremental && opts->mappable)
		return wasp_fail(-EINVAL, "a mappable checkpoint is a full one, not incremental");
	if (opts->incremental && (!opts->parent_id || !wasp_virtine_dirty_active(v)))
		return wasp_fail(-ENOENT, "no parent checkpoint: take a full one first");

	/* Finish a pending out first, so the pages it wrote are in this one. */
	if ((r = wasp_virtine_complete_io(v)) < 0)
		return r;
	/* The pages dirtied since the last checkpoint: what an incremental one
	 * carries, and, for a full one, the baseline the next one counts from.
	 * Given back if this checkpoint fails, so none is ever lost. */
	if (wasp_virtine_dirty_active(v)) {
		if (!(dirty = calloc(words, sizeof *dirty))) {
			r = wasp_fail(-ENOMEM, "out of memory");
			goto out;
		}
		if ((r = wasp_virtine_dirty_fetch(v, dirty)) < 0)
			goto out;
	}

	if ((r = wasp_stream_writer_open(&timed, &w)) < 0 ||
	    (r = wasp_ckpt_write_header(w, v, opts->incremental, opts->parent_id, stats->id)) < 0)
		goto out;

	const uint8_t *mem = wasp_virtine_gpa(v, 0, wasp_virtine_mem_size(v));
	if (opts->incremental) {
		r = wasp_stream_write_memory(w, mem, wasp_virtine_mem_size(v), dirty, true, opts, stats);
	} else {
		/* Only pages the memfd holds data for: reading a hole would
		 * allocate it, and every one of them is zero anyway. */
		r = wasp_guest_data_pages(v, &pages);
		if (r == 0 && opts->mappable)
			r = wasp_stream_write_memory_mappable(w, mem, wasp_virtine_mem_size(v), pages,
							      stats);
		else if (r == 0)
			r = wasp_stream_write_memory(w, mem, wasp_virtine_mem_size(v), pages, false,
						     opts, stats);
	}
	/* A page lost under a file mapping read as zeros (vmm_map.c): do not
	 * save them as the guest's. */
	if (r == 0 && wasp_virtine_mem_lost(v))
		r = wasp_fail(-EIO, "guest memory was lost: the checkpoint file it was mapped from "
				    "was truncated");
	if (r < 0 || (r = wasp_ckpt_write_state(w, v, opts, stats)) < 0)
		goto out;
	if (opts->track_dirty && (r = wasp_virtine_dirty_start(v)) < 0)
		goto out;
	stats->incremental = opts->incremental;
	stats->bytes = wasp_stream_writer_bytes(w);
	stats->write_ns = ts.ns;
out:
	if (r < 0 && dirty)
		wasp_virtine_dirty_return(v, dirty);
	wasp_stream_writer_free(w);
	free(pages);
	free(dirty);
	stats->total_ns = wasp_now_ns() - t0;
	return r;
}

int wasp_ckpt_save_file(struct wasp_virtine *v, const struct wasp_save_opts *opts,
			const char *path, struct wasp_ckpt_stats *stats)
{
	struct wasp_ckpt_stats local;
	struct wasp_atomic_file f;
	if (!stats)
		stats = &local;
	int r = wasp_atomic_open(path, &f);
	if (r < 0)
		return r;
	struct wasp_sink sink = wasp_sink_fd(&f.fd);
	r = wasp_ckpt_save(v, opts, &sink, stats);
	if (r < 0) {
		wasp_atomic_abort(&f);
		return r;
	}
	/* fsync, rename and the directory's fsync are part of writing it. */
	uint64_t t0 = wasp_now_ns();
	r = wasp_atomic_commit(&f);
	uint64_t sync = wasp_now_ns() - t0;
	stats->write_ns += sync;
	stats->total_ns += sync;
	return r;
}

int wasp_ckpt_save_buffer(struct wasp_virtine *v, const struct wasp_save_opts *opts, void **buf,
			  size_t *len, struct wasp_ckpt_stats *stats)
{
	struct wasp_buffer_sink b = {0};
	struct wasp_sink sink = wasp_sink_buffer(&b);
	int r = wasp_ckpt_save(v, opts, &sink, stats);
	if (r < 0) {
		free(b.buf);
		return r;
	}
	*buf = b.buf;
	*len = b.len;
	return 0;
}

/* ---- restore ---------------------------------------------------------- */

static int check_header(const Wasp__Header *h)
{
	/* The stream reader already holds versions, sizes and ids to the
	 * rules; what is left is whether this host can take the guest. */
	if (h->has_abi_version && h->abi_version != WASP_ABI_VERSION)
		return wasp_fail(-EPROTONOSUPPORT, "checkpoint guest speaks ABI %u, this host %u",
				 h->abi_version, WASP_ABI_VERSION);
	char vendor[13];
	wasp_cpu_vendor(vendor);
	if (h->cpu_vendor && *h->cpu_vendor && strcmp(h->cpu_vendor, vendor))
		return wasp_fail(-ENOTSUP, "checkpoint was taken on a %s CPU, this host is %s",
				 h->cpu_vendor, vendor);
	return 0;
}

static void hex_id(char out[33], const uint8_t *id)
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* A restore in progress: one virtine, the memory applier, and the latest
 * host and vCPU records, across one stream or a chain of them. */
struct restore {
	const struct wasp_restore_opts *opts;
	struct wasp_ckpt_stats *stats;
	struct wasp_virtine *v;
	struct wasp_memory_applier *ap;
	Wasp__Record *host, *vcpu;
	uint8_t id[16];
	size_t mem_size;
	const int *map_fds; /* per source: a file that may be mapped, or -1 */
};

/* A mappable chunk of the first checkpoint: mapped copy-on-write. */
static int map_chunk(void *ctx, uint64_t first, uint64_t pages, int fd, uint64_t offset)
{
	struct restore *rs = ctx;
	int r = wasp_virtine_map_file(rs->v, first * 4096, pages * 4096, fd, offset);
	if (r == 0) {
		rs->stats->chunks++;
		rs->stats->pages += pages;
		rs->stats->mapped_pages += pages;
		rs->stats->raw_bytes += pages * 4096;
	}
	return r;
}

static void keep(Wasp__Record **slot, Wasp__Record *rec)
{
	if (*slot)
		wasp__record__free_unpacked(*slot, NULL);
	*slot = rec;
}

/* Reads stream number `index` of a chain into the restore: into a new
 * virtine, or, with merge_fd set (merging), into a bare memfd mapping. */
static int read_stream(struct restore *rs, const struct wasp_source *src, size_t index,
		       int *merge_fd, uint8_t **merge_mem)
{
	struct wasp_stream_reader *rd = NULL;
	Wasp__Record *rec = NULL;
	int r;

	if ((r = wasp_stream_reader_open(src, &rd)) < 0)
		goto out;
	if (index == 0 && !merge_mem && rs->map_fds && rs->map_fds[0] >= 0 && !rs->opts->no_map &&
	    (r = wasp_stream_reader_set_mapper(rd, rs->map_fds[0], map_chunk, rs)) < 0)
		goto out;
	if (rs->opts)
		wasp_stream_reader_set_max_bytes(rd, rs->opts->max_stream_bytes);
	if ((r = wasp_stream_read_record(rd, &rec)) == 0)
		r = wasp_fail(-EINVAL, "checkpoint has no header");
	if (r < 0)
		goto out;
	const Wasp__Header *h = rec->header; /* the reader checked record 0 is one */
	if ((r = check_header(h)) < 0)
		goto out;
	bool inc = h->kind == WASP__HEADER__KIND__INCREMENTAL;
	if (index == 0 && inc) {
		char p[33];
		hex_id(p, h->parent_id.data);
		r = wasp_fail(-ENOENT,
			      "this is an incremental checkpoint: restore it after its parent %s "
			      "(and that one's parents)", p);
		goto out;
	}
	if (index > 0) {
		char want[33], got[33];
		hex_id(want, rs->id);
		if (!inc) {
			r = wasp_fail(-EINVAL, "checkpoint %zu of the chain is a full one; only the first may be",
				      index + 1);
			goto out;
		}
		if (memcmp(h->parent_id.data, rs->id, 16)) {
			hex_id(got, h->parent_id.data);
			r = wasp_fail(-EINVAL,
				      "checkpoint %zu of the chain follows %s, not the one before it (%s)",
				      index + 1, got, want);
			goto out;
		}
		if (h->mem_size != rs->mem_size) {
			r = wasp_fail(-EINVAL, "checkpoint %zu of the chain has %llu bytes of memory, not %zu",
				      index + 1, (unsigned long long)h->mem_size, rs->mem_size);
			goto out;
		}
	}
	memcpy(rs->id, h->id.data, 16);
	if (index == 0 && merge_fd) {
		rs->mem_size = h->mem_size;
		*merge_fd = memfd_create("wasp-merge", MFD_CLOEXEC);
		if (*merge_fd < 0 || ftruncate(*merge_fd, (off_t)rs->mem_size) < 0) {
			r = wasp_fail(-errno, "memfd for merging: %s", strerror(errno));
			goto out;
		}
		*merge_mem = mmap(NULL, rs->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, *merge_fd, 0);
		if (*merge_mem == MAP_FAILED) {
			r = wasp_fail(-errno, "mmap for merging: %s", strerror(errno));
			goto out;
		}
		if ((r = wasp_memory_applier_new(*merge_mem, rs->mem_size, 0, &rs->ap)) < 0)
			goto out;
	} else if (index == 0) {
		struct wasp_config cfg;
		if (rs->opts->config)
			cfg = *rs->opts->config;
		else
			wasp_config_init(&cfg);
		cfg.mem_size = rs->mem_size = h->mem_size;
		if ((r = wasp_virtine_create(&cfg, &rs->v)) < 0 || (r = wasp_vstate_prepare(rs->v)) < 0)
			goto out;
		uint8_t *mem = wasp_virtine_gpa(rs->v, 0, cfg.mem_size);
		if ((r = wasp_memory_applier_new(mem, cfg.mem_size, rs->opts->threads, &rs->ap)) < 0)
			goto out;
	}
	wasp__record__free_unpacked(rec, NULL);
	rec = NULL;

	/* Every record up to a verified end. Memory goes straight into the new
	 * guest's memory, in stream order, so a later copy of a page wins. */
	while ((r = wasp_stream_read_record(rd, &rec)) > 0) {
		switch (rec->body_case) {
		case WASP__RECORD__BODY_MEMORY:
			rs->stats->chunks++;
			rs->stats->raw_bytes += rec->memory->raw_size;
			rs->stats->pages += rec->memory->raw_size / 4096;
			for (size_t i = 0; i < rec->memory->n_zero_ranges; i++)
				rs->stats->zero_pages += rec->memory->zero_ranges[i]->count;
			r = wasp_memory_applier_submit(rs->ap, rec);
			rec = NULL; /* the applier owns it now */
			if (r < 0)
				goto out;
			break;
		case WASP__RECORD__BODY_HOST:
			keep(&rs->host, rec);
			rec = NULL;
			break;
		case WASP__RECORD__BODY_VCPU:
			keep(&rs->vcpu, rec);
			rec = NULL;
			break;
		default:
			/* A record kind from a newer minor version: skip it. */
			wasp__record__free_unpacked(rec, NULL);
			rec = NULL;
			break;
		}
	}
	if (r == 0)
		rs->stats->bytes += wasp_stream_reader_bytes(rd);
out:
	if (rec)
		wasp__record__free_unpacked(rec, NULL);
	wasp_stream_reader_free(rd);
	return r;
}

int wasp_ckpt_header_info(const struct wasp_source *src, struct wasp_ckpt_info *info)
{
	struct wasp_stream_reader *rd = NULL;
	Wasp__Record *rec = NULL;
	int r = wasp_stream_reader_open(src, &rd);
	if (r == 0 && (r = wasp_stream_read_record(rd, &rec)) == 0)
		r = wasp_fail(-EINVAL, "checkpoint has no header");
	if (r > 0) {
		const Wasp__Header *h = rec->header; /* the reader checked record 0 is one */
		memset(info, 0, sizeof *info);
		memcpy(info->id, h->id.data, 16);
		info->incremental = h->kind == WASP__HEADER__KIND__INCREMENTAL;
		if (info->incremental)
			memcpy(info->parent_id, h->parent_id.data, 16);
		info->mem_size = h->mem_size;
		r = 0;
	}
	if (rec)
		wasp__record__free_unpacked(rec, NULL);
	wasp_stream_reader_free(rd);
	return r;
}

int wasp_ckpt_chain_check(const struct wasp_ckpt_info *infos, size_t n)
{
	char a[33], b[33];
	if (n && infos[0].incremental) {
		hex_id(a, infos[0].parent_id);
		return wasp_fail(-EINVAL, "checkpoint 1 of the chain is incremental: its parent %s comes first", a);
	}
	for (size_t i = 1; i < n; i++) {
		if (!infos[i].incremental)
			return wasp_fail(-EINVAL, "checkpoint %zu of the chain is a full one; only the first may be",
					 i + 1);
		if (memcmp(infos[i].parent_id, infos[i - 1].id, 16)) {
			hex_id(a, infos[i].parent_id);
			hex_id(b, infos[i - 1].id);
			return wasp_fail(-EINVAL,
					 "checkpoint %zu of the chain follows %s, not the one before it (%s)",
					 i + 1, a, b);
		}
		if (infos[i].mem_size != infos[0].mem_size)
			return wasp_fail(-EINVAL, "checkpoint %zu of the chain has another memory size", i + 1);
	}
	return 0;
}

static int restore_chain(const struct wasp_restore_opts *opts, const struct wasp_source *const *srcs,
			 const int *map_fds, size_t n, struct wasp_virtine **out,
			 struct wasp_ckpt_stats *stats)
{
	struct wasp_restore_opts defaults = {0};
	struct wasp_ckpt_stats local;
	struct wasp_vstate vs = {0};
	unsigned host_parts = 0;
	uint64_t t0 = wasp_now_ns();
	int r = 0;

	*out = NULL;
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	struct restore rs = {.opts = opts ? opts : &defaults, .stats = stats, .map_fds = map_fds};
	if (n == 0)
		return wasp_fail(-EINVAL, "no checkpoint to restore");

	for (size_t i = 0; i < n && r == 0; i++) {
		r = read_stream(&rs, srcs[i], i, NULL, NULL);
		if (r < 0 && n > 1)
			wasp_fail(r, "checkpoint %zu of %zu: %s", i + 1, n, wasp_last_error());
	}
	if (r < 0)
		goto out;
	if ((r = wasp_memory_applier_finish(rs.ap, stats)) < 0)
		goto out;
	stats->read_ns = wasp_now_ns() - t0;
	if (!rs.host || !rs.vcpu) {
		r = wasp_fail(-EINVAL, "checkpoint lacks its %s record", rs.host ? "vCPU" : "host");
		goto out;
	}

	uint64_t t1 = wasp_now_ns();
	/* The vmm loads the state in its one order (vmm_state.c); the
	 * written files and the allowed hypercalls, which only a checkpoint
	 * holds, go between the Linux personality and the open files. */
	if ((r = wasp_vcpu_from_proto(rs.vcpu->vcpu, &vs)) < 0 ||
	    (r = wasp_cpuid_check(vs.cpuid, rs.opts->simulate_missing_cpuid)) < 0 ||
	    (r = host_from_proto(rs.host->host, &vs, &host_parts)) < 0 ||
	    (r = wasp_vstate_load(rs.v, &vs, host_parts & WASP_VSTATE_LINUX, NULL, 0)) < 0 ||
	    (r = host_apply(rs.v, rs.host->host, rs.opts, stats)) < 0 ||
	    (r = wasp_vstate_load(rs.v, &vs,
				  (host_parts & ~(unsigned)WASP_VSTATE_LINUX) | WASP_VSTATE_VCPU |
					  WASP_VSTATE_MODE | WASP_VSTATE_VERIFY,
				  stats->unrestored, sizeof stats->unrestored)) < 0)
		goto out;
	stats->apply_ns = wasp_now_ns() - t1;
	memcpy(stats->id, rs.id, 16);
	*out = rs.v;
	rs.v = NULL;
out:
	keep(&rs.host, NULL);
	keep(&rs.vcpu, NULL);
	wasp_vstate_free(&vs);
	wasp_memory_applier_free(rs.ap);
	wasp_virtine_destroy(rs.v);
	stats->total_ns = wasp_now_ns() - t0;
	return r;
}

int wasp_ckpt_restore_chain(const struct wasp_restore_opts *opts,
			    const struct wasp_source *const *srcs, size_t n,
			    struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	return restore_chain(opts, srcs, NULL, n, out, stats);
}

int wasp_ckpt_restore(const struct wasp_restore_opts *opts, const struct wasp_source *src,
		      struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	return wasp_ckpt_restore_chain(opts, &src, 1, out, stats);
}

/* Opens the files of a chain as sources (`*opened` counts the fds to
 * close, also on failure). */
static int open_chain(const char *const *paths, size_t n, int *fds, struct wasp_source *srcs,
		      const struct wasp_source **ptrs, size_t *opened)
{
	for (; *opened < n; (*opened)++) {
		size_t i = *opened;
		fds[i] = open(paths[i], O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			return wasp_fail(-errno, "%s: %s", paths[i], strerror(errno));
		srcs[i] = wasp_source_fd(&fds[i]);
		ptrs[i] = &srcs[i];
	}
	return 0;
}

int wasp_ckpt_restore_files(const struct wasp_restore_opts *opts, const char *const *paths,
			    size_t n, struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	int fds[64] = {0};
	struct wasp_source srcs[64];
	const struct wasp_source *ptrs[64] = {0};
	size_t opened = 0;
	int r = 0;

	*out = NULL;
	if (n > 64)
		return wasp_fail(-E2BIG, "a chain of %zu checkpoints; at most 64", n);
	if ((r = open_chain(paths, n, fds, srcs, ptrs, &opened)) < 0)
		goto out;
	/* The files are ours, at offset 0: the first may be mapped. */
	r = restore_chain(opts, ptrs, fds, n, out, stats);
	if (r < 0 && n == 1)
		wasp_fail(r, "%s: %s", paths[0], wasp_last_error());
out:
	while (opened > 0)
		close(fds[--opened]);
	return r;
}

/* wasp_ckpt_merge() with each link's name for its errors (NULL: "link N"). */
static int merge(const struct wasp_source *const *srcs, const char *const *names, size_t n,
		 const struct wasp_sink *sink, const struct wasp_save_opts *opts,
		 struct wasp_ckpt_stats *stats)
{
	/* At the stream level, no KVM and no files: the chain's memory is
	 * applied into a memfd (holes stay holes), the last host and vCPU
	 * records are carried over as they are. */
	struct wasp_ckpt_stats local;
	struct wasp_save_opts full = opts ? *opts : (struct wasp_save_opts){0};
	struct restore rs = {0};
	struct wasp_stream_writer *w = NULL;
	uint64_t *pages = NULL;
	uint8_t *mem = MAP_FAILED;
	int memfd = -1, r = 0;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	full.incremental = false;
	if (n == 0 || n > 64)
		return wasp_fail(-EINVAL, "a chain of %zu checkpoints to merge (1..64)", n);
	rs.stats = stats;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = read_stream(&rs, srcs[i], i, &memfd, &mem);
		if (r < 0 && names)
			wasp_fail(r, "%s: %s", names[i], wasp_last_error());
		else if (r < 0)
			wasp_fail(r, "link %zu of the chain: %s", i + 1, wasp_last_error());
	}
	if (r < 0 || (r = wasp_memory_applier_finish(rs.ap, stats)) < 0)
		goto out;
	if (!rs.host || !rs.vcpu) {
		r = wasp_fail(-EINVAL, "the chain lacks its %s record", rs.host ? "vCPU" : "host");
		goto out;
	}

	if ((r = wasp_stream_writer_open(sink, &w)) < 0 ||
	    (r = write_header_raw(w, rs.mem_size, stats->id,
				  rs.host->host && rs.host->host->linux_state)) < 0 ||
	    (r = wasp_memfd_data_pages(memfd, rs.mem_size, &pages)) < 0)
		goto out;
	memset(&local, 0, sizeof local);
	if ((r = wasp_stream_write_memory(w, mem, rs.mem_size, pages, false, &full, &local)) < 0 ||
	    (r = wasp_stream_write_record(w, rs.host)) < 0 ||
	    (r = wasp_stream_write_record(w, rs.vcpu)) < 0 || (r = wasp_stream_writer_finish(w)) < 0)
		goto out;
	stats->bytes = wasp_stream_writer_bytes(w);
out:
	wasp_stream_writer_free(w);
	free(pages);
	keep(&rs.host, NULL);
	keep(&rs.vcpu, NULL);
	wasp_memory_applier_free(rs.ap);
	if (mem != MAP_FAILED)
		munmap(mem, rs.mem_size);
	if (memfd >= 0)
		close(memfd);
	return r;
}

int wasp_ckpt_merge(const struct wasp_source *const *srcs, size_t n, const struct wasp_sink *sink,
		    const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats)
{
	return merge(srcs, NULL, n, sink, opts, stats);
}

int wasp_ckpt_merge_files(const char *const *paths, size_t n, const char *out_path,
			  const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats)
{
	struct wasp_atomic_file f = {.fd = -1};
	struct wasp_source srcs[64];
	const struct wasp_source *ps[64];
	int fds[64], r = 0;
	size_t opened = 0;

	if (n == 0 || n > 64)
		return wasp_fail(-EINVAL, "a chain of %zu checkpoints to merge (1..64)", n);
	if ((r = open_chain(paths, n, fds, srcs, ps, &opened)) < 0)
		goto out;
	/* The output file only once every link opened: a missing one leaves
	 * no temporary file behind. */
	if ((r = wasp_atomic_open(out_path, &f)) < 0)
		goto out;
	struct wasp_sink sink = wasp_sink_fd(&f.fd);
	if ((r = merge(ps, paths, n, &sink, opts, stats)) == 0)
		r = wasp_atomic_commit(&f);
out:
	if (r < 0)
		wasp_atomic_abort(&f);
	while (opened > 0)
		close(fds[--opened]);
	return r;
}

int wasp_ckpt_restore_file(const struct wasp_restore_opts *opts, const char *path,
			   struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	return wasp_ckpt_restore_files(opts, &path, 1, out, stats);
}

int wasp_ckpt_restore_buffer(const struct wasp_restore_opts *opts, const void *buf, size_t len,
			     struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	struct wasp_buffer_source b = {.buf = buf, .len = len};
	struct wasp_source src = wasp_source_buffer(&b);
	return wasp_ckpt_restore(opts, &src, out, stats);
}
