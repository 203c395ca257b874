/*
 * test_stream: the checkpoint stream layer (ckpt/ckpt_stream.h) without
 * KVM: CRC-32C, framing, memory chunks both ways, a decoder that must
 * reject every truncation and bit flip, limits, atomic files, inspect.
 * One case per invocation (`test_stream CASE`), exit 0 pass, 1 fail;
 * `test_stream bench` prints compression speeds and is not a ctest case.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "harness.h"
#include "ckpt_pb.h"
#include "ckpt_stream.h"

#define PAGE 4096u


/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

/* A guest image: ~30% zero pages, ~25% repeating patterns, ~25% text-like
 * (compressible), the rest random bytes (incompressible). */
static uint8_t *make_image(size_t size, int zero_pct)
{
	uint8_t *m = xmalloc(size);
	for (size_t p = 0; p < size / PAGE; p++) {
		uint8_t *pg = m + p * PAGE;
		unsigned k = (unsigned)(rnd() % 100);
		if (k < (unsigned)zero_pct) {
			memset(pg, 0, PAGE);
		} else if (k < (unsigned)zero_pct + 25) {
			uint64_t v = rnd();
			for (size_t i = 0; i < PAGE; i += 8)
				memcpy(pg + i, &v, 8);
		} else if (k < (unsigned)zero_pct + 50) {
			for (size_t i = 0; i < PAGE; i++)
				pg[i] = (uint8_t)("etaoin shrdlu"[rnd() % 13]);
		} else {
			for (size_t i = 0; i < PAGE; i += 8) {
				uint64_t v = rnd();
				memcpy(pg + i, &v, 8);
			}
		}
		if (k >= (unsigned)zero_pct && (rnd() & 1))
			pg[PAGE - 1] = 0; /* non-zero pages that end in zero bytes */
	}
	return m;
}

static const uint8_t test_id[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static void fill_header(Wasp__Header *h, uint64_t mem_size)
{
	wasp__header__init(h);
	h->version_major = 1;
	h->version_minor = WASP_CKPT_VERSION_MINOR_1;
	h->kind = WASP__HEADER__KIND__FULL;
	h->id.data = (uint8_t *)test_id;
	h->id.len = sizeof test_id;
	h->mem_size = mem_size;
	h->cpu_vendor = "GenuineIntel";
	h->has_created_unix_ns = true;
	h->created_unix_ns = 1700000000123456789ull;
	h->producer = "wasp test \"stream\"\n\x1b[31m";
	h->has_abi_version = true;
	h->abi_version = 1;
}

/* A vCPU record with every message part present. */
struct vcpu_pb {
	Wasp__Vcpu v;
	Wasp__Regs regs;
	Wasp__Sregs sregs;
	Wasp__Segment seg[8];
	Wasp__Dtable gdt, idt;
	Wasp__Msr msr[3], *msrp[3];
	Wasp__Xcr xcr, *xcrp[1];
	Wasp__CpuidEntry cpuid[2], *cpuidp[2];
	uint8_t xsave[4096];
};

static void fill_vcpu(struct vcpu_pb *b)
{
	memset(b, 0, sizeof *b);
	wasp__vcpu__init(&b->v);
	wasp__regs__init(&b->regs);
	wasp__sregs__init(&b->sregs);
	b->regs.rax = 0x1111;
	b->regs.rip = 0x401000;
	b->regs.rflags = 0x202;
	b->regs.r15 = 0xffffffffffffffffull;
	for (int i = 0; i < 8; i++) {
		wasp__segment__init(&b->seg[i]);
		b->seg[i].selector = (uint32_t)(i * 8);
		b->seg[i].limit = 0xffffffff;
		b->seg[i].type = 11;
		b->seg[i].present = 1;
		b->seg[i].l = 1;
	}
	Wasp__Segment **segs[8] = {&b->sregs.cs, &b->sregs.ds, &b->sregs.es, &b->sregs.fs,
				   &b->sregs.gs, &b->sregs.ss, &b->sregs.tr, &b->sregs.ldt};
	for (int i = 0; i < 8; i++)
		*segs[i] = &b->seg[i];
	wasp__dtable__init(&b->gdt);
	wasp__dtable__init(&b->idt);
	b->gdt.base_addr = 0x1000;
	b->gdt.limit = 0x37;
	b->sregs.gdt = &b->gdt;
	b->sregs.idt = &b->idt;
	b->sregs.cr0 = 0x80050033;
	b->sregs.cr3 = 0x2000;
	b->sregs.cr4 = 0x6a0;
	b->sregs.efer = 0xd01;
	b->v.regs = &b->regs;
	b->v.sregs = &b->sregs;
	for (int i = 0; i < 3; i++) {
		wasp__msr__init(&b->msr[i]);
		b->msr[i].index = 0xc0000080u + (uint32_t)i;
		b->msr[i].value = (uint64_t)i;
		b->msrp[i] = &b->msr[i];
	}
	b->v.n_msrs = 3;
	b->v.msrs = b->msrp;
	wasp__xcr__init(&b->xcr);
	b->xcr.value = 7;
	b->xcrp[0] = &b->xcr;
	b->v.n_xcrs = 1;
	b->v.xcrs = b->xcrp;
	for (int i = 0; i < 2; i++) {
		wasp__cpuid_entry__init(&b->cpuid[i]);
		b->cpuid[i].function = (uint32_t)i;
		b->cpuidp[i] = &b->cpuid[i];
	}
	b->v.n_cpuid = 2;
	b->v.cpuid = b->cpuidp;
	b->v.has_xsave = true;
	b->v.xsave.data = b->xsave;
	b->v.xsave.len = sizeof b->xsave;
	b->v.has_mp_state = true;
	b->v.mp_state = 0;
	b->v.has_tsc = true;
	b->v.tsc = 123456789;
	b->v.has_entry_mode = true;
	b->v.entry_mode = WASP_MODE_LONG;
}

struct host_pb {
	Wasp__Host h;
	Wasp__OpenFile f[2], *fp[2];
	uint32_t allowed[2];
	char *names[2];
};

static void fill_host(struct host_pb *b)
{
	memset(b, 0, sizeof *b);
	wasp__host__init(&b->h);
	for (int i = 0; i < 2; i++) {
		wasp__open_file__init(&b->f[i]);
		b->f[i].guest_fd = 3 + (uint32_t)i;
		b->fp[i] = &b->f[i];
	}
	b->f[0].path = "out.txt";
	b->f[0].flags = WASP_O_WRONLY | WASP_O_CREAT | WASP_O_TRUNC;
	b->f[0].offset = 12;
	b->f[1].path =
	    "dir/\xc3\xa9t\xc3\xa9 \"q\"\\\x01\xff.bin"; /* UTF-8, quote, control, bad byte */
	b->f[1].flags = WASP_O_RDONLY;
	b->h.n_files = 2;
	b->h.files = b->fp;
	b->allowed[0] = WASP_HC_EXIT;
	b->allowed[1] = WASP_HC_CONSOLE_WRITE;
	b->names[0] = "exit";
	b->names[1] = "console_write";
	b->h.n_allowed = 2;
	b->h.allowed = b->allowed;
	b->h.n_allowed_names = 2;
	b->h.allowed_names = b->names;
	b->h.has_arg = true;
	b->h.arg.data = (uint8_t *)"argument";
	b->h.arg.len = 8;
	b->h.has_snapshot_marks = true;
	b->h.snapshot_marks = 1;
	b->h.has_hypercall_pending = true;
	b->h.hypercall_pending = false;
	b->h.has_console_bytes = true;
	b->h.console_bytes = 42;
}

static int write_one(struct wasp_stream_writer *w, Wasp__Record__BodyCase kind, void *body)
{
	Wasp__Record rec = WASP__RECORD__INIT;
	rec.body_case = kind;
	rec.header = body; /* a union: any member */
	return wasp_stream_write_record(w, &rec);
}

/* A whole checkpoint of `mem` into a buffer: header, host, memory, vcpu, end. */
static struct wasp_buffer_sink full_stream(const uint8_t *mem, size_t size,
					   const struct wasp_save_opts *o,
					   struct wasp_ckpt_stats *st)
{
	struct wasp_buffer_sink b = {0};
	struct wasp_sink sink = wasp_sink_buffer(&b);
	struct wasp_stream_writer *w;
	Wasp__Header h;
	struct host_pb host;
	struct vcpu_pb *vcpu = xmalloc(sizeof *vcpu);
	int r;

	fill_header(&h, size);
	fill_host(&host);
	fill_vcpu(vcpu);
	r = wasp_stream_writer_open(&sink, &w);
	CHECK(r == 0, "open %d", r);
	CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
	CHECK(write_one(w, WASP__RECORD__BODY_HOST, &host.h) == 0, "host");
	r = wasp_stream_write_memory(w, mem, size, NULL, false, o, st);
	CHECK(r == 0, "memory %d", r);
	CHECK(write_one(w, WASP__RECORD__BODY_VCPU, &vcpu->v) == 0, "vcpu");
	CHECK(wasp_stream_writer_finish(w) == 0, "finish");
	CHECK(wasp_stream_writer_bytes(w) == b.len, "bytes %" PRIu64 " vs %zu",
	      wasp_stream_writer_bytes(w), b.len);
	wasp_stream_writer_free(w);
	free(vcpu);
	return b;
}

struct read_result {
	int err;
	char msg[512];
	unsigned headers, vcpus, hosts, memories;
	uint64_t pages;
};

/* Reads a stream from a buffer, applying memory into mem (if not NULL). */
static struct read_result read_stream(const uint8_t *buf, size_t len, uint8_t *mem, size_t mem_size,
				      int threads)
{
	struct read_result res = {0};
	struct wasp_buffer_source bs = {.buf = buf, .len = len};
	struct wasp_source src = wasp_source_buffer(&bs);
	struct wasp_stream_reader *r = NULL;
	struct wasp_memory_applier *a = NULL;
	Wasp__Record *rec;
	int err;

	err = wasp_stream_reader_open(&src, &r);
	if (err == 0 && mem)
		err = wasp_memory_applier_new(mem, mem_size, threads, &a);
	while (err == 0 && (err = wasp_stream_read_record(r, &rec)) > 0) {
		err = 0;
		switch (rec->body_case) {
		case WASP__RECORD__BODY_HEADER:
			res.headers++;
			break;
		case WASP__RECORD__BODY_VCPU:
			res.vcpus++;
			break;
		case WASP__RECORD__BODY_HOST:
			res.hosts++;
			break;
		case WASP__RECORD__BODY_MEMORY:
			res.memories++;
			for (size_t i = 0; i < rec->memory->n_ranges; i++)
				res.pages += rec->memory->ranges[i]->count;
			if (a) {
				err = wasp_memory_applier_submit(a, rec);
				continue;
			}
			break;
		default:
			break;
		}
		wasp__record__free_unpacked(rec, NULL);
	}
	if (err < 0)
		snprintf(res.msg, sizeof res.msg, "%s", wasp_last_error());
	if (a) {
		int f = wasp_memory_applier_finish(a, NULL);
		if (err == 0 && f < 0) {
			err = f;
			snprintf(res.msg, sizeof res.msg, "%s", wasp_last_error());
		}
	}
	if (err == 0 && r && wasp_stream_reader_bytes(r) != len) {
		err = -EIO;
		snprintf(res.msg, sizeof res.msg, "reader consumed %" PRIu64 " of %zu",
			 wasp_stream_reader_bytes(r), len);
	}
	wasp_memory_applier_free(a);
	wasp_stream_reader_free(r);
	res.err = err;
	return res;
}

/* Hand-made streams: frames appended to a buffer, end record computed. */
static void put_frame(struct wasp_buffer_sink *b, const void *bytes, size_t len)
{
	struct wasp_sink s = wasp_sink_buffer(b);
	uint8_t v[10];
	size_t n = 0;
	uint64_t x = len;
	while (x >= 0x80) {
		v[n++] = (uint8_t)(x | 0x80);
		x >>= 7;
	}
	v[n++] = (uint8_t)x;
	s.write(s.ctx, v, n);
	s.write(s.ctx, bytes, len);
}

static void put_record(struct wasp_buffer_sink *b, const Wasp__Record *rec)
{
	size_t len = wasp__record__get_packed_size(rec);
	uint8_t *p = xmalloc(len);
	wasp__record__pack(rec, p);
	put_frame(b, p, len);
	free(p);
}

static void put_raw(struct wasp_buffer_sink *b, const void *bytes, size_t len)
{
	struct wasp_sink s = wasp_sink_buffer(b);
	s.write(s.ctx, bytes, len);
}

static struct wasp_buffer_sink hand_start(uint64_t mem_size, Wasp__Header *override)
{
	struct wasp_buffer_sink b = {0};
	Wasp__Header h;
	Wasp__Record rec = WASP__RECORD__INIT;

	fill_header(&h, mem_size);
	put_raw(&b, WASP_STREAM_MAGIC, WASP_STREAM_MAGIC_LEN);
	rec.body_case = WASP__RECORD__BODY_HEADER;
	rec.header = override ? override : &h;
	put_record(&b, &rec);
	return b;
}

/* Appends an end record; the deltas make it lie. */
static void hand_end(struct wasp_buffer_sink *b, uint64_t records, uint64_t pages, int64_t d_bytes,
		     uint32_t crc_xor)
{
	Wasp__Record rec = WASP__RECORD__INIT;
	Wasp__End e = WASP__END__INIT;
	e.records = records;
	e.bytes = b->len + (uint64_t)d_bytes;
	e.pages = pages;
	e.crc32c = wasp_crc32c(0, b->buf, b->len) ^ crc_xor;
	rec.body_case = WASP__RECORD__BODY_END;
	rec.end = &e;
	put_record(b, &rec);
}

static bool contains(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

/* ---- cases ------------------------------------------------------------ */

static void t_crc(void)
{
	static const struct {
		const char *s;
		size_t len;
		uint32_t crc;
	} v[] = {
	    {"", 0, 0},
	    {"123456789", 9, 0xe3069283},
	    {"a", 1, 0xc1d04330},
	    {"The quick brown fox jumps over the lazy dog", 43, 0x22620404},
	};
	uint8_t zeros[32] = {0}, ones[32], inc[32];

	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		CHECK(wasp_crc32c(0, v[i].s, v[i].len) == v[i].crc, "\"%s\": 0x%08x", v[i].s,
		      wasp_crc32c(0, v[i].s, v[i].len));
		CHECK(wasp_crc32c_sw(0, v[i].s, v[i].len) == v[i].crc, "sw \"%s\"", v[i].s);
	}
	/* RFC 3720 (iSCSI) B.4 vectors */
	memset(ones, 0xff, sizeof ones);
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	CHECK(wasp_crc32c(0, zeros, 32) == 0x8a9136aa, "zeros 0x%08x", wasp_crc32c(0, zeros, 32));
	CHECK(wasp_crc32c(0, ones, 32) == 0x62a8ab43, "ones");
	CHECK(wasp_crc32c(0, inc, 32) == 0x46dd794e, "incrementing");
	CHECK(wasp_crc32c_sw(0, inc, 32) == 0x46dd794e, "sw incrementing");

	/* Hardware and table agree at every length and alignment; split = whole. */
	uint8_t *buf = xmalloc(5000);
	for (size_t i = 0; i < 5000; i++)
		buf[i] = (uint8_t)rnd();
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len < 300; len += 1 + len / 16) {
			uint32_t a = wasp_crc32c(0, buf + off, len),
				 b = wasp_crc32c_sw(0, buf + off, len);
			CHECK(a == b, "off %zu len %zu: 0x%08x vs 0x%08x", off, len, a, b);
		}
	uint32_t whole = wasp_crc32c(0, buf, 5000);
	for (size_t cut = 0; cut <= 5000; cut += 1 + cut / 3) {
		uint32_t c = wasp_crc32c_combine(wasp_crc32c(0, buf, cut),
						 wasp_crc32c(0, buf + cut, 5000 - cut), 5000 - cut);
		CHECK(c == whole, "combine at %zu: 0x%08x vs 0x%08x", cut, c, whole);
	}
	CHECK(wasp_crc32c_combine(0x12345678, 0, 0) == 0x12345678, "combine with nothing");
	CHECK(wasp_crc32c_combine(0, wasp_crc32c(0, "123456789", 9), 9) == 0xe3069283,
	      "combine onto nothing");
	for (size_t cut = 0; cut <= 5000; cut += 333) {
		uint32_t s = wasp_crc32c(wasp_crc32c(0, buf, cut), buf + cut, 5000 - cut);
		CHECK(s == whole, "split at %zu", cut);
		CHECK(wasp_crc32c_sw(wasp_crc32c(0, buf, cut), buf + cut, 5000 - cut) == whole,
		      "mixed split");
	}
	free(buf);
}

