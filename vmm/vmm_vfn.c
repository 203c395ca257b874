/*
 * vmm_vfn.c: the host side of functions wasp-cc put in virtines
 * (virtine.h, docs/embedding.md).
 *
 * Each function has a pool, made on its first call. A call marshals the
 * arguments into one buffer (the guest stub's wire format below), runs a
 * pristine virtine from the pool to its WASP_HC_SET_RET and copies the
 * return value and the pointed-to objects back from the buffer it returns.
 *
 * Wire format: for each argument in order (the return value's slot first),
 * a 16-byte header whose first 8 bytes are the length (UINT64_MAX for a
 * NULL pointer), then the bytes, padded to 16. The guest edits the buffer
 * in place (pointer arguments point into it) and gives it back whole.
 *
 * The image is either a flat one of wasp's freestanding runtime or a static
 * Linux program linked with the C library (wasp-cc decides); the pool loads
 * either, and this file treats them alike but for the ways a Linux program
 * ends (a signal it sent itself: abort()).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtine.h"
#include "vmm.h"

#define VFN_NULL UINT64_MAX
#define VFN_ALIGN 16

static _Thread_local int vfn_errno;
static _Thread_local char vfn_error[512];

static pthread_mutex_t vfn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wasp_vfn *vfn_list; /* functions with a pool, for shutdown */

int wasp_virtine_errno(void)
{
	return vfn_errno;
}

const char *wasp_virtine_error(void)
{
	return vfn_errno ? vfn_error : "";
}

static int vfn_fail(const struct wasp_vfn *f, int err, const char *what)
{
	vfn_errno = err;
	snprintf(vfn_error, sizeof vfn_error, "virtine %s: %s", f->name, what);
	return err;
}

static size_t vfn_pad(size_t n)
{
	return (n + VFN_ALIGN - 1) & ~(size_t)(VFN_ALIGN - 1);
}

/* The function's pool, made by its first call (one thread makes it, the
 * others wait). A failure is not remembered: the next call tries again. */
static int vfn_pool(struct wasp_vfn *f, struct wasp_pool **out)
{
	struct wasp_pool *p = __atomic_load_n(&f->pool, __ATOMIC_ACQUIRE);
	int r = 0;
	if ((*out = p))
		return 0;
	pthread_mutex_lock(&vfn_lock);
	p = f->pool;
	if (!p) {
		struct wasp_pool_config c;
		char allow[512];
		wasp_pool_config_init(&c);
		c.image = f->image;
		c.image_len = f->image_len;
		c.vm.mem_size = f->mem_size ? f->mem_size : 2u << 20;
		c.vm.no_stdin = true;
		c.call_timeout_ns = f->timeout_ns;
		snprintf(allow, sizeof allow, "get_arg,set_ret,snapshot%s%s",
			 f->allow && *f->allow ? "," : "", f->allow ? f->allow : "");
		c.allow = allow;
		if ((r = wasp_pool_create(&c, &p)) == 0) {
			__atomic_store_n(&f->pool, p, __ATOMIC_RELEASE);
			f->next = vfn_list;
			vfn_list = f;
		} else {
			p = NULL;
		}
	}
	pthread_mutex_unlock(&vfn_lock);
	*out = p;
	return r;
}

void wasp_virtine_shutdown(void)
{
	pthread_mutex_lock(&vfn_lock);
	for (struct wasp_vfn *f = vfn_list, *next; f; f = next) {
		next = f->next;
		wasp_pool_destroy(f->pool);
		f->pool = NULL;
		f->next = NULL;
	}
	vfn_list = NULL;
	pthread_mutex_unlock(&vfn_lock);
}

/* Copies the RET and OUT segments of the guest's buffer `b` back. */
static int vfn_unmarshal(struct wasp_vfn *f, const struct wasp_vfn_arg *args, unsigned n,
			 const unsigned char *b, size_t len)
{
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!(args[i].flags & (WASP_VFN_IN | WASP_VFN_RET)))
			continue;
		uint64_t l;
		if (off + VFN_ALIGN > len)
			return vfn_fail(f, -EPROTO, "the guest's result is cut short");
		memcpy(&l, b + off, sizeof l);
		off += VFN_ALIGN;
		bool null = (args[i].flags & WASP_VFN_PTR) && !args[i].ptr;
		if (null ? l != VFN_NULL : l != args[i].len)
			return vfn_fail(f, -EPROTO, "the guest changed an argument's length");
		if (null)
			continue;
		if (off + args[i].len > len)
			return vfn_fail(f, -EPROTO, "the guest's result is cut short");
		off += vfn_pad(args[i].len);
	}
	/* Only now that the whole buffer checked out: a malformed result
	 * leaves every argument as it was. */
	off = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!(args[i].flags & (WASP_VFN_IN | WASP_VFN_RET)))
			continue;
		off += VFN_ALIGN;
		if ((args[i].flags & WASP_VFN_PTR) && !args[i].ptr)
			continue;
		if (args[i].flags & (WASP_VFN_OUT | WASP_VFN_RET))
			memcpy(args[i].ptr, b + off, args[i].len);
		off += vfn_pad(args[i].len);
	}
	return 0;
}

