/*
 * escape: paths that try to leave the sandbox directory must fail; a plain
 * path inside it must work. Exits 0 only if every open behaved.
 *
 * The harness prepares, for sandbox directory D:
 *   D/inside.txt          a readable file (its first line is printed)
 *   D/sub/                a directory, so "sub/../../x" is not just ENOENT
 *   D/../outside.txt      a file beside the sandbox
 *   D/link_out            a symlink to the outside file
 *   D/link_dir            a symlink to the directory containing D
 * and afterwards may check that D/../escape_created.txt was not created.
 * Run with --allow=all (or at least console_write,open,read,close).
 */
#include "wasp_guest.h"

static int failures;

static void must_fail(const char *path, int flags)
{
	int fd = wasp_open(path, flags, 0644);
	bool ok = fd < 0;

	if (!ok) {
		failures++;
		wasp_close(fd);
	}
	wasp_printf("escape: open(\"%s\", 0x%x) -> %d %s %s\n", path, flags, fd,
		    fd < 0 ? wasp_errname(fd) : "(opened)", ok ? "ok" : "FAIL: escaped the sandbox");
}

int main(void)
{
	static const char *const escapes[] = {
		"../outside.txt",
		"/etc/passwd",
		"sub/../../outside.txt",
		"./../outside.txt",
		"sub/../sub/../../outside.txt",
		"link_out",
		"link_dir/outside.txt",
		"/",
		"..",
	};

	for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++)
		must_fail(escapes[i], WASP_O_RDONLY);
	/* Creating or truncating outside must fail as well. */
	must_fail("../escape_created.txt", WASP_O_WRONLY | WASP_O_CREAT);
	must_fail("link_out", WASP_O_WRONLY | WASP_O_TRUNC);

	int fd = wasp_open("inside.txt", WASP_O_RDONLY, 0);
	if (fd < 0) {
		failures++;
		wasp_printf("escape: open(\"inside.txt\") -> %d %s FAIL: should open\n", fd,
			    wasp_errname(fd));
	} else {
		char line[128];
		int64_t n = wasp_read(fd, line, sizeof line - 1);

		if (n < 0) {
			failures++;
			wasp_printf("escape: read inside.txt -> %lld %s FAIL\n", (long long)n,
				    wasp_errname(n));
		} else {
			line[n] = '\0';
			char *nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			wasp_printf("escape: open(\"inside.txt\") -> %d ok, reads \"%s\"\n", fd, line);
		}
		wasp_close(fd);
	}
	wasp_printf("escape: %s\n", failures ? "FAILED" : "all as expected");
	return failures ? 1 : 0;
}
