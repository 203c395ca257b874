/*
 * libc_stdio.c: printf and puts inside virtine functions reach the
 * process's stdout (and stderr) in order with the caller's own output
 * (tests/tools/cc_test.sh, case libc_stdio). Built by wasp-cc and by a plain cc;
 * both runs, with stdout and stderr redirected to files, must write the
 * same bytes.
 */
#include <stdio.h>
#include <wasp/virtine.h>

/* A line or two per call, a partial line finished by the next output. */
virtine_allow(console_write) virtine int greet(int i)
{
	printf("guest printf %d\n", i);
	puts("guest puts");
	fputs("guest fputs, no newline; ", stdout);
	putchar('!');
	putchar('\n');
	fprintf(stderr, "guest stderr %d\n", i);
	return 2 * i;
}

/* More than stdio's buffer holds at once: several writes in one call. */
virtine_allow(console_write) virtine int many(int lines)
{
	int n = 0;
	for (int i = 0; i < lines; i++)
		n += printf("line %04d of %d: %s\n", i, lines,
			    "the quick brown fox jumps over the lazy dog");
	return n;
}

int main(void)
{
	printf("host before\n");
	for (int i = 0; i < 3; i++) {
		printf("host calls greet(%d)\n", i);
		int r = greet(i);
		printf("host got %d\n", r);
		fprintf(stderr, "host stderr %d\n", i);
	}
	int n = many(300);
	printf("host got %d bytes\n", n);
	printf("host after\n");
	return 0;
}
