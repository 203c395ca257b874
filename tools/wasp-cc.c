/*
 * wasp-cc: a drop-in for `cc` that puts the functions marked `virtine`
 * (<wasp/virtine.h>) in virtines. docs/embedding.md says how and why.
 *
 * For each C source on the command line it reads the file with libclang,
 * finds the function definitions annotated "wasp:virtine", checks that
 * every parameter can be copied into a guest, and for each such function:
 *   - builds a guest image: the whole file compiled for the guest with a
 *     generated main() that takes the arguments at the snapshot hypercall,
 *     calls the function and hands back the result, linked with
 *     --gc-sections, so the image holds the function and what it calls,
 *     nothing else. Linked with the C library (musl, as a static Linux
 *     program that wasp's Linux personality serves) when musl-gcc is
 *     there, else with wasp's freestanding guest runtime;
 *   - embeds the image in the host object and replaces the function's body
 *     with a call through wasp_vfn_call() (vmm/vmm_vfn.c).
 * Then it runs the host compiler with the rewritten sources in place of
 * the originals and everything else unchanged (plus libwasp when linking).
 *
 * Environment: WASP_CC_HOST (host compiler, default cc), WASP_CC_KEEP=1
 * (keep the temporary directory and say where), WASP_CC_VERBOSE=1 (print
 * every command), WASP_CC_LIBC (0: the freestanding runtime even when
 * musl-gcc is there; a path: that musl-gcc).
 */
#define _GNU_SOURCE
#include <clang-c/Index.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm.h" /* wasp_hypercall_names_valid(): virtine_allow() checked here */

/* Baked in by tools/CMakeLists.txt. */
#ifndef WASP_CC_GUEST_CC
#error "build wasp-cc through CMake"
#endif

#define GUEST_BUF_CAP 65536

static const char *prog = "wasp-cc";
static char tmpdir[PATH_MAX];
static bool verbose, keep;

static void cleanup(void)
{
	if (!tmpdir[0] || keep)
		return;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s: could not remove %s\n", prog, tmpdir);
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cleanup();
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die("out of memory");
	return p;
}

static __attribute__((format(printf, 1, 2))) char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	return s;
}

/* ---- Argument vectors and running commands ------------------------------ */

struct argv {
	char **v;
	size_t n, cap;
};

static void push(struct argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = realloc(a->v, a->cap * sizeof *a->v);
		if (!a->v)
			die("out of memory");
	}
	a->v[a->n++] = xstrdup(s);
	a->v[a->n] = NULL;
}

static void free_argv(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

static void push_words(struct argv *a, const char *words)
{
	char *copy = xstrdup(words), *save = NULL;
	for (char *w = strtok_r(copy, ";", &save); w; w = strtok_r(NULL, ";", &save))
		/* The guest build of a host file speaks the host build's dialect:
		 * the user's -std= or the compiler's default (gnu), never the
		 * runtime's strict -std=c11, which hides POSIX declarations. */
		if (*w && strncmp(w, "-std=", 5) != 0)
			push(a, w);
	free(copy);
}

/* Runs a command; with `errfile`, its stderr goes there. Returns its exit
 * status (128 + signal when killed). */
static int run(struct argv *a, const char *errfile)
{
	if (verbose) {
		for (size_t i = 0; i < a->n; i++)
			fprintf(stderr, "%s%s", i ? " " : "+ ", a->v[i]);
		fputc('\n', stderr);
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (errfile && !freopen(errfile, "w", stderr))
			_exit(127);
		execvp(a->v[0], a->v);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, a->v[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- Where the guest runtime and headers are ---------------------------- */

struct layout {
	char inc[PATH_MAX]; /* holds wasp/virtine.h and wasp/wasp_abi.h */
	char rt[PATH_MAX];  /* boot.o, libwasp_guest_rt.a, virtine.ld */
	char lib[PATH_MAX]; /* libwasp.so */
};

static bool exists(const char *dir, const char *file)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof p, "%s/%s", dir, file);
	return access(p, R_OK) == 0;
}

static bool layout_ok(const struct layout *l)
{
	return exists(l->inc, "wasp/virtine.h") && exists(l->inc, "wasp/wasp_abi.h") &&
	       exists(l->rt, "boot.o") && exists(l->rt, "libwasp_guest_rt.a") &&
	       exists(l->rt, "virtine.ld");
}

/* An installed wasp-cc finds everything relative to its own executable
 * (so a prefix can move); one in the build tree uses the build tree. */
static void find_layout(struct layout *l)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(l->inc, sizeof l->inc, "%s/%s", exe, WASP_CC_REL_INCLUDE);
		snprintf(l->rt, sizeof l->rt, "%s/%s", exe, WASP_CC_REL_RT);
		snprintf(l->lib, sizeof l->lib, "%s/%s", exe, WASP_CC_REL_LIB);
		if (layout_ok(l))
			return;
	}
	snprintf(l->inc, sizeof l->inc, "%s", WASP_CC_BUILD_INCLUDE);
	snprintf(l->rt, sizeof l->rt, "%s", WASP_CC_BUILD_RT);
	snprintf(l->lib, sizeof l->lib, "%s", WASP_CC_BUILD_LIB);
	if (layout_ok(l))
		return;
	die("cannot find the guest runtime (boot.o, libwasp_guest_rt.a, virtine.ld) next to "
	    "%s/%s nor in the build tree %s: reinstall wasp",
	    n > 0 ? exe : "?", WASP_CC_REL_RT, WASP_CC_BUILD_RT);
}

/* ---- Reading the marked functions with libclang ------------------------- */

enum pkind { P_VALUE, P_SIZED, P_STRING };

struct param {
	char *name, *type;
	enum pkind kind;
	bool out; /* pointee not const: copied back */
};

struct vfunc {
	char *name, *ret; /* ret NULL: void */
	struct param *p;
	unsigned np;
	char *allow;
	uint64_t mem, timeout_ms;
	unsigned body_start, body_end, end_line;
	CXCursor def;
	bool marked;
	char *usr;
};

struct unit {
	const char *path;
	char *src; /* the file's bytes */
	size_t len;
	struct vfunc *f;
	unsigned nf;
};

static char *cxstr(CXString s)
{
	char *r = xstrdup(clang_getCString(s) ? clang_getCString(s) : "");
	clang_disposeString(s);
	return r;
}

/* "file:line" of a cursor, for messages (static: die() follows). */
static const char *where(CXCursor c)
{
	static char buf[PATH_MAX + 16];
	CXFile file;
	unsigned line, col;
	clang_getSpellingLocation(clang_getCursorLocation(c), &file, &line, &col, NULL);
	CXString f = clang_getFileName(file);
	snprintf(buf, sizeof buf, "%s:%u", clang_getCString(f) ? clang_getCString(f) : "?", line);
	clang_disposeString(f);
	return buf;
}

