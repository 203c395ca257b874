/*
 * sqlite: an SQLite virtine. Debian's libsqlite3.a.
 *
 *   sqlite DB [SCRIPT]     opens (creates) the database file DB and runs the
 *                          SQL in SCRIPT, or on stdin, statement by statement
 *                          as each is complete: rows go to stdout as the
 *                          sqlite3 shell prints them by default (columns
 *                          joined by '|', NULL as nothing), so a program can
 *                          feed it a statement at a time
 *   sqlite --serve DB      opens DB, then serves calls: each call's argument
 *                          is SQL, its result the rows as above (or the line
 *                          "error: MESSAGE")
 *
 * The database is a file of the sandbox when it runs in a virtine
 * (wasp-run --dir DIR). The first failing statement ends the run: its
 * error on stderr, exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "workload.h"

static sqlite3 *db;

/* Output into a buffer (a call's result) or a stream (a script's rows). */
struct sink {
	FILE *f;
	char *buf;
	size_t len, cap;
};

static void put(struct sink *s, const char *p, size_t n)
{
	if (s->f) {
		fwrite(p, 1, n, s->f);
		return;
	}
	if (n > s->cap - s->len)
		n = s->cap - s->len;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

/* Runs every statement of sql; rows to `out`. 0, or -1 with the error
 * message in *err (sqlite3_free it). */
static int exec(const char *sql, struct sink *out, char **err)
{
	while (*sql) {
		sqlite3_stmt *st;
		const char *tail;
		if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
			*err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
			return -1;
		}
		sql = tail;
		if (!st)
			continue; /* a comment or white space */
		int r;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			int cols = sqlite3_column_count(st);
			for (int i = 0; i < cols; i++) {
				if (i)
					put(out, "|", 1);
				const char *v = (const char *)sqlite3_column_text(st, i);
				if (v)
					put(out, v, (size_t)sqlite3_column_bytes(st, i));
			}
			put(out, "\n", 1);
		}
		if (r != SQLITE_DONE) {
			*err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_finalize(st);
	}
	return 0;
}

static size_t handle(const void *in, size_t in_len, void *out, size_t out_cap)
{
	struct sink s = {.buf = out, .cap = out_cap};
	char *err = NULL;
	(void)in_len; /* the argument is NUL-terminated (workload.h) */
	if (exec(in, &s, &err)) {
		s.len = 0;
		put(&s, "error: ", 7);
		put(&s, err, strlen(err));
		put(&s, "\n", 1);
		sqlite3_free(err);
	}
	return s.len;
}

/* Runs the script from f a complete statement at a time, so rows come out
 * as soon as their statement is read. 0 or 1 (the error said). */
static int run_script(FILE *f, const char *name)
{
	size_t cap = 1 << 16, len = 0;
	char *sql = malloc(cap);
	char line[4096];
	int rc = 0;
	if (!sql) {
		fputs("sqlite: out of memory\n", stderr);
		return 1;
	}
	sql[0] = 0;
	struct sink out = {.f = stdout};
	while (rc == 0 && fgets(line, sizeof line, f)) {
		size_t n = strlen(line);
		if (len + n + 1 > cap) {
			char *bigger = realloc(sql, cap * 2 + n);
			if (!bigger) {
				fputs("sqlite: out of memory\n", stderr);
				rc = 1;
				break;
			}
			sql = bigger;
			cap = cap * 2 + n;
		}
		memcpy(sql + len, line, n + 1);
		len += n;
		if (!sqlite3_complete(sql))
			continue;
		char *err = NULL;
		if (exec(sql, &out, &err)) {
			fprintf(stderr, "sqlite: %s: %s\n", name, err);
			sqlite3_free(err);
			rc = 1;
		}
		fflush(stdout);
		len = 0;
		sql[0] = 0;
	}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "sqlite: %s: read error\n", name);
		rc = 1;
	}
	free(sql);
	return rc;
}

int main(int argc, char **argv)
{
	int serve = argc > 1 && !strcmp(argv[1], "--serve");
	if (argc < 2 + serve || argc > 3) {
		fprintf(stderr, "usage: %s DB [SCRIPT] | %s --serve DB\n", argv[0], argv[0]);
		return 2;
	}
	const char *path = argv[1 + serve];
	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s: %s\n", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return 1;
	}
	int rc;
	if (serve) {
		rc = workload_serve("sqlite", handle);
	} else if (argc == 3 && strcmp(argv[2], "-")) {
		FILE *f = fopen(argv[2], "r");
		if (!f) {
			fprintf(stderr, "sqlite: %s: %s\n", argv[2], strerror(errno));
			rc = 1;
		} else {
			rc = run_script(f, argv[2]);
			fclose(f);
		}
	} else {
		rc = run_script(stdin, "stdin");
	}
	if (sqlite3_close(db) != SQLITE_OK) {
		fprintf(stderr, "sqlite: closing %s: %s\n", path, sqlite3_errmsg(db));
		rc = 1;
	}
	return rc;
}
