/*
 * control_proto.c: the control socket's lines, formatted and parsed in one
 * place (control_proto.h), so the runner and its clients cannot drift
 * apart: a field both ends must know is named once here, and
 * tests/runner/test_ctlproto.c round-trips every message through both halves.
 *
 * The parsers keep the leniency the protocol has always had (docs/
 * triggers.md): a reply's fields are found by name wherever they stand and
 * a missing one reads as 0 or "", so a newer runner may add fields; a
 * request's unknown parameter is refused, so a client learns at once that
 * this runner does not do what it asks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_proto.h"
#include "migrate_internal.h"

/* ---- framing --------------------------------------------------------------- */

size_t wasp_ctl_frame(char *line, size_t cap)
{
	size_t n = strlen(line);
	if (n + 2 > cap)
		n = cap - 2;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	line[n] = '\0';
	return n;
}

void wasp_ctl_unframe(char *line)
{
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
}

/* Appends to a line being built; a line that would not fit is marked
 * (*o past cap) and never written past its end. */
static void add(char *buf, size_t cap, size_t *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t cap, size_t *o, const char *fmt, ...)
{
	if (*o >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *o, cap - *o, fmt, ap);
	va_end(ap);
	*o += n < 0 ? cap : (size_t)n;
}

/* The value of ` key=` in a line (which must start with a space or have
 * the key after one), decoded; "" when absent. A value that does not
 * decode is kept as it came. */
static void field_value(const char *line, const char *key, char *out, size_t cap)
{
	char pat[40], raw[WASP_CTL_MSG_MAX];
	snprintf(pat, sizeof pat, " %s=", key);
	out[0] = '\0';
	const char *p = strstr(line, pat);
	if (!p)
		return;
	p += strlen(pat);
	size_t n = strcspn(p, " ");
	if (n >= sizeof raw)
		n = sizeof raw - 1;
	memcpy(raw, p, n);
	raw[n] = '\0';
	if (wasp_pct_decode(raw, out, cap) < 0)
		snprintf(out, cap, "%.*s", (int)(cap - 1), raw);
}

static double field_num(const char *line, const char *key)
{
	char v[64];
	field_value(line, key, v, sizeof v);
	return v[0] ? strtod(v, NULL) : 0;
}

/* Integers beyond a double's 53 bits (a CLOCK_MONOTONIC ns) read exactly. */
static uint64_t field_u64(const char *line, const char *key)
{
	char v[64];
	field_value(line, key, v, sizeof v);
	return v[0] ? strtoull(v, NULL, 10) : 0;
}

/* ---- errors ---------------------------------------------------------------- */

void wasp_ctl_format_error(char *buf, size_t cap, const char *msg)
{
	snprintf(buf, cap, "error %s", msg);
}

const char *wasp_ctl_parse_error(const char *line)
{
	return strncmp(line, "error ", 6) ? NULL : line + 6;
}

/* ---- ping -------------------------------------------------------------------- */

void wasp_ctl_format_pong(char *buf, size_t cap, int pid, const char *name)
{
	snprintf(buf, cap, "ok wasp-run pid=%d name=%s proto=%d", pid, name && *name ? name : "-",
		 WASP_CONTROL_PROTO);
}

int wasp_ctl_parse_pong(const char *line, struct wasp_runner_peer *peer)
{
	char name[WASP_RUNNER_NAME_MAX + 2];
	int pid, proto, n = 0;
	if (sscanf(line, "ok wasp-run pid=%d name=%65s proto=%d%n", &pid, name, &proto, &n) != 3 ||
	    line[n] != '\0' || pid <= 0 || strlen(name) > WASP_RUNNER_NAME_MAX)
		return -EPROTO;
	peer->pid = pid;
	snprintf(peer->name, sizeof peer->name, "%s", strcmp(name, "-") ? name : "");
	return 0;
}

/* ---- checkpoint -------------------------------------------------------------- */

