/*
 * argret: a function-style virtine. Reads its argument with wasp_get_arg and
 * hands back its bytes reversed with wasp_set_ret. One trailing NUL (what
 * wasp-run's `-- ARG` packing adds) is not part of the value: "abc\0" comes
 * back as "cba". Prints what it did, exits 0 (1 if a hypercall failed).
 */
#include "wasp_guest.h"

static char arg[4096], ret[4096];

int main(void)
{
	int64_t len = wasp_get_arg(arg, sizeof arg);

	if (len < 0) {
		wasp_printf("argret: get_arg -> %lld %s\n", (long long)len, wasp_errname(len));
		return 1;
	}
	if (len > (int64_t)sizeof arg) {
		wasp_printf("argret: argument of %lld bytes; using the first %zu\n", (long long)len,
			    sizeof arg);
		len = sizeof arg;
	}
	if (len > 0 && arg[len - 1] == '\0')
		len--;
	for (int64_t i = 0; i < len; i++)
		ret[i] = arg[len - 1 - i];

	int r = wasp_set_ret(ret, (size_t)len);
	if (r < 0) {
		wasp_printf("argret: set_ret -> %d %s\n", r, wasp_errname(r));
		return 1;
	}
	wasp_printf("argret: %lld bytes reversed: \"%.*s\"\n", (long long)len, (int)len, ret);
	return 0;
}
