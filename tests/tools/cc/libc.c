/*
 * libc.c: virtine functions that use the C library (tests/tools/cc_test.sh, case
 * libc). Built twice, by wasp-cc (every call below runs in a virtine, with
 * musl) and by a plain cc (the keyword is empty, every call runs natively,
 * with the host's C library); the two runs must print the same bytes.
 * So only what both C libraries define exactly is printed: integers,
 * strings, and doubles from correctly rounded operations (sqrt, +, *, /).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wasp/virtine.h>

struct report {
	char text[1024];
};

struct samples {
	double v[16];
	unsigned n;
};

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* snprintf, malloc, qsort and sqrt together: n numbers from a seed, on the
 * heap, sorted, summed up in one line. */
virtine int summarize(unsigned seed, unsigned n, struct report *out)
{
	if (n == 0 || n > 4096)
		return -1;
	int *v = malloc(n * sizeof *v);
	if (!v)
		return -2;
	unsigned x = seed;
	for (unsigned i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		v[i] = (int)((x >> 8) % 100000u) - 50000;
	}
	qsort(v, n, sizeof *v, cmp_int);
	double sq = 0;
	long long sum = 0;
	for (unsigned i = 0; i < n; i++) {
		sq += (double)v[i] * (double)v[i];
		sum += v[i];
	}
	int len = snprintf(out->text, sizeof out->text,
			   "n=%u min=%d max=%d median=%d sum=%lld rms=%.17g first=[", n, v[0],
			   v[n - 1], v[n / 2], sum, sqrt(sq / n));
	for (unsigned i = 0; i < n && i < 8 && len < (int)sizeof out->text; i++)
		len += snprintf(out->text + len, sizeof out->text - (size_t)len, "%s%d",
				i ? "," : "", v[i]);
	if (len < (int)sizeof out->text)
		len += snprintf(out->text + len, sizeof out->text - (size_t)len, "]");
	free(v);
	return len;
}

/* String functions and a heap that grows: words split with strtok_r,
 * copied with strdup into an array grown with realloc, sorted, joined. */
virtine int words(const char *in, struct report *out)
{
	char *copy = strdup(in);
	char **w = NULL, *save = NULL;
	size_t n = 0, cap = 0;
	if (!copy)
		return -1;
	for (char *t = strtok_r(copy, " ,.", &save); t; t = strtok_r(NULL, " ,.", &save)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 2;
			char **nw = realloc(w, cap * sizeof *w);
			if (!nw)
				return -2;
			w = nw;
		}
		for (char *c = t; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (!(w[n++] = strdup(t)))
			return -3;
	}
	qsort(w, n, sizeof *w, cmp_str);
	out->text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i && strlen(out->text) + 1 < sizeof out->text)
			strcat(out->text, "+");
		strncat(out->text, w[i], sizeof out->text - strlen(out->text) - 1);
		free(w[i]);
	}
	free(w);
	free(copy);
	const char *q = strstr(out->text, "quick");
	return q ? (int)(q - out->text) : -4;
}

/* <math.h> by value, in and out. */
virtine struct samples roots(struct samples s)
{
	for (unsigned i = 0; i < s.n && i < 16; i++)
		s.v[i] = sqrt(fabs(s.v[i])) + floor(s.v[i] / 3.0) + fmod(s.v[i], 7.0);
	return s;
}

/* Many small allocations: a list built and freed, then a checksum. */
struct node {
	struct node *next;
	long v;
};

virtine long heap_churn(int rounds)
{
	long sum = 0;
	for (int r = 0; r < rounds; r++) {
		struct node *head = NULL;
		for (int i = 0; i < 500; i++) {
			struct node *nd = malloc(sizeof *nd + (size_t)(i % 37));
			if (!nd)
				return -1;
			nd->v = (long)i * (r + 1);
			nd->next = head;
			head = nd;
		}
		while (head) {
			struct node *next = head->next;
			sum += head->v;
			free(head);
			head = next;
		}
	}
	return sum;
}

/* The clock the guest reads is the host's. */
virtine long long now_s(void)
{
	return (long long)time(NULL);
}

/* strtol and friends on a string given in. */
virtine long parse(const char *s)
{
	char *end;
	long a = strtol(s, &end, 0);
	long b = strtol(end, &end, 16);
	return a * 1000 + b + (long)atoi(end);
}

int main(void)
{
	struct report r;
	static const unsigned seeds[] = {1, 42, 4242, 0xdeadbeef};
	static const unsigned sizes[] = {1, 7, 100, 4096};
	for (unsigned i = 0; i < 4; i++) {
		memset(&r, 0, sizeof r);
		int n = summarize(seeds[i], sizes[i], &r);
		printf("summarize(%u, %u) = %d: %s\n", seeds[i], sizes[i], n, r.text);
	}
	memset(&r, 0, sizeof r);
	int q = words("The quick brown fox, jumps over the lazy dog. Pack my box", &r);
	printf("words = %d: %s\n", q, r.text);

	struct samples s = {{0}, 10};
	for (unsigned i = 0; i < s.n; i++)
		s.v[i] = (double)i * 12.75 - 40.5;
	struct samples t = roots(s);
	for (unsigned i = 0; i < t.n; i++)
		printf("roots[%u] = %.17g\n", i, t.v[i]);

	printf("heap_churn(20) = %ld\n", heap_churn(20));
	printf("parse = %ld\n", parse("12 ff 34"));

	long long host = (long long)time(NULL), guest = now_s();
	printf("time %s\n", guest >= host && guest - host < 600 ? "ok" : "WRONG");
	printf("errno %d\n", wasp_virtine_errno());
	return 0;
}
