/*
 * run_loop.c: the direct API with a run loop that answers the guest's
 * hypercalls itself (docs/embedding.md).
 *
 * With cfg.hypercall_exits set, a hypercall nobody registered ends the run
 * with WASP_EXIT_HYPERCALL: the caller reads its number and arguments,
 * gives the answer with wasp_virtine_set_hypercall_result() and runs the
 * virtine again, which goes on right after its `out`. The guest here is 31
 * bytes of real-mode code (no image header, so WASP_MODE_AUTO picks real
 * mode) that asks hypercall 65 ("twice plus two") of 20, asks it again of
 * the answer, and exits with the second answer: 86.
 *
 *   cc run_loop.c $(pkg-config --cflags --libs wasp) -o run_loop
 */
#include <stdio.h>

#include <vmm.h>

static const unsigned char guest[] = {
	0x66, 0xb8, 0x41, 0x00, 0x00, 0x00, /* mov eax, 65      ; the hypercall's number */
	0x66, 0xbf, 0x14, 0x00, 0x00, 0x00, /* mov edi, 20      ; its first argument */
	0xe6, 0xff,                         /* out 0xff, al     ; WASP_PORT_HYPERCALL */
	0x66, 0x89, 0xc7,                   /* mov edi, eax     ; the answer, asked again */
	0x66, 0xb8, 0x41, 0x00, 0x00, 0x00, /* mov eax, 65 */
	0xe6, 0xff,                         /* out 0xff, al */
	0x66, 0xe7, 0xfa,                   /* out 0xfa, eax    ; exit with the answer */
};

int main(void)
{
	struct wasp_config cfg;
	struct wasp_virtine *v;
	struct wasp_exit e;

	wasp_config_init(&cfg);
	cfg.mem_size = 1 << 20;
	cfg.hypercall_exits = true; /* unregistered hypercalls come back to us */
	if (wasp_virtine_create(&cfg, &v) < 0) {
		fprintf(stderr, "run_loop: %s\n", wasp_last_error());
		return 1;
	}
	if (wasp_virtine_load(v, guest, sizeof guest, 0, WASP_MODE_AUTO) < 0)
		goto fail;
	for (;;) {
		if (wasp_virtine_run(v, 1000000000, &e) < 0)
			goto fail;
		if (e.reason != WASP_EXIT_HYPERCALL)
			break;
		if (e.hypercall.nr != 65) {
			/* Anything else: refuse it, as an unknown call. */
			if (wasp_virtine_set_hypercall_result(v, -38 /* -ENOSYS */) < 0)
				goto fail;
			continue;
		}
		int64_t answer = (int64_t)e.hypercall.args[0] * 2 + 2;
		printf("hypercall 65(%llu) -> %lld\n", (unsigned long long)e.hypercall.args[0],
		       (long long)answer);
		if (wasp_virtine_set_hypercall_result(v, answer) < 0)
			goto fail;
	}
	if (e.reason != WASP_EXIT_EXITED) {
		printf("virtine stopped: %s\n", wasp_exit_reason_name(e.reason));
		wasp_virtine_destroy(v);
		return 1;
	}
	printf("virtine exited with %lld\n", (long long)e.code);
	wasp_virtine_destroy(v);
	return e.code == 86 ? 0 : 1;
fail:
	fprintf(stderr, "run_loop: %s\n", wasp_last_error());
	wasp_virtine_destroy(v);
	return 1;
}