int wasp_vfn_call(struct wasp_vfn *f, const struct wasp_vfn_arg *args, unsigned n)
{
	unsigned char stackbuf[512] __attribute__((aligned(VFN_ALIGN)));
	unsigned char *b = stackbuf;
	size_t len = 0;
	int r;

	vfn_errno = 0;
	for (unsigned i = 0; i < n; i++) {
		len += VFN_ALIGN;
		if (!((args[i].flags & WASP_VFN_PTR) && !args[i].ptr))
			len += vfn_pad(args[i].len);
	}
	if (len > sizeof stackbuf && !(b = aligned_alloc(VFN_ALIGN, len)))
		return vfn_fail(f, -ENOMEM, "no memory for the arguments");
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		bool null = (args[i].flags & WASP_VFN_PTR) && !args[i].ptr;
		uint64_t l = null ? VFN_NULL : args[i].len;
		memset(b + off, 0, VFN_ALIGN);
		memcpy(b + off, &l, sizeof l);
		off += VFN_ALIGN;
		if (null)
			continue;
		size_t padded = vfn_pad(args[i].len);
		if (args[i].flags & WASP_VFN_IN)
			memcpy(b + off, args[i].ptr, args[i].len);
		else
			memset(b + off, 0, args[i].len);
		memset(b + off + args[i].len, 0, padded - args[i].len);
		off += padded;
	}

	struct wasp_pool *p;
	if ((r = vfn_pool(f, &p)) < 0) {
		vfn_fail(f, r, wasp_last_error());
		goto out;
	}
	struct wasp_virtine *v;
	if ((r = wasp_pool_get(p, &v)) < 0) {
		vfn_fail(f, r, wasp_last_error());
		goto out;
	}
	/* The guest writes to fd 1 itself: what the caller printed before the
	 * call must be out of stdio's buffer first, or it would come after.
	 * Only for a function its policy lets print (the pool resolved
	 * virtine_allow() into the virtine's table once). */
	if (wasp_virtine_allowed(v, WASP_HC_CONSOLE_WRITE))
		fflush(stdout);
	struct wasp_stats before, after;
	wasp_virtine_stats(v, &before);
	if ((r = wasp_pool_set_arg(p, v, b, len)) < 0) {
		wasp_pool_put(p, v);
		vfn_fail(f, r, wasp_last_error());
		goto out;
	}
	struct wasp_exit e;
	if ((r = wasp_virtine_run(v, f->timeout_ns, &e)) < 0) {
		wasp_pool_discard(p, v);
		vfn_fail(f, r, wasp_last_error());
		goto out;
	}
	wasp_virtine_stats(v, &after);
	char msg[256];
	if (after.hypercalls_denied != before.hypercalls_denied) {
		/* The guest saw -EPERM and may have gone on as if nothing
		 * happened: its result cannot be trusted to mean what the
		 * caller thinks. */
		r = vfn_fail(f, -EPERM, "made a hypercall its virtine_allow() does not name");
	} else if (e.reason == WASP_EXIT_HYPERCALL && e.hypercall.nr == WASP_HC_SET_RET) {
		size_t rlen;
		const void *ret = wasp_virtine_ret(v, &rlen);
		r = rlen == len ? vfn_unmarshal(f, args, n, ret, rlen)
				: vfn_fail(f, -EPROTO, "the guest's result has the wrong length");
	} else if (e.reason == WASP_EXIT_FAULT) {
		snprintf(msg, sizeof msg, "the guest faulted: %s at rip 0x%llx",
			 wasp_fault_kind_name(e.fault.kind), (unsigned long long)e.fault.regs.rip);
		r = vfn_fail(f, -EFAULT, msg);
	} else if (e.reason == WASP_EXIT_TIMEOUT) {
		snprintf(msg, sizeof msg, "ran past its %llu ms limit",
			 (unsigned long long)(f->timeout_ns / 1000000));
		r = vfn_fail(f, -ETIMEDOUT, msg);
	} else if (e.reason == WASP_EXIT_EXITED && e.signal) {
		snprintf(msg, sizeof msg, "the guest was killed by signal %d%s", e.signal,
			 e.signal == SIGABRT ? " (SIGABRT: it called abort())" : "");
		r = vfn_fail(f, -ECANCELED, msg);
	} else if (e.reason == WASP_EXIT_EXITED) {
		snprintf(msg, sizeof msg, "the guest exited with code %lld and no result",
			 (long long)e.code);
		r = vfn_fail(f, -EPROTO, msg);
	} else {
		snprintf(msg, sizeof msg, "the run ended %s", wasp_exit_reason_name(e.reason));
		r = vfn_fail(f, -EPROTO, msg);
	}
	if (r < 0)
		wasp_pool_discard(p, v);
	else
		wasp_pool_put(p, v);
out:
	if (b != stackbuf)
		free(b);
	return r;
}
