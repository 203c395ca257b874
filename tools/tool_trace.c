/*
 * tool_trace.c: --trace for wasp-run (events as JSON lines) and the
 * summary wasp-inspect --trace prints. Format: docs/tracing.md.
 */
#define _GNU_SOURCE
#include "tool_trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool_util.h"

const char tool_trace_usage[] =
	"Tracing (docs/tracing.md):\n"
	"      --trace EVENTS    record events, comma-separated: exits, hypercalls,\n"
	"                        syscalls (a Linux program's), io, faults, steps\n"
	"                        (every instruction), all\n"
	"      --trace-out FILE  write them there as JSON lines (default stderr)\n"
	"      --trace-regs LIST registers recorded with each event (rax,...,r15,\n"
	"                        rip,rflags, all, none; default: none, rip for steps)\n"
	"      --trace-mem ADDR:LEN\n"
	"                        guest memory recorded (hex) with each event, LEN<=4096\n"
	"      --trace-steps N|DUR\n"
	"                        stop single-stepping after N instructions or DUR\n"
	"                        (the guest then runs on at full speed; default 100000)\n";

static const char *const reg_names[18] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
	"r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
};

static const struct {
	const char *name;
	unsigned bits;
} event_names[] = {
	{"exits", WASP_TRACE_BIT(WASP_TRACE_EXIT)},
	{"hypercalls", WASP_TRACE_BIT(WASP_TRACE_HYPERCALL)},
	{"io", WASP_TRACE_BIT(WASP_TRACE_IO)},
	{"faults", WASP_TRACE_BIT(WASP_TRACE_FAULT)},
	{"steps", WASP_TRACE_BIT(WASP_TRACE_STEP)},
	{"syscalls", WASP_TRACE_BIT(WASP_TRACE_SYSCALL)},
	{"all", WASP_TRACE_BIT(WASP_TRACE_EXIT) | WASP_TRACE_BIT(WASP_TRACE_HYPERCALL) |
			WASP_TRACE_BIT(WASP_TRACE_IO) | WASP_TRACE_BIT(WASP_TRACE_FAULT) |
			WASP_TRACE_BIT(WASP_TRACE_STEP) | WASP_TRACE_BIT(WASP_TRACE_SYSCALL)},
};

#define DEFAULT_MAX_STEPS 100000
#define MAX_MEM 4096

void tool_trace_init(struct tool_trace *tt)
{
	memset(tt, 0, sizeof *tt);
}

/* Calls fn on each comma-separated word of `list`. */
static void each_word(const char *opt, const char *list, void (*fn)(const char *opt, const char *w,
								     void *ctx), void *ctx)
{
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		tool_die("out of memory");
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
		fn(opt, w, ctx);
	free(copy);
}

static void add_event(const char *opt, const char *w, void *ctx)
{
	struct tool_trace *tt = ctx;
	for (size_t i = 0; i < sizeof event_names / sizeof *event_names; i++) {
		if (!strcmp(w, event_names[i].name)) {
			tt->events |= event_names[i].bits;
			return;
		}
	}
	tool_die("%s: unknown event '%s' (try exits, hypercalls, syscalls, io, faults, steps or all)", opt, w);
}

static void add_reg(const char *opt, const char *w, void *ctx)
{
	struct tool_trace *tt = ctx;
	if (!strcmp(w, "all")) {
		tt->regs = (1u << 18) - 1;
		return;
	}
	if (!strcmp(w, "none"))
		return;
	for (unsigned i = 0; i < 18; i++) {
		if (!strcmp(w, reg_names[i])) {
			tt->regs |= 1u << i;
			return;
		}
	}
	tool_die("%s: unknown register '%s' (try rax,...,r15, rip, rflags, all or none)", opt, w);
}

