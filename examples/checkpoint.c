/*
 * checkpoint.c: checkpoint a virtine you own and go on from the copy
 * (docs/embedding.md, docs/checkpoint-format.md).
 *
 * Runs the image once to its end for reference, then again for `ms`
 * milliseconds, saves that stopped virtine to a buffer, destroys it,
 * restores the buffer into a new virtine and runs that to the end. A
 * deterministic guest (guest/examples/counter.c) ends with the same exit
 * code either way.
 *
 *   cc checkpoint.c $(pkg-config --cflags --libs wasp) -o checkpoint
 *   ./checkpoint counter.bin [MS]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <ckpt.h>
#include <vmm.h>

static int run_to_end(struct wasp_virtine *v, long long *code)
{
	struct wasp_exit e;
	if (wasp_virtine_run(v, 60ull * 1000000000, &e) < 0)
		return -1;
	if (e.reason != WASP_EXIT_EXITED) {
		fprintf(stderr, "checkpoint: the run ended %s\n", wasp_exit_reason_name(e.reason));
		return -1;
	}
	*code = e.code;
	return 0;
}

static struct wasp_virtine *start(const struct wasp_config *cfg, const char *image)
{
	struct wasp_virtine *v;
	if (wasp_virtine_create(cfg, &v) < 0)
		return NULL;
	if (wasp_virtine_allow(v, "console_write,get_arg") < 0 ||
	    wasp_virtine_load_file(v, image, 0, WASP_MODE_AUTO) < 0) {
		wasp_virtine_destroy(v);
		return NULL;
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: checkpoint IMAGE [MS]\n");
		return 2;
	}
	uint64_t ms = argc > 2 ? strtoull(argv[2], NULL, 10) : 50;
	struct wasp_config cfg;
	wasp_config_init(&cfg);
	cfg.mem_size = 16 << 20;
	cfg.no_stdin = true;
	int devnull = open("/dev/null", O_WRONLY);
	cfg.console_fd = devnull; /* the guest's progress lines are not ours to print */

	long long want, got;
	struct wasp_virtine *v = start(&cfg, argv[1]);
	if (!v || run_to_end(v, &want) < 0)
		goto fail;
	wasp_virtine_destroy(v);

	/* Stop it part way: a run that times out returns at an exit
	 * boundary, where a checkpoint may be taken. */
	struct wasp_exit e;
	if (!(v = start(&cfg, argv[1])) || wasp_virtine_run(v, ms * 1000000, &e) < 0)
		goto fail;
	if (e.reason != WASP_EXIT_TIMEOUT) {
		printf("finished within %llu ms; nothing to checkpoint\n", (unsigned long long)ms);
		wasp_virtine_destroy(v);
		close(devnull);
		return 0;
	}
	void *buf;
	size_t len;
	struct wasp_save_opts so = {0};
	struct wasp_ckpt_stats st;
	if (wasp_ckpt_save_buffer(v, &so, &buf, &len, &st) < 0)
		goto fail;
	wasp_virtine_destroy(v);
	printf("checkpoint after %llu ms: %zu bytes, %llu pages\n", (unsigned long long)ms, len,
	       (unsigned long long)st.pages);

	struct wasp_restore_opts ro = {0};
	ro.config = &cfg;
	int r = wasp_ckpt_restore_buffer(&ro, buf, len, &v, &st);
	free(buf);
	if (r < 0 || run_to_end(v, &got) < 0)
		goto fail;
	wasp_virtine_destroy(v);
	close(devnull);
	printf("exit code %lld, restored copy %lld: %s\n", want, got,
	       want == got ? "same" : "DIFFERENT");
	return want == got ? 0 : 1;
fail:
	fprintf(stderr, "checkpoint: %s\n", wasp_last_error());
	if (v)
		wasp_virtine_destroy(v);
	close(devnull);
	return 1;
}
