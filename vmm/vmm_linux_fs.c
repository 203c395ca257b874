/*
 * vmm_linux_fs.c: placeholder until the descriptor and path calls land:
 * stdout and stderr only.
 */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "vmm_linux.h"

int64_t wasp_lx_sys_read(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_write(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[0] != 1 && a[0] != 2)
		return -EBADF;
	const void *p = wasp_lx_user_r(v, a[1], a[2]);
	if (!p)
		return -EFAULT;
	ssize_t n = write(a[0] == 1 ? v->cfg.console_fd : v->cfg.stderr_fd, p, a[2]);
	return n < 0 ? -errno : n;
}

int64_t wasp_lx_sys_open(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_close(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_stat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fstat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_lstat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_poll(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_lseek(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_ioctl(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOTTY;
}

int64_t wasp_lx_sys_pread64(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_pwrite64(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_readv(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_writev(struct wasp_virtine *v, const uint64_t a[6])
{
	if (a[2] > 1024)
		return -EINVAL;
	const uint64_t *iov = wasp_lx_user_r(v, a[1], a[2] * 16);
	if (!iov)
		return -EFAULT;
	int64_t total = 0;
	for (uint64_t i = 0; i < a[2]; i++) {
		const uint64_t b[6] = {a[0], iov[2 * i], iov[2 * i + 1]};
		int64_t n = wasp_lx_sys_write(v, b);
		if (n < 0)
			return total ? total : n;
		total += n;
	}
	return total;
}

int64_t wasp_lx_sys_access(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_dup(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_dup2(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fcntl(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_flock(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fsync(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fdatasync(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_truncate(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_ftruncate(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_getcwd(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_chdir(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fchdir(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_rename(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_mkdir(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_rmdir(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_creat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_unlink(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_readlink(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_chmod(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fchmod(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_umask(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_getdents64(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fadvise64(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_openat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_mkdirat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_newfstatat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_unlinkat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_renameat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_readlinkat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fchmodat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_faccessat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_ppoll(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_utimensat(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_fallocate(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_dup3(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_preadv(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_pwritev(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_renameat2(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_statx(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_openat2(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}

int64_t wasp_lx_sys_faccessat2(struct wasp_virtine *v, const uint64_t a[6])
{
	(void)v, (void)a;
	return -ENOSYS;
}
