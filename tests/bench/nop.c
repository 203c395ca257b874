/*
 * nop: the smallest C virtine, for wasp-bench-core's boot-by-mode rows
 * (Table 1 of the Wasp paper): it returns at once, so a run measures the way
 * into main() and out again. Loaded with WASP_MODE_LONG the host enters it in
 * 64-bit mode directly; with WASP_MODE_REAL its boot stub climbs from real
 * mode through protected mode to long mode first.
 */
#include "wasp_guest.h"

int main(void)
{
	return 0;
}
