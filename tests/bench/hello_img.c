/* hello_img: the freestanding C hello image wasp-bench-linux compares a
 * static Linux hello world with (the linux_start row). */
#include "wasp_guest.h"

int main(void)
{
	static const char msg[] = "hello, world\n";
	wasp_console_write(msg, sizeof msg - 1);
	return 0;
}
