/*
 * wasp_guest.h: the freestanding runtime a C virtine is written against.
 *
 * A C virtine is `int main(void)` linked with guest/rt/: the image's boot
 * code (rt/boot.asm) enters main in 64-bit ring 3 and turns its return value
 * into the exit code. Everything the guest can ask of its host goes through
 * the hypercalls below; see wasp_abi.h for numbers and register conventions,
 * docs/guest.md for the memory map and how images are built.
 *
 * Conventions: calls that talk to the host return >= 0 on success and a
 * negative Linux errno (-WASP_EFAULT, ...) on failure, exactly what the host
 * put in rax. Nothing here keeps a global errno.
 */
#ifndef WASP_GUEST_H
#define WASP_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wasp_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Error numbers (Linux values; hypercalls return them negated) ------- */

#define WASP_EPERM 1
#define WASP_ENOENT 2
#define WASP_EIO 5
#define WASP_E2BIG 7
#define WASP_EBADF 9
#define WASP_ENOMEM 12
#define WASP_EACCES 13
#define WASP_EFAULT 14
#define WASP_EEXIST 17
#define WASP_EXDEV 18
#define WASP_ENOTDIR 20
#define WASP_EISDIR 21
#define WASP_EINVAL 22
#define WASP_EMFILE 24
#define WASP_EFBIG 27
#define WASP_ENOSPC 28
#define WASP_ENAMETOOLONG 36
#define WASP_ENOSYS 38
#define WASP_ELOOP 40
#define WASP_EDQUOT 122 /* the sandbox quota (--dir-quota) is used up */

/* Short name of an errno value ("EFAULT"), or "E?" when unknown. Accepts
 * either sign, so wasp_errname(ret) works on a hypercall result. */
const char *wasp_errname(int64_t err);

/* ---- Raw hypercalls and exit ------------------------------------------- */

/* Hypercall `nr` with up to six arguments; returns the host's rax. The
 * "memory" clobber matters: the host reads and writes guest buffers. */
static inline int64_t wasp_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
				     uint64_t a3, uint64_t a4, uint64_t a5)
{
	register uint64_t r10 __asm__("r10") = a3;
	register uint64_t r8 __asm__("r8") = a4;
	register uint64_t r9 __asm__("r9") = a5;
	uint64_t rax = nr;

	__asm__ volatile("outb %%al, %[port]"
			 : "+a"(rax)
			 : [port] "i"(WASP_PORT_HYPERCALL), "D"(a0), "S"(a1), "d"(a2), "r"(r10),
			   "r"(r8), "r"(r9)
			 : "memory");
	return (int64_t)rax;
}

/* Ends the virtine with `code` (`out 0xFA, eax`). Never returns: if a host
 * resumes the vCPU anyway, it exits again. */
static inline __attribute__((noreturn)) void wasp_exit(int code)
{
	for (;;)
		__asm__ volatile("outl %%eax, %[port]" : : "a"(code), [port] "i"(WASP_PORT_EXIT)
				 : "memory");
}

/* Writes len bytes to the console. Returns bytes written. */
static inline int64_t wasp_console_write(const void *buf, size_t len)
{
	return wasp_hypercall(WASP_HC_CONSOLE_WRITE, (uintptr_t)buf, len, 0, 0, 0, 0);
}

/* Reads up to cap bytes of the host's stdin. Returns bytes read, 0 at EOF. */
static inline int64_t wasp_stdin_read(void *buf, size_t cap)
{
	return wasp_hypercall(WASP_HC_STDIN_READ, (uintptr_t)buf, cap, 0, 0, 0, 0);
}

/* Opens `path` (relative to the host's sandbox directory) with WASP_O_*
 * flags and permission bits `mode` for WASP_O_CREAT. Returns an fd. */
static inline int wasp_open(const char *path, int flags, int mode)
{
	return (int)wasp_hypercall(WASP_HC_OPEN, (uintptr_t)path, (uint64_t)flags, (uint64_t)mode,
				   0, 0, 0);
}

/* Closes fd. Returns 0. */
static inline int wasp_close(int fd)
{
	return (int)wasp_hypercall(WASP_HC_CLOSE, (uint64_t)fd, 0, 0, 0, 0, 0);
}

/* Reads up to cap bytes at the file offset. Returns bytes read, 0 at EOF. */
static inline int64_t wasp_read(int fd, void *buf, size_t cap)
{
	return wasp_hypercall(WASP_HC_READ, (uint64_t)fd, (uintptr_t)buf, cap, 0, 0, 0);
}

/* Writes len bytes at the file offset. Returns bytes written (may be short). */
static inline int64_t wasp_write(int fd, const void *buf, size_t len)
{
	return wasp_hypercall(WASP_HC_WRITE, (uint64_t)fd, (uintptr_t)buf, len, 0, 0, 0);
}

/* Reads up to cap bytes at `offset`, leaving the file offset alone. */
static inline int64_t wasp_pread(int fd, void *buf, size_t cap, uint64_t offset)
{
	return wasp_hypercall(WASP_HC_PREAD, (uint64_t)fd, (uintptr_t)buf, cap, offset, 0, 0);
}

