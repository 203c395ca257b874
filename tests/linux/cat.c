/*
 * cat.c: copies stdin to stdout to EOF through stdio and raw reads, then
 * reports the byte count and a checksum on stderr.
 */
#include <stdio.h>
#include <unistd.h>

#include "lx_common.h"

int main(void)
{
	char buf[3000];
	uint64_t h = LX_FNV_INIT;
	unsigned long total = 0, lines = 0;
	/* The first line through stdio, the rest through read(2). */
	int c;
	while ((c = getchar()) != EOF) {
		unsigned char b = (unsigned char)c;
		putchar(c);
		h = lx_fnv(h, &b, 1);
		total++;
		if (c == '\n') {
			lines++;
			break;
		}
	}
	fflush(stdout);
	/* stdio may have read ahead: drain its buffer first. */
	size_t n;
	while (c != EOF && (n = fread(buf, 1, sizeof buf, stdin)) > 0) {
		fwrite(buf, 1, n, stdout);
		h = lx_fnv(h, buf, n);
		total += n;
		for (size_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	fflush(stdout);
	ssize_t r = read(0, buf, sizeof buf);
	fprintf(stderr, "cat: %lu bytes, %lu lines, sum %016llx, read after EOF %zd\n", total, lines,
		(unsigned long long)h, r);
	return 0;
}
