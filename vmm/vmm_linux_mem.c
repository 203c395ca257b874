/*
 * vmm_linux_mem.c: a Linux program's memory calls: brk, mmap, munmap,
 * mremap, mprotect, madvise (docs/linux.md).
 *
 * Everything comes from the virtine's own RAM, which is identity-mapped
 * already, so a mapping is bookkeeping, never a page-table change (and
 * never a TLB flush, which the host could not do for the guest): brk grows
 * up from the end of the program's segments, mmap hands out ranges top
 * down from below the stack, and the two meet where they meet; when they
 * do, the program gets ENOMEM. The invariant that makes it simple: every
 * page no one holds is zero. munmap, a shrinking brk and MADV_DONTNEED
 * zero what they give back, so a new mapping needs no clearing.
 *
 * Protections are accepted and recorded per mapping but not enforced
 * (enforcing a reduction would need that TLB flush); only the program's
 * own read-only segments are read-only, from the page tables the loader
 * built.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm_linux.h"

#define PAGE WASP_PAGE_SIZE
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(uint64_t)(PAGE - 1))
#define LX_MAX_MAPS 65536u

/* Zeroes [addr, addr+len) (page-aligned) and marks it dirty. Pages of the
 * memfd are punched out (freed, read as zero); pages mapped from a
 * checkpoint file are written over, since punching the memfd under them
 * would leave the file's bytes. */
static void zero_range(struct wasp_virtine *v, uint64_t addr, uint64_t len)
{
	if (!len)
		return;
	bool mapped = false;
	if (v->file_mapped)
		for (uint64_t p = addr / PAGE; p < (addr + len) / PAGE && !mapped; p++)
			mapped = v->file_mapped[p / 64] & (1ull << (p % 64));
	if (mapped || len < 16 * PAGE ||
	    fallocate(v->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)addr, (off_t)len) < 0)
		memset(v->mem + addr, 0, len);
	wasp_mark_dirty(v, addr, len);
}

/* The lowest address mmap may hand out: above brk. */
static uint64_t mmap_floor(const struct wasp_linux *lx)
{
	return PAGE_UP(lx->brk);
}

/* Whether [a, a+len) overlaps no mapping. */
static bool range_free(const struct wasp_linux *lx, uint64_t a, uint64_t len)
{
	for (unsigned i = 0; i < lx->nmaps; i++)
		if (lx->maps[i].start < a + len && a < lx->maps[i].start + lx->maps[i].len)
			return false;
	return true;
}

static int insert_map(struct wasp_linux *lx, uint64_t start, uint64_t len, uint32_t prot,
		      uint32_t flags)
{
	if (lx->nmaps == lx->mapcap) {
		if (lx->mapcap >= LX_MAX_MAPS)
			return -ENOMEM;
		unsigned cap = lx->mapcap ? lx->mapcap * 2 : 64;
		struct wasp_lx_map *m = realloc(lx->maps, cap * sizeof *m);
		if (!m)
			return -ENOMEM;
		lx->maps = m;
		lx->mapcap = cap;
	}
	unsigned i = 0;
	while (i < lx->nmaps && lx->maps[i].start < start)
		i++;
	memmove(&lx->maps[i + 1], &lx->maps[i], (lx->nmaps - i) * sizeof *lx->maps);
	lx->maps[i] = (struct wasp_lx_map){start, len, prot, flags};
	lx->nmaps++;
	return 0;
}

/* Takes [a, a+len) out of the mapping list, splitting mappings it cuts;
 * zeroes what was mapped there. -ENOMEM when a split finds no room. */
static int unmap_range(struct wasp_virtine *v, uint64_t a, uint64_t len)
{
	struct wasp_linux *lx = v->lx;
	uint64_t end = a + len;
	for (unsigned i = 0; i < lx->nmaps;) {
		struct wasp_lx_map *m = &lx->maps[i];
		uint64_t ms = m->start, me = m->start + m->len;
		if (me <= a || ms >= end) {
			i++;
			continue;
		}
		uint64_t cs = ms > a ? ms : a, ce = me < end ? me : end;
		if (ms < a && me > end) { /* a hole in the middle: split */
			m->len = a - ms;
			int r = insert_map(lx, end, me - end, m->prot, m->flags);
			if (r < 0) {
				lx->maps[i].len = me - ms;
				return r;
			}
			zero_range(v, cs, ce - cs);
			return 0;
		}
		zero_range(v, cs, ce - cs);
		if (ms < a) {
			m->len = a - ms;
			i++;
		} else if (me > end) {
			m->start = end;
			m->len = me - end;
			i++;
		} else {
			memmove(m, m + 1, (lx->nmaps - i - 1) * sizeof *m);
			lx->nmaps--;
		}
	}
	return 0;
}

