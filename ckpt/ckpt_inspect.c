/*
 * ckpt_inspect.c: wasp_ckpt_inspect(), a checkpoint described as text or
 * JSON without restoring it (like CRIU's crit).
 *
 * The whole stream is read and checked (framing, limits, every chunk's
 * ranges, end record, checksum) but memory is never decompressed, so a
 * big checkpoint inspects at read speed. Text and JSON come from one walk
 * over the records through a small emitter, so they always say the same.
 * A checkpoint is untrusted input: strings are escaped in both forms (no
 * terminal escapes in text, valid UTF-8 in JSON).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt_stream.h"
#include "vmm_parts.h" /* wasp_fail */

/* ---- emitter: nested objects as indented text or JSON ------------------ */

enum em_kind {
	EM_OBJ,	 /* text: "key:" then one member per line, indented */
	EM_LINE, /* text: "key: a=1 b=2" on one line */
	EM_ARR,	 /* text: "key: x, y, z" */
	EM_LIST, /* text: "key:" then "- a=1 b=2" per element */
};

#define EM_DEPTH 8

struct em {
	FILE *f;
	bool json;
	int depth;
	enum em_kind kind[EM_DEPTH];
	unsigned count[EM_DEPTH];
};

static void em_indent(struct em *e, int d)
{
	for (int i = 0; i < d; i++)
		fputs("  ", e->f);
}

/* Length of a valid UTF-8 sequence at s (not a C0/C1 control, not an
 * overlong or surrogate form), 0 if the byte must be escaped. */
static size_t utf8_ok(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c >= 0x20 && c < 0x7f)
		return 1;
	if (c < 0x80)
		return 0;
	if ((c & 0xe0) == 0xc0)
		len = 2, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		len = 3, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0xa0) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, C1 control, surrogate, out of range */
	return len;
}

static void em_string(struct em *e, const char *s, size_t n, bool quote)
{
	const unsigned char *p = (const unsigned char *)s;

	if (quote)
		fputc('"', e->f);
	for (size_t i = 0; i < n;) {
		size_t k = utf8_ok(p + i, n - i);
		if (k && (!quote || (p[i] != '"' && p[i] != '\\'))) {
			fwrite(p + i, 1, k, e->f);
			i += k;
			continue;
		}
		if (p[i] == '"' || p[i] == '\\')
			fprintf(e->f, "\\%c", p[i]);
		else if (p[i] == '\n')
			fputs("\\n", e->f);
		else if (p[i] == '\t')
			fputs("\\t", e->f);
		else if (e->json)
			fprintf(e->f, p[i] < 0x80 ? "\\u%04x" : "\\ufffd", p[i]);
		else
			fprintf(e->f, "\\x%02x", p[i]);
		i++;
	}
	if (quote)
		fputc('"', e->f);
}

/* Starts a member (or element): separators, indentation, key. */
static void em_key_(struct em *e, const char *key, bool opening)
{
	int d = e->depth;
	enum em_kind k = d ? e->kind[d - 1] : EM_OBJ;
	unsigned n = d ? e->count[d - 1]++ : 0;

	if (e->json) {
		if (d == 0)
			return;
		fputs(n ? ",\n" : "\n", e->f);
		em_indent(e, d);
		if (key && k != EM_ARR && k != EM_LIST)
			fprintf(e->f, "\"%s\": ", key);
		return;
	}
	switch (k) {
	case EM_OBJ:
		em_indent(e, d - 1);
		if (key)
			fprintf(e->f, "%s:%s", key, opening ? "" : " ");
		break;
	case EM_LINE:
		fprintf(e->f, n ? " %s=" : "%s=", key);
		break;
	case EM_ARR:
		if (n)
			fputs(", ", e->f);
		break;
	case EM_LIST:
		if (!n)
			fputc('\n', e->f);
		em_indent(e, d - 1);
		fputs("- ", e->f);
		break;
	}
}

static void em_key(struct em *e, const char *key)
{
	em_key_(e, key, false);
}

