CREATE TABLE t (id int, a int);
CREATE VIEW v AS SELECT id, a FROM t WHERE a > 0;