static void t_roundtrip(void)
{
	struct wasp_buffer_sink b = {0};
	struct wasp_sink sink = wasp_sink_buffer(&b);
	struct wasp_stream_writer *w;
	struct wasp_stream_reader *r;
	Wasp__Header h;
	struct host_pb host;
	static struct vcpu_pb vcpu;
	Wasp__Record *rec;

	fill_header(&h, 1 << 20);
	fill_host(&host);
	fill_vcpu(&vcpu);
	CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
	CHECK(b.len == 8 && !memcmp(b.buf, "WASPCKPT", 8), "magic");
	CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
	CHECK(write_one(w, WASP__RECORD__BODY_HOST, &host.h) == 0, "host");
	CHECK(write_one(w, WASP__RECORD__BODY_VCPU, &vcpu.v) == 0, "vcpu");
	CHECK(write_one(w, WASP__RECORD__BODY_END, NULL) == -EINVAL, "end via write_record");
	size_t before_end = b.len;
	CHECK(wasp_stream_writer_finish(w) == 0, "finish");
	CHECK(wasp_stream_writer_finish(w) < 0, "second finish");
	CHECK(write_one(w, WASP__RECORD__BODY_HOST, &host.h) < 0, "write after finish");
	CHECK(wasp_stream_writer_bytes(w) == b.len, "bytes");
	wasp_stream_writer_free(w);

	struct wasp_buffer_source bs = {.buf = b.buf, .len = b.len};
	struct wasp_source src = wasp_source_buffer(&bs);
	CHECK(wasp_stream_reader_open(&src, &r) == 0, "reader open");
	CHECK(wasp_stream_read_record(r, &rec) == 1 && rec->body_case == WASP__RECORD__BODY_HEADER,
	      "header back");
	if (rec) {
		CHECK(rec->header->mem_size == 1 << 20 && rec->header->id.len == 16 &&
			  !memcmp(rec->header->id.data, test_id, 16) &&
			  !strcmp(rec->header->cpu_vendor, "GenuineIntel") &&
			  rec->header->created_unix_ns == 1700000000123456789ull,
		      "header fields");
		wasp__record__free_unpacked(rec, NULL);
	}
	CHECK(wasp_stream_read_record(r, &rec) == 1 && rec->body_case == WASP__RECORD__BODY_HOST,
	      "host back");
	if (rec) {
		CHECK(rec->host->n_files == 2 && !strcmp(rec->host->files[0]->path, "out.txt") &&
			  rec->host->files[0]->offset == 12 && rec->host->n_allowed_names == 2 &&
			  rec->host->console_bytes == 42,
		      "host fields");
		wasp__record__free_unpacked(rec, NULL);
	}
	CHECK(wasp_stream_read_record(r, &rec) == 1 && rec->body_case == WASP__RECORD__BODY_VCPU,
	      "vcpu back");
	if (rec) {
		CHECK(rec->vcpu->regs->rip == 0x401000 && rec->vcpu->regs->r15 == ~0ull &&
			  rec->vcpu->sregs->cr0 == 0x80050033 && rec->vcpu->xsave.len == 4096 &&
			  rec->vcpu->n_msrs == 3 && rec->vcpu->sregs->tr->selector == 48,
		      "vcpu fields");
		wasp__record__free_unpacked(rec, NULL);
	}
	CHECK(wasp_stream_read_record(r, &rec) == 0 && !rec, "end: %s", wasp_last_error());
	CHECK(wasp_stream_read_record(r, &rec) == 0, "end again");
	CHECK(wasp_stream_reader_bytes(r) == b.len, "reader bytes");
	CHECK(wasp_stream_reader_crc32c(r) == wasp_crc32c(0, b.buf, before_end), "crc 0x%08x",
	      wasp_stream_reader_crc32c(r));
	wasp_stream_reader_free(r);
	free(b.buf);
}

static void t_memory(void)
{
	const size_t size = 8u << 20;
	uint8_t *img = make_image(size, 30), *back = xmalloc(size);
	static const int threads[] = {1, 2, 4};
	static const size_t chunks[] = {4096, 65536, 1u << 20};
	uint64_t zero = 0;

	for (size_t p = 0; p < size / PAGE; p++) {
		static const uint8_t z[PAGE];
		zero += !memcmp(img + p * PAGE, z, PAGE);
	}
	for (size_t ti = 0; ti < 3; ti++)
		for (size_t ci = 0; ci < 3; ci++) {
			struct wasp_save_opts o = {.threads = threads[ti],
						   .chunk_size = chunks[ci]};
			struct wasp_ckpt_stats st = {0};
			struct wasp_buffer_sink b = full_stream(img, size, &o, &st);
			CHECK(st.pages + st.zero_pages == size / PAGE,
			      "pages %" PRIu64 " + %" PRIu64, st.pages, st.zero_pages);
			CHECK(st.zero_pages == zero, "zero pages %" PRIu64 " vs %" PRIu64,
			      st.zero_pages, zero);
			CHECK(st.raw_bytes == st.pages * PAGE, "raw bytes");
			CHECK(st.chunks >= (st.raw_bytes + chunks[ci] - 1) / chunks[ci],
			      "chunks %" PRIu64, st.chunks);
			for (int at = 1; at <= 3; at += 2) {
				memset(back, 0,
				       size); /* a full restore starts from zeroed memory */
				struct read_result res = read_stream(b.buf, b.len, back, size, at);
				CHECK(res.err == 0, "threads %d chunk %zu apply %d: %s",
				      threads[ti], chunks[ci], at, res.msg);
				CHECK(res.memories == st.chunks && res.pages == st.pages, "counts");
				CHECK(res.headers == 1 && res.hosts == 1 && res.vcpus == 1,
				      "records");
				CHECK(!memcmp(img, back, size),
				      "image differs (threads %d chunk %zu apply %d)", threads[ti],
				      chunks[ci], at);
			}
			free(b.buf);
		}
	free(img);
	free(back);
}

/* A selected subset of pages, zero pages listed, applied over other contents. */
static void t_memory_subset(void)
{
	const size_t size = 4u << 20, npages = size / PAGE;
	uint8_t *img = make_image(size, 30), *back = make_image(size, 10), *expect = xmalloc(size);
	uint64_t *bm = calloc((npages + 63) / 64, 8);
	uint64_t selected = 0, sel_zero = 0;
	static const uint8_t z[PAGE];

	memcpy(expect, back, size);
	for (size_t p = 0; p < npages; p++) {
		bool sel = (p / 7) % 3 == 0 || rnd() % 5 == 0 || p == npages - 1;
		if (!sel)
			continue;
		bm[p / 64] |= 1ull << (p % 64);
		selected++;
		sel_zero += !memcmp(img + p * PAGE, z, PAGE);
		memcpy(expect + p * PAGE, img + p * PAGE, PAGE);
	}
	for (int threads = 1; threads <= 3; threads++) {
		struct wasp_save_opts o = {.threads = threads, .chunk_size = 32768};
		struct wasp_ckpt_stats st = {0};
		struct wasp_buffer_sink b = {0};
		struct wasp_sink sink = wasp_sink_buffer(&b);
		struct wasp_stream_writer *w;
		Wasp__Header h;

		fill_header(&h, size);
		h.kind = WASP__HEADER__KIND__INCREMENTAL;
		h.has_parent_id = true;
		h.parent_id = h.id;
		CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
		CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
		CHECK(wasp_stream_write_memory(w, img, size, bm, true, &o, &st) == 0, "memory");
		CHECK(wasp_stream_writer_finish(w) == 0, "finish");
		wasp_stream_writer_free(w);
		CHECK(st.pages + st.zero_pages == selected,
		      "selected %" PRIu64 " got %" PRIu64 "+%" PRIu64, selected, st.pages,
		      st.zero_pages);
		CHECK(st.zero_pages == sel_zero, "zero");

		uint8_t *got = xmalloc(size);
		memcpy(got, back, size);
		struct read_result res = read_stream(b.buf, b.len, got, size, threads);
		CHECK(res.err == 0, "%s", res.msg);
		CHECK(!memcmp(got, expect, size), "subset image differs (threads %d)", threads);
		free(got);
		free(b.buf);
	}

	/* Only zero pages selected: records with zero ranges and no data. */
	memset(bm, 0, (npages + 63) / 64 * 8);
	for (size_t p = 0; p < npages; p++)
		if (!memcmp(img + p * PAGE, z, PAGE))
			bm[p / 64] |= 1ull << (p % 64);
	{
		struct wasp_buffer_sink b = {0};
		struct wasp_sink sink = wasp_sink_buffer(&b);
		struct wasp_stream_writer *w;
		struct wasp_ckpt_stats st = {0};
		Wasp__Header h;
		fill_header(&h, size);
		CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
		CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
		CHECK(wasp_stream_write_memory(w, img, size, bm, true, NULL, &st) == 0, "memory");
		CHECK(st.pages == 0 && st.chunks >= 1, "pages %" PRIu64 " chunks %" PRIu64,
		      st.pages, st.chunks);
		CHECK(wasp_stream_writer_finish(w) == 0, "finish");
		wasp_stream_writer_free(w);
		uint8_t *got = xmalloc(size);
		memset(got, 0x77, size);
		struct read_result res = read_stream(b.buf, b.len, got, size, 2);
		CHECK(res.err == 0, "%s", res.msg);
		for (size_t p = 0; p < npages; p++) {
			bool zero_page = !memcmp(img + p * PAGE, z, PAGE);
			CHECK(zero_page ? !memcmp(got + p * PAGE, z, PAGE) : got[p * PAGE] == 0x77,
			      "page %zu", p);
		}
		free(got);
		free(b.buf);
	}
	free(bm);
	free(img);
	free(back);
	free(expect);
}

