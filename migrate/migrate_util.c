/*
 * migrate_util.c: the bounded byte queue between two threads, migration
 * ids, the constant-time token check and the bits of text (percent
 * encoding, flat JSON) that the control socket and HTTP need.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "migrate_internal.h"

/* ---- bounded queue ------------------------------------------------------- */

int wasp_bqueue_init(struct wasp_bqueue *q, size_t cap)
{
	memset(q, 0, sizeof *q);
	if (!(q->buf = malloc(cap)))
		return wasp_fail(-ENOMEM, "out of memory (queue of %zu bytes)", cap);
	q->cap = cap;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void wasp_bqueue_destroy(struct wasp_bqueue *q)
{
	if (!q->buf)
		return;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->buf);
	q->buf = NULL;
}

int wasp_bqueue_put(struct wasp_bqueue *q, const void *buf, size_t len)
{
	const char *p = buf;
	pthread_mutex_lock(&q->lock);
	while (len) {
		if (q->err) {
			int e = q->err;
			pthread_mutex_unlock(&q->lock);
			return e;
		}
		if (q->closed) {
			pthread_mutex_unlock(&q->lock);
			return -EPIPE;
		}
		if (q->len == q->cap) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		size_t tail = (q->head + q->len) % q->cap;
		size_t n = q->cap - q->len;
		if (n > q->cap - tail)
			n = q->cap - tail;
		if (n > len)
			n = len;
		memcpy(q->buf + tail, p, n);
		q->len += n;
		q->in += n;
		p += n;
		len -= n;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void wasp_bqueue_close(struct wasp_bqueue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void wasp_bqueue_fail(struct wasp_bqueue *q, int err, const char *msg)
{
	pthread_mutex_lock(&q->lock);
	if (!q->err) {
		q->err = err < 0 ? err : -EIO;
		snprintf(q->msg, sizeof q->msg, "%s", msg ? msg : strerror(-q->err));
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

static ssize_t take(struct wasp_bqueue *q, void *buf, size_t len)
{
	size_t n = q->len < len ? q->len : len;
	size_t first = q->cap - q->head < n ? q->cap - q->head : n;
	memcpy(buf, q->buf + q->head, first);
	memcpy((char *)buf + first, q->buf, n - first);
	q->head = (q->head + n) % q->cap;
	q->len -= n;
	q->out += n;
	pthread_cond_broadcast(&q->cond);
	return (ssize_t)n;
}

void wasp_deadline_in(struct timespec *dl, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, dl);
	dl->tv_sec += (time_t)(ns / 1000000000ull);
	dl->tv_nsec += (long)(ns % 1000000000ull);
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

ssize_t wasp_bqueue_get(struct wasp_bqueue *q, void *buf, size_t len, uint64_t timeout_ns)
{
	struct timespec dl;
	if (timeout_ns)
		wasp_deadline_in(&dl, timeout_ns);
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->err) {
			int e = q->err;
			pthread_mutex_unlock(&q->lock);
			return e;
		}
		if (q->len) {
			ssize_t n = take(q, buf, len);
			pthread_mutex_unlock(&q->lock);
			return n;
		}
		if (q->closed) {
			q->eof_taken = true;
			pthread_cond_broadcast(&q->cond);
			pthread_mutex_unlock(&q->lock);
			return 0;
		}
		if (timeout_ns) {
			if (pthread_cond_timedwait(&q->cond, &q->lock, &dl) == ETIMEDOUT) {
				pthread_mutex_unlock(&q->lock);
				return -ETIMEDOUT;
			}
		} else {
			pthread_cond_wait(&q->cond, &q->lock);
		}
	}
}

ssize_t wasp_bqueue_try_get(struct wasp_bqueue *q, void *buf, size_t len)
{
	pthread_mutex_lock(&q->lock);
	ssize_t r;
	if (q->err)
		r = q->err;
	else if (q->len)
		r = take(q, buf, len);
	else if (q->closed) {
		q->eof_taken = true;
		r = 0;
	} else
		r = -EAGAIN;
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* ---- ids and tokens ------------------------------------------------------ */

void wasp_migration_id(char out[33])
{
	uint8_t b[16];
	size_t got = 0;
	while (got < sizeof b) {
		ssize_t n = getrandom(b + got, sizeof b - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof b) {
		/* No entropy source at all: unique enough to name a migration. */
		uint64_t t = wasp_now_ns() ^ ((uint64_t)getpid() << 32);
		for (size_t i = got; i < sizeof b; i++, t = t * 6364136223846793005ull + 1)
			b[i] = (uint8_t)(t >> 56);
	}
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

bool wasp_migration_id_valid(const char *id)
{
	if (!id || strlen(id) != 32)
		return false;
	for (const char *p = id; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return false;
	return true;
}

bool wasp_token_equal(const char *expected, const char *given)
{
	size_t n = strlen(expected), m = given ? strlen(given) : 0;
	volatile unsigned char d = n != m;
	/* Every byte of `expected` is looked at whatever `given` holds, so the
	 * time tells nothing but the expected length. */
	for (size_t i = 0; i < n; i++) {
		unsigned char g = i < m ? (unsigned char)given[i] : 0;
		d |= (unsigned char)(expected[i] ^ g);
	}
	return d == 0;
}

/* ---- text ------------------------------------------------------------------ */

void wasp_pct_encode(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || c == '%') {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int wasp_pct_decode(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	while (*s) {
		int c = (unsigned char)*s++;
		if (c == '%') {
			if (hexv(s[0]) < 0 || hexv(s[1]) < 0)
				return -EINVAL;
			c = hexv(s[0]) * 16 + hexv(s[1]);
			s += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= cap)
			return -EINVAL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

void wasp_json_str(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	if (cap < 3) {
		if (cap)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (; *s && o + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

int wasp_json_get(const char *json, const char *key, char *out, size_t cap)
{
	char pat[80];
	snprintf(pat, sizeof pat, "\"%s\"", key);
	const char *p = json;
	while ((p = strstr(p, pat))) {
		p += strlen(pat);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != ':')
			continue;
		p++;
		while (isspace((unsigned char)*p))
			p++;
		size_t o = 0;
		if (*p == '"') {
			for (p++; *p && *p != '"' && o + 1 < cap; p++) {
				if (*p == '\\' && p[1]) {
					p++;
					char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'u' ? '?' : *p;
					if (*p == 'u') {
						for (int i = 0; i < 4 && p[1]; i++)
							p++;
					}
					out[o++] = c;
				} else {
					out[o++] = *p;
				}
			}
		} else {
			while (*p && *p != ',' && *p != '}' && !isspace((unsigned char)*p) && o + 1 < cap)
				out[o++] = *p++;
		}
		out[o] = '\0';
		return 1;
	}
	return 0;
}