static __attribute__((noreturn, format(printf, 3, 4))) void fn_error(CXCursor at, const char *fn,
								     const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	die("%s: virtine function '%s': %s", where(at), fn, msg);
}

static bool is_char(enum CXTypeKind k)
{
	return k == CXType_Char_S || k == CXType_Char_U || k == CXType_SChar || k == CXType_UChar;
}

struct field_check {
	const char *bad; /* what a field holds that cannot be copied */
};

static const char *pointer_inside(CXType t);

static enum CXVisitorResult field_visit(CXCursor c, CXClientData data)
{
	struct field_check *fc = data;
	CXType t = clang_getCanonicalType(clang_getCursorType(c));
	if (t.kind == CXType_IncompleteArray) {
		/* sizeof leaves a flexible array member out: copying sizeof
		 * bytes would silently drop it. */
		fc->bad = "a flexible array member";
		return CXVisit_Break;
	}
	const char *inner = pointer_inside(t);
	if (inner) {
		fc->bad = t.kind == CXType_Pointer || t.kind == CXType_BlockPointer
			      ? "a pointer member"
			      : inner;
		return CXVisit_Break;
	}
	return CXVisit_Continue;
}

/* Non-NULL (what) when a value of type t holds something a copy cannot
 * carry: a pointer (it would mean nothing inside the guest) or a flexible
 * array member (sizeof does not cover it). Such types are refused. */
static const char *pointer_inside(CXType t)
{
	t = clang_getCanonicalType(t);
	switch (t.kind) {
	case CXType_Pointer:
	case CXType_BlockPointer:
		return "a pointer";
	case CXType_ConstantArray:
	case CXType_IncompleteArray:
	case CXType_VariableArray:
		return pointer_inside(clang_getArrayElementType(t));
	case CXType_Record: {
		struct field_check fc = {NULL};
		clang_Type_visitFields(t, field_visit, &fc);
		return fc.bad;
	}
	default:
		return NULL;
	}
}

static char *type_str(CXType t)
{
	return cxstr(clang_getTypeSpelling(t));
}

static void check_param(struct vfunc *f, CXCursor pc, struct param *p)
{
	CXType t = clang_getCursorType(pc);
	CXType c = clang_getCanonicalType(t);
	p->name = cxstr(clang_getCursorSpelling(pc));
	p->type = type_str(t);
	if (!p->name[0])
		fn_error(pc, f->name, "a parameter (%s) has no name, so it cannot be copied",
			 p->type);
	const char *pname = p->name;
	if (c.kind == CXType_Pointer) {
		CXType pt = clang_getCanonicalType(clang_getPointeeType(c));
		if (pt.kind == CXType_FunctionProto || pt.kind == CXType_FunctionNoProto)
			fn_error(pc, f->name,
				 "parameter '%s' (%s) is a function pointer, which "
				 "cannot be called inside a virtine",
				 pname, p->type);
		if (pt.kind == CXType_Void)
			fn_error(pc, f->name,
				 "parameter '%s' (%s) points to void: its size is "
				 "unknown, so it cannot be copied",
				 pname, p->type);
		if (pt.kind == CXType_Pointer)
			fn_error(pc, f->name,
				 "parameter '%s' (%s) points to a pointer, which "
				 "cannot be copied",
				 pname, p->type);
		long long size = clang_Type_getSizeOf(pt);
		if (size < 0)
			fn_error(pc, f->name,
				 "parameter '%s' (%s) points to an incomplete type: "
				 "its size is unknown, so it cannot be copied",
				 pname, p->type);
		const char *inside = pointer_inside(pt);
		if (inside)
			fn_error(pc, f->name,
				 "parameter '%s' (%s) points to an object holding %s, "
				 "which cannot be copied",
				 pname, p->type, inside);
		p->kind = is_char(pt.kind) ? P_STRING : P_SIZED;
		p->out = !clang_isConstQualifiedType(pt);
		return;
	}
	if (c.kind == CXType_BlockPointer || c.kind == CXType_Unexposed)
		fn_error(pc, f->name, "parameter '%s' (%s) has a type wasp-cc cannot copy", pname,
			 p->type);
	if (clang_Type_getSizeOf(c) < 0)
		fn_error(pc, f->name, "parameter '%s' (%s) has no size", pname, p->type);
	const char *inside = pointer_inside(c);
	if (inside)
		fn_error(pc, f->name, "parameter '%s' (%s) holds %s, which cannot be copied", pname,
			 p->type, inside);
	p->kind = P_VALUE;
}

static uint64_t parse_size(CXCursor at, const char *fn, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (errno || end == s || *end || v == 0 || v > (1ull << 40) >> shift)
		fn_error(at, fn, "virtine_mem(%s): give a size such as 65536, 64K or 4M", s);
	return (uint64_t)v << shift;
}

struct collect {
	struct unit *u;
	CXTranslationUnit tu;
};

static struct vfunc *find_usr(struct unit *u, const char *usr)
{
	for (unsigned i = 0; i < u->nf; i++)
		if (!strcmp(u->f[i].usr, usr))
			return &u->f[i];
	return NULL;
}

static enum CXChildVisitResult attr_visit(CXCursor c, CXCursor parent, CXClientData data)
{
	(void)parent;
	struct vfunc *f = data;
	if (clang_getCursorKind(c) != CXCursor_AnnotateAttr)
		return CXChildVisit_Continue;
	char *a = cxstr(clang_getCursorSpelling(c));
	if (!strcmp(a, "wasp:virtine")) {
		f->marked = true;
	} else if (!strncmp(a, "wasp:allow=", 11)) {
		/* "console_write, open" -> "console_write,open" */
		size_t n = f->allow ? strlen(f->allow) : 0;
		char *m = xmalloc(n + strlen(a) + 2);
		if (n)
			memcpy(m, f->allow, n), m[n++] = ',';
		for (const char *s = a + 11; *s; s++)
			if (*s != ' ' && *s != '\t')
				m[n++] = *s;
		m[n] = '\0';
		free(f->allow);
		f->allow = m;
	} else if (!strncmp(a, "wasp:mem=", 9)) {
		f->mem = parse_size(c, f->name, a + 9);
	} else if (!strncmp(a, "wasp:timeout_ms=", 16)) {
		char *end;
		errno = 0;
		f->timeout_ms = strtoull(a + 16, &end, 0);
		if (errno || end == a + 16 || *end || !f->timeout_ms)
			fn_error(c, f->name, "virtine_timeout_ms(%s): give a number of ms", a + 16);
	}
	free(a);
	return CXChildVisit_Continue;
}

