/* sysloop N: N trivial system calls (getppid), for wasp-bench-linux's
 * syscall row. Static Linux program. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0;
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	return 0;
}
