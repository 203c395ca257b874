/*
 * badopen.c: opens that fail, reported the way programs report them
 * (perror, strerror), then exit(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	puts("badopen: start");
	FILE *f = fopen("does-not-exist.txt", "r");
	if (!f)
		perror("fopen does-not-exist.txt");
	int fd = open("no-such-dir/file", O_RDONLY);
	int e = errno;
	printf("open no-such-dir/file: %d errno %d (%s)\n", fd, e, strerror(e));
	errno = 0;
	fd = open("present.txt/child", O_RDONLY);
	e = errno;
	printf("open through a file: %d (%s)\n", fd, strerror(e));
	errno = 0;
	ssize_t n = read(99, &e, 1);
	e = errno;
	printf("read from fd 99: %zd (%s)\n", n, strerror(e));
	errno = 0;
	n = write(42, "x", 1);
	e = errno;
	printf("write to fd 42: %zd (%s)\n", n, strerror(e));
	errno = 0;
	e = close(77) == 0 ? 0 : errno;
	printf("close fd 77: %s\n", strerror(e));
	fflush(stdout);
	errno = ENOENT;
	perror("final");
	exit(1);
}
