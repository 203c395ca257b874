/*
 * test_ctlproto: the control socket's lines (migrate/control_proto.c)
 * without a runner or KVM. Every message kind goes through format and
 * back through parse with every field set to a value of its own, so a
 * field one side drops or misnames fails here; a few exact lines pin the
 * wire text older clients and docs/triggers.md rely on; malformed lines
 * are refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "control_proto.h"
#include "harness.h"
#include "migrate_internal.h"

#define LINE(buf) char buf[WASP_CTL_MSG_MAX]

#define CHECK_STR(got, want) CHECK(!strcmp((got), (want)), "got '%s', want '%s'", (got), (want))

/* A string with everything that must be escaped: spaces, '%', '=', a
 * newline, a byte above ASCII. */
#define AWKWARD "/tmp/a dir/50% of=it\n\xc3\xa9"

static void framing(void)
{
	char line[16] = "ok\nthen\rmore";
	size_t n = wasp_ctl_frame(line, sizeof line);
	CHECK_STR(line, "ok then more\n");
	CHECK(n == strlen(line), "length %zu", n);
	char tight[6] = "abcde";
	wasp_ctl_frame(tight, sizeof tight);
	CHECK_STR(tight, "abcd\n");
	wasp_ctl_unframe(line);
	CHECK_STR(line, "ok then more");
}

static void error_line(void)
{
	LINE(buf);
	wasp_ctl_format_error(buf, sizeof buf, "no such thing");
	CHECK_STR(buf, "error no such thing");
	const char *m = wasp_ctl_parse_error(buf);
	CHECK(m && !strcmp(m, "no such thing"), "message '%s'", m ? m : "(null)");
	CHECK(!wasp_ctl_parse_error("ok bytes=1 ms=2"), "an ok line read as an error");
	CHECK(!wasp_ctl_parse_error("errors"), "'errors' read as an error");
}

static void ping(void)
{
	LINE(buf);
	struct wasp_runner_peer p;

	wasp_ctl_format_pong(buf, sizeof buf, 4242, "job.1");
	CHECK_STR(buf, "ok wasp-run pid=4242 name=job.1 proto=2");
	memset(&p, 0xff, sizeof p);
	CHECK(wasp_ctl_parse_pong(buf, &p) == 0, "%s", buf);
	CHECK(p.pid == 4242, "pid %d", (int)p.pid);
	CHECK_STR(p.name, "job.1");

	/* No name goes as "-" and reads back as "". */
	wasp_ctl_format_pong(buf, sizeof buf, 7, NULL);
	CHECK_STR(buf, "ok wasp-run pid=7 name=- proto=2");
	CHECK(wasp_ctl_parse_pong(buf, &p) == 0 && p.pid == 7 && !p.name[0], "'%s'", p.name);

	char longname[WASP_RUNNER_NAME_MAX + 2];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	char lname[256];
	snprintf(lname, sizeof lname, "ok wasp-run pid=1 name=%s proto=2", longname);
	const char *bad[] = {"", "ok", "ok wasp-run pid=0 name=x proto=2",
			     "ok wasp-run pid=-3 name=x proto=2", "ok wasp-run pid=1 name=x",
			     "ok wasp-run pid=1 name=x proto=2 more", "ok other pid=1 name=x proto=2",
			     "error " WASP_CTL_DENIED, lname};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(wasp_ctl_parse_pong(bad[i], &p) == -EPROTO, "accepted '%s'", bad[i]);
}

