-- app.sql: the sqlite workload's differential test (tests/linux/linux_test.sh,
-- case sqlite): a database file in the box, many transactions, indexes,
-- joins, a view, updates and deletes, and its integrity check.
CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE book(id INTEGER PRIMARY KEY, author INTEGER REFERENCES author(id), title TEXT, year INTEGER, pages INTEGER);
CREATE INDEX book_year ON book(year);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO author(name) SELECT 'author ' || i FROM n;
COMMIT;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO book(author, title, year, pages)
SELECT (i * 7) % 50 + 1, printf('title %05d %s', i, hex(i * 31)), 1900 + (i * 13) % 125, 50 + (i * 17) % 900 FROM n;
COMMIT;
SELECT count(*), sum(pages), min(year), max(year) FROM book;
SELECT a.name, count(*), avg(b.pages) FROM book b JOIN author a ON a.id = b.author GROUP BY a.id ORDER BY count(*) DESC, a.name LIMIT 5;
CREATE VIEW recent AS SELECT title, year FROM book WHERE year >= 2020;
SELECT count(*) FROM recent;
SELECT title FROM recent ORDER BY year DESC, title LIMIT 3;
BEGIN;
UPDATE book SET pages = pages + 1 WHERE year % 2 = 0;
DELETE FROM book WHERE pages > 900;
COMMIT;
BEGIN;
INSERT INTO book(author, title, year, pages) VALUES (1, 'rolled back', 2000, 1);
ROLLBACK;
SELECT count(*), total(pages) FROM book;
SELECT count(*) FROM book WHERE title = 'rolled back';
SELECT 3.5 * 2, 7 / 2, 7.0 / 2, typeof(NULL), quote('it''s'), length(randomblob(16)), NULL;
PRAGMA integrity_check;
VACUUM;
PRAGMA page_count;
