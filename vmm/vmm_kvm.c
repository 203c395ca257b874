/*
 * vmm_kvm.c: the virtine's life on /dev/kvm: create, load, run, pause,
 * destroy, and the checked window onto guest memory.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmm_linux.h"

#define KVM_TSS_ADDR 0xfffbd000ul /* above any guest memory we allow */

/* ---- the process-wide KVM handle --------------------------------------- */

static struct wasp_kvm kvm_global = {.fd = -1};
static pthread_once_t kvm_once = PTHREAD_ONCE_INIT;
static int kvm_init_err;
static char kvm_init_msg[256];

/* The vCPU of the virtine this thread is running, for the kick handler:
 * setting immediate_exit there closes the window in which a signal lands
 * just before KVM_RUN and would otherwise be lost. */
static _Thread_local struct kvm_run *volatile current_run;

static void kick_handler(int sig)
{
	(void)sig;
	int saved = errno;
	struct kvm_run *run = current_run;
	if (run)
		run->immediate_exit = 1;
	errno = saved;
}

static void kvm_init_once(void)
{
	struct wasp_kvm *k = &kvm_global;
	int r;

	k->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		kvm_init_err = -errno;
		snprintf(kvm_init_msg, sizeof kvm_init_msg, "/dev/kvm: %s", strerror(errno));
		return;
	}
	r = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		kvm_init_err = -ENOTSUP;
		snprintf(kvm_init_msg, sizeof kvm_init_msg, "/dev/kvm: API version %d, need %d", r,
			 KVM_API_VERSION);
		goto fail;
	}
	k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size < (int)sizeof(struct kvm_run)) {
		kvm_init_err = -ENOTSUP;
		snprintf(kvm_init_msg, sizeof kvm_init_msg, "KVM_GET_VCPU_MMAP_SIZE: %d", k->run_size);
		goto fail;
	}
	r = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	k->sync_regs = r > 0 && (r & KVM_SYNC_X86_REGS);
	k->sync_sregs = k->sync_regs && (r & KVM_SYNC_X86_SREGS);

	/* Ask for the supported CPUID list, growing the buffer until it fits. */
	for (int n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c) {
			kvm_init_err = -ENOMEM;
			snprintf(kvm_init_msg, sizeof kvm_init_msg, "out of memory for CPUID");
			goto fail;
		}
		c->nent = n;
		if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			k->cpuid = c;
			break;
		}
		r = errno;
		free(c);
		if (r != E2BIG) {
			kvm_init_err = -r;
			snprintf(kvm_init_msg, sizeof kvm_init_msg, "KVM_GET_SUPPORTED_CPUID: %s",
				 strerror(r));
			goto fail;
		}
	}
	if (!k->cpuid) {
		kvm_init_err = -E2BIG;
		snprintf(kvm_init_msg, sizeof kvm_init_msg, "KVM_GET_SUPPORTED_CPUID: too many entries");
		goto fail;
	}
	wasp_x86_filter_cpuid(k->cpuid);
	k->xcr0 = wasp_x86_pick_xcr0(k->cpuid);

	/* No SA_RESTART: the point of the signal is to interrupt KVM_RUN. */
	k->kick_signal = SIGRTMIN + 6;
	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	sigaction(k->kick_signal, &sa, NULL);
	return;
fail:
	close(k->fd);
	k->fd = -1;
}

int wasp_kvm_get(const struct wasp_kvm **out)
{
	pthread_once(&kvm_once, kvm_init_once);
	if (kvm_init_err)
		return wasp_fail(kvm_init_err, "%s", kvm_init_msg);
	*out = &kvm_global;
	return 0;
}

/* ---- create / destroy ------------------------------------------------- */

void wasp_config_init(struct wasp_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->mem_size = WASP_DEFAULT_MEM;
	cfg->console_fd = 1;
	cfg->stdin_fd = 0;
	cfg->stderr_fd = 2;
}