static enum CXChildVisitResult tu_visit(CXCursor c, CXCursor parent, CXClientData data)
{
	(void)parent;
	struct collect *col = data;
	struct unit *u = col->u;
	if (clang_getCursorKind(c) != CXCursor_FunctionDecl)
		return CXChildVisit_Continue;
	char *usr = cxstr(clang_getCursorUSR(c));
	struct vfunc *f = find_usr(u, usr);
	if (!f) {
		u->f = realloc(u->f, (u->nf + 1) * sizeof *u->f);
		if (!u->f)
			die("out of memory");
		f = &u->f[u->nf++];
		memset(f, 0, sizeof *f);
		f->usr = usr;
		f->name = cxstr(clang_getCursorSpelling(c));
		f->def = clang_getNullCursor();
	} else {
		free(usr);
	}
	/* The keywords may sit on any declaration of the function. */
	clang_visitChildren(c, attr_visit, f);
	if (clang_isCursorDefinition(c) &&
	    clang_Location_isFromMainFile(clang_getCursorLocation(c)))
		f->def = c;
	return CXChildVisit_Continue;
}

static enum CXChildVisitResult body_visit(CXCursor c, CXCursor parent, CXClientData data)
{
	(void)parent;
	if (clang_getCursorKind(c) == CXCursor_CompoundStmt) {
		*(CXCursor *)data = c;
		return CXChildVisit_Break;
	}
	return CXChildVisit_Continue;
}

static void check_function(struct unit *u, struct vfunc *f)
{
	CXCursor d = f->def;
	CXType ft = clang_getCursorType(d);
	if (ft.kind == CXType_FunctionProto && clang_isFunctionTypeVariadic(ft))
		fn_error(d, f->name, "it is variadic (...), whose arguments cannot be copied");
	int n = clang_Cursor_getNumArguments(d);
	if (n < 0)
		fn_error(d, f->name, "wasp-cc cannot read its parameters");
	CXType rt = clang_getResultType(ft);
	if (clang_getCanonicalType(rt).kind != CXType_Void) {
		CXType rc = clang_getCanonicalType(rt);
		f->ret = type_str(rt);
		if (rc.kind == CXType_Pointer)
			fn_error(d, f->name,
				 "it returns a pointer (%s), which would point into the "
				 "virtine's memory",
				 f->ret);
		const char *inside = pointer_inside(rc);
		if (inside)
			fn_error(d, f->name, "its return type (%s) holds %s", f->ret, inside);
		if (clang_Type_getSizeOf(rc) < 0)
			fn_error(d, f->name, "its return type (%s) has no size", f->ret);
	}
	f->np = (unsigned)n;
	f->p = xmalloc(sizeof *f->p * (f->np + 1));
	for (unsigned i = 0; i < f->np; i++)
		check_param(f, clang_Cursor_getArgument(d, i), &f->p[i]);

	CXCursor body = clang_getNullCursor();
	clang_visitChildren(d, body_visit, &body);
	if (clang_Cursor_isNull(body))
		fn_error(d, f->name, "wasp-cc cannot find its body");
	CXSourceRange r = clang_getCursorExtent(body);
	CXFile f1, f2;
	unsigned l1, l2, o1, o2;
	clang_getSpellingLocation(clang_getRangeStart(r), &f1, &l1, NULL, &o1);
	clang_getSpellingLocation(clang_getRangeEnd(r), &f2, &l2, NULL, &o2);
	if (!clang_File_isEqual(f1, f2) || !clang_Location_isFromMainFile(clang_getRangeStart(r)) ||
	    o2 <= o1 || o2 > u->len || u->src[o1] != '{' || u->src[o2 - 1] != '}')
		fn_error(d, f->name, "its body comes from a macro; write it out in the file");
	f->body_start = o1;
	f->body_end = o2;
	f->end_line = l2;
}

static void free_vfunc(struct vfunc *f)
{
	for (unsigned i = 0; i < f->np; i++)
		free(f->p[i].name), free(f->p[i].type);
	free(f->p), free(f->name), free(f->ret), free(f->allow), free(f->usr);
}

static void free_unit(struct unit *u)
{
	for (unsigned i = 0; i < u->nf; i++)
		free_vfunc(&u->f[i]);
	free(u->f), free(u->src);
}

static void read_file(struct unit *u)
{
	FILE *fp = fopen(u->path, "rb");
	if (!fp)
		die("%s: %s", u->path, strerror(errno));
	size_t cap = 1 << 16;
	u->src = xmalloc(cap + 1);
	size_t n;
	while ((n = fread(u->src + u->len, 1, cap - u->len, fp)) > 0) {
		u->len += n;
		if (u->len == cap) {
			cap *= 2;
			u->src = realloc(u->src, cap + 1);
			if (!u->src)
				die("out of memory");
		}
	}
	if (ferror(fp))
		die("%s: %s", u->path, strerror(errno));
	fclose(fp);
	u->src[u->len] = '\0';
}

/* Parses the unit with the user's preprocessor flags; fills u->f with the
 * marked functions defined in it (checked). */
