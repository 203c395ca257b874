/*
 * aes_chunks: the Wasp paper's crypto experiment (Sec. 6.4) as an
 * embedder would write it. A file is encrypted with AES-128-CBC, each
 * chunk by one call into a pool of `crypto --serve` virtines: the key goes
 * in by value with every call and the virtine keeps nothing, so a
 * compromised or buggy crypto library sees one chunk and one key and
 * cannot keep either. The chunks chain (each call's IV is the last block
 * the previous one made), so the output is exactly
 * `openssl enc -aes-128-cbc -K KEY -iv IV` of the whole input.
 *
 *   aes_chunks [--chunk BYTES] CRYPTO KEYHEX IVHEX < plain > cipher
 *
 * Exit: 0, 1 when a call failed (said on stderr), 2 for bad usage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmm.h>

static int hex16(const char *hex, uint8_t out[16])
{
	if (strlen(hex) != 32)
		return -1;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t chunk = 4096;
	int i = 1;
	if (argc > 2 && !strcmp(argv[1], "--chunk")) {
		chunk = strtoul(argv[2], NULL, 10);
		i = 3;
	}
	uint8_t key[16], iv[16];
	if (argc - i != 3 || !chunk || chunk % 16 || chunk > (512u << 10) || hex16(argv[i + 1], key) ||
	    hex16(argv[i + 2], iv)) {
		fputs("usage: aes_chunks [--chunk BYTES (a multiple of 16)] CRYPTO KEYHEX IVHEX < in > out\n",
		      stderr);
		return 2;
	}

	/* The whole input, padded as PKCS#7 pads it: 1..16 bytes of their count. */
	size_t len = 0, cap = 1 << 16;
	uint8_t *data = malloc(cap);
	for (size_t n; data && (n = fread(data + len, 1, cap - len - 16, stdin)) > 0;) {
		len += n;
		if (cap - len - 16 == 0 && !(data = realloc(data, cap *= 2)))
			break;
	}
	if (!data) {
		fputs("aes_chunks: out of memory\n", stderr);
		return 1;
	}
	uint8_t pad = (uint8_t)(16 - len % 16);
	memset(data + len, pad, pad);
	len += pad;

	struct wasp_pool_config c;
	wasp_pool_config_init(&c);
	c.image_path = argv[i];
	const char *const args[] = {argv[i], "--serve", NULL};
	c.argv = args;
	c.vm.mem_size = 64u << 20;
	c.vm.no_stdin = true;
	struct wasp_pool *p;
	if (wasp_pool_create(&c, &p) < 0) {
		fprintf(stderr, "aes_chunks: %s: %s\n", argv[i], wasp_last_error());
		free(data);
		return 1;
	}
	uint8_t *msg = malloc(33 + chunk), *out = malloc(chunk);
	int rc = msg && out ? 0 : 1;
	for (size_t off = 0; rc == 0 && off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		msg[0] = 'E';
		memcpy(msg + 1, key, 16);
		memcpy(msg + 17, iv, 16);
		memcpy(msg + 33, data + off, n);
		int got = wasp_call(p, msg, 33 + n, out, chunk, NULL);
		if (got != (int)n) {
			fprintf(stderr, "aes_chunks: the call for bytes %zu..%zu: %s\n", off, off + n,
				got < 0 ? wasp_last_error() : "a result of the wrong length");
			rc = 1;
			break;
		}
		memcpy(iv, out + n - 16, 16); /* CBC chains on */
		if (fwrite(out, 1, n, stdout) != n) {
			perror("aes_chunks: writing");
			rc = 1;
		}
	}
	if (fflush(stdout))
		rc = 1;
	wasp_pool_destroy(p);
	free(msg);
	free(out);
	free(data);
	return rc;
}
