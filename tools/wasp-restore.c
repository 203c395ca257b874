/*
 * wasp-restore: continue a checkpointed virtine in this process.
 *
 * The checkpoint is read and checked whole before the guest runs; then it
 * runs under a runner exactly like wasp-run's, so it can be checkpointed
 * again (by signal, trigger file, period or wasp-ckpt) or migrated on.
 * It comes from a file, stdin, a chain of files (a full checkpoint and
 * its incremental ones), an http(s):// URL, or, with --listen, from a
 * live migration (docs/migration.md).
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

#include "ckpt.h"
#include "migrate.h"
#include "runner.h"
#include "tool_ckpt.h"
#include "tool_migrate.h"
#include "tool_run.h"
#include "tool_util.h"
#include "vmm.h"
#include "vmm_parts.h"

static const char usage[] =
	"usage: wasp-restore [options] FILE|-|URL|s3://BUCKET/KEY\n"
	"       wasp-restore [options] FULL INC1 INC2 ...   (a chain of files or objects)\n"
	"       wasp-restore --merge OUT FULL INC1 ...      (a chain into one file)\n"
	"       wasp-restore [options] --listen [ADDR:]PORT --token T\n"
	"Restore a virtine from a checkpoint and let it run to its end.\n"
	"\n"
	"  -d, --dir DIR              host directory for the guest's files (its open\n"
	"                             files are reopened there, at their offsets)\n"
	"      --files POLICY         the files the guest wrote, when they moved on\n"
	"                             since the checkpoint (a crash after it):\n"
	"                             rollback (default) puts them back as they were\n"
	"                             or refuses naming one; strict refuses unless\n"
	"                             all are as they were; ignore takes them as\n"
	"                             they are\n"
	"      --dir-quota SIZE       bytes the guest may make --dir grow by, since it\n"
	"                             started (default 1G; 'unlimited')\n"
	"  -a, --allow LIST           hypercalls to allow instead of the checkpoint's\n"
	"  -t, --timeout DUR          stop the guest after DUR\n"
	"      --no-stdin             the guest reads end-of-file from stdin\n"
	"      --no-map               read a mappable checkpoint's memory instead of\n"
	"                             mapping it copy-on-write from the file\n"
	"  -s, --stats                restore phases and sizes on stderr\n"
	"      --merge OUT            write the chain FILE... as one full checkpoint\n"
	"                             to OUT instead of running it\n"
	"      --max-stream-size SIZE refuse a checkpoint stream longer than SIZE\n"
	"                             (default 64G; e.g. 512M)\n"
	"  -h, --help                 show this help\n"
	"\n"
	"Live migration (docs/migration.md):\n"
	"      --listen [ADDR:]PORT   receive a virtine from wasp-migrate (port 0: any;\n"
	"                             the port is printed on stderr). Without ADDR\n"
	"                             only on loopback (127.0.0.1); 0.0.0.0:PORT or\n"
	"                             [::]:PORT: on every interface\n"
	"      --token T              the bearer token migrations must bring (also\n"
	"                             sent when fetching a URL); at least 16\n"
	"                             characters (shorter ones are refused)\n"
	"      --token-file FILE      the token is the first line of FILE, which only\n"
	"                             its owner may read (chmod 600; else refused)\n"
	"                             (or set WASP_MIGRATE_TOKEN)\n"
	"      --keep-listening       take many virtines, each on its own thread,\n"
	"                             until killed (default: one, then run it);\n"
	"                             the Nth is the target PID.N of wasp-ckpt\n"
	"      --tls-cert FILE, --tls-key FILE\n"
	"                             serve HTTPS with this PEM certificate and key\n"
	"      --cacert FILE          fetching https://: trust this CA too\n"
	"      --allow-plain-http     fetching http://: send the token to a\n"
	"                             non-loopback address too (in clear text)\n"
	"      --idle-timeout DUR     cut off a source silent for DUR (default 60s)\n"
	"      --stream-timeout DUR   cut off a stream still coming after DUR\n"
	"                             (default 30m); a cut-off or oversized stream\n"
	"                             is refused and the listener goes on\n"
	"      --header-timeout DUR   close a connection that has not sent a whole\n"
	"                             request with the token DUR after it connected\n"
	"                             (default 10s)\n"
	"      --max-connections-per-address N\n"
	"                             connections at once from one address (default\n"
	"                             16, at most 256)\n"
	"      --allow-replay         run a checkpoint this receiver has already\n"
	"                             started (default: refused, 409)\n"
	"\n"
	"%s"
	"\n"
	"The restored virtine can be checkpointed again like any wasp-run.\n"
	"\n"
	"Exit status as wasp-run: the guest's exit code; 124 timeout; 139 guest\n"
	"fault; 125 wasp-restore failed (bad arguments, a bad or incompatible\n"
	"checkpoint: nothing ran); 0 when it stopped after a checkpoint or was\n"
	"migrated on.\n";

/* ---- --listen ------------------------------------------------------------------- */