static void parse_unit(struct unit *u, struct argv *cppflags, const struct layout *l)
{
	struct argv a = {0};
	push(&a, "-xc");
	push(&a, "-DWASP_CC_PARSE=1");
	for (size_t i = 0; i < cppflags->n; i++)
		push(&a, cppflags->v[i]);
	char *inc = xasprintf("-I%s", l->inc);
	push(&a, inc);
	free(inc);

	CXIndex idx = clang_createIndex(0, 0);
	CXTranslationUnit tu;
	enum CXErrorCode e = clang_parseTranslationUnit2(
	    idx, u->path, (const char *const *)a.v, (int)a.n, NULL, 0, CXTranslationUnit_None, &tu);
	if (e != CXError_Success)
		die("%s: libclang could not parse it (error %d)", u->path, (int)e);
	bool bad = false;
	for (unsigned i = 0; i < clang_getNumDiagnostics(tu); i++) {
		CXDiagnostic d = clang_getDiagnostic(tu, i);
		if (clang_getDiagnosticSeverity(d) >= CXDiagnostic_Error) {
			char *s = cxstr(
			    clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions()));
			fprintf(stderr, "%s\n", s);
			free(s);
			bad = true;
		}
		clang_disposeDiagnostic(d);
	}
	if (bad)
		die("%s: does not compile (above)", u->path);
	read_file(u);
	struct collect col = {u, tu};
	clang_visitChildren(clang_getTranslationUnitCursor(tu), tu_visit, &col);
	unsigned keep_n = 0;
	for (unsigned i = 0; i < u->nf; i++) {
		struct vfunc *f = &u->f[i];
		bool policy = f->allow || f->mem || f->timeout_ms;
		if (!f->marked || clang_Cursor_isNull(f->def)) {
			if (policy && !f->marked && !clang_Cursor_isNull(f->def))
				fn_error(f->def, f->name,
					 "virtine_allow/mem/timeout_ms on a function "
					 "not marked virtine");
			continue;
		}
		if (f->allow && wasp_hypercall_names_valid(f->allow) < 0)
			fn_error(f->def, f->name, "virtine_allow(%s): %s", f->allow,
				 wasp_last_error());
		check_function(u, f);
		struct vfunc t = u->f[keep_n];
		u->f[keep_n++] = *f;
		*f = t;
	}
	for (unsigned i = keep_n; i < u->nf; i++)
		free_vfunc(&u->f[i]);
	u->nf = keep_n;
	/* Offsets into the same file: rewrite from the last one back. */
	for (unsigned i = 1; i < u->nf; i++)
		for (unsigned j = i; j > 0 && u->f[j - 1].body_start > u->f[j].body_start; j--) {
			struct vfunc t = u->f[j];
			u->f[j] = u->f[j - 1];
			u->f[j - 1] = t;
		}
	/* The cursors die with the unit; nothing below needs them. */
	for (unsigned i = 0; i < u->nf; i++)
		u->f[i].def = clang_getNullCursor();
	clang_disposeTranslationUnit(tu);
	clang_disposeIndex(idx);
	free_argv(&a);
}

