/*
 * format.c: vsnprintf and the console printf built on it.
 *
 * One formatter writes through a small output struct that either truncates
 * (snprintf) or flushes to the console when its buffer fills (printf), so a
 * printf costs one hypercall unless its output is longer than the buffer.
 */
#include "wasp_guest.h"

struct out {
	char *buf;
	size_t cap;   /* bytes buf can hold (snprintf: size - 1, room for the NUL) */
	size_t pos;   /* bytes in buf */
	size_t total; /* bytes produced, kept or not */
	bool console; /* flush to the console when full instead of dropping */
	int64_t err;  /* first console error */
};

/* The console may take part of a write, or none (-EINTR), when a pause or
 * the deadline interrupted a host console nobody was reading
 * (docs/hypercalls.md): the rest is written again, here or after a
 * restore, so nothing is lost or doubled. */
#define CONSOLE_EINTR (-4)

static void flush(struct out *o)
{
	size_t done = 0;

	while (done < o->pos) {
		int64_t r = wasp_console_write(o->buf + done, o->pos - done);

		if (r == CONSOLE_EINTR)
			continue;
		if (r <= 0) {
			if (r < 0 && !o->err)
				o->err = r;
			break;
		}
		done += (size_t)r;
	}
	o->pos = 0;
}

static void put(struct out *o, char c)
{
	if (o->pos == o->cap) {
		if (!o->console) {
			o->total++;
			return;
		}
		flush(o);
	}
	o->buf[o->pos++] = c;
	o->total++;
}

static void put_n(struct out *o, char c, int n)
{
	while (n-- > 0)
		put(o, c);
}

enum {
	F_LEFT = 1,   /* '-' */
	F_ZERO = 2,   /* '0' */
	F_PLUS = 4,   /* '+' */
	F_SPACE = 8,  /* ' ' */
	F_ALT = 16,   /* '#' */
};

/* One integer conversion: sign or 0x prefix, precision zeros, width. */
static void put_int(struct out *o, uint64_t v, bool neg, unsigned base, bool upper, int flags,
		    int width, int prec)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0;
	char sign = 0;
	const char *prefix = "";

	if (neg)
		sign = '-';
	else if (flags & F_PLUS)
		sign = '+';
	else if (flags & F_SPACE)
		sign = ' ';
	if ((flags & F_ALT) && base == 16 && v)
		prefix = upper ? "0X" : "0x";

	/* C: precision 0 with value 0 prints no digits. */
	while (v || (n == 0 && prec != 0)) {
		tmp[n++] = digits[v % base];
		v /= base;
	}
	int zeros = prec > n ? prec - n : 0;
	int len = n + zeros + (sign ? 1 : 0) + (int)strlen(prefix);
	int pad = width > len ? width - len : 0;

	/* '0' pads after the sign; it is ignored with '-' or a precision. */
	if ((flags & F_ZERO) && !(flags & F_LEFT) && prec < 0) {
		zeros += pad;
		pad = 0;
	}
	if (!(flags & F_LEFT))
		put_n(o, ' ', pad);
	if (sign)
		put(o, sign);
	for (const char *p = prefix; *p; p++)
		put(o, *p);
	put_n(o, '0', zeros);
	while (n)
		put(o, tmp[--n]);
	if (flags & F_LEFT)
		put_n(o, ' ', pad);
}

static void put_str(struct out *o, const char *s, int flags, int width, int prec)
{
	size_t n;

	if (!s)
		s = "(null)";
	n = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
	int pad = width > (int)n ? width - (int)n : 0;

	if (!(flags & F_LEFT))
		put_n(o, ' ', pad);
	for (size_t i = 0; i < n; i++)
		put(o, s[i]);
	if (flags & F_LEFT)
		put_n(o, ' ', pad);
}

enum length { L_INT, L_CHAR, L_SHORT, L_LONG, L_LLONG, L_SIZE };

static void format(struct out *o, const char *fmt, va_list ap)
{
	while (*fmt) {
		if (*fmt != '%') {
			put(o, *fmt++);
			continue;
		}
		const char *spec = fmt++;
		int flags = 0, width = 0, prec = -1;
		enum length len = L_INT;

		for (;; fmt++) {
			if (*fmt == '-')
				flags |= F_LEFT;
			else if (*fmt == '0')
				flags |= F_ZERO;
			else if (*fmt == '+')
				flags |= F_PLUS;
			else if (*fmt == ' ')
				flags |= F_SPACE;
			else if (*fmt == '#')
				flags |= F_ALT;
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				flags |= F_LEFT;
				width = -width;
			}
			fmt++;
		} else {
			while (*fmt >= '0' && *fmt <= '9')
				width = width * 10 + (*fmt++ - '0');
		}
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
			}
		}
		switch (*fmt) {
		case 'h':
			len = fmt[1] == 'h' ? L_CHAR : L_SHORT;
			fmt += len == L_CHAR ? 2 : 1;
			break;
		case 'l':
			len = fmt[1] == 'l' ? L_LLONG : L_LONG;
			fmt += len == L_LLONG ? 2 : 1;
			break;
		case 'z':
		case 'j':
		case 't':
			len = L_SIZE; /* all 64-bit here */
			fmt++;
			break;
		}

		char c = *fmt;
		if (c)
			fmt++;
		switch (c) {
		case 'd':
		case 'i': {
			int64_t v;

			if (len == L_INT || len == L_CHAR || len == L_SHORT)
				v = va_arg(ap, int);
			else
				v = va_arg(ap, long long);
			if (len == L_CHAR)
				v = (signed char)v;
			else if (len == L_SHORT)
				v = (short)v;
			put_int(o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0, 10, false, flags,
				width, prec);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v;

			if (len == L_INT || len == L_CHAR || len == L_SHORT)
				v = va_arg(ap, unsigned int);
			else
				v = va_arg(ap, unsigned long long);
			if (len == L_CHAR)
				v = (unsigned char)v;
			else if (len == L_SHORT)
				v = (unsigned short)v;
			put_int(o, v, false, c == 'u' ? 10 : 16, c == 'X', flags & ~(F_PLUS | F_SPACE),
				width, prec);
			break;
		}
		case 'p':
			put_int(o, (uintptr_t)va_arg(ap, void *), false, 16, false, flags | F_ALT,
				width, prec);
			break;
		case 's':
			put_str(o, va_arg(ap, const char *), flags, width, prec);
			break;
		case 'c': {
			char ch = (char)va_arg(ap, int);
			int pad = width > 1 ? width - 1 : 0;

			if (!(flags & F_LEFT))
				put_n(o, ' ', pad);
			put(o, ch);
			if (flags & F_LEFT)
				put_n(o, ' ', pad);
			break;
		}
		case '%':
			put(o, '%');
			break;
		default:
			/* Unknown: print the conversion as written, so it shows. */
			while (spec < fmt)
				put(o, *spec++);
			break;
		}
	}
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {.buf = buf, .cap = size ? size - 1 : 0};

	format(&o, fmt, ap);
	if (size)
		buf[o.pos] = '\0';
	return (int)o.total;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int wasp_vprintf(const char *fmt, va_list ap)
{
	char buf[WASP_PRINTF_BUFSIZE];
	struct out o = {.buf = buf, .cap = sizeof buf, .console = true};

	format(&o, fmt, ap);
	flush(&o);
	return o.err ? (int)o.err : (int)o.total;
}

int wasp_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = wasp_vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int wasp_puts(const char *s)
{
	return wasp_printf("%s\n", s);
}