int wasp_virtine_create(const struct wasp_config *cfg, struct wasp_virtine **out)
{
	uint64_t t0 = wasp_now_ns();
	const struct wasp_kvm *k;
	struct wasp_virtine *v;
	int r;

	*out = NULL;
	r = wasp_kvm_get(&k);
	if (r < 0)
		return r;

	v = calloc(1, sizeof *v);
	if (!v)
		return wasp_fail(-ENOMEM, "out of memory for a virtine");
	if (cfg)
		v->cfg = *cfg;
	else
		wasp_config_init(&v->cfg);
	if (!v->cfg.mem_size)
		v->cfg.mem_size = WASP_DEFAULT_MEM;
	if (!v->cfg.stderr_fd)
		v->cfg.stderr_fd = 2;
	v->vm_fd = v->vcpu_fd = v->mem_fd = v->sandbox_fd = -1;
	v->last_exit = -1;
	v->mem = MAP_FAILED;
	v->run = MAP_FAILED;
	pthread_mutex_init(&v->kick_lock, NULL);
	pthread_mutex_init(&v->dirty_lock, NULL);
	wasp_hc_init(v);

	v->mem_size = v->cfg.mem_size;
	if (v->mem_size % WASP_PAGE_SIZE || v->mem_size < (64u << 10) ||
	    v->mem_size > WASP_MEM_MAX) {
		r = wasp_fail(-EINVAL,
			      "memory size %zu: must be a multiple of 4 KiB between 64 KiB and 4 GiB",
			      v->mem_size);
		goto fail;
	}

	v->mem_fd = memfd_create("wasp-guest", MFD_CLOEXEC);
	if (v->mem_fd < 0) {
		r = wasp_fail(-errno, "memfd_create: %s", strerror(errno));
		goto fail;
	}
	if (ftruncate(v->mem_fd, (off_t)v->mem_size) < 0) {
		r = wasp_fail(-errno, "ftruncate guest memory: %s", strerror(errno));
		goto fail;
	}
	v->mem = mmap(NULL, v->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->mem_fd, 0);
	if (v->mem == MAP_FAILED) {
		r = wasp_fail(-errno, "mmap guest memory: %s", strerror(errno));
		goto fail;
	}
	v->host_dirty = calloc((v->mem_size / WASP_PAGE_SIZE + 63) / 64, sizeof(uint64_t));
	if (!v->host_dirty) {
		r = wasp_fail(-ENOMEM, "out of memory for the dirty bitmap");
		goto fail;
	}

	r = ioctl(k->fd, KVM_CREATE_VM, 0);
	if (r < 0) {
		r = wasp_fail(-errno, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	v->vm_fd = r;
	/* VMX needs a TSS address for real mode; elsewhere it is harmless. */
	ioctl(v->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR);

	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = v->mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)v->mem,
	};
	r = kvm_ioctl(v->vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
	if (r < 0)
		goto fail;

	r = ioctl(v->vm_fd, KVM_CREATE_VCPU, 0);
	if (r < 0) {
		r = wasp_fail(-errno, "KVM_CREATE_VCPU: %s", strerror(errno));
		goto fail;
	}
	v->vcpu_fd = r;
	v->run = mmap(NULL, (size_t)k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu_fd, 0);
	if (v->run == MAP_FAILED) {
		r = wasp_fail(-errno, "mmap kvm_run: %s", strerror(errno));
		goto fail;
	}
	if (k->sync_regs)
		v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;

	r = wasp_x86_capture_reset(v);
	if (r < 0)
		goto fail;
	r = wasp_x86_setup_cpuid(v);
	if (r < 0)
		goto fail;
	r = wasp_hc_files_init(v);
	if (r < 0)
		goto fail;

	v->stats.create_ns = wasp_now_ns() - t0;
	*out = v;
	return 0;
fail:
	wasp_virtine_destroy(v);
	return r;
}

void wasp_virtine_destroy(struct wasp_virtine *v)
{
	const struct wasp_kvm *k = &kvm_global;

	if (!v)
		return;
	wasp_map_unwatch(v);
	wasp_hc_files_fini(v);
	wasp_hc_fini(v);
	wasp_trace_free(v);
	wasp_lx_free(v);
	if (v->run != MAP_FAILED)
		munmap(v->run, (size_t)k->run_size);
	if (v->vcpu_fd >= 0)
		close(v->vcpu_fd);
	if (v->vm_fd >= 0)
		close(v->vm_fd);
	if (v->mem != MAP_FAILED)
		munmap(v->mem, v->mem_size);
	if (v->mem_fd >= 0)
		close(v->mem_fd);
	free(v->host_dirty);
	free(v->file_mapped);
	free(v->kvm_dirty);
	free(v->pool_maps);
	pthread_mutex_destroy(&v->kick_lock);
	pthread_mutex_destroy(&v->dirty_lock);
	free(v);
}

/* ---- guest memory ----------------------------------------------------- */

void *wasp_virtine_gpa(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len)
{
	/* Written so that no sum can wrap: gpa <= size and len <= size - gpa. */
	if (gpa > v->mem_size || len > v->mem_size - gpa)
		return NULL;
	return v->mem + gpa;
}

void wasp_mark_dirty(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len)
{
	if (!len)
		return;
	/* Atomic: a migration thread may be fetching the bitmap meanwhile. */
	for (uint64_t p = gpa / WASP_PAGE_SIZE; p <= (gpa + len - 1) / WASP_PAGE_SIZE; p++)
		__atomic_fetch_or(&v->host_dirty[p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
}

static size_t bitmap_words(const struct wasp_virtine *v)
{
	return (v->mem_size / WASP_PAGE_SIZE + 63) / 64;
}

/* Re-registers the memory slot with or without KVM's dirty log. */
static int set_slot_flags(struct wasp_virtine *v, uint32_t flags)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.flags = flags,
		.guest_phys_addr = 0,
		.memory_size = v->mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)v->mem,
	};
	return kvm_ioctl(v->vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}

int wasp_virtine_dirty_start(struct wasp_virtine *v)
{
	int r = 0;
	pthread_mutex_lock(&v->dirty_lock);
	if (v->dirty_active)
		goto out;
	if (!v->kvm_dirty && !(v->kvm_dirty = calloc(bitmap_words(v), sizeof(uint64_t)))) {
		r = wasp_fail(-ENOMEM, "out of memory for the dirty log");
		goto out;
	}
	/* Manual protection re-arms only the pages we cleared, after we have
	 * read them: cheaper, and no write can slip between get and clear. */
	if (!v->manual_protect &&
	    ioctl(kvm_global.fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			.args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE},
		};
		v->manual_protect = ioctl(v->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	if ((r = set_slot_flags(v, KVM_MEM_LOG_DIRTY_PAGES)) < 0)
		goto out;
	/* Pages the host wrote before now belong to the past checkpoint. */
	memset(v->host_dirty, 0, bitmap_words(v) * sizeof(uint64_t));
	v->dirty_active = true;
out:
	pthread_mutex_unlock(&v->dirty_lock);
	return r;
}

int wasp_virtine_dirty_stop(struct wasp_virtine *v)
{
	int r = 0;
	pthread_mutex_lock(&v->dirty_lock);
	if (v->dirty_active && (r = set_slot_flags(v, 0)) == 0)
		v->dirty_active = false;
	pthread_mutex_unlock(&v->dirty_lock);
	return r;
}

bool wasp_virtine_dirty_active(const struct wasp_virtine *v)
{
	return v->dirty_active;
}

int wasp_virtine_dirty_fetch(struct wasp_virtine *v, uint64_t *bitmap)
{
	size_t words = bitmap_words(v);
	int r = 0;
	pthread_mutex_lock(&v->dirty_lock);
	if (!v->dirty_active) {
		r = wasp_fail(-EINVAL, "dirty page tracking is not on");
		goto out;
	}
	struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = v->kvm_dirty};
	memset(v->kvm_dirty, 0, words * sizeof(uint64_t));
	if ((r = kvm_ioctl(v->vm_fd, KVM_GET_DIRTY_LOG, &log)) < 0)
		goto out;
	if (v->manual_protect) {
		/* num_pages must be a multiple of 64 or reach the slot's end. */
		struct kvm_clear_dirty_log clear = {
			.slot = 0,
			.first_page = 0,
			.num_pages = (uint32_t)(v->mem_size / WASP_PAGE_SIZE),
			.dirty_bitmap = v->kvm_dirty,
		};
		if ((r = kvm_ioctl(v->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear)) < 0)
			goto out;
	}
	for (size_t i = 0; i < words; i++)
		bitmap[i] |= v->kvm_dirty[i] | __atomic_exchange_n(&v->host_dirty[i], 0, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&v->dirty_lock);
	return r;
}

void wasp_virtine_dirty_return(struct wasp_virtine *v, const uint64_t *bitmap)
{
	for (size_t i = 0; i < bitmap_words(v); i++)
		if (bitmap[i])
			__atomic_fetch_or(&v->host_dirty[i], bitmap[i], __ATOMIC_RELAXED);
}

void *wasp_virtine_gpa_w(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len)
{
	void *p = wasp_virtine_gpa(v, gpa, len);
	if (p) {
		wasp_mark_dirty(v, gpa, len);
		v->used = true; /* the next load clears what the host wrote */
	}
	return p;
}

int wasp_virtine_read_str(struct wasp_virtine *v, wasp_gpa_t gpa, char *buf, size_t cap)
{
	if (gpa >= v->mem_size)
		return -EFAULT;
	size_t avail = v->mem_size - gpa;
	size_t n = avail < cap ? avail : cap;
	const char *src = (const char *)v->mem + gpa;
	const char *nul = memchr(src, 0, n);
	if (!nul)
		return n == avail && avail < cap ? -EFAULT : -ENAMETOOLONG;
	memcpy(buf, src, (size_t)(nul - src) + 1);
	return (int)(nul - src);
}

size_t wasp_virtine_mem_size(const struct wasp_virtine *v)
{
	return v->mem_size;
}

int wasp_virtine_mem_fd(const struct wasp_virtine *v)
{
	return v->mem_fd;
}

uint64_t *wasp_virtine_host_dirty(struct wasp_virtine *v)
{
	return v->host_dirty;
}

void wasp_virtine_stats(const struct wasp_virtine *v, struct wasp_stats *out)
{
	*out = v->stats;
}

/* ---- load ------------------------------------------------------------- */

/* The image is already in guest memory at [gpa, gpa+len): read its header,
 * pick the mode and set the vCPU up to enter it. */
static int load_finish(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len, enum wasp_mode mode)
{
	struct wasp_image_header h;
	bool has_header = false;
	const uint8_t *img = v->mem + gpa;

	/* Memory holds the image now: a load before any run must clear it
	 * as a run's leftovers are (else a smaller image would run beside
	 * the bytes of a bigger one loaded before it). */
	v->used = true;

	if (len >= WASP_IMAGE_HEADER_OFFSET + sizeof h && img[0] == 0xEB) {
		memcpy(&h, img + WASP_IMAGE_HEADER_OFFSET, sizeof h);
		has_header = !memcmp(h.magic, WASP_IMAGE_MAGIC, sizeof h.magic);
	}
	if (has_header) {
		if (h.abi_version != WASP_ABI_VERSION)
			return wasp_fail(-EINVAL, "image built for ABI version %u, this host speaks %u",
					 h.abi_version, WASP_ABI_VERSION);
		if (h.load_addr != gpa)
			return wasp_fail(-EINVAL,
					 "image is linked at 0x%llx but was loaded at 0x%llx",
					 (unsigned long long)h.load_addr, (unsigned long long)gpa);
		if (h.mem_end > v->mem_size)
			return wasp_fail(-E2BIG, "image needs %llu bytes of guest memory, has %zu",
					 (unsigned long long)h.mem_end, v->mem_size);
	}
	if (mode == WASP_MODE_AUTO)
		mode = has_header && h.mode == WASP_IMAGE_LONG ? WASP_MODE_LONG : WASP_MODE_REAL;

	v->run->kvm_dirty_regs = 0; /* forget any pending register write */
	v->hc_pending = false;
	wasp_lx_free(v); /* a flat image: no Linux program any more */
	/* A real-mode image may switch modes itself, so each hypercall needs
	 * EFER and CS: set_mode has KVM hand them over with the exit. */
	wasp_virtine_set_mode(v, mode);
	switch (mode) {
	case WASP_MODE_REAL:
		return wasp_x86_enter_real(v, gpa);
	case WASP_MODE_LONG:
		if (gpa < WASP_GPA_LOAD)
			return wasp_fail(-EINVAL,
					 "64-bit images must load at or above 0x%x (page tables below)",
					 WASP_GPA_LOAD);
		return wasp_x86_enter_long(v, has_header && h.entry64 ? h.entry64 : gpa);
	default:
		return wasp_fail(-EINVAL, "unknown entry mode %d", (int)mode);
	}
}

static int punch(struct wasp_virtine *v, size_t from, size_t to)
{
	if (from < to && fallocate(v->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)from, (off_t)(to - from)) < 0)
		return wasp_fail(-errno, "clearing guest memory: %s", strerror(errno));
	return 0;
}