/* The memory writer frames records by hand: they must be exactly what
 * protobuf-c packs, including zero ranges and stored chunks. */
static void t_memory_encoding(void)
{
	const size_t size = 2u << 20, npages = size / PAGE;
	uint8_t *img = make_image(size, 40);
	uint64_t *bm = calloc((npages + 63) / 64, 8);
	/* huge page numbers need long varints: a guest of 2^40 bytes is not
	 * allocated; the bitmap just selects pages of the 2 MiB image */
	for (size_t p = 0; p < npages; p++)
		if (p % 3)
			bm[p / 64] |= 1ull << (p % 64);
	for (int variant = 0; variant < 3; variant++) {
		struct wasp_save_opts o = {.threads = 2,
					   .chunk_size = variant == 0	? 4096
							 : variant == 1 ? 40960
									: 0};
		struct wasp_buffer_sink b = {0};
		struct wasp_sink sink = wasp_sink_buffer(&b);
		struct wasp_stream_writer *w;
		Wasp__Header h;
		fill_header(&h, size);
		CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
		CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
		CHECK(wasp_stream_write_memory(w, img, size, variant == 2 ? NULL : bm, variant != 2,
					       &o, NULL) == 0,
		      "memory");
		CHECK(wasp_stream_writer_finish(w) == 0, "finish");
		wasp_stream_writer_free(w);

		/* Walk the frames: re-pack each record and compare bytes. */
		size_t pos = 8, none = 0, frames = 0;
		while (pos < b.len) {
			uint64_t len = 0;
			int shift = 0;
			while (b.buf[pos] & 0x80)
				len |= (uint64_t)(b.buf[pos++] & 0x7f) << shift, shift += 7;
			len |= (uint64_t)b.buf[pos++] << shift;
			Wasp__Record *rec = wasp__record__unpack(NULL, len, b.buf + pos);
			CHECK(rec != NULL, "frame at %zu does not decode", pos);
			if (!rec)
				break;
			size_t plen = wasp__record__get_packed_size(rec);
			uint8_t *pk = xmalloc(plen);
			wasp__record__pack(rec, pk);
			CHECK(plen == len && !memcmp(pk, b.buf + pos, len),
			      "frame %zu (%s) is not canonical", frames,
			      rec->body_case == WASP__RECORD__BODY_MEMORY ? "memory" : "other");
			if (rec->body_case == WASP__RECORD__BODY_MEMORY && rec->memory->has_codec)
				none++;
			free(pk);
			wasp__record__free_unpacked(rec, NULL);
			pos += len;
			frames++;
		}
		if (variant == 0) /* one-page chunks: random pages do not compress */
			CHECK(none > 0, "no stored (incompressible) chunk seen");
		free(b.buf);
	}
	free(bm);
	free(img);
}

/* ---- the hand-written protobuf framing (ckpt/ckpt_pb.h) ---------------- */

/* The wire type protobuf gives a field. */
static int wire_of(const ProtobufCFieldDescriptor *f)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED && (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED))
		return WASP_PB_LEN;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_BOOL:
	case PROTOBUF_C_TYPE_ENUM:
		return WASP_PB_VARINT;
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return WASP_PB_I32;
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return WASP_PB_I64;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return WASP_PB_LEN;
	}
	return -1;
}

static const struct wasp_pb_field *pb_row(const char *name)
{
	for (size_t i = 0; i < wasp_pb_nfields; i++)
		if (!strcmp(wasp_pb_fields[i].name, name))
			return &wasp_pb_fields[i];
	return NULL;
}

/* Every tag ckpt_pb.c writes or expects is the one protobuf-c's descriptors
 * of formats/checkpoint.proto give that field, so renumbering a field there
 * fails here rather than in users' checkpoints; and the bytes are the ones
 * formats/stream.md documents, so changing both at once fails too. */
static void t_pb_tags(void)
{
	static const struct {
		const char *name;
		uint8_t tag;
	} documented[] = {
	    {"RECORD_MEMORY", 0x1a},	 {"RECORD_PAD", 0x32},	{"CHUNK_RANGES", 0x0a},
	    {"CHUNK_RAW_SIZE", 0x10},	 {"CHUNK_CODEC", 0x18}, {"CHUNK_DATA", 0x22},
	    {"CHUNK_ZERO_RANGES", 0x2a}, {"RANGE_FIRST", 0x08}, {"RANGE_COUNT", 0x10},
	};
	CHECK(wasp_pb_nfields == sizeof documented / sizeof *documented,
	      "%zu hand-framed fields, %zu documented", wasp_pb_nfields,
	      sizeof documented / sizeof *documented);
	for (size_t i = 0; i < wasp_pb_nfields; i++) {
		const struct wasp_pb_field *row = &wasp_pb_fields[i];
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(row->message, row->field);
		CHECK(f != NULL, "%s: checkpoint.proto's %s has no field %s", row->name,
		      row->message->name, row->field);
		if (!f)
			continue;
		CHECK(row->tag >> 3 == f->id,
		      "%s: tag 0x%02x is field %u, checkpoint.proto numbers %s.%s %u", row->name,
		      row->tag, row->tag >> 3, row->message->name, f->name, f->id);
		CHECK((row->tag & 7) == wire_of(f),
		      "%s: tag 0x%02x has wire type %u, %s.%s takes %d", row->name, row->tag,
		      row->tag & 7, row->message->name, f->name, wire_of(f));
	}
	for (size_t i = 0; i < sizeof documented / sizeof *documented; i++) {
		const struct wasp_pb_field *row = pb_row(documented[i].name);
		CHECK(row && row->tag == documented[i].tag,
		      "%s: tag 0x%02x, formats/stream.md has 0x%02x", documented[i].name,
		      row ? row->tag : 0, documented[i].tag);
	}

	/* What else the framing relies on. Record.memory and .pad are arms
	 * of the record's oneof (a record is exactly one of them). */
	const ProtobufCFieldDescriptor *f;
	f = protobuf_c_message_descriptor_get_field_by_name(&wasp__record__descriptor, "memory");
	CHECK(f && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF), "Record.memory is not in a oneof");
	f = protobuf_c_message_descriptor_get_field_by_name(&wasp__record__descriptor, "pad");
	CHECK(f && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF), "Record.pad is not in a oneof");
	/* The codec is left out when it is the default, ZSTD, as protobuf-c
	 * packs it; NONE is the value written. */
	f = protobuf_c_message_descriptor_get_field_by_name(&wasp__memory_chunk__descriptor,
							    "codec");
	CHECK(f && f->default_value &&
		  *(const int *)f->default_value == WASP__MEMORY_CHUNK__CODEC__ZSTD,
	      "MemoryChunk.codec's default is not ZSTD");
	const ProtobufCEnumValue *none = protobuf_c_enum_descriptor_get_value_by_name(
	    &wasp__memory_chunk__codec__descriptor, "NONE");
	CHECK(none && none->value == WASP__MEMORY_CHUNK__CODEC__NONE && none->value < 0x80,
	      "MemoryChunk.Codec.NONE is not a one-byte %d", WASP__MEMORY_CHUNK__CODEC__NONE);
	/* Fields are written in the order protobuf-c packs them: by number. */
	static const char *const order[][5] = {
	    {"CHUNK_RANGES", "CHUNK_RAW_SIZE", "CHUNK_CODEC", "CHUNK_DATA", "CHUNK_ZERO_RANGES"},
	    {"RANGE_FIRST", "RANGE_COUNT"},
	};
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 1; i < 5 && order[k][i]; i++) {
			const struct wasp_pb_field *a = pb_row(order[k][i - 1]),
						   *b = pb_row(order[k][i]);
			CHECK(a && b && a->tag >> 3 < b->tag >> 3, "%s is not numbered below %s",
			      order[k][i - 1], order[k][i]);
		}
	/* A required field the framing does not write would make records
	 * no reader decodes. */
	const ProtobufCMessageDescriptor *msgs[] = {&wasp__memory_chunk__descriptor,
						    &wasp__page_range__descriptor};
	for (size_t m = 0; m < 2; m++)
		for (unsigned i = 0; i < msgs[m]->n_fields; i++) {
			const ProtobufCFieldDescriptor *g = &msgs[m]->fields[i];
			bool framed = false;
			for (size_t k = 0; k < wasp_pb_nfields; k++)
				framed |= wasp_pb_fields[k].message == msgs[m] &&
					  !strcmp(wasp_pb_fields[k].field, g->name);
			CHECK(framed || g->label != PROTOBUF_C_LABEL_REQUIRED,
			      "%s.%s is required but not framed by ckpt_pb.c", msgs[m]->name,
			      g->name);
		}

	/* Varints: the reader's rules (10 bytes at most, 64 bits). */
	uint8_t buf[16];
	uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX >> 1, UINT64_MAX};
	for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
		size_t n = wasp_pb_varint_put(buf, vals[i]), o = 0;
		uint64_t v;
		CHECK(n == wasp_pb_varint_len(vals[i]), "varint length of %" PRIu64, vals[i]);
		CHECK(wasp_pb_varint_get(buf, n, &o, &v) && v == vals[i] && o == n,
		      "varint %" PRIu64 " does not read back", vals[i]);
		o = 0;
		CHECK(n < 2 || !wasp_pb_varint_get(buf, n - 1, &o, &v), "cut varint read");
	}
	static const uint8_t over[][11] = {
	    {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02},	/* bit 64 */
	    {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00}, /* 11 bytes */
	};
	for (size_t i = 0; i < 2; i++) {
		size_t o = 0;
		uint64_t v;
		CHECK(!wasp_pb_varint_get(over[i], sizeof over[i], &o, &v), "bad varint %zu read",
		      i);
	}
	/* Pad records: every size from 3 up but the few varints skip. */
	static uint8_t pad[2 * PAGE + 16];
	for (size_t total = 0; total <= sizeof pad; total++) {
		bool ok = wasp_pb_pad_record(pad, total);
		CHECK(ok == !(total < 3 || total == 129 || total == 132),
		      "pad record of %zu bytes: %d", total, ok);
		if (!ok)
			continue;
		size_t o = 0;
		uint64_t len;
		CHECK(wasp_pb_varint_get(pad, total, &o, &len) && o + len == total, "pad %zu",
		      total);
		Wasp__Record *rec = wasp__record__unpack(NULL, len, pad + o);
		CHECK(rec && rec->body_case == WASP__RECORD__BODY_PAD &&
			  rec->pad.len == len - wasp_pb_len_size(rec->pad.len),
		      "pad record of %zu bytes does not decode", total);
		if (rec)
			wasp__record__free_unpacked(rec, NULL);
	}
}

struct map_seen {
	int fd;
	const uint8_t *img;
	unsigned maps;
	uint64_t pages;
};

static int map_check(void *ctx, uint64_t first, uint64_t pages, int fd, uint64_t offset)
{
	struct map_seen *s = ctx;
	uint8_t *got = xmalloc(pages * PAGE);
	CHECK(offset % PAGE == 0, "data of pages %" PRIu64 "+%" PRIu64 " at byte %" PRIu64, first,
	      pages, offset);
	CHECK(pread(fd, got, pages * PAGE, (off_t)offset) == (ssize_t)(pages * PAGE) &&
		  !memcmp(got, s->img + first * PAGE, pages * PAGE),
	      "mapped pages %" PRIu64 "+%" PRIu64 " are not the guest's", first, pages);
	free(got);
	s->maps++;
	s->pages += pages;
	return 0;
}

