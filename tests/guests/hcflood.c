/*
 * hcflood: 10000 clock hypercalls back to back; every answer must be a
 * non-negative, non-decreasing monotonic time. Prints the count and the mean
 * round trip, exits 0 if all were good.
 */
#include "wasp_guest.h"

#define CALLS 10000

int main(void)
{
	int64_t first = wasp_clock_ns(WASP_CLOCK_MONOTONIC), prev = first;
	int bad = 0;

	for (int i = 1; i < CALLS; i++) {
		int64_t t = wasp_clock_ns(WASP_CLOCK_MONOTONIC);

		if (t < 0 || t < prev) {
			if (bad++ < 5)
				wasp_printf("hcflood: call %d: %lld after %lld\n", i, (long long)t,
					    (long long)prev);
		} else {
			prev = t;
		}
	}
	wasp_printf("hcflood: %d clock calls, %d bad, %lld ns per call\n", CALLS, bad,
		    (long long)((prev - first) / (CALLS - 1)));
	return first >= 0 && bad == 0 ? 0 : 1;
}