/* The ABI promises zero memory outside the image at entry (the guest
 * runtime does not clear .bss). A virtine that has run is zeroed by
 * punching out its memfd's pages: cost follows the pages it touched, not
 * its size, and the memory goes back to the host. The pages the next
 * image is copied into stay: punched, each would fault back in under the
 * copy (a fresh shmem page, zeroed, mapped; on a shadow-paging host each
 * fault is an exit of the host itself) and again in KVM when the guest
 * touches it. Only their bytes the image does not cover are cleared. */
int wasp_zero_if_used(struct wasp_virtine *v, wasp_gpa_t keep, size_t keep_len)
{
	int r = wasp_unmap_files(v);
	if (r < 0)
		return r;
	if (!v->used)
		return 0;
	size_t lo = 0, hi = 0;
	if (keep_len) {
		lo = keep & ~(size_t)(WASP_PAGE_SIZE - 1);
		hi = (keep + keep_len + WASP_PAGE_SIZE - 1) & ~(size_t)(WASP_PAGE_SIZE - 1);
	}
	if ((r = punch(v, 0, lo)) < 0 || (r = punch(v, hi, v->mem_size)) < 0)
		return r;
	if (keep_len) {
		memset(v->mem + lo, 0, keep - lo);
		memset(v->mem + keep + keep_len, 0, hi - keep - keep_len);
	}
	memset(v->host_dirty, 0, bitmap_words(v) * sizeof(uint64_t));
	v->used = false;
	return 0;
}