/* A mappable stream: every record exactly what protobuf-c packs, each
 * chunk's data page-aligned wherever in a page the memory starts (a pad
 * record of every size in front takes it through each offset), chunks the
 * reader recognises and maps, and memory that reads back. */
static void t_pb_mappable(void)
{
	const size_t size = 256 * PAGE, npages = size / PAGE;
	uint8_t *img = make_image(size, 0);
	uint64_t bm[256 / 64] = {0}, one[256 / 64] = {1ull << 3};
	/* Runs: 35 is 32 pages past 3 (bridged: one chunk of 34 pages), 69 is
	 * 33 past 36 (a new chunk), then a run of 40. */
	static const uint64_t on[][2] = {{3, 1}, {35, 2}, {69, 3}, {150, 40}};
	for (size_t i = 0; i < sizeof on / sizeof *on; i++)
		for (uint64_t p = on[i][0]; p < on[i][0] + on[i][1]; p++)
			bm[p / 64] |= 1ull << (p % 64);
	for (size_t p = 0; p < npages; p++)
		if (!(bm[p / 64] >> (p % 64) & 1) && !(p > 3 && p < 35))
			memset(img + p * PAGE, 0, PAGE); /* a hole reads as zeros */
	static uint8_t lead[2 * PAGE];
	bool *seen_at = calloc(PAGE, sizeof *seen_at);

	for (size_t k = 3; k < PAGE + 200; k++) {
		if (!wasp_pb_pad_record(lead, k))
			continue; /* 129, 132: no pad record has that size */
		struct wasp_buffer_sink b = {0};
		struct wasp_sink sink = wasp_sink_buffer(&b);
		struct wasp_stream_writer *w;
		struct wasp_ckpt_stats st = {0};
		Wasp__Header h;
		fill_header(&h, size);
		CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
		CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
		CHECK(wasp_stream_write_framed(w, lead, k, 0, wasp_crc32c(0, lead, k)) == 0,
		      "lead");
		seen_at[wasp_stream_writer_bytes(w) % PAGE] = true;
		/* the whole image every 64th time, else only page 3 */
		bool whole = k % 64 == 0;
		CHECK(wasp_stream_write_memory_mappable(w, img, size, whole ? bm : one, &st) == 0,
		      "mappable memory after %zu bytes: %s", k, wasp_last_error());
		CHECK(wasp_stream_writer_finish(w) == 0, "finish");
		wasp_stream_writer_free(w);
		CHECK(st.chunks == (whole ? 3 : 1) && st.pages == (whole ? 34 + 3 + 40 : 1),
		      "%" PRIu64 " chunks of %" PRIu64 " pages", st.chunks, st.pages);

		size_t pos = 8, memories = 0;
		while (pos < b.len) {
			size_t o = pos;
			uint64_t len;
			CHECK(wasp_pb_varint_get(b.buf, b.len, &o, &len) && o + len <= b.len,
			      "frame at %zu", pos);
			Wasp__Record *rec = wasp__record__unpack(NULL, len, b.buf + o);
			CHECK(rec != NULL, "frame at %zu does not decode", pos);
			if (!rec)
				break;
			size_t plen = wasp__record__get_packed_size(rec);
			uint8_t *pk = xmalloc(plen);
			wasp__record__pack(rec, pk);
			CHECK(plen == len && !memcmp(pk, b.buf + o, len),
			      "frame at %zu is not what protobuf-c packs", pos);
			free(pk);
			if (rec->body_case == WASP__RECORD__BODY_MEMORY) {
				struct wasp_pb_range r;
				size_t framing;
				memories++;
				CHECK(wasp_pb_mappable_head(b.buf + o, 64, len, &r, &framing),
				      "memory record at %zu is not mappable", pos);
				CHECK((o + framing) % PAGE == 0, "data of the record at %zu at %zu",
				      pos, o + framing);
				CHECK(rec->memory->n_ranges == 1 &&
					  r.first == rec->memory->ranges[0]->first &&
					  r.count == rec->memory->ranges[0]->count,
				      "range of the record at %zu", pos);
			}
			wasp__record__free_unpacked(rec, NULL);
			pos = o + len;
		}
		CHECK(memories == st.chunks, "%zu memory records", memories);

		if (whole) {
			uint8_t *back = xmalloc(size);
			memset(back, 0, size); /* a restore starts from zero pages */
			struct read_result rr = read_stream(b.buf, b.len, back, size, 2);
			CHECK(rr.err == 0 && !memcmp(back, img, size), "read back: %s", rr.msg);
			free(back);
		}
		if (k == 64) { /* from a file: the big chunks are mapped */
			int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
			CHECK(fd >= 0 && write(fd, b.buf, b.len) == (ssize_t)b.len &&
				  lseek(fd, 0, SEEK_SET) == 0,
			      "temporary file: %s", strerror(errno));
			struct wasp_source src = wasp_source_fd(&fd);
			struct wasp_stream_reader *r;
			struct map_seen seen = {.fd = fd, .img = img};
			Wasp__Record *rec;
			int err;
			CHECK(wasp_stream_reader_open(&src, &r) == 0, "reader");
			CHECK(wasp_stream_reader_set_mapper(r, fd, map_check, &seen) == 0,
			      "mapper");
			while ((err = wasp_stream_read_record(r, &rec)) > 0)
				wasp__record__free_unpacked(rec, NULL);
			CHECK(err == 0, "mapped read: %s", wasp_last_error());
			/* 34 and 40 pages are mapped; 3 (under 64 KiB) are read */
			CHECK(wasp_stream_reader_mapped(r) && seen.maps == 2 && seen.pages == 74,
			      "%u chunks of %" PRIu64 " pages mapped", seen.maps, seen.pages);
			wasp_stream_reader_free(r);
			close(fd);
		}
		free(b.buf);
	}
	size_t missed = 0;
	for (size_t i = 0; i < PAGE; i++)
		missed += !seen_at[i];
	CHECK(missed == 0, "memory never started at %zu of %u offsets in a page", missed, PAGE);
	free(seen_at);
	free(img);
}

/* Memory writer corners: sizes, options, stats, nothing to write. */
static void t_memory_edges(void)
{
	uint8_t *zero = calloc(1, 1 << 20), *img = make_image(1 << 20, 0);
	struct wasp_buffer_sink b = {0};
	struct wasp_sink sink = wasp_sink_buffer(&b);
	struct wasp_stream_writer *w;
	struct wasp_ckpt_stats st = {0};
	struct wasp_save_opts bad_level = {.level = 1000}, odd = {.chunk_size = 5000, .threads = 3},
			      big = {.chunk_size = 1ull << 30, .level = -5};

	CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
	CHECK(wasp_stream_write_memory(w, zero, 1 << 20, NULL, false, NULL, &st) == 0, "all zero");
	CHECK(st.pages == 0 && st.zero_pages == 256 && st.chunks == 0, "zero stats");
	CHECK(b.len == 8, "nothing written for an all-zero guest");
	CHECK(wasp_stream_write_memory(w, img, 1000, NULL, false, NULL, NULL) == -EINVAL,
	      "partial page");
	CHECK(wasp_stream_write_memory(w, img, 1 << 20, NULL, false, &bad_level, NULL) == -EINVAL,
	      "level");
	CHECK(wasp_stream_write_memory(w, img, 0, NULL, false, NULL, NULL) == 0, "empty guest");
	memset(&st, 0, sizeof st);
	CHECK(wasp_stream_write_memory(w, img, 1 << 20, NULL, false, &odd, &st) == 0,
	      "odd chunk size");
	CHECK(st.chunks == 256, "5000-byte chunks round to one page: %" PRIu64, st.chunks);
	memset(&st, 0, sizeof st);
	CHECK(wasp_stream_write_memory(w, img, 1 << 20, NULL, false, &big, &st) == 0,
	      "big chunk, negative level");
	CHECK(st.chunks == 1 && st.pages == 256 && st.compress_ns > 0, "one chunk");
	wasp_stream_writer_free(w);
	free(b.buf);
	free(zero);
	free(img);
}

static struct wasp_buffer_sink small_stream(void)
{
	const size_t size = 256u << 10;
	uint8_t *img = make_image(size, 30);
	/* mostly compressible, so the stream stays small enough to cut everywhere */
	for (size_t p = 0; p < size / PAGE; p++)
		if (p % 8)
			for (size_t i = 0; i < PAGE; i++)
				img[p * PAGE + i] = (uint8_t)(i * p % 7);
	struct wasp_save_opts o = {.threads = 2, .chunk_size = 16384};
	struct wasp_buffer_sink b = full_stream(img, size, &o, NULL);
	free(img);
	return b;
}

static void t_truncate(void)
{
	struct wasp_buffer_sink b = small_stream();
	uint8_t *mem = xmalloc(256u << 10);
	struct read_result ok = read_stream(b.buf, b.len, mem, 256u << 10, 2);

	CHECK(ok.err == 0, "whole stream: %s", ok.msg);
	printf("stream of %zu bytes, %u memory records\n", b.len, ok.memories);
	for (size_t cut = 0; cut < b.len; cut++) {
		struct read_result res =
		    read_stream(b.buf, cut, cut % 5 ? NULL : mem, 256u << 10, 1);
		CHECK(res.err < 0, "truncated at %zu of %zu was accepted", cut, b.len);
		if (cut >= 8)
			CHECK(contains(res.msg, "truncated") &&
				  (contains(res.msg, "record") || contains(res.msg, "magic")),
			      "cut %zu: message \"%s\"", cut, res.msg);
		if (failures > 10)
			break;
	}
	/* A few exact messages. */
	struct read_result res = read_stream(b.buf, 4, NULL, 0, 1);
	CHECK(contains(res.msg, "magic"), "%s", res.msg);
	res = read_stream(b.buf, 8, NULL, 0, 1);
	CHECK(contains(res.msg, "truncated: no end record"), "%s", res.msg);
	res = read_stream(b.buf, 20, NULL, 0, 1);
	CHECK(contains(res.msg, "truncated: record 0 at byte 8 needs"), "%s", res.msg);
	free(mem);
	free(b.buf);
}

static void t_bitflip(void)
{
	struct wasp_buffer_sink b = small_stream();
	uint8_t *mem = xmalloc(256u << 10), *copy = xmalloc(b.len);
	unsigned by_crc = 0;

	for (size_t off = 0; off < b.len; off++) {
		for (int bit = (int)(off % 8); bit < 8;
		     bit += off < 64 || off + 64 > b.len ? 1 : 8) {
			memcpy(copy, b.buf, b.len);
			copy[off] ^= (uint8_t)(1u << bit);
			struct read_result res =
			    read_stream(copy, b.len, off % 3 ? NULL : mem, 256u << 10, 2);
			CHECK(res.err < 0, "bit %d of byte %zu flipped was accepted", bit, off);
			by_crc += contains(res.msg, "checksum mismatch");
		}
		if (failures > 10)
			break;
	}
	printf("%zu bytes flipped, %u caught only by the checksum\n", b.len, by_crc);
	CHECK(by_crc > 0, "the checksum never mattered");
	free(copy);
	free(mem);
	free(b.buf);
}

/* Offset of the last frame (the end record) of a well-formed stream. */
static size_t end_offset(const uint8_t *buf, size_t len, uint64_t *records)
{
	size_t pos = 8, last = 8;
	*records = 0;
	while (pos < len) {
		uint64_t l = 0;
		int shift = 0;
		last = pos;
		while (buf[pos] & 0x80)
			l |= (uint64_t)(buf[pos++] & 0x7f) << shift, shift += 7;
		l |= (uint64_t)buf[pos++] << shift;
		pos += l;
		(*records)++;
	}
	(*records)--;
	return last;
}

/* A hostile producer: random damage with a correct end record and
 * checksum, so the checks behind the checksum are what stands. Each must
 * fail or succeed cleanly, never touch memory it should not (ASan). */
