/*
 * wasp-run: run one virtine image from the command line.
 *
 * All the work is libwasp's; this file turns arguments into a config,
 * errors into one line on stderr, and the guest's exit into an exit status.
 * The virtine always runs under the runner (runner.h), so every wasp-run
 * has a control socket and answers wasp-ckpt; the checkpoint triggers
 * (SIGUSR1, a trigger file, a period) are docs/triggers.md.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner.h"
#include "tool_run.h"
#include "tool_trace.h"
#include "tool_util.h"
#include "vmm.h"

/* Harmless by default: output, the argument/result buffers and the snapshot
 * marker touch nothing on the host but stdout. Files, stdin and the clock
 * must be asked for (docs/hypercalls.md). */
#define DEFAULT_ALLOW "console_write,get_arg,set_ret,snapshot"

static const char usage[] =
	"usage: wasp-run [options] IMAGE|PROGRAM [-- ARG...]\n"
	"Run a virtine image, or a static x86-64 Linux program (docs/linux.md),\n"
	"in its own KVM virtual machine.\n"
	"\n"
	"  -m, --mem SIZE        guest memory, multiple of 4K, 64K..4G (default 16M;\n"
	"                        256M for a Linux program)\n"
	"      --load-addr ADDR  guest-physical load address (default 0x8000)\n"
	"      --mode MODE       entry mode: auto (from the image header), real\n"
	"                        (16-bit at the load address) or long (direct\n"
	"                        64-bit ring-3 entry); default auto\n"
	"  -a, --allow LIST      hypercalls the guest may make, comma-separated\n"
	"                        names, 'files', 'all' or 'none'\n"
	"                        (default " DEFAULT_ALLOW ")\n"
	"  -d, --dir DIR         host directory the file hypercalls are confined to\n"
	TOOL_DIR_QUOTA_USAGE
	"  -t, --timeout DUR     stop the guest after DUR (e.g. 500ms, 2s, 1m)\n"
	"      --no-stdin        the guest reads end-of-file from stdin\n"
	"  -e, --env NAME=VALUE  a Linux program's environment (repeatable; the\n"
	"                        host's own never reaches it)\n"
	"  -s, --stats           print create/load/run times and exit counts on stderr\n"
	"  -h, --help            show this help\n"
	"\n"
	"%s"
	"\n"
	"%s"
	"\n"
	"ARGs after -- reach the guest through the get_arg hypercall as\n"
	"NUL-separated strings; a Linux program gets them as argv[1..] (argv[0]\n"
	"is PROGRAM as given). A Linux program may use stdin, stdout, stderr,\n"
	"time and randomness, and with --dir DIR it sees DIR as its root and\n"
	"working directory; --allow narrows that as for images.\n"
	"\n"
	"Exit status: the guest's exit code (low 8 bits); 124 when the timeout\n"
	"stopped it; 139 when it faulted (triple fault, access outside its memory,\n"
	"unknown port); 125 when wasp-run itself failed (bad arguments, no KVM);\n"
	"0 when it stopped after a checkpoint (the work goes on elsewhere).\n";