static int check_fit(struct wasp_virtine *v, wasp_gpa_t gpa, size_t len)
{
	if (!len)
		return wasp_fail(-EINVAL, "empty image");
	if (!wasp_virtine_gpa(v, gpa, len))
		return wasp_fail(-E2BIG, "image of %zu bytes at 0x%llx does not fit in %zu bytes of guest memory",
				 len, (unsigned long long)gpa, v->mem_size);
	return 0;
}

/* Copies an image into guest memory. Into pages a run left in place (kept
 * by wasp_zero_if_used()), a plain copy is cheapest. Into a fresh
 * virtine's memory, a write(2) to the memfd: the kernel fills page-cache
 * pages without faulting each one into this process's mapping (16 MiB
 * measured on a shadow-paged host: 3-4 ms, against 54 ms by memcpy, whose
 * every page faults), and KVM later maps only the pages the guest
 * touches. */
static int copy_in(struct wasp_virtine *v, wasp_gpa_t gpa, const void *src, size_t len,
		   bool resident)
{
	if (resident) {
		memcpy(v->mem + gpa, src, len);
		return 0;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(v->mem_fd, (const char *)src + done, len - done,
				   (off_t)(gpa + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return wasp_fail(n < 0 ? -errno : -EIO, "copying the image into guest memory: %s",
					 n < 0 ? strerror(errno) : "short write");
		done += (size_t)n;
	}
	return 0;
}

int wasp_virtine_load(struct wasp_virtine *v, const void *image, size_t len, wasp_gpa_t gpa,
		      enum wasp_mode mode)
{
	uint64_t t0 = wasp_now_ns();
	if (len >= 4 && !memcmp(image, "\177ELF", 4))
		return wasp_lx_load_buffer(v, image, len, NULL, NULL); /* a Linux program */
	if (!gpa)
		gpa = WASP_GPA_LOAD;
	int r = check_fit(v, gpa, len);
	bool resident = v->used; /* its pages stay for the copy below */
	if (r < 0 || (r = wasp_zero_if_used(v, gpa, len)) < 0 ||
	    (r = copy_in(v, gpa, image, len, resident)) < 0)
		return r;
	r = load_finish(v, gpa, len, mode);
	v->stats.load_ns = wasp_now_ns() - t0;
	return r;
}

int wasp_virtine_load_file(struct wasp_virtine *v, const char *path, wasp_gpa_t gpa,
			   enum wasp_mode mode)
{
	uint64_t t0 = wasp_now_ns();
	struct stat st;
	int fd, r;

	if (!gpa)
		gpa = WASP_GPA_LOAD;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return wasp_fail(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = wasp_fail(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = wasp_fail(-EINVAL, "%s: not a regular file", path);
		goto out;
	}
	/* A Linux program, by its ELF magic (an ELF it cannot run is refused
	 * with the reason, never run as a flat image). */
	r = wasp_linux_probe(path);
	if (r != 0) {
		close(fd);
		return r < 0 ? r : wasp_virtine_load_linux(v, path, NULL, NULL);
	}
	r = check_fit(v, gpa, (size_t)st.st_size);
	if (r < 0) {
		wasp_fail(r, "%s: %s", path, wasp_last_error());
		goto out;
	}
	/* A big image is mapped copy-on-write, not read: its pages come from
	 * the page cache when the guest first touches them (vmm_map.c). The
	 * tail of its last page reads as zero, as the ABI wants. Under the
	 * mapping the memory is cleared whole; a read keeps the pages it
	 * overwrites. */
	bool map = (size_t)st.st_size >= WASP_MAP_IMAGE_MIN && gpa % WASP_PAGE_SIZE == 0;
	if ((r = wasp_zero_if_used(v, gpa, map ? 0 : (size_t)st.st_size)) < 0)
		goto out;
	if (map) {
		size_t len = ((size_t)st.st_size + WASP_PAGE_SIZE - 1) & ~(size_t)(WASP_PAGE_SIZE - 1);
		r = wasp_virtine_map_file(v, gpa, len, fd, 0);
		if (r == 0) {
			r = load_finish(v, gpa, (size_t)st.st_size, mode);
			if (r < 0)
				wasp_fail(r, "%s: %s", path, wasp_last_error());
			goto out;
		}
		if (r != -ENOMEM)
			goto out;
		/* out of mappings: read it */
	}
	/* Read straight into guest memory: no staging copy. */
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, v->mem + gpa + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = wasp_fail(n < 0 ? -errno : -EIO, "%s: read: %s", path,
				      n < 0 ? strerror(errno) : "file shrank while loading");
			goto out;
		}
		done += (size_t)n;
	}
	r = load_finish(v, gpa, done, mode);
	if (r < 0)
		wasp_fail(r, "%s: %s", path, wasp_last_error());
out:
	close(fd);
	v->stats.load_ns = wasp_now_ns() - t0;
	return r;
}

/* ---- registers -------------------------------------------------------- */

/* With KVM_CAP_SYNC_REGS the registers of the last exit sit in kvm_run and a
 * write is a flag KVM applies on the next entry: no ioctl on the hypercall
 * path. A pending synced write must win over a fresh ioctl read. */
int wasp_virtine_get_regs(struct wasp_virtine *v, struct wasp_regs *regs)
{
	_Static_assert(sizeof(struct wasp_regs) == sizeof(struct kvm_regs), "regs layout");
	struct kvm_regs k;
	int r = 0;
	if (v->run->kvm_dirty_regs & KVM_SYNC_X86_REGS)
		k = v->run->s.regs.regs;
	else
		r = kvm_ioctl(v->vcpu_fd, KVM_GET_REGS, &k);
	if (r == 0)
		memcpy(regs, &k, sizeof k);
	return r;
}

int wasp_virtine_set_regs(struct wasp_virtine *v, const struct wasp_regs *regs)
{
	struct kvm_regs k;
	memcpy(&k, regs, sizeof k);
	if (v->run->kvm_dirty_regs & KVM_SYNC_X86_REGS) {
		v->run->s.regs.regs = k;
		return 0;
	}
	return kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &k);
}

