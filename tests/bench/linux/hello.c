/* hello: the static Linux hello world of wasp-bench-linux's start row. */
#include <stdio.h>

int main(void)
{
	puts("hello, world");
	return 0;
}
