/*
 * test_hostile: hostile guests on real KVM, each with the outcome
 * docs/hostile-guests.md promises, alone and all at once beside a
 * well-behaved virtine in the same process.
 *
 *   test_hostile TEST_GUEST_DIR HARDEN_GUEST_DIR CASE
 *
 * Cases: one per hostile guest (`badptr`, `ptwrite_far`, ...: the table
 * below), `concurrent` (a good virtine loops on one thread, checking every
 * answer, while every hostile guest runs on threads of its own; the good
 * one must keep answering right, every hostile one must end as documented,
 * and the process must hold no more fds afterwards), `ptwrite_ckpt`
 * (checkpoints of a guest whose page tables are garbage), `flood_pause` (a
 * guest flooding denied hypercalls stops when paused, checkpoints and goes
 * on after a restore) and `list_outcomes`
 * (prints the table as markdown rows, for the docs).
 * Exit 0 pass, 1 fail, 77 skip.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "harness.h"
#include "vmm.h"

static const char *test_guest_dir, *harden_guest_dir;

#define MS 1000000ull
#define ANY_KIND (-1)

/* Sandbox layouts a guest expects (see each guest's comment). */
enum prep { NO_DIR, PLAIN_DIR, ESCAPE_DIR, RACE_DIR };

struct hostile {
	const char *name;
	bool harden;       /* image in HARDEN_GUEST_DIR, else TEST_GUEST_DIR */
	const char *image;
	const char *args;  /* space-separated guest arguments */
	size_t mem;        /* 0: 16 MiB */
	const char *allow;
	enum prep prep;
	uint64_t timeout_ms; /* for guests that end themselves: a bound against hangs,
				generous for valgrind and a loaded machine */
	/* the outcome */
	enum wasp_exit_reason reason;
	int kind;          /* FAULT: enum wasp_fault_kind or ANY_KIND */
	int64_t code;      /* EXITED: exit code */
	uint64_t addr;     /* FAULT MMIO/IO: address or port (0: not checked) */
	const char *console; /* must appear on the guest's console */
	bool or_exit0;     /* FAULT on this KVM, but exiting 0 is right too */
	const char *doc;   /* what it does, for list_outcomes */
};

#define EXITED(c) WASP_EXIT_EXITED, ANY_KIND, (c), 0
#define FAULT(k, a) WASP_EXIT_FAULT, (k), 0, (a)
#define TIMEOUT WASP_EXIT_TIMEOUT, ANY_KIND, 0, 0
#define CW "console_write,get_arg"

