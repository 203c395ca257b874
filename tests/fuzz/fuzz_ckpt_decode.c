/*
 * fuzz_ckpt_decode: a checkpoint from a buffer, decoded the way a restore
 * reads it (stream reader, chunk checks, zstd into guest-sized memory,
 * vCPU record conversion) without KVM, then given to the inspector
 * (text and JSON) and the header reader. Fast: this is where the decoder
 * gets most of its executions. fuzz_ckpt_restore takes the same bytes all
 * the way into a real virtine.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "ckpt_stream.h"
#include "fuzz.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wasp_buffer_source b = {.buf = data, .len = size};
	struct wasp_source src = wasp_source_buffer(&b);
	struct fuzz_decoded d;
	fuzz_decode(&src, &d, false);

	for (int json = 0; json < 2; json++) {
		b = (struct wasp_buffer_source){.buf = data, .len = size};
		int r = fuzz_check_error(wasp_ckpt_inspect(&src, json, devnull), "inspect");
		/* The inspector and the decoder must agree on whether it is whole
		 * (the decoder may also refuse what only a restore checks). */
		if (r < 0 && d.r == 0) {
			fprintf(stderr, "fuzz: inspect refused what the decoder took: %s\n",
				wasp_last_error());
			abort();
		}
	}
	struct wasp_ckpt_info info;
	b = (struct wasp_buffer_source){.buf = data, .len = size};
	fuzz_check_error(wasp_ckpt_header_info(&src, &info), "header_info");
	return 0;
}
