/*
 * tool_run.h: what wasp-run and wasp-restore share: the checkpoint-trigger
 * options, running a virtine under the runner, and turning how it ended
 * into an exit status (docs/tools.md).
 */
#ifndef WASP_TOOL_RUN_H
#define WASP_TOOL_RUN_H

#include <getopt.h>
#include <stdbool.h>

#include "runner.h"

/* getopt codes of the shared long options. */
enum {
	TOOL_OPT_NAME = 256,
	TOOL_OPT_CKPT_PATH,
	TOOL_OPT_TRIGGER,
	TOOL_OPT_EVERY,
	TOOL_OPT_STOP_AFTER,
	TOOL_OPT_CKPT_AT,
	TOOL_OPT_AFTER_EXITS,
	TOOL_OPT_AFTER_HC,
	TOOL_OPT_SYMBOLS,
	TOOL_OPT_DIR_QUOTA,
	TOOL_OPT_S3_ENDPOINT,
};

#define TOOL_RUN_LONG_OPTIONS                                                      \
	{"name", required_argument, NULL, TOOL_OPT_NAME},                          \
	{"checkpoint-path", required_argument, NULL, TOOL_OPT_CKPT_PATH},          \
	{"trigger-file", required_argument, NULL, TOOL_OPT_TRIGGER},               \
	{"checkpoint-every", required_argument, NULL, TOOL_OPT_EVERY},             \
	{"stop-after-checkpoint", no_argument, NULL, TOOL_OPT_STOP_AFTER},         \
	{"checkpoint-at", required_argument, NULL, TOOL_OPT_CKPT_AT},              \
	{"checkpoint-after-exits", required_argument, NULL, TOOL_OPT_AFTER_EXITS}, \
	{"checkpoint-after-hypercalls", required_argument, NULL, TOOL_OPT_AFTER_HC}, \
	{"symbols", required_argument, NULL, TOOL_OPT_SYMBOLS},                    \
	{"dir-quota", required_argument, NULL, TOOL_OPT_DIR_QUOTA},                \
	{"s3-endpoint", required_argument, NULL, TOOL_OPT_S3_ENDPOINT}

/* The --help text of those options. */
extern const char tool_run_usage[];

/* SIGUSR1 asks for a checkpoint. Call first thing in main, before any
 * thread exists, so every thread inherits the block and only the runner's
 * signalfd sees it. */
void tool_block_sigusr1(void);

/* Handles one of the shared options into `ro`; false when `c` is not one. */
bool tool_run_option(int c, const char *arg, struct wasp_runner_opts *ro);

/* Handles a shared option of the virtine's config (--dir-quota) into
 * `cfg`; false when `c` is not one. */
bool tool_run_config_option(int c, const char *arg, struct wasp_config *cfg);

/* The --help line of --dir-quota, for beside each tool's --dir. */
#define TOOL_DIR_QUOTA_USAGE                                                        \
	"      --dir-quota SIZE  bytes the guest may make --dir grow by (sparse\n"   \
	"                        files count whole; default 1G; 'unlimited')\n"

/* Checks the shared options fit together (exits on error). */
void tool_run_check(const struct wasp_runner_opts *ro);

/* Turns --checkpoint-at's ADDR into a guest address: a number, or a symbol
 * looked up in --symbols FILE, else in the symbol map beside `image`
 * (IMAGE with .bin replaced by .sym; image may be NULL). Exits on error. */
void tool_run_resolve_points(struct wasp_runner_opts *ro, const char *image);

/* Looks `name` up in an `nm` listing ("ADDR TYPE NAME" lines). 0 with
 * *addr; -ENOENT when absent; -errno when the file cannot be read. */
int tool_symbol_lookup(const char *map, const char *name, uint64_t *addr);

/* Runs v under a runner with `ro` (logging to stderr as tool_name), with
 * the socket files removed on SIGINT/SIGTERM/SIGHUP too. Exits on a host
 * failure; fills *res. */
void tool_run_virtine(struct wasp_virtine *v, struct wasp_runner_opts *ro,
		      struct wasp_runner_result *res);

/* The same in two steps, for wasp-restore --listen, which must know the
 * virtine runs before it tells the source: start (the runner exists and
 * its socket listens; -errno with wasp_last_error() instead of exiting),
 * then run to the end (exits on a host failure). */
int tool_run_start(struct wasp_virtine *v, struct wasp_runner_opts *ro,
		   struct wasp_runner **runner);
void tool_run_finish(struct wasp_runner *runner, struct wasp_runner_result *res);

/* Removes the socket files of every tracked runner on SIGINT, SIGTERM and
 * SIGHUP, then dies of the signal. */
void tool_run_handle_fatal_signals(void);
/* Tracks a runner's socket files for that handler (up to 64 runners): a
 * slot, or -1 when full. Untrack once wasp_runner_destroy removed them. */
int tool_run_track(const struct wasp_runner *r);
void tool_run_untrack(int slot);

/* The tool's exit status for how the run ended, with a line on stderr for
 * anything but a normal exit. */
int tool_exit_status(const struct wasp_runner_result *res, uint64_t timeout_ns);

#endif