/* Ends a scalar member. */
static void em_done(struct em *e)
{
	if (!e->json && (!e->depth || e->kind[e->depth - 1] == EM_OBJ))
		fputc('\n', e->f);
}

static void em_open(struct em *e, const char *key, enum em_kind kind)
{
	enum em_kind parent = e->depth ? e->kind[e->depth - 1] : EM_OBJ;

	em_key_(e, key, kind == EM_OBJ || kind == EM_LIST);
	if (e->json)
		fputc(kind == EM_ARR || kind == EM_LIST ? '[' : '{', e->f);

	else if (e->depth && parent == EM_OBJ && kind == EM_OBJ)
		fputc('\n', e->f);
	if (e->depth < EM_DEPTH) {
		e->kind[e->depth] = kind;
		e->count[e->depth] = 0;
	}
	e->depth++;
}

static void em_close(struct em *e)
{
	enum em_kind kind = e->kind[--e->depth];
	unsigned n = e->count[e->depth];

	if (e->json) {
		if (n) {
			fputc('\n', e->f);
			em_indent(e, e->depth);
		}
		fputc(kind == EM_ARR || kind == EM_LIST ? ']' : '}', e->f);
		if (!e->depth)
			fputc('\n', e->f);
		return;
	}
	if (kind == EM_ARR && !n)
		fputs("-", e->f);
	if (kind == EM_LIST && !n)
		fputs(" -", e->f);
	if (kind == EM_LINE || kind == EM_ARR || (kind == EM_LIST && !n))
		fputc('\n', e->f);
}

static void em_u64(struct em *e, const char *key, uint64_t v)
{
	em_key(e, key);
	fprintf(e->f, "%" PRIu64, v);
	em_done(e);
}

static void em_i64(struct em *e, const char *key, int64_t v)
{
	em_key(e, key);
	fprintf(e->f, "%" PRId64, v);
	em_done(e);
}

static void em_hex(struct em *e, const char *key, uint64_t v)
{
	em_key(e, key);
	fprintf(e->f, e->json ? "\"0x%" PRIx64 "\"" : "0x%" PRIx64, v);
	em_done(e);
}

static void em_ratio(struct em *e, const char *key, double v)
{
	em_key(e, key);
	fprintf(e->f, "%.2f", v);
	em_done(e);
}

static void em_bool(struct em *e, const char *key, bool v)
{
	em_key(e, key);
	fputs(e->json ? (v ? "true" : "false") : (v ? "yes" : "no"), e->f);
	em_done(e);
}

static void em_null(struct em *e, const char *key)
{
	em_key(e, key);
	fputs(e->json ? "null" : "-", e->f);
	em_done(e);
}

/* A string from the checkpoint (untrusted), quoted in JSON and in lines. */
static void em_str(struct em *e, const char *key, const char *s, size_t n)
{
	bool quote = e->json || (e->depth && e->kind[e->depth - 1] != EM_OBJ);
	em_key(e, key);
	em_string(e, s, n, quote);
	em_done(e);
}

