/*
 * vmm_linux_standin.c: weak stand-ins for vmm_linux.c's user-memory and
 * policy calls, so that vmm_linux_fs.c links on a branch where the
 * personality's core has not landed yet. Removed once it has.
 */
#include "vmm_linux.h"

__attribute__((weak)) const void *wasp_lx_user_r(struct wasp_virtine *v, uint64_t addr, size_t len)
{
	return addr < LX_USER_BASE ? NULL : wasp_virtine_gpa(v, addr, len ? len : 1);
}

__attribute__((weak)) void *wasp_lx_user_w(struct wasp_virtine *v, uint64_t addr, size_t len)
{
	return addr < LX_USER_BASE ? NULL : wasp_virtine_gpa_w(v, addr, len ? len : 1);
}

__attribute__((weak)) int wasp_lx_user_str(struct wasp_virtine *v, uint64_t addr, char *buf,
					   size_t cap)
{
	return addr < LX_USER_BASE ? -EFAULT : wasp_virtine_read_str(v, addr, buf, cap);
}

__attribute__((weak)) bool wasp_lx_allowed(struct wasp_virtine *v, unsigned hc_nr)
{
	return wasp_virtine_allowed(v, hc_nr);
}
