/* The smoke test of the original Wasp: one keyword, one virtine per call. */
#include <stdio.h>
#include <wasp/virtine.h>

virtine int square(int x)
{
	return x * x;
}

int main(void)
{
	printf("%d\n", square(3));
	return 0;
}