/* A free range of len bytes, highest first; 0 when none. */
static uint64_t find_free(const struct wasp_linux *lx, uint64_t len)
{
	uint64_t floor = mmap_floor(lx), hi = lx->mmap_top;
	for (int i = (int)lx->nmaps - 1; i >= -1; i--) {
		uint64_t lo = i >= 0 ? lx->maps[i].start + lx->maps[i].len : floor;
		if (lo < floor)
			lo = floor;
		if (hi >= lo && hi - lo >= len)
			return hi - len;
		if (i >= 0 && lx->maps[i].start < hi)
			hi = lx->maps[i].start;
	}
	return 0;
}

/* The highest address brk may reach: the first mapping above it, or the
 * top. */
static uint64_t brk_ceiling(const struct wasp_linux *lx)
{
	for (unsigned i = 0; i < lx->nmaps; i++)
		if (lx->maps[i].start >= lx->brk)
			return lx->maps[i].start;
	return lx->mmap_top;
}

int64_t wasp_lx_sys_brk(struct wasp_virtine *v, const uint64_t a[6])
{
	struct wasp_linux *lx = v->lx;
	uint64_t want = a[0];
	if (want < lx->brk_start || want > brk_ceiling(lx))
		return (int64_t)lx->brk; /* Linux answers the old break on failure */
	uint64_t old_end = PAGE_UP(lx->brk), new_end = PAGE_UP(want);
	/* Whole pages given back read as zero when taken again; the bytes of
	 * a page that stays are kept, as on Linux. */
	if (new_end < old_end)
		zero_range(v, new_end, old_end - new_end);
	lx->brk = want;
	if (lx->brk > lx->brk_max)
		lx->brk_max = lx->brk;
	return (int64_t)want;
}

#define LX_PROT_MASK 0x7u /* READ, WRITE, EXEC */
#define LX_MAP_SHARED 0x01u
#define LX_MAP_PRIVATE 0x02u
#define LX_MAP_SHARED_VALIDATE 0x03u
#define LX_MAP_FIXED 0x10u
#define LX_MAP_ANONYMOUS 0x20u
#define LX_MAP_FIXED_NOREPLACE 0x100000u

/* Whether [a, a+len) is memory a program may map over: user memory below
 * the stack's guard, outside the program's segments and its brk. */
static bool fixed_ok(const struct wasp_linux *lx, uint64_t a, uint64_t len)
{
	if (a < LX_USER_BASE || a > lx->mmap_top || len > lx->mmap_top - a)
		return false;
	return a >= PAGE_UP(lx->brk) || a + len <= lx->image_lo;
}

