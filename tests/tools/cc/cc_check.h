/*
 * cc_check.h: the check the wasp-cc test programs print their results with
 * (tests/tools/cc_test.sh counts the FAIL lines): each line also shows what
 * wasp_virtine_errno() says of the last call of a virtine function.
 */
#ifndef CC_CHECK_H
#define CC_CHECK_H

#include <stdio.h>
#include <wasp/virtine.h>

static int failures;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (cond) {                                                                \
			printf("ok: " __VA_ARGS__);                                        \
		} else {                                                                   \
			printf("FAIL: " __VA_ARGS__);                                      \
			failures++;                                                        \
		}                                                                          \
		printf(" [errno %d %s]\n", wasp_virtine_errno(), wasp_virtine_error());   \
	} while (0)

#endif /* CC_CHECK_H */
