/*
 * string.c: the memory and string functions gcc and virtines expect.
 *
 * The bulk copies use `rep movsb`/`rep stosb`: guest code runs natively in
 * ring 3, and on CPUs with ERMS/FSRM these are the fastest simple loops.
 */
#define WASP_RT_NO_BUILTIN_MACROS
#include "wasp_guest.h"

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	/* Overlap with dst above src: copy from the end down. */
	while (n--)
		d[n] = s[n];
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	const char *p = s;

	while (*p)
		p++;
	return (size_t)(p - s);
}

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			break;
	}
	return 0;
}

char *strcpy(char *dst, const char *src)
{
	char *d = dst;

	while ((*d++ = *src++))
		;
	return dst;
}

char *strncpy(char *dst, const char *src, size_t n)
{
	size_t i = 0;

	for (; i < n && src[i]; i++)
		dst[i] = src[i];
	for (; i < n; i++)
		dst[i] = '\0';
	return dst;
}

char *strchr(const char *s, int c)
{
	for (;; s++) {
		if (*s == (char)c)
			return (char *)s;
		if (!*s)
			return NULL;
	}
}

char *strrchr(const char *s, int c)
{
	const char *last = NULL;

	for (;; s++) {
		if (*s == (char)c)
			last = s;
		if (!*s)
			return (char *)last;
	}
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/* Shared by strtoul and strtol: magnitude in *out, sign in *neg. */
static const char *parse_ulong(const char *s, int base, unsigned long *out, bool *neg,
			       bool *overflow)
{
	unsigned long v = 0;
	const char *start;

	*neg = false;
	*overflow = false;
	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	if (*s == '+' || *s == '-')
		*neg = *s++ == '-';
	if ((base == 0 || base == 16) && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') &&
	    digit_value(s[2]) < 16) {
		s += 2;
		base = 16;
	} else if (base == 0) {
		base = s[0] == '0' ? 8 : 10;
	}
	start = s;
	for (int d; (d = digit_value(*s)) < base; s++) {
		if (v > (~0ul - (unsigned long)d) / (unsigned long)base)
			*overflow = true;
		else
			v = v * (unsigned long)base + (unsigned long)d;
	}
	*out = v;
	return s == start ? NULL : s;
}

unsigned long strtoul(const char *s, char **end, int base)
{
	unsigned long v;
	bool neg, overflow;
	const char *e = parse_ulong(s, base, &v, &neg, &overflow);

	if (end)
		*end = (char *)(e ? e : s);
	if (!e)
		return 0;
	if (overflow)
		return ~0ul;
	return neg ? -v : v;
}

long strtol(const char *s, char **end, int base)
{
	unsigned long v;
	bool neg, overflow;
	const char *e = parse_ulong(s, base, &v, &neg, &overflow);
	const unsigned long max = ~0ul >> 1;

	if (end)
		*end = (char *)(e ? e : s);
	if (!e)
		return 0;
	if (neg)
		return overflow || v > max + 1 ? (long)-max - 1 : (long)(0 - v);
	return overflow || v > max ? (long)max : (long)v;
}

int atoi(const char *s)
{
	return (int)strtol(s, NULL, 10);
}

const char *wasp_errname(int64_t err)
{
	static const char *const names[] = {
		[WASP_EPERM] = "EPERM",	    [WASP_ENOENT] = "ENOENT",
		[WASP_EIO] = "EIO",	    [WASP_E2BIG] = "E2BIG",
		[WASP_EBADF] = "EBADF",	    [WASP_ENOMEM] = "ENOMEM",
		[WASP_EACCES] = "EACCES",   [WASP_EFAULT] = "EFAULT",
		[WASP_EEXIST] = "EEXIST",   [WASP_EXDEV] = "EXDEV",
		[WASP_ENOTDIR] = "ENOTDIR", [WASP_EISDIR] = "EISDIR",
		[WASP_EINVAL] = "EINVAL",   [WASP_EMFILE] = "EMFILE",
		[WASP_EFBIG] = "EFBIG",	    [WASP_ENOSPC] = "ENOSPC", [WASP_EDQUOT] = "EDQUOT",
		[WASP_ENAMETOOLONG] = "ENAMETOOLONG",
		[WASP_ENOSYS] = "ENOSYS",   [WASP_ELOOP] = "ELOOP",
	};
	uint64_t e = err < 0 ? (uint64_t)-err : (uint64_t)err;

	if (e < sizeof names / sizeof names[0] && names[e])
		return names[e];
	return "E?";
}