/* One virtine from the listener's restore thread to main (default mode):
 * main starts the runner and says whether it runs; only then does the
 * listener answer the source. */
struct handoff {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wasp_virtine *v;
	char id[33];
	bool acked;
	int ack;
	char msg[512];
};

/* How long a receiver holds the guest back for the listener to answer the
 * source (wasp_listener_wait_answered): it usually takes well under 1 ms. */
#define ANSWER_WAIT_NS 100000000ull

static int start_handoff(void *opaque, struct wasp_virtine *v, const char *id)
{
	struct handoff *h = opaque;
	pthread_mutex_lock(&h->lock);
	h->v = v;
	snprintf(h->id, sizeof h->id, "%s", id);
	pthread_cond_broadcast(&h->cond);
	while (!h->acked)
		pthread_cond_wait(&h->cond, &h->lock);
	int r = h->ack;
	pthread_mutex_unlock(&h->lock);
	if (r < 0)
		return wasp_fail(r, "%s", h->msg);
	return 0;
}

static void ack(struct handoff *h, int r, const char *msg)
{
	pthread_mutex_lock(&h->lock);
	h->acked = true;
	h->ack = r;
	snprintf(h->msg, sizeof h->msg, "%s", msg ? msg : "");
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* --keep-listening: each virtine runs on a thread of its own, under a
 * runner of its own whose control socket is PID.N.sock (N counts the
 * virtines taken), so each can be checkpointed or migrated on by the
 * target PID.N. Signals and trigger files belong to the process, not to
 * one of them: those runners take none. */
struct keep {
	struct wasp_listener *l;
	struct wasp_runner_opts rn;
	pthread_mutex_t lock;
	struct wasp_virtine *v;
	char id[33];
	unsigned instances; /* virtines taken so far */
	bool taken;
	int started;
	bool decided;
	pthread_cond_t cond;
};

static void *keep_main(void *arg)
{
	struct keep *k = arg;
	pthread_mutex_lock(&k->lock);
	struct wasp_virtine *v = k->v;
	char id[33];
	snprintf(id, sizeof id, "%s", k->id);
	struct wasp_runner_opts rn = k->rn;
	rn.instance = ++k->instances;
	k->taken = true;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);

	rn.no_socket = false;
	rn.name = NULL;
	rn.handle_sigusr1 = false;
	rn.checkpoint_path = NULL;
	rn.trigger_file = NULL;
	rn.checkpoint_every_ns = 0;
	rn.log = stderr;
	rn.log_prefix = tool_name;
	struct wasp_runner *runner;
	int r = wasp_runner_create(v, &rn, &runner);
	char target[32];
	snprintf(target, sizeof target, "%d.%u", (int)getpid(), rn.instance);
	if (r == 0)
		wasp_listener_set_target(k->l, id, target); /* before the answer */
	pthread_mutex_lock(&k->lock);
	k->started = r;
	k->decided = true;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (r < 0) {
		wasp_virtine_destroy(v);
		return NULL;
	}
	int slot = tool_run_track(runner); /* its socket goes on SIGTERM too */
	fprintf(stderr, "%s: migration %s: the virtine's target is %s (%s)\n", tool_name, id,
		target, wasp_runner_socket_path(runner));
	wasp_listener_wait_answered(k->l, id, ANSWER_WAIT_NS);
	struct wasp_runner_result res;
	char how[128];
	if (wasp_runner_run(runner, &res) < 0)
		snprintf(how, sizeof how, "host failure: %s", wasp_last_error());
	else if (res.stopped)
		snprintf(how, sizeof how, "%s", res.migrated ? "migrated on" : "stopped");
	else if (res.exit.reason == WASP_EXIT_EXITED)
		snprintf(how, sizeof how, "exited with code %lld", (long long)(res.exit.code & 0xff));
	else
		snprintf(how, sizeof how, "ended: %s", wasp_exit_reason_name(res.exit.reason));
	wasp_runner_destroy(runner);
	tool_run_untrack(slot);
	wasp_virtine_destroy(v);
	fflush(stdout);
	fprintf(stderr, "%s: migration %s: the virtine %s\n", tool_name, id, how);
	wasp_listener_set_status(k->l, id, how);
	return NULL;
}

