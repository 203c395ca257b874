/*
 * test_load: checkpoints under load, one process, real KVM.
 *
 *   test_load GUEST_DIR CASE
 *
 *   concurrent64  64 virtines run at once (counter, one thread each); all 64
 *                 are paused at the same moment and each thread saves its
 *                 checkpoint to a file in one shared directory at once; the
 *                 originals are destroyed, every checkpoint is restored and
 *                 run to the end: each must print exactly what an
 *                 uninterrupted run prints after the checkpoint's console
 *                 position and exit with its code. Prints what creating 64
 *                 VMs cost.
 *   cycles        CYCLES checkpoint/restore cycles of one guest: 1000; 200
 *                 under AddressSanitizer, whose allocator and shadow make
 *                 each cycle several times dearer; WASP_LOAD_CYCLES=N sets
 *                 it. Each: run 1 ms, save (to a buffer, every 10th to a
 *                 file), destroy, restore, go on. The console gathered
 *                 across all of them must equal an uninterrupted run's; the
 *                 fd count must be the same after every cycle past warm-up,
 *                 and heap in use (mallinfo2) and RSS may not grow by more
 *                 than a bound past warm-up. Under ASan and valgrind only the
 *                 fds are bounded: their allocators hold freed memory back
 *                 on purpose, and their leak checks stand in.
 * Exit 0 pass, 1 fail, 77 skip.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
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

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
/* Under valgrind (scripts/valgrind.sh) its allocator replaces malloc and
 * holds freed blocks back, so heap and RSS bounds mean nothing there;
 * memcheck's own leak check stands in for them. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define MS 1000000ull
#define N_VIRTINES 64

static const char *guest_dir;

static char *console_text(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	char *s = malloc(end > 0 ? (size_t)end + 1 : 1);
	ssize_t n = s && end > 0 ? pread(fd, s, (size_t)end, 0) : 0;
	if (s)
		s[n > 0 ? n : 0] = '\0';
	*len = n > 0 ? (size_t)n : 0;
	return s;
}

/* counter with these arguments, console to `con`, no files. */
static struct wasp_virtine *make_counter(const char *args, size_t args_len, int con)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	char path[600];

	wasp_config_init(&cfg);
	cfg.mem_size = 4u << 20;
	cfg.console_fd = con;
	cfg.no_stdin = true;
	snprintf(path, sizeof path, "%s/counter.bin", guest_dir);
	if (wasp_virtine_create(&cfg, &v) < 0 || wasp_virtine_load_file(v, path, 0, WASP_MODE_AUTO) < 0 ||
	    wasp_virtine_allow(v, "console_write,get_arg") < 0 ||
	    wasp_virtine_set_arg(v, args, args_len) < 0)
		return NULL;
	return v;
}

/* The uninterrupted run: its console and exit code. */
static char *reference(const char *args, size_t args_len, int64_t *code, size_t *len)
{
	int con = memfd_create("ref", MFD_CLOEXEC);
	struct wasp_virtine *v = make_counter(args, args_len, con);
	struct wasp_exit e = {0};
	if (!v || wasp_virtine_run(v, 120000 * MS, &e) < 0 || e.reason != WASP_EXIT_EXITED) {
		fprintf(stderr, "reference run failed: %s\n", wasp_last_error());
		exit(1);
	}
	wasp_virtine_destroy(v);
	*code = e.code;
	char *s = console_text(con, len);
	close(con);
	return s;
}

static struct wasp_config restore_cfg(int con)
{
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.console_fd = con;
	cfg.no_stdin = true;
	return cfg;
}

/* ---- 64 at once ------------------------------------------------------- */

static const char args64[] = "40\0" "1000000";
static char *ref64;
static size_t ref64_len;
static int64_t ref64_code;
static char dir64[64];

struct worker {
	int idx;
	pthread_mutex_t lock; /* main pauses v under it; the worker frees v under it */
	struct wasp_virtine *v;
	int con;
	uint64_t create_ns, save_ns;
	bool ok;
	char why[300];
};

static atomic_int n_alive, peak_alive;
/* All 64 exist before any runs, so they run (and are paused) together. */
static pthread_barrier_t all_made;

