/*
 * embed.c: the smallest useful embedding of libwasp.
 *
 * Creates a virtine, registers an embedder hypercall ("add", number 64),
 * loads an image, runs it, and reports how it ended. With no image it runs
 * the three-byte virtine `out 0xFA, eax` from a buffer.
 *
 *   cc embed.c $(pkg-config --cflags --libs wasp) -o embed
 *   ./embed [IMAGE]
 */
#include <stdio.h>
#include <string.h>

#include <vmm.h>

static int64_t add(struct wasp_virtine *v, const uint64_t args[6], void *opaque)
{
	(void)v;
	(void)opaque;
	return (int64_t)(args[0] + args[1]);
}

int main(int argc, char **argv)
{
	static const unsigned char exit3[] = {0x66, 0xe7, 0xfa};
	struct wasp_config cfg;
	struct wasp_virtine *v;
	struct wasp_exit e;

	wasp_config_init(&cfg);
	cfg.mem_size = 16 << 20;
	if (wasp_virtine_create(&cfg, &v) < 0) {
		fprintf(stderr, "embed: %s\n", wasp_last_error());
		return 1;
	}
	/* Deny by default: name what this virtine may call. */
	if (wasp_virtine_register_hypercall(v, 64, "add", add, NULL) < 0 ||
	    wasp_virtine_allow(v, "console_write,add") < 0)
		goto fail;

	int r = argc > 1 ? wasp_virtine_load_file(v, argv[1], 0, WASP_MODE_AUTO)
			 : wasp_virtine_load(v, exit3, sizeof exit3, 0, WASP_MODE_AUTO);
	if (r < 0)
		goto fail;
	if (wasp_virtine_run(v, 5ull * 1000000000, &e) < 0)
		goto fail;

	switch (e.reason) {
	case WASP_EXIT_EXITED:
		printf("virtine exited with %lld\n", (long long)e.code);
		break;
	case WASP_EXIT_FAULT:
		printf("virtine faulted: %s at rip 0x%llx\n", wasp_fault_kind_name(e.fault.kind),
		       (unsigned long long)e.fault.regs.rip);
		break;
	default:
		printf("virtine stopped: %s\n", wasp_exit_reason_name(e.reason));
		break;
	}
	wasp_virtine_destroy(v);
	return e.reason == WASP_EXIT_EXITED ? 0 : 1;
fail:
	fprintf(stderr, "embed: %s\n", wasp_last_error());
	wasp_virtine_destroy(v);
	return 1;
}