bool tool_trace_option(int c, const char *arg, struct tool_trace *tt)
{
	switch (c) {
	case TOOL_OPT_TRACE:
		if (!*arg)
			tool_die("--trace: no events (try hypercalls or steps)");
		each_word("--trace", arg, add_event, tt);
		return true;
	case TOOL_OPT_TRACE_OUT:
		if (!*arg)
			tool_die("--trace-out: empty path");
		tt->out_path = arg;
		return true;
	case TOOL_OPT_TRACE_REGS:
		tt->regs = 0;
		tt->regs_set = true;
		each_word("--trace-regs", arg, add_reg, tt);
		return true;
	case TOOL_OPT_TRACE_MEM: {
		char buf[64];
		snprintf(buf, sizeof buf, "%s", arg);
		char *colon = strchr(buf, ':');
		if (!colon)
			tool_die("--trace-mem: '%s' is not ADDR:LEN (try 0x9000:64)", arg);
		*colon = '\0';
		if (parse_u64(buf, &tt->mem_addr) < 0 || parse_size(colon + 1, &tt->mem_len) < 0 ||
		    tt->mem_len == 0 || tt->mem_len > MAX_MEM)
			tool_die("--trace-mem: '%s' is not ADDR:LEN with LEN 1..%d (try 0x9000:64)",
				 arg, MAX_MEM);
		return true;
	}
	case TOOL_OPT_TRACE_STEPS:
		tt->max_steps = tt->max_step_ns = 0;
		if (parse_u64(arg, &tt->max_steps) == 0) {
			if (!tt->max_steps)
				tool_die("--trace-steps: give 1 or more steps");
		} else if (parse_duration(arg, &tt->max_step_ns) < 0 || !tt->max_step_ns) {
			tool_die("--trace-steps: '%s' is neither a count nor a duration (try 1000 or 2s)",
				 arg);
		}
		return true;
	default:
		return false;
	}
}

/* ---- writing -------------------------------------------------------------- */

static void put_regs(struct tool_trace *tt, const struct wasp_regs *r, uint32_t mask)
{
	const uint64_t *vals = (const uint64_t *)r;
	if (!mask || !r)
		return;
	fputs(",\"regs\":{", tt->out);
	bool first = true;
	for (unsigned i = 0; i < 18; i++) {
		if (!(mask & (1u << i)))
			continue;
		fprintf(tt->out, "%s\"%s\":\"0x%" PRIx64 "\"", first ? "" : ",", reg_names[i], vals[i]);
		first = false;
	}
	fputc('}', tt->out);
}

static void put_mem(struct tool_trace *tt, struct wasp_virtine *v)
{
	const uint8_t *p = wasp_virtine_gpa(v, tt->mem_addr, tt->mem_len);
	if (!tt->mem_len || !p)
		return;
	fprintf(tt->out, ",\"mem\":{\"addr\":\"0x%" PRIx64 "\",\"hex\":\"", tt->mem_addr);
	for (uint64_t i = 0; i < tt->mem_len; i++)
		fprintf(tt->out, "%02x", p[i]);
	fputs("\"}", tt->out);
}

static int on_event(struct wasp_virtine *v, const struct wasp_trace_event *ev, void *opaque)
{
	struct tool_trace *tt = opaque;
	FILE *f = tt->out;
	uint64_t t = ev->t_ns >= tt->t0 ? ev->t_ns - tt->t0 : 0;
	uint32_t regs = tt->regs;

	fprintf(f, "{\"t\":%" PRIu64 ",\"ev\":\"%s\"", t, wasp_trace_kind_name(ev->kind));
	switch (ev->kind) {
	case WASP_TRACE_EXIT:
		fprintf(f, ",\"kvm\":\"%s\"", wasp_kvm_exit_name(ev->kvm_exit));
		break;
	case WASP_TRACE_HYPERCALL:
	case WASP_TRACE_SYSCALL:
		fprintf(f, ",\"nr\":%" PRIu64 ",\"name\":\"%s\",\"args\":[", ev->hc.nr,
			ev->hc.name ? ev->hc.name : "unknown");
		for (int i = 0; i < 6; i++)
			fprintf(f, "%s\"0x%" PRIx64 "\"", i ? "," : "", ev->hc.args[i]);
		fprintf(f, "],\"result\":%" PRId64 ",\"ns\":%" PRIu64, ev->hc.result, ev->hc.ns);
		break;
	case WASP_TRACE_IO:
		fprintf(f, ",\"port\":%u,\"dir\":\"%s\",\"size\":%u", ev->io.port,
			ev->io.out ? "out" : "in", ev->io.size);
		if (ev->io.out)
			fprintf(f, ",\"value\":\"0x%" PRIx64 "\"", ev->io.value);
		break;
	case WASP_TRACE_FAULT:
		fprintf(f, ",\"kind\":\"%s\",\"kvm\":\"%s\",\"addr\":\"0x%" PRIx64 "\",\"rip\":\"0x%" PRIx64 "\"",
			wasp_fault_kind_name(ev->exit->fault.kind), wasp_kvm_exit_name(ev->kvm_exit),
			ev->addr, ev->exit->fault.regs.rip);
		break;
	case WASP_TRACE_STEP:
		fprintf(f, ",\"rip\":\"0x%" PRIx64 "\"", ev->addr);
		tt->steps++;
		if (!tt->regs_set)
			regs = 0; /* the rip above is the step */
		break;
	case WASP_TRACE_BREAK:
		fprintf(f, ",\"addr\":\"0x%" PRIx64 "\",\"hits\":%" PRIu64, ev->addr, ev->hits);
		break;
	default:
		break;
	}
	put_regs(tt, ev->regs, regs);
	put_mem(tt, v);
	fputs("}\n", f);
	tt->lines++;
	return WASP_TRACE_CONTINUE;
}

