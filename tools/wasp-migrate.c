/*
 * wasp-migrate: move a running virtine to another host (or into a file or
 * pipe) while it keeps running, through its runner's control socket.
 *
 * The runner (inside the virtine's wasp-run) does the work: pre-copy on a
 * thread of its own while the guest runs, then the short stop, the commit
 * and the decision (docs/migration.md). This tool asks for it, shows the
 * progress lines the runner sends back and turns the outcome into a
 * summary and an exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"
#include "runner.h"
#include "tool_migrate.h"
#include "tool_util.h"

/* Exit statuses (docs/tools.md). */
#define EXIT_MIGRATED 0
#define EXIT_RESUMED 1 /* failed; the virtine runs on at the source */
#define EXIT_HELD 2    /* outcome unknown; held in a checkpoint at the source */

static const char usage[] =
	"usage: wasp-migrate [options] TARGET URL\n"
	"Move a running virtine while it runs. TARGET is the pid of its wasp-run\n"
	"(or wasp-restore), its --name, or PID.N for the Nth virtine of a\n"
	"wasp-restore --keep-listening. URL is where it goes:\n"
	"  http://HOST:PORT, https://HOST:PORT   a wasp-restore --listen there\n"
	"  file:///PATH                          a checkpoint file (atomically)\n"
	"  -                                     stdout (a pipe, e.g. to ssh)\n"
	"\n"
	"  --token T              the receiver's bearer token (at least 16\n"
	"                         characters; shorter ones are refused)\n"
	"  --token-file FILE      the token is the first line of FILE, which only\n"
	"                         its owner may read (chmod 600; else refused)\n"
	"                         (or set WASP_MIGRATE_TOKEN)\n"
	"  --allow-plain-http     send the token over http:// to a non-loopback\n"
	"                         address too (clear text: anyone on the path reads\n"
	"                         it); without it only https:// or loopback\n"
	"  --max-downtime DUR     stop the guest for the last copy once that is\n"
	"                         expected to take at most DUR (default 50ms; a bare\n"
	"                         number is milliseconds)\n"
	"  --max-rounds N         at most N pre-copy passes, the first (all memory)\n"
	"                         included (default 30, at most 100)\n"
	"  --bandwidth-limit RATE at most RATE bytes/s (e.g. 20M, 1G)\n"
	"  --with-files           send the virtine's sandbox files along (http(s)\n"
	"                         only); without it they must exist at the receiver\n"
	"  --cacert FILE          https: trust this CA too (the certificate is\n"
	"                         always verified)\n"
	"  --hold FILE            where the source saves the virtine if the outcome\n"
	"                         is unknown (default TARGET.held.wckpt here)\n"
	"  --commit-timeout DUR   wait this long for the receiver's answer (30s)\n"
	"  --query-timeout DUR    ask a receiver whose answer was lost for this\n"
	"                         long (10s)\n"
	"  --stall-timeout DUR    give up when nothing moves on the link for this\n"
	"                         long while data waits (10s)\n"
	"  --json                 the result as one JSON object on stdout (stderr\n"
	"                         when the URL is -)\n"
	"  -q, --quiet            no progress, no summary\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 migrated (it runs at URL; its wasp-run exits 0); 1 failed,\n"
	"the virtine keeps running here; 2 outcome unknown: the virtine is held,\n"
	"saved to the --hold file (restore it only if it does not run at URL);\n"
	"125 nothing was tried (bad arguments, no such virtine, a refused request).\n";

static bool tty, quiet, json;
static bool progress_shown;

static void human_bytes(double b, char *out, size_t cap)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void on_progress(void *opaque, const struct wasp_migrate_progress *p)
{
	(void)opaque;
	if (quiet || json)
		return;
	char line[256], sent[32], bw[32];
	if (!strcmp(p->phase, "precopy")) {
		human_bytes((double)p->bytes, sent, sizeof sent);
		human_bytes(p->bandwidth, bw, sizeof bw);
		snprintf(line, sizeof line,
			 "round %u: %llu pages (%s sent), %llu dirty at %.0f pages/s, %s/s, "
			 "expected downtime %.1f ms",
			 p->round, (unsigned long long)p->pages, sent,
			 (unsigned long long)p->dirty_pages, p->dirty_rate, bw, p->expected_downtime_ms);
	} else if (!strcmp(p->phase, "stop")) {
		snprintf(line, sizeof line, "stopping the guest: %llu dirty pages left",
			 (unsigned long long)p->dirty_pages);
	} else if (!strcmp(p->phase, "commit")) {
		snprintf(line, sizeof line, "sending the rest and waiting for the receiver");
	} else {
		return;
	}
	if (tty) {
		fprintf(stderr, "\r\033[Kwasp-migrate: %s", line);
		progress_shown = true;
	} else {
		fprintf(stderr, "wasp-migrate: %s\n", line);
	}
	fflush(stderr);
}