/* Text of ours (a name, a number with a unit): a JSON string as it is. */
static void em_fmt(struct em *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void em_fmt(struct em *e, const char *key, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	em_key(e, key);
	em_string(e, buf, strlen(buf), e->json);
	em_done(e);
}

static void em_bytes_hex(struct em *e, const char *key, const ProtobufCBinaryData *b)
{
	char buf[2 * 64 + 1];
	size_t n = b->len > 64 ? 64 : b->len;

	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", b->data[i]);
	buf[2 * n] = 0;
	em_fmt(e, key, "%s%s", buf, b->len > n ? "..." : "");
}

/* ---- the records ------------------------------------------------------ */

static void print_header(struct em *e, const Wasp__Header *h)
{
	em_open(e, "header", EM_OBJ);
	em_fmt(e, "version", "%u.%u", h->version_major, h->version_minor);
	em_fmt(e, "kind", "%s",
	       h->kind == WASP__HEADER__KIND__FULL	    ? "full"
	       : h->kind == WASP__HEADER__KIND__INCREMENTAL ? "incremental"
							    : "unknown");
	em_bytes_hex(e, "id", &h->id);
	if (h->has_parent_id)
		em_bytes_hex(e, "parent_id", &h->parent_id);
	else
		em_null(e, "parent_id");
	em_u64(e, "mem_size", h->mem_size);
	em_u64(e, "page_size", h->has_page_size ? h->page_size : 4096);
	if (h->cpu_vendor)
		em_str(e, "cpu_vendor", h->cpu_vendor, strlen(h->cpu_vendor));
	else
		em_null(e, "cpu_vendor");
	if (h->has_created_unix_ns) {
		time_t secs = (time_t)(h->created_unix_ns / 1000000000u);
		struct tm tm;
		char when[64];
		if (gmtime_r(&secs, &tm) && strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm))
			em_fmt(e, "created", "%s.%09" PRIu64 "Z", when,
			       h->created_unix_ns % 1000000000u);
		else
			em_fmt(e, "created", "%" PRIu64 " ns after the epoch", h->created_unix_ns);
	} else {
		em_null(e, "created");
	}
	if (h->producer)
		em_str(e, "producer", h->producer, strlen(h->producer));
	else
		em_null(e, "producer");
	if (h->has_abi_version)
		em_u64(e, "abi_version", h->abi_version);
	else
		em_null(e, "abi_version");
	em_close(e);
}

static void print_segment(struct em *e, const char *name, const Wasp__Segment *s)
{
	if (!s) {
		em_null(e, name);
		return;
	}
	em_open(e, name, EM_LINE);
	em_hex(e, "sel", s->selector);
	em_hex(e, "base", s->base_addr);
	em_hex(e, "limit", s->limit);
	em_u64(e, "type", s->type);
	em_u64(e, "dpl", s->dpl);
	em_u64(e, "present", s->present);
	em_u64(e, "s", s->s);
	em_u64(e, "l", s->l);
	em_u64(e, "db", s->db);
	em_u64(e, "g", s->g);
	em_u64(e, "unusable", s->unusable);
	em_close(e);
}

static void print_dtable(struct em *e, const char *name, const Wasp__Dtable *d)
{
	if (!d) {
		em_null(e, name);
		return;
	}
	em_open(e, name, EM_LINE);
	em_hex(e, "base", d->base_addr);
	em_hex(e, "limit", d->limit);
	em_close(e);
}

static void em_blob(struct em *e, const char *key, protobuf_c_boolean has,
		    const ProtobufCBinaryData *b)
{
	if (has)
		em_u64(e, key, b->len);
	else
		em_null(e, key);
}

static const char *const mp_state_names[] = {
    "runnable",	  "uninitialized", "init_received", "halted",	     "sipi_received", "stopped",
    "check_stop", "operating",	   "load",	    "ap_reset_hold", "suspended",
};