int wasp_virtine_set_hypercall_result(struct wasp_virtine *v, int64_t result)
{
	struct wasp_regs regs;
	if (!v->hc_pending)
		return wasp_fail(-EINVAL, "no hypercall is waiting for a result");
	int r = wasp_virtine_get_regs(v, &regs);
	if (r < 0)
		return r;
	regs.rax = (uint64_t)result;
	r = wasp_virtine_set_regs(v, &regs);
	if (r == 0)
		v->hc_pending = false;
	return r;
}

/* ---- state access (vmm_state.c, tests) -------------------------------- */

int wasp_virtine_vcpu_fd(const struct wasp_virtine *v)
{
	return v->vcpu_fd;
}

int wasp_virtine_triple_fault_events(struct wasp_virtine *v)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_TRIPLE_FAULT_EVENT, .args = {1}};
	return wasp__ioctl(v->vm_fd, KVM_ENABLE_CAP, &cap);
}

int wasp_virtine_complete_io(struct wasp_virtine *v)
{
	v->run->immediate_exit = 1;
	int r = ioctl(v->vcpu_fd, KVM_RUN, 0);
	int e = errno;
	v->run->immediate_exit = 0;
	if (r < 0 && e != EINTR && e != EAGAIN)
		return wasp_fail(-e, "KVM_RUN (completing I/O): %s", strerror(e));
	return 0;
}