/* `s` as a C string literal, for #include and #line (static buffer). */
static const char *cstr(const char *s)
{
	static char buf[PATH_MAX * 4 + 3];
	size_t n = 0;
	buf[n++] = '"';
	for (; *s && n < sizeof buf - 6; s++) {
		if (*s == '"' || *s == '\\')
			buf[n++] = '\\', buf[n++] = *s;
		else if ((unsigned char)*s < 0x20)
			n += (size_t)sprintf(buf + n, "\\%03o", (unsigned char)*s);
		else
			buf[n++] = *s;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

/* ---- The guest image ---------------------------------------------------- */

static FILE *xfopen(const char *path, const char *mode)
{
	FILE *f = fopen(path, mode);
	if (!f)
		die("%s: %s", path, strerror(errno));
	return f;
}

static void xfclose(FILE *f, const char *path)
{
	if (ferror(f) | fclose(f))
		die("%s: write failed", path);
}

/* How the guest makes hypercalls and ends itself. The freestanding
 * runtime's guest is a flat image at ring 3 with IOPL 3: `out` to wasp's
 * ports. With the C library it is a static Linux program, whose `out` to
 * those ports faults (docs/linux.md): its hypercalls are the system calls
 * WASP_LINUX_HC_BASE + N (guest/wasp_linux.h), and it ends by _Exit. */
static void write_guest_calls(FILE *o, bool libc)
{
	if (libc) {
		fputs("#include <stdio.h>\n"
		      "#include <stdlib.h>\n"
		      "#include <wasp/wasp_abi.h>\n"
		      "static inline long long __wasp_hc(unsigned long long nr,\n"
		      "\t\tunsigned long long a0, unsigned long long a1, unsigned long long a2)\n"
		      "{\n"
		      "\tunsigned long long rax = WASP_LINUX_HC_BASE + nr;\n"
		      "\t__asm__ volatile(\"syscall\" : \"+a\"(rax)\n"
		      "\t\t: \"D\"(a0), \"S\"(a1), \"d\"(a2) : \"rcx\", \"r11\", \"memory\");\n"
		      "\treturn (long long)rax;\n"
		      "}\n"
		      "static __attribute__((noreturn)) void __wasp_exit(int code)\n"
		      "{\n"
		      "\t_Exit(code);\n"
		      "}\n",
		      o);
		return;
	}
	fputs("#include <wasp/wasp_abi.h>\n"
	      "void *malloc(__SIZE_TYPE__);\n"
	      "static inline long long __wasp_hc(unsigned long long nr, unsigned long long a0,\n"
	      "\t\tunsigned long long a1, unsigned long long a2)\n"
	      "{\n"
	      "\tunsigned long long rax = nr;\n"
	      "\t__asm__ volatile(\"outb %%al, %[port]\" : \"+a\"(rax)\n"
	      "\t\t: [port] \"i\"(WASP_PORT_HYPERCALL), \"D\"(a0), \"S\"(a1), \"d\"(a2)\n"
	      "\t\t: \"memory\", \"r10\", \"r8\", \"r9\");\n"
	      "\treturn (long long)rax;\n"
	      "}\n"
	      "static __attribute__((noreturn)) void __wasp_exit(int code)\n"
	      "{\n"
	      "\tfor (;;)\n"
	      "\t\t__asm__ volatile(\"outl %%eax, %[port]\" : : \"a\"(code),\n"
	      "\t\t\t[port] \"i\"(WASP_PORT_EXIT) : \"memory\");\n"
	      "}\n",
	      o);
}

/* The guest's main(): argument buffer at the snapshot, the call, the result.
 * With the C library, main() runs after the library's start-up, so the
 * snapshot holds an initialised C library and no call pays for it. */
static void write_guest_stub(FILE *o, const char *src_abs, const struct vfunc *f, bool libc)
{
	fprintf(o,
		"/* Generated by wasp-cc: the guest of virtine function %s. */\n"
		"#define main __wasp_user_main\n"
		"#include \"%s\"\n"
		"#undef main\n",
		f->name, src_abs);
	write_guest_calls(o, libc);
	fprintf(o,
		"static unsigned char __wasp_buf[%d] __attribute__((aligned(16)));\n"
		"int main(void)\n"
		"{\n"
		"\tunsigned char *b = __wasp_buf;\n",
		GUEST_BUF_CAP);
	/* musl's first malloc in a process sets its heap up: four system
	 * calls (brk twice, a guard page, the group), each an exit. Made once
	 * here, before the snapshot, the calls that malloc start from a heap
	 * that is set up (a call of malloc(32), snprintf, free: 6 exits -> 3). */
	if (libc)
		fprintf(o, "\tvoid *volatile __wasp_warm = malloc(1);\n"
			   "\tfree(__wasp_warm);\n");
	fprintf(o,
		"\tlong long len = __wasp_hc(WASP_HC_SNAPSHOT, (unsigned long long)b, sizeof "
		"__wasp_buf, WASP_SNAPSHOT_ARG);\n"
		"\tif (len <= 0 || len > (long long)sizeof __wasp_buf) {\n"
		"\t\t/* Not in a pool, or too big for the buffer: fetch it whole. */\n"
		"\t\tlen = __wasp_hc(WASP_HC_GET_ARG, 0, 0, 0);\n"
		"\t\tif (len > (long long)sizeof __wasp_buf && !(b = malloc((__SIZE_TYPE__)len)))\n"
		"\t\t\t__wasp_exit(121);\n"
		"\t\tif (len > 0 && __wasp_hc(WASP_HC_GET_ARG, (unsigned long long)b, "
		"(unsigned long long)len, 0) != len)\n"
		"\t\t\t__wasp_exit(122);\n"
		"\t}\n"
		"\tunsigned long long off = 0, l;\n");
	unsigned slot = 0;
	/* Each slot: 16-byte header (length, ~0 for NULL), bytes padded to 16. */
	const char *take = "\tif (off + 16 > (unsigned long long)len) __wasp_exit(123);\n"
			   "\t__builtin_memcpy(&l, b + off, 8); off += 16;\n"
			   "\tunsigned char *__wasp_p%u = 0;\n"
			   "\tif (l != ~0ull) {\n"
			   "\t\tif (l > (unsigned long long)len - off) __wasp_exit(124);\n"
			   "\t\t__wasp_p%u = b + off; off += (l + 15) & ~15ull;\n"
			   "\t}\n";
	if (f->ret) {
		fprintf(o, take, slot, slot);
		fprintf(o, "\tif (l != sizeof(__typeof__(%s))) __wasp_exit(125);\n", f->ret);
		slot++;
	}
	for (unsigned i = 0; i < f->np; i++, slot++) {
		const struct param *p = &f->p[i];
		fprintf(o, take, slot, slot);
		switch (p->kind) {
		case P_VALUE:
			fprintf(o, "\tif (l != sizeof(__typeof__(%s))) __wasp_exit(125);\n",
				p->type);
			break;
		case P_SIZED:
			fprintf(o,
				"\tif (l != ~0ull && l != sizeof(*(__typeof__(%s))0)) "
				"__wasp_exit(125);\n",
				p->type);
			break;
		case P_STRING:
			fprintf(o,
				"\tif (l != ~0ull && (l == 0 || __wasp_p%u[l - 1] != 0)) "
				"__wasp_exit(125);\n",
				slot);
			break;
		}
	}
	fprintf(o, "\tif (off != (unsigned long long)len) __wasp_exit(126);\n\t");
	slot = f->ret ? 1 : 0;
	if (f->ret)
		fprintf(o, "__typeof__(%s) __wasp_r = ", f->ret);
	fprintf(o, "%s(", f->name);
	for (unsigned i = 0; i < f->np; i++, slot++) {
		const struct param *p = &f->p[i];
		if (p->kind == P_VALUE)
			fprintf(o, "%s*(__typeof__(%s) *)(void *)__wasp_p%u", i ? ", " : "",
				p->type, slot);
		else
			fprintf(o, "%s(__typeof__(%s))(void *)__wasp_p%u", i ? ", " : "", p->type,
				slot);
	}
	fprintf(o, ");\n");
	if (f->ret)
		fprintf(o, "\t__builtin_memcpy(__wasp_p0, &__wasp_r, sizeof __wasp_r);\n");
	/* What the function printed goes out before the call ends: a call
	 * ends at the result, and the next one starts from the snapshot,
	 * where stdio's buffers are empty. */
	if (libc)
		fprintf(o, "\tfflush(0);\n");
	fprintf(o,
		"\t__wasp_hc(WASP_HC_SET_RET, (unsigned long long)b, (unsigned long long)len, 0);\n"
		"\treturn 0;\n"
		"}\n");
}

struct opts {
	struct argv cppflags; /* -I -D -U -include -isystem -iquote -std */
	bool link;
};

/* Where virtine functions get their C library: the compiler driver that
 * links a static musl program (musl-gcc), or NULL for wasp's freestanding
 * runtime, with libc_why saying why there is none. */
static const char *libc_cc;
static const char *libc_why = "";

/* What the loader wants free between the program and its stack at least. */
#define LIBC_HEAP_MIN (4ull << 20)
#define LIBC_HEAP_DEFAULT (16ull << 20)
#define MIB2 (2ull << 20)

/* Guest memory of a function built with the C library: the program where
 * it is linked (its segments end at the highest PT_LOAD), then its
 * virtine_mem() for brk and mmap (default 16 MiB, at least 4 MiB), then
 * the 8 MiB stack. Memory no call touches costs nothing (a memfd), so the
 * default is generous. */
static uint64_t libc_mem(const char *src_abs, const struct vfunc *f, const char *elf)
{
	FILE *fp = xfopen(elf, "rb");
	Elf64_Ehdr eh;
	uint64_t hi = 0;
	bool ok = fread(&eh, sizeof eh, 1, fp) == 1 && eh.e_phentsize == sizeof(Elf64_Phdr) &&
		  eh.e_phnum > 0 && eh.e_phnum < 64;
	for (unsigned i = 0; ok && i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		ok = fseek(fp, (long)(eh.e_phoff + i * sizeof ph), SEEK_SET) == 0 &&
		     fread(&ph, sizeof ph, 1, fp) == 1 && ph.p_vaddr + ph.p_memsz >= ph.p_vaddr;
		if (ok && ph.p_type == PT_LOAD && ph.p_vaddr + ph.p_memsz > hi)
			hi = ph.p_vaddr + ph.p_memsz;
	}
	fclose(fp);
	if (!ok || !hi || hi > (1ull << 40))
		die("%s: virtine function '%s': %s is not the static program it should be", src_abs,
		    f->name, elf);
	uint64_t heap = f->mem ? f->mem : LIBC_HEAP_DEFAULT;
	heap = heap < LIBC_HEAP_MIN ? LIBC_HEAP_MIN : (heap + 4095) & ~4095ull;
	return ((hi + MIB2 - 1) & ~(MIB2 - 1)) + heap + WASP_LINUX_STACK_SIZE;
}

/* Builds f's guest image into `bin`; returns the guest memory its pool
 * gets (0: vmm_vfn.c's default). */
static uint64_t build_image(const struct layout *l, struct opts *op, const char *src_abs,
			    const struct vfunc *f, const char *dir, const char *bin)
{
	/* Fixed buffers, not the heap: die() may come before they are freed. */
	char gc[PATH_MAX], obj[PATH_MAX], elf[PATH_MAX], err[PATH_MAX], inc[PATH_MAX + 2];
	char ld_script[PATH_MAX + 16], boot[PATH_MAX + 16], rt[PATH_MAX + 32];
	bool libc = libc_cc != NULL;
	snprintf(gc, sizeof gc, "%s/guest_%s.c", dir, f->name);
	snprintf(obj, sizeof obj, "%s/guest_%s.o", dir, f->name);
	snprintf(elf, sizeof elf, "%s/guest_%s.elf", dir, f->name);
	snprintf(err, sizeof err, "%s/guest_%s.err", dir, f->name);
	snprintf(inc, sizeof inc, "-I%s", l->inc);
	snprintf(ld_script, sizeof ld_script, "%s/virtine.ld", l->rt);
	snprintf(boot, sizeof boot, "%s/boot.o", l->rt);
	snprintf(rt, sizeof rt, "%s/libwasp_guest_rt.a", l->rt);
	FILE *o = xfopen(gc, "w");
	write_guest_stub(o, src_abs, f, libc);
	xfclose(o, gc);

	struct argv a = {0};
	if (libc) {
		/* An ordinary static program: musl-gcc's own headers and
		 * start-up files; sections per function so that the link keeps
		 * only what the function reaches. */
		push(&a, libc_cc);
		push_words(&a, "-O2;-ffunction-sections;-fdata-sections;-DWASP_VIRTINE_LIBC=1");
	} else {
		push(&a, WASP_CC_GUEST_CC);
		push_words(&a, WASP_CC_GUEST_CFLAGS);
	}
	/* The host compile reports the file's warnings; the guest build of the
	 * same code would only repeat them. */
	push(&a, "-w");
	push(&a, "-U_FORTIFY_SOURCE");
	push(&a, "-DWASP_VIRTINE_GUEST=1");
	for (size_t i = 0; i < op->cppflags.n; i++)
		push(&a, op->cppflags.v[i]);
	push(&a, inc);
	push(&a, "-c");
	push(&a, gc);
	push(&a, "-o");
	push(&a, obj);
	int st = run(&a, NULL);
	free_argv(&a);
	if (st != 0)
		die("%s: virtine function '%s': the guest build failed (above)", src_abs, f->name);

	struct argv k = {0};
	if (libc) {
		/* Stripped: the image is embedded in the host program, and
		 * nothing reads the guest's symbols. */
		push(&k, libc_cc);
		push_words(&k, "-static;-s;-Wl,--gc-sections;-Wl,--build-id=none;-o");
		push(&k, elf);
		push(&k, obj);
		push(&k, "-lm");
	} else {
		push(&k, WASP_CC_GUEST_LD);
		push_words(&k, "-m;elf_x86_64;-static;-nostdlib;--build-id=none;--gc-sections");
		push_words(&k, WASP_CC_GUEST_LDFLAGS);
		push(&k, "-T");
		push(&k, ld_script);
		push(&k, "-o");
		push(&k, elf);
		push(&k, boot);
		push(&k, obj);
		push(&k, rt);
		if (WASP_CC_GUEST_LIBGCC[0])
			push(&k, WASP_CC_GUEST_LIBGCC);
	}
	st = run(&k, err);
	free_argv(&k);
	if (st != 0) {
		/* Usually a call of something only the host has (a function of
		 * another file, or of the C library without one): say which,
		 * in one line. */
		FILE *ef = fopen(err, "r");
		char line[1024], sym[256] = "";
		while (ef && fgets(line, sizeof line, ef)) {
			char *q = strstr(line, "undefined reference to `");
			if (q) {
				q += strlen("undefined reference to `");
				size_t n = strcspn(q, "'");
				snprintf(sym, sizeof sym, "%.*s", (int)(n < 255 ? n : 255), q);
				break;
			}
		}
		if (ef)
			fclose(ef);
		if (sym[0] && libc)
			die("%s: virtine function '%s' calls %s, which a virtine does not have "
			    "(only this file's functions and the C library's)",
			    src_abs, f->name, sym);
		if (sym[0])
			die("%s: virtine function '%s' calls %s, which a virtine does not have "
			    "(only this file's functions and the guest runtime's; no C library: "
			    "%s)",
			    src_abs, f->name, sym, libc_why);
		die("%s: virtine function '%s': linking its guest image failed (see %s)", src_abs,
		    f->name, err);
	}
	if (libc) {
		/* The program itself is the image: wasp_virtine_load() of bytes
		 * that start with the ELF magic loads a Linux program. */
		uint64_t mem = libc_mem(src_abs, f, elf);
		if (rename(elf, bin) != 0)
			die("rename %s: %s", elf, strerror(errno));
		return mem;
	}
	struct argv c = {0};
	push(&c, WASP_CC_GUEST_OBJCOPY);
	push(&c, "-O");
	push(&c, "binary");
	push(&c, elf);
	push(&c, bin);
	st = run(&c, NULL);
	free_argv(&c);
	if (st != 0)
		die("%s: virtine function '%s': objcopy failed", src_abs, f->name);
	return f->mem;
}

/* ---- The rewritten host source ------------------------------------------ */

static void write_body(FILE *o, const struct vfunc *f)
{
	fprintf(o, "{ /* wasp-cc: runs in a virtine (docs/embedding.md) */\n");
	unsigned n = f->np + (f->ret ? 1 : 0);
	/* A union, so a const-qualified return type can still be filled in. */
	if (f->ret)
		fprintf(o,
			"\tunion { __typeof__(%s) v; unsigned char b[sizeof(__typeof__(%s))]; } "
			"__wasp_ret;\n",
			f->ret, f->ret);
	if (n) {
		fprintf(o, "\tstruct wasp_vfn_arg __wasp_args[%u] = {\n", n);
		if (f->ret)
			fprintf(
			    o,
			    "\t\t{ (void *)__wasp_ret.b, sizeof __wasp_ret.b, WASP_VFN_RET },\n");
		for (unsigned i = 0; i < f->np; i++) {
			const struct param *p = &f->p[i];
			const char *out = p->out ? " | WASP_VFN_OUT" : "";
			if (p->kind == P_VALUE)
				fprintf(o,
					"\t\t{ (void *)(__UINTPTR_TYPE__)&%s, sizeof %s, "
					"WASP_VFN_IN },\n",
					p->name, p->name);
			else if (p->kind == P_SIZED)
				fprintf(o,
					"\t\t{ (void *)(__UINTPTR_TYPE__)%s, %s ? sizeof *%s : 0, "
					"WASP_VFN_IN | WASP_VFN_PTR%s },\n",
					p->name, p->name, p->name, out);
			else
				fprintf(o,
					"\t\t{ (void *)(__UINTPTR_TYPE__)%s, %s ? "
					"__builtin_strlen(%s) + 1 : 0, WASP_VFN_IN | "
					"WASP_VFN_PTR%s },\n",
					p->name, p->name, p->name, out);
		}
		fprintf(o, "\t};\n");
	}
	fprintf(o, "\tif (wasp_vfn_call(&__wasp_vfn_%s, %s, %u) < 0) {\n", f->name,
		n ? "__wasp_args" : "(void *)0", n);
	if (f->ret)
		fprintf(o, "\t\t__builtin_memset(__wasp_ret.b, 0, sizeof __wasp_ret.b);\n");
	fprintf(o, "\t}\n");
	if (f->ret)
		fprintf(o, "\treturn __wasp_ret.v;\n");
	fprintf(o, "}");
}

static void write_host(const struct unit *u, const char *src_abs, const char *path, char **bins,
		       const uint64_t *mems)
{
	FILE *o = xfopen(path, "w");
	fprintf(o, "#include <wasp/virtine.h>\n");
	/* A static function only the virtine bodies call (a qsort comparator)
	 * is unused in the host once the bodies are gone: no warning for that,
	 * which -Werror would turn into a failed build. */
	fprintf(o, "#pragma GCC diagnostic ignored \"-Wunused-function\"\n");
	for (unsigned i = 0; i < u->nf; i++)
		fprintf(o, "static struct wasp_vfn __wasp_vfn_%s;\n", u->f[i].name);
	fprintf(o, "#line 1 %s\n", cstr(src_abs));
	size_t at = 0;
	for (unsigned i = 0; i < u->nf; i++) {
		const struct vfunc *f = &u->f[i];
		fwrite(u->src + at, 1, f->body_start - at, o);
		write_body(o, f);
		fprintf(o, "\n#line %u %s\n", f->end_line, cstr(src_abs));
		/* The rest of the closing brace's line, in place. */
		at = f->body_end;
		const char *nl = memchr(u->src + at, '\n', u->len - at);
		size_t eol = nl ? (size_t)(nl - u->src) : u->len;
		fwrite(u->src + at, 1, eol - at, o);
		at = eol;
	}
	fwrite(u->src + at, 1, u->len - at, o);
	fprintf(o,
		"\n/* wasp-cc: the guest images and pools of this file's virtine functions */\n");
	for (unsigned i = 0; i < u->nf; i++) {
		const struct vfunc *f = &u->f[i];
		FILE *b = xfopen(bins[i], "rb");
		fprintf(o,
			"static const unsigned char __wasp_image_%s[] __attribute__((aligned(16)))"
			" = {",
			f->name);
		int c;
		size_t n = 0;
		while ((c = fgetc(b)) != EOF)
			fprintf(o, "%s%d,", n++ % 24 ? "" : "\n", c);
		fclose(b);
		if (!n)
			die("%s: empty guest image", bins[i]);
		fprintf(o, "\n};\n");
		fprintf(o,
			"static struct wasp_vfn __wasp_vfn_%s = {\n"
			"\t\"%s\", __wasp_image_%s, sizeof __wasp_image_%s, %lluull, \"%s\", "
			"%lluull * 1000000ull, 0, 0\n};\n",
			f->name, f->name, f->name, f->name, (unsigned long long)mems[i],
			f->allow ? f->allow : "", (unsigned long long)f->timeout_ms);
	}
	xfclose(o, path);
}

/* ---- Dependency files ----------------------------------------------------
 * With -MD/-MMD the compiler names the file it compiled, our rewritten copy
 * in a directory that is gone by the time make reads the list: put the
 * original back, or every later build would fail ("no rule to make") or
 * rebuild for nothing. */

static char *make_escape(const char *s)
{
	char *r = xmalloc(strlen(s) * 2 + 1), *o = r;
	for (; *s; s++) {
		if (*s == ' ' || *s == '#')
			*o++ = '\\';
		if (*s == '$')
			*o++ = '$';
		*o++ = *s;
	}
	*o = '\0';
	return r;
}

static void fix_depfile(const char *path, struct argv *from, struct argv *to)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return; /* not written (e.g. -M to stdout): nothing to fix */
	struct unit u = {0};
	u.path = path;
	fclose(fp);
	read_file(&u);
	char *out = xstrdup(u.src);
	for (size_t i = 0; i < from->n; i++) {
		char *f = make_escape(from->v[i]), *t = make_escape(to->v[i]);
		for (char *hit; (hit = strstr(out, f));) {
			*hit = '\0';
			char *n = xasprintf("%s%s%s", out, t, hit + strlen(f));
			free(out);
			out = n;
		}
		free(f), free(t);
	}
	FILE *o = xfopen(path, "wb");
	fputs(out, o);
	xfclose(o, path);
	free(out);
	free(u.src);
}

/* The dependency file the host compile writes: -MF's, else -o's with .d,
 * else the source's base name with .d (gcc's rules). NULL without -MD. */
static char *depfile_path(int argc, char **argv, const char *first_src)
{
	const char *mf = NULL, *o = NULL;
	bool md = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-MD") || !strcmp(argv[i], "-MMD"))
			md = true;
		else if (!strcmp(argv[i], "-MF") && i + 1 < argc)
			mf = argv[++i];
		else if (!strncmp(argv[i], "-MF", 3))
			mf = argv[i] + 3;
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			o = argv[++i];
	}
	if (mf)
		return xstrdup(mf);
	if (!md)
		return NULL;
	const char *base = o ? o : first_src;
	if (!o) {
		const char *slash = strrchr(base, '/');
		base = slash ? slash + 1 : base;
	}
	const char *dot = strrchr(base, '.');
	const char *slash = strrchr(base, '/');
	size_t n = dot && (!slash || dot > slash) ? (size_t)(dot - base) : strlen(base);
	return xasprintf("%.*s.d", (int)n, base);
}

