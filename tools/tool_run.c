/*
 * tool_run.c: running a virtine from a tool (wasp-run, wasp-restore).
 */
#define _GNU_SOURCE
#include "tool_run.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tool_util.h"

const char tool_run_usage[] =
	"Checkpoints (docs/triggers.md):\n"
	"      --name NAME       also answer wasp-ckpt NAME (besides wasp-ckpt PID)\n"
	"      --checkpoint-path PATH|s3://BUCKET/KEY\n"
	"                        where SIGUSR1, --trigger-file and --checkpoint-every\n"
	"                        write a checkpoint (replaced atomically each time;\n"
	"                        an object appears only when complete)\n"
	"      --trigger-file PATH\n"
	"                        creating PATH asks for a checkpoint; it is removed\n"
	"                        once the checkpoint is written\n"
	"      --checkpoint-every DUR\n"
	"                        a checkpoint every DUR (e.g. 500ms, 10s)\n"
	"      --stop-after-checkpoint\n"
	"                        stop the guest after the first checkpoint taken by\n"
	"                        SIGUSR1, the trigger file, the period or a point\n"
	"      --checkpoint-at ADDR[:COUNT]\n"
	"                        a checkpoint when the guest reaches ADDR (an address,\n"
	"                        or a function named in the image's symbol map) for\n"
	"                        the COUNT-th time (default 1)\n"
	"      --checkpoint-after-exits N\n"
	"                        a checkpoint after the guest's N-th KVM exit\n"
	"      --checkpoint-after-hypercalls N\n"
	"                        a checkpoint after its N-th hypercall returns\n"
	"      --symbols FILE    symbol map (nm output) for --checkpoint-at names\n"
	"                        (default: IMAGE with .bin replaced by .sym; a Linux\n"
	"                        program's own symbol table)\n"
	"      --s3-endpoint URL s3://: the server (http[s]://HOST[:PORT]), before\n"
	"                        AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL and the\n"
	"                        profile's (docs/object-storage.md)\n";

/* --checkpoint-at and --symbols as given, resolved by tool_run_resolve_points. */
static const char *at_arg, *symbols_arg;

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
	case TOOL_OPT_CKPT_AT:
		if (!*arg)
			tool_die("--checkpoint-at: empty address");
		at_arg = arg;
		return true;
	case TOOL_OPT_SYMBOLS:
		symbols_arg = arg;
		return true;
	case TOOL_OPT_S3_ENDPOINT:
		if (!*arg)
			tool_die("--s3-endpoint: empty URL");
		ro->s3_endpoint = arg;
		return true;
	case TOOL_OPT_AFTER_EXITS:
		if (parse_u64(arg, &ro->checkpoint_after_exits) < 0 || !ro->checkpoint_after_exits)
			tool_die("--checkpoint-after-exits: '%s' is not a count of 1 or more", arg);
		return true;
	case TOOL_OPT_AFTER_HC:
		if (parse_u64(arg, &ro->checkpoint_after_hypercalls) < 0 ||
		    !ro->checkpoint_after_hypercalls)
			tool_die("--checkpoint-after-hypercalls: '%s' is not a count of 1 or more", arg);
		return true;
	default:
		return false;
	}
}

bool tool_run_config_option(int c, const char *arg, struct wasp_config *cfg)
{
	if (c != TOOL_OPT_DIR_QUOTA)
		return false;
	if (!strcmp(arg, "unlimited"))
		cfg->dir_quota = WASP_DIR_QUOTA_UNLIMITED;
	else
		cfg->dir_quota = tool_size_arg("--dir-quota", arg, "1G, 512M or unlimited");
	return true;
}

void tool_run_check(const struct wasp_runner_opts *ro)
{
	if (!ro->checkpoint_path && (ro->trigger_file || ro->checkpoint_every_ns))
		tool_die("%s needs --checkpoint-path",
			 ro->trigger_file ? "--trigger-file" : "--checkpoint-every");
	if (!ro->checkpoint_path && (at_arg || ro->checkpoint_after_exits ||
				     ro->checkpoint_after_hypercalls))
		tool_die("%s needs --checkpoint-path",
			 at_arg ? "--checkpoint-at"
			 : ro->checkpoint_after_exits ? "--checkpoint-after-exits"
						      : "--checkpoint-after-hypercalls");
}

