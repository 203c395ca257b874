/*
 * make_seeds: writes the fuzz targets' seed corpora from real checkpoints
 * (`make_seeds ASM_DIR GUEST_DIR OUT_DIR`): guests are run on KVM, stopped
 * and saved (full, incremental, live, exited, real mode), and each
 * checkpoint is written as a seed for the decoders, wrapped in a chunking
 * plan for the streaming target and in HTTP requests for the receiver;
 * hypercall sequences and file bundles are written by hand below.
 * Exit 77 without /dev/kvm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "vmm.h"
#include "wasp_abi.h"

static const char *asm_dir, *guest_dir, *out_dir;
static int devnull;

#define MUST(expr)                                                                        \
	do {                                                                              \
		if ((expr) < 0) {                                                         \
			fprintf(stderr, "make_seeds: %s: %s\n", #expr, wasp_last_error()); \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

static void put(const char *target, const char *name, const void *a, size_t alen, const void *b,
		size_t blen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", out_dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) ||
	    fclose(f)) {
		fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static struct wasp_virtine *make(const char *dir, const char *image, size_t mem)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[4096];
	wasp_config_init(&cfg);
	cfg.mem_size = mem;
	cfg.console_fd = devnull;
	cfg.no_stdin = true;
	MUST(wasp_virtine_create(&cfg, &v));
	snprintf(path, sizeof path, "%s/%s", dir, image);
	MUST(wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO));
	return v;
}

struct runner {
	struct wasp_virtine *v;
	struct wasp_exit e;
};
static void *run_thread(void *arg)
{
	struct runner *r = arg;
	MUST(wasp_virtine_run(r->v, 60ull * 1000000000, &r->e));
	return NULL;
}
/* Runs v for about us microseconds, then stops it at an exit boundary. */
static void run_for(struct wasp_virtine *v, unsigned us)
{
	struct runner r = {.v = v};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	usleep(us);
	wasp_virtine_pause(v);
	pthread_join(t, NULL);
}

/* One checkpoint as a seed of every target that reads checkpoints. */
static void ckpt_seed(const char *name, const void *buf, size_t len)
{
	put("ckpt_decode", name, buf, len, NULL, 0);
	put("ckpt_restore", name, buf, len, NULL, 0);
	static const uint8_t plans[3][16] = {
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},        /* byte by byte, tiny queue */
		{40, 7, 200, 1, 255, 13, 192, 3, 99, 250, 2, 5, 8, 64, 1, 220},
		{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
	};
	for (int i = 0; i < 3; i++) {
		char n[256];
		snprintf(n, sizeof n, "%s.plan%d", name, i);
		put("stream_chunks", n, plans[i], sizeof plans[i], buf, len);
	}
	char head[512];
	int h = snprintf(head, sizeof head,
			 "POST /migrations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "Authorization: Bearer fuzz-token\r\nContent-Type: application/octet-stream\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 len);
	char n[256];
	snprintf(n, sizeof n, "%s.post", name);
	put("http_listen", n, head, (size_t)h, buf, len);
	/* Chunked, as wasp-migrate sends it: pieces of 1000 bytes. */
	size_t cap = len + len / 1000 * 16 + 64 + 512;
	char *body = malloc(cap);
	size_t bl = (size_t)snprintf(body, cap,
				     "POST /migrations/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				     "Authorization: Bearer fuzz-token\r\n"
				     "Wasp-Migration-Id: 0123456789abcdef0123456789abcdef\r\n"
				     "Transfer-Encoding: chunked\r\n\r\n");
	for (size_t off = 0; off < len; off += 1000) {
		size_t k = len - off < 1000 ? len - off : 1000;
		bl += (size_t)snprintf(body + bl, cap - bl, "%zx\r\n", k);
		memcpy(body + bl, (const char *)buf + off, k);
		bl += k;
		memcpy(body + bl, "\r\n", 2);
		bl += 2;
	}
	bl += (size_t)snprintf(body + bl, cap - bl, "0\r\n\r\n");
	snprintf(n, sizeof n, "%s.chunked", name);
	put("http_listen", n, body, bl, NULL, 0);
	free(body);
}

static void save_seed(struct wasp_virtine *v, const struct wasp_save_opts *o, const char *name)
{
	void *buf;
	size_t len;
	MUST(wasp_ckpt_save_buffer(v, o, &buf, &len, NULL));
	ckpt_seed(name, buf, len);
	free(buf);
}

struct membuf {
	uint8_t *b;
	size_t len, cap;
};
static int mem_write(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->b = realloc(m->b, m->cap);
		if (!m->b)
			return -ENOMEM;
	}
	memcpy(m->b + m->len, buf, len);
	m->len += len;
	return 0;
}