static void checkpoint_request(void)
{
	LINE(buf);
	struct wasp_ctl_checkpoint c;
	char why[160];

	struct wasp_checkpoint_request req = {.stop = true, .incremental = true, .mappable = true,
					      .to = AWKWARD, .keep = "/var/keep it"};
	CHECK(wasp_ctl_format_checkpoint(buf, sizeof buf, &req) == 0, "format");
	CHECK_STR(buf, "checkpoint stop=1 kind=incremental format=mappable "
		       "to=/tmp/a%20dir/50%25%20of=it%0A%C3%A9 keep=/var/keep%20it");
	CHECK(!strncmp(buf, WASP_CTL_CHECKPOINT " ", strlen(WASP_CTL_CHECKPOINT) + 1), "word");
	/* A control byte never comes out of the decoder: to= reads as '?'. */
	CHECK(wasp_ctl_parse_checkpoint(buf + strlen(WASP_CTL_CHECKPOINT), &c, why, sizeof why) == 0,
	      "%s", why);
	CHECK_STR(c.to, "?");
	CHECK_STR(c.keep, req.keep);

	/* A destination without control bytes goes through whole. */
	req.to = "/tmp/a dir/50% of=it \xc3\xa9";
	CHECK(wasp_ctl_format_checkpoint(buf, sizeof buf, &req) == 0, "format");
	CHECK(wasp_ctl_parse_checkpoint(buf + strlen(WASP_CTL_CHECKPOINT), &c, why, sizeof why) == 0,
	      "%s", why);
	CHECK(c.stop && c.incremental && c.mappable && !c.confirm, "flags %d %d %d %d", c.stop,
	      c.incremental, c.mappable, c.confirm);
	CHECK_STR(c.to, req.to);
	CHECK_STR(c.keep, req.keep);

	/* A pipe whose reader commits (wasp-ckpt -o s3://). */
	struct wasp_checkpoint_request conf = {.stop = true, .confirm = true};
	CHECK(wasp_ctl_format_checkpoint(buf, sizeof buf, &conf) == 0, "format");
	CHECK_STR(buf, "checkpoint stop=1 kind=full confirm=1");
	CHECK(wasp_ctl_parse_checkpoint(buf + strlen(WASP_CTL_CHECKPOINT), &c, why, sizeof why) == 0,
	      "%s", why);
	CHECK(c.stop && c.confirm, "confirm %d", c.confirm);

	/* The defaults, with every flag off and no strings. */
	struct wasp_checkpoint_request none = {0};
	CHECK(wasp_ctl_format_checkpoint(buf, sizeof buf, &none) == 0, "format");
	CHECK_STR(buf, "checkpoint stop=0 kind=full");
	memset(&c, 0xff, sizeof c);
	CHECK(wasp_ctl_parse_checkpoint(buf + strlen(WASP_CTL_CHECKPOINT), &c, why, sizeof why) == 0,
	      "%s", why);
	CHECK(!c.stop && !c.incremental && !c.mappable && !c.confirm && !c.to[0] && !c.keep[0],
	      "defaults");
	char empty[] = "";
	CHECK(wasp_ctl_parse_checkpoint(empty, &c, why, sizeof why) == 0, "no arguments");
	CHECK(wasp_ctl_parse_checkpoint(NULL, &c, why, sizeof why) == 0, "NULL arguments");

	/* Only the log's destination may be undecodable ('?'). */
	char odd[] = " to=%zz format=compressed";
	CHECK(wasp_ctl_parse_checkpoint(odd, &c, why, sizeof why) == 0 && !strcmp(c.to, "?"),
	      "to '%s'", c.to);

	const char *bad[] = {"stop=2", "stop", "kind=weird", "format=raw", "keep=relative/path",
			     "keep=%zz", "keep=", "bogus=1", "stop=1 kind=full extra", "confirm=2"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char args[128];
		snprintf(args, sizeof args, " %s", bad[i]);
		why[0] = '\0';
		CHECK(wasp_ctl_parse_checkpoint(args, &c, why, sizeof why) == -EINVAL && why[0],
		      "accepted '%s'", bad[i]);
	}
}