int wasp_ctl_format_checkpoint(char *buf, size_t cap, const struct wasp_checkpoint_request *req)
{
	char to[768] = "", keep[768] = "";
	size_t o = 0;
	if (req->to)
		wasp_pct_encode(req->to, to, sizeof to);
	if (req->keep)
		wasp_pct_encode(req->keep, keep, sizeof keep);
	add(buf, cap, &o, "checkpoint stop=%d kind=%s%s%s%s%s%s%s", req->stop ? 1 : 0,
	    req->incremental ? "incremental" : "full", req->mappable ? " format=mappable" : "",
	    to[0] ? " to=" : "", to, keep[0] ? " keep=" : "", keep,
	    req->confirm ? " confirm=1" : "");
	return o < cap ? 0 : -E2BIG;
}

int wasp_ctl_parse_checkpoint(char *args, struct wasp_ctl_checkpoint *out, char *bad, size_t cap)
{
	char *save = NULL;
	memset(out, 0, sizeof *out);
	for (char *kv = strtok_r(args ? args : (char[]){""}, " ", &save); kv;
	     kv = strtok_r(NULL, " ", &save)) {
		if (!strcmp(kv, "stop=0") || !strcmp(kv, "stop=1")) {
			out->stop = kv[5] == '1';
		} else if (!strcmp(kv, "kind=full")) {
			out->incremental = false;
		} else if (!strcmp(kv, "kind=incremental")) {
			out->incremental = true;
		} else if (!strcmp(kv, "format=compressed")) {
			out->mappable = false;
		} else if (!strcmp(kv, "format=mappable")) {
			out->mappable = true;
		} else if (!strcmp(kv, "confirm=0") || !strcmp(kv, "confirm=1")) {
			out->confirm = kv[8] == '1';
		} else if (!strncmp(kv, "to=", 3)) {
			/* Only for log lines: an undecodable one is shown as '?'. */
			if (wasp_pct_decode(kv + 3, out->to, sizeof out->to) < 0)
				snprintf(out->to, sizeof out->to, "?");
		} else if (!strncmp(kv, "keep=", 5)) {
			if (wasp_pct_decode(kv + 5, out->keep, sizeof out->keep) < 0 ||
			    out->keep[0] != '/') {
				out->keep[0] = '\0';
				snprintf(bad, cap, "keep= must be an absolute path");
				return -EINVAL;
			}
		} else {
			snprintf(bad, cap, "unknown parameter '%.64s'", kv);
			return -EINVAL;
		}
	}
	return 0;
}

void wasp_ctl_format_checkpoint_reply(char *buf, size_t cap,
				      const struct wasp_checkpoint_reply *rep, bool commit_wait)
{
	char kept[800] = "";
	if (rep->kept[0]) {
		strcpy(kept, " kept=");
		wasp_pct_encode(rep->kept, kept + 6, sizeof kept - 6);
	}
	snprintf(buf, cap, "ok bytes=%llu ms=%.3f%s id=%s kind=%s%s%s",
		 (unsigned long long)rep->bytes, rep->ms, rep->stopped ? " stopped=1" : "",
		 rep->id[0] ? rep->id : "-", rep->incremental ? "incremental" : "full", kept,
		 commit_wait ? " commit=wait" : "");
}

int wasp_ctl_parse_checkpoint_reply(const char *line, struct wasp_checkpoint_reply *rep,
				    bool *commit_wait)
{
	unsigned long long bytes;
	double ms;
	int n = 0;
	if (sscanf(line, "ok bytes=%llu ms=%lf%n", &bytes, &ms, &n) != 2)
		return -EPROTO;
	rep->bytes = bytes;
	rep->ms = ms;
	rep->stopped = strstr(line + n, " stopped=1") != NULL;
	const char *id = strstr(line + n, " id=");
	if (!id || sscanf(id, " id=%32[0-9a-f]", rep->id) != 1)
		rep->id[0] = '\0'; /* "-": none (or an old runner's answer) */
	rep->incremental = strstr(line + n, " kind=incremental") != NULL;
	field_value(line + n, "kept", rep->kept, sizeof rep->kept);
	*commit_wait = strstr(line + n, " commit=wait") != NULL;
	return 0;
}

/* ---- migrate ----------------------------------------------------------------- */

