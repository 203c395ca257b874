/*
 * tool_trace.h: wasp-run's --trace: the virtine's trace events (vmm.h) as
 * JSON lines in a file, and wasp-inspect --trace's summary of such a file.
 * The format is docs/tracing.md. It lives with the tools, not in libwasp:
 * an embedder gets the same events as structs from wasp_virtine_trace()
 * and decides itself where and how to record them.
 */
#ifndef WASP_TOOL_TRACE_H
#define WASP_TOOL_TRACE_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runner.h"

enum {
	TOOL_OPT_TRACE = 300,
	TOOL_OPT_TRACE_OUT,
	TOOL_OPT_TRACE_REGS,
	TOOL_OPT_TRACE_MEM,
	TOOL_OPT_TRACE_STEPS,
};

#define TOOL_TRACE_LONG_OPTIONS                                             \
	{"trace", required_argument, NULL, TOOL_OPT_TRACE},                 \
	{"trace-out", required_argument, NULL, TOOL_OPT_TRACE_OUT},         \
	{"trace-regs", required_argument, NULL, TOOL_OPT_TRACE_REGS},       \
	{"trace-mem", required_argument, NULL, TOOL_OPT_TRACE_MEM},         \
	{"trace-steps", required_argument, NULL, TOOL_OPT_TRACE_STEPS}

extern const char tool_trace_usage[];

struct tool_trace {
	unsigned events;       /* WASP_TRACE_BIT()s */
	const char *out_path;  /* NULL or "-": stderr */
	uint32_t regs;         /* bit i: register i of struct wasp_regs */
	bool regs_set;
	uint64_t mem_addr, mem_len; /* mem_len 0: none */
	uint64_t max_steps, max_step_ns;
	/* while tracing */
	FILE *out;
	uint64_t t0;
	uint64_t lines, steps;
};

void tool_trace_init(struct tool_trace *tt);
/* Handles one --trace* option; false when `c` is not one. Exits on a bad value. */
bool tool_trace_option(int c, const char *arg, struct tool_trace *tt);
/* Opens the output and sets the virtine's tracer (nothing when no event
 * was asked for). Exits on error. */
void tool_trace_attach(struct tool_trace *tt, struct wasp_virtine *v, const char *image);
/* Writes the closing line (how the run ended) and closes the output. */
void tool_trace_end(struct tool_trace *tt, struct wasp_virtine *v,
		    const struct wasp_runner_result *res);

/* wasp-inspect --trace: prints a summary of a trace file. 0, or -1 with a
 * message on stderr for an unreadable or malformed file. */
int tool_trace_summary(const char *path, FILE *out);

#endif