static void t_hostile(void)
{
	struct wasp_buffer_sink b = small_stream();
	uint8_t *mem = xmalloc(256u << 10);
	uint64_t records, pages = 0;
	size_t end = end_offset(b.buf, b.len, &records);
	unsigned ok = 0, fail = 0;
	struct read_result res = read_stream(b.buf, b.len, mem, 256u << 10, 2);

	CHECK(res.err == 0, "%s", res.msg);
	pages = res.pages;
	for (int iter = 0; iter < 3000; iter++) {
		struct wasp_buffer_sink m = {0};
		put_raw(&m, b.buf, end);
		int n = 1 + (int)(rnd() % 4);
		for (int k = 0; k < n; k++) {
			size_t at = 8 + (size_t)(rnd() % (end - 8));
			switch (rnd() % 3) {
			case 0:
				m.buf[at] = (uint8_t)rnd();
				break;
			case 1:
				m.buf[at] ^= (uint8_t)(1u << (rnd() % 8));
				break;
			case 2:
				m.buf[at] = (uint8_t)(rnd() % 2 ? 0 : 0xff);
				break;
			}
		}
		hand_end(&m, records, pages, 0, 0);
		res = read_stream(m.buf, m.len, mem, 256u << 10, 1 + iter % 3);
		res.err == 0 ? ok++ : fail++;
		free(m.buf);
	}
	printf("hostile streams: %u accepted (damage inside page data), %u refused\n", ok, fail);
	CHECK(fail > 0, "nothing was refused");
	free(mem);
	free(b.buf);
}

/* A source that hands out 1..13 bytes a read, like a slow pipe. */
static ssize_t trickle_read(void *ctx, void *buf, size_t len)
{
	struct wasp_buffer_source *b = ctx;
	size_t n = 1 + (size_t)(rnd() % 13);
	if (n > len)
		n = len;
	if (n > b->len - b->pos)
		n = b->len - b->pos;
	memcpy(buf, b->buf + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

static void t_short_reads(void)
{
	struct wasp_buffer_sink b = small_stream();
	uint8_t *mem = calloc(1, 256u << 10);
	for (int cut = 0; cut < 2; cut++) {
		struct wasp_buffer_source bs = {.buf = b.buf, .len = b.len - (size_t)cut};
		struct wasp_source src = {.read = trickle_read, .ctx = &bs};
		struct wasp_stream_reader *r;
		Wasp__Record *rec;
		int e, n = 0;
		CHECK(wasp_stream_reader_open(&src, &r) == 0, "open");
		while ((e = wasp_stream_read_record(r, &rec)) > 0) {
			n++;
			wasp__record__free_unpacked(rec, NULL);
		}
		if (cut)
			CHECK(e < 0 && contains(wasp_last_error(), "truncated"), "cut: %d", e);
		else
			CHECK(e == 0 && n > 3 && wasp_stream_reader_bytes(r) == b.len, "whole: %d",
			      e);
		wasp_stream_reader_free(r);
	}
	free(mem);
	free(b.buf);
}

static void t_bad_magic(void)
{
	struct read_result res;
	res = read_stream((const uint8_t *)"WASPCKPX\0\0", 10, NULL, 0, 1);
	CHECK(res.err == -EINVAL && contains(res.msg, "not a wasp checkpoint (bad magic)"), "%s",
	      res.msg);
	res = read_stream((const uint8_t *)"\x7f"
					   "ELF\2\1\1\0\0\0\0\0",
			  12, NULL, 0, 1);
	CHECK(contains(res.msg, "bad magic"), "%s", res.msg);
	res = read_stream((const uint8_t *)"", 0, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "not a wasp checkpoint"), "%s", res.msg);
	res = read_stream((const uint8_t *)"WASP", 4, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "truncated"), "%s", res.msg);
}

static void t_varint(void)
{
	struct wasp_buffer_sink b;
	struct read_result res;

	/* 11 continuation bytes: overlong */
	b = hand_start(1 << 20, NULL);
	put_raw(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "record 1 at byte") && contains(res.msg, "varint"),
	      "%s", res.msg);
	free(b.buf);
	/* 10 bytes whose last carries bits past 64 */
	b = hand_start(1 << 20, NULL);
	put_raw(&b, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "varint"), "%s", res.msg);
	free(b.buf);
	/* 2^63 as a length: valid varint, far over the limit */
	b = hand_start(1 << 20, NULL);
	put_raw(&b, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == -EFBIG && contains(res.msg, "exceeds"), "%s", res.msg);
	free(b.buf);
	/* just over the record limit */
	b = hand_start(1 << 20, NULL);
	uint8_t v[5];
	uint32_t x = WASP_STREAM_MAX_RECORD + 1;
	size_t n = 0;
	while (x >= 0x80)
		v[n++] = (uint8_t)(x | 0x80), x >>= 7;
	v[n++] = (uint8_t)x;
	put_raw(&b, v, n);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == -EFBIG && contains(res.msg, "record 1 at byte"), "%s", res.msg);
	free(b.buf);
	/* stream ends inside the length */
	b = hand_start(1 << 20, NULL);
	put_raw(&b, "\x80", 1);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "truncated") &&
		  contains(res.msg, "inside its length"),
	      "%s", res.msg);
	free(b.buf);
}

/* WASP_STREAM_MAX_RECORDS records of a kind this reader does not know
 * (skipped, but counted), then one more. */
static void t_record_limit(void)
{
	struct wasp_buffer_sink b = hand_start(1 << 20, NULL);
	size_t n = WASP_STREAM_MAX_RECORDS + 1;
	uint8_t *p;

	b.buf = realloc(b.buf, b.len + 3 * n + 64);
	b.cap = b.len + 3 * n + 64;
	p = b.buf + b.len;
	for (size_t i = 0; i < n; i++) {
		*p++ = 2;    /* length */
		*p++ = 0x7a; /* field 15, length-delimited */
		*p++ = 0;
	}
	b.len += 3 * n;
	struct read_result res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == -EFBIG && contains(res.msg, "more than") &&
		  contains(res.msg, "record 4194304 at byte"),
	      "%s", res.msg);
	free(b.buf);
}

static void t_record_rules(void)
{
	struct wasp_buffer_sink b;
	struct read_result res;
	Wasp__Record rec = WASP__RECORD__INIT;
	struct host_pb host;
	Wasp__Header h;

	fill_host(&host);

	/* A record with no kind at all */
	b = hand_start(1 << 20, NULL);
	put_frame(&b, "", 0);
	hand_end(&b, 2, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "record 1 at byte") && contains(res.msg, "empty"),
	      "%s", res.msg);
	free(b.buf);

	/* A record of a newer kind is skipped; the stream is whole. */
	b = hand_start(1 << 20, NULL);
	put_frame(&b, "\x7a\x03xyz", 5);
	hand_end(&b, 2, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == 0 && res.headers == 1, "unknown kind: %s", res.msg);
	free(b.buf);

	/* Garbage that does not decode */
	b = hand_start(1 << 20, NULL);
	put_frame(&b, "\x22\x05\x0a", 3);
	hand_end(&b, 2, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "record 1 at byte") &&
		  contains(res.msg, "does not decode"),
	      "%s", res.msg);
	free(b.buf);

	/* First record not a header */
	b = (struct wasp_buffer_sink){0};
	put_raw(&b, WASP_STREAM_MAGIC, 8);
	rec.body_case = WASP__RECORD__BODY_HOST;
	rec.host = &host.h;
	put_record(&b, &rec);
	hand_end(&b, 1, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "record 0 at byte 8 is not a header"), "%s",
	      res.msg);
	free(b.buf);

	/* Two headers, two hosts */
	b = hand_start(1 << 20, NULL);
	fill_header(&h, 1 << 20);
	rec.body_case = WASP__RECORD__BODY_HEADER;
	rec.header = &h;
	put_record(&b, &rec);
	hand_end(&b, 2, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "second header"), "%s", res.msg);
	free(b.buf);
	b = hand_start(1 << 20, NULL);
	rec.body_case = WASP__RECORD__BODY_HOST;
	rec.host = &host.h;
	put_record(&b, &rec);
	put_record(&b, &rec);
	hand_end(&b, 3, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "record 2 at byte") &&
		  contains(res.msg, "second host"),
	      "%s", res.msg);
	free(b.buf);

	/* Versions: a newer major is refused by name, a newer minor is read. */
	fill_header(&h, 1 << 20);
	h.version_major = WASP_CKPT_VERSION_MAJOR + 1;
	b = hand_start(1 << 20, &h);
	hand_end(&b, 1, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 &&
		  contains(res.msg, "checkpoint format 3.x is newer than this wasp (2.x)"),
	      "%s", res.msg);
	free(b.buf);
	fill_header(&h, 1 << 20);
	h.version_minor = 99;
	b = hand_start(1 << 20, &h);
	hand_end(&b, 1, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == 0, "minor 99: %s", res.msg);
	free(b.buf);

	/* Header fields the decoder refuses */
	struct {
		const char *what, *msg;
	} bad[] = {{"page size", "page size"},
		   {"mem size", "guest memory size"},
		   {"id", "id of"},
		   {"parent", "without a parent"},
		   {"major 0", "format 0."}};
	for (int i = 0; i < 5; i++) {
		fill_header(&h, 1 << 20);
		if (i == 0)
			h.has_page_size = true, h.page_size = 2u << 20;
		if (i == 1)
			h.mem_size = 4097;
		if (i == 2)
			h.id.len = 8;
		if (i == 3)
			h.kind = WASP__HEADER__KIND__INCREMENTAL;
		if (i == 4)
			h.version_major = 0;
		b = hand_start(1 << 20, &h);
		hand_end(&b, 1, 0, 0, 0);
		res = read_stream(b.buf, b.len, NULL, 0, 1);
		CHECK(res.err < 0 && contains(res.msg, bad[i].msg), "%s: %s", bad[i].what, res.msg);
		free(b.buf);
	}

	/* A chunk outside the header's memory is refused by the reader. */
	b = hand_start(1 << 20, NULL);
	{
		Wasp__MemoryChunk c = WASP__MEMORY_CHUNK__INIT;
		Wasp__PageRange r = WASP__PAGE_RANGE__INIT, *rp = &r;
		uint8_t page[PAGE] = {1};
		r.first = 256;
		r.count = 1;
		c.n_ranges = 1;
		c.ranges = &rp;
		c.raw_size = PAGE;
		c.has_codec = true;
		c.codec = WASP__MEMORY_CHUNK__CODEC__NONE;
		c.data.data = page;
		c.data.len = PAGE;
		rec.body_case = WASP__RECORD__BODY_MEMORY;
		rec.memory = &c;
		put_record(&b, &rec);
	}
	hand_end(&b, 2, 1, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "record 1 at byte") &&
		  contains(res.msg, "outside guest memory"),
	      "%s", res.msg);
	free(b.buf);
}

static void t_end_checks(void)
{
	struct read_result res;
	struct wasp_buffer_sink b;
	static const struct {
		uint64_t records, pages;
		int64_t d_bytes;
		uint32_t crc_xor;
		const char *msg;
	} cases[] = {
	    {1, 0, 0, 0, NULL},
	    {2, 0, 0, 0, "records"},
	    {0, 0, 0, 0, "records"},
	    {1, 1, 0, 0, "pages"},
	    {1, 0, 1, 0, "bytes"},
	    {1, 0, -1, 0, "bytes"},
	    {1, 0, 0, 1, "checksum mismatch"},
	    {1, 0, 0, 0x80000000u, "checksum mismatch"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		b = hand_start(1 << 20, NULL);
		hand_end(&b, cases[i].records, cases[i].pages, cases[i].d_bytes, cases[i].crc_xor);
		res = read_stream(b.buf, b.len, NULL, 0, 1);
		if (!cases[i].msg)
			CHECK(res.err == 0, "case %zu: %s", i, res.msg);
		else
			CHECK(res.err < 0 && contains(res.msg, cases[i].msg) &&
				  contains(res.msg, "record 1 at byte"),
			      "case %zu: %s", i, res.msg);
		free(b.buf);
	}
	/* Trailing bytes after a valid end */
	b = hand_start(1 << 20, NULL);
	hand_end(&b, 1, 0, 0, 0);
	put_raw(&b, "", 1);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "trailing bytes after the end record"), "%s",
	      res.msg);
	free(b.buf);
	/* Two end records */
	b = hand_start(1 << 20, NULL);
	hand_end(&b, 1, 0, 0, 0);
	hand_end(&b, 2, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "trailing"), "%s", res.msg);
	free(b.buf);
	/* No end */
	b = hand_start(1 << 20, NULL);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err < 0 && contains(res.msg, "truncated: no end record"), "%s", res.msg);
	free(b.buf);
}

/* A chunk of given ranges for check_chunk. */
struct chunk_pb {
	Wasp__MemoryChunk c;
	Wasp__PageRange r[4], *rp[4], z[4], *zp[4];
};

