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
#include "tool_trace.h"
#include "tool_util.h"

static const char usage[] =
	"usage: wasp-inspect [--json] FILE|- [FILE...]\n"
	"       wasp-inspect --trace TRACE|-\n"
	"Describe a wasp checkpoint: header, vCPU registers, memory summary\n"
	"(pages, zero pages, chunk sizes, compression ratio), host state and\n"
	"whether its checksum matches. Memory is not decompressed.\n"
	"Several files are a chain (a full checkpoint, then incremental ones):\n"
	"each is described, then whether each names the one before as parent.\n"
	"\n"
	"  -j, --json   one JSON object instead of text\n"
	"  -t, --trace  summarise a wasp-run --trace file instead: events by\n"
	"               kind, exits by KVM reason, hypercalls by name with\n"
	"               count and host time (total, mean, max)\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit status: 0 every checkpoint is whole and valid (and the chain\n"
	"holds); 1 one is not (the reason is printed); 125 bad arguments or an\n"
	"unreadable file.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"trace", no_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false, trace = false;
	int c;

	tool_name = "wasp-inspect";
	opterr = 0; /* one line of ours instead of getopt\'s two */
	while ((c = getopt_long(argc, argv, "jth", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			trace = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			tool_bad_option(argv);
		}
	}
	if (trace) {
		if (json || optind + 1 != argc)
			tool_die("--trace takes one trace file (or -) and no --json");
		return tool_trace_summary(argv[optind], stdout) < 0 ? 1 : 0;
	}
	if (optind >= argc)
		tool_die("give a checkpoint file, - for stdin, or a chain of files (try --help)");
	int n = argc - optind, bad = 0;
	if (n > 1 && json)
		fputs("[\n", stdout);
	struct wasp_ckpt_info infos[64];
	if (n > 64)
		tool_die("a chain of %d checkpoints; at most 64", n);
	for (int i = 0; i < n; i++) {
		const char *path = argv[optind + i];
		if (n > 1 && !strcmp(path, "-"))
			tool_die("- (stdin) cannot be part of a chain");
		int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
		if (fd < 0)
			tool_die("%s: %s", path, strerror(errno));
		if (n > 1 && !json)
			printf("%s== %s\n", i ? "\n" : "", path);
		struct wasp_source src = wasp_source_fd(&fd);
		int r = wasp_ckpt_inspect(&src, json, stdout);
		if (n > 1 && json)
			fputs(i + 1 < n ? ",\n" : "\n", stdout);
		fflush(stdout);
		if (r < 0) {
			fprintf(stderr, "%s: %s: %s\n", tool_name, path, wasp_last_error());
			bad = 1;
		}
		if (n > 1 && lseek(fd, 0, SEEK_SET) == 0) {
			src = wasp_source_fd(&fd);
			if (wasp_ckpt_header_info(&src, &infos[i]) < 0)
				bad = 1;
		}
		if (fd > 0)
			close(fd);
	}
	if (n > 1 && json)
		fputs("]\n", stdout);
	if (n > 1 && !bad) {
		if (wasp_ckpt_chain_check(infos, (size_t)n) < 0) {
			fprintf(stderr, "%s: %s\n", tool_name, wasp_last_error());
			return 1;
		}
		if (!json)
			printf("\nchain: %d checkpoints, every link names the one before it\n", n);
	}
	return bad;
}
