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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm_internal.h"

static size_t words(const struct wasp_virtine *v)
{
	return (v->mem_size / WASP_PAGE_SIZE + 63) / 64;
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
	/* One mapping over the whole region: simpler than finding the runs,
	 * and the memfd pages outside them are the same pages again. */
	if (mmap(v->mem, v->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, v->mem_fd,
		 0) == MAP_FAILED)
		return wasp_fail(-errno, "putting guest memory back: %s", strerror(errno));
	free(v->file_mapped);
	v->file_mapped = NULL;
	return 0;
}