static int start_keep(void *opaque, struct wasp_virtine *v, const char *id)
{
	struct keep *k = opaque;
	pthread_t t;
	pthread_attr_t a;
	/* One migration at a time reaches here, so one slot is enough. */
	pthread_mutex_lock(&k->lock);
	k->v = v;
	snprintf(k->id, sizeof k->id, "%s", id);
	k->taken = k->decided = false;
	pthread_mutex_unlock(&k->lock);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &a, keep_main, k);
	pthread_attr_destroy(&a);
	if (e) {
		wasp_virtine_destroy(v);
		return wasp_fail(-e, "cannot start a thread for the virtine");
	}
	pthread_mutex_lock(&k->lock);
	while (!k->decided)
		pthread_cond_wait(&k->cond, &k->lock);
	int r = k->started;
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* "8080" (loopback), "127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080". */
static void parse_listen(const char *s, char *addr, size_t cap, unsigned *port)
{
	const char *p = s;
	addr[0] = '\0';
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':' || (size_t)(e - s - 1) >= cap)
			tool_die("--listen: '%s' is not [ADDR]:PORT", s);
		memcpy(addr, s + 1, (size_t)(e - s - 1));
		addr[e - s - 1] = '\0';
		p = e + 2;
	} else if (strchr(s, ':')) {
		const char *c = strrchr(s, ':');
		if ((size_t)(c - s) >= cap)
			tool_die("--listen: address too long");
		memcpy(addr, s, (size_t)(c - s));
		addr[c - s] = '\0';
		p = c + 1;
	}
	/* ":8080" once meant every interface; now that PORT alone means
	 * loopback, make the choice explicit rather than guess. */
	if (p != s && !addr[0])
		tool_die("--listen: '%s' has no address: give PORT for loopback only, or "
			 "0.0.0.0:PORT ([::]:PORT) for every interface", s);
	uint64_t v;
	if (parse_u64(p, &v) < 0 || v > 65535)
		tool_die("--listen: '%s' is not a port (0-65535)", p);
	*port = (unsigned)v;
}