enum wasp_mode wasp_virtine_mode(const struct wasp_virtine *v)
{
	return v->mode;
}

void wasp_virtine_set_mode(struct wasp_virtine *v, enum wasp_mode mode)
{
	v->mode = mode;
	if (kvm_global.sync_regs)
		v->run->kvm_valid_regs = KVM_SYNC_X86_REGS |
					 (mode == WASP_MODE_REAL && kvm_global.sync_sregs ? KVM_SYNC_X86_SREGS : 0);
}

int wasp_kvm_fd(void)
{
	const struct wasp_kvm *k;
	int r = wasp_kvm_get(&k);
	return r < 0 ? r : k->fd;
}

static struct kvm_msr_list *msr_list;
static pthread_once_t msr_once = PTHREAD_ONCE_INIT;

static void msr_list_once(void)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(kvm_global.fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return;
	struct kvm_msr_list *l = calloc(1, sizeof *l + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return;
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_global.fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return;
	}
	msr_list = l;
}

int wasp_host_msr_list(const uint32_t **indices, uint32_t *count)
{
	const struct wasp_kvm *k;
	int r = wasp_kvm_get(&k);
	if (r < 0)
		return r;
	pthread_once(&msr_once, msr_list_once);
	if (!msr_list)
		return wasp_fail(-EIO, "KVM_GET_MSR_INDEX_LIST failed");
	*indices = msr_list->indices;
	*count = msr_list->nmsrs;
	return 0;
}

int wasp_host_cpuid(const void **kvm_cpuid2)
{
	const struct wasp_kvm *k;
	int r = wasp_kvm_get(&k);
	if (r < 0)
		return r;
	const struct kvm_cpuid2 *eff = wasp_x86_effective_cpuid();
	*kvm_cpuid2 = eff ? eff : k->cpuid;
	return 0;
}

/* ---- run -------------------------------------------------------------- */

void wasp_virtine_pause(struct wasp_virtine *v)
{
	atomic_store(&v->pause_req, true);
	v->run->immediate_exit = 1;
	/* The lock keeps `runner` alive and current while we signal it. */
	pthread_mutex_lock(&v->kick_lock);
	if (atomic_load(&v->running))
		pthread_kill(v->runner, kvm_global.kick_signal);
	pthread_mutex_unlock(&v->kick_lock);
}

bool wasp_virtine_kicked(const struct wasp_virtine *v)
{
	return ((volatile struct kvm_run *)v->run)->immediate_exit != 0;
}

