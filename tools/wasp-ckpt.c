/*
 * wasp-ckpt: checkpoint a running virtine (a wasp-run, or any program using
 * the runner) through its control socket.
 *
 * The destination is opened here and its file descriptor handed to the
 * runner, which writes the checkpoint straight into it: a file (replaced
 * atomically once the runner says "ok") or this process's stdout (a pipe to
 * ssh, wasp-restore -i -, ...). The protocol is docs/triggers.md.
 *
 * With --stop the virtine ends only once its state is safe: a file is
 * committed (fsync, rename) while the guest still waits paused, and only
 * then told to stop; a pipe cannot say what its reader did, so the runner
 * keeps a local copy and says where.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner.h"
#include "tool_ckpt.h"
#include "tool_util.h"

static const char usage[] =
	"usage: wasp-ckpt [options] TARGET\n"
	"Checkpoint a running virtine. TARGET is the pid of its wasp-run, the\n"
	"name it was given with wasp-run --name, or PID.N for the Nth virtine\n"
	"of a wasp-restore --keep-listening.\n"
	"\n"
	"  -o, --output FILE   where the checkpoint goes; '-' is stdout (which must\n"
	"                      not be a terminal); default TARGET.wckpt. A file is\n"
	"                      replaced atomically, only once the checkpoint is whole\n"
	"      --stop          stop the virtine once the checkpoint is safe: a FILE\n"
	"                      committed (its wasp-run exits 0); into a pipe, the\n"
	"                      virtine also leaves a local copy and its path is\n"
	"                      printed (the reader cannot confirm it has it).\n"
	"                      If the checkpoint fails, the virtine goes on\n"
	"      --keep FILE     with --stop into a pipe: where that local copy goes\n"
	"                      (default TARGET.kept.wckpt here)\n"
	"      --incremental   only the pages changed since the last checkpoint this\n"
	"                      virtine took (its parent); restore the chain with\n"
	"                      wasp-restore FULL INC1 INC2 ...\n"
	"      --mappable      store memory uncompressed and page-aligned: bigger,\n"
	"                      but wasp-restore maps it copy-on-write instead of\n"
	"                      reading it, so a restore from this file costs the same\n"
	"                      for any guest size (full checkpoints only)\n"
	"  -t, --timeout DUR   give up after DUR (e.g. 10s); default: wait\n"
	"  -q, --quiet         no summary line on stderr\n"
	"  -h, --help          show this help\n"
	"\n"
	"The virtine keeps running, exactly where it was, unless --stop is given.\n"
	"Exit status: 0 when the checkpoint is written; 125 when it is not (no such\n"
	"virtine, permission denied, the virtine's own error, a lost connection),\n"
	"with one line on stderr; an earlier FILE is then left as it was.\n";

static struct tool_out out = {.fd = -1};

/* The runner wrote and synced the file and waits, guest paused: put it in
 * place (fsync, rename, directory fsync). stdout is only synced: it is
 * already where it belongs. */
static int commit_out(void *ctx)
{
	char *err = ctx;
	if (out.is_stdout) {
		if (fsync(out.fd) == 0 || errno == EINVAL)
			return 0;
		int e = errno;
		snprintf(err, 512, "fsync of stdout: %s; the virtine goes on", strerror(e));
		return -e;
	}
	return tool_out_commit(&out, err, 512);
}

/* Interrupted: leave no temporary file behind, then die of the signal.
 * The virtine has not stopped for it: a stop waits for our commit. */