static void mk_chunk(struct chunk_pb *k, int n, const uint64_t *rs, int nz, const uint64_t *zs)
{
	memset(k, 0, sizeof *k);
	wasp__memory_chunk__init(&k->c);
	uint64_t pages = 0;
	for (int i = 0; i < n; i++) {
		wasp__page_range__init(&k->r[i]);
		k->r[i].first = rs[2 * i];
		k->r[i].count = rs[2 * i + 1];
		k->rp[i] = &k->r[i];
		pages += rs[2 * i + 1];
	}
	for (int i = 0; i < nz; i++) {
		wasp__page_range__init(&k->z[i]);
		k->z[i].first = zs[2 * i];
		k->z[i].count = zs[2 * i + 1];
		k->zp[i] = &k->z[i];
	}
	k->c.n_ranges = (size_t)n;
	k->c.ranges = k->rp;
	k->c.n_zero_ranges = (size_t)nz;
	k->c.zero_ranges = k->zp;
	k->c.raw_size = pages * PAGE;
	k->c.data.len = 1; /* zstd: some bytes */
	k->c.data.data = (uint8_t *)"x";
}

static void t_chunk_check(void)
{
	const size_t mem = 1 << 20; /* 256 pages */
	struct chunk_pb k;
	static const uint64_t ok1[] = {0, 1, 5, 10, 255, 1}, ovl[] = {0, 10, 5, 1},
			      unsorted[] = {10, 1, 5, 1}, oob[] = {250, 7}, empty[] = {3, 0},
			      wrap[] = {~0ull - 1, 4}, huge[] = {0, 1ull << 62},
			      z_ok[] = {1, 4, 20, 2}, z_bad[] = {8, 1};

	mk_chunk(&k, 3, ok1, 2, z_ok);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == 0, "valid chunk");
	mk_chunk(&k, 2, ovl, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL &&
		  contains(wasp_last_error(), "overlaps"),
	      "overlap");
	mk_chunk(&k, 2, unsorted, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL, "unsorted");
	mk_chunk(&k, 1, oob, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL &&
		  contains(wasp_last_error(), "outside"),
	      "oob");
	mk_chunk(&k, 1, empty, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL && contains(wasp_last_error(), "empty"),
	      "empty range");
	mk_chunk(&k, 1, wrap, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL, "wrap-around");
	CHECK(wasp_stream_check_chunk(&k.c, SIZE_MAX) == -EINVAL, "wrap-around, any size");
	mk_chunk(&k, 1, huge, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, SIZE_MAX) == -EINVAL, "over the raw limit");
	mk_chunk(&k, 3, ok1, 2, z_ok);
	k.c.raw_size += PAGE;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL &&
		  contains(wasp_last_error(), "raw size"),
	      "raw mismatch");
	mk_chunk(&k, 3, ok1, 2, z_ok);
	k.c.has_codec = true;
	k.c.codec = WASP__MEMORY_CHUNK__CODEC__NONE;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL, "stored data of the wrong length");
	k.c.data.len = (size_t)k.c.raw_size;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == 0, "stored data");
	k.c.codec = 7;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL && contains(wasp_last_error(), "codec"),
	      "codec");
	mk_chunk(&k, 3, ok1, 1, z_bad);
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL && contains(wasp_last_error(), "share"),
	      "zero range inside a data range");
	mk_chunk(&k, 0, NULL, 1, oob);
	k.c.data.len = 0;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL, "zero range out of bounds");
	mk_chunk(&k, 0, NULL, 2, z_ok);
	k.c.data.len = 0;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == 0, "zero-only chunk");
	k.c.data.len = 3;
	CHECK(wasp_stream_check_chunk(&k.c, mem) == -EINVAL, "zero-only chunk with data");
	CHECK(wasp_stream_check_chunk(&k.c, 0) == -EINVAL, "no memory at all");
	/* The raw limit itself: 4096 pages pass, 4097 do not. */
	static const uint64_t lim[] = {0, WASP_STREAM_MAX_CHUNK_RAW / PAGE},
			      over[] = {0, WASP_STREAM_MAX_CHUNK_RAW / PAGE + 1};
	mk_chunk(&k, 1, lim, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, 1ull << 30) == 0, "limit");
	mk_chunk(&k, 1, over, 0, NULL);
	CHECK(wasp_stream_check_chunk(&k.c, 1ull << 30) == -EINVAL, "over limit");
}

static Wasp__Record *mem_record(const struct chunk_pb *k)
{
	Wasp__Record rec = WASP__RECORD__INIT;
	rec.body_case = WASP__RECORD__BODY_MEMORY;
	rec.memory = (Wasp__MemoryChunk *)&k->c;
	size_t len = wasp__record__get_packed_size(&rec);
	uint8_t *p = xmalloc(len);
	wasp__record__pack(&rec, p);
	Wasp__Record *out = wasp__record__unpack(NULL, len, p);
	free(p);
	return out;
}

static void t_applier(void)
{
	const size_t mem_size = 1 << 20;
	uint8_t *mem = calloc(1, mem_size), page[2 * PAGE], comp[2 * PAGE + 1024];
	struct wasp_memory_applier *a;
	struct chunk_pb k;
	static const uint64_t r5[] = {5, 1}, r5b[] = {5, 2}, two[] = {1, 1, 9, 1}, oob[] = {300, 1};
	size_t clen;

	wasp_memory_applier_free(NULL);

	/* Submission order wins for overlapping chunks, whatever the threads. */
	for (int round = 0; round < 20; round++) {
		CHECK(wasp_memory_applier_new(mem, mem_size, 4, &a) == 0, "new");
		for (int i = 0; i < 50; i++) {
			memset(page, 'A' + i % 26, sizeof page);
			mk_chunk(&k, 1, i % 2 ? r5 : r5b, 0, NULL);
			clen = ZSTD_compress(comp, sizeof comp, page, k.c.raw_size, 1);
			k.c.data.data = comp;
			k.c.data.len = clen;
			CHECK(wasp_memory_applier_submit(a, mem_record(&k)) == 0, "submit %d", i);
		}
		CHECK(wasp_memory_applier_finish(a, NULL) == 0, "finish");
		CHECK(mem[5 * PAGE] == 'A' + 49 % 26 && mem[6 * PAGE] == 'A' + 48 % 26,
		      "last write wins: %c %c", mem[5 * PAGE], mem[6 * PAGE]);
		wasp_memory_applier_free(a);
	}

	/* A multi-range chunk goes through scratch and scatters. */
	CHECK(wasp_memory_applier_new(mem, mem_size, 2, &a) == 0, "new");
	memset(page, 'x', PAGE);
	memset(page + PAGE, 'y', PAGE);
	mk_chunk(&k, 2, two, 0, NULL);
	clen = ZSTD_compress(comp, sizeof comp, page, 2 * PAGE, 3);
	k.c.data.data = comp;
	k.c.data.len = clen;
	CHECK(wasp_memory_applier_submit(a, mem_record(&k)) == 0, "scatter");
	/* Not a memory record; out of bounds: refused at submit. */
	Wasp__Record *other = xmalloc(sizeof *other);
	wasp__record__init(other);
	CHECK(wasp_memory_applier_submit(a, other) == -EINVAL, "not memory");
	mk_chunk(&k, 1, oob, 0, NULL);
	CHECK(wasp_memory_applier_submit(a, mem_record(&k)) == -EINVAL &&
		  contains(wasp_last_error(), "memory chunk 2"),
	      "oob: %s", wasp_last_error());
	CHECK(wasp_memory_applier_finish(a, NULL) == 0, "finish after refusals");
	CHECK(mem[PAGE] == 'x' && mem[9 * PAGE + 4095] == 'y', "scattered");
	wasp_memory_applier_free(a);

	/* Bad data: a frame that holds more (or less) than raw_size, garbage. */
	for (int bad = 0; bad < 4; bad++) {
		struct wasp_ckpt_stats st = {0};
		CHECK(wasp_memory_applier_new(mem, mem_size, 2, &a) == 0, "new");
		mk_chunk(&k, bad == 3 ? 2 : 1, bad == 3 ? two : r5, 0, NULL);
		memset(page, 'q', sizeof page);
		clen = ZSTD_compress(comp, sizeof comp, page,
				     bad == 0	? 2 * PAGE
				     : bad == 3 ? PAGE
						: PAGE,
				     1);
		if (bad == 2)
			memset(comp + 4, 0xee, clen - 4);
		k.c.data.data = comp;
		k.c.data.len = clen;
		if (bad == 1) { /* a frame without a content size, 1 byte short */
			ZSTD_CCtx *cc = ZSTD_createCCtx();
			ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
			k.c.data.len = ZSTD_compress2(cc, comp, sizeof comp, page, PAGE - 1);
			ZSTD_freeCCtx(cc);
		}
		int r = wasp_memory_applier_submit(a, mem_record(&k));
		for (int i = 0; r == 0 && i < 20; i++) { /* later submits fail or are dropped */
			mk_chunk(&k, 1, r5, 0, NULL);
			k.c.data.data = comp;
			k.c.data.len = clen;
			r = wasp_memory_applier_submit(a, mem_record(&k));
		}
		r = wasp_memory_applier_finish(a, &st);
		CHECK(r < 0 && contains(wasp_last_error(), "memory chunk 0"), "bad %d: %d %s", bad,
		      r, wasp_last_error());
		CHECK(wasp_memory_applier_finish(a, NULL) == r, "finish again");
		wasp_memory_applier_free(a);
	}

	/* free() without finish, with work queued */
	CHECK(wasp_memory_applier_new(mem, mem_size, 1, &a) == 0, "new");
	for (int i = 0; i < 10; i++) {
		mk_chunk(&k, 1, r5, 0, NULL);
		memset(page, 'z', PAGE);
		k.c.data.data = comp;
		k.c.data.len = ZSTD_compress(comp, sizeof comp, page, PAGE, 1);
		wasp_memory_applier_submit(a, mem_record(&k));
	}
	wasp_memory_applier_free(a);
	free(mem);
}

/* A sink that fails after `left` bytes. */
struct failing_sink {
	size_t left;
	unsigned writes;
};

static int failing_write(void *ctx, const void *buf, size_t len)
{
	struct failing_sink *f = ctx;
	(void)buf;
	f->writes++;
	if (len > f->left)
		return -ENOSPC;
	f->left -= len;
	return 0;
}

static void t_writer_errors(void)
{
	const size_t size = 4u << 20;
	uint8_t *img = make_image(size, 20);
	bool done = false;
	for (size_t left = 0; left < (64u << 20); left = left * 3 + 100) {
		struct failing_sink f = {.left = left};
		struct wasp_sink sink = {.write = failing_write, .ctx = &f};
		struct wasp_stream_writer *w = NULL;
		struct wasp_save_opts o = {.threads = 3, .chunk_size = 65536};
		Wasp__Header h;
		int r = wasp_stream_writer_open(&sink, &w);
		if (r < 0) {
			CHECK(left < 8 && r == -ENOSPC && !w, "open %d", r);
			continue;
		}
		fill_header(&h, size);
		r = write_one(w, WASP__RECORD__BODY_HEADER, &h);
		if (r == 0)
			r = wasp_stream_write_memory(w, img, size, NULL, false, &o, NULL);
		if (r == 0)
			r = wasp_stream_writer_finish(w);
		wasp_stream_writer_free(w);
		if (r == 0) { /* the whole stream fit */
			CHECK(left > (1u << 20), "a stream of under %zu bytes", left);
			done = true;
			break;
		}
		CHECK(r == -ENOSPC, "left %zu: %d", left, r);
	}
	CHECK(done, "the stream never fit");
	{
		struct failing_sink f = {.left = 100};
		struct wasp_sink sink = {.write = failing_write, .ctx = &f};
		struct wasp_stream_writer *w = NULL;
		Wasp__Header h;
		fill_header(&h, size);
		CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
		CHECK(wasp_stream_write_memory(w, img, size, NULL, false, NULL, NULL) == -ENOSPC,
		      "memory");
		unsigned writes = f.writes;
		CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) < 0 &&
			  wasp_stream_writer_finish(w) < 0,
		      "a failed writer stays failed");
		CHECK(f.writes == writes, "and writes nothing more");
		wasp_stream_writer_free(w);
	}
	wasp_stream_writer_free(NULL);
	free(img);
}

static char tmpdir[64];

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_stream.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	*len = 0;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = 0;
	fclose(f);
	return buf;
}

