/*
 * limits.c: running out, in a virtine only (natively it would take the
 * host's memory). `limits oom` allocates until malloc and mmap fail: they
 * must fail with ENOMEM and the program must go on; `limits stack`
 * recurses until the stack overflows, which ends the run as a fault (139).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK (1 << 20)

static int oom(void)
{
	void **blocks = calloc(65536, sizeof *blocks);
	if (!blocks)
		return 1;
	size_t n = 0;
	errno = 0;
	while (n < 65536) {
		char *p = malloc(CHUNK);
		if (!p)
			break;
		memset(p, 0x5a, CHUNK); /* touched: the memory is really used */
		blocks[n++] = p;
	}
	int malloc_errno = errno;
	printf("malloc failed before 64 GiB: %s, with ENOMEM: %s, blocks > 0: %s\n",
	       n < 65536 ? "yes" : "no", malloc_errno == ENOMEM ? "yes" : "no", n > 0 ? "yes" : "no");
	errno = 0;
	void *m = mmap(NULL, 64 * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap of 64 MiB more: %s (%s)\n", m == MAP_FAILED ? "failed" : "mapped",
	       m == MAP_FAILED ? strerror(errno) : "-");
	int intact = 1;
	for (size_t i = 0; i < n; i++) {
		intact &= ((char *)blocks[i])[0] == 0x5a && ((char *)blocks[i])[CHUNK - 1] == 0x5a;
		free(blocks[i]);
	}
	printf("blocks intact: %s\n", intact ? "yes" : "no");
	char *p = malloc(CHUNK);
	printf("malloc after freeing: %s\n", p ? "yes" : "no");
	free(p);
	free(blocks);
	puts("limits: oom done");
	return 0;
}

static int depth(int n)
{
	volatile char pad[4096];
	pad[0] = (char)n;
	return n > 100000000 ? pad[0] : depth(n + 1) + pad[0];
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "oom"))
		return oom();
	if (argc > 1 && !strcmp(argv[1], "stack")) {
		puts("limits: recursing");
		fflush(stdout);
		return depth(0) & 1;
	}
	fprintf(stderr, "usage: %s oom|stack\n", argv[0]);
	return 2;
}