int wasp_kick_signal(void)
{
	return kvm_global.kick_signal;
}

void wasp_fault_sregs(struct wasp_virtine *v, struct wasp_exit *e)
{
	struct kvm_sregs s;
	if (wasp__ioctl(v->vcpu_fd, KVM_GET_SREGS, &s) == 0) {
		e->fault.cr0 = s.cr0;
		e->fault.cr3 = s.cr3;
		e->fault.cr4 = s.cr4;
		e->fault.efer = s.efer;
		e->fault.cr2 = s.cr2;
	}
}

static void fill_fault(struct wasp_virtine *v, struct wasp_exit *e, enum wasp_fault_kind kind,
		       uint64_t addr)
{
	e->reason = WASP_EXIT_FAULT;
	e->fault.kind = kind;
	e->fault.kvm_exit = v->run->exit_reason;
	e->fault.addr = addr;
	wasp_virtine_get_regs(v, &e->fault.regs);
	wasp_fault_sregs(v, e);
}

/* Arguments outside long mode are 32-bit: the upper halves are undefined. */
static bool guest_in_long_mode(struct wasp_virtine *v)
{
	struct kvm_sregs s;
	if (v->mode == WASP_MODE_LONG)
		return true; /* ring 3 cannot leave long mode */
	if (v->run->kvm_valid_regs & KVM_SYNC_X86_SREGS)
		s = v->run->s.regs.sregs;
	else if (wasp__ioctl(v->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return false;
	return (s.efer & (1u << 10)) && s.cs.l;
}

/* Handles an `out` to the hypercall port. Returns true when the run goes on. */
static bool do_hypercall(struct wasp_virtine *v, struct wasp_exit *e, int *err)
{
	struct kvm_regs regs;
	uint64_t args[6];
	int64_t result;

	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS)
		regs = v->run->s.regs.regs;
	else if ((*err = kvm_ioctl(v->vcpu_fd, KVM_GET_REGS, &regs)) < 0)
		return false;

	uint64_t nr = regs.rax;
	args[0] = regs.rdi;
	args[1] = regs.rsi;
	args[2] = regs.rdx;
	args[3] = regs.r10;
	args[4] = regs.r8;
	args[5] = regs.r9;
	if (!guest_in_long_mode(v)) {
		nr &= 0xffffffffu;
		for (int i = 0; i < 6; i++)
			args[i] &= 0xffffffffu;
	}
	v->stats.hypercalls++;

	if (nr == WASP_HC_EXIT) {
		e->reason = WASP_EXIT_EXITED;
		e->code = (int64_t)(int32_t)args[0];
		return false;
	}
	if (!wasp_hc_dispatch(v, nr, args, &result)) {
		e->reason = WASP_EXIT_HYPERCALL;
		e->hypercall.nr = nr;
		memcpy(e->hypercall.args, args, sizeof args);
		result = -ENOSYS; /* the answer unless the caller gives another */
		v->hc_pending = true;
	}
	regs.rax = (uint64_t)result;
	if (v->run->kvm_valid_regs & KVM_SYNC_X86_REGS) {
		v->run->s.regs.regs = regs;
		v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	} else if ((*err = kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &regs)) < 0) {
		return false;
	}
	/* The pool's stop points (vmm_internal.h): answered, yet the run ends. */
	if (e->reason != WASP_EXIT_HYPERCALL && nr < 64 && (v->hc_stop & (1ull << nr)) &&
	    result >= 0) {
		e->reason = WASP_EXIT_HYPERCALL;
		e->hypercall.nr = nr;
		memcpy(e->hypercall.args, args, sizeof args);
		return false;
	}
	return e->reason != WASP_EXIT_HYPERCALL;
}

/* One exit: returns true when the run goes on, false when *e is filled
 * (or *err set). */
static bool handle_exit(struct wasp_virtine *v, struct wasp_exit *e, int *err)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		v->stats.io_exits++;
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == WASP_PORT_HYPERCALL)
			return do_hypercall(v, e, err);
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == WASP_PORT_SYSCALL && v->lx)
			return wasp_lx_syscall(v, e, err);
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == WASP_PORT_EXCEPTION && v->lx) {
			wasp_lx_exception(v, e);
			return false;
		}
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == WASP_PORT_EXIT) {
			uint32_t code = 0;
			unsigned size = run->io.size <= 4 ? run->io.size : 4;
			memcpy(&code, (uint8_t *)run + run->io.data_offset, size);
			e->reason = WASP_EXIT_EXITED;
			e->code = size == 4 ? (int64_t)(int32_t)code : (int64_t)code;
			return false;
		}
		fill_fault(v, e, WASP_FAULT_IO, run->io.port);
		return false;
	case KVM_EXIT_MMIO:
		fill_fault(v, e, WASP_FAULT_MMIO, run->mmio.phys_addr);
		return false;
	case KVM_EXIT_SHUTDOWN:
		fill_fault(v, e, WASP_FAULT_SHUTDOWN, 0);
		return false;
	case KVM_EXIT_HLT:
		fill_fault(v, e, WASP_FAULT_HALT, 0);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		fill_fault(v, e, WASP_FAULT_INTERNAL, run->internal.suberror);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		fill_fault(v, e, WASP_FAULT_INTERNAL,
			   run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTR:
		return true; /* the caller checks pause and deadline */
	default:
		fill_fault(v, e, WASP_FAULT_UNHANDLED, run->exit_reason);
		return false;
	}
}

