/*
 * rt.h: what the runtime's own files share; not for virtines (they include
 * wasp_guest.h).
 */
#ifndef WASP_RT_H
#define WASP_RT_H

#include <stdint.h>

/* Called once by _start64 (boot.asm) before main, with the memory size the
 * host passed in rdi. Must not make hypercalls: start latency. */
void wasp_rt_init(uint64_t mem_size);

/* First byte after .bss, page aligned (virtine.ld). */
extern char _end[];

#endif /* WASP_RT_H */
