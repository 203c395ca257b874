/*
 * stdio.c: printf, puts, fputs, fwrite, putchar to stdout and stderr under
 * each buffering mode, a few hundred KiB in all, and raw writes mixed in.
 * Whether stdout is line- or fully buffered depends on what the libc learns
 * from ioctl(TCGETS) and fstat, so the order of the mixed lines is part of
 * what is compared.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lx_common.h"

static char outbuf[4096];

int main(void)
{
	printf("stdio: start %d %s %c %5.2f|%-6s|%06x|%e|%g|%a\n", 42, "str", 'c', 3.14159,
	       "left", 0xbeef, 12345.678, 0.0001, 1.0);
	fflush(stdout);
	/* A raw write between two flushed stdio writes keeps its place. */
	dprintf(1, "dprintf line\n");
	puts("puts line");
	fputs("fputs line\n", stdout);
	putchar('!');
	putchar('\n');
	fwrite("fwrite line\n", 1, 12, stdout);
	fflush(stdout);
	fprintf(stderr, "stderr: unbuffered %d\n", 1);
	fputs("stderr: fputs\n", stderr);
	write(2, "stderr: raw write\n", 18);

	/* Bulk: 6000 numbered lines (~330 KiB) with a running checksum. */
	uint64_t h = LX_FNV_INIT, seed = 0x9e3779b97f4a7c15ull;
	char line[128];
	for (int i = 0; i < 6000; i++) {
		uint64_t r = lx_rand(&seed);
		int n = snprintf(line, sizeof line, "%05d %016llx %-12s %+.6e\n", i,
				 (unsigned long long)r, (i % 3) ? "bulk" : "bulk-three",
				 (double)(r % 1000003) / 7.0);
		h = lx_fnv(h, line, (size_t)n);
		if (i % 2)
			fputs(line, stdout);
		else
			fwrite(line, 1, (size_t)n, stdout);
	}
	printf("bulk checksum %016llx\n", (unsigned long long)h);

	/* Line buffering: each line leaves at its newline, so the raw write
	 * after a partial line comes out before that line's end. */
	fflush(stdout);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("line-buffered part one, ");
	dprintf(1, "[raw in the middle]\n");
	printf("part two\n");
	dprintf(1, "[raw after a full line]\n");

	/* Full buffering with our own buffer: nothing leaves until a flush. */
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	printf("fully buffered A\n");
	dprintf(1, "[raw before the flush]\n");
	printf("fully buffered B\n");
	fflush(stdout);

	/* Unbuffered stdout: every call is a write. */
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("unbuffered ");
	dprintf(1, "[raw]");
	printf(" end\n");

	/* A long line bigger than the buffer, and a line with no newline. */
	setvbuf(stdout, NULL, _IOFBF, 512);
	memset(line, 0, sizeof line);
	for (int i = 0; i < 40; i++)
		fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", stdout);
	putchar('\n');
	fprintf(stderr, "stderr: %d lines of bulk\n", 6000);
	/* stderr given a buffer: its lines now wait for the newline. */
	static char errbuf[256];
	setvbuf(stderr, errbuf, _IOLBF, sizeof errbuf);
	fputs("stderr: line-buffered, ", stderr);
	write(2, "[raw stderr]\n", 13);
	fputs("done\n", stderr);
	printf("stdio: end, no newline");
	return 0;
}
