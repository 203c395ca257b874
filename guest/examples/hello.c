/*
 * hello: the smallest C virtine. One hypercall (the console write), then
 * main's return value becomes the exit code.
 */
#include "wasp_guest.h"

int main(void)
{
	wasp_puts("Hello from a virtine!");
	return 42;
}