int wasp_ctl_format_migrate(char *buf, size_t cap, const struct wasp_migrate_request *req)
{
	char enc[3 * 1024 + 1];
	size_t o = 0;

#define ADD_STR(key, val)                                                  \
	do {                                                               \
		if ((val) && *(val)) {                                     \
			wasp_pct_encode((val), enc, sizeof enc);           \
			add(buf, cap, &o, " %s=%s", key, enc);             \
		}                                                          \
	} while (0)
#define ADD_NUM(key, val)                                                  \
	do {                                                               \
		if (val)                                                   \
			add(buf, cap, &o, " %s=%llu", key, (unsigned long long)(val)); \
	} while (0)
	add(buf, cap, &o, "%s", WASP_CTL_MIGRATE);
	ADD_STR("url", req->url);
	ADD_STR("token", req->token);
	ADD_STR("cacert", req->ca_file);
	ADD_STR("hold", req->hold_path);
	ADD_NUM("max_downtime_us", req->max_downtime_ns / 1000);
	ADD_NUM("max_rounds", req->max_rounds);
	ADD_NUM("bandwidth", req->bandwidth_limit);
	ADD_NUM("commit_timeout_ms", req->commit_timeout_ns / 1000000);
	ADD_NUM("query_timeout_ms", req->query_timeout_ns / 1000000);
	ADD_NUM("stall_timeout_ms", req->stall_timeout_ns / 1000000);
	if (req->with_files)
		add(buf, cap, &o, " with_files=1");
	if (req->allow_plain_http)
		add(buf, cap, &o, " plain_http=1");
#undef ADD_STR
#undef ADD_NUM
	memset(enc, 0, sizeof enc); /* it held the token */
	/* Room for the newline that frames it. */
	return o + 2 <= cap ? 0 : -E2BIG;
}

/* Copies src when it fits; false when it does not. */
static bool set_field(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

int wasp_ctl_parse_migrate(char *args, struct wasp_ctl_migrate *out, char *bad, size_t cap)
{
	char *save = NULL, val[1024];
	int err = 0;
	for (char *kv = strtok_r(args ? args : (char[]){""}, " ", &save); kv && !err;
	     kv = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq || wasp_pct_decode(eq + 1, val, sizeof val) < 0) {
			snprintf(bad, cap, "bad parameter '%.64s'", kv);
			err = -EINVAL;
			break;
		}
		*eq = '\0';
		bool long_val = false;
		char *end = NULL;
		unsigned long long u = strtoull(val, &end, 10);
		bool num = end && end != val && !*end;
		if (!strcmp(kv, "url"))
			long_val = !set_field(out->url, sizeof out->url, val);
		else if (!strcmp(kv, "token"))
			long_val = !set_field(out->token, sizeof out->token, val);
		else if (!strcmp(kv, "cacert"))
			long_val = !set_field(out->ca_file, sizeof out->ca_file, val);
		else if (!strcmp(kv, "hold"))
			long_val = !set_field(out->hold, sizeof out->hold, val);
		else if (!strcmp(kv, "max_downtime_us") && num)
			out->mo.max_downtime_ns = u * 1000ull;
		else if (!strcmp(kv, "max_rounds") && num && u <= WASP_MIGRATE_MAX_ROUNDS)
			out->mo.max_rounds = (unsigned)u;
		else if (!strcmp(kv, "bandwidth") && num)
			out->mo.bandwidth_limit = u;
		else if (!strcmp(kv, "commit_timeout_ms") && num)
			out->xo.commit_timeout_ns = u * 1000000ull;
		else if (!strcmp(kv, "query_timeout_ms") && num)
			out->xo.query_timeout_ns = u * 1000000ull;
		else if (!strcmp(kv, "stall_timeout_ms") && num)
			out->xo.stall_timeout_ns = u * 1000000ull;
		else if (!strcmp(kv, "with_files") && num && u <= 1)
			out->with_files = u;
		else if (!strcmp(kv, "plain_http") && num && u <= 1)
			out->xo.allow_plain_http = u;
		else {
			snprintf(bad, cap, "bad parameter '%.64s'", kv);
			err = -EINVAL;
		}
		if (long_val) {
			snprintf(bad, cap, "%.32s: too long", kv);
			err = -EINVAL;
		}
	}
	memset(val, 0, sizeof val); /* it may have held the token */
	return err;
}

