/*
 * flood: creates "started" in its sandbox directory (when it has one and
 * may open files), then prints "line N\n" for N in 0 .. argv[0]-1 (default
 * 20000, ~230 KB, several times a pipe's capacity) and exits 0. A console
 * nobody reads blocks it on its first line past the pipe's capacity: for
 * the tests that --timeout and a checkpoint still end or stop it, and that
 * a restore prints exactly the lines not yet written (cli_test.sh
 * console_blocked_*).
 */
#include "wasp_guest.h"

int main(void)
{
	char **argv;
	unsigned long lines = wasp_args(&argv) > 0 ? strtoul(argv[0], NULL, 10) : 20000;
	int fd = wasp_open("started", WASP_O_WRONLY | WASP_O_CREAT, 0600);
	if (fd >= 0)
		wasp_close(fd);
	for (unsigned long i = 0; i < lines; i++)
		wasp_printf("line %lu\n", i);
	return 0;
}
