/*
 * vmm_map.c: guest memory mapped copy-on-write from a file.
 *
 * Guest memory is a memfd mapped MAP_SHARED at v->mem, and KVM's memory
 * slot names that address range. A restore from an uncompressed,
 * page-aligned memory image maps parts of the image MAP_PRIVATE|MAP_FIXED
 * over the same addresses instead of copying them in: the cost no longer
 * follows the guest's size, pages come from the page cache on first touch,
 * and a guest's write copies only the page it writes. KVM follows the new
 * mapping through its MMU notifier; the slot does not change.
 *
 * The memfd no longer backs those pages, so what asks "which pages hold
 * data" (a checkpoint's save) must add file_mapped to the memfd's data;
 * and a reload puts the memfd back (wasp_unmap_files) before zeroing.
 *
 * A file truncated under such a mapping loses its pages, the private
 * copies the guest wrote included, and the next touch faults. The guest's
 * own touch reaches KVM, whose KVM_RUN fails with EFAULT: the run loop
 * turns that into a WASP_FAULT_MEMORY_LOST exit. A touch by the host (a
 * hypercall copying a guest buffer, a checkpoint reading memory) would be
 * SIGBUS and kill the process: the handler below, installed with the
 * first mapping, puts a zero page where the lost one was, marks the
 * virtine's memory lost and sets immediate_exit, so the run ends with the same
 * fault at its next exit and a checkpoint refuses memory it cannot trust.
 * A SIGBUS anywhere else goes to the handler that was there before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm_internal.h"

static size_t words(const struct wasp_virtine *v)
{
	return (v->mem_size / WASP_PAGE_SIZE + 63) / 64;
}

/* Virtines with file-mapped pages, for the SIGBUS handler, which may run
 * on any thread at any time: a slot is published with its pages already
 * recorded and cleared before the mapping or the bitmap goes away. */
#define MAPPED_MAX 256
static struct wasp_virtine *_Atomic mapped[MAPPED_MAX];
static struct sigaction bus_before;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static int bus_err;

static void bus_handler(int sig, siginfo_t *si, void *uc)
{
	uint8_t *a = si->si_addr;
	int saved = errno;
	for (int i = 0; i < MAPPED_MAX; i++) {
		struct wasp_virtine *v = atomic_load(&mapped[i]);
		if (!v || a < v->mem || a >= v->mem + v->mem_size)
			continue;
		size_t p = (size_t)(a - v->mem) / WASP_PAGE_SIZE;
		if (!(v->file_mapped[p / 64] & (1ull << (p % 64))))
			break;
		/* mmap is a plain system call: safe here in practice */
		if (mmap(v->mem + p * WASP_PAGE_SIZE, WASP_PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		atomic_store(&v->mem_lost, true);
		v->run->immediate_exit = 1; /* the run loop looks at mem_lost */
		errno = saved;
		return;
	}
	errno = saved;
	/* Not ours: what was there before decides. */
	if (bus_before.sa_flags & SA_SIGINFO) {
		if (bus_before.sa_sigaction) {
			bus_before.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (bus_before.sa_handler != SIG_DFL && bus_before.sa_handler != SIG_IGN) {
		bus_before.sa_handler(sig);
		return;
	}
	signal(SIGBUS, SIG_DFL); /* the access happens again and kills */
}

static void bus_install(void)
{
	struct sigaction sa = {.sa_sigaction = bus_handler, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &bus_before) < 0)
		bus_err = -errno;
}

/* Publishes v for the handler (once per virtine). */
static int map_watch(struct wasp_virtine *v)
{
	pthread_once(&bus_once, bus_install);
	if (bus_err)
		return wasp_fail(bus_err, "installing the SIGBUS handler: %s", strerror(-bus_err));
	for (int i = 0; i < MAPPED_MAX; i++)
		if (atomic_load(&mapped[i]) == v)
			return 0;
	for (int i = 0; i < MAPPED_MAX; i++) {
		struct wasp_virtine *none = NULL;
		if (atomic_compare_exchange_strong(&mapped[i], &none, v))
			return 0;
	}
	/* -ENOMEM: the restore reads this chunk instead */
	return wasp_fail(-ENOMEM, "more than %d virtines map files", MAPPED_MAX);
}

void wasp_map_unwatch(struct wasp_virtine *v)
{
	for (int i = 0; i < MAPPED_MAX; i++) {
		struct wasp_virtine *me = v;
		atomic_compare_exchange_strong(&mapped[i], &me, NULL);
	}
}

bool wasp_virtine_mem_lost(const struct wasp_virtine *v)
{
	return atomic_load(&v->mem_lost);
}

int wasp_virtine_map_file(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len, int fd,
			  uint64_t offset)
{
	if (gpa % WASP_PAGE_SIZE || len % WASP_PAGE_SIZE || offset % WASP_PAGE_SIZE || !len)
		return wasp_fail(-EINVAL,
				 "a file mapping needs page-aligned address, length and offset");
	if (!wasp_virtine_gpa(v, gpa, len))
		return wasp_fail(-EFAULT,
				 "a file mapping of %zu bytes at 0x%llx is outside guest memory", len,
				 (unsigned long long)gpa);
	if (!v->file_mapped && !(v->file_mapped = calloc(words(v), sizeof(uint64_t))))
		return wasp_fail(-ENOMEM, "out of memory");
	int r = map_watch(v);
	if (r < 0)
		return r;
	void *at = mmap(v->mem + gpa, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
			(off_t)offset);
	if (at == MAP_FAILED) {
		int e = errno;
		/* MAP_FIXED may have unmapped the range before failing: put the
		 * memfd back so guest memory has no hole. */
		mmap(v->mem + gpa, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, v->mem_fd,
		     (off_t)gpa);
		return wasp_fail(-e, "mapping guest memory from a file: %s", strerror(e));
	}
	/* The memfd's pages under it are unreachable now: give them back. */
	if (fallocate(v->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)gpa,
		      (off_t)len) < 0) {
		/* only memory not returned early; nothing is wrong */
	}
	for (uint64_t p = gpa / WASP_PAGE_SIZE; p < (gpa + len) / WASP_PAGE_SIZE; p++)
		v->file_mapped[p / 64] |= 1ull << (p % 64);
	v->used = true;
	return 0;
}

const uint64_t *wasp_virtine_file_mapped(const struct wasp_virtine *v)
{
	return v->file_mapped;
}

int wasp_unmap_files(struct wasp_virtine *v)
{
	if (!v->file_mapped)
		return 0;
	wasp_map_unwatch(v);
	/* One mapping over the whole region: simpler than finding the runs,
	 * and the memfd pages outside them are the same pages again. */
	if (mmap(v->mem, v->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, v->mem_fd,
		 0) == MAP_FAILED)
		return wasp_fail(-errno, "putting guest memory back: %s", strerror(errno));
	free(v->file_mapped);
	v->file_mapped = NULL;
	atomic_store(&v->mem_lost, false);
	return 0;
}
