/*
 * rtcheck: the guest runtime's own self-test (formatter, strings, number
 * parsing, heap, arguments). Needs only console_write and get_arg. Prints
 * each failure and a summary; exits 0 if everything passed.
 * Run with arguments `-- one two` to check argument splitting too.
 */
#include "wasp_guest.h"

static int checks, failures;

static void check(bool ok, const char *what, int line)
{
	checks++;
	if (!ok) {
		failures++;
		wasp_printf("rtcheck: FAIL line %d: %s\n", line, what);
	}
}
#define CHECK(cond) check((cond), #cond, __LINE__)

static void check_fmt(const char *want, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check_fmt(const char *want, int line, const char *fmt, ...)
{
	char buf[128];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	checks++;
	if (strcmp(buf, want) != 0 || n != (int)strlen(want)) {
		failures++;
		wasp_printf("rtcheck: FAIL line %d: format \"%s\" gave \"%s\" (%d), want \"%s\"\n",
			    line, fmt, buf, n, want);
	}
}
#define FMT(want, ...) check_fmt(want, __LINE__, __VA_ARGS__)

static void test_format(void)
{
	FMT("42 -7 0", "%d %i %u", 42, -7, 0u);
	FMT("ff FF 0xff", "%x %X %#x", 255u, 255u, 255u);
	FMT("[   5] [5   ] [00005]", "[%4d] [%-4d] [%05d]", 5, 5, 5);
	FMT("[-0005] [+5] [ 5]", "[%05d] [%+d] [% d]", -5, 5, 5);
	FMT("[  abc] [abc  ] [ab]", "[%5s] [%-5s] [%.2s]", "abc", "abc", "abc");
	const char *volatile null_str = NULL; /* hidden from gcc's format checks */
	FMT("(null) x %", "%s %c %%", null_str, 'x');
	FMT("18446744073709551615", "%llu", ~0ull);
	FMT("-9223372036854775808", "%lld", (long long)(-9223372036854775807ll - 1));
	FMT("ffffffffffffffff", "%lx", ~0ul);
	FMT("123456789012", "%zu", (size_t)123456789012ull);
	FMT("0x8000", "%p", (void *)0x8000);
	FMT("007", "%.3d", 7);
	FMT("[  7]", "[%*d]", 3, 7);
	FMT("-1 255 -2", "%hhd %hhu %hd", (signed char)-1, (unsigned char)255, (short)-2);

	char small[4];
	int n = snprintf(small, sizeof small, "%s", "truncated");
	CHECK(n == 9 && strcmp(small, "tru") == 0);
	CHECK(snprintf(NULL, 0, "%d", 12345) == 5);
}

static void test_strings(void)
{
	char buf[32];

	CHECK(strlen("") == 0 && strlen("abc") == 3);
	CHECK(strcmp("abc", "abd") < 0 && strcmp("b", "a") > 0 && strcmp("x", "x") == 0);
	CHECK(strncmp("abcx", "abcy", 3) == 0 && strncmp("ab", "abc", 3) < 0);
	CHECK(strcmp(strcpy(buf, "hello"), "hello") == 0);
	strncpy(buf, "hi", 5);
	CHECK(buf[0] == 'h' && buf[2] == 0 && buf[4] == 0);
	const char *s = "a/b/c";
	CHECK(strchr(s, '/') == s + 1 && strrchr(s, '/') == s + 3 && !strchr(s, 'z'));
	CHECK(strchr(s, '\0') == s + 5);
	memset(buf, 'x', sizeof buf);
	CHECK(buf[0] == 'x' && buf[31] == 'x');
	memcpy(buf, "0123456789", 10);
	memmove(buf + 2, buf, 8); /* overlapping, upward */
	CHECK(memcmp(buf, "0101234567", 10) == 0);
	memmove(buf, buf + 2, 8); /* overlapping, downward */
	CHECK(memcmp(buf, "01234567", 8) == 0);

	char *end;
	CHECK(strtoul("  123xyz", &end, 10) == 123 && *end == 'x');
	CHECK(strtoul("0x1F", NULL, 0) == 31 && strtoul("017", NULL, 0) == 15);
	CHECK(strtoul("ff", NULL, 16) == 255);
	CHECK(strtol("-42", NULL, 10) == -42 && atoi("+17") == 17);
	CHECK(strtoul("99999999999999999999999", NULL, 10) == ~0ul);
	CHECK(strtoul("junk", &end, 10) == 0 && *end == 'j');
}

#define CHUNK (16u * 1024u)

extern char _end[]; /* end of the image's .bss (virtine.ld) */

static void test_heap(void)
{
	void *ptrs[64];
	uint64_t mem = wasp_mem_size();
	uint64_t stack_reserve = mem >= 4 * WASP_STACK_RESERVE ? WASP_STACK_RESERVE : mem / 4;
	uint64_t heap = mem - stack_reserve - (uintptr_t)_end;

	if (mem < 2 * stack_reserve + (uintptr_t)_end || heap < 512 * 1024) {
		wasp_puts("rtcheck: SKIP heap: memory too small (give it 2 MiB or more)");
		return;
	}

	for (int i = 0; i < 64; i++) {
		ptrs[i] = malloc((size_t)(i * 37 + 1));
		CHECK(ptrs[i] && ((uintptr_t)ptrs[i] & 15) == 0);
		memset(ptrs[i], i, (size_t)(i * 37 + 1));
	}
	for (int i = 0; i < 64; i++) {
		unsigned char *p = ptrs[i];
		CHECK(p[0] == i && p[i * 37] == i);
	}
	for (int i = 0; i < 64; i += 2)
		free(ptrs[i]);
	for (int i = 1; i < 64; i += 2)
		free(ptrs[i]);
	free(NULL);
	free(ptrs[3]); /* double free: ignored */
	int x;
	free(&x);      /* not from malloc: ignored */

	/* After freeing everything, the whole heap is one block again. */
	void *big = malloc(heap / 2);
	CHECK(big != NULL);
	free(big);
	CHECK(malloc(wasp_mem_size()) == NULL);     /* more than exists */
	CHECK(malloc(~(size_t)0) == NULL);          /* overflow */
	CHECK(calloc(~(size_t)0 / 2, 4) == NULL);   /* n * size overflows */

	unsigned char *z = calloc(100, 10);
	CHECK(z && z[0] == 0 && z[999] == 0);
	char *r = malloc(8);
	strcpy(r, "1234567");
	r = realloc(r, 4000);
	CHECK(r && strcmp(r, "1234567") == 0);
	r = realloc(r, 16);
	CHECK(r && strcmp(r, "1234567") == 0);
	free(r);
	free(z);

	/* Exhaustion returns NULL and stays inside the heap. */
	int n = 0;
	void *last = NULL;
	for (void *p; (p = malloc(CHUNK)); n++) {
		CHECK((uintptr_t)p >= (uintptr_t)_end &&
		      (uintptr_t)p + CHUNK <= wasp_mem_size() - stack_reserve);
		*(void **)p = last;
		last = p;
	}
	CHECK(n > 0);
	while (last) {
		void *next = *(void **)last;
		free(last);
		last = next;
	}
	CHECK((big = malloc(heap / 2)) != NULL);
	free(big);
}

static void test_args(void)
{
	char **argv;
	int argc = wasp_args(&argv);

	CHECK(argc >= 0 && argv && argv[argc] == NULL);
	CHECK(wasp_args(NULL) == argc); /* cached */
	for (int i = 0; i < argc; i++)
		wasp_printf("rtcheck: arg %d = \"%s\"\n", i, argv[i]);
}

int main(void)
{
	test_format();
	test_strings();
	test_heap();
	test_args();
	wasp_printf("rtcheck: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