static void print_vcpu(struct em *e, const Wasp__Vcpu *v)
{
	const Wasp__Regs *r = v->regs;
	const Wasp__Sregs *s = v->sregs;

	em_open(e, "vcpu", EM_OBJ);
	em_open(e, "regs", EM_LINE);
	const uint64_t gpr[] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp,
				r->r8,	r->r9,	r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};
	static const char *const gpr_names[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi",
						"rsp", "rbp", "r8",  "r9",  "r10", "r11",
						"r12", "r13", "r14", "r15"};
	for (int i = 0; i < 16; i++)
		em_hex(e, gpr_names[i], gpr[i]);
	em_close(e);
	em_hex(e, "rip", r->rip);
	em_hex(e, "rflags", r->rflags);
	em_open(e, "control", EM_LINE);
	em_hex(e, "cr0", s->cr0);
	em_hex(e, "cr2", s->cr2);
	em_hex(e, "cr3", s->cr3);
	em_hex(e, "cr4", s->cr4);
	em_hex(e, "cr8", s->cr8);
	em_hex(e, "efer", s->efer);
	em_hex(e, "apic_base", s->apic_base);
	em_close(e);
	em_open(e, "segments", EM_OBJ);
	print_segment(e, "cs", s->cs);
	print_segment(e, "ds", s->ds);
	print_segment(e, "es", s->es);
	print_segment(e, "fs", s->fs);
	print_segment(e, "gs", s->gs);
	print_segment(e, "ss", s->ss);
	print_segment(e, "tr", s->tr);
	print_segment(e, "ldt", s->ldt);
	print_dtable(e, "gdt", s->gdt);
	print_dtable(e, "idt", s->idt);
	em_close(e);
	em_u64(e, "msrs", v->n_msrs);
	em_u64(e, "xcrs", v->n_xcrs);
	em_u64(e, "cpuid_entries", v->n_cpuid);
	em_blob(e, "xsave_bytes", v->has_xsave, &v->xsave);
	em_blob(e, "fpu_bytes", v->has_fpu, &v->fpu);
	em_blob(e, "events_bytes", v->has_events, &v->events);
	em_blob(e, "debugregs_bytes", v->has_debugregs, &v->debugregs);
	if (v->has_mp_state) {
		em_u64(e, "mp_state", v->mp_state);
		em_fmt(e, "mp_state_name", "%s",
		       v->mp_state < sizeof mp_state_names / sizeof *mp_state_names
			   ? mp_state_names[v->mp_state]
			   : "unknown");
	} else {
		em_null(e, "mp_state");
	}
	if (v->has_tsc)
		em_u64(e, "tsc", v->tsc);
	else
		em_null(e, "tsc");
	if (v->has_entry_mode)
		em_fmt(e, "entry_mode", "%s",
		       v->entry_mode == WASP_MODE_REAL	 ? "real"
		       : v->entry_mode == WASP_MODE_LONG ? "long"
							 : "unknown");
	else
		em_null(e, "entry_mode");
	em_close(e);
}

static void print_flags(char *buf, size_t n, uint32_t fl)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} bits[] = {{WASP_O_CREAT, "creat"},
		    {WASP_O_EXCL, "excl"},
		    {WASP_O_TRUNC, "trunc"},
		    {WASP_O_APPEND, "append"}};
	uint32_t acc = fl & 3, known = 3;
	size_t len = (size_t)snprintf(buf, n, "0x%x (%s", fl,
				      acc == WASP_O_RDONLY   ? "rdonly"
				      : acc == WASP_O_WRONLY ? "wronly"
				      : acc == WASP_O_RDWR   ? "rdwr"
							     : "bad-access");
	for (size_t i = 0; i < sizeof bits / sizeof *bits && len < n; i++) {
		known |= bits[i].bit;
		if (fl & bits[i].bit)
			len += (size_t)snprintf(buf + len, n - len, "|%s", bits[i].name);
	}
	if (len < n)
		snprintf(buf + len, n - len, "%s)", fl & ~known ? "|unknown" : "");
}