static void checkpoints(void)
{
	/* scribble.asm writes all over a small region and asks for get_arg. */
	struct wasp_virtine *v = make(asm_dir, "scribble.bin", 4u << 20);
	uint64_t cfg[2] = {200000000, 2048};
	memcpy(wasp_virtine_gpa(v, 0x9000, 16), cfg, 16);
	MUST(wasp_virtine_allow(v, "get_arg,clock"));
	MUST(wasp_virtine_set_arg(v, "bytes the host writes", 22));
	run_for(v, 3000);
	struct wasp_save_opts o = {.track_dirty = true, .threads = 1};
	struct wasp_ckpt_stats st;
	void *buf;
	size_t len;
	MUST(wasp_ckpt_save_buffer(v, &o, &buf, &len, &st));
	ckpt_seed("scribble-full", buf, len);
	free(buf);
	/* Mappable: uncompressed page runs behind pad records, which a
	 * restore from a file maps (fuzz_ckpt_restore restores from a file). */
	save_seed(v, &(struct wasp_save_opts){.mappable = true}, "scribble-mappable");
	run_for(v, 2000);
	o.incremental = true;
	o.parent_id = st.id;
	save_seed(v, &o, "scribble-inc");

	/* A live stream: memory, rounds of dirty pages, then the state. */
	struct membuf m = {0};
	struct wasp_sink sink = {.write = mem_write, .ctx = &m};
	struct wasp_live *l;
	struct runner r = {.v = v};
	pthread_t t;
	pthread_create(&t, NULL, run_thread, &r);
	usleep(1000);
	MUST(wasp_live_begin(v, NULL, &sink, &l));
	for (int i = 0; i < 2; i++) {
		uint64_t pages, bytes;
		usleep(1000);
		MUST(wasp_live_round(l, &pages, &bytes));
	}
	wasp_virtine_pause(v);
	pthread_join(t, NULL);
	MUST(wasp_live_finish(l, NULL));
	wasp_live_free(l);
	ckpt_seed("scribble-live", m.b, m.len);
	free(m.b);
	wasp_virtine_destroy(v);

	/* A C guest that ran to its end (console bytes, return buffer). */
	v = make(guest_dir, "hello.bin", 1u << 20);
	MUST(wasp_virtine_allow(v, "console_write,get_arg,set_ret"));
	struct wasp_exit e;
	MUST(wasp_virtine_run(v, 10ull * 1000000000, &e));
	save_seed(v, NULL, "hello-exited");
	wasp_virtine_destroy(v);

	/* Real mode, the three-byte virtine. */
	v = make(guest_dir, "exit3.bin", 64u << 10);
	MUST(wasp_virtine_run(v, 10ull * 1000000000, &e));
	save_seed(v, NULL, "exit3-real");
	wasp_virtine_destroy(v);
}

static void http_seeds(void)
{
	static const char *const reqs[][2] = {
		{"get-ready", "GET /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\n\r\n"},
		{"get-notoken", "GET /migrations HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"get-wrongtoken", "GET /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-tokem\r\n\r\n"},
		{"get-status", "GET /migrations/0123456789abcdef0123456789abcdef HTTP/1.1\r\nHost: x\r\n"
			       "Authorization: Bearer fuzz-token\r\n\r\n"},
		{"head", "HEAD /migrations/ HTTP/1.0\r\nAuthorization: bearer fuzz-token\r\n\r\n"},
		{"delete", "DELETE /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\n\r\n"},
		{"post-garbage", "POST /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\n"
				 "Content-Length: 12\r\n\r\nWASPCKPTjunk"},
		{"post-badid", "POST /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\n"
			       "Wasp-Migration-Id: xyz\r\nContent-Length: 0\r\n\r\n"},
		{"pipelined", "GET /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\n\r\n"
			      "GET /nothing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\n\r\n"},
	};
	for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++)
		put("http_listen", reqs[i][0], reqs[i][1], strlen(reqs[i][1]), NULL, 0);
}

struct call {
	uint64_t nr, a[6];
};
static void hc_seed(const char *name, uint8_t mode, const struct call *c, size_t n,
		    const char *mem, size_t mem_len)
{
	uint8_t buf[2 + 16 * 56 + 512];
	size_t len = 2;
	buf[0] = mode;
	buf[1] = (uint8_t)n;
	memcpy(buf + len, c, n * sizeof *c);
	len += n * sizeof *c;
	memcpy(buf + len, mem, mem_len);
	len += mem_len;
	put("hypercall", name, buf, len, NULL, 0);
}

