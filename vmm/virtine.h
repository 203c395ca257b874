/*
 * virtine.h (installed as <wasp/virtine.h>): the `virtine` keyword for C.
 *
 *   #include <wasp/virtine.h>
 *   virtine int square(int x) { return x * x; }
 *
 * Compiled with wasp-cc (tools/wasp-cc.c, docs/embedding.md), every call of
 * square() runs in a fresh virtine from a pool of its own, started from a
 * snapshot taken after the guest runtime's initialisation. Compiled with a
 * plain cc, the keywords expand to nothing and the functions run natively.
 *
 *   virtine_allow(console_write, open)  hypercalls the function may make
 *                                       (wasp_virtine_allow() names); every
 *                                       other one is denied, and a call that
 *                                       was denied one fails (-EPERM)
 *   virtine_mem(4M)                     guest memory (bytes, or K/M/G); 2M
 *   virtine_timeout_ms(100)             bound on each call; none by default
 *
 * A call that cannot complete (the guest faulted, timed out, was denied a
 * hypercall, the host could not make the virtine) never aborts the program:
 * the function returns 0 (a zeroed struct), pointer arguments are left as
 * they were, and wasp_virtine_errno() on the calling thread says why.
 *
 * Self-contained on purpose: generated code and guest code include it too.
 */
#ifndef WASP_VIRTINE_H
#define WASP_VIRTINE_H

#include <stddef.h>
#include <stdint.h>

#include "wasp_api.h"

/* wasp-cc defines WASP_CC_PARSE only while it reads the file with libclang;
 * every real compilation (host and guest) sees plain C. */
#ifdef WASP_CC_PARSE
#define virtine __attribute__((annotate("wasp:virtine")))
#define virtine_allow(...) __attribute__((annotate("wasp:allow=" #__VA_ARGS__)))
#define virtine_mem(size) __attribute__((annotate("wasp:mem=" #size)))
#define virtine_timeout_ms(ms) __attribute__((annotate("wasp:timeout_ms=" #ms)))
#else
#define virtine
#define virtine_allow(...)
#define virtine_mem(size)
#define virtine_timeout_ms(ms)
#endif

#ifndef WASP_VIRTINE_GUEST

#ifdef __cplusplus
extern "C" {
#endif

/* Error of the calling thread's last call of a virtine function: 0 when it
 * completed, else a negative errno:
 *   -EFAULT     the guest faulted (a null dereference, ...)
 *   -ETIMEDOUT  it ran past its virtine_timeout_ms()
 *   -EPERM      it made a hypercall its virtine_allow() does not name
 *   -EPROTO     it ended without a result (exited, or a malformed one)
 *   -ECANCELED  it was ended by a signal it sent itself (abort(): SIGABRT)
 *   other       the host failed (no KVM, out of memory, bad image, ...) */
WASP_API int wasp_virtine_errno(void);
/* One line saying what wasp_virtine_errno() means for that call ("" for 0). */
WASP_API const char *wasp_virtine_error(void);

/* Destroys the pools of every virtine function called so far (optional, at
 * the end of a program; no virtine function may be running or called
 * after it). */
WASP_API void wasp_virtine_shutdown(void);

/* ---- For code wasp-cc generates; not a stable API ---------------------- */

enum {
	WASP_VFN_IN = 1,  /* copied into the guest */
	WASP_VFN_OUT = 2, /* copied back after a call that completed */
	WASP_VFN_PTR = 4, /* a pointer argument: NULL stays NULL */
	WASP_VFN_RET = 8, /* the return value's slot */
};

struct wasp_vfn_arg {
	void *ptr;
	size_t len;
	unsigned flags;
};

struct wasp_vfn {
	const char *name;
	const unsigned char *image;
	size_t image_len;
	uint64_t mem_size;
	const char *allow; /* the function's virtine_allow() list, "" for none */
	uint64_t timeout_ns;
	void *volatile pool; /* made by the first call */
	struct wasp_vfn *next;
};

/* Calls f's guest with the arguments marshalled as docs/embedding.md says.
 * Returns 0, or a negative errno (also in wasp_virtine_errno()). */
WASP_API int wasp_vfn_call(struct wasp_vfn *f, const struct wasp_vfn_arg *args, unsigned n);

#ifdef __cplusplus
}
#endif

#endif /* WASP_VIRTINE_GUEST */
#endif /* WASP_VIRTINE_H */
