CREATE TABLE t (id int, a int, b int);
CREATE VIEW v AS SELECT t.id, t.a FROM t;