static const struct hostile hostiles[] = {
	{"badptr", false, "badptr", "x", 0, "all", PLAIN_DIR, 60000, EXITED(0),
	 "checks, 0 failed", false,
	 "every pointer-taking hypercall with pointers/lengths outside memory, straddling its end, "
	 "wrapping 2^64, aliasing mod 2^32, 2^62 and -1 lengths"},
	{"escape", false, "escape", "", 0, "all", ESCAPE_DIR, 60000, EXITED(0), "all as expected",
	 false, "`../`, absolute paths, `sub/../..`, a symlink to a file outside, a symlink to the "
		"parent directory, creating outside"},
	{"sbxrace", true, "sbxrace", "600", 0, "all", RACE_DIR, 60000, EXITED(0), "0 outside",
	 false, "FIFO, directory, dangling symlink with O_CREAT, 4999-byte path, 40 opens, and "
		"opens through names a host thread keeps swapping between a directory/file and "
		"symlinks out (renameat2 RENAME_EXCHANGE)"},
	{"sparse", true, "sparse", "", 0, "console_write,files", PLAIN_DIR, 60000, EXITED(0),
	 "0 failed", false,
	 "a 1 TiB sparse file (one byte at 1 TiB - 1), writes at 2 GiB and 2^62, then ordinary "
	 "writes up to the default 1 GiB --dir-quota and one byte past it: -EDQUOT, nothing "
	 "that big created"},
	{"denied", false, "denied", "", 0, "console_write", NO_DIR, 60000, EXITED(0), "EPERM ok",
	 false, "`open` without permission"},
	{"hcdenied", true, "hcdenied", "3000", 0, CW, NO_DIR, 60000, EXITED(0), "0 wrong answers",
	 false, "3000 denied and unknown hypercall numbers (up to 2^64-1) with garbage arguments"},
	{"hcdenied_forever", true, "hcdenied", "forever", 0, CW, NO_DIR, 400, TIMEOUT,
	 "calling until stopped", false, "denied hypercalls without end: exits constantly"},
	{"hcflood", false, "hcflood", "", 0, "console_write,clock", NO_DIR, 60000, EXITED(0),
	 "10000", false, "10000 allowed clock hypercalls back to back"},
	{"loop", false, "loop", "", 0, CW, NO_DIR, 300, TIMEOUT, "spinning forever", false,
	 "an endless loop that never exits"},
	{"triple", false, "triple", "", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 "executing ud2", false, "`ud2` (no IDT)"},
	{"nullderef", false, "nullderef", "", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 "reading address 0", false, "reads address 0 (page 0 is not mapped)"},
	{"mmio", false, "mmio", "", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_MMIO, 0x3f000000), NULL,
	 false, "maps and writes guest-physical 0x3f000000, where no memory is"},
	{"ptwrite_probe", true, "ptwrite", "probe", 0, CW ",clock", NO_DIR, 60000, EXITED(0),
	 "done, 0 failed", false,
	 "reads its page-table bits, aliases its memory at 300 GiB, passes the alias to the host, "
	 "fills unused entries with garbage"},
	{"ptwrite_far", true, "ptwrite", "far", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_MMIO, 512ull << 30), NULL, false,
	 "maps guest-physical 512 GiB into its tables and writes there"},
	{"ptwrite_wreck", true, "ptwrite", "wreck", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), "overwriting PML4[0]", false,
	 "overwrites the PML4 entry everything runs through with garbage"},
	{"ptwrite_tss", true, "ptwrite", "tss", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 "closing every port", false,
	 "sets every bit of its TSS I/O map, then makes a hypercall"},
	{"grow_heap", true, "grow", "heap", 0, CW, NO_DIR, 60000, EXITED(0), "heap ok", false,
	 "mallocs until NULL, absurd malloc/calloc/realloc sizes"},
	{"grow_touch", true, "grow", "touch", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 "first byte past memory", false, "reads the byte after its 16 MiB (unmapped)"},
	{"grow_touch_3m", true, "grow", "touch", 3u << 20, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_MMIO, 3u << 20), "first byte past memory", false,
	 "reads the byte after its 3 MiB (mapped by the last 2 MiB page, no memory there)"},
	{"grow_stack", true, "grow", "stack", 0, CW, NO_DIR, 10000, FAULT(ANY_KIND, 0), NULL, false,
	 "recurses without end (1 KiB frames): the stack runs down over heap, code and page tables"},
	{"privops_hlt", true, "privops", "hlt", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 "executing hlt", false, "`hlt` at ring 3"},
	{"privops_rdmsr", true, "privops", "rdmsr", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`rdmsr` (TSC)"},
	{"privops_wrmsr", true, "privops", "wrmsr", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`wrmsr` EFER = 0"},
	{"privops_cr3", true, "privops", "cr3", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 NULL, false, "`mov cr3`"},
	{"privops_lgdt", true, "privops", "lgdt", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`lgdt`"},
	{"privops_int3", true, "privops", "int3", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`int3`"},
	{"privops_int80", true, "privops", "int80", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`int 0x80`"},
	{"privops_syscall", true, "privops", "syscall", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`syscall` (LSTAR is 0)"},
	{"privops_in", true, "privops", "in", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_IO, 0x60), NULL,
	 false, "`in al, 0x60`"},
	{"privops_out80", true, "privops", "out80", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_IO, 0x80), NULL, false, "`out 0x80, al`"},
	{"privops_out3f8", true, "privops", "out3f8", 0, CW, NO_DIR, 5000,
	 FAULT(WASP_FAULT_SHUTDOWN, 0), NULL, false, "`out dx, al` to 0x3f8 (beyond the TSS I/O map)"},
	{"privops_cli", true, "privops", "cli", 0, CW, NO_DIR, 5000, FAULT(WASP_FAULT_SHUTDOWN, 0),
	 NULL, true, "`cli; sti` (legal with IOPL 3 on hardware; PVM faults it)"},
};
#define N_HOSTILE (sizeof hostiles / sizeof hostiles[0])

/* ---- helpers ------------------------------------------------------------ */

static char *console_text(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *s = malloc(len > 0 ? (size_t)len + 1 : 1);
	if (!s)
		return NULL;
	ssize_t n = len > 0 ? pread(fd, s, (size_t)len, 0) : 0;
	s[n > 0 ? n : 0] = '\0';
	return s;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	close(fd);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0)
		fprintf(stderr, "warning: cannot remove %s\n", path);
	return 0;
}

static void remove_tree(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The symlink swapper for sbxrace: exchanges each real name with its
 * symlink twin as fast as it can until told to stop. */
struct swapper {
	char box[512];
	atomic_bool stop;
	unsigned long swaps;
	pthread_t thread;
};

static void *swap_loop(void *arg)
{
	struct swapper *s = arg;
	char a[600], b[600], c[600], d[600];
	snprintf(a, sizeof a, "%s/swap", s->box);
	snprintf(b, sizeof b, "%s/swap_alt", s->box);
	snprintf(c, sizeof c, "%s/flip", s->box);
	snprintf(d, sizeof d, "%s/flip_alt", s->box);
	while (!atomic_load(&s->stop)) {
		if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0)
			s->swaps++;
		if (renameat2(AT_FDCWD, c, AT_FDCWD, d, RENAME_EXCHANGE) == 0)
			s->swaps++;
	}
	return NULL;
}

/* One hostile run: its own work directory, virtine and console. */
struct run {
	const struct hostile *h;
	char work[256], box[300];
	struct swapper *swapper;
	struct wasp_exit e;
	int run_err;
	char *console;
	bool ok;
	char why[512];
};

static void prepare(struct run *r)
{
	char p[700];
	snprintf(r->work, sizeof r->work, "/tmp/wasp-hostile-%s-XXXXXX", r->h->name);
	if (!mkdtemp(r->work)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(r->box, sizeof r->box, "%s/box", r->work);
	if (r->h->prep == NO_DIR)
		return;
	mkdir(r->box, 0755);
	if (r->h->prep == ESCAPE_DIR) {
		snprintf(p, sizeof p, "%s/sub", r->box), mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/outside.txt", r->work), write_file(p, "secret\n");
		snprintf(p, sizeof p, "%s/inside.txt", r->box), write_file(p, "hi\n");
		char target[700];
		snprintf(target, sizeof target, "%s/outside.txt", r->work);
		snprintf(p, sizeof p, "%s/link_out", r->box);
		if (symlink(target, p) < 0)
			perror("symlink");
		snprintf(p, sizeof p, "%s/link_dir", r->box);
		if (symlink(r->work, p) < 0)
			perror("symlink");
	}
	if (r->h->prep == RACE_DIR) {
		char out[600], target[700];
		snprintf(out, sizeof out, "%s/outside", r->work), mkdir(out, 0755);
		snprintf(p, sizeof p, "%s/secret.txt", out), write_file(p, "OUTSIDE\n");
		snprintf(p, sizeof p, "%s/fifo", r->box), mkfifo(p, 0644);
		snprintf(p, sizeof p, "%s/dir", r->box), mkdir(p, 0755);
		snprintf(target, sizeof target, "%s/created.txt", out);
		snprintf(p, sizeof p, "%s/dangle", r->box);
		if (symlink(target, p) < 0)
			perror("symlink");
		snprintf(p, sizeof p, "%s/plain.txt", r->box), write_file(p, "inside\n");
		snprintf(p, sizeof p, "%s/swap", r->box), mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/swap/secret.txt", r->box), write_file(p, "inside\n");
		snprintf(p, sizeof p, "%s/swap_alt", r->box);
		if (symlink(out, p) < 0)
			perror("symlink");
		snprintf(p, sizeof p, "%s/flip", r->box), write_file(p, "inside\n");
		snprintf(target, sizeof target, "%s/secret.txt", out);
		snprintf(p, sizeof p, "%s/flip_alt", r->box);
		if (symlink(target, p) < 0)
			perror("symlink");
		r->swapper = calloc(1, sizeof *r->swapper);
		if (!r->swapper) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
		snprintf(r->swapper->box, sizeof r->swapper->box, "%s", r->box);
		pthread_create(&r->swapper->thread, NULL, swap_loop, r->swapper);
	}
}

static void judge(struct run *r)
{
	const struct hostile *h = r->h;
	const struct wasp_exit *e = &r->e;
	char got[200];

	snprintf(got, sizeof got, "%s", wasp_exit_reason_name(e->reason));
	if (e->reason == WASP_EXIT_FAULT)
		snprintf(got, sizeof got, "fault %s at 0x%llx", wasp_fault_kind_name(e->fault.kind),
			 (unsigned long long)e->fault.addr);
	else if (e->reason == WASP_EXIT_EXITED)
		snprintf(got, sizeof got, "exited %lld", (long long)e->code);

	r->ok = false;
	if (r->run_err < 0) {
		snprintf(r->why, sizeof r->why, "run failed: %d", r->run_err);
		return;
	}
	bool match = e->reason == h->reason;
	if (match && h->reason == WASP_EXIT_EXITED)
		match = e->code == h->code;
	if (match && h->reason == WASP_EXIT_FAULT) {
		if (h->kind != ANY_KIND)
			match = (int)e->fault.kind == h->kind;
		if (match && h->addr)
			match = e->fault.addr == h->addr;
	}
	if (!match && h->or_exit0)
		match = e->reason == WASP_EXIT_EXITED && e->code == 0;
	if (!match) {
		snprintf(r->why, sizeof r->why, "ended %s", got);
		return;
	}
	if (h->console && (!r->console || !strstr(r->console, h->console))) {
		snprintf(r->why, sizeof r->why, "ended %s, but the console lacks \"%s\"", got,
			 h->console);
		return;
	}
	if (h->prep == ESCAPE_DIR) {
		char p[400];
		snprintf(p, sizeof p, "%s/escape_created.txt", r->work);
		if (access(p, F_OK) == 0) {
			snprintf(r->why, sizeof r->why, "a file was created outside the sandbox");
			return;
		}
	}
	if (!strcmp(h->name, "sparse")) {
		/* Nothing in the sandbox claims more than the quota. */
		static const char *const names[] = {"big", "second"};
		for (size_t i = 0; i < 2; i++) {
			char p[400];
			struct stat st;
			snprintf(p, sizeof p, "%s/%s", r->box, names[i]);
			if (stat(p, &st) == 0 && st.st_size > (off_t)WASP_DIR_QUOTA_DEFAULT) {
				snprintf(r->why, sizeof r->why, "%s grew to %lld bytes", names[i],
					 (long long)st.st_size);
				return;
			}
		}
	}
	if (h->prep == RACE_DIR) {
		char p[400];
		snprintf(p, sizeof p, "%s/outside/created.txt", r->work);
		if (access(p, F_OK) == 0) {
			snprintf(r->why, sizeof r->why, "the dangling symlink created a file outside");
			return;
		}
	}
	snprintf(r->why, sizeof r->why, "%s", got);
	r->ok = true;
}

/* Runs one hostile guest start to end and judges it. */
static void *run_hostile(void *arg)
{
	struct run *r = arg;
	const struct hostile *h = r->h;
	struct wasp_config cfg;
	struct wasp_virtine *v = NULL;
	char path[600], args[256];

	prepare(r);
	int con = memfd_create("console", MFD_CLOEXEC);
	wasp_config_init(&cfg);
	cfg.mem_size = h->mem ? h->mem : 16u << 20;
	cfg.console_fd = con;
	cfg.no_stdin = true;
	cfg.sandbox_dir = h->prep == NO_DIR ? NULL : r->box;
	snprintf(path, sizeof path, "%s/%s.bin", h->harden ? harden_guest_dir : test_guest_dir,
		 h->image);
	r->run_err = wasp_virtine_create(&cfg, &v);
	if (r->run_err == 0)
		r->run_err = wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO);
	if (r->run_err == 0)
		r->run_err = wasp_virtine_allow(v, h->allow);
	/* NUL-separated, as wasp-run packs `-- A B` */
	size_t n = strlen(h->args);
	memcpy(args, h->args, n + 1);
	for (size_t i = 0; i < n; i++)
		if (args[i] == ' ')
			args[i] = '\0';
	if (r->run_err == 0 && n)
		r->run_err = wasp_virtine_set_arg(v, args, n + 1);
	if (r->run_err == 0)
		r->run_err = wasp_virtine_run(v, h->timeout_ms * MS, &r->e);
	if (r->run_err < 0)
		fprintf(stderr, "%s: %s\n", h->name, wasp_last_error());
	wasp_virtine_destroy(v);
	if (r->swapper) {
		atomic_store(&r->swapper->stop, true);
		pthread_join(r->swapper->thread, NULL);
	}
	r->console = console_text(con);
	close(con);
	judge(r);
	if (r->swapper) {
		printf("%s: the host swapped the symlinks %lu times meanwhile\n", h->name,
		       r->swapper->swaps);
		free(r->swapper);
	}
	remove_tree(r->work);
	return NULL;
}

static void report(const struct run *r)
{
	/* The guest's last line says what it saw. */
	const char *c = r->console ? r->console : "", *last = c, *end = c + strlen(c);
	while (end > c && end[-1] == '\n')
		end--;
	for (const char *p = c; p < end; p++)
		if (*p == '\n')
			last = p + 1;
	printf("%-18s %s: %s; console: %.*s\n", r->h->name, r->ok ? "ok" : "FAIL", r->why,
	       (int)(end - last), last);
	if (!r->ok) {
		failures++;
		fprintf(stderr, "--- %s console:\n%s---\n", r->h->name, r->console ? r->console : "");
	}
}

/* ---- the good virtine ----------------------------------------------------- */

struct good {
	atomic_bool stop;
	unsigned long runs, wrong;
	uint64_t max_ns;
	char msg[256];
};

/* argret, again and again: a random argument must come back reversed.
 * Every tenth run uses a newly created virtine, the others reload one. */
static void *good_loop(void *arg)
{
	struct good *g = arg;
	struct wasp_virtine *v = NULL;
	char path[600], in[64], want[64];
	unsigned seed = 12345;
	struct wasp_config cfg;

	wasp_config_init(&cfg);
	cfg.mem_size = 1u << 20;
	cfg.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.no_stdin = true;
	snprintf(path, sizeof path, "%s/argret.bin", test_guest_dir);
	while (!atomic_load(&g->stop) || g->runs < 5) {
		uint64_t t0 = wasp_now_ns();
		struct wasp_exit e;
		if (g->runs % 10 == 0) {
			wasp_virtine_destroy(v);
			v = NULL;
			if (wasp_virtine_create(&cfg, &v) < 0 || wasp_virtine_allow(v, "console_write,get_arg,set_ret") < 0)
				goto bad;
		}
		size_t len = 8 + rand_r(&seed) % 40;
		for (size_t i = 0; i < len; i++)
			in[i] = (char)('a' + rand_r(&seed) % 26);
		for (size_t i = 0; i < len; i++)
			want[i] = in[len - 1 - i];
		size_t rlen;
		if (wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) < 0 ||
		    wasp_virtine_set_arg(v, in, len) < 0 || wasp_virtine_run(v, 10000 * MS, &e) < 0)
			goto bad;
		const void *ret = wasp_virtine_ret(v, &rlen);
		if (e.reason != WASP_EXIT_EXITED || e.code != 0 || rlen != len || memcmp(ret, want, len)) {
			snprintf(g->msg, sizeof g->msg, "run %lu: %s %lld, %zu bytes back", g->runs,
				 wasp_exit_reason_name(e.reason), (long long)e.code, rlen);
			g->wrong++;
		}
		g->runs++;
		uint64_t dt = wasp_now_ns() - t0;
		if (dt > g->max_ns)
			g->max_ns = dt;
		continue;
bad:
		snprintf(g->msg, sizeof g->msg, "run %lu: %s", g->runs, wasp_last_error());
		g->wrong++;
		break;
	}
	wasp_virtine_destroy(v);
	close(cfg.console_fd);
	return NULL;
}

/* ---- cases -------------------------------------------------------------- */

static const struct hostile *current;

static void t_one(void)
{
	struct run r = {.h = current};
	run_hostile(&r);
	report(&r);
	free(r.console);
}

static void t_concurrent(void)
{
	struct good g = {0};
	pthread_t gt, ht[N_HOSTILE];
	struct run *runs = calloc(N_HOSTILE, sizeof *runs);

	/* One warm-up virtine, so KVM's process-wide state (and its fds) exist
	 * before the count is taken. */
	struct wasp_virtine *w;
	if (wasp_virtine_create(NULL, &w) == 0)
		wasp_virtine_destroy(w);
	int fds0 = count_fds();
	uint64_t t0 = wasp_now_ns();

	pthread_create(&gt, NULL, good_loop, &g);
	usleep(50000);
	unsigned long before = g.runs;
	/* WASP_HOSTILE_SKIP=a,b leaves cases out (scripts/valgrind.sh: the
	 * ones valgrind cannot run, see there). */
	const char *skip = getenv("WASP_HOSTILE_SKIP");
	size_t n = 0;
	for (size_t i = 0; i < N_HOSTILE; i++) {
		char name[64];
		snprintf(name, sizeof name, ",%s,", hostiles[i].name);
		char list[512];
		snprintf(list, sizeof list, ",%s,", skip ? skip : "");
		if (strstr(list, name)) {
			printf("%s: left out (WASP_HOSTILE_SKIP)\n", hostiles[i].name);
			continue;
		}
		runs[n].h = &hostiles[i];
		pthread_create(&ht[n], NULL, run_hostile, &runs[n]);
		n++;
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(ht[i], NULL);
	unsigned long during = g.runs - before;
	uint64_t hostile_ns = wasp_now_ns() - t0;
	atomic_store(&g.stop, true);
	pthread_join(gt, NULL);

	for (size_t i = 0; i < n; i++) {
		report(&runs[i]);
		free(runs[i].console);
	}
	printf("good virtine: %lu runs (%lu while %zu hostile guests ran, %.2f s), %lu wrong, "
	       "slowest run %.1f ms\n",
	       g.runs, during, n, hostile_ns / 1e9, g.wrong, g.max_ns / 1e6);
	CHECK(g.wrong == 0, "the good virtine went wrong: %s", g.msg);
	CHECK(during > 0, "the good virtine made no progress while the hostile ones ran");
	int fds1 = count_fds();
	CHECK(fds1 == fds0, "%d fds before, %d after", fds0, fds1);
	free(runs);
}

/* Waits until the console (a memfd) shows `text`, for at most 10 s. */
static bool console_wait(int fd, const char *text)
{
	for (int i = 0; i < 1000; i++) {
		char *s = console_text(fd);
		bool found = s && strstr(s, text);
		free(s);
		if (found)
			return true;
		usleep(10000);
	}
	return false;
}

struct bg_run {
	struct wasp_virtine *v;
	struct wasp_exit e;
	int r;
};

static void *bg_run(void *arg)
{
	struct bg_run *b = arg;
	b->r = wasp_virtine_run(b->v, 30000 * MS, &b->e);
	return NULL;
}

static struct wasp_virtine *make_ptwrite(const char *mode, int con)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[600];

	wasp_config_init(&cfg);
	cfg.console_fd = con;
	cfg.no_stdin = true;
	snprintf(path, sizeof path, "%s/ptwrite.bin", harden_guest_dir);
	if (wasp_virtine_create(&cfg, &v) < 0 || wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) < 0 ||
	    wasp_virtine_allow(v, "console_write,get_arg,clock") < 0 ||
	    wasp_virtine_set_arg(v, mode, strlen(mode) + 1) < 0) {
		fprintf(stderr, "ptwrite: %s\n", wasp_last_error());
		exit(1);
	}
	return v;
}

