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
 *
 * To s3://BUCKET/KEY, the runner writes into a pipe that a thread here
 * reads into a multipart upload (parts go while the guest is captured);
 * the object appears when this process completes the upload after the end
 * of the stream, and a --stop waits, guest paused, for exactly that
 * (the request says confirm=1), as for a file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "migrate.h"
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
	"                      replaced atomically, only once the checkpoint is whole;\n"
	"                      s3://BUCKET/KEY uploads it, and the object appears\n"
	"                      only once whole (docs/object-storage.md)\n"
	"      --stop          stop the virtine once the checkpoint is safe: a FILE\n"
	"                      committed or an object completed (its wasp-run exits\n"
	"                      0); into a pipe, the\n"
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
	"      --s3-endpoint URL  s3://: the server (http[s]://HOST[:PORT]), before\n"
	"                      AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and the profile's\n"
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

/* ---- s3://: a pipe from the runner, pumped into an upload ----------------- */

struct s3_pump {
	struct wasp_xfer *x;
	int rfd, wfd;     /* the pipe; wfd goes to the runner, ours is closed */
	pthread_t thread;
	bool started, joined;
	int err;          /* the first failure; the pump then only drains */
	char msg[400];
};

static struct s3_pump pump = {.rfd = -1, .wfd = -1};

/* Reads the runner's stream into the upload until its end. After a
 * failure it goes on reading, so the runner's write never blocks on a
 * reader that gave up; the commit then fails and the virtine goes on. */
static void *pump_main(void *arg)
{
	struct s3_pump *p = arg;
	static char buf[1 << 16];
	for (;;) {
		ssize_t n = read(p->rfd, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (!p->err) {
				p->err = -errno;
				snprintf(p->msg, sizeof p->msg, "reading the runner's stream: %s",
					 strerror(errno));
			}
			break;
		}
		if (!p->err && wasp_xfer_write(p->x, buf, (size_t)n) < 0) {
			p->err = -EIO;
			snprintf(p->msg, sizeof p->msg, "%s", wasp_last_error());
		}
	}
	return NULL;
}

/* The stream's end (ours and the runner's ends closed), then the upload's
 * completion: 0 once the object is there, else -errno with err set (the
 * upload is aborted). */
static int pump_finish(char *err, size_t cap)
{
	if (pump.wfd >= 0) {
		close(pump.wfd);
		pump.wfd = -1;
	}
	if (pump.started && !pump.joined) {
		pthread_join(pump.thread, NULL);
		pump.joined = true;
	}
	if (pump.err) {
		snprintf(err, cap, "%s", pump.msg);
		return pump.err;
	}
	enum wasp_xfer_verdict v;
	int r = wasp_xfer_commit(pump.x, &v);
	if (r == 0 && v != WASP_XFER_ACCEPTED)
		r = -EIO; /* refused: the object did not appear; the reason is the library's */
	if (r < 0) {
		snprintf(err, cap, "%s", wasp_last_error());
		return r;
	}
	return 0;
}

/* The checkpoint failed: abort the upload, so that no object appears and
 * an older one at the key stays. The pump ends when the runner closes its
 * end, which a request that failed does at once; a runner that hangs on
 * to it is not waited for long: then the parts stay unseen, as after a
 * kill -9 (docs/object-storage.md: the lifecycle rule). */
static void pump_abort(void)
{
	wasp_xfer_cancel(pump.x);
	if (pump.wfd >= 0) {
		close(pump.wfd);
		pump.wfd = -1;
	}
	if (pump.started && !pump.joined) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		if (pthread_timedjoin_np(pump.thread, NULL, &until) != 0)
			return;
		pump.joined = true;
	}
	wasp_xfer_free(pump.x);
	pump.x = NULL;
}

static int commit_s3(void *ctx)
{
	return pump_finish(ctx, 512);
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
		{"s3-endpoint", required_argument, NULL, 'E'},
		{"timeout", required_argument, NULL, 't'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct wasp_checkpoint_request req = {0};
	const char *output = NULL, *keep = NULL, *s3_endpoint = NULL;
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
		case 'E':
			if (!*optarg)
				tool_die("--s3-endpoint: empty URL");
			s3_endpoint = optarg;
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
	bool s3 = !strncmp(output, "s3://", 5);
	char *keep_default = NULL, *keep_abs = NULL;
	if (keep && !req.stop)
		tool_die("--keep goes with --stop");
	if (keep && s3)
		tool_die("--keep goes with a pipe: an s3:// object is confirmed before the virtine stops");
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
	int dest_fd;
	if (s3) {
		struct wasp_xfer_opts xo;
		int pfd[2];
		wasp_xfer_opts_init(&xo);
		xo.s3_endpoint = s3_endpoint;
		if (wasp_xfer_open(output, &xo, &pump.x) < 0)
			tool_die("%s", wasp_last_error());
		if (pipe2(pfd, O_CLOEXEC) < 0)
			tool_die("pipe: %s", strerror(errno));
		pump.rfd = pfd[0];
		pump.wfd = dest_fd = pfd[1];
		int e = pthread_create(&pump.thread, NULL, pump_main, &pump);
		if (e)
			tool_die("pthread_create: %s", strerror(e));
		pump.started = true;
		req.confirm = true;
	} else {
		if (tool_out_open(&out, output, err, sizeof err) < 0)
			tool_die("%s", err);
		dest_fd = out.fd;
	}
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);

	struct wasp_checkpoint_reply rep;
	req.to = out.is_stdout ? "wasp-ckpt's stdout" : output;
	req.commit = s3 ? commit_s3 : commit_out;
	req.commit_ctx = err;
	uint64_t now = wasp_now_ns(), left = 0;
	if (deadline)
		left = deadline > now ? deadline - now : 1; /* 1 ns: fails at once, as it should */
	err[0] = '\0';
	if (wasp_runner_request_checkpoint(sock, &req, dest_fd, left, &rep) < 0) {
		/* A failed commit left its own message; the rest is the library's. */
		if (!err[0] || rep.committed)
			snprintf(err, sizeof err, "%s", wasp_last_error());
		if (!rep.committed && !s3)
			tool_out_abort(&out);
		else if (rep.committed && !out.is_stdout)
			fprintf(stderr, "wasp-ckpt: the checkpoint is saved in %s\n", output);
		/* Not completed, the upload is aborted: no object, an older one
		 * at the key untouched. */
		if (s3 && !rep.committed)
			pump_abort();
		if (is_pid)
			tool_die("pid %s: %s", target, err);
		tool_die("virtine %s: %s", target, err);
	}
	close(sock);
	if (!rep.committed && s3 && pump_finish(err, sizeof err) < 0) {
		pump_abort();
		tool_die("%s: %s", output, err);
	}
	if (!rep.committed && !s3 && tool_out_commit(&out, err, sizeof err) < 0)
		tool_die("%s", err);
	if (s3)
		wasp_xfer_free(pump.x);

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