static int listen_main(struct wasp_listen_opts *lo, struct wasp_runner_opts *rn, bool keep,
		       const char *listen_arg)
{
	struct wasp_listener *l;
	struct handoff h = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	static struct keep k = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

	lo->max_virtines = keep ? 0 : 1;
	lo->start = keep ? start_keep : start_handoff;
	lo->opaque = keep ? (void *)&k : (void *)&h;
	lo->log = stderr;
	lo->log_prefix = tool_name;
	if (wasp_listener_create(lo, &l) < 0)
		tool_die("%s", wasp_last_error());
	k.l = l;
	k.rn = *rn;
	if (keep)
		tool_run_handle_fatal_signals(); /* the virtines' sockets go too */
	const char *a = lo->addr ? lo->addr : "127.0.0.1";
	bool v6 = strchr(a, ':') != NULL;
	fprintf(stderr, "%s: listening on %s%s%s:%u%s (%s)\n", tool_name, v6 ? "[" : "", a,
		v6 ? "]" : "", wasp_listener_port(l), lo->tls_cert ? " with TLS" : "",
		keep ? "taking virtines until killed" : "taking one virtine");
	(void)listen_arg;

	if (keep) {
		for (;;)
			pause();
	}

	pthread_mutex_lock(&h.lock);
	while (!h.v)
		pthread_cond_wait(&h.cond, &h.lock);
	struct wasp_virtine *v = h.v;
	char id[33];
	snprintf(id, sizeof id, "%s", h.id);
	pthread_mutex_unlock(&h.lock);

	struct wasp_runner *runner;
	if (tool_run_start(v, rn, &runner) < 0) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", wasp_last_error());
		ack(&h, -EIO, msg);
		/* The listener answers the refusal before it goes: the source
		 * keeps the virtine. */
		wasp_listener_destroy(l);
		wasp_virtine_destroy(v);
		tool_die("%s", msg);
	}
	char target[WASP_TARGET_MAX];
	if (rn->name)
		snprintf(target, sizeof target, "%s", rn->name);
	else
		snprintf(target, sizeof target, "%d", (int)getpid());
	wasp_listener_set_target(l, id, target);
	ack(&h, 0, NULL);
	wasp_listener_wait_answered(l, id, ANSWER_WAIT_NS);
	struct wasp_runner_result res;
	tool_run_finish(runner, &res);
	int status = tool_exit_status(&res, rn->timeout_ns);
	char how[64];
	snprintf(how, sizeof how, "exit status %d", status);
	wasp_listener_set_status(l, id, how);
	wasp_listener_destroy(l);
	wasp_virtine_destroy(v);
	return status;
}

/* ---- main ---------------------------------------------------------------------- */

/* --merge OUT LINK...: a chain of files merges into one atomic file;
 * with an s3:// link or OUT, the links are read as sources (ranged GETs)
 * and OUT written as a sink (a multipart upload completed only when the
 * merged checkpoint is whole). Exits on failure. */
static void merge_chain(const char *out, char **links, int n, const struct wasp_xfer_opts *xo)
{
	struct wasp_ckpt_stats st;
	bool s3 = !strncmp(out, "s3://", 5);
	memset(&st, 0, sizeof st);
	for (int i = 0; i < n; i++) {
		if (!strcmp(links[i], "-") || (strstr(links[i], "://") && strncmp(links[i], "s3://", 5)))
			tool_die("--merge: a chain is made of files and s3:// objects: '%s' cannot be "
				 "part of one", links[i]);
		s3 = s3 || !strncmp(links[i], "s3://", 5);
	}
	if (!strcmp(out, "-") || (strstr(out, "://") && strncmp(out, "s3://", 5)))
		tool_die("--merge: write to a file or an s3:// object, not '%s'", out);
	if (!s3) {
		if (wasp_ckpt_merge_files((const char *const *)links, (size_t)n, out, NULL, &st) < 0)
			tool_die("%s", wasp_last_error());
	} else {
		static struct tool_src src[64];
		const struct wasp_source *ps[64];
		char err[512];
		if (n > 64)
			tool_die("--merge: a chain of %d checkpoints (at most 64)", n);
		for (int i = 0; i < n; i++) {
			if (tool_src_open(&src[i], links[i], xo, err, sizeof err) < 0)
				tool_die("%s", err);
			ps[i] = &src[i].src;
		}
		struct tool_out o = {.fd = -1};
		struct wasp_xfer *x = NULL;
		struct wasp_sink sink;
		if (!strncmp(out, "s3://", 5)) {
			if (wasp_xfer_open(out, xo, &x) < 0)
				tool_die("%s", wasp_last_error());
			sink = wasp_xfer_sink(x);
		} else {
			if (tool_out_open(&o, out, err, sizeof err) < 0)
				tool_die("%s", err);
			sink = wasp_sink_fd(&o.fd);
		}
		int r = wasp_ckpt_merge(ps, (size_t)n, &sink, NULL, &st);
		if (r < 0)
			snprintf(err, sizeof err, "%s", wasp_last_error());
		for (int i = 0; i < n; i++)
			if (tool_src_close(&src[i]) < 0 && r == 0) {
				r = -EIO;
				snprintf(err, sizeof err, "%s", wasp_last_error());
			}
		enum wasp_xfer_verdict v;
		if (r == 0 && x && (wasp_xfer_commit(x, &v) < 0 || v != WASP_XFER_ACCEPTED)) {
			r = -EIO;
			snprintf(err, sizeof err, "%s", wasp_last_error());
		}
		if (r == 0 && !x && tool_out_commit(&o, err, sizeof err) < 0)
			r = -EIO;
		if (r < 0 && !x)
			tool_out_abort(&o);
		wasp_xfer_free(x); /* aborts the upload unless it was completed */
		if (r < 0)
			tool_die("%s", err);
	}
	fprintf(stderr, "%s: merged %d checkpoints into %s (%llu bytes)\n", tool_name, n, out,
		(unsigned long long)st.bytes);
}