/* Checkpoints of a guest that rewrote its page tables: one paused with
 * garbage in every unused entry (must restore and finish, garbage intact),
 * and one that wrecked its PML4 and faulted (must save, restore and fault
 * again the same way; or be refused cleanly, never crash). */
static void t_ptwrite_ckpt(void)
{
	int con = memfd_create("console", MFD_CLOEXEC);
	struct bg_run b = {.v = make_ptwrite("probe", con)};
	pthread_t t;
	void *buf = NULL;
	size_t len = 0;

	pthread_create(&t, NULL, bg_run, &b);
	CHECK(console_wait(con, "garbage in place"), "ptwrite never put its garbage in place");
	wasp_virtine_pause(b.v);
	pthread_join(t, NULL);
	CHECK(b.r == 0 && b.e.reason == WASP_EXIT_PAUSED, "ptwrite: run %d, %s", b.r,
	      wasp_exit_reason_name(b.e.reason));
	int r = wasp_ckpt_save_buffer(b.v, NULL, &buf, &len, NULL);
	CHECK(r == 0, "saving a virtine with garbage page tables failed");
	wasp_virtine_destroy(b.v);

	int con2 = memfd_create("console", MFD_CLOEXEC);
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.console_fd = con2;
	cfg.no_stdin = true;
	struct wasp_restore_opts ro = {.config = &cfg};
	struct wasp_virtine *v = NULL;
	struct wasp_exit e;
	r = wasp_ckpt_restore_buffer(&ro, buf, len, &v, NULL);
	CHECK(r == 0, "restoring it failed");
	if (r == 0) {
		r = wasp_virtine_run(v, 30000 * MS, &e);
		char *s = console_text(con2);
		printf("restored ptwrite said:\n%s", s ? s : "");
		CHECK(r == 0 && e.reason == WASP_EXIT_EXITED && e.code == 0,
		      "the restored ptwrite ended %s %lld", wasp_exit_reason_name(e.reason),
		      (long long)e.code);
		CHECK(s && strstr(s, "done, 0 failed"), "the restored ptwrite did not finish cleanly");
		free(s);
		wasp_virtine_destroy(v);
	}
	free(buf);
	close(con);
	close(con2);

	/* wrecked: PML4[0] garbage, faulted */
	con = memfd_create("console", MFD_CLOEXEC);
	v = make_ptwrite("wreck", con);
	r = wasp_virtine_run(v, 5000 * MS, &e);
	CHECK(r == 0 && e.reason == WASP_EXIT_FAULT && e.fault.kind == WASP_FAULT_SHUTDOWN,
	      "wreck ended %s", wasp_exit_reason_name(e.reason));
	buf = NULL;
	r = wasp_ckpt_save_buffer(v, NULL, &buf, &len, NULL);
	printf("checkpoint of the wrecked, faulted guest: %s (%zu bytes)\n",
	       r == 0 ? "saved" : wasp_last_error(), r == 0 ? len : 0);
	wasp_virtine_destroy(v);
	if (r == 0) {
		FILE *devnull = fopen("/dev/null", "w");
		int fd = memfd_create("ckpt", MFD_CLOEXEC);
		CHECK(write(fd, buf, len) == (ssize_t)len, "memfd");
		lseek(fd, 0, SEEK_SET);
		struct wasp_source src = wasp_source_fd(&fd);
		CHECK(wasp_ckpt_inspect(&src, false, devnull) == 0, "inspect refused it");
		fclose(devnull);
		close(fd);
		v = NULL;
		r = wasp_ckpt_restore_buffer(&ro, buf, len, &v, NULL);
		printf("restore of it: %s\n", r == 0 ? "ok" : wasp_last_error());
		if (r == 0) {
			r = wasp_virtine_run(v, 5000 * MS, &e);
			printf("running it: %s\n", r == 0 ? wasp_exit_reason_name(e.reason) : wasp_last_error());
			CHECK(r == 0 && e.reason == WASP_EXIT_FAULT,
			      "the restored wreck did not fault again: %s",
			      wasp_exit_reason_name(e.reason));
			wasp_virtine_destroy(v);
		} else {
			CHECK(v == NULL, "a refused restore handed out a virtine");
		}
	}
	free(buf);
	close(con);
}