int tool_symbol_lookup(const char *map, const char *name, uint64_t *addr)
{
	FILE *f = fopen(map, "re");
	if (!f)
		return -errno;
	char line[1024];
	int r = -ENOENT;
	while (fgets(line, sizeof line, f)) {
		char a[32], type[4], sym[512];
		unsigned long long v;
		if (sscanf(line, "%31s %3s %511s", a, type, sym) != 3 || strcmp(sym, name))
			continue;
		char *end;
		errno = 0;
		v = strtoull(a, &end, 16);
		if (errno || *end)
			continue;
		*addr = v;
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

void tool_run_resolve_points(struct wasp_runner_opts *ro, const char *image)
{
	if (!at_arg)
		return;
	char spec[512], map[4096];
	if (snprintf(spec, sizeof spec, "%s", at_arg) >= (int)sizeof spec)
		tool_die("--checkpoint-at: '%.40s...' is too long", at_arg);
	char *colon = strrchr(spec, ':');
	ro->checkpoint_at_count = 1;
	if (colon) {
		*colon = '\0';
		if (parse_u64(colon + 1, &ro->checkpoint_at_count) < 0 || !ro->checkpoint_at_count)
			tool_die("--checkpoint-at: '%s' is not a count of 1 or more", colon + 1);
	}
	if (!*spec)
		tool_die("--checkpoint-at: no address before ':'");
	ro->checkpoint_at_set = true;
	if (parse_u64(spec, &ro->checkpoint_at) == 0)
		return;
	if (!symbols_arg && image && wasp_linux_probe(image) > 0) {
		/* A Linux program names its symbols itself. */
		if (wasp_linux_symbol(image, spec, &ro->checkpoint_at) < 0)
			tool_die("--checkpoint-at: %s", wasp_last_error());
		return;
	}
	if (symbols_arg) {
		snprintf(map, sizeof map, "%s", symbols_arg);
	} else if (image) {
		size_t n = strlen(image);
		if (n > 4 && !strcmp(image + n - 4, ".bin"))
			n -= 4;
		snprintf(map, sizeof map, "%.*s.sym", (int)n, image);
	} else {
		tool_die("--checkpoint-at: '%s' is not an address; name a symbol map with --symbols",
			 spec);
	}
	int r = tool_symbol_lookup(map, spec, &ro->checkpoint_at);
	if (r == -ENOENT && access(map, R_OK) == 0)
		tool_die("--checkpoint-at: no symbol '%s' in %s", spec, map);
	if (r < 0)
		tool_die("--checkpoint-at: '%s' is not an address, and the symbol map %s: %s "
			 "(give one with --symbols)", spec, map, strerror(-r));
}

/* The socket files of every runner in this process (a --keep-listening
 * receiver has one per virtine), removed by a fatal signal's handler as by
 * a normal exit. A slot's paths are written before it is marked used, and
 * the handler reads only used slots. */
#define TRACKED_MAX 64
static struct {
	char sock[WASP_RUNNER_PATH_MAX], name[WASP_RUNNER_PATH_MAX];
	atomic_bool used;
} tracked[TRACKED_MAX];
static atomic_flag track_lock = ATOMIC_FLAG_INIT;

static void on_fatal_signal(int sig)
{
	for (int i = 0; i < TRACKED_MAX; i++) {
		if (!atomic_load(&tracked[i].used))
			continue;
		if (tracked[i].sock[0])
			unlink(tracked[i].sock);
		if (tracked[i].name[0])
			unlink(tracked[i].name);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void tool_run_handle_fatal_signals(void)
{
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
}

int tool_run_track(const struct wasp_runner *r)
{
	while (atomic_flag_test_and_set(&track_lock))
		;
	int slot = -1;
	for (int i = 0; i < TRACKED_MAX && slot < 0; i++)
		if (!atomic_load(&tracked[i].used))
			slot = i;
	if (slot >= 0) {
		const char *sp = wasp_runner_socket_path(r), *np = wasp_runner_name_path(r);
		snprintf(tracked[slot].sock, sizeof tracked[slot].sock, "%s", sp ? sp : "");
		snprintf(tracked[slot].name, sizeof tracked[slot].name, "%s", np ? np : "");
		atomic_store(&tracked[slot].used, true);
	}
	atomic_flag_clear(&track_lock);
	return slot;
}

void tool_run_untrack(int slot)
{
	if (slot >= 0 && slot < TRACKED_MAX)
		atomic_store(&tracked[slot].used, false);
}

/* The slot of the runner tool_run_start made, for tool_run_finish. */
static int run_slot = -1;

int tool_run_start(struct wasp_virtine *v, struct wasp_runner_opts *ro,
		   struct wasp_runner **runner)
{
	ro->handle_sigusr1 = true;
	ro->log = stderr;
	ro->log_prefix = tool_name;
	int r = wasp_runner_create(v, ro, runner);
	if (r < 0)
		return r;
	run_slot = tool_run_track(*runner);
	tool_run_handle_fatal_signals();
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
	tool_run_untrack(run_slot);
	run_slot = -1;
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
	else if (e->fault.kind == WASP_FAULT_EXCEPTION) {
		static const char *const names[32] = {
			[0] = "divide error", [1] = "debug", [3] = "breakpoint", [4] = "overflow",
			[5] = "bound range", [6] = "invalid opcode", [7] = "no FPU",
			[8] = "double fault", [10] = "invalid TSS", [11] = "segment not present",
			[12] = "stack fault", [13] = "general protection", [14] = "page fault",
			[16] = "x87 error", [17] = "alignment check", [19] = "SIMD error",
		};
		uint64_t vec = e->fault.addr;
		fprintf(stderr, " %llu (%s, error code 0x%llx)", (unsigned long long)vec,
			vec < 32 && names[vec] ? names[vec] : "reserved",
			(unsigned long long)e->fault.error_code);
	}
	if (e->fault.kind == WASP_FAULT_EXCEPTION && e->fault.addr == 14)
		fprintf(stderr, " at 0x%llx", (unsigned long long)e->fault.cr2);
	else if (e->fault.kind == WASP_FAULT_SHUTDOWN)
		/* No IDT: any exception ends in a triple fault; a page fault
		 * leaves its address in cr2 (a wild pointer, a stack overflow,
		 * NULL itself). */
		fprintf(stderr, " (cr2=0x%llx: the last page fault's address)",
			(unsigned long long)e->fault.cr2);
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
	if (res->stopped && res->kept_path[0]) {
		fprintf(stderr, "%s: stopped after checkpoint to %s; a copy is kept in %s\n",
			tool_name, res->stopped_to, res->kept_path);
		return 0;
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
