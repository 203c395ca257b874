/*
 * wasp-restore: continue a checkpointed virtine in this process.
 *
 * The checkpoint is read and checked whole before the guest runs; then it
 * runs under a runner exactly like wasp-run's, so it can be checkpointed
 * again (by signal, trigger file, period or wasp-ckpt).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "migrate.h"
#include "tool_run.h"
#include "tool_util.h"
#include "vmm.h"

static const char usage[] =
	"usage: wasp-restore [options] FILE|-\n"
	"Restore a virtine from a checkpoint and let it run to its end.\n"
	"\n"
	"  -d, --dir DIR              host directory for the guest's files (its open\n"
	"                             files are reopened there, at their offsets)\n"
	"  -a, --allow LIST           hypercalls to allow instead of the checkpoint's\n"
	"  -t, --timeout DUR          stop the guest after DUR\n"
	"      --no-stdin             the guest reads end-of-file from stdin\n"
	"  -s, --stats                restore phases and sizes on stderr\n"
	"  -h, --help                 show this help\n"
	"\n"
	"%s"
	"\n"
	"The restored virtine can be checkpointed again like any wasp-run.\n"
	"\n"
	"Exit status as wasp-run: the guest's exit code; 124 timeout; 139 guest\n"
	"fault; 125 wasp-restore failed (bad arguments, a bad or incompatible\n"
	"checkpoint: nothing ran); 0 when it stopped after a checkpoint.\n";

int main(int argc, char **argv)
{
	enum { O_NOSTDIN = 512, O_SIMCPUID };
	static const struct option opts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"allow", required_argument, NULL, 'a'},
		{"timeout", required_argument, NULL, 't'},
		{"no-stdin", no_argument, NULL, O_NOSTDIN},
		TOOL_RUN_LONG_OPTIONS,
		/* for tests: pretend this host lacks CPUID bits ("leaf.reg.bit,...") */
		{"simulate-missing-cpuid", required_argument, NULL, O_SIMCPUID},
		{"stats", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct wasp_config cfg;
	struct wasp_restore_opts ro = {0};
	struct wasp_runner_opts rn;
	bool stats = false;
	int c;

	tool_name = "wasp-restore";
	tool_block_sigusr1();

	wasp_config_init(&cfg);
	wasp_runner_opts_init(&rn);
	ro.config = &cfg;
	while ((c = getopt_long(argc, argv, "d:a:t:sh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cfg.sandbox_dir = optarg;
			break;
		case 'a':
			if (wasp_hypercall_names_valid(optarg) < 0)
				tool_die("--allow: %s", wasp_last_error());
			ro.allow = optarg;
			break;
		case 't':
			if (parse_duration(optarg, &rn.timeout_ns) < 0 || !rn.timeout_ns)
				tool_die("--timeout: '%s' is not a duration (try 500ms or 2s)", optarg);
			break;
		case O_NOSTDIN:
			cfg.no_stdin = true;
			break;
		case O_SIMCPUID:
			ro.simulate_missing_cpuid = optarg;
			break;
		case 's':
			stats = true;
			break;
		case 'h':
			printf(usage, tool_run_usage);
			return 0;
		default:
			if (tool_run_option(c, optarg, &rn))
				break;
			fputs("Try 'wasp-restore --help'.\n", stderr);
			return WASP_EXIT_TOOL_ERROR;
		}
	}
	if (optind != argc - 1)
		tool_die("give exactly one checkpoint file, or - for stdin (try --help)");
	tool_run_check(&rn);
	const char *path = argv[optind];
	signal(SIGPIPE, SIG_IGN);

	struct wasp_virtine *v;
	struct wasp_ckpt_stats st;
	int r;
	if (!strcmp(path, "-")) {
		int fd = 0;
		struct wasp_source src = wasp_source_fd(&fd);
		cfg.no_stdin = true; /* stdin carried the checkpoint */
		r = wasp_ckpt_restore(&ro, &src, &v, &st);
	} else {
		r = wasp_ckpt_restore_file(&ro, path, &v, &st);
	}
	if (r < 0)
		tool_die("%s", wasp_last_error());
	if (st.unrestored[0])
		fprintf(stderr, "%s: note: this host did not restore: %s\n", tool_name, st.unrestored);
	if (stats)
		fprintf(stderr,
			"%s: stats: %llu bytes, %llu pages in %llu chunks; read %.2f ms "
			"(decompress %.2f ms), apply %.2f ms, total %.2f ms\n",
			tool_name, (unsigned long long)st.bytes, (unsigned long long)st.pages,
			(unsigned long long)st.chunks, st.read_ns / 1e6, st.decompress_ns / 1e6,
			st.apply_ns / 1e6, st.total_ns / 1e6);

	struct wasp_runner_result res;
	tool_run_virtine(v, &rn, &res);
	int status = tool_exit_status(&res, rn.timeout_ns);
	wasp_virtine_destroy(v);
	return status;
}