static int arm_timer(timer_t *timer, uint64_t timeout_ns)
{
	struct sigevent sev = {
		.sigev_notify = SIGEV_THREAD_ID,
		.sigev_signo = kvm_global.kick_signal,
	};
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, timer) < 0)
		return wasp_fail(-errno, "timer_create: %s", strerror(errno));
	struct itimerspec its = {
		.it_value = {.tv_sec = (time_t)(timeout_ns / 1000000000ull),
			     .tv_nsec = (long)(timeout_ns % 1000000000ull)},
	};
	if (timer_settime(*timer, 0, &its, NULL) < 0) {
		int r = wasp_fail(-errno, "timer_settime: %s", strerror(errno));
		timer_delete(*timer);
		return r;
	}
	return 0;
}

int wasp_virtine_run(struct wasp_virtine *v, uint64_t timeout_ns, struct wasp_exit *e)
{
	uint64_t t0 = wasp_now_ns(), deadline = timeout_ns ? t0 + timeout_ns : 0;
	timer_t timer;
	int err = 0;

	memset(e, 0, sizeof *e);
	if (timeout_ns && (err = arm_timer(&timer, timeout_ns)) < 0)
		return err;
	v->hc_pending = false;
	pthread_mutex_lock(&v->kick_lock);
	v->runner = pthread_self();
	atomic_store(&v->running, true);
	pthread_mutex_unlock(&v->kick_lock);
	current_run = v->run;
	v->stats.runs++;
	v->used = true;
	if (v->trace)
		err = wasp_trace_enter(v);

	while (!err) {
		int r = ioctl(v->vcpu_fd, KVM_RUN, 0);
		if (r < 0 && errno == EFAULT && v->file_mapped) {
			/* A page mapped from a file that shrank (vmm_map.c): the
			 * guest's fault, not the host's. */
			uint64_t gpa = 0;
#ifdef KVM_EXIT_MEMORY_FAULT
			if (v->run->exit_reason == KVM_EXIT_MEMORY_FAULT)
				gpa = v->run->memory_fault.gpa;
#endif
			fill_fault(v, e, WASP_FAULT_MEMORY_LOST, gpa);
			break;
		}
		if (r < 0 && errno != EINTR && errno != EAGAIN) {
			err = wasp_fail(-errno, "KVM_RUN: %s", strerror(errno));
			break;
		}
		if (r < 0)
			v->run->exit_reason = KVM_EXIT_INTR;
		else
			v->stats.exits++;
		if (v->trace) {
			int t = wasp_trace_exit(v, e, &err);
			if (t > 0)
				continue;
			if (t < 0)
				break;
		}
		bool go = handle_exit(v, e, &err);
		if (v->trace)
			go = wasp_trace_after(v, e, go);
		if (!err && v->file_mapped && atomic_load(&v->mem_lost)) {
			/* A hypercall read a page the file lost (vmm_map.c) and
			 * got zeros: the run cannot go on as if nothing happened. */
			fill_fault(v, e, WASP_FAULT_MEMORY_LOST, 0);
			break;
		}
		if (!go)
			break;
		if (v->run->exit_reason != KVM_EXIT_INTR)
			continue;
		/* Interrupted: clear the flag first, then look at why, so a pause
		 * asked for in between is never lost (pause sets both in order). */
		v->run->immediate_exit = 0;
		if (atomic_exchange(&v->pause_req, false)) {
			e->reason = WASP_EXIT_PAUSED;
			break;
		}
		if (deadline && wasp_now_ns() >= deadline) {
			e->reason = WASP_EXIT_TIMEOUT;
			break;
		}
	}

	if (v->trace)
		wasp_trace_leave(v);
	current_run = NULL;
	v->last_exit = err ? -1 : (int)e->reason;
	pthread_mutex_lock(&v->kick_lock);
	atomic_store(&v->running, false);
	pthread_mutex_unlock(&v->kick_lock);
	if (timeout_ns)
		timer_delete(timer);
	v->stats.run_ns += wasp_now_ns() - t0;
	return err;
}
