/*
 * sse: SSE state is usable and survives exits. Sums 1/k^2 for k = 1..100000
 * two lanes at a time in xmm registers (6 * sum approaches pi^2), then checks
 * that a value parked in xmm7 is unchanged across a hypercall. Prints the
 * result, exits 0 if both are right.
 */
#include "wasp_guest.h"

typedef double v2df __attribute__((vector_size(16)));

#define TERMS 100000

int main(void)
{
	v2df acc = {0.0, 0.0}, k = {1.0, 2.0};
	const v2df two = {2.0, 2.0}, one = {1.0, 1.0};

	for (int i = 0; i < TERMS / 2; i++) {
		acc += one / (k * k);
		k += two;
	}
	double pi2 = 6.0 * (acc[0] + acc[1]);
	long long micro = (long long)(pi2 * 1e6 + 0.5);
	/* 6 * sum to 1e5 is pi^2 - 6e-5: 9.869544 */
	bool sum_ok = micro == 9869544;

	/* xmm7 across an exit: the host must save and restore guest FPU state. */
	uint64_t in = 0x400921fb54442d18ull; /* pi */
	uint64_t out, nr = WASP_HC_CLOCK;
	__asm__ volatile("movq %[in], %%xmm7\n\t"
			 "outb %%al, %[port]\n\t"
			 "movq %%xmm7, %[out]"
			 : [out] "=r"(out), "+a"(nr)
			 : [in] "r"(in), [port] "i"(WASP_PORT_HYPERCALL), "D"(WASP_CLOCK_MONOTONIC)
			 : "xmm7", "memory");
	bool xmm_ok = out == in;

	wasp_printf("sse: 6 * sum(1/k^2, k <= %d) = %lld.%06lld %s\n", TERMS, micro / 1000000,
		    micro % 1000000, sum_ok ? "ok" : "FAIL (expected 9.869544)");
	wasp_printf("sse: xmm7 across a hypercall: 0x%016llx %s\n", (unsigned long long)out,
		    xmm_ok ? "ok" : "FAIL");
	return sum_ok && xmm_ok ? 0 : 1;
}
