CREATE TABLE t (id int PRIMARY KEY, a int, b text);
CREATE VIEW v1 AS SELECT id, a FROM t;
