/*
 * migrate_auth.c: the receiver's answer to token guessing. Each address
 * (an IPv4 address, an IPv6 /64: one host's share of a network) may fail
 * a few times for free; then its requests are looked at one per
 * WASP_AUTH_INTERVAL_NS, in turn, each waiting for its turn before its
 * token is even compared, and one whose turn is more than
 * WASP_AUTH_MAX_WAIT_NS away is refused (429) without a look. So guesses
 * from one address go at one a second however many connections carry
 * them, a wrong guess learns nothing sooner, and a source elsewhere is
 * not held up at all; one at the same address waits its turn (at most
 * WASP_AUTH_MAX_WAIT_NS) and a right token clears the address.
 *
 * The failures are logged, but at most WASP_AUTH_LOG_BURST lines at once
 * and one per WASP_AUTH_LOG_EVERY_NS after that, with the count of those
 * left out, so a flood cannot fill the log. Limits in docs/migration.md.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "migrate_internal.h"

#define SLOTS 256 /* addresses remembered; the oldest failure goes first */

struct akey {
	uint8_t fam; /* 0: empty slot */
	uint8_t b[8];
};

struct aent {
	struct akey k;
	unsigned fails;
	uint64_t last_fail_ns;
	uint64_t next_ns; /* when the next request of this address is looked at */
};

struct wasp_auth_limit {
	pthread_mutex_t lock;
	unsigned free_failures;
	struct aent e[SLOTS];
	uint64_t log_credit_ns, log_t_ns; /* a token bucket, in time */
	unsigned long unlogged;
};

static struct akey key_of(const struct sockaddr *sa)
{
	struct akey k;
	memset(&k, 0, sizeof k);
	if (sa && sa->sa_family == AF_INET) {
		k.fam = 4;
		memcpy(k.b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			k.fam = 4;
			memcpy(k.b, a->s6_addr + 12, 4);
		} else {
			k.fam = 6;
			memcpy(k.b, a->s6_addr, 8); /* the /64 */
		}
	} else {
		k.fam = 1; /* unknown: all such peers share one entry */
	}
	return k;
}

/* The address's entry (lock held); NULL when it has none. A failure
 * older than WASP_AUTH_FORGET_NS is forgotten. */
static struct aent *find(struct wasp_auth_limit *a, const struct akey *k, uint64_t now)
{
	for (int i = 0; i < SLOTS; i++) {
		struct aent *e = &a->e[i];
		if (e->k.fam != k->fam || memcmp(e->k.b, k->b, sizeof k->b))
			continue;
		if (now - e->last_fail_ns > WASP_AUTH_FORGET_NS) {
			memset(e, 0, sizeof *e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

struct wasp_auth_limit *wasp_auth_limit_create(unsigned free_failures)
{
	struct wasp_auth_limit *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	a->free_failures = free_failures ? free_failures : WASP_AUTH_FREE_FAILURES;
	a->log_credit_ns = WASP_AUTH_LOG_BURST * WASP_AUTH_LOG_EVERY_NS;
	return a;
}

void wasp_auth_limit_free(struct wasp_auth_limit *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int64_t wasp_auth_limit_admit(struct wasp_auth_limit *a, const struct sockaddr *sa, uint64_t now,
			      uint64_t *retry_ns)
{
	struct akey k = key_of(sa);
	int64_t wait = 0;
	pthread_mutex_lock(&a->lock);
	struct aent *e = find(a, &k, now);
	if (e && e->fails >= a->free_failures) {
		uint64_t turn = e->next_ns > now ? e->next_ns : now;
		if (turn - now > WASP_AUTH_MAX_WAIT_NS) {
			*retry_ns = turn - now;
			wait = -1;
		} else {
			e->next_ns = turn + WASP_AUTH_INTERVAL_NS;
			wait = (int64_t)(turn - now);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return wait;
}

void wasp_auth_limit_ok(struct wasp_auth_limit *a, const struct sockaddr *sa)
{
	struct akey k = key_of(sa);
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < SLOTS; i++)
		if (a->e[i].k.fam == k.fam && !memcmp(a->e[i].k.b, k.b, sizeof k.b))
			memset(&a->e[i], 0, sizeof a->e[i]);
	pthread_mutex_unlock(&a->lock);
}

static bool log_ok(struct wasp_auth_limit *a, uint64_t now, unsigned long *unlogged)
{
	const uint64_t cap = WASP_AUTH_LOG_BURST * WASP_AUTH_LOG_EVERY_NS;
	uint64_t add = now > a->log_t_ns ? now - a->log_t_ns : 0;
	a->log_t_ns = now;
	a->log_credit_ns = cap - a->log_credit_ns < add ? cap : a->log_credit_ns + add;
	if (a->log_credit_ns < WASP_AUTH_LOG_EVERY_NS) {
		a->unlogged++;
		return false;
	}
	a->log_credit_ns -= WASP_AUTH_LOG_EVERY_NS;
	*unlogged = a->unlogged;
	a->unlogged = 0;
	return true;
}

bool wasp_auth_limit_failed(struct wasp_auth_limit *a, const struct sockaddr *sa, uint64_t now,
			    unsigned long *unlogged)
{
	struct akey k = key_of(sa);
	pthread_mutex_lock(&a->lock);
	struct aent *e = find(a, &k, now);
	if (!e) {
		/* A free slot, or the one whose last failure is oldest. */
		for (int i = 0; i < SLOTS; i++)
			if (!e || !a->e[i].k.fam ||
			    (e->k.fam && a->e[i].last_fail_ns < e->last_fail_ns))
				e = &a->e[i];
		memset(e, 0, sizeof *e);
		e->k = k;
	}
	e->fails++;
	e->last_fail_ns = now;
	if (e->fails >= a->free_failures && e->next_ns < now + WASP_AUTH_INTERVAL_NS)
		e->next_ns = now + WASP_AUTH_INTERVAL_NS;
	bool log = log_ok(a, now, unlogged);
	pthread_mutex_unlock(&a->lock);
	return log;
}

bool wasp_auth_limit_log(struct wasp_auth_limit *a, uint64_t now, unsigned long *unlogged)
{
	pthread_mutex_lock(&a->lock);
	bool log = log_ok(a, now, unlogged);
	pthread_mutex_unlock(&a->lock);
	return log;
}