static void hypercall_seeds(void)
{
	/* Guest memory from 0x20000: strings and buffers the calls name. */
	static const char mem[] = "f.txt\0../secret.txt\0up\0abs\0/etc/passwd\0etc/passwd\0"
				  "hello, host\n";
	const uint64_t D = 0x20000, F = D, DOTDOT = D + 6, UP = D + 20, ABS = D + 23,
		       ETCABS = D + 27, ETCREL = D + 39, MSG = D + 51;
	const struct call files[] = {
		{WASP_HC_OPEN, {F, WASP_O_RDWR | WASP_O_CREAT | WASP_O_TRUNC, 0644}},
		{WASP_HC_WRITE, {3, MSG, 12}},
		{WASP_HC_LSEEK, {3, 0, 0}},
		{WASP_HC_READ, {3, D + 0x1000, 64}},
		{WASP_HC_PWRITE, {3, MSG, 12, 4096}},
		{WASP_HC_PREAD, {3, D + 0x2000, 100, 4090}},
		{WASP_HC_FSTAT, {3, D + 0x3000}},
		{WASP_HC_CLOSE, {3}},
	};
	const struct call escapes[] = {
		{WASP_HC_OPEN, {DOTDOT, WASP_O_RDONLY}},
		{WASP_HC_OPEN, {UP, WASP_O_RDWR}},
		{WASP_HC_OPEN, {ABS, WASP_O_WRONLY | WASP_O_TRUNC}},
		{WASP_HC_OPEN, {ETCABS, WASP_O_RDONLY}},
		{WASP_HC_OPEN, {ETCREL, WASP_O_RDONLY}},
		{WASP_HC_OPEN, {UP, WASP_O_RDWR | WASP_O_CREAT | WASP_O_EXCL, 0600}},
	};
	const struct call misc[] = {
		{WASP_HC_CONSOLE_WRITE, {MSG, 12}},
		{WASP_HC_CONSOLE_WRITE, {0xfffffffffffff000ull, 0x2000}},
		{WASP_HC_STDIN_READ, {D, 16}},
		{WASP_HC_CLOCK, {WASP_CLOCK_MONOTONIC}},
		{WASP_HC_CLOCK, {7}},
		{WASP_HC_SET_RET, {MSG, 12}},
		{WASP_HC_GET_ARG, {D + 0x100, 64}},
		{WASP_HC_SNAPSHOT, {0}},
		{WASP_HC_SET_RET, {D, 0xffffffffffffffffull}},
		{WASP_HC_READ, {1000, D, 1}},
		{99, {1, 2, 3, 4, 5, 6}},
		{0x8000000000000001ull, {0}},
	};
	for (uint8_t mode = 0; mode < 3; mode++) {
		char n[64];
		snprintf(n, sizeof n, "files.mode%u", mode);
		hc_seed(n, mode, files, sizeof files / sizeof *files, mem, sizeof mem);
		snprintf(n, sizeof n, "escapes.mode%u", mode);
		hc_seed(n, mode, escapes, sizeof escapes / sizeof *escapes, mem, sizeof mem);
		snprintf(n, sizeof n, "misc.mode%u", mode);
		hc_seed(n, mode, misc, sizeof misc / sizeof *misc, mem, sizeof mem);
	}
}

static void bundle_seeds(void)
{
	static const char ok[] = "\x40WASPFILES 1\nF 644 5 a.txt\nhelloF 600 3 sub/dir/b%20c\nxyzF 644 0 empty\nE 3 8\n";
	static const char esc[] = "\x07WASPFILES 1\nF 644 2 ..%2fx\nhiF 644 2 out/x\nhiF 644 2 /abs\nhiE 3 6\n";
	static const char cut[] = "\x00WASPFILES 1\nF 644 100 big\nonly a few bytes";
	put("files_bundle", "ok", ok, sizeof ok - 1, NULL, 0);
	put("files_bundle", "escape", esc, sizeof esc - 1, NULL, 0);
	put("files_bundle", "cut", cut, sizeof cut - 1, NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: make_seeds ASM_DIR GUEST_DIR OUT_DIR\n");
		return 2;
	}
	asm_dir = argv[1];
	guest_dir = argv[2];
	out_dir = argv[3];
	mkdir(out_dir, 0755);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	http_seeds();
	hypercall_seeds();
	bundle_seeds();
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("make_seeds: no /dev/kvm: no checkpoint seeds\n");
		return 77;
	}
	checkpoints();
	printf("make_seeds: seeds in %s\n", out_dir);
	return 0;
}