static void print_host(struct em *e, const Wasp__Host *h)
{
	char flags[128];

	em_open(e, "host", EM_OBJ);
	em_open(e, "files", EM_LIST);
	for (size_t i = 0; i < h->n_files; i++) {
		const Wasp__OpenFile *f = h->files[i];
		em_open(e, NULL, EM_LINE);
		em_u64(e, "fd", f->guest_fd);
		em_str(e, "path", f->path, strlen(f->path));
		print_flags(flags, sizeof flags, f->flags);
		em_fmt(e, "flags", "%s", flags);
		em_u64(e, "offset", f->offset);
		em_close(e);
	}
	em_close(e);
	em_open(e, "allowed", EM_ARR);
	for (size_t i = 0; i < h->n_allowed_names; i++)
		em_str(e, NULL, h->allowed_names[i], strlen(h->allowed_names[i]));
	em_close(e);
	em_open(e, "allowed_numbers", EM_ARR);
	for (size_t i = 0; i < h->n_allowed; i++)
		em_u64(e, NULL, h->allowed[i]);
	em_close(e);
	em_blob(e, "arg_bytes", h->has_arg, &h->arg);
	em_blob(e, "ret_bytes", h->has_ret, &h->ret);
	em_u64(e, "snapshot_marks", h->has_snapshot_marks ? h->snapshot_marks : 0);
	em_bool(e, "hypercall_pending", h->has_hypercall_pending && h->hypercall_pending);
	if (h->has_console_bytes)
		em_u64(e, "console_bytes", h->console_bytes);
	else
		em_null(e, "console_bytes");
	/* 1.1: the files the guest wrote, as a restore will check them */
	em_open(e, "written", EM_LIST);
	for (size_t i = 0; i < h->n_written; i++) {
		const Wasp__FileState *f = h->written[i];
		em_open(e, NULL, EM_LINE);
		em_str(e, "path", f->path, strlen(f->path));
		em_bool(e, "present", f->present);
		em_u64(e, "size", f->has_size ? f->size : 0);
		em_fmt(e, "crc32c", "%08x", f->has_crc32c ? f->crc32c : 0);
		em_u64(e, "carried_bytes", f->has_content ? f->content.len : 0);
		em_close(e);
	}
	em_close(e);
	if (h->has_dir_grown)
		em_i64(e, "dir_grown", h->dir_grown);
	else
		em_null(e, "dir_grown");
	/* 2.0: a Linux program's personality */
	const Wasp__LinuxState *l = h->linux_state;
	if (l) {
		em_open(e, "linux", EM_OBJ);
		em_hex(e, "entry", l->entry);
		em_open(e, "image", EM_LINE);
		em_hex(e, "lo", l->image_lo);
		em_hex(e, "hi", l->image_hi);
		em_close(e);
		em_open(e, "brk", EM_LINE);
		em_hex(e, "start", l->brk_start);
		em_hex(e, "now", l->brk);
		em_hex(e, "max", l->brk_max);
		em_close(e);
		em_open(e, "stack", EM_LINE);
		em_hex(e, "low", l->stack_low);
		em_hex(e, "top", l->stack_top);
		em_close(e);
		uint64_t mapped = 0;
		for (size_t i = 0; i < l->n_maps; i++)
			mapped += l->maps[i]->len;
		em_u64(e, "mappings", l->n_maps);
		em_u64(e, "mapped_bytes", mapped);
		em_u64(e, "signal_dispositions", l->n_signals);
		em_hex(e, "sigmask", l->sigmask);
		em_fmt(e, "umask", "%03o", l->umask);
		em_close(e);
	} else {
		em_null(e, "linux");
	}
	em_close(e);
}

struct mem_summary {
	uint64_t chunks, stored, pages, zero_pages, raw, comp;
	uint64_t *sizes;
	size_t n, cap;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_memory(struct em *e, struct mem_summary *m, const Wasp__Header *h)
{
	em_open(e, "memory", EM_OBJ);
	em_u64(e, "chunks", m->chunks);
	em_u64(e, "chunks_stored_uncompressed", m->stored);
	em_u64(e, "pages", m->pages);
	em_u64(e, "zero_pages_listed", m->zero_pages);
	if (h)
		em_u64(e, "guest_pages", h->mem_size / 4096);
	else
		em_null(e, "guest_pages");
	em_u64(e, "raw_bytes", m->raw);
	em_u64(e, "compressed_bytes", m->comp);
	if (m->comp)
		em_ratio(e, "ratio", (double)m->raw / (double)m->comp);
	else
		em_null(e, "ratio");
	if (m->n) {
		qsort(m->sizes, m->n, sizeof *m->sizes, cmp_u64);
		em_open(e, "chunk_bytes", EM_LINE);
		em_u64(e, "min", m->sizes[0]);
		em_u64(e, "median", m->sizes[m->n / 2]);
		em_u64(e, "max", m->sizes[m->n - 1]);
		em_close(e);
	} else {
		em_null(e, "chunk_bytes");
	}
	em_close(e);
}

static int note_chunk(struct mem_summary *m, const Wasp__MemoryChunk *c)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 256;
		uint64_t *s = realloc(m->sizes, cap * sizeof *s);
		if (!s)
			return wasp_fail(-ENOMEM, "inspect: out of memory");
		m->sizes = s;
		m->cap = cap;
	}
	m->sizes[m->n++] = c->data.len;
	m->chunks++;
	m->stored += c->has_codec && c->codec == WASP__MEMORY_CHUNK__CODEC__NONE;
	m->raw += c->raw_size;
	m->comp += c->data.len;
	for (size_t i = 0; i < c->n_ranges; i++)
		m->pages += c->ranges[i]->count;
	for (size_t i = 0; i < c->n_zero_ranges; i++)
		m->zero_pages += c->zero_ranges[i]->count;
	return 0;
}