/* Writes len bytes at `offset`, leaving the file offset alone. */
static inline int64_t wasp_pwrite(int fd, const void *buf, size_t len, uint64_t offset)
{
	return wasp_hypercall(WASP_HC_PWRITE, (uint64_t)fd, (uintptr_t)buf, len, offset, 0, 0);
}

#define WASP_SEEK_SET 0
#define WASP_SEEK_CUR 1
#define WASP_SEEK_END 2

/* Moves the file offset. Returns the new offset. */
static inline int64_t wasp_lseek(int fd, int64_t offset, int whence)
{
	return wasp_hypercall(WASP_HC_LSEEK, (uint64_t)fd, (uint64_t)offset, (uint64_t)whence, 0,
			      0, 0);
}

/* Fills *st for fd. Returns 0. */
static inline int wasp_fstat(int fd, struct wasp_stat *st)
{
	return (int)wasp_hypercall(WASP_HC_FSTAT, (uint64_t)fd, (uintptr_t)st, 0, 0, 0, 0);
}

/* Reads a host clock (WASP_CLOCK_REALTIME or WASP_CLOCK_MONOTONIC) in ns. */
static inline int64_t wasp_clock_ns(int clock)
{
	return wasp_hypercall(WASP_HC_CLOCK, (uint64_t)clock, 0, 0, 0, 0, 0);
}

/* Copies up to cap bytes of the argument buffer into buf. Returns the full
 * argument length, which may exceed cap. See also wasp_args(). */
static inline int64_t wasp_get_arg(void *buf, size_t cap)
{
	return wasp_hypercall(WASP_HC_GET_ARG, (uintptr_t)buf, cap, 0, 0, 0, 0);
}

/* Hands len bytes back to the host as the virtine's result. Returns 0. */
static inline int wasp_set_ret(const void *buf, size_t len)
{
	return (int)wasp_hypercall(WASP_HC_SET_RET, (uintptr_t)buf, len, 0, 0, 0, 0);
}

/* Marks "initialised": a host may snapshot here and start later runs from
 * this point. Returns 0 (also when execution resumes from the snapshot). */
static inline int wasp_snapshot(void)
{
	return (int)wasp_hypercall(WASP_HC_SNAPSHOT, 0, 0, 0, 0, 0, 0);
}

/* ---- Runtime ------------------------------------------------------------ */

/* Guest memory size in bytes, as the host reported it at entry. */
uint64_t wasp_mem_size(void);

/* The argument buffer split at NUL bytes (wasp-run packs `-- A B` as
 * "A\0B\0"). Fetched with one hypercall on first use, then cached. Returns
 * argc and, if argv is not NULL, sets *argv to a NULL-terminated array. An
 * empty or unreadable argument gives argc 0. */
int wasp_args(char ***argv);

/* ---- Console output ----------------------------------------------------- */

/* printf to the console. Output is formatted into a stack buffer and sent
 * with one hypercall per call (more only when it exceeds
 * WASP_PRINTF_BUFSIZE). Returns the number of characters, or a negative
 * errno if the console refused. Conversions: see vsnprintf(). */
#define WASP_PRINTF_BUFSIZE 1024
int wasp_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int wasp_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Writes s and a newline, like puts(). Returns >= 0 or a negative errno. */
int wasp_puts(const char *s);

/* ---- Formatting ------------------------------------------------------------
 * Supported: %d %i %u %x %X %p %s %c %%; flags '-' '0' '+' ' ' '#'; width
 * and precision (also '*'); length modifiers hh h l ll z j t. No floating
 * point. Returns the length the full output would have had. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- Memory and strings (the C library's meanings) ------------------------ */

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strcpy(char *dst, const char *src);
char *strncpy(char *dst, const char *src, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);

/* Number parsing as in C: optional space and sign, base 0 accepts 0x/0
 * prefixes; *end (if not NULL) points past the digits. Saturates on overflow. */
unsigned long strtoul(const char *s, char **end, int base);
long strtol(const char *s, char **end, int base);
int atoi(const char *s);

/* -ffreestanding turns off gcc's knowledge of these, so it would call the
 * out-of-line versions even for a four-byte copy. The builtins inline small
 * constant cases and otherwise call the functions above. */
#ifndef WASP_RT_NO_BUILTIN_MACROS
#define memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define memmove(d, s, n) __builtin_memmove((d), (s), (n))
#define memset(d, c, n) __builtin_memset((d), (c), (n))
#define memcmp(a, b, n) __builtin_memcmp((a), (b), (n))
#define strlen(s) __builtin_strlen((s))
#endif

/* ---- Heap ------------------------------------------------------------------
 * Between the end of the image (_end) and the stack reserve below the top of
 * memory (WASP_STACK_RESERVE, or a quarter of memory when it is under
 * 1 MiB). Nothing guards the stack: deeper recursion runs into the heap.
 * Returns NULL when exhausted; never reaches outside that range. Blocks are
 * 16-byte aligned. free(NULL) and free of a foreign pointer are ignored. */
#define WASP_STACK_RESERVE (256u * 1024u)
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);
void free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* WASP_GUEST_H */
