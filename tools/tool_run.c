/*
 * tool_run.c: running a virtine from a tool (wasp-run, wasp-restore).
 */
#define _GNU_SOURCE
#include "tool_run.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tool_util.h"

const char tool_run_usage[] =
	"Checkpoints (docs/triggers.md):\n"
	"      --name NAME       also answer wasp-ckpt NAME (besides wasp-ckpt PID)\n"
	"      --checkpoint-path PATH\n"
	"                        where SIGUSR1, --trigger-file and --checkpoint-every\n"
	"                        write a checkpoint (replaced atomically each time)\n"
	"      --trigger-file PATH\n"
	"                        creating PATH asks for a checkpoint; it is removed\n"
	"                        once the checkpoint is written\n"
	"      --checkpoint-every DUR\n"
	"                        a checkpoint every DUR (e.g. 500ms, 10s)\n"
	"      --stop-after-checkpoint\n"
	"                        stop the guest after the first checkpoint taken by\n"
	"                        SIGUSR1, the trigger file or the period\n";

void tool_block_sigusr1(void)
{
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
}

bool tool_run_option(int c, const char *arg, struct wasp_runner_opts *ro)
{
	switch (c) {
	case TOOL_OPT_NAME:
		if (wasp_runner_name_valid(arg) < 0)
			tool_die("--name: %s", wasp_last_error());
		ro->name = arg;
		return true;
	case TOOL_OPT_CKPT_PATH:
		if (!*arg)
			tool_die("--checkpoint-path: empty path");
		ro->checkpoint_path = arg;
		return true;
	case TOOL_OPT_TRIGGER:
		if (!*arg)
			tool_die("--trigger-file: empty path");
		ro->trigger_file = arg;
		return true;
	case TOOL_OPT_EVERY:
		if (parse_duration(arg, &ro->checkpoint_every_ns) < 0 ||
		    ro->checkpoint_every_ns < 1000000)
			tool_die("--checkpoint-every: '%s' is not a duration of 1ms or more "
				 "(try 500ms or 10s)", arg);
		return true;
	case TOOL_OPT_STOP_AFTER:
		ro->stop_after_trigger = true;
		return true;
	default:
		return false;
	}
}

void tool_run_check(const struct wasp_runner_opts *ro)
{
	if (!ro->checkpoint_path && (ro->trigger_file || ro->checkpoint_every_ns))
		tool_die("%s needs --checkpoint-path",
			 ro->trigger_file ? "--trigger-file" : "--checkpoint-every");
}

/* The socket files, removed by a fatal signal's handler as by a normal exit. */
static char sock_path[WASP_RUNNER_PATH_MAX], name_path[WASP_RUNNER_PATH_MAX];

static void on_fatal_signal(int sig)
{
	if (sock_path[0])
		unlink(sock_path);
	if (name_path[0])
		unlink(name_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

int tool_run_start(struct wasp_virtine *v, struct wasp_runner_opts *ro,
		   struct wasp_runner **runner)
{
	ro->handle_sigusr1 = true;
	ro->log = stderr;
	ro->log_prefix = tool_name;
	int r = wasp_runner_create(v, ro, runner);
	if (r < 0)
		return r;
	if (wasp_runner_socket_path(*runner))
		snprintf(sock_path, sizeof sock_path, "%s", wasp_runner_socket_path(*runner));
	if (wasp_runner_name_path(*runner))
		snprintf(name_path, sizeof name_path, "%s", wasp_runner_name_path(*runner));
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	return 0;
}

void tool_run_finish(struct wasp_runner *runner, struct wasp_runner_result *res)
{
	if (wasp_runner_run(runner, res) < 0) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", wasp_last_error());
		wasp_runner_destroy(runner);
		tool_die("%s", msg);
	}
	fflush(stdout);
	/* Answers whoever still waits, and removes the socket files. */
	wasp_runner_destroy(runner);
	sock_path[0] = name_path[0] = 0;
}

void tool_run_virtine(struct wasp_virtine *v, struct wasp_runner_opts *ro,
		      struct wasp_runner_result *res)
{
	struct wasp_runner *runner;
	if (tool_run_start(v, ro, &runner) < 0)
		tool_die("%s", wasp_last_error());
	tool_run_finish(runner, res);
}

static void print_fault(const struct wasp_exit *e)
{
	const struct wasp_regs *r = &e->fault.regs;
	fprintf(stderr, "%s: guest fault: %s", tool_name, wasp_fault_kind_name(e->fault.kind));
	if (e->fault.kind == WASP_FAULT_MMIO)
		fprintf(stderr, " at 0x%llx", (unsigned long long)e->fault.addr);
	else if (e->fault.kind == WASP_FAULT_IO)
		fprintf(stderr, " (port 0x%llx)", (unsigned long long)e->fault.addr);
	fprintf(stderr, " (rip=0x%llx rsp=0x%llx rax=0x%llx cr0=0x%llx cr3=0x%llx efer=0x%llx)\n",
		(unsigned long long)r->rip, (unsigned long long)r->rsp,
		(unsigned long long)r->rax, (unsigned long long)e->fault.cr0,
		(unsigned long long)e->fault.cr3, (unsigned long long)e->fault.efer);
}

int tool_exit_status(const struct wasp_runner_result *res, uint64_t timeout_ns)
{
	const struct wasp_exit *e = &res->exit;

	if (res->stopped && res->migrated) {
		fprintf(stderr, "%s: migrated to %s; it runs there now\n", tool_name, res->stopped_to);
		return 0;
	}
	if (res->stopped && res->held) {
		/* Neither here nor known to be there: not a success. */
		if (res->held_saved)
			fprintf(stderr,
				"%s: migration to %s: outcome unknown, so the virtine is held in %s; "
				"restore that only if it does not run at %s\n",
				tool_name, res->stopped_to, res->held_path, res->stopped_to);
		else
			fprintf(stderr,
				"%s: migration to %s: outcome unknown, and the virtine could not be "
				"saved to %s\n", tool_name, res->stopped_to, res->held_path);
		return WASP_EXIT_TOOL_ERROR;
	}
	if (res->stopped) {
		fprintf(stderr, "%s: stopped after checkpoint to %s\n", tool_name, res->stopped_to);
		return 0;
	}
	switch (e->reason) {
	case WASP_EXIT_EXITED:
		return (int)(e->code & 0xff);
	case WASP_EXIT_TIMEOUT:
		fprintf(stderr, "%s: guest stopped after the %.3f s timeout\n", tool_name,
			(double)timeout_ns / 1e9);
		return WASP_EXIT_GUEST_TIMEOUT;
	case WASP_EXIT_FAULT:
		print_fault(e);
		return WASP_EXIT_GUEST_FAULT;
	default:
		fprintf(stderr, "%s: unexpected exit: %s\n", tool_name,
			wasp_exit_reason_name(e->reason));
		return WASP_EXIT_TOOL_ERROR;
	}
}
