/*
 * denied: run with open NOT allowed (e.g. --allow=console_write). The open
 * must come back -EPERM; the console write (allowed) reports it. Exits 0
 * if open returned -EPERM, 1 otherwise.
 */
#include "wasp_guest.h"

int main(void)
{
	int fd = wasp_open("denied.txt", WASP_O_RDONLY, 0);
	bool ok = fd == -WASP_EPERM;

	wasp_printf("denied: open -> %d %s %s\n", fd, fd < 0 ? wasp_errname(fd) : "(opened)",
		    ok ? "ok" : "FAIL: expected -EPERM");
	return ok ? 0 : 1;
}