static void t_atomic(void)
{
	struct wasp_atomic_file f;
	char path[128];
	size_t len;
	char *s;
	struct stat st;

	make_tmpdir();
	snprintf(path, sizeof path, "%s/ckpt", tmpdir);
	/* commit creates */
	CHECK(wasp_atomic_open(path, &f) == 0, "open");
	CHECK(f.fd >= 0 && f.tmp && strstr(f.tmp, ".tmp."), "temp name %s", f.tmp ? f.tmp : "-");
	CHECK(access(path, F_OK) != 0, "the path does not exist before commit");
	struct wasp_sink sink = wasp_sink_fd(&f.fd);
	CHECK(sink.write(sink.ctx, "first", 5) == 0, "write");
	CHECK(wasp_atomic_commit(&f) == 0, "commit");
	CHECK(f.fd == -1 && !f.tmp && !f.path, "reset after commit");
	s = slurp(path, &len);
	CHECK(s && len == 5 && !memcmp(s, "first", 5), "content");
	free(s);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0%o", st.st_mode & 0777);
	/* commit replaces */
	CHECK(wasp_atomic_open(path, &f) == 0, "open 2");
	sink = wasp_sink_fd(&f.fd);
	CHECK(sink.write(sink.ctx, "second!", 7) == 0, "write 2");
	CHECK(wasp_atomic_commit(&f) == 0, "commit 2");
	s = slurp(path, &len);
	CHECK(s && len == 7 && !memcmp(s, "second!", 7), "replaced");
	free(s);
	/* abort leaves the old file and no temp file */
	CHECK(wasp_atomic_open(path, &f) == 0, "open 3");
	sink = wasp_sink_fd(&f.fd);
	CHECK(sink.write(sink.ctx, "third, never seen", 17) == 0, "write 3");
	CHECK(count_entries(tmpdir) == 2, "temp file beside: %d entries", count_entries(tmpdir));
	wasp_atomic_abort(&f);
	wasp_atomic_abort(&f); /* twice is harmless */
	s = slurp(path, &len);
	CHECK(s && len == 7 && !memcmp(s, "second!", 7), "abort kept the old file");
	free(s);
	CHECK(count_entries(tmpdir) == 1, "no temp file left: %d entries", count_entries(tmpdir));
	/* failures: a missing directory, an empty path */
	snprintf(path, sizeof path, "%s/no/such/dir/ckpt", tmpdir);
	CHECK(wasp_atomic_open(path, &f) == -ENOENT && f.fd == -1 && !f.tmp, "missing dir");
	wasp_atomic_abort(&f);
	CHECK(wasp_atomic_open("", &f) == -EINVAL, "empty path");
	/* a full checkpoint through a file and back through an fd source */
	{
		const size_t size = 1u << 20;
		uint8_t *img = make_image(size, 30), *back = calloc(1, size);
		struct wasp_buffer_sink b = full_stream(img, size, NULL, NULL);
		snprintf(path, sizeof path, "%s/full", tmpdir);
		CHECK(wasp_atomic_open(path, &f) == 0, "open");
		sink = wasp_sink_fd(&f.fd);
		CHECK(sink.write(sink.ctx, b.buf, b.len) == 0, "write");
		CHECK(wasp_atomic_commit(&f) == 0, "commit");
		int fd = open(path, O_RDONLY);
		struct wasp_source src = wasp_source_fd(&fd);
		struct wasp_stream_reader *r;
		struct wasp_memory_applier *a;
		Wasp__Record *rec;
		int e;
		CHECK(wasp_stream_reader_open(&src, &r) == 0, "reader");
		CHECK(wasp_memory_applier_new(back, size, 2, &a) == 0, "applier");
		while ((e = wasp_stream_read_record(r, &rec)) > 0) {
			if (rec->body_case == WASP__RECORD__BODY_MEMORY)
				e = wasp_memory_applier_submit(a, rec);
			else
				wasp__record__free_unpacked(rec, NULL);
			if (e < 0)
				break;
		}
		CHECK(e == 0, "read back: %s", wasp_last_error());
		CHECK(wasp_memory_applier_finish(a, NULL) == 0, "apply");
		CHECK(!memcmp(img, back, size), "file round trip");
		wasp_memory_applier_free(a);
		wasp_stream_reader_free(r);
		close(fd);
		/* a bad fd reports */
		fd = -1;
		src = wasp_source_fd(&fd);
		CHECK(wasp_stream_reader_open(&src, &r) == -EBADF &&
			  contains(wasp_last_error(), "read"),
		      "bad fd: %s", wasp_last_error());
		sink = wasp_sink_fd(&fd);
		CHECK(sink.write(sink.ctx, "x", 1) == -EBADF, "bad fd write");
		free(b.buf);
		free(img);
		free(back);
	}
	rm_tmpdir();
}

/* Checks JSON structure: balanced, strings closed, escapes valid, no raw
 * control bytes; a parser (python3) when there is one. */
static bool json_ok(const char *s, const char *path)
{
	int depth = 0;
	bool in_str = false;
	const char *p = s;

	while (*p == ' ' || *p == '\n')
		p++;
	if (*p != '{')
		return false;
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (in_str) {
			if (c < 0x20)
				return false;
			if (c == '\\') {
				p++;
				if (!strchr("\"\\/bfnrtu", *p) || !*p)
					return false;
			} else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']') {
			if (--depth < 0)
				return false;
		}
	}
	if (depth != 0 || in_str)
		return false;
	if (system("command -v python3 >/dev/null 2>&1") == 0) {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "python3 -m json.tool '%s' >/dev/null", path);
		if (system(cmd) != 0)
			return false;
	}
	return true;
}

static int inspect_to(const uint8_t *buf, size_t len, bool json, const char *path, char **out)
{
	struct wasp_buffer_source bs = {.buf = buf, .len = len};
	struct wasp_source src = wasp_source_buffer(&bs);
	FILE *f = fopen(path, "w");
	size_t n;
	int r = wasp_ckpt_inspect(&src, json, f);
	fclose(f);
	*out = slurp(path, &n);
	return r;
}

static void t_inspect(void)
{
	const size_t size = 1u << 20;
	uint8_t *img = make_image(size, 30);
	struct wasp_save_opts o = {.chunk_size = 65536};
	struct wasp_buffer_sink b = full_stream(img, size, &o, NULL);
	char path[128], *s;
	int r;

	make_tmpdir();
	snprintf(path, sizeof path, "%s/out", tmpdir);

	r = inspect_to(b.buf, b.len, false, path, &s);
	CHECK(r == 0, "inspect: %d", r);
	if (getenv("VERBOSE"))
		fputs(s, stdout);
	static const char *const want[] = {
	    "version: 1.1",
	    "kind: full",
	    "id: deadbeef0102030405060708090a0b0c",
	    "mem_size: 1048576",
	    "cpu_vendor: GenuineIntel",
	    "created: 2023-11-14T22:13:20.123456789Z",
	    "rip: 0x401000",
	    "rflags: 0x202",
	    "cr0=0x80050033",
	    "efer=0xd01",
	    "msrs: 3",
	    "xcrs: 1",
	    "cpuid_entries: 2",
	    "xsave_bytes: 4096",
	    "mp_state: 0",
	    "mp_state_name: runnable",
	    "tsc: 123456789",
	    "entry_mode: long",
	    "cs: sel=0x0",
	    "tr: sel=0x30",
	    "guest_pages: 256",
	    "chunk_bytes: min=",
	    "path=\"out.txt\"",
	    "(wronly|creat|trunc)",
	    "allowed: \"exit\", \"console_write\"",
	    "arg_bytes: 8",
	    "snapshot_marks: 1",
	    "hypercall_pending: no",
	    "console_bytes: 42",
	    "checksum ok (crc32c 0x",
	    "\\x1b[31m",
	    "\\\"q\\\"\\\\\\x01\\xff.bin",
	};
	for (size_t i = 0; s && i < sizeof want / sizeof *want; i++)
		CHECK(contains(s, want[i]), "text lacks \"%s\"", want[i]);
	CHECK(s && !strchr(s, 0x1b), "a raw escape reached the terminal");
	free(s);

	r = inspect_to(b.buf, b.len, true, path, &s);
	CHECK(r == 0, "inspect json: %d", r);
	if (getenv("VERBOSE"))
		fputs(s, stdout);
	CHECK(s && json_ok(s, path), "json does not parse:\n%s", s ? s : "");
	static const char *const jwant[] = {
	    "\"valid\": true", "\"error\": null",  "\"kind\": \"full\"", "\"rip\": \"0x401000\"",
	    "\"pages\": ",     "\"crc32c\": \"0x", "\\u001b[31m",	 "\\ufffd.bin"};
	for (size_t i = 0; s && i < sizeof jwant / sizeof *jwant; i++)
		CHECK(contains(s, jwant[i]), "json lacks %s", jwant[i]);
	free(s);

	/* truncated: an error, still a description and parseable JSON */
	r = inspect_to(b.buf, b.len - 10, false, path, &s);
	CHECK(r < 0 && s && contains(s, "error: truncated") && contains(s, "kind: full"),
	      "truncated text:\n%s", s ? s : "");
	free(s);
	r = inspect_to(b.buf, b.len - 10, true, path, &s);
	CHECK(r < 0 && s && contains(s, "\"valid\": false") &&
		  contains(s, "\"error\": \"truncated"),
	      "truncated json");
	CHECK(s && json_ok(s, path), "truncated json does not parse:\n%s", s ? s : "");
	free(s);
	/* bad magic, newer format */
	r = inspect_to((const uint8_t *)"nothing to see", 14, true, path, &s);
	CHECK(r < 0 && s && contains(s, "bad magic") && json_ok(s, path), "bad magic json");
	free(s);
	Wasp__Header h;
	fill_header(&h, size);
	h.version_major = 3;
	struct wasp_buffer_sink nb = hand_start(size, &h);
	hand_end(&nb, 1, 0, 0, 0);
	r = inspect_to(nb.buf, nb.len, false, path, &s);
	CHECK(r < 0 && s && contains(s, "checkpoint format 3.x is newer than this wasp (2.x)"),
	      "newer:\n%s", s ? s : "");
	free(s);
	free(nb.buf);
	/* a header-only stream: no vcpu, no host, no memory */
	nb = hand_start(size, NULL);
	hand_end(&nb, 1, 0, 0, 0);
	r = inspect_to(nb.buf, nb.len, true, path, &s);
	CHECK(r == 0 && s && contains(s, "\"vcpu\": null") && json_ok(s, path), "header only:\n%s",
	      s ? s : "");
	free(s);
	r = inspect_to(nb.buf, nb.len, false, path, &s);
	CHECK(r == 0 && s && contains(s, "vcpu: -") && contains(s, "chunks: 0"),
	      "header only text:\n%s", s ? s : "");
	free(s);
	free(nb.buf);

	rm_tmpdir();
	free(b.buf);
	free(img);
}

/* Holes of a memfd: found without reading (which would allocate them). */
static void t_memfd(void)
{
	const size_t size = 64u << 20;
	int fd = memfd_create("test_stream", MFD_CLOEXEC);
	uint64_t *bm = NULL;
	struct stat st;

	CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0, "memfd");
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(mem != MAP_FAILED, "mmap");
	if (mem == MAP_FAILED)
		return;
	static const size_t touched[] = {0, 1, 2, 100, 8191, 16383};
	for (size_t i = 0; i < sizeof touched / sizeof *touched; i++)
		memset(mem + touched[i] * PAGE, (int)(i + 1), i == 1 ? 10 : PAGE);
	mem[5000 * PAGE] = 0; /* written, but zero: data to the file system */
	CHECK(wasp_memfd_data_pages(fd, size, &bm) == 0 && bm, "bitmap");
	size_t n = 0;
	for (size_t p = 0; bm && p < size / PAGE; p++)
		n += (bm[p / 64] >> (p % 64)) & 1;
	CHECK(n == 7, "%zu pages with data", n);
	CHECK(bm && (bm[0] & 7) == 7 && (bm[100 / 64] >> (100 % 64) & 1) && (bm[16383 / 64] >> 63),
	      "pages");

	struct wasp_buffer_sink b = {0};
	struct wasp_sink sink = wasp_sink_buffer(&b);
	struct wasp_stream_writer *w;
	struct wasp_ckpt_stats stats = {0};
	Wasp__Header h;
	fill_header(&h, size);
	CHECK(wasp_stream_writer_open(&sink, &w) == 0, "open");
	CHECK(write_one(w, WASP__RECORD__BODY_HEADER, &h) == 0, "header");
	CHECK(wasp_stream_write_memory(w, mem, size, bm, false, NULL, &stats) == 0, "memory");
	CHECK(wasp_stream_writer_finish(w) == 0, "finish");
	wasp_stream_writer_free(w);
	CHECK(stats.pages == 6 && stats.zero_pages == 1, "pages %" PRIu64 " zero %" PRIu64,
	      stats.pages, stats.zero_pages);
	CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_blocks * 512 <= 7 * PAGE * 2,
	      "the save allocated guest memory: %lld blocks", (long long)st.st_blocks);

	uint8_t *back = calloc(1, size);
	struct read_result res = read_stream(b.buf, b.len, back, size, 2);
	CHECK(res.err == 0 && !memcmp(back, mem, size), "round trip: %s", res.msg);
	free(back);
	free(b.buf);
	free(bm);
	munmap(mem, size);
	close(fd);
}

