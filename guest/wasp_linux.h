/*
 * wasp_linux.h: for a static Linux program run in a virtine (docs/linux.md)
 * that also talks to wasp: serve wasp_call()s from a pool, hand a result
 * back, mark its snapshot point. Header-only, no dependencies beyond the
 * C library; outside a virtine every call answers -ENOSYS (Linux has no
 * such system call numbers), so the same binary runs natively too.
 *
 * A pool's program initialises itself (loads data, builds tables), then
 * calls wasp_serve(handler, buf, cap): the pool snapshots it there, and
 * each wasp_call() starts from that snapshot with its argument in buf and
 * ends when the handler's result is handed back.
 */
#ifndef WASP_LINUX_H
#define WASP_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wasp_abi.h"

/* Hypercall `nr` (wasp_abi.h) made as a system call; its result, or a
 * negative errno. */
static inline long wasp_linux_hypercall(unsigned nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((uint64_t)WASP_LINUX_HC_BASE + nr), "D"(a0), "S"(a1), "d"(a2)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The snapshot point: returns the length of the call's argument, already
 * copied into buf (at most cap bytes), or 0 when there is none to copy
 * (the first run, or a host without a pool). */
static inline long wasp_linux_snapshot(void *buf, size_t cap)
{
	return wasp_linux_hypercall(WASP_HC_SNAPSHOT, (uintptr_t)buf, cap, WASP_SNAPSHOT_ARG);
}

/* Copies the call's argument into buf; its full length. */
static inline long wasp_linux_get_arg(void *buf, size_t cap)
{
	return wasp_linux_hypercall(WASP_HC_GET_ARG, (uintptr_t)buf, cap, 0);
}

/* Hands the call's result back; the call ends here under a pool. */
static inline long wasp_linux_set_ret(const void *buf, size_t len)
{
	return wasp_linux_hypercall(WASP_HC_SET_RET, (uintptr_t)buf, len, 0);
}

/* A call's handler: the argument in, the result's length out (at most
 * out_cap bytes written to out). */
typedef size_t (*wasp_linux_handler)(const void *in, size_t in_len, void *out, size_t out_cap);

/* Serves one call per run from the snapshot taken here: takes the
 * argument, runs the handler, hands its result back. buf holds the
 * argument (cap bytes), out the result (out_cap bytes). Returns only when
 * there is no host to serve (the program runs natively): -ENOSYS. */
static inline long wasp_serve(wasp_linux_handler handler, void *buf, size_t cap, void *out,
			      size_t out_cap)
{
	/* The C library's buffered output is flushed at the snapshot (or every
	 * call would print it again) and before the result (the call ends
	 * there, so nothing later would ever print it). */
	fflush(NULL);
	long n = wasp_linux_snapshot(buf, cap);
	if (n == 0)
		n = wasp_linux_get_arg(buf, cap);
	if (n < 0)
		return n;
	size_t len = handler(buf, (size_t)n < cap ? (size_t)n : cap, out, out_cap);
	fflush(NULL);
	return wasp_linux_set_ret(out, len < out_cap ? len : out_cap);
}

#endif /* WASP_LINUX_H */
