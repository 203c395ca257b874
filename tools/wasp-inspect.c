/*
 * wasp-inspect: describe a checkpoint without restoring it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "tool_util.h"

static const char usage[] =
	"usage: wasp-inspect [--json] FILE|-\n"
	"Describe a wasp checkpoint: header, vCPU registers, memory summary\n"
	"(pages, zero pages, chunk sizes, compression ratio), host state and\n"
	"whether its checksum matches. Memory is not decompressed.\n"
	"\n"
	"  -j, --json   one JSON object instead of text\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit status: 0 the checkpoint is whole and valid; 1 it is not (the\n"
	"reason is printed); 125 bad arguments or an unreadable file.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false;
	int c;

	tool_name = "wasp-inspect";
	opterr = 0; /* one line of ours instead of getopt\'s two */
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			tool_bad_option(argv);
		}
	}
	if (optind != argc - 1)
		tool_die("give exactly one checkpoint file, or - for stdin (try --help)");
	const char *path = argv[optind];
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0)
		tool_die("%s: %s", path, strerror(errno));

	struct wasp_source src = wasp_source_fd(&fd);
	int r = wasp_ckpt_inspect(&src, json, stdout);
	fflush(stdout);
	if (r < 0) {
		fprintf(stderr, "%s: %s: %s\n", tool_name, path, wasp_last_error());
		return 1;
	}
	return 0;
}
