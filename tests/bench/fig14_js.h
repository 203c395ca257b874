/*
 * fig14_js.h: the request of the Wasp paper's Fig. 14, shared by the
 * bench's native row (wasp-bench-apps, in-process) and its virtine rows
 * (fig14_js, a static Linux program), so both run the same code on the
 * same Duktape (build/examples/duktape.o, from Debian's duktape-dev).
 *
 * One request: a Duktape heap with one native, ret(string), which hands
 * the result to the host (the paper's hypercall back to the host); then
 * the script below evaluated (compiled and run) with the request's string
 * in the global `input`: a small JavaScript function base64-encodes it
 * and gives the result to ret(); then the heap torn down.
 */
#ifndef FIG14_JS_H
#define FIG14_JS_H

#include <stddef.h>

#include "duktape.h"

/* Evaluated once per request. Plain JavaScript, no Duktape built-in
 * (Duktape.enc would do it in C): the function is the request's work. */
static const char fig14_script[] =
	"function b64(s) {\n"
	"  var t = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', o = '';\n"
	"  for (var i = 0; i < s.length; i += 3) {\n"
	"    var n = s.charCodeAt(i) << 16 | (s.charCodeAt(i + 1) | 0) << 8 | (s.charCodeAt(i + 2) | 0);\n"
	"    o += t.charAt(n >> 18 & 63) + t.charAt(n >> 12 & 63) +\n"
	"         (i + 1 < s.length ? t.charAt(n >> 6 & 63) : '=') +\n"
	"         (i + 2 < s.length ? t.charAt(n & 63) : '=');\n"
	"  }\n"
	"  return o;\n"
	"}\n"
	"ret(b64(input));\n";

/* What ret(s) does with the result (n bytes, not NUL-terminated). */
typedef void (*fig14_ret_fn)(const char *s, size_t n);
static fig14_ret_fn fig14_on_ret;

static duk_ret_t fig14_native_ret(duk_context *c)
{
	duk_size_t n;
	const char *s = duk_require_lstring(c, 0, &n);
	fig14_on_ret(s, n);
	return 0;
}

/* A new heap with ret() registered (calling `on_ret`); NULL when out of
 * memory. */
static inline duk_context *fig14_heap(fig14_ret_fn on_ret)
{
	fig14_on_ret = on_ret;
	duk_context *ctx = duk_create_heap_default();
	if (!ctx)
		return NULL;
	duk_push_c_function(ctx, fig14_native_ret, 1);
	duk_put_global_string(ctx, "ret");
	return ctx;
}

/* Evaluates the script on `input` (n bytes of ASCII). 0, or -1 with the
 * error's text copied to err[0..errlen). */
static inline int fig14_eval(duk_context *ctx, const char *input, size_t n, char *err, size_t errlen)
{
	duk_push_lstring(ctx, input, n);
	duk_put_global_string(ctx, "input");
	int r = duk_peval_lstring(ctx, fig14_script, sizeof fig14_script - 1);
	if (r != 0 && errlen) {
		const char *m = duk_safe_to_string(ctx, -1);
		size_t i = 0;
		for (; m[i] && i + 1 < errlen; i++)
			err[i] = m[i];
		err[i] = 0;
	}
	duk_pop(ctx);
	return r ? -1 : 0;
}

#endif /* FIG14_JS_H */
