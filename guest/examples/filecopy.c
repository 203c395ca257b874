/*
 * filecopy: copies SRC to DST inside the sandbox with the file hypercalls,
 * through a 64 KiB buffer. Prints "copied N bytes" and exits 0; on any error
 * prints what failed with the negative errno and exits 1.
 */
#include "wasp_guest.h"

#define BUF_SIZE (64u * 1024u)

static uint8_t buf[BUF_SIZE];

static int fail(const char *what, const char *path, int64_t err)
{
	wasp_printf("filecopy: %s %s: %lld (%s)\n", what, path, (long long)err, wasp_errname(err));
	return 1;
}

int main(void)
{
	char **argv;
	struct wasp_stat st;
	uint64_t copied = 0;

	if (wasp_args(&argv) < 2) {
		wasp_puts("usage: filecopy SRC DST (paths inside the sandbox)");
		return 2;
	}
	const char *src = argv[0], *dst = argv[1];

	int in = wasp_open(src, WASP_O_RDONLY, 0);
	if (in < 0)
		return fail("open", src, in);
	int r = wasp_fstat(in, &st);
	if (r < 0)
		return fail("fstat", src, r);
	int out = wasp_open(dst, WASP_O_WRONLY | WASP_O_CREAT | WASP_O_TRUNC, 0644);
	if (out < 0)
		return fail("open", dst, out);

	for (;;) {
		int64_t n = wasp_read(in, buf, sizeof buf);
		if (n < 0)
			return fail("read", src, n);
		if (n == 0)
			break;
		for (int64_t done = 0; done < n;) {
			int64_t w = wasp_write(out, buf + done, (size_t)(n - done));
			if (w < 0)
				return fail("write", dst, w);
			if (w == 0)
				return fail("write", dst, -WASP_EIO);
			done += w;
		}
		copied += (uint64_t)n;
	}
	if (copied != st.size)
		wasp_printf("filecopy: note: %s changed size while copying (%llu, was %llu)\n", src,
			    (unsigned long long)copied, (unsigned long long)st.size);
	if ((r = wasp_close(out)) < 0)
		return fail("close", dst, r);
	wasp_close(in);
	wasp_printf("copied %llu bytes\n", (unsigned long long)copied);
	return 0;
}
