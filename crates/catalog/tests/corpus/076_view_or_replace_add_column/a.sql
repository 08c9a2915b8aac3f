CREATE TABLE t (id int, a int, b int);
CREATE VIEW v AS SELECT id, a FROM t;
CREATE VIEW w AS SELECT id FROM v;
