/*
 * pool.c: a pool of virtines called like a function (docs/embedding.md,
 * docs/pool.md).
 *
 * The image is a C virtine that initialises, makes the snapshot hypercall,
 * then reads its argument and gives its result with WASP_HC_SET_RET, like
 * guest/examples/pool_fib.c (fib(n) of a 4-byte n, an 8-byte result). The
 * pool runs the initialisation once; every call starts at the snapshot.
 *
 *   cc pool.c $(pkg-config --cflags --libs wasp) -o pool
 *   ./pool pool_fib.bin [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmm.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pool IMAGE [N]\n");
		return 2;
	}
	uint32_t n = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 20;

	struct wasp_pool_config c;
	struct wasp_pool *pool;
	wasp_pool_config_init(&c);
	c.image_path = argv[1];
	c.vm.mem_size = 1 << 20;
	c.size = 2;			      /* virtines alive at once */
	c.call_timeout_ns = 1000000000;	      /* a call that runs longer fails */
	c.allow = "get_arg,set_ret,snapshot"; /* no console, no files */
	if (wasp_pool_create(&c, &pool) < 0) {
		fprintf(stderr, "pool: %s\n", wasp_last_error());
		return 1;
	}

	/* Function-style: argument in, result out, the virtine goes back. */
	uint64_t fib = 0;
	struct wasp_call_info info;
	int len = wasp_call(pool, &n, sizeof n, &fib, sizeof fib, &info);
	if (len != (int)sizeof fib) {
		fprintf(stderr, "pool: call failed (%s): %s\n", wasp_call_status_name(info.status),
			len < 0 ? wasp_last_error() : "short result");
		wasp_pool_destroy(pool);
		return 1;
	}
	printf("fib(%u) = %llu\n", n, (unsigned long long)fib);

	/* The same call by hand: get a pristine virtine, give it the
	 * argument, run it to its result, give it back. */
	struct wasp_virtine *v;
	struct wasp_exit e;
	int rc = 1;
	if (wasp_pool_get(pool, &v) < 0 || wasp_pool_set_arg(pool, v, &n, sizeof n) < 0) {
		fprintf(stderr, "pool: %s\n", wasp_last_error());
		wasp_pool_destroy(pool);
		return 1;
	}
	if (wasp_virtine_run(v, 1000000000, &e) == 0 && e.reason == WASP_EXIT_HYPERCALL &&
	    e.hypercall.nr == WASP_HC_SET_RET) {
		size_t rlen;
		const void *ret = wasp_virtine_ret(v, &rlen);
		uint64_t again = 0;
		if (rlen == sizeof again) {
			memcpy(&again, ret, sizeof again);
			printf("again: %llu\n", (unsigned long long)again);
			rc = again == fib ? 0 : 1;
		}
	} else {
		fprintf(stderr, "pool: the run ended %s\n", wasp_exit_reason_name(e.reason));
	}
	wasp_pool_put(pool, v); /* reset on the pool's thread, then ready again */

	struct wasp_pool_stats st;
	wasp_pool_stats(pool, &st);
	printf("snapshot %s, %llu virtines made\n", st.snapshot ? "on" : "off",
	       (unsigned long long)st.created);
	wasp_pool_destroy(pool);
	return rc;
}
