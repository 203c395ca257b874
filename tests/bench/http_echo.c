/*
 * http_echo: the request handler of wasp-bench-http as a virtine.
 *
 * A pool (docs/pool.md) captures it at its snapshot hypercall, which names
 * the argument buffer, so each call starts right there with the request
 * body already in `arg` and costs one exit: the set_ret that hands the
 * answer back (http_echo.h says what it is) and, in a pool, ends the call.
 * Outside a pool (wasp-run http_echo.bin with an argument) the snapshot
 * hypercall returns 0, the body comes from get_arg, and the answer is also
 * printed.
 */
#include "wasp_guest.h"

#include "http_echo.h"

static char arg[HTTP_ECHO_MAX_IN];
static char out[HTTP_ECHO_MAX_OUT];

int main(void)
{
	int64_t len = wasp_hypercall(WASP_HC_SNAPSHOT, (uintptr_t)arg, sizeof arg,
				     WASP_SNAPSHOT_ARG, 0, 0, 0);
	if (len <= 0)
		len = wasp_get_arg(arg, sizeof arg);
	/* The host never sends more (it answers 413); a longer argument was
	 * cut to fit, and answering for a part would be a wrong answer. */
	if (len < 0 || (uint64_t)len > sizeof arg)
		return 2;
	size_t n = http_echo_compute(arg, (size_t)len, out);
	wasp_set_ret(out, n);
	wasp_console_write(out, n);
	wasp_console_write("\n", 1);
	return 0;
}