static void checkpoint_reply(void)
{
	LINE(buf);
	struct wasp_checkpoint_reply in = {.bytes = 123456789012ull, .ms = 12.125, .stopped = true,
					   .id = "0123456789abcdef0123456789abcdef",
					   .incremental = true, .kept = "/run/wasp/4242 held%.wckpt"};
	struct wasp_checkpoint_reply out;
	bool wait = false;

	wasp_ctl_format_checkpoint_reply(buf, sizeof buf, &in, true);
	CHECK_STR(buf, "ok bytes=123456789012 ms=12.125 stopped=1 id=0123456789abcdef0123456789abcdef "
		       "kind=incremental kept=/run/wasp/4242%20held%25.wckpt commit=wait");
	memset(&out, 0, sizeof out);
	CHECK(wasp_ctl_parse_checkpoint_reply(buf, &out, &wait) == 0, "%s", buf);
	CHECK(out.bytes == in.bytes, "bytes %llu", (unsigned long long)out.bytes);
	CHECK(out.ms == in.ms, "ms %f", out.ms);
	CHECK(out.stopped, "stopped");
	CHECK_STR(out.id, in.id);
	CHECK(out.incremental, "incremental");
	CHECK_STR(out.kept, in.kept);
	CHECK(wait, "commit=wait");

	/* Every flag off: nothing left over from the last reply. */
	struct wasp_checkpoint_reply plain = {.bytes = 1, .ms = 0.5};
	wasp_ctl_format_checkpoint_reply(buf, sizeof buf, &plain, false);
	CHECK_STR(buf, "ok bytes=1 ms=0.500 id=- kind=full");
	CHECK(wasp_ctl_parse_checkpoint_reply(buf, &out, &wait) == 0, "%s", buf);
	CHECK(out.bytes == 1 && out.ms == 0.5 && !out.stopped && !out.id[0] && !out.incremental &&
		      !out.kept[0] && !wait,
	      "plain reply read as %llu %f %d '%s' %d '%s' %d", (unsigned long long)out.bytes,
	      out.ms, out.stopped, out.id, out.incremental, out.kept, wait);

	const char *bad[] = {"", "ok", "ok bytes=x ms=1", "ok ms=1 bytes=2", "ok bytes=1",
			     "error no checkpoint", "progress phase=stop"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(wasp_ctl_parse_checkpoint_reply(bad[i], &out, &wait) == -EPROTO, "accepted '%s'",
		      bad[i]);
}

static void migrate_request(void)
{
	LINE(buf);
	char why[160];
	struct wasp_migrate_request req = {
		.url = "https://dest.example:8443/in",
		.token = "s3cret token=%",
		.ca_file = "/etc/ssl/our ca.pem",
		.max_downtime_ns = 25000000,
		.bandwidth_limit = 1000000007,
		.commit_timeout_ns = 31000000000ull,
		.query_timeout_ns = 4000000000ull,
		.stall_timeout_ns = 5000000000ull,
		.max_rounds = 17,
		.with_files = true,
		.allow_plain_http = true,
		.hold_path = "/var/held here.wckpt",
	};
	CHECK(wasp_ctl_format_migrate(buf, sizeof buf, &req) == 0, "format");
	CHECK_STR(buf, "migrate url=https://dest.example:8443/in token=s3cret%20token=%25 "
		       "cacert=/etc/ssl/our%20ca.pem hold=/var/held%20here.wckpt max_downtime_us=25000 "
		       "max_rounds=17 bandwidth=1000000007 commit_timeout_ms=31000 query_timeout_ms=4000 "
		       "stall_timeout_ms=5000 with_files=1 plain_http=1");

	struct wasp_ctl_migrate m;
	memset(&m, 0, sizeof m);
	CHECK(wasp_ctl_parse_migrate(buf + strlen(WASP_CTL_MIGRATE), &m, why, sizeof why) == 0, "%s",
	      why);
	CHECK_STR(m.url, req.url);
	CHECK_STR(m.token, req.token);
	CHECK_STR(m.ca_file, req.ca_file);
	CHECK_STR(m.hold, req.hold_path);
	CHECK(m.mo.max_downtime_ns == req.max_downtime_ns, "downtime %llu",
	      (unsigned long long)m.mo.max_downtime_ns);
	CHECK(m.mo.max_rounds == req.max_rounds, "rounds %u", m.mo.max_rounds);
	CHECK(m.mo.bandwidth_limit == req.bandwidth_limit, "bandwidth %llu",
	      (unsigned long long)m.mo.bandwidth_limit);
	CHECK(m.xo.commit_timeout_ns == req.commit_timeout_ns, "commit %llu",
	      (unsigned long long)m.xo.commit_timeout_ns);
	CHECK(m.xo.query_timeout_ns == req.query_timeout_ns, "query %llu",
	      (unsigned long long)m.xo.query_timeout_ns);
	CHECK(m.xo.stall_timeout_ns == req.stall_timeout_ns, "stall %llu",
	      (unsigned long long)m.xo.stall_timeout_ns);
	CHECK(m.with_files, "with_files");
	CHECK(m.xo.allow_plain_http, "plain_http");

	/* Fields the request leaves out keep the runner's defaults. */
	struct wasp_migrate_request bare = {.url = "file:///tmp/x"};
	CHECK(wasp_ctl_format_migrate(buf, sizeof buf, &bare) == 0, "format");
	CHECK_STR(buf, "migrate url=file:///tmp/x");
	memset(&m, 0, sizeof m);
	wasp_xfer_opts_init(&m.xo);
	struct wasp_xfer_opts defaults = m.xo;
	m.mo.max_rounds = 9;
	CHECK(wasp_ctl_parse_migrate(buf + strlen(WASP_CTL_MIGRATE), &m, why, sizeof why) == 0, "%s",
	      why);
	CHECK(m.mo.max_rounds == 9 && m.xo.commit_timeout_ns == defaults.commit_timeout_ns &&
		      m.xo.query_timeout_ns == defaults.query_timeout_ns &&
		      m.xo.stall_timeout_ns == defaults.stall_timeout_ns && !m.with_files &&
		      !m.token[0],
	      "defaults changed");

	/* Too long to send. */
	char huge[3000];
	memset(huge, ' ', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	struct wasp_migrate_request big = {.url = huge, .token = huge};
	CHECK(wasp_ctl_format_migrate(buf, sizeof buf, &big) == -E2BIG, "a huge request fit");

	char longurl[1100] = "url=";
	memset(longurl + 4, 'u', 1050);
	const char *bad[] = {"url", "url=%zz", "max_rounds=101", "max_rounds=x", "with_files=2",
			     "plain_http=yes", "nosuch=1", "max_downtime_us=",
			     longurl};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char args[1200];
		snprintf(args, sizeof args, " url=http://x:1 %s", bad[i]);
		memset(&m, 0, sizeof m);
		why[0] = '\0';
		CHECK(wasp_ctl_parse_migrate(args, &m, why, sizeof why) == -EINVAL && why[0],
		      "accepted '%.40s'", bad[i]);
	}
}

static void progress(void)
{
	LINE(buf);
	char phase[32];
	struct wasp_migrate_progress out;
	struct wasp_migrate_progress pre = {.phase = "precopy", .round = 3, .pages = 1001,
					    .bytes = 4100000000ull, .dirty_pages = 77,
					    .dirty_rate = 1234, .bandwidth = 98765,
					    .expected_downtime_ms = 1.5, .elapsed_ms = 250.5};

	wasp_ctl_format_progress(buf, sizeof buf, &pre, NULL);
	CHECK_STR(buf, "progress phase=precopy round=3 pages=1001 bytes=4100000000 dirty=77 "
		       "dirty_rate=1234 bw=98765 expected_ms=1.500 elapsed_ms=250.5");
	CHECK(wasp_ctl_parse_progress(buf, &out, phase, sizeof phase) == 1, "%s", buf);
	CHECK_STR(out.phase, "precopy");
	CHECK(out.round == pre.round && out.pages == pre.pages && out.bytes == pre.bytes &&
		      out.dirty_pages == pre.dirty_pages && out.dirty_rate == pre.dirty_rate &&
		      out.bandwidth == pre.bandwidth &&
		      out.expected_downtime_ms == pre.expected_downtime_ms &&
		      out.elapsed_ms == pre.elapsed_ms,
	      "precopy read as round %u pages %llu bytes %llu dirty %llu rate %f bw %f exp %f el %f",
	      out.round, (unsigned long long)out.pages, (unsigned long long)out.bytes,
	      (unsigned long long)out.dirty_pages, out.dirty_rate, out.bandwidth,
	      out.expected_downtime_ms, out.elapsed_ms);

	struct wasp_migrate_progress stop = {.phase = "stop", .round = 5, .dirty_pages = 12,
					     .expected_downtime_ms = 0.25, .pages = 99};
	wasp_ctl_format_progress(buf, sizeof buf, &stop, NULL);
	CHECK_STR(buf, "progress phase=stop round=5 dirty=12 expected_ms=0.250");
	CHECK(wasp_ctl_parse_progress(buf, &out, phase, sizeof phase) == 1 &&
		      !strcmp(out.phase, "stop") && out.round == 5 && out.dirty_pages == 12 &&
		      out.expected_downtime_ms == 0.25 && out.pages == 0,
	      "stop read as %s %u %llu %f", out.phase, out.round,
	      (unsigned long long)out.dirty_pages, out.expected_downtime_ms);

	struct wasp_migrate_progress conn = {.phase = "connected"};
	wasp_ctl_format_progress(buf, sizeof buf, &conn, "0123456789abcdef0123456789abcdef");
	CHECK_STR(buf, "progress phase=connected id=0123456789abcdef0123456789abcdef");
	wasp_ctl_format_progress(buf, sizeof buf, &conn, "");
	CHECK_STR(buf, "progress phase=connected id=-");
	CHECK(wasp_ctl_parse_progress(buf, &out, phase, sizeof phase) == 1 &&
		      !strcmp(out.phase, "connected"),
	      "connected read as %s", out.phase);

	struct wasp_migrate_progress commit = {.phase = "commit", .round = 4};
	wasp_ctl_format_progress(buf, sizeof buf, &commit, NULL);
	CHECK_STR(buf, "progress phase=commit");

	const char *bad[] = {"", "progress", "progressive phase=x", "ok migrated id=-", "error x"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(wasp_ctl_parse_progress(bad[i], &out, phase, sizeof phase) == 0,
		      "'%s' read as progress", bad[i]);
}

/* A reply with every field its own value. */
static struct wasp_migrate_reply full_reply(enum wasp_migrate_outcome o)
{
	struct wasp_migrate_reply r = {
		.outcome = o,
		.id = "fedcba9876543210fedcba9876543210",
		.hold_path = "/var/held here.wckpt",
		.hold_saved = true,
		.rounds = 7,
		.bytes = 9000000001ull,
		.raw_bytes = 9000000002ull,
		.file_bytes = 4096,
		.final_pages = 33,
		.total_ms = 1500.125,
		.downtime_ms = 12.5,
		.precopy_ms = 1400.25,
		.dirty_rate = 5000,
		.bandwidth = 123456789,
		.expected_downtime_ms = 3.75,
		.files_ms = 1.125,
		.finish_ms = 2.25,
		.commit_ms = 4.5,
		.settle_ms = 0.875,
		.stop_reason = "round limit",
		.round_pages = "100,20,3",
		.remote_target = "job.2",
		.stopped_ns = 0x7fffffffffff1234ull, /* beyond a double's precision */
	};
	snprintf(r.message, sizeof r.message, "the receiver said: no %%room\nat all");
	return r;
}

static void check_reply(const struct wasp_migrate_reply *a, const struct wasp_migrate_reply *b,
			bool held, bool msg)
{
	CHECK(a->outcome == b->outcome, "outcome %d, want %d", b->outcome, a->outcome);
	CHECK_STR(b->id, a->id);
	CHECK_STR(b->message, msg ? a->message : "");
	CHECK_STR(b->hold_path, held ? a->hold_path : "");
	CHECK(b->hold_saved == (held && a->hold_saved), "hold_saved %d", b->hold_saved);
#define SAME(f) CHECK(a->f == b->f, #f " differs")
	SAME(rounds);
	SAME(bytes);
	SAME(raw_bytes);
	SAME(file_bytes);
	SAME(final_pages);
	SAME(total_ms);
	SAME(downtime_ms);
	SAME(precopy_ms);
	SAME(dirty_rate);
	SAME(bandwidth);
	SAME(expected_downtime_ms);
	SAME(files_ms);
	SAME(finish_ms);
	SAME(commit_ms);
	SAME(settle_ms);
	SAME(stopped_ns);
#undef SAME
	CHECK_STR(b->stop_reason, a->stop_reason);
	CHECK_STR(b->round_pages, a->round_pages);
	CHECK_STR(b->remote_target, a->remote_target);
}

static void migrate_reply(void)
{
	LINE(buf);
	struct wasp_migrate_reply in, out;

	in = full_reply(WASP_MIGRATED);
	wasp_ctl_format_migrate_reply(buf, sizeof buf, &in);
	CHECK_STR(buf, "ok migrated id=fedcba9876543210fedcba9876543210 total_ms=1500.125 "
		       "downtime_ms=12.500 precopy_ms=1400.250 settle_ms=0.875 rounds=7 "
		       "bytes=9000000001 raw=9000000002 files=4096 final_pages=33 dirty_rate=5000 "
		       "bw=123456789 expected_ms=3.750 files_ms=1.125 finish_ms=2.250 commit_ms=4.500 "
		       "stop=round%20limit pages=100,20,3 where=job.2 stopped_ns=9223372036854714932");
	CHECK(wasp_ctl_parse_migrate_reply(buf, &out) == 0, "%s", buf);
	check_reply(&in, &out, false, false);

	in = full_reply(WASP_MIGRATE_HELD);
	wasp_ctl_format_migrate_reply(buf, sizeof buf, &in);
	CHECK(!strncmp(buf, "fail held id=", 13), "%s", buf);
	CHECK(strstr(buf, " hold=/var/held%20here.wckpt saved=1 msg=the%20receiver%20said:%20no%20%25"
			  "room%0Aat%20all") != NULL,
	      "%s", buf);
	CHECK(wasp_ctl_parse_migrate_reply(buf, &out) == 0, "%s", buf);
	/* A newline cannot come back through the decoder: it is kept encoded. */
	CHECK_STR(out.message, "the%20receiver%20said:%20no%20%25room%0Aat%20all");
	snprintf(in.message, sizeof in.message, "the receiver said: no %%room at all");
	wasp_ctl_format_migrate_reply(buf, sizeof buf, &in);
	CHECK(wasp_ctl_parse_migrate_reply(buf, &out) == 0, "%s", buf);
	check_reply(&in, &out, true, true);

	in = full_reply(WASP_MIGRATE_RESUMED);
	snprintf(in.message, sizeof in.message, "connection refused");
	wasp_ctl_format_migrate_reply(buf, sizeof buf, &in);
	CHECK(!strncmp(buf, "fail resumed id=", 16) && !strstr(buf, " hold="), "%s", buf);
	CHECK(wasp_ctl_parse_migrate_reply(buf, &out) == 0, "%s", buf);
	check_reply(&in, &out, false, true);

	/* Empty strings: id and where go as "-" and read back as "", stop and
	 * pages as "-" (what wasp-migrate has always been given). */
	memset(&in, 0, sizeof in);
	in.outcome = WASP_MIGRATE_RESUMED;
	wasp_ctl_format_migrate_reply(buf, sizeof buf, &in);
	CHECK(strstr(buf, " id=- ") && strstr(buf, " stop=- pages=- where=- "), "%s", buf);
	CHECK(wasp_ctl_parse_migrate_reply(buf, &out) == 0, "%s", buf);
	CHECK(!out.id[0] && !out.remote_target[0] && !strcmp(out.stop_reason, "-") &&
		      !strcmp(out.round_pages, "-") && !out.message[0],
	      "empty fields read as '%s' '%s' '%s' '%s' '%s'", out.id, out.remote_target,
	      out.stop_reason, out.round_pages, out.message);

	const char *bad[] = {"", "ok", "ok migratedX id=-", "fail", "fail later", "fail heldover",
			     "progress phase=stop", "error it broke", "ok bytes=1 ms=1"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(wasp_ctl_parse_migrate_reply(bad[i], &out) == -EPROTO, "accepted '%s'", bad[i]);
}

static const struct test_case cases[] = {
	{"framing", framing},
	{"error", error_line},
	{"ping", ping},
	{"checkpoint_request", checkpoint_request},
	{"checkpoint_reply", checkpoint_reply},
	{"migrate_request", migrate_request},
	{"progress", progress},
	{"migrate_reply", migrate_reply},
};

int main(int argc, char **argv)
{
	return test_main(argc, argv, cases, sizeof cases / sizeof *cases, NULL, 0, "", false);
}