/* Packs ARGs as NUL-separated strings, the form the guest runtime parses. */
static char *pack_args(int argc, char **argv, size_t *len)
{
	size_t n = 0;
	for (int i = 0; i < argc; i++)
		n += strlen(argv[i]) + 1;
	char *buf = malloc(n ? n : 1), *p = buf;
	if (!buf)
		tool_die("out of memory");
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;
		memcpy(p, argv[i], l);
		p += l;
	}
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mem", required_argument, NULL, 'm'},
		{"load-addr", required_argument, NULL, 'L'},
		{"mode", required_argument, NULL, 'M'},
		{"allow", required_argument, NULL, 'a'},
		{"dir", required_argument, NULL, 'd'},
		{"timeout", required_argument, NULL, 't'},
		{"no-stdin", no_argument, NULL, 'N'},
		{"env", required_argument, NULL, 'e'},
		{"stats", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		TOOL_RUN_LONG_OPTIONS,
		TOOL_TRACE_LONG_OPTIONS,
		{0},
	};
	struct wasp_runner_opts ro;
	struct tool_trace tt;
	struct wasp_config cfg;
	const char *allow = NULL;
	const char **envp = NULL;
	size_t nenv = 0;
	bool mem_given = false;
	uint64_t load_addr = WASP_GPA_LOAD, timeout_ns = 0, mem;
	enum wasp_mode mode = WASP_MODE_AUTO;
	bool stats = false;
	int c;

	tool_name = "wasp-run";
	tool_block_sigusr1();

	wasp_config_init(&cfg);
	wasp_runner_opts_init(&ro);
	tool_trace_init(&tt);
	opterr = 0; /* one line of ours instead of getopt\'s two */
	while ((c = getopt_long(argc, argv, "+m:a:d:t:e:sh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mem = tool_size_arg("--mem", optarg, "16M");
			cfg.mem_size = (size_t)mem;
			mem_given = true;
			break;
		case 'L':
			if (parse_u64(optarg, &load_addr) < 0 || load_addr == 0)
				tool_die("--load-addr: '%s' is not an address (try 0x8000)", optarg);
			break;
		case 'M':
			if (!strcmp(optarg, "auto"))
				mode = WASP_MODE_AUTO;
			else if (!strcmp(optarg, "real"))
				mode = WASP_MODE_REAL;
			else if (!strcmp(optarg, "long"))
				mode = WASP_MODE_LONG;
			else
				tool_die("--mode: '%s' is not auto, real or long", optarg);
			break;
		case 'a':
			allow = optarg;
			if (wasp_hypercall_names_valid(allow) < 0)
				tool_die("--allow: %s", wasp_last_error());
			break;
		case 'd':
			cfg.sandbox_dir = optarg;
			break;
		case 't':
			timeout_ns = tool_duration_arg("--timeout", optarg, "500ms or 2s");
			break;
		case 'N':
			cfg.no_stdin = true;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=')
				tool_die("--env: '%s' is not NAME=VALUE", optarg);
			envp = realloc(envp, (nenv + 2) * sizeof *envp);
			if (!envp)
				tool_die("out of memory");
			envp[nenv++] = optarg;
			envp[nenv] = NULL;
			break;
		case 's':
			stats = true;
			break;
		case 'h':
			printf(usage, tool_run_usage, tool_trace_usage);
			return 0;
		default:
			if (tool_run_option(c, optarg, &ro) || tool_run_config_option(c, optarg, &cfg) ||
			    tool_trace_option(c, optarg, &tt))
				break;
			tool_bad_option(argv);
		}
	}
	if (optind >= argc)
		tool_die("no image given (try 'wasp-run --help')");
	tool_run_check(&ro);
	const char *image = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	else if (optind < argc)
		tool_die("unexpected '%s' after the image: put guest arguments after --",
			 argv[optind]);

	/* A closed stdout must become an error from console_write, not a kill. */
	signal(SIGPIPE, SIG_IGN);

	/* A Linux program or a flat image? An ELF wasp cannot run is refused
	 * here, with the reason. */
	int linux_prog = wasp_linux_probe(image);
	if (linux_prog < 0)
		tool_die("%s", wasp_last_error());
	if (nenv && !linux_prog)
		tool_die("--env: %s is an image, not a Linux program (images take ARGs after --)", image);
	if (linux_prog && !mem_given)
		cfg.mem_size = WASP_LINUX_MEM_DEFAULT;
	if (!allow)
		allow = linux_prog ? "all" : DEFAULT_ALLOW;

	struct wasp_virtine *v;
	if (wasp_virtine_create(&cfg, &v) < 0)
		tool_die("%s", wasp_last_error());
	if (wasp_virtine_allow(v, allow) < 0)
		tool_die("--allow: %s", wasp_last_error());
	if (linux_prog) {
		/* argv[0] is the program as given, as a shell passes it. */
		int n = argc - optind;
		const char **pargv = calloc((size_t)n + 2, sizeof *pargv);
		if (!pargv)
			tool_die("out of memory");
		pargv[0] = image;
		for (int i = 0; i < n; i++)
			pargv[i + 1] = argv[optind + i];
		if (wasp_virtine_load_linux(v, image, pargv, envp) < 0)
			tool_die("%s", wasp_last_error());
		free(pargv);
	} else {
		size_t arg_len;
		char *args = pack_args(argc - optind, argv + optind, &arg_len);
		if (wasp_virtine_set_arg(v, args, arg_len) < 0)
			tool_die("%s", wasp_last_error());
		free(args);
		if (wasp_virtine_load_file(v, image, load_addr, mode) < 0)
			tool_die("%s", wasp_last_error());
	}
	free(envp);
	tool_run_resolve_points(&ro, image);
	tool_trace_attach(&tt, v, image);

	/* The runner: the vCPU on this thread, the triggers on its own. */
	struct wasp_runner_result res;
	ro.timeout_ns = timeout_ns;
	ro.sandbox_dir = cfg.sandbox_dir; /* what wasp-migrate --with-files sends */
	tool_run_virtine(v, &ro, &res);
	const struct wasp_exit e = res.exit;
	tool_trace_end(&tt, v, &res);
	int status = tool_exit_status(&res, timeout_ns);

	if (stats) {
		struct wasp_stats st;
		wasp_virtine_stats(v, &st);
		fprintf(stderr,
			"wasp-run: stats: create %.1f us, load %.1f us, run %.1f us, "
			"exits %llu (io %llu), hypercalls %llu (denied %llu), exit %s code %lld\n",
			st.create_ns / 1e3, st.load_ns / 1e3, st.run_ns / 1e3,
			(unsigned long long)st.exits, (unsigned long long)st.io_exits,
			(unsigned long long)st.hypercalls, (unsigned long long)st.hypercalls_denied,
			wasp_exit_reason_name(e.reason), (long long)e.code);
	}
	wasp_virtine_destroy(v);
	return status;
}