void tool_trace_attach(struct tool_trace *tt, struct wasp_virtine *v, const char *image)
{
	if (!tt->events) {
		if (tt->out_path || tt->regs_set || tt->mem_len || tt->max_steps || tt->max_step_ns)
			tool_die("--trace-out, --trace-regs, --trace-mem and --trace-steps need --trace");
		return;
	}
	if (tt->mem_len && !wasp_virtine_gpa(v, tt->mem_addr, tt->mem_len))
		tool_die("--trace-mem: 0x%" PRIx64 "+%" PRIu64 " is outside guest memory (%zu bytes)",
			 tt->mem_addr, tt->mem_len, wasp_virtine_mem_size(v));
	if (!tt->max_steps && !tt->max_step_ns)
		tt->max_steps = DEFAULT_MAX_STEPS;
	if (!tt->out_path || !strcmp(tt->out_path, "-")) {
		tt->out = stderr;
	} else if (!(tt->out = fopen(tt->out_path, "we"))) {
		tool_die("--trace-out: %s: %s", tt->out_path, strerror(errno));
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	tt->t0 = wasp_now_ns();
	fprintf(tt->out, "{\"t\":0,\"ev\":\"start\",\"image\":\"");
	for (const char *p = image; *p; p++) { /* a path is a JSON string: escape it */
		if (*p == '"' || *p == '\\')
			fputc('\\', tt->out);
		fputc((unsigned char)*p < 0x20 ? '?' : *p, tt->out);
	}
	fprintf(tt->out, "\",\"unix_ns\":%" PRIu64 ",\"events\":%u}\n",
		(uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec, tt->events);
	struct wasp_trace_opts o = {
		.events = tt->events,
		.max_steps = tt->max_steps,
		.max_step_ns = tt->max_step_ns,
		.fn = on_event,
		.opaque = tt,
	};
	if (wasp_virtine_trace(v, &o) < 0)
		tool_die("--trace: %s", wasp_last_error());
}

void tool_trace_end(struct tool_trace *tt, struct wasp_virtine *v,
		    const struct wasp_runner_result *res)
{
	if (!tt->out)
		return;
	const struct wasp_exit *e = &res->exit;
	fprintf(tt->out, "{\"t\":%" PRIu64 ",\"ev\":\"end\",\"reason\":\"%s\"",
		wasp_now_ns() - tt->t0, res->stopped ? "stopped" : wasp_exit_reason_name(e->reason));
	if (!res->stopped && e->reason == WASP_EXIT_EXITED)
		fprintf(tt->out, ",\"code\":%" PRId64, e->code);
	(void)v;
	fprintf(tt->out, ",\"steps\":%" PRIu64 "}\n", tt->steps);
	if (tt->out != stderr) {
		if (fclose(tt->out) != 0)
			fprintf(stderr, "%s: --trace-out %s: %s\n", tool_name, tt->out_path,
				strerror(errno));
	} else {
		fflush(stderr);
	}
	tt->out = NULL;
}

/* ---- summary -------------------------------------------------------------- */

/* The value of "key" in one line of ours: a string (copied) or a number. */
static bool json_str(const char *line, const char *key, char *out, size_t cap)
{
	char pat[40];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(line, pat);
	if (!p)
		return false;
	p += strlen(pat);
	const char *end = strchr(p, '"');
	if (!end || (size_t)(end - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

static bool json_num(const char *line, const char *key, long long *out)
{
	char pat[40];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(line, pat);
	if (!p)
		return false;
	char *end;
	errno = 0;
	*out = strtoll(p + strlen(pat), &end, 10);
	return !errno && end != p + strlen(pat);
}

struct hc_sum {
	char name[64];
	uint64_t count, ns, max_ns;
};

int tool_trace_summary(const char *path, FILE *out)
{
	static const char *const kinds[] = {"exit", "hypercall", "io", "fault", "step", "break",
					    "syscall"};
	uint64_t counts[7] = {0}, kvm_counts[32] = {0}, last_t = 0, lineno = 0;
	struct hc_sum hcs[64];
	size_t nhc = 0;
	char end_line[512] = "";
	bool started = false;
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", tool_name, path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;
	while (getline(&line, &cap, f) > 0) {
		char ev[32], name[64];
		long long t, ns;
		lineno++;
		if (!json_str(line, "ev", ev, sizeof ev) || !json_num(line, "t", &t) || t < 0) {
			fprintf(stderr, "%s: %s: line %llu is not a trace event\n", tool_name, path,
				(unsigned long long)lineno);
			ret = -1;
			break;
		}
		if ((uint64_t)t > last_t)
			last_t = (uint64_t)t;
		if (!strcmp(ev, "start")) {
			started = true;
			continue;
		}
		if (!strcmp(ev, "end")) {
			snprintf(end_line, sizeof end_line, "%s", line);
			continue;
		}
		size_t k = 0;
		while (k < 7 && strcmp(ev, kinds[k]))
			k++;
		if (k == 7) {
			fprintf(stderr, "%s: %s: line %llu: unknown event '%s'\n", tool_name, path,
				(unsigned long long)lineno, ev);
			ret = -1;
			break;
		}
		counts[k]++;
		if (k == WASP_TRACE_EXIT && json_str(line, "kvm", name, sizeof name)) {
			for (uint32_t r = 0; r < 32; r++)
				if (!strcmp(name, wasp_kvm_exit_name(r))) {
					kvm_counts[r]++;
					break;
				}
		}
		if (k != WASP_TRACE_HYPERCALL && k != WASP_TRACE_SYSCALL)
			continue;
		if (!json_str(line, "name", name + 4, sizeof name - 4) || !json_num(line, "ns", &ns) ||
		    ns < 0) {
			fprintf(stderr, "%s: %s: line %llu: a %s without name or ns\n", tool_name,
				path, (unsigned long long)lineno, kinds[k]);
			ret = -1;
			break;
		}
		/* Syscalls share the table, marked: read is both a hypercall
		 * and a system call. */
		if (k == WASP_TRACE_SYSCALL)
			memcpy(name, "sys:", 4);
		else
			memmove(name, name + 4, strlen(name + 4) + 1);
		size_t i = 0;
		while (i < nhc && strcmp(hcs[i].name, name))
			i++;
		if (i == nhc) {
			if (nhc == sizeof hcs / sizeof *hcs)
				continue; /* more names than a summary shows */
			memset(&hcs[nhc], 0, sizeof hcs[nhc]);
			snprintf(hcs[nhc++].name, sizeof hcs[0].name, "%s", name);
		}
		hcs[i].count++;
		hcs[i].ns += (uint64_t)ns;
		if ((uint64_t)ns > hcs[i].max_ns)
			hcs[i].max_ns = (uint64_t)ns;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	if (ret < 0)
		return ret;
	if (!started) {
		fprintf(stderr, "%s: %s: not a wasp trace (no start line)\n", tool_name, path);
		return -1;
	}
	fprintf(out, "trace %s: %llu lines over %.3f ms\n", path, (unsigned long long)lineno,
		last_t / 1e6);
	fprintf(out, "events:\n");
	for (size_t k = 0; k < 7; k++)
		if (counts[k])
			fprintf(out, "  %-10s %10llu\n", kinds[k], (unsigned long long)counts[k]);
	if (counts[WASP_TRACE_EXIT]) {
		fprintf(out, "exits by KVM reason:\n");
		for (uint32_t r = 0; r < 32; r++)
			if (kvm_counts[r])
				fprintf(out, "  %-16s %10llu\n", wasp_kvm_exit_name(r),
					(unsigned long long)kvm_counts[r]);
	}
	if (nhc) {
		fprintf(out, "calls:             %10s %12s %10s %10s\n", "count", "total_us", "mean_us",
			"max_us");
		for (size_t i = 0; i < nhc; i++)
			fprintf(out, "  %-16s %10llu %12.1f %10.2f %10.2f\n", hcs[i].name,
				(unsigned long long)hcs[i].count, hcs[i].ns / 1e3,
				hcs[i].ns / 1e3 / (double)hcs[i].count, hcs[i].max_ns / 1e3);
	}
	if (end_line[0]) {
		char reason[32];
		long long code;
		if (json_str(end_line, "reason", reason, sizeof reason))
			fprintf(out, "end: %s", reason);
		if (json_num(end_line, "code", &code))
			fprintf(out, ", code %lld", code);
		fputc('\n', out);
	} else {
		fprintf(out, "end: none (the trace was cut short)\n");
	}
	return 0;
}
