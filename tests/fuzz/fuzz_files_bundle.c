/*
 * fuzz_files_bundle: the file bundle a receiver takes with a migration
 * (PUT /migrations/ID/files, migrate_files.c), pushed into a real
 * directory in pieces whose sizes come from the input's first byte, as
 * libmicrohttpd hands the body over. Paths must stay beneath the
 * directory: beside it lie a file that must never change and a link
 * inside it that leads out. At most 1 MiB of content is taken.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "migrate_internal.h"

#define SECRET "nothing a bundle brings may change this\n"

static char outer[4096], box[4200], secret[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(outer, sizeof outer, "%s", fuzz_tmpdir("files"));
	snprintf(box, sizeof box, "%s/box", outer);
	snprintf(secret, sizeof secret, "%s/secret.txt", outer);
	FILE *f = fopen(secret, "w");
	if (!f || mkdir(box, 0700) < 0)
		abort();
	fputs(SECRET, f);
	fclose(f);
	return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] + 1;
	data++;
	size--;

	fuzz_empty_dir(box);
	char link[4300];
	snprintf(link, sizeof link, "%s/out", box);
	if (symlink("..", link) < 0)
		abort();
	struct wasp_bundle_reader *r;
	if (fuzz_check_error(wasp_bundle_reader_open(box, 1u << 20, &r), "open") < 0)
		abort();
	int rc = 0;
	for (size_t off = 0; off < size && rc == 0; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		rc = fuzz_check_error(wasp_bundle_reader_push(r, data + off, n), "push");
	}
	if (rc == 0)
		fuzz_check_error(wasp_bundle_reader_finish(r), "finish");
	wasp_bundle_reader_free(r);
	fuzz_check_outside(outer, SECRET, "fuzz_files_bundle");
	return 0;
}