int main(int argc, char **argv)
{
	enum {
		O_NOSTDIN = 512, O_NOMAP, O_SIMCPUID, O_LISTEN, O_TOKEN, O_TOKEN_FILE, O_KEEP, O_CERT,
		O_KEY, O_CACERT, O_MERGE, O_TEST_FAULT, O_MAX_STREAM, O_IDLE, O_STREAM_TIMEOUT,
		O_HEADER_TIMEOUT, O_PER_ADDRESS, O_ALLOW_REPLAY,
		O_PLAIN,
		O_FILES
	};
	static const struct option opts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"allow", required_argument, NULL, 'a'},
		{"timeout", required_argument, NULL, 't'},
		{"no-stdin", no_argument, NULL, O_NOSTDIN},
		{"files", required_argument, NULL, O_FILES},
		TOOL_RUN_LONG_OPTIONS,
		/* for tests: pretend this host lacks CPUID bits ("leaf.reg.bit,...") */
		{"simulate-missing-cpuid", required_argument, NULL, O_SIMCPUID},
		{"no-map", no_argument, NULL, O_NOMAP},
		{"listen", required_argument, NULL, O_LISTEN},
		{"token", required_argument, NULL, O_TOKEN},
		{"token-file", required_argument, NULL, O_TOKEN_FILE},
		{"keep-listening", no_argument, NULL, O_KEEP},
		{"tls-cert", required_argument, NULL, O_CERT},
		{"tls-key", required_argument, NULL, O_KEY},
		{"cacert", required_argument, NULL, O_CACERT},
		{"allow-plain-http", no_argument, NULL, O_PLAIN},
		{"merge", required_argument, NULL, O_MERGE},
		{"max-stream-size", required_argument, NULL, O_MAX_STREAM},
		{"idle-timeout", required_argument, NULL, O_IDLE},
		{"stream-timeout", required_argument, NULL, O_STREAM_TIMEOUT},
		{"header-timeout", required_argument, NULL, O_HEADER_TIMEOUT},
		{"max-connections-per-address", required_argument, NULL, O_PER_ADDRESS},
		{"allow-replay", no_argument, NULL, O_ALLOW_REPLAY},
		/* for tests: make a receiver fail at a chosen point (docs/migration.md) */
		{"test-fault", required_argument, NULL, O_TEST_FAULT},
		{"stats", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct wasp_config cfg;
	struct wasp_restore_opts ro = {0};
	struct wasp_runner_opts rn;
	struct wasp_listen_opts lo = {0};
	const char *listen = NULL, *token = NULL, *token_file = NULL, *merge = NULL;
	const char *cacert = NULL;
	bool stats = false, keep = false, plain = false;
	int c;

	tool_name = "wasp-restore";
	tool_block_sigusr1();

	wasp_config_init(&cfg);
	wasp_runner_opts_init(&rn);
	ro.config = &cfg;
	opterr = 0; /* one line of ours instead of getopt\'s two */
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
			rn.timeout_ns = tool_duration_arg("--timeout", optarg, "500ms or 2s");
			break;
		case O_NOSTDIN:
			cfg.no_stdin = true;
			break;
		case O_NOMAP:
			ro.no_map = true;
			break;
		case O_FILES:
			if (!strcmp(optarg, "rollback"))
				ro.files = WASP_FILES_ROLLBACK;
			else if (!strcmp(optarg, "strict"))
				ro.files = WASP_FILES_STRICT;
			else if (!strcmp(optarg, "ignore"))
				ro.files = WASP_FILES_IGNORE;
			else
				tool_die("--files: '%s' is not rollback, strict or ignore", optarg);
			break;
		case O_SIMCPUID:
			ro.simulate_missing_cpuid = optarg;
			break;
		case O_LISTEN:
			listen = optarg;
			break;
		case O_TOKEN:
			token = optarg;
			break;
		case O_TOKEN_FILE:
			token_file = optarg;
			break;
		case O_KEEP:
			keep = true;
			break;
		case O_CERT:
			lo.tls_cert = optarg;
			break;
		case O_KEY:
			lo.tls_key = optarg;
			break;
		case O_CACERT:
			cacert = optarg;
			break;
		case O_PLAIN:
			plain = true;
			break;
		case O_MERGE:
			if (!*optarg)
				tool_die("--merge: empty file name");
			merge = optarg;
			break;
		case O_TEST_FAULT:
			if (strcmp(optarg, "die-before-resume") && strcmp(optarg, "drop-answer") &&
			    strcmp(optarg, "forget-answer"))
				tool_die("--test-fault: die-before-resume, drop-answer or forget-answer");
			lo.test_fault = optarg;
			break;
		case O_MAX_STREAM:
			ro.max_stream_bytes = tool_size_arg("--max-stream-size", optarg, "512M or 8G");
			break;
		case O_IDLE:
			lo.idle_timeout_ns = tool_duration_arg("--idle-timeout", optarg, "30s");
			break;
		case O_STREAM_TIMEOUT:
			lo.stream_timeout_ns = tool_duration_arg("--stream-timeout", optarg, "10m");
			break;
		case O_HEADER_TIMEOUT:
			lo.header_timeout_ns = tool_duration_arg("--header-timeout", optarg, "5s");
			break;
		case O_PER_ADDRESS: {
			char *end;
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 1 || n > WASP_LISTEN_MAX_CONNECTIONS)
				tool_die("--max-connections-per-address: '%s' is not a number from 1 to %u",
					 optarg, WASP_LISTEN_MAX_CONNECTIONS);
			lo.max_connections_per_address = (unsigned)n;
			break;
		}
		case O_ALLOW_REPLAY:
			lo.allow_replay = true;
			break;
		case 's':
			stats = true;
			break;
		case 'h':
			printf(usage, tool_run_usage);
			return 0;
		default:
			if (tool_run_option(c, optarg, &rn) || tool_run_config_option(c, optarg, &cfg))
				break;
			tool_bad_option(argv);
		}
	}
	tool_run_check(&rn);
	tool_run_resolve_points(&rn, NULL);
	token = tool_token(token, token_file);
	rn.sandbox_dir = cfg.sandbox_dir; /* for wasp-migrate --with-files onward */
	signal(SIGPIPE, SIG_IGN);

	if (merge) {
		if (listen)
			tool_die("--merge and --listen do not go together");
		if (optind >= argc)
			tool_die("--merge needs the chain: FULL [INC...]");
		struct wasp_xfer_opts mxo;
		wasp_xfer_opts_init(&mxo);
		mxo.s3_endpoint = rn.s3_endpoint;
		merge_chain(merge, argv + optind, argc - optind, &mxo);
		return 0;
	}
	if (listen) {
		if (optind != argc)
			tool_die("--listen takes no checkpoint file");
		if (!token)
			tool_die("--listen needs a token (--token, --token-file or WASP_MIGRATE_TOKEN)");
		char addr[128];
		parse_listen(listen, addr, sizeof addr, &lo.port);
		lo.addr = addr[0] ? addr : NULL;
		lo.token = token;
		lo.restore = ro;
		lo.files_dir = cfg.sandbox_dir;
		return listen_main(&lo, &rn, keep, listen);
	}
	if (keep || lo.tls_cert || lo.tls_key || lo.test_fault || lo.idle_timeout_ns ||
	    lo.stream_timeout_ns || lo.header_timeout_ns || lo.max_connections_per_address ||
	    lo.allow_replay)
		tool_die("--keep-listening, --tls-cert, --tls-key, --idle-timeout, --stream-timeout, "
			 "--header-timeout, --max-connections-per-address, --allow-replay "
			 "and --test-fault go with --listen");
	if (optind >= argc)
		tool_die("give a checkpoint file, - for stdin, a URL or a chain (try --help)");

	struct wasp_virtine *v;
	struct wasp_ckpt_stats st;
	int r, n = argc - optind;
	const char *path = argv[optind];
	memset(&st, 0, sizeof st);
	struct wasp_xfer_opts xo;
	wasp_xfer_opts_init(&xo);
	xo.token = token;
	xo.ca_file = cacert;
	xo.allow_plain_http = plain;
	xo.s3_endpoint = rn.s3_endpoint; /* the source's server and the checkpoints' */
	bool urls = false;
	for (int i = optind; i < argc; i++) {
		if (n > 1 && (!strcmp(argv[i], "-") ||
			      (strstr(argv[i], "://") && strncmp(argv[i], "s3://", 5))))
			tool_die("a chain is made of files and s3:// objects: '%s' cannot be part of one",
				 argv[i]);
		urls = urls || tool_src_is_url(argv[i]);
	}
	if (!urls && n > 1) {
		r = wasp_ckpt_restore_files(&ro, (const char *const *)argv + optind, (size_t)n, &v, &st);
	} else if (!urls && strcmp(path, "-")) {
		r = wasp_ckpt_restore_file(&ro, path, &v, &st);
	} else {
		/* Read as streams: stdin, a URL, or a chain with objects in it. */
		struct tool_src srcs[64];
		const struct wasp_source *sp[64];
		char err[1024];
		if (n > 64)
			tool_die("a chain of %d checkpoints; at most 64", n);
		for (int i = 0; i < n; i++) {
			if (tool_src_open(&srcs[i], argv[optind + i], &xo, err, sizeof err) < 0) {
				while (i--)
					tool_src_close(&srcs[i]);
				tool_die("%s", err);
			}
			sp[i] = &srcs[i].src;
		}
		if (!strcmp(path, "-"))
			cfg.no_stdin = true; /* stdin carried the checkpoint */
		r = wasp_ckpt_restore_chain(&ro, sp, (size_t)n, &v, &st);
		snprintf(err, sizeof err, "%s", wasp_last_error());
		/* A failed download explains a failed restore better than the
		 * restore's "truncated" does. */
		bool fetched = true;
		for (int i = 0; i < n; i++)
			if (tool_src_close(&srcs[i]) < 0 && fetched) {
				fetched = false;
				snprintf(err, sizeof err, "%s", wasp_last_error());
			}
		if (!fetched && r == 0)
			wasp_virtine_destroy(v);
		if (!fetched || r < 0)
			tool_die("%s", err);
	}
	if (r < 0)
		tool_die("%s", wasp_last_error());
	if (st.unrestored[0])
		fprintf(stderr, "%s: note: this host did not restore: %s\n", tool_name, st.unrestored);
	if (st.files_put_back)
		fprintf(stderr, "%s: put back %llu file(s) the guest changed after the checkpoint\n",
			tool_name, (unsigned long long)st.files_put_back);
	if (stats)
		fprintf(stderr,
			"%s: stats: %llu bytes, %llu pages in %llu chunks (%llu mapped); read %.2f ms "
			"(decompress %.2f ms), apply %.2f ms, total %.2f ms\n",
			tool_name, (unsigned long long)st.bytes, (unsigned long long)st.pages,
			(unsigned long long)st.chunks, (unsigned long long)st.mapped_pages,
			st.read_ns / 1e6, st.decompress_ns / 1e6,
			st.apply_ns / 1e6, st.total_ns / 1e6);

	struct wasp_runner_result res;
	tool_run_virtine(v, &rn, &res);
	int status = tool_exit_status(&res, rn.timeout_ns);
	wasp_virtine_destroy(v);
	return status;
}