static void drop(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	wasp_virtine_destroy(w->v);
	w->v = NULL;
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_sub(&n_alive, 1);
}

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct wasp_exit e;
	char path[128];

	snprintf(path, sizeof path, "%s/v%02d.wckpt", dir64, w->idx);
	w->con = memfd_create("console", MFD_CLOEXEC);
	uint64_t t0 = wasp_now_ns();
	struct wasp_virtine *v = make_counter(args64, sizeof args64, w->con);
	w->create_ns = wasp_now_ns() - t0;
	if (!v)
		snprintf(w->why, sizeof w->why, "create: %s", wasp_last_error());
	pthread_mutex_lock(&w->lock);
	w->v = v;
	pthread_mutex_unlock(&w->lock);
	pthread_barrier_wait(&all_made);
	if (!v)
		goto out;
	int alive = atomic_fetch_add(&n_alive, 1) + 1, peak = atomic_load(&peak_alive);
	while (alive > peak && !atomic_compare_exchange_weak(&peak_alive, &peak, alive))
		;
	int r = wasp_virtine_run(v, 600000 * MS, &e);
	if (r < 0 || e.reason != WASP_EXIT_PAUSED) {
		snprintf(w->why, sizeof w->why, "the first run ended %s (%s)",
			 r < 0 ? "in error" : wasp_exit_reason_name(e.reason), wasp_last_error());
		goto out;
	}
	t0 = wasp_now_ns();
	struct wasp_ckpt_stats st;
	struct wasp_save_opts so = {.threads = 1};
	r = wasp_ckpt_save_file(v, &so, path, &st);
	w->save_ns = wasp_now_ns() - t0;
	uint64_t cb = wasp_virtine_console_bytes(v);
	drop(w);
	if (r < 0) {
		snprintf(w->why, sizeof w->why, "save: %s", wasp_last_error());
		goto out;
	}
	int con2 = memfd_create("console", MFD_CLOEXEC);
	struct wasp_config cfg = restore_cfg(con2);
	struct wasp_restore_opts ro = {.config = &cfg, .threads = 1};
	struct wasp_virtine *c = NULL;
	r = wasp_ckpt_restore_file(&ro, path, &c, NULL);
	if (r == 0)
		r = wasp_virtine_run(c, 600000 * MS, &e);
	size_t len;
	char *out = console_text(con2, &len);
	if (r < 0)
		snprintf(w->why, sizeof w->why, "restore/run: %s", wasp_last_error());
	else if (e.reason != WASP_EXIT_EXITED || e.code != ref64_code)
		snprintf(w->why, sizeof w->why, "the restored run ended %s %lld",
			 wasp_exit_reason_name(e.reason), (long long)e.code);
	else if (cb > ref64_len || len != ref64_len - cb || memcmp(out, ref64 + cb, len))
		snprintf(w->why, sizeof w->why,
			 "the restored console (%zu bytes) is not the reference after byte %llu", len,
			 (unsigned long long)cb);
	else
		w->ok = true;
	free(out);
	wasp_virtine_destroy(c);
	close(con2);
	unlink(path);
out:
	if (w->v)
		drop(w);
	close(w->con);
	return NULL;
}

static bool still_there(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool yes = w->v != NULL;
	pthread_mutex_unlock(&w->lock);
	return yes;
}

static bool has_step(int fd)
{
	size_t len;
	char *s = console_text(fd, &len);
	bool yes = s && strstr(s, "step 1/");
	free(s);
	return yes;
}

