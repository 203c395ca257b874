-- error.sql: the first failing statement ends the run (case sqlite_error).
CREATE TABLE t(a UNIQUE);
INSERT INTO t VALUES (1);
SELECT * FROM t;
INSERT INTO t VALUES (1);
SELECT 'never';