int64_t wasp_lx_sys_mmap(struct wasp_virtine *v, const uint64_t a[6])
{
	struct wasp_linux *lx = v->lx;
	uint64_t addr = a[0], len = a[1], off = a[5];
	uint32_t prot = (uint32_t)a[2], flags = (uint32_t)a[3];
	int fd = (int)a[4];
	uint32_t type = flags & 3;

	if (!len || addr % PAGE || off % PAGE || len > v->mem_size || (prot & ~LX_PROT_MASK))
		return -EINVAL;
	if (type != LX_MAP_SHARED && type != LX_MAP_PRIVATE && type != LX_MAP_SHARED_VALIDATE)
		return -EINVAL;
	len = PAGE_UP(len);

	int host_fd = -1;
	if (!(flags & LX_MAP_ANONYMOUS)) {
		if (fd < WASP_FIRST_FD || fd >= WASP_FIRST_FD + WASP_MAX_FILES ||
		    v->files[fd - WASP_FIRST_FD].host_fd < 0)
			return -EBADF;
		if (!wasp_lx_allowed(v, WASP_HC_OPEN))
			return -EPERM;
		if (type != LX_MAP_PRIVATE && (prot & PROT_WRITE))
			return -ENODEV; /* a shared writable file mapping: not here */
		if ((v->files[fd - WASP_FIRST_FD].flags & O_ACCMODE) == O_WRONLY)
			return -EACCES;
		host_fd = v->files[fd - WASP_FIRST_FD].host_fd;
	}

	uint64_t at;
	if (flags & (LX_MAP_FIXED | LX_MAP_FIXED_NOREPLACE)) {
		if (!fixed_ok(lx, addr, len))
			return -ENOMEM;
		if (!range_free(lx, addr, len)) {
			if (flags & LX_MAP_FIXED_NOREPLACE)
				return -EEXIST;
			int r = unmap_range(v, addr, len);
			if (r < 0)
				return r;
		}
		at = addr;
	} else if (addr && fixed_ok(lx, addr, len) && addr >= mmap_floor(lx) &&
		   range_free(lx, addr, len)) {
		at = addr; /* the hint is free: take it */
	} else if (!(at = find_free(lx, len))) {
		return -ENOMEM;
	}
	int r = insert_map(lx, at, len, prot, flags);
	if (r < 0)
		return r;
	if (host_fd >= 0) {
		/* A private copy of the file's bytes; past its end, zeros. */
		uint64_t done = 0;
		while (done < len) {
			ssize_t n = pread(host_fd, v->mem + at + done, len - done, (off_t)(off + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				unmap_range(v, at, len);
				return -e;
			}
			if (n == 0)
				break;
			done += (uint64_t)n;
		}
		wasp_mark_dirty(v, at, done);
	}
	return (int64_t)at;
}

int64_t wasp_lx_sys_munmap(struct wasp_virtine *v, const uint64_t a[6])
{
	uint64_t addr = a[0], len = a[1];
	if (addr % PAGE || !len || addr < LX_USER_BASE || len > v->mem_size ||
	    addr + len < addr)
		return -EINVAL;
	return unmap_range(v, addr, PAGE_UP(len));
}

/* The mapping that holds all of [a, a+len), or -1. */
static int map_holding(const struct wasp_linux *lx, uint64_t a, uint64_t len)
{
	for (unsigned i = 0; i < lx->nmaps; i++)
		if (a >= lx->maps[i].start && a - lx->maps[i].start <= lx->maps[i].len &&
		    len <= lx->maps[i].start + lx->maps[i].len - a)
			return (int)i;
	return -1;
}

int64_t wasp_lx_sys_mremap(struct wasp_virtine *v, const uint64_t a[6])
{
	struct wasp_linux *lx = v->lx;
	uint64_t old = a[0], olen = PAGE_UP(a[1]), nlen = PAGE_UP(a[2]);
	uint64_t flags = a[3];
	enum { MAYMOVE = 1, FIXED = 2, DONTUNMAP = 4 };

	if (old % PAGE || !nlen || (flags & ~(uint64_t)MAYMOVE) || nlen > v->mem_size ||
	    a[1] > v->mem_size)
		return -EINVAL;
	int i = map_holding(lx, old, olen);
	if (i < 0 || !olen)
		return -EFAULT;
	if (nlen <= olen) {
		int r = unmap_range(v, old + nlen, olen - nlen);
		return r < 0 ? r : (int64_t)old;
	}
	/* Grow in place when the pages after it are free and below the top. */
	struct wasp_lx_map *m = &lx->maps[i];
	if (old + olen == m->start + m->len && old + nlen <= lx->mmap_top &&
	    range_free(lx, old + olen, nlen - olen)) {
		m->len += nlen - olen;
		return (int64_t)old;
	}
	if (!(flags & MAYMOVE))
		return -ENOMEM;
	uint32_t prot = m->prot, mflags = m->flags;
	uint64_t at = find_free(lx, nlen);
	if (!at)
		return -ENOMEM;
	int r = insert_map(lx, at, nlen, prot, mflags);
	if (r < 0)
		return r;
	memcpy(v->mem + at, v->mem + old, olen);
	wasp_mark_dirty(v, at, olen);
	r = unmap_range(v, old, olen);
	return r < 0 ? r : (int64_t)at;
}

int64_t wasp_lx_sys_mprotect(struct wasp_virtine *v, const uint64_t a[6])
{
	uint64_t addr = a[0], len = PAGE_UP(a[1]);
	if (addr % PAGE || (a[2] & ~(uint64_t)(LX_PROT_MASK | 0x03000000u /* GROWSDOWN/UP */)))
		return -EINVAL;
	if (addr < LX_USER_BASE || addr > v->lx->stack_top || len > v->lx->stack_top - addr)
		return -ENOMEM;
	/* Recorded on whole mappings it covers; never enforced (above). */
	for (unsigned i = 0; i < v->lx->nmaps; i++) {
		struct wasp_lx_map *m = &v->lx->maps[i];
		if (m->start >= addr && m->start + m->len <= addr + len)
			m->prot = (uint32_t)(a[2] & LX_PROT_MASK);
	}
	return 0;
}

int64_t wasp_lx_sys_madvise(struct wasp_virtine *v, const uint64_t a[6])
{
	uint64_t addr = a[0], len = PAGE_UP(a[1]);
	if (addr % PAGE)
		return -EINVAL;
	if (addr < LX_USER_BASE || addr > v->lx->stack_top || len > v->lx->stack_top - addr)
		return -ENOMEM;
	switch (a[2]) {
	case MADV_DONTNEED:
	case MADV_FREE:
		/* Only what the program holds by mmap is given back as zeros
		 * (its segments and brk keep their bytes: private file pages
		 * would come back from the file on Linux, not as zeros). */
		for (unsigned i = 0; i < v->lx->nmaps; i++) {
			struct wasp_lx_map *m = &v->lx->maps[i];
			uint64_t s = m->start > addr ? m->start : addr;
			uint64_t e = m->start + m->len < addr + len ? m->start + m->len : addr + len;
			if (s < e && (m->flags & LX_MAP_ANONYMOUS))
				zero_range(v, s, e - s);
		}
		return 0;
	default:
		return 0; /* advice: taken, changes nothing */
	}
}
