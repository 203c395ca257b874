/*
 * counter.c: a static Linux program that works for a while and shows its
 * progress (tests/linux/linux_ckpt_test.sh): N rounds of hashing, each printing
 * a line to stdout and appending one to log.txt in its directory, with
 * heap (brk and mmap) state that grows and shrinks, and a short sleep
 * every 16 rounds. Its output is the same whenever it is stopped and
 * continued. `counter N` runs N rounds (default 400).
 *
 * Two gates make the tests independent of speed: after rounds 20 and 200
 * it reads one byte of stdin (any byte; end of file also opens a gate).
 * A test holds the program at a gate while it triggers, so the program
 * cannot finish before the checkpoint or the migration happens, however
 * fast the host; a restore given two bytes passes whichever gates are
 * still ahead of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

unsigned long rounds_done; /* --checkpoint-at target below */

__attribute__((noinline)) void round_done(int i)
{
	rounds_done = (unsigned long)i + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 400;
	unsigned long h = 1469598103934665603ul;
	FILE *log = fopen("log.txt", "a");
	if (!log) {
		perror("log.txt");
		return 1;
	}
	char *keep[8] = {0};
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < 200000; j++)
			h = (h ^ (unsigned)(i * j + 1)) * 1099511628211ul;
		size_t sz = (size_t)((h >> 7) % (512 << 10)) + 1;
		free(keep[i % 8]);
		keep[i % 8] = malloc(sz);
		memset(keep[i % 8], (int)(h & 0xff), sz);
		printf("%d %016lx %zu\n", i, h, sz);
		fflush(stdout);
		fprintf(log, "round %d %lx\n", i, h & 0xffff);
		fflush(log);
		if (i % 16 == 15) {
			struct timespec ts = {0, 2000000};
			nanosleep(&ts, NULL);
		}
		round_done(i);
		if (i == 19 || i == 199) {
			char c;
			if (read(0, &c, 1) < 0)
				perror("stdin");
		}
	}
	fclose(log);
	for (int i = 0; i < 8; i++)
		free(keep[i]);
	printf("done %016lx\n", h);
	return 0;
}
