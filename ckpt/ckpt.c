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
};

static void host_to_proto(struct wasp_virtine *v, struct host_pb *b)
{
	Wasp__Host *h = &b->host;
	wasp__host__init(h);
	unsigned fd;
	const char *path;
	int flags;
	int64_t offset;
	for (unsigned i = 0; h->n_files < 64; i++) {
		int k = wasp_virtine_file_at(v, i, &fd, &path, &flags, &offset);
		if (k < 0)
			break;
		if (k == 0)
			continue;
		Wasp__OpenFile *f = &b->files[h->n_files];
		wasp__open_file__init(f);
		f->guest_fd = fd;
		f->path = (char *)path;
		f->flags = (uint32_t)flags;
		f->offset = offset > 0 ? (uint64_t)offset : 0;
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
	size_t len;
	const void *arg = wasp_virtine_arg(v, &len);
	if (arg) {
		h->has_arg = true;
		h->arg.data = (uint8_t *)arg;
		h->arg.len = len;
	}
	const void *ret = wasp_virtine_ret(v, &len);
	if (ret) {
		h->has_ret = true;
		h->ret.data = (uint8_t *)ret;
		h->ret.len = len;
	}
	h->has_snapshot_marks = true;
	h->snapshot_marks = wasp_virtine_snapshot_marks(v);
	h->has_hypercall_pending = true;
	h->hypercall_pending = wasp_virtine_hypercall_pending(v);
	h->has_console_bytes = true;
	h->console_bytes = wasp_virtine_console_bytes(v);
}

static int host_apply(struct wasp_virtine *v, const Wasp__Host *h, const char *allow)
{
	int r;
	for (size_t i = 0; i < h->n_files; i++) {
		const Wasp__OpenFile *f = h->files[i];
		if (f->offset > INT64_MAX)
			return wasp_fail(-EINVAL, "checkpoint file '%s' has offset %llu", f->path,
					 (unsigned long long)f->offset);
		r = wasp_virtine_file_restore(v, f->guest_fd, f->path, (int)f->flags, (int64_t)f->offset);
		if (r < 0)
			return r;
	}
	if (allow) {
		r = wasp_virtine_allow(v, allow);
		if (r < 0)
			return r;
	} else {
		for (size_t i = 0; i < h->n_allowed; i++) {
			uint32_t nr = h->allowed[i];
			/* Embedder hypercalls must be registered again after a
			 * restore; their numbers mean nothing here until then. */
			if (nr >= WASP_HC_USER_BASE)
				continue;
			if (nr >= WASP_HC_MAX || !wasp_virtine_hypercall_name(v, nr))
				return wasp_fail(-ENOTSUP,
						 "the checkpoint allows hypercall %u, which this host does not have",
						 nr);
			if ((r = wasp_virtine_allow_nr(v, nr, true)) < 0)
				return r;
		}
	}
	if (h->has_arg && (r = wasp_virtine_set_arg(v, h->arg.data, h->arg.len)) < 0)
		return r;
	if (h->has_ret && (r = wasp_virtine_set_ret(v, h->ret.data, h->ret.len)) < 0)
		return r;
	wasp_virtine_set_snapshot_marks(v, h->snapshot_marks);
	wasp_virtine_set_hypercall_pending(v, h->hypercall_pending);
	wasp_virtine_set_console_bytes(v, h->console_bytes);
	return 0;
}

/* ---- save ------------------------------------------------------------- */

int wasp_ckpt_save(struct wasp_virtine *v, const struct wasp_save_opts *opts,
		   const struct wasp_sink *sink, struct wasp_ckpt_stats *stats)
{
	struct wasp_ckpt_stats local;
	struct wasp_save_opts defaults = {0};
	struct timed_sink ts = {.inner = sink};
	struct wasp_sink timed = {.write = timed_write, .ctx = &ts};
	struct wasp_stream_writer *w = NULL;
	struct wasp_vcpu_state vs;
	Wasp__Vcpu *vpb = NULL;
	struct host_pb *hb = NULL;
	uint64_t *data = NULL;
	uint64_t t0 = wasp_now_ns();
	int r;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	if (!opts)
		opts = &defaults;

	r = wasp_vcpu_capture(v, &vs);
	if (r < 0)
		return r;
	hb = calloc(1, sizeof *hb);
	if (!hb) {
		r = wasp_fail(-ENOMEM, "out of memory");
		goto out;
	}
	host_to_proto(v, hb);
	if ((r = wasp_vcpu_to_proto(&vs, &vpb)) < 0)
		goto out;
	stats->capture_ns = wasp_now_ns() - t0;

	if ((r = wasp_stream_writer_open(&timed, &w)) < 0)
		goto out;

	Wasp__Header hdr;
	wasp__header__init(&hdr);
	uint8_t id[16];
	if (getrandom(id, sizeof id, 0) != sizeof id) {
		r = wasp_fail(-EIO, "getrandom: %s", strerror(errno));
		goto out;
	}
	char vendor[13];
	wasp_cpu_vendor(vendor);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	hdr.version_major = WASP_CKPT_VERSION_MAJOR;
	hdr.version_minor = WASP_CKPT_VERSION_MINOR;
	hdr.kind = WASP__HEADER__KIND__FULL;
	hdr.id.data = id;
	hdr.id.len = sizeof id;
	hdr.mem_size = wasp_virtine_mem_size(v);
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
	if ((r = wasp_stream_write_record(w, &rec)) < 0)
		goto out;
	wasp__record__init(&rec);
	rec.body_case = WASP__RECORD__BODY_HOST;
	rec.host = &hb->host;
	if ((r = wasp_stream_write_record(w, &rec)) < 0)
		goto out;

	/* Only pages the memfd holds data for: reading a hole would allocate
	 * it, and every one of them is zero anyway. */
	const uint8_t *mem = wasp_virtine_gpa(v, 0, wasp_virtine_mem_size(v));
	if ((r = wasp_memfd_data_pages(wasp_virtine_mem_fd(v), wasp_virtine_mem_size(v), &data)) < 0)
		goto out;
	r = wasp_stream_write_memory(w, mem, wasp_virtine_mem_size(v), data, false, opts, stats);
	if (r < 0)
		goto out;

	wasp__record__init(&rec);
	rec.body_case = WASP__RECORD__BODY_VCPU;
	rec.vcpu = vpb;
	if ((r = wasp_stream_write_record(w, &rec)) < 0 || (r = wasp_stream_writer_finish(w)) < 0)
		goto out;
	stats->bytes = wasp_stream_writer_bytes(w);
	stats->write_ns = ts.ns;
out:
	wasp_stream_writer_free(w);
	free(data);
	wasp_vcpu_proto_free(vpb);
	wasp_vcpu_state_free(&vs);
	free(hb);
	stats->total_ns = wasp_now_ns() - t0;
	return r;
}

int wasp_ckpt_save_file(struct wasp_virtine *v, const struct wasp_save_opts *opts,
			const char *path, struct wasp_ckpt_stats *stats)
{
	struct wasp_atomic_file f;
	int r = wasp_atomic_open(path, &f);
	if (r < 0)
		return r;
	struct wasp_sink sink = wasp_sink_fd(&f.fd);
	r = wasp_ckpt_save(v, opts, &sink, stats);
	if (r < 0) {
		wasp_atomic_abort(&f);
		return r;
	}
	return wasp_atomic_commit(&f);
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
	if (h->version_major > WASP_CKPT_VERSION_MAJOR)
		return wasp_fail(-EPROTONOSUPPORT,
				 "checkpoint format %u.%u is newer than this wasp (%u.%u)",
				 h->version_major, h->version_minor, WASP_CKPT_VERSION_MAJOR,
				 WASP_CKPT_VERSION_MINOR);
	if (h->version_major < 1)
		return wasp_fail(-EPROTONOSUPPORT, "checkpoint format %u.%u is unknown",
				 h->version_major, h->version_minor);
	if (h->kind != WASP__HEADER__KIND__FULL)
		return wasp_fail(-ENOTSUP, "incremental checkpoints cannot be restored yet");
	if (h->has_page_size && h->page_size != 4096)
		return wasp_fail(-EINVAL, "checkpoint page size %u, this host uses 4096", h->page_size);
	if (h->mem_size == 0 || h->mem_size % 4096 || h->mem_size > WASP_MEM_MAX)
		return wasp_fail(-EINVAL, "checkpoint guest memory size %llu is not valid",
				 (unsigned long long)h->mem_size);
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

int wasp_ckpt_restore(const struct wasp_restore_opts *opts, const struct wasp_source *src,
		      struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	struct wasp_restore_opts defaults = {0};
	struct wasp_ckpt_stats local;
	struct wasp_stream_reader *rd = NULL;
	struct wasp_memory_applier *ap = NULL;
	struct wasp_virtine *v = NULL;
	Wasp__Record *rec = NULL, *host = NULL, *vcpu = NULL;
	struct wasp_vcpu_state vs = {0};
	uint64_t t0 = wasp_now_ns();
	int r;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof *stats);

	if ((r = wasp_stream_reader_open(src, &rd)) < 0)
		goto out;
	r = wasp_stream_read_record(rd, &rec);
	if (r == 0)
		r = wasp_fail(-EINVAL, "checkpoint has no header");
	if (r < 0)
		goto out;
	if (rec->body_case != WASP__RECORD__BODY_HEADER) {
		r = wasp_fail(-EINVAL, "checkpoint does not start with a header record");
		goto out;
	}
	if ((r = check_header(rec->header)) < 0)
		goto out;

	struct wasp_config cfg;
	if (opts->config)
		cfg = *opts->config;
	else
		wasp_config_init(&cfg);
	cfg.mem_size = rec->header->mem_size;
	wasp__record__free_unpacked(rec, NULL);
	rec = NULL;
	if ((r = wasp_virtine_create(&cfg, &v)) < 0)
		goto out;
	uint8_t *mem = wasp_virtine_gpa(v, 0, cfg.mem_size);
	if ((r = wasp_memory_applier_new(mem, cfg.mem_size, opts->threads, &ap)) < 0)
		goto out;

	/* Every record up to a verified end. */
	while ((r = wasp_stream_read_record(rd, &rec)) > 0) {
		switch (rec->body_case) {
		case WASP__RECORD__BODY_MEMORY:
			if ((r = wasp_stream_check_chunk(rec->memory, cfg.mem_size)) < 0)
				goto out;
			stats->chunks++;
			stats->raw_bytes += rec->memory->raw_size;
			stats->pages += rec->memory->raw_size / 4096;
			for (size_t i = 0; i < rec->memory->n_zero_ranges; i++)
				stats->zero_pages += rec->memory->zero_ranges[i]->count;
			r = wasp_memory_applier_submit(ap, rec);
			rec = NULL; /* the applier owns it now */
			if (r < 0)
				goto out;
			break;
		case WASP__RECORD__BODY_HOST:
		case WASP__RECORD__BODY_VCPU: {
			Wasp__Record **slot = rec->body_case == WASP__RECORD__BODY_HOST ? &host : &vcpu;
			if (*slot) {
				r = wasp_fail(-EINVAL, "checkpoint has two %s records",
					      slot == &host ? "host" : "vCPU");
				goto out;
			}
			*slot = rec;
			rec = NULL;
			break;
		}
		case WASP__RECORD__BODY_HEADER:
			r = wasp_fail(-EINVAL, "checkpoint has a second header");
			goto out;
		default:
			/* A record kind from a newer minor version: skip it. */
			wasp__record__free_unpacked(rec, NULL);
			rec = NULL;
			break;
		}
	}
	if (r < 0)
		goto out;
	stats->bytes = wasp_stream_reader_bytes(rd);
	if ((r = wasp_memory_applier_finish(ap, stats)) < 0)
		goto out;
	stats->read_ns = wasp_now_ns() - t0;
	if (!host || !vcpu) {
		r = wasp_fail(-EINVAL, "checkpoint lacks its %s record", host ? "vCPU" : "host");
		goto out;
	}

	uint64_t t1 = wasp_now_ns();
	if ((r = wasp_vcpu_from_proto(vcpu->vcpu, &vs)) < 0 ||
	    (r = wasp_cpuid_check(vs.cpuid, opts->simulate_missing_cpuid)) < 0 ||
	    (r = host_apply(v, host->host, opts->allow)) < 0 ||
	    (r = wasp_vcpu_apply(v, &vs, stats->unrestored, sizeof stats->unrestored)) < 0)
		goto out;
	stats->apply_ns = wasp_now_ns() - t1;
	*out = v;
	v = NULL;
out:
	if (rec)
		wasp__record__free_unpacked(rec, NULL);
	if (host)
		wasp__record__free_unpacked(host, NULL);
	if (vcpu)
		wasp__record__free_unpacked(vcpu, NULL);
	wasp_vcpu_state_free(&vs);
	wasp_memory_applier_free(ap);
	wasp_stream_reader_free(rd);
	wasp_virtine_destroy(v);
	stats->total_ns = wasp_now_ns() - t0;
	return r;
}

int wasp_ckpt_restore_file(const struct wasp_restore_opts *opts, const char *path,
			   struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*out = NULL;
		return wasp_fail(-errno, "%s: %s", path, strerror(errno));
	}
	struct wasp_source src = wasp_source_fd(&fd);
	int r = wasp_ckpt_restore(opts, &src, out, stats);
	if (r < 0)
		wasp_fail(r, "%s: %s", path, wasp_last_error());
	close(fd);
	return r;
}

int wasp_ckpt_restore_buffer(const struct wasp_restore_opts *opts, const void *buf, size_t len,
			     struct wasp_virtine **out, struct wasp_ckpt_stats *stats)
{
	struct wasp_buffer_source b = {.buf = buf, .len = len};
	struct wasp_source src = wasp_source_buffer(&b);
	return wasp_ckpt_restore(opts, &src, out, stats);
}