/* Not a ctest case: speeds on 64 MiB, zero-heavy and random. */
static int null_write(void *ctx, const void *buf, size_t len)
{
	*(uint64_t *)ctx += len;
	return 0;
}

static void t_bench(void)
{
	const size_t size = 64u << 20;
	uint8_t *img = xmalloc(size), *back = xmalloc(size);
	const char *names[] = {"zero-heavy (90% zero pages, rest text-like)", "random bytes",
			       "mixed (30% zero)"};

	for (int kind = 0; kind < 3; kind++) {
		if (kind == 0) {
			free(img);
			img = make_image(size, 90);
			for (size_t p = 0; p < size / PAGE; p++) /* no incompressible pages here */
				if (img[p * PAGE + 100] && rnd() % 2)
					for (size_t i = 0; i < PAGE; i++)
						img[p * PAGE + i] =
						    (uint8_t)("etaoin shrdlu"[rnd() % 13]);
		} else if (kind == 1) {
			for (size_t i = 0; i < size; i += 8) {
				uint64_t v = rnd();
				memcpy(img + i, &v, 8);
			}
		} else {
			free(img);
			img = make_image(size, 30);
		}
		for (int threads = 1; threads <= 4; threads *= 2) {
			uint64_t bytes = 0;
			struct wasp_sink sink = {.write = null_write, .ctx = &bytes};
			struct wasp_stream_writer *w;
			struct wasp_ckpt_stats st = {0};
			struct wasp_save_opts o = {.threads = threads};
			wasp_stream_writer_open(&sink, &w);
			wasp_stream_write_memory(w, img, size, NULL, false, &o, &st);
			wasp_stream_writer_finish(w);
			wasp_stream_writer_free(w);

			struct wasp_buffer_sink b = {0};
			struct wasp_sink bsink = wasp_sink_buffer(&b);
			Wasp__Header h;
			fill_header(&h, size);
			wasp_stream_writer_open(&bsink, &w);
			write_one(w, WASP__RECORD__BODY_HEADER, &h);
			wasp_stream_write_memory(w, img, size, NULL, false, &o, NULL);
			wasp_stream_writer_finish(w);
			wasp_stream_writer_free(w);
			memset(back, 0, size);
			uint64_t t0 = wasp_now_ns();
			struct read_result res = read_stream(b.buf, b.len, back, size, threads);
			uint64_t t1 = wasp_now_ns();
			CHECK(res.err == 0 && !memcmp(img, back, size), "bench round trip");
			printf("%-45s threads %d: %8.1f MB/s compress (%5.1f ms, %" PRIu64
			       " -> %" PRIu64 " bytes), %8.1f MB/s read+apply\n",
			       names[kind], threads, size / 1e6 / (st.compress_ns / 1e9),
			       st.compress_ns / 1e6, (uint64_t)size, bytes,
			       size / 1e6 / ((t1 - t0) / 1e9));
			free(b.buf);
		}
	}
	free(img);
	free(back);
}

/* ---- records that cost more to decode than they weigh (issue 12, 7) --- */

/* Hostile records of tiny repeated elements, each 2 bytes on the wire
 * (field tag, empty value) and ~40-100 bytes once decoded: `body` is the
 * Record field that holds them (0 for unknown fields of Record itself),
 * `elem` the element's tag. */
static const struct bloat_kind {
	const char *name;
	uint8_t body, elem;
} bloat_kinds[] = {
    {"names", 0x22, 0x1a},       /* Host.allowed_names: empty strings */
    {"allowed", 0x22, 0x10},     /* Host.allowed: zeros */
    {"files", 0x22, 0x0a},       /* Host.files: empty messages */
    {"ranges", 0x1a, 0x0a},      /* MemoryChunk.ranges: empty messages */
    {"zero_ranges", 0x1a, 0x2a}, /* MemoryChunk.zero_ranges */
    {"msrs", 0x12, 0x32},        /* Vcpu.msrs: empty messages */
    {"cpuid", 0x12, 0x52},       /* Vcpu.cpuid */
    {"unknown", 0, 0x78},        /* Record field 15 (unknown): zeros */
};

static const struct bloat_kind *bloat_kind(const char *name)
{
	for (size_t i = 0; i < sizeof bloat_kinds / sizeof *bloat_kinds; i++)
		if (!strcmp(bloat_kinds[i].name, name))
			return &bloat_kinds[i];
	return NULL;
}

/* A checkpoint of a 1 MiB guest: header, one hostile record of about
 * `size` bytes, an end record whose counts and checksum are right. */
static struct wasp_buffer_sink bloat_stream(const struct bloat_kind *k, size_t size)
{
	Wasp__Header hd;
	fill_header(&hd, 1 << 20);
	hd.cpu_vendor = NULL; /* any host's: wasp-restore must get to the record */
	struct wasp_buffer_sink b = hand_start(1 << 20, &hd);
	size_t n = size / 2, inner = 2 * n, len = inner;
	uint8_t hdr[16];
	size_t h = 0;

	if (k->body) {
		hdr[h++] = k->body;
		for (uint64_t x = inner; ; x >>= 7) {
			hdr[h++] = (uint8_t)(x < 0x80 ? x : (x & 0x7f) | 0x80);
			if (x < 0x80)
				break;
		}
		len += h;
	}
	uint8_t *p = xmalloc(len);
	memcpy(p, hdr, h);
	for (size_t i = 0; i < n; i++) {
		p[h + 2 * i] = k->elem;
		p[h + 2 * i + 1] = 0;
	}
	put_frame(&b, p, len);
	free(p);
	hand_end(&b, 2, 0, 0, 0);
	return b;
}

/* This process's peak resident set in KiB since reset_peak(). */
static long peak_kib(void)
{
	return status_kib("VmHWM");
}

static void reset_peak(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f) {
		fputs("5", f); /* 5: reset the peak RSS to the current RSS */
		fclose(f);
	}
}

/* Reads buf in a child (so what one record costs does not stay in this
 * process): 0 when the read was refused with the budget's message and
 * its peak stayed within `bound_kib` of the RSS it started from. */
static int bloat_child(const char *name, const uint8_t *buf, size_t len, long bound_kib)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		reset_peak();
		long base = rss_kib();
		struct read_result res = read_stream(buf, len, NULL, 0, 1);
		long peak = peak_kib() - base;
		bool refused = res.err == -EFBIG && contains(res.msg, "bytes of memory to decode");
		printf("  %-12s +%ld KiB at the peak (bound +%ld KiB): %s\n", name, peak, bound_kib,
		       res.err ? res.msg : "(accepted)");
		fflush(stdout);
		_exit(!refused ? 1 : peak > bound_kib ? 2 : 0);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Every kind of bloated record is refused before it costs more than its
 * bytes and its budget (2 x its length + 4 MiB); the largest legitimate
 * records still decode. */
static void t_decode_budget(void)
{
	const size_t size = 16u << 20;
	/* the record's bytes + its budget + malloc's rounding */
	const long bound = (long)(size + WASP_STREAM_DECODE_BUDGET(size)) / 1024 + 8192;
	for (size_t i = 0; i < sizeof bloat_kinds / sizeof *bloat_kinds; i++) {
		struct wasp_buffer_sink b = bloat_stream(&bloat_kinds[i], size);
		int r = bloat_child(bloat_kinds[i].name, b.buf, b.len, bound);
		CHECK(r != 1, "%s: not refused with the budget's message", bloat_kinds[i].name);
		CHECK(r != 2, "%s: peak RSS over the bound", bloat_kinds[i].name);
		CHECK(r >= 0, "%s: the child died", bloat_kinds[i].name);
		free(b.buf);
	}

	/* The largest legitimate memory chunk: 4096 single-page ranges and
	 * 4096 zero ranges between them, 16 MiB of raw data. */
	enum { N = 4096 };
	static Wasp__PageRange r[N], z[N];
	static Wasp__PageRange *rp[N], *zp[N];
	Wasp__MemoryChunk c = WASP__MEMORY_CHUNK__INIT;
	Wasp__Record rec = WASP__RECORD__INIT;
	for (int i = 0; i < N; i++) {
		wasp__page_range__init(&r[i]);
		wasp__page_range__init(&z[i]);
		r[i].first = 2 * (uint64_t)i;
		z[i].first = 2 * (uint64_t)i + 1;
		r[i].count = z[i].count = 1;
		rp[i] = &r[i];
		zp[i] = &z[i];
	}
	c.n_ranges = c.n_zero_ranges = N;
	c.ranges = rp;
	c.zero_ranges = zp;
	c.raw_size = (uint64_t)N * PAGE;
	c.has_codec = true;
	c.codec = WASP__MEMORY_CHUNK__CODEC__NONE;
	c.data.len = c.raw_size;
	c.data.data = make_image(c.raw_size, 0);
	rec.body_case = WASP__RECORD__BODY_MEMORY;
	rec.memory = &c;
	struct wasp_buffer_sink b = hand_start(2u * N * PAGE, NULL);
	put_record(&b, &rec);
	hand_end(&b, 2, N, 0, 0);
	struct read_result res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == 0 && res.pages == N, "the largest chunk: %s", res.msg);
	free(b.buf);
	free(c.data.data);

	/* The largest host record: 32 files with long paths, every hypercall
	 * named, 1 MiB argument and return buffers. */
	static Wasp__OpenFile f[32], *fp[32];
	static char path[32][4096];
	static uint32_t allowed[64];
	static char *names[64];
	Wasp__Host host = WASP__HOST__INIT;
	for (int i = 0; i < 32; i++) {
		wasp__open_file__init(&f[i]);
		memset(path[i], 'a' + i % 26, sizeof path[i] - 1);
		f[i].guest_fd = 3 + (uint32_t)i;
		f[i].path = path[i];
		fp[i] = &f[i];
	}
	for (int i = 0; i < 64; i++) {
		allowed[i] = (uint32_t)i;
		names[i] = "a_rather_long_hypercall_name";
	}
	host.n_files = 32;
	host.files = fp;
	host.n_allowed = host.n_allowed_names = 64;
	host.allowed = allowed;
	host.allowed_names = names;
	host.has_arg = host.has_ret = true;
	host.arg.len = host.ret.len = 1u << 20;
	host.arg.data = host.ret.data = make_image(1u << 20, 0);
	rec.body_case = WASP__RECORD__BODY_HOST;
	rec.host = &host;
	b = hand_start(1 << 20, NULL);
	put_record(&b, &rec);
	hand_end(&b, 2, 0, 0, 0);
	res = read_stream(b.buf, b.len, NULL, 0, 1);
	CHECK(res.err == 0 && res.hosts == 1, "the largest host record: %s", res.msg);
	free(b.buf);
	free(host.arg.data);
}

/* `test_stream write-bloat KIND MIB FILE`: writes a checkpoint with one
 * bloated record of about MIB MiB, for the tools' tests (limits_test.sh). */
static int write_bloat(const char *kind, const char *mib, const char *path)
{
	const struct bloat_kind *k = bloat_kind(kind);
	if (!k) {
		fprintf(stderr, "write-bloat: no kind '%s'\n", kind);
		return 2;
	}
	struct wasp_buffer_sink b = bloat_stream(k, (size_t)strtoul(mib, NULL, 10) << 20);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b.buf, 1, b.len, f) != b.len || fclose(f)) {
		perror(path);
		return 1;
	}
	free(b.buf);
	return 0;
}

static const struct test_case cases[] = {
    {"crc", t_crc},
    {"roundtrip", t_roundtrip},
    {"memory", t_memory},
    {"memory_subset", t_memory_subset},
    {"memory_encoding", t_memory_encoding},
    {"memory_edges", t_memory_edges},
    {"pb_tags", t_pb_tags},
    {"pb_mappable", t_pb_mappable},
    {"truncate", t_truncate},
    {"bitflip", t_bitflip},
    {"hostile", t_hostile},
    {"short_reads", t_short_reads},
    {"bad_magic", t_bad_magic},
    {"varint", t_varint},
    {"record_limit", t_record_limit},
    {"record_rules", t_record_rules},
    {"end_checks", t_end_checks},
    {"chunk_check", t_chunk_check},
    {"applier", t_applier},
    {"writer_errors", t_writer_errors},
    {"atomic", t_atomic},
    {"memfd", t_memfd},
    {"inspect", t_inspect},
    {"decode_budget", t_decode_budget},
    {"bench", t_bench},
};

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "write-bloat"))
		return write_bloat(argv[2], argv[3], argv[4]);
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, NULL, 0, "", false);
}
