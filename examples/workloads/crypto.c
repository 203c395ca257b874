/*
 * crypto: a cryptography virtine. Debian's libcrypto.a (OpenSSL 3) through
 * its EVP interface.
 *
 *   crypto sha256 [FILE...]                 "DIGEST  FILE" per file, as sha256sum
 *                                           prints it (stdin when none, or "-")
 *   crypto aes-128-cbc [-d] -K HEX -iv HEX  encrypts (decrypts) stdin to stdout
 *                                           with PKCS#7 padding, as
 *                                           `openssl enc -aes-128-cbc -K -iv` does
 *   crypto --serve                          serves calls, one operation each:
 *     'E' KEY[16] IV[16] DATA  AES-128-CBC encryption of DATA (a multiple of
 *                              16 bytes, no padding): the ciphertext
 *     'D' KEY[16] IV[16] DATA  ... decryption: the plaintext
 *     'H' DATA                 SHA-256 of DATA: 32 bytes
 *   An argument that is none of these gets an empty result.
 *
 * The key travels by value in each call, as in the Wasp paper's OpenSSL
 * experiment: the virtine keeps nothing between calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "workload.h"

/* Fetched once, before a pool's snapshot, so no call pays for OpenSSL's
 * initialisation or its algorithm lookup. */
static EVP_CIPHER *aes;
static EVP_MD *sha;
static EVP_CIPHER_CTX *cctx;

static int crypto_init(void)
{
	aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
	sha = EVP_MD_fetch(NULL, "SHA256", NULL);
	cctx = EVP_CIPHER_CTX_new();
	if (!aes || !sha || !cctx) {
		fputs("crypto: OpenSSL has no AES-128-CBC or SHA-256 here\n", stderr);
		return -1;
	}
	return 0;
}

/* One EVP cipher run over in[0..n) into out (room for n + 16); the output
 * length, or -1. */
static long aes_cbc(const unsigned char *key, const unsigned char *iv, int enc, int pad,
		    const unsigned char *in, size_t n, unsigned char *out)
{
	int len = 0, fin = 0;
	if (EVP_CipherInit_ex2(cctx, aes, key, iv, enc, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(cctx, pad) != 1 ||
	    EVP_CipherUpdate(cctx, out, &len, in, (int)n) != 1 ||
	    EVP_CipherFinal_ex(cctx, out + len, &fin) != 1)
		return -1;
	return (long)len + fin;
}

static int sha256(const void *in, size_t n, unsigned char out[32])
{
	unsigned int len = 0;
	return EVP_Digest(in, n, out, &len, sha, NULL) == 1 && len == 32 ? 0 : -1;
}

static size_t handle(const void *in_, size_t n, void *out_, size_t cap)
{
	const unsigned char *in = in_;
	unsigned char *out = out_;
	if (n >= 1 && in[0] == 'H' && cap >= 32)
		return sha256(in + 1, n - 1, out) ? 0 : 32;
	if (n >= 33 && (in[0] == 'E' || in[0] == 'D') && (n - 33) % 16 == 0 && cap >= n - 33) {
		long r = aes_cbc(in + 1, in + 17, in[0] == 'E', 0, in + 33, n - 33, out);
		return r < 0 ? 0 : (size_t)r;
	}
	return 0;
}

static int hex_bytes(const char *hex, unsigned char *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int cmd_sha256(int argc, char **argv)
{
	int rc = 0;
	for (int i = 2; i < argc || i == 2; i++) {
		const char *name = i < argc ? argv[i] : "-";
		FILE *f = strcmp(name, "-") ? fopen(name, "rb") : stdin;
		size_t len;
		char *buf = f ? workload_slurp(f, &len) : NULL;
		unsigned char d[32];
		if (!buf || sha256(buf, len, d)) {
			fprintf(stderr, "crypto: %s: %s\n", name, strerror(errno));
			rc = 1;
		} else {
			for (int k = 0; k < 32; k++)
				printf("%02x", d[k]);
			printf("  %s\n", name);
		}
		free(buf);
		if (f && f != stdin)
			fclose(f);
	}
	return rc;
}

static int cmd_aes(int argc, char **argv)
{
	unsigned char key[16], iv[16];
	int enc = 1, have_key = 0, have_iv = 0;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "-d")) {
			enc = 0;
		} else if (!strcmp(argv[i], "-K") && i + 1 < argc && !hex_bytes(argv[i + 1], key, 16)) {
			have_key = 1;
			i++;
		} else if (!strcmp(argv[i], "-iv") && i + 1 < argc && !hex_bytes(argv[i + 1], iv, 16)) {
			have_iv = 1;
			i++;
		} else {
			fprintf(stderr, "crypto: aes-128-cbc: bad argument '%s' (-K and -iv take 32 hex digits)\n",
				argv[i]);
			return 2;
		}
	}
	if (!have_key || !have_iv) {
		fputs("crypto: aes-128-cbc needs -K HEX and -iv HEX\n", stderr);
		return 2;
	}
	size_t len;
	char *in = workload_slurp(stdin, &len);
	unsigned char *out = in ? malloc(len + 16) : NULL;
	long n = out ? aes_cbc(key, iv, enc, 1, (unsigned char *)in, len, out) : -1;
	int rc = 0;
	if (n < 0) {
		fputs(out ? "crypto: aes-128-cbc: bad decrypt\n" : "crypto: out of memory\n", stderr);
		rc = 1;
	} else if (fwrite(out, 1, (size_t)n, stdout) != (size_t)n || fflush(stdout)) {
		fprintf(stderr, "crypto: writing: %s\n", strerror(errno));
		rc = 1;
	}
	free(in);
	free(out);
	return rc;
}

int main(int argc, char **argv)
{
	if (crypto_init())
		return 1;
	if (argc >= 2 && !strcmp(argv[1], "--serve")) {
		/* One call of each kind first: what OpenSSL sets up on first use
		 * (CPU capabilities, tables) is then in the snapshot too. */
		unsigned char warm[33 + 16] = {'E'}, out[32];
		handle(warm, sizeof warm, out, sizeof out);
		warm[0] = 'H';
		handle(warm, sizeof warm, out, sizeof out);
		return workload_serve("crypto", handle);
	}
	if (argc >= 2 && !strcmp(argv[1], "sha256"))
		return cmd_sha256(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "aes-128-cbc"))
		return cmd_aes(argc, argv);
	fprintf(stderr, "usage: %s sha256 [FILE...] | %s aes-128-cbc [-d] -K HEX -iv HEX | %s --serve\n",
		argv[0], argv[0], argv[0]);
	return 2;
}