void wasp_ctl_format_progress(char *buf, size_t cap, const struct wasp_migrate_progress *p,
			      const char *id)
{
	const char *ph = p->phase ? p->phase : "";
	if (!strcmp(ph, "connected"))
		snprintf(buf, cap, "progress phase=connected id=%s", id && *id ? id : "-");
	else if (!strcmp(ph, "precopy"))
		snprintf(buf, cap,
			 "progress phase=precopy round=%u pages=%llu bytes=%llu dirty=%llu "
			 "dirty_rate=%.0f bw=%.0f expected_ms=%.3f elapsed_ms=%.1f",
			 p->round, (unsigned long long)p->pages, (unsigned long long)p->bytes,
			 (unsigned long long)p->dirty_pages, p->dirty_rate, p->bandwidth,
			 p->expected_downtime_ms, p->elapsed_ms);
	else if (!strcmp(ph, "stop"))
		snprintf(buf, cap, "progress phase=stop round=%u dirty=%llu expected_ms=%.3f", p->round,
			 (unsigned long long)p->dirty_pages, p->expected_downtime_ms);
	else
		snprintf(buf, cap, "progress phase=%s", ph);
}

int wasp_ctl_parse_progress(const char *line, struct wasp_migrate_progress *p, char *phase,
			    size_t cap)
{
	if (strncmp(line, "progress ", 9))
		return 0;
	line += 8; /* from the space before the first field */
	memset(p, 0, sizeof *p);
	field_value(line, "phase", phase, cap);
	p->phase = phase;
	p->round = (unsigned)field_u64(line, "round");
	p->pages = field_u64(line, "pages");
	p->bytes = field_u64(line, "bytes");
	p->dirty_pages = field_u64(line, "dirty");
	p->dirty_rate = field_num(line, "dirty_rate");
	p->bandwidth = field_num(line, "bw");
	p->expected_downtime_ms = field_num(line, "expected_ms");
	p->elapsed_ms = field_num(line, "elapsed_ms");
	return 1;
}

/* The fields of a migration's last line, in the order they are written:
 * each is named once, for the runner's line and the client's reading. */
enum mtype {
	M_STR_NONE, /* percent-encoded; "" goes as "-" and "-" reads back as "" */
	M_STR_DASH, /* the same, but "-" reads back as "-" (what clients have always seen) */
	M_STR,      /* percent-encoded as it is */
	M_UINT,
	M_U64,
	M_BOOL,     /* 0 or 1 */
	M_F0,       /* doubles, with 0 or 3 decimals */
	M_F3,
};
struct mfield {
	const char *key;
	enum mtype type;
	size_t off, cap;
};
#define MF(key, type, field) {key, type, offsetof(struct wasp_migrate_reply, field), \
	sizeof(((struct wasp_migrate_reply *)0)->field)}
static const struct mfield migrate_fields[] = {
	MF("id", M_STR_NONE, id),
	MF("total_ms", M_F3, total_ms),
	MF("downtime_ms", M_F3, downtime_ms),
	MF("precopy_ms", M_F3, precopy_ms),
	MF("settle_ms", M_F3, settle_ms),
	MF("rounds", M_UINT, rounds),
	MF("bytes", M_U64, bytes),
	MF("raw", M_U64, raw_bytes),
	MF("files", M_U64, file_bytes),
	MF("final_pages", M_U64, final_pages),
	MF("dirty_rate", M_F0, dirty_rate),
	MF("bw", M_F0, bandwidth),
	MF("expected_ms", M_F3, expected_downtime_ms),
	MF("files_ms", M_F3, files_ms),
	MF("finish_ms", M_F3, finish_ms),
	MF("commit_ms", M_F3, commit_ms),
	MF("stop", M_STR_DASH, stop_reason),
	MF("pages", M_STR_DASH, round_pages),
	MF("where", M_STR_NONE, remote_target),
	MF("stopped_ns", M_U64, stopped_ns),
};
/* Only in "fail held", then only in "fail held" and "fail resumed". */
static const struct mfield held_fields[] = {
	MF("hold", M_STR, hold_path),
	MF("saved", M_BOOL, hold_saved),
};
static const struct mfield msg_field = MF("msg", M_STR, message);
#undef MF

