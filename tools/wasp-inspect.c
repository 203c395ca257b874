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
#include "tool_ckpt.h"
#include "tool_trace.h"
#include "tool_util.h"

static const char usage[] =
	"usage: wasp-inspect [--json] FILE|-|URL|s3://BUCKET/KEY [...]\n"
	"       wasp-inspect --trace TRACE|-\n"
	"Describe a wasp checkpoint: header, vCPU registers, memory summary\n"
	"(pages, zero pages, chunk sizes, compression ratio), host state and\n"
	"whether its checksum matches. Memory is not decompressed.\n"
	"Several files are a chain (a full checkpoint, then incremental ones):\n"
	"each is described, then whether each names the one before as parent.\n"
	"\n"
	"  -j, --json   one JSON object instead of text\n"
	"      --s3-endpoint URL\n"
	"               s3://: the server (http[s]://HOST[:PORT]); else\n"
	"               AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's\n"
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
		{"s3-endpoint", required_argument, NULL, 'E'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false, trace = false;
	const char *s3_endpoint = NULL;
	int c;

	tool_name = "wasp-inspect";
	opterr = 0; /* one line of ours instead of getopt\'s two */
	while ((c = getopt_long(argc, argv, "jthE:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			trace = true;
			break;
		case 'E':
			s3_endpoint = optarg;
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
	struct wasp_xfer_opts xo;
	wasp_xfer_opts_init(&xo);
	xo.s3_endpoint = s3_endpoint;
	if (n > 64)
		tool_die("a chain of %d checkpoints; at most 64", n);
	for (int i = 0; i < n; i++) {
		const char *path = argv[optind + i];
		if (n > 1 && !strcmp(path, "-"))
			tool_die("- (stdin) cannot be part of a chain");
		struct tool_src in;
		char err[1024];
		if (tool_src_open(&in, path, &xo, err, sizeof err) < 0)
			tool_die("%s", err);
		if (n > 1 && !json)
			printf("%s== %s\n", i ? "\n" : "", path);
		int r = wasp_ckpt_inspect(&in.src, json, stdout);
		if (r < 0)
			snprintf(err, sizeof err, "%s", wasp_last_error());
		if (tool_src_close(&in) < 0 && r == 0) {
			snprintf(err, sizeof err, "%s", wasp_last_error());
			r = -EIO;
		}
		if (n > 1 && json)
			fputs(i + 1 < n ? ",\n" : "\n", stdout);
		fflush(stdout);
		if (r < 0) {
			fprintf(stderr, "%s: %s: %s\n", tool_name, path, err);
			bad = 1;
		}
		/* The chain check reads each header again (a file rewinds; a
		 * URL is asked again). */
		if (n > 1 && !bad) {
			struct wasp_xfer_opts hxo = xo;
			hxo.s3_threads = 1; /* little read ahead: the header is all it needs */
			if (tool_src_open(&in, path, &hxo, err, sizeof err) < 0)
				tool_die("%s", err);
			if (wasp_ckpt_header_info(&in.src, &infos[i]) < 0)
				bad = 1;
			tool_src_close(&in);
		}
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