static void t_concurrent64(void)
{
	static struct worker ws[N_VIRTINES];
	pthread_t th[N_VIRTINES];

	ref64 = reference(args64, sizeof args64, &ref64_code, &ref64_len);
	snprintf(dir64, sizeof dir64, "/tmp/wasp-load-XXXXXX");
	CHECK(mkdtemp(dir64) != NULL, "mkdtemp");

	/* What 64 VMs cost on their own: made one after another, then freed. */
	struct wasp_virtine *vs[N_VIRTINES] = {0};
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = 4u << 20;
	uint64_t t0 = wasp_now_ns();
	for (int i = 0; i < N_VIRTINES; i++)
		CHECK(wasp_virtine_create(&cfg, &vs[i]) == 0, "create %d", i);
	uint64_t serial = wasp_now_ns() - t0;
	for (int i = 0; i < N_VIRTINES; i++)
		wasp_virtine_destroy(vs[i]);
	printf("creating %d virtines (4 MiB) one after another: %.1f ms, %.2f ms each\n", N_VIRTINES,
	       serial / 1e6, serial / 1e6 / N_VIRTINES);

	pthread_barrier_init(&all_made, NULL, N_VIRTINES + 1);
	t0 = wasp_now_ns();
	for (int i = 0; i < N_VIRTINES; i++) {
		ws[i].idx = i;
		pthread_mutex_init(&ws[i].lock, NULL);
		pthread_create(&th[i], NULL, worker, &ws[i]);
	}
	/* Wait until every virtine exists and has done a step, then pause all
	 * of them at once: 64 checkpoints are then written together. */
	pthread_barrier_wait(&all_made);
	uint64_t created = wasp_now_ns() - t0;
	for (int i = 0; i < N_VIRTINES; i++)
		while (still_there(&ws[i]) && !has_step(ws[i].con) && wasp_now_ns() - t0 < 60000 * MS)
			usleep(2000);
	int running = atomic_load(&n_alive);
	for (int i = 0; i < N_VIRTINES; i++) {
		pthread_mutex_lock(&ws[i].lock);
		if (ws[i].v)
			wasp_virtine_pause(ws[i].v);
		pthread_mutex_unlock(&ws[i].lock);
	}
	for (int i = 0; i < N_VIRTINES; i++)
		pthread_join(th[i], NULL);
	uint64_t total = wasp_now_ns() - t0;
	pthread_barrier_destroy(&all_made);

	uint64_t create_sum = 0, create_max = 0, save_max = 0;
	int ok = 0;
	for (int i = 0; i < N_VIRTINES; i++) {
		create_sum += ws[i].create_ns;
		create_max = ws[i].create_ns > create_max ? ws[i].create_ns : create_max;
		save_max = ws[i].save_ns > save_max ? ws[i].save_ns : save_max;
		ok += ws[i].ok;
		if (!ws[i].ok)
			fprintf(stderr, "virtine %d: %s\n", i, ws[i].why);
	}
	printf("creating %d virtines on %d threads at once: %.1f ms in all, %.2f ms mean create, %.2f ms slowest\n",
	       N_VIRTINES, N_VIRTINES, created / 1e6, create_sum / 1e6 / N_VIRTINES, create_max / 1e6);
	printf("%d of %d alive at once at the peak, %d running when paused; slowest concurrent save "
	       "%.1f ms; %d of %d restored and finished right; %.2f s in all\n",
	       atomic_load(&peak_alive), N_VIRTINES, running, save_max / 1e6, ok, N_VIRTINES,
	       total / 1e9);
	CHECK(atomic_load(&peak_alive) == N_VIRTINES, "only %d virtines were alive at once",
	      atomic_load(&peak_alive));
	CHECK(running == N_VIRTINES, "only %d were running when paused", running);
	CHECK(ok == N_VIRTINES, "%d of %d went wrong", N_VIRTINES - ok, N_VIRTINES);
	DIR *d = opendir(dir64);
	int left = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		left += de->d_name[0] != '.';
	if (d)
		closedir(d);
	CHECK(left == 0, "%d files left in %s (temporary files?)", left, dir64);
	rmdir(dir64);
	free(ref64);
}

/* ---- 1000 cycles ------------------------------------------------------- */