static void on_fatal_signal(int sig)
{
	tool_out_abort_signal(&out);
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"stop", no_argument, NULL, 'S'},
		{"keep", required_argument, NULL, 'K'},
		{"incremental", no_argument, NULL, 'I'},
		{"mappable", no_argument, NULL, 'M'},
		{"timeout", required_argument, NULL, 't'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct wasp_checkpoint_request req = {0};
	const char *output = NULL, *keep = NULL;
	uint64_t timeout_ns = 0;
	bool quiet = false;
	int c;

	tool_name = "wasp-ckpt";
	opterr = 0; /* one line of ours instead of getopt\'s two */
	while ((c = getopt_long(argc, argv, "o:t:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (!*optarg)
				tool_die("--output: empty file name");
			output = optarg;
			break;
		case 'S':
			req.stop = true;
			break;
		case 'K':
			if (!*optarg)
				tool_die("--keep: empty file name");
			keep = optarg;
			break;
		case 'I':
			req.incremental = true;
			break;
		case 'M':
			req.mappable = true;
			break;
		case 't':
			timeout_ns = tool_duration_arg("--timeout", optarg, "500ms or 10s");
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			tool_bad_option(argv);
		}
	}
	if (optind >= argc)
		tool_die("no target given: a pid or a virtine name (try 'wasp-ckpt --help')");
	const char *target = argv[optind++];
	if (optind < argc)
		tool_die("unexpected '%s': give one target", argv[optind]);
	if (req.mappable && req.incremental)
		tool_die("--mappable and --incremental do not go together: a mappable checkpoint is a full one");
	bool is_pid = strspn(target, "0123456789") == strlen(target);
	if (!is_pid && wasp_runner_name_valid(target) < 0)
		tool_die("'%s' is neither a pid nor a virtine name (%s)", target, wasp_last_error());

	char *default_output = NULL;
	if (!output) {
		if (asprintf(&default_output, "%s.wckpt", target) < 0)
			tool_die("out of memory");
		output = default_output;
	}
	char *keep_default = NULL, *keep_abs = NULL;
	if (keep && !req.stop)
		tool_die("--keep goes with --stop");
	if (req.stop && !strcmp(output, "-")) {
		/* The runner writes it: an absolute path, here by default. */
		if (!keep && asprintf(&keep_default, "%s.kept.wckpt", target) < 0)
			tool_die("out of memory");
		keep_abs = tool_abs_path("--keep", keep ? keep : keep_default);
		if (strlen(keep_abs) >= 256)
			tool_die("--keep: path too long");
		req.keep = keep_abs;
	}
	char err[512];
	if (!strcmp(output, "-") && isatty(STDOUT_FILENO))
		tool_die("refusing to write a checkpoint to a terminal (redirect stdout or give -o FILE)");

	/* Our own writes go through the socket with MSG_NOSIGNAL; this is for
	 * the pipe we pass on, should we ever write to it. */
	signal(SIGPIPE, SIG_IGN);

	/* One deadline for connecting, waiting in the queue and writing. */
	uint64_t deadline = timeout_ns ? wasp_now_ns() + timeout_ns : 0;
	int sock;
	struct wasp_runner_peer peer;
	if (wasp_runner_connect(target, timeout_ns, &sock, &peer) < 0)
		tool_die("%s", wasp_last_error());

	/* Only now, so that "no such virtine" leaves no file behind. */
	if (tool_out_open(&out, output, err, sizeof err) < 0)
		tool_die("%s", err);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);

	struct wasp_checkpoint_reply rep;
	req.to = out.is_stdout ? "wasp-ckpt's stdout" : output;
	req.commit = commit_out;
	req.commit_ctx = err;
	uint64_t now = wasp_now_ns(), left = 0;
	if (deadline)
		left = deadline > now ? deadline - now : 1; /* 1 ns: fails at once, as it should */
	err[0] = '\0';
	if (wasp_runner_request_checkpoint(sock, &req, out.fd, left, &rep) < 0) {
		/* A failed commit left its own message; the rest is the library's. */
		if (!err[0] || rep.committed)
			snprintf(err, sizeof err, "%s", wasp_last_error());
		if (!rep.committed)
			tool_out_abort(&out);
		else if (!out.is_stdout)
			fprintf(stderr, "wasp-ckpt: the checkpoint is saved in %s\n", output);
		if (is_pid)
			tool_die("pid %s: %s", target, err);
		tool_die("virtine %s: %s", target, err);
	}
	close(sock);
	if (!rep.committed && tool_out_commit(&out, err, sizeof err) < 0)
		tool_die("%s", err);

	if (!quiet) {
		char who[WASP_RUNNER_NAME_MAX + 32];
		if (peer.name[0])
			snprintf(who, sizeof who, "%s (pid %d)", peer.name, (int)peer.pid);
		else
			snprintf(who, sizeof who, "pid %d", (int)peer.pid);
		fprintf(stderr, "wasp-ckpt: %scheckpoint of %s to %s: %llu bytes in %.1f ms%s%s%s\n",
			rep.incremental ? "incremental " : "", who, out.is_stdout ? "stdout" : output,
			(unsigned long long)rep.bytes, rep.ms, rep.id[0] ? ", id " : "", rep.id,
			rep.stopped ? "; the virtine stopped" : "");
	}
	/* Said even with --quiet: the only other copy of a stopped virtine. */
	if (rep.stopped && rep.kept[0])
		fprintf(stderr, "wasp-ckpt: a copy of the stopped virtine is kept in %s: "
				"restore it if what the pipe carried does not run\n", rep.kept);
	free(default_output);
	free(keep_default);
	free(keep_abs);
	return 0;
}
