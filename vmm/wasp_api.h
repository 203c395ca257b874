/*
 * wasp_api.h: WASP_API marks what libwasp exports. The library is built
 * with -fvisibility=hidden, so nothing else of it (the parts' internals,
 * vmm_parts.h) is in libwasp.so's symbol table; tests/tools/exports_test.sh
 * checks that the two lists agree.
 */
#ifndef WASP_API_H
#define WASP_API_H

#if defined(__GNUC__) || defined(__clang__)
#define WASP_API __attribute__((visibility("default")))
#else
#define WASP_API
#endif

#endif /* WASP_API_H */