/* A guest that exits constantly (denied hypercalls without end) must still
 * stop promptly when asked, checkpoint, and go on after a restore. */
static void t_flood_pause(void)
{
	int con = memfd_create("console", MFD_CLOEXEC);
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[600];
	static const char arg[] = "forever";

	wasp_config_init(&cfg);
	cfg.console_fd = con;
	cfg.no_stdin = true;
	snprintf(path, sizeof path, "%s/hcdenied.bin", harden_guest_dir);
	if (wasp_virtine_create(&cfg, &v) < 0 || wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) < 0 ||
	    wasp_virtine_allow(v, "console_write,get_arg") < 0 || wasp_virtine_set_arg(v, arg, sizeof arg) < 0) {
		CHECK(false, "hcdenied: setup");
		return;
	}
	struct bg_run b = {.v = v};
	pthread_t t;
	pthread_create(&t, NULL, bg_run, &b);
	CHECK(console_wait(con, "calling until stopped"), "hcdenied did not start");
	usleep(100000);
	uint64_t t0 = wasp_now_ns();
	wasp_virtine_pause(v);
	pthread_join(t, NULL);
	uint64_t stop_ns = wasp_now_ns() - t0;
	struct wasp_stats st;
	wasp_virtine_stats(v, &st);
	printf("paused after %llu denied hypercalls, %.2f ms after the request\n",
	       (unsigned long long)st.hypercalls_denied, stop_ns / 1e6);
	CHECK(b.r == 0 && b.e.reason == WASP_EXIT_PAUSED, "the flood ended %s",
	      wasp_exit_reason_name(b.e.reason));
	CHECK(st.hypercalls_denied > 0, "no denied calls before the pause");
	void *buf = NULL;
	size_t len = 0;
	CHECK(wasp_ckpt_save_buffer(v, NULL, &buf, &len, NULL) == 0, "save");
	wasp_virtine_destroy(v);
	struct wasp_restore_opts ro = {.config = &cfg};
	struct wasp_virtine *c = NULL;
	struct wasp_exit e;
	CHECK(wasp_ckpt_restore_buffer(&ro, buf, len, &c, NULL) == 0, "restore");
	if (c) {
		CHECK(wasp_virtine_run(c, 200 * MS, &e) == 0 && e.reason == WASP_EXIT_TIMEOUT,
		      "the restored flood ended %s", wasp_exit_reason_name(e.reason));
		wasp_virtine_stats(c, &st);
		CHECK(st.hypercalls_denied > 0, "the restored flood made no calls");
		char *s = console_text(con);
		CHECK(s && !strstr(s, "wrong"), "wrong answers: %s", s ? s : "");
		free(s);
		wasp_virtine_destroy(c);
	}
	free(buf);
	close(con);
}