static void format_field(char *buf, size_t cap, size_t *o, const struct mfield *f,
			 const struct wasp_migrate_reply *rep)
{
	const char *at = (const char *)rep + f->off;
	char enc[3 * 1024 + 1];
	switch (f->type) {
	case M_STR_NONE:
	case M_STR_DASH:
	case M_STR:
		wasp_pct_encode(*at || f->type == M_STR ? at : "-", enc, sizeof enc);
		add(buf, cap, o, " %s=%s", f->key, enc);
		break;
	case M_UINT:
		add(buf, cap, o, " %s=%u", f->key, *(const unsigned *)at);
		break;
	case M_U64:
		add(buf, cap, o, " %s=%llu", f->key, (unsigned long long)*(const uint64_t *)at);
		break;
	case M_BOOL:
		add(buf, cap, o, " %s=%d", f->key, *(const bool *)at ? 1 : 0);
		break;
	case M_F0:
		add(buf, cap, o, " %s=%.0f", f->key, *(const double *)at);
		break;
	case M_F3:
		add(buf, cap, o, " %s=%.3f", f->key, *(const double *)at);
		break;
	}
}

static void parse_field(const char *line, const struct mfield *f, struct wasp_migrate_reply *rep)
{
	char *at = (char *)rep + f->off;
	switch (f->type) {
	case M_STR_NONE:
	case M_STR_DASH:
	case M_STR:
		field_value(line, f->key, at, f->cap);
		if (f->type == M_STR_NONE && !strcmp(at, "-"))
			at[0] = '\0';
		break;
	case M_UINT:
		*(unsigned *)at = (unsigned)field_u64(line, f->key);
		break;
	case M_U64:
		*(uint64_t *)at = field_u64(line, f->key);
		break;
	case M_BOOL:
		*(bool *)at = field_num(line, f->key) != 0;
		break;
	case M_F0:
	case M_F3:
		*(double *)at = field_num(line, f->key);
		break;
	}
}

/* The words that start a migration's last line, by outcome. */
static const char *const outcome_words[] = {
	[WASP_MIGRATED] = "ok migrated",
	[WASP_MIGRATE_RESUMED] = "fail resumed",
	[WASP_MIGRATE_HELD] = "fail held",
};

void wasp_ctl_format_migrate_reply(char *buf, size_t cap, const struct wasp_migrate_reply *rep)
{
	size_t o = 0;
	enum wasp_migrate_outcome out = rep->outcome;
	if (out != WASP_MIGRATED && out != WASP_MIGRATE_HELD)
		out = WASP_MIGRATE_RESUMED;
	buf[0] = '\0';
	add(buf, cap, &o, "%s", outcome_words[out]);
	for (size_t i = 0; i < sizeof migrate_fields / sizeof *migrate_fields; i++)
		format_field(buf, cap, &o, &migrate_fields[i], rep);
	if (out == WASP_MIGRATE_HELD)
		for (size_t i = 0; i < sizeof held_fields / sizeof *held_fields; i++)
			format_field(buf, cap, &o, &held_fields[i], rep);
	if (out != WASP_MIGRATED)
		format_field(buf, cap, &o, &msg_field, rep);
}

int wasp_ctl_parse_migrate_reply(const char *line, struct wasp_migrate_reply *rep)
{
	for (int k = WASP_MIGRATED; k <= WASP_MIGRATE_HELD; k++) {
		size_t n = strlen(outcome_words[k]);
		if (strncmp(line, outcome_words[k], n) || (line[n] != ' ' && line[n] != '\0'))
			continue;
		line += n;
		memset(rep, 0, sizeof *rep);
		rep->outcome = (enum wasp_migrate_outcome)k;
		for (size_t i = 0; i < sizeof migrate_fields / sizeof *migrate_fields; i++)
			parse_field(line, &migrate_fields[i], rep);
		for (size_t i = 0; i < sizeof held_fields / sizeof *held_fields; i++)
			parse_field(line, &held_fields[i], rep);
		parse_field(line, &msg_field, rep);
		return 0;
	}
	return -EPROTO;
}