/* ---- The driver --------------------------------------------------------- */

static bool takes_value(const char *a)
{
	static const char *const opts[] = {
	    "-o",      "-I",	     "-D",	 "-U",		"-include", "-isystem",
	    "-iquote", "-idirafter", "-x",	 "-MF",		"-MT",	    "-MQ",
	    "-L",      "-l",	     "-Xlinker", "-Xassembler", "-imacros", "-aux-info",
	    "-T",      "-u",	     "-z",	 NULL};
	for (unsigned i = 0; opts[i]; i++)
		if (!strcmp(a, opts[i]))
			return true;
	return false;
}

static bool is_cppflag(const char *a, bool *with_value)
{
	static const char *const pre[] = {
	    "-I",	"-D",	   "-U",	 "-std=",    "-include",
	    "-isystem", "-iquote", "-idirafter", "-imacros", NULL};
	*with_value = false;
	for (unsigned i = 0; pre[i]; i++) {
		size_t n = strlen(pre[i]);
		if (!strncmp(a, pre[i], n)) {
			*with_value = !a[n] && strcmp(pre[i], "-std=") != 0;
			return true;
		}
	}
	return false;
}

int main(int argc, char **argv)
{
	verbose = getenv("WASP_CC_VERBOSE") && *getenv("WASP_CC_VERBOSE") != '0';
	keep = getenv("WASP_CC_KEEP") && *getenv("WASP_CC_KEEP") != '0';
	const char *host_cc = getenv("WASP_CC_HOST");
	if (!host_cc || !*host_cc)
		host_cc = "cc";
	if (argc < 2)
		die("usage: wasp-cc [cc options] file.c ... (a drop-in for cc)");
	/* The C library: WASP_CC_LIBC=0 keeps the freestanding runtime, any
	 * other value names the musl-gcc to use instead of the one found
	 * when wasp was built. */
	const char *lc = getenv("WASP_CC_LIBC");
	if (lc && !strcmp(lc, "0"))
		libc_why = "WASP_CC_LIBC=0";
	else if (lc && *lc)
		libc_cc = lc;
	else if (!WASP_CC_LIBC_CC[0])
		libc_why = "wasp was built without musl-gcc (Debian: musl-tools)";
	else if (access(WASP_CC_LIBC_CC, X_OK) != 0)
		libc_why = WASP_CC_LIBC_CC " is gone (Debian: musl-tools)";
	else
		libc_cc = WASP_CC_LIBC_CC;

	struct opts op = {0};
	op.link = true;
	bool *is_src = xmalloc(sizeof(bool) * (size_t)argc);
	const char *lang = NULL; /* -x LANG in force; NULL: by suffix, as cc does */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool wv;
		if (!strcmp(a, "-c") || !strcmp(a, "-S") || !strcmp(a, "-E") || !strcmp(a, "-M") ||
		    !strcmp(a, "-MM") || !strcmp(a, "-fsyntax-only"))
			op.link = false;
		if (!strncmp(a, "-x", 2)) {
			const char *v = a[2] ? a + 2 : i + 1 < argc ? argv[++i] : "";
			lang = strcmp(v, "none") ? v : NULL;
			continue;
		}
		if (is_cppflag(a, &wv)) {
			push(&op.cppflags, a);
			if (wv && i + 1 < argc)
				push(&op.cppflags, argv[++i]);
			continue;
		}
		if (takes_value(a)) {
			i++;
			continue;
		}
		size_t n = strlen(a);
		bool c_file = lang ? !strcmp(lang, "c") : n > 2 && !strcmp(a + n - 2, ".c");
		is_src[i] = a[0] != '-' && c_file;
	}

	struct layout l;
	bool any_src = false;
	for (int i = 1; i < argc; i++)
		any_src |= is_src[i];
	if (any_src || op.link)
		find_layout(&l);

	struct argv cc = {0};
	push(&cc, host_cc);
	unsigned n_rewritten = 0;
	struct argv dep_from = {0}, dep_to = {0}; /* rewritten copy -> original */
	const char *first_rewritten = NULL;
	for (int i = 1; i < argc; i++) {
		if (!is_src[i]) {
			push(&cc, argv[i]);
			continue;
		}
		struct unit u = {0};
		u.path = argv[i];
		parse_unit(&u, &op.cppflags, &l);
		if (!u.nf) {
			push(&cc, argv[i]);
			free_unit(&u);
			continue;
		}
		if (!tmpdir[0]) {
			const char *t = getenv("TMPDIR");
			snprintf(tmpdir, sizeof tmpdir, "%s/wasp-cc-XXXXXX", t && *t ? t : "/tmp");
			if (!mkdtemp(tmpdir))
				die("mkdtemp %s: %s", tmpdir, strerror(errno));
		}
		char src_abs[PATH_MAX];
		if (!realpath(u.path, src_abs))
			die("%s: %s", u.path, strerror(errno));
		/* The guest build #includes it: no escapes exist there. */
		if (strpbrk(src_abs, "\"\\\n"))
			die("%s: a path with '\"', '\\' or a newline cannot be #included; "
			    "rename it",
			    src_abs);
		/* A directory per source keeps its base name, so `cc -c x.c`
		 * still writes x.o. */
		char *dir = xasprintf("%s/%u", tmpdir, n_rewritten++);
		if (mkdir(dir, 0700) < 0)
			die("mkdir %s: %s", dir, strerror(errno));
		char **bins = xmalloc(sizeof *bins * u.nf);
		uint64_t *mems = xmalloc(sizeof *mems * u.nf);
		for (unsigned k = 0; k < u.nf; k++) {
			bins[k] = xasprintf("%s/guest_%s.bin", dir, u.f[k].name);
			mems[k] = build_image(&l, &op, src_abs, &u.f[k], dir, bins[k]);
		}
		const char *base = strrchr(src_abs, '/') + 1;
		char *host = xasprintf("%s/%s", dir, base);
		write_host(&u, src_abs, host, bins, mems);
		/* #include "x.h" must still find x.h next to the original. */
		char *srcdir = xstrdup(src_abs);
		*strrchr(srcdir, '/') = '\0';
		push(&cc, "-iquote");
		push(&cc, srcdir);
		push(&cc, host);
		push(&dep_from, host);
		push(&dep_to, argv[i]);
		if (!first_rewritten)
			first_rewritten = argv[i];
		for (unsigned k = 0; k < u.nf; k++)
			free(bins[k]);
		free(srcdir), free(host), free(dir), free(bins), free(mems);
		free_unit(&u);
	}
	if (any_src || op.link) {
		char *inc = xasprintf("-I%s", l.inc);
		push(&cc, inc);
		free(inc);
	}
	if (op.link) {
		char *ldir = xasprintf("-L%s", l.lib);
		char *rpath = xasprintf("-Wl,-rpath,%s", l.lib);
		push(&cc, ldir);
		push(&cc, rpath);
		push(&cc, "-lwasp");
		push(&cc, "-lpthread");
		free(ldir), free(rpath);
	}
	if (keep && tmpdir[0])
		fprintf(stderr, "%s: kept %s\n", prog, tmpdir);
	int st = run(&cc, NULL);
	if (st == 0 && first_rewritten) {
		char *dep = depfile_path(argc, argv, first_rewritten);
		if (dep)
			fix_depfile(dep, &dep_from, &dep_to);
		free(dep);
	}
	cleanup();
	free_argv(&dep_from);
	free_argv(&dep_to);
	free_argv(&cc);
	free_argv(&op.cppflags);
	free(is_src);
	return st;
}
