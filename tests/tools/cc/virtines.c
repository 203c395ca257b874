/*
 * virtines.c: virtine functions compiled by wasp-cc and checked against
 * what they must return (tests/tools/cc_test.sh). Every call below runs in a
 * virtine on KVM; main() reports each check and exits non-zero on a miss.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wasp/virtine.h>

#include "cc_check.h"

#include "wasp_guest_console.h"

struct point {
	int x, y;
	double w;
};

/* The original smoke test. */
virtine int square(int x)
{
	return x * x;
}

virtine void square_ref(int *x)
{
	*x = *x * *x;
}

static uint64_t fib_slow(unsigned n)
{
	return n < 2 ? n : fib_slow(n - 1) + fib_slow(n - 2);
}

virtine uint64_t fib(unsigned n)
{
	return fib_slow(n);
}

/* A string in and out: upper-cases s in place, returns its length. */
virtine size_t upcase(char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (s[n] >= 'a' && s[n] <= 'z')
			s[n] = (char)(s[n] - 'a' + 'A');
	return n;
}

/* A fixed buffer out, a const string in. */
virtine int reverse_into(const char *in, char (*out)[64])
{
	size_t n = strlen(in);
	if (n >= sizeof *out)
		return -1;
	for (size_t i = 0; i < n; i++)
		(*out)[i] = in[n - 1 - i];
	(*out)[n] = '\0';
	return (int)n;
}

virtine struct point scale(struct point p, double k)
{
	struct point r = {p.x * 2, p.y * 3, p.w * k};
	return r;
}

/* A const-qualified parameter. */
virtine int cube(const int x)
{
	return x * x * x;
}

virtine float mix(float a, double b, char c, long long d)
{
	return a + (float)b + (float)c + (float)d;
}

/* Allowed to write to the console: it does, and the call completes. */
virtine_allow(console_write) virtine int say(int x)
{
	static const char msg[] = "hello from a virtine\n";
	return (int)guest_console_write(msg, sizeof msg - 1) + x;
}

/* Not allowed: the write is denied and the caller hears of it. */
virtine int chatty(int x)
{
	static const char msg[] = "should not appear\n";
	guest_console_write(msg, sizeof msg - 1);
	return x + 1;
}

virtine int crash(int x)
{
	volatile int *p = (volatile int *)(uintptr_t)(x - x);
	return *p + 7;
}

virtine virtine_timeout_ms(200) int spin(int x)
{
	for (volatile unsigned long i = 0;; i++)
		x += (int)i;
	return x;
}

virtine virtine_mem(8M) int big(int x)
{
	static char page[4 << 20];
	page[sizeof page - 1] = (char)x;
	return page[sizeof page - 1] + 1;
}

/* Bigger than the guest's 64 KiB argument buffer: fetched into its heap. */
struct big {
	int v[40000];
};

virtine long long sum_big(struct big *b)
{
	long long s = 0;
	for (unsigned i = 0; i < sizeof b->v / sizeof *b->v; i++) {
		s += b->v[i];
		b->v[i] = -b->v[i];
	}
	return s;
}

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < 50; i++) {
		int x = (int)(id * 100 + i);
		if (square(x) != x * x || wasp_virtine_errno() != 0)
			return (void *)1;
		uint64_t f = fib(id % 10 + 5);
		if (f != fib_slow(id % 10 + 5))
			return (void *)1;
	}
	return NULL;
}

int main(void)
{
	CHECK(square(3) == 9, "square(3) == 9");
	int v = 7;
	square_ref(&v);
	CHECK(v == 49, "square_ref(&7) == 49 (got %d)", v);
	CHECK(fib(20) == 6765, "fib(20) == 6765");

	char s[] = "hello, virtine";
	size_t n = upcase(s);
	CHECK(n == 14 && !strcmp(s, "HELLO, VIRTINE"), "upcase: %zu '%s'", n, s);
	char out[64] = "unchanged";
	int rn = reverse_into("abc", &out);
	CHECK(rn == 3 && !strcmp(out, "cba"), "reverse_into: %d '%s'", rn, out);

	struct point p = {2, 5, 1.5};
	struct point q = scale(p, 4.0);
	CHECK(q.x == 4 && q.y == 15 && q.w == 6.0, "scale: {%d, %d, %g}", q.x, q.y, q.w);
	CHECK(cube(-3) == -27, "cube(-3) == -27 (const int x)");
	float m = mix(1.5f, 2.25, 3, 1000000LL);
	CHECK(m == 1000006.75f, "mix: %f", (double)m);

	fflush(stdout);
	CHECK(say(1) == 22, "say (console allowed) == 22");
	CHECK(chatty(1) == 0 && wasp_virtine_errno() == -1 /* -EPERM */,
	      "chatty (console denied) fails with -EPERM");
	CHECK(crash(1) == 0 && wasp_virtine_errno() == -14 /* -EFAULT */,
	      "crash (null dereference) fails with -EFAULT");
	CHECK(square(12) == 144 && wasp_virtine_errno() == 0, "square after a crash");
	CHECK(spin(1) == 0 && wasp_virtine_errno() == -110 /* -ETIMEDOUT */,
	      "spin (200 ms limit) fails with -ETIMEDOUT");
	CHECK(big(41) == 42, "big (8M memory) == 42");
	static struct big bg;
	for (int i = 0; i < 40000; i++)
		bg.v[i] = i;
	long long sb = sum_big(&bg);
	CHECK(sb == 40000LL * 39999 / 2 && bg.v[1] == -1 && bg.v[39999] == -39999,
	      "sum_big (156 KiB in and out) == %lld", sb);

	enum { THREADS = 8 };
	pthread_t t[THREADS];
	for (unsigned i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
	int bad = 0;
	for (unsigned i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += r != NULL;
	}
	CHECK(bad == 0, "%d threads x 50 calls of square and fib", THREADS);

	wasp_virtine_shutdown();
	printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