static void t_cycles(void)
{
	const char *env = getenv("WASP_LOAD_CYCLES"); /* scripts/valgrind.sh: fewer */
	const int cycles = env && atoi(env) >= 20 ? atoi(env) : UNDER_ASAN ? 200 : 1000;
	const int warmup = cycles / 10;
	/* long enough to outlast every cycle's 1 ms of running */
	static const char args[] = "2000\0" "200000";
	int64_t code;
	size_t ref_len;
	char *ref = NULL;
	int con = memfd_create("console", MFD_CLOEXEC);
	char dir[] = "/tmp/wasp-cycles-XXXXXX", path[64];

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/c.wckpt", dir);
	struct wasp_virtine *v = make_counter(args, sizeof args, con);
	CHECK(v != NULL, "create");
	if (!v)
		return;
	int fds_warm = -1;
	long rss_warm = 0;
	size_t heap_warm = 0;
	uint64_t bytes = 0, t0 = wasp_now_ns();
	struct wasp_exit e = {0};
	for (int i = 0; i < cycles && !failures; i++) {
		int r = wasp_virtine_run(v, 1 * MS, &e);
		if (r < 0 || e.reason != WASP_EXIT_TIMEOUT) {
			CHECK(false, "cycle %d: run ended %s", i, r < 0 ? "in error" : wasp_exit_reason_name(e.reason));
			break;
		}
		struct wasp_config cfg = restore_cfg(con);
		struct wasp_restore_opts ro = {.config = &cfg, .threads = 1};
		struct wasp_save_opts so = {.threads = 1};
		struct wasp_virtine *c = NULL;
		if (i % 10 == 9) {
			r = wasp_ckpt_save_file(v, &so, path, NULL);
			CHECK(r == 0, "cycle %d: save to file", i);
			wasp_virtine_destroy(v);
			r = r < 0 ? r : wasp_ckpt_restore_file(&ro, path, &c, NULL);
		} else {
			void *buf = NULL;
			size_t len = 0;
			r = wasp_ckpt_save_buffer(v, &so, &buf, &len, NULL);
			CHECK(r == 0, "cycle %d: save", i);
			bytes += len;
			wasp_virtine_destroy(v);
			r = r < 0 ? r : wasp_ckpt_restore_buffer(&ro, buf, len, &c, NULL);
			free(buf);
		}
		CHECK(r == 0 && c, "cycle %d: restore", i);
		if (!c)
			return;
		v = c;
		if (i == warmup) {
			fds_warm = count_fds();
			rss_warm = rss_kib();
			heap_warm = mallinfo2().uordblks;
		} else if (i > warmup) {
			int fds = count_fds();
			CHECK(fds == fds_warm, "cycle %d: %d fds, %d after warm-up", i, fds, fds_warm);
		}
	}
	uint64_t ns = wasp_now_ns() - t0;
	long rss_end = rss_kib();
	size_t heap_end = mallinfo2().uordblks;
	int fds_end = count_fds();
	/* finish the guest: all its output must be the uninterrupted run's */
	int r = wasp_virtine_run(v, 600000 * MS, &e);
	wasp_virtine_destroy(v);
	unlink(path);
	rmdir(dir);
	size_t len;
	char *out = console_text(con, &len);
	ref = reference(args, sizeof args, &code, &ref_len);
	printf("%d checkpoint/restore cycles in %.2f s (%.2f ms each, %.0f KiB mean checkpoint)\n",
	       cycles, ns / 1e9, ns / 1e6 / cycles, bytes / 1024.0 / (cycles - cycles / 10));
	bool valgrind = RUNNING_ON_VALGRIND;
	printf("after warm-up (cycle %d) -> end: fds %d -> %d, RSS %ld -> %ld KiB, heap in use "
	       "%zu -> %zu bytes%s\n",
	       warmup, fds_warm, fds_end, rss_warm, rss_end, heap_warm, heap_end,
	       valgrind     ? " (valgrind: bounds not checked, memcheck checks leaks)"
	       : UNDER_ASAN ? " (ASan: its allocator hides from mallinfo2 and its quarantine "
			      "keeps freed memory, so only fds are bounded; LeakSanitizer checks leaks)"
			    : "");
	CHECK(fds_end == fds_warm, "fds %d -> %d", fds_warm, fds_end);
	/* Bounds: the heap may not grow by more than 256 KiB over ~900 cycles
	 * (a leak of even 300 bytes a cycle breaks it); RSS by 8 MiB (page
	 * cache of the checkpoint file and allocator slack move it a little). */
	if (!UNDER_ASAN && !valgrind)
		CHECK(heap_end <= heap_warm + 256 * 1024, "heap in use grew by %zd bytes",
		      (ssize_t)(heap_end - heap_warm));
	/* ASan's quarantine holds up to 256 MiB of freed memory on purpose. */
	if (!UNDER_ASAN && !valgrind)
		CHECK(rss_end <= rss_warm + 8 * 1024, "RSS grew by %ld KiB", rss_end - rss_warm);
	CHECK(r == 0 && e.reason == WASP_EXIT_EXITED && e.code == code, "the guest ended %s %lld",
	      wasp_exit_reason_name(e.reason), (long long)e.code);
	CHECK(out && len == ref_len && !memcmp(out, ref, len),
	      "the console across all cycles (%zu bytes) differs from an uninterrupted run's (%zu)",
	      len, ref_len);
	free(out);
	free(ref);
	close(con);
}

int main(int argc, char **argv)
{
	static const struct test_case cases[] = {
		{"concurrent64", t_concurrent64},
		{"cycles", t_cycles},
	};
	const char **vars[] = {&guest_dir};
	return test_main(argc, argv, cases, sizeof cases / sizeof cases[0], vars, 1, "GUEST_DIR ",
			 true);
}