int wasp_ckpt_inspect(const struct wasp_source *src, bool json, FILE *out)
{
	struct wasp_stream_reader *r = NULL;
	Wasp__Record *header = NULL, *vcpu = NULL, *host = NULL, *rec;
	struct mem_summary mem = {0};
	struct em e = {.f = out, .json = json};
	uint64_t records = 0;
	char err_msg[512] = "";
	int err;

	err = wasp_stream_reader_open(src, &r);
	while (err == 0) {
		err = wasp_stream_read_record(r, &rec);
		if (err <= 0)
			break;
		records++;
		err = 0;
		switch (rec->body_case) {
		case WASP__RECORD__BODY_HEADER:
			header = rec;
			break;
		case WASP__RECORD__BODY_VCPU:
			vcpu = rec;
			break;
		case WASP__RECORD__BODY_HOST:
			host = rec;
			break;
		case WASP__RECORD__BODY_MEMORY:
			/* The reader checked it already; the check is cheap and
			 * this tool is what people trust to vet a file. */
			err = wasp_stream_check_chunk(rec->memory,
						      header ? header->header->mem_size : 0);
			if (err == 0)
				err = note_chunk(&mem, rec->memory);
			wasp__record__free_unpacked(rec, NULL);
			break;
		default:
			wasp__record__free_unpacked(rec, NULL);
			break;
		}
	}
	if (err < 0)
		snprintf(err_msg, sizeof err_msg, "%s", wasp_last_error());

	em_open(&e, NULL, EM_OBJ);
	if (json) {
		em_bool(&e, "valid", err == 0);
		if (err)
			em_str(&e, "error", err_msg, strlen(err_msg));
		else
			em_null(&e, "error");
	} else {
		fprintf(out, "wasp checkpoint: %" PRIu64 " bytes read, %" PRIu64 " records\n",
			wasp_stream_reader_bytes(r), records);
	}
	if (json) {
		em_u64(&e, "bytes", wasp_stream_reader_bytes(r));
		em_u64(&e, "records", records);
	}
	if (header)
		print_header(&e, header->header);
	else
		em_null(&e, "header");
	if (vcpu)
		print_vcpu(&e, vcpu->vcpu);
	else
		em_null(&e, "vcpu");
	print_memory(&e, &mem, header ? header->header : NULL);
	if (host)
		print_host(&e, host->host);
	else
		em_null(&e, "host");
	if (json) {
		if (err == 0)
			em_fmt(&e, "crc32c", "0x%08x", wasp_stream_reader_crc32c(r));
		else
			em_null(&e, "crc32c");
	} else if (err == 0) {
		fprintf(out, "checksum ok (crc32c 0x%08x)\n", wasp_stream_reader_crc32c(r));
	} else {
		fputs("error: ", out);
		em_string(&e, err_msg, strlen(err_msg), false);
		fputc('\n', out);
	}
	em_close(&e);

	wasp_stream_reader_free(r);
	if (header)
		wasp__record__free_unpacked(header, NULL);
	if (vcpu)
		wasp__record__free_unpacked(vcpu, NULL);
	if (host)
		wasp__record__free_unpacked(host, NULL);
	free(mem.sizes);
	if (err < 0)
		return wasp_fail(err, "%s", err_msg);
	return 0;
}
