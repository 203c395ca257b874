/*
 * loop: spins forever after one line, for the host's timeout. Never exits.
 */
#include "wasp_guest.h"

int main(void)
{
	wasp_puts("loop: spinning forever");
	for (;;)
		;
}