static void t_list_outcomes(void)
{
	for (size_t i = 0; i < N_HOSTILE; i++) {
		const struct hostile *h = &hostiles[i];
		char out[160];
		if (h->reason == WASP_EXIT_EXITED)
			snprintf(out, sizeof out, "exits %lld", (long long)h->code);
		else if (h->reason == WASP_EXIT_TIMEOUT)
			snprintf(out, sizeof out, "timeout (after %llu ms)",
				 (unsigned long long)h->timeout_ms);
		else if (h->kind == ANY_KIND)
			snprintf(out, sizeof out, "fault");
		else if (h->addr)
			snprintf(out, sizeof out, "fault: %s at 0x%llx",
				 wasp_fault_kind_name((enum wasp_fault_kind)h->kind),
				 (unsigned long long)h->addr);
		else
			snprintf(out, sizeof out, "fault: %s",
				 wasp_fault_kind_name((enum wasp_fault_kind)h->kind));
		printf("| `%s` | `%s %s` | %s | %s |\n", h->name, h->image, h->args, h->doc, out);
	}
}

int main(int argc, char **argv)
{
	struct test_case cases[N_HOSTILE + 4];
	const char **vars[] = {&test_guest_dir, &harden_guest_dir};
	size_t n = 0;

	for (size_t i = 0; i < N_HOSTILE; i++)
		cases[n++] = (struct test_case){hostiles[i].name, t_one};
	cases[n++] = (struct test_case){"concurrent", t_concurrent};
	cases[n++] = (struct test_case){"ptwrite_ckpt", t_ptwrite_ckpt};
	cases[n++] = (struct test_case){"flood_pause", t_flood_pause};
	cases[n++] = (struct test_case){"list_outcomes", t_list_outcomes};
	for (size_t i = 0; i < N_HOSTILE && argc > 1; i++)
		if (!strcmp(argv[argc - 1], hostiles[i].name))
			current = &hostiles[i];
	return test_main(argc, argv, cases, n, vars, 2, "TEST_GUEST_DIR HARDEN_GUEST_DIR ", true);
}