/* s as a JSON string, quotes included. */
static void json_string(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	out[o++] = '"';
	for (; *s && o + 8 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void print_json(FILE *f, const char *target, pid_t pid, const char *url,
		       const struct wasp_migrate_reply *rep, const char *error)
{
	static const char *const names[] = {"migrated", "resumed", "held"};
	char s_url[2200], s_t[200], s_err[1200], s_hold[600], s_stop[80], s_rt[200];
	json_string(url, s_url, sizeof s_url);
	json_string(target, s_t, sizeof s_t);
	json_string(error ? error : "", s_err, sizeof s_err);
	json_string(rep->hold_path, s_hold, sizeof s_hold);
	json_string(rep->stop_reason, s_stop, sizeof s_stop);
	json_string(rep->remote_target, s_rt, sizeof s_rt);
	double ratio = rep->bytes ? (double)rep->raw_bytes / (double)rep->bytes : 0;
	fprintf(f,
		"{\"outcome\":\"%s\",\"target\":%s,\"pid\":%d,\"url\":%s,\"id\":\"%s\","
		"\"total_ms\":%.3f,\"downtime_ms\":%.3f,\"precopy_ms\":%.3f,\"settle_ms\":%.3f,"
		"\"files_ms\":%.3f,\"finish_ms\":%.3f,\"commit_ms\":%.3f,\"rounds\":%u,"
		"\"pages_per_round\":[%s],\"final_pages\":%llu,\"bytes\":%llu,\"raw_bytes\":%llu,"
		"\"file_bytes\":%llu,\"compression_ratio\":%.3f,\"dirty_rate\":%.0f,"
		"\"bandwidth\":%.0f,\"expected_downtime_ms\":%.3f,\"stop_reason\":%s,"
		"\"hold\":%s,\"hold_saved\":%s,\"remote_target\":%s,\"stopped_mono_ns\":%llu,"
		"\"error\":%s}\n",
		names[rep->outcome], s_t, (int)pid, s_url, rep->id, rep->total_ms, rep->downtime_ms,
		rep->precopy_ms, rep->settle_ms, rep->files_ms, rep->finish_ms, rep->commit_ms, rep->rounds,
		strcmp(rep->round_pages, "-") ? rep->round_pages : "",
		(unsigned long long)rep->final_pages, (unsigned long long)rep->bytes,
		(unsigned long long)rep->raw_bytes, (unsigned long long)rep->file_bytes, ratio,
		rep->dirty_rate, rep->bandwidth, rep->expected_downtime_ms,
		rep->stop_reason[0] ? s_stop : "null",
		rep->outcome == WASP_MIGRATE_HELD ? s_hold : "null",
		rep->hold_saved ? "true" : "false", rep->remote_target[0] ? s_rt : "null",
		(unsigned long long)rep->stopped_ns, error ? s_err : "null");
	fflush(f);
}

int main(int argc, char **argv)
{
	enum {
		O_TOKEN = 256, O_TOKEN_FILE, O_DOWNTIME, O_ROUNDS, O_BW, O_FILES, O_CACERT, O_HOLD,
		O_COMMIT, O_QUERY, O_STALL, O_JSON, O_PLAIN
	};
	static const struct option opts[] = {
		{"token", required_argument, NULL, O_TOKEN},
		{"token-file", required_argument, NULL, O_TOKEN_FILE},
		{"max-downtime", required_argument, NULL, O_DOWNTIME},
		{"max-rounds", required_argument, NULL, O_ROUNDS},
		{"bandwidth-limit", required_argument, NULL, O_BW},
		{"with-files", no_argument, NULL, O_FILES},
		{"cacert", required_argument, NULL, O_CACERT},
		{"hold", required_argument, NULL, O_HOLD},
		{"commit-timeout", required_argument, NULL, O_COMMIT},
		{"query-timeout", required_argument, NULL, O_QUERY},
		{"stall-timeout", required_argument, NULL, O_STALL},
		{"json", no_argument, NULL, O_JSON},
		{"allow-plain-http", no_argument, NULL, O_PLAIN},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct wasp_migrate_request req = {0};
	const char *token = NULL, *token_file = NULL, *hold = NULL;
	int c;

	tool_name = "wasp-migrate";
	opterr = 0; /* one line of ours instead of getopt\'s two */
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		uint64_t v;
		switch (c) {
		case O_TOKEN:
			token = optarg;
			break;
		case O_TOKEN_FILE:
			token_file = optarg;
			break;
		case O_DOWNTIME:
			/* A bare number is milliseconds here. */
			if (parse_u64(optarg, &v) == 0)
				req.max_downtime_ns = v * 1000000ull;
			else if (parse_duration(optarg, &req.max_downtime_ns) < 0)
				tool_die("--max-downtime: '%s' is not a duration (try 50ms)", optarg);
			if (!req.max_downtime_ns)
				tool_die("--max-downtime: must be more than 0");
			break;
		case O_ROUNDS:
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > WASP_MIGRATE_MAX_ROUNDS)
				tool_die("--max-rounds: '%s' is not a number from 1 to %d", optarg,
					 WASP_MIGRATE_MAX_ROUNDS);
			req.max_rounds = (unsigned)v;
			break;
		case O_BW:
			if (parse_size(optarg, &v) < 0 || v < 4096)
				tool_die("--bandwidth-limit: '%s' is not a rate of 4K or more bytes/s (try 20M)",
					 optarg);
			req.bandwidth_limit = v;
			break;
		case O_FILES:
			req.with_files = true;
			break;
		case O_CACERT:
			req.ca_file = optarg;
			break;
		case O_HOLD:
			if (!*optarg)
				tool_die("--hold: empty file name");
			hold = optarg;
			break;
		case O_COMMIT:
			req.commit_timeout_ns = tool_duration_arg("--commit-timeout", optarg, NULL);
			break;
		case O_QUERY:
			req.query_timeout_ns = tool_duration_arg("--query-timeout", optarg, NULL);
			break;
		case O_STALL:
			if (parse_duration(optarg, &req.stall_timeout_ns) < 0 ||
			    req.stall_timeout_ns < 1000000000ull)
				tool_die("--stall-timeout: '%s' is not a duration of 1s or more", optarg);
			break;
		case O_JSON:
			json = true;
			break;
		case O_PLAIN:
			req.allow_plain_http = true;
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
	if (argc - optind != 2)
		tool_die("give a target and a URL (try 'wasp-migrate --help')");
	const char *target = argv[optind], *url = argv[optind + 1];
	bool is_pid = strspn(target, "0123456789") == strlen(target);
	if (!is_pid && wasp_runner_name_valid(target) < 0)
		tool_die("'%s' is neither a pid nor a virtine name (%s)", target, wasp_last_error());
	bool to_stdout = !strcmp(url, "-");
	bool http = !strncmp(url, "http://", 7) || !strncmp(url, "https://", 8);
	if (!to_stdout && !http && strncmp(url, "file://", 7))
		tool_die("'%s': give http://HOST:PORT, https://HOST:PORT, file:///PATH or -", url);
	if (!strncmp(url, "file://", 7) && url[7] != '/')
		tool_die("'%s': a file URL has an absolute path (file:///dir/name)", url);
	if (to_stdout && isatty(STDOUT_FILENO))
		tool_die("refusing to write a checkpoint to a terminal (redirect stdout)");
	if (req.with_files && !http)
		tool_die("--with-files needs an http:// or https:// receiver");
	if (req.ca_file && access(req.ca_file, R_OK) < 0)
		tool_die("--cacert %s: %s", req.ca_file, strerror(errno));
	req.token = tool_token(token, token_file);
	if (http && !req.token)
		tool_die("an http(s) receiver needs a token (--token, --token-file or WASP_MIGRATE_TOKEN)");

	/* The runner writes the held checkpoint itself: give it an absolute path. */
	char *dflt = NULL;
	if (!hold) {
		if (asprintf(&dflt, "%s.held.wckpt", target) < 0)
			tool_die("out of memory");
		hold = dflt;
	}
	char *hold_abs = tool_abs_path("--hold", hold);
	if (strlen(hold_abs) >= 250)
		tool_die("--hold: path too long");
	req.hold_path = hold_abs;

	/* Our writes to the runner go with MSG_NOSIGNAL; a reader of our
	 * stdout that goes away must fail the migration, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	tty = isatty(STDERR_FILENO);

	int sock;
	struct wasp_runner_peer peer;
	if (wasp_runner_connect(target, 10000000000ull, &sock, &peer) < 0)
		tool_die("%s", wasp_last_error());
	char who[WASP_RUNNER_NAME_MAX + 32];
	if (peer.name[0])
		snprintf(who, sizeof who, "%s (pid %d)", peer.name, (int)peer.pid);
	else
		snprintf(who, sizeof who, "pid %d", (int)peer.pid);

	req.url = to_stdout ? "wasp-migrate's stdout" : url;
	struct wasp_migrate_reply rep;
	int r = wasp_runner_request_migrate(sock, &req, to_stdout ? STDOUT_FILENO : -1, on_progress,
					    NULL, &rep);
	if (progress_shown)
		fputs("\r\033[K", stderr);
	close(sock);
	free(hold_abs);
	free(dflt);
	const char *shown = to_stdout ? "stdout" : url;
	FILE *jf = to_stdout ? stderr : stdout;
	if (r < 0) {
		char msg[600];
		snprintf(msg, sizeof msg, "%s", wasp_last_error());
		if (r == -EREMOTEIO) {
			if (json)
				print_json(jf, target, peer.pid, shown, &rep, msg);
			tool_die("%s: %s", who, msg);
		}
		/* The runner died, or the line broke: we cannot say. */
		if (json) {
			rep.outcome = WASP_MIGRATE_HELD;
			print_json(jf, target, peer.pid, shown, &rep, msg);
		}
		fprintf(stderr, "wasp-migrate: migration of %s to %s: %s\n", who, shown, msg);
		return EXIT_HELD;
	}

	char sent[32];
	human_bytes((double)rep.bytes, sent, sizeof sent);
	double ratio = rep.bytes ? (double)rep.raw_bytes / (double)rep.bytes : 0;
	switch (rep.outcome) {
	case WASP_MIGRATED:
		if (json)
			print_json(jf, target, peer.pid, shown, &rep, NULL);
		if (!quiet)
			fprintf(stderr,
				"wasp-migrate: migrated %s to %s: total %.3f s, downtime %.1f ms, "
				"%u round%s, %s sent, compression %.1fx\n",
				who, shown, rep.total_ms / 1e3, rep.downtime_ms, rep.rounds,
				rep.rounds == 1 ? "" : "s", sent, ratio);
		if (!quiet && rep.remote_target[0])
			fprintf(stderr, "wasp-migrate: there it is %s (a wasp-ckpt or wasp-migrate TARGET)\n",
				rep.remote_target);
		return EXIT_MIGRATED;
	case WASP_MIGRATE_RESUMED:
		if (json)
			print_json(jf, target, peer.pid, shown, &rep, rep.message);
		fprintf(stderr, "wasp-migrate: migration of %s to %s failed: %s; the virtine keeps running here\n",
			who, shown, rep.message);
		return EXIT_RESUMED;
	case WASP_MIGRATE_HELD:
	default:
		if (json)
			print_json(jf, target, peer.pid, shown, &rep, rep.message);
		if (rep.hold_saved)
			fprintf(stderr,
				"wasp-migrate: migration of %s to %s: outcome unknown: %s; the virtine "
				"is held in %s: restore it only if it does not run at %s\n",
				who, shown, rep.message, rep.hold_path, shown);
		else
			fprintf(stderr,
				"wasp-migrate: migration of %s to %s: outcome unknown: %s; the virtine "
				"is held (stopped) but could not be saved\n",
				who, shown, rep.message);
		return EXIT_HELD;
	}
}
