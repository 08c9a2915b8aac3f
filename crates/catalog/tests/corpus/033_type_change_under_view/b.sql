CREATE TABLE t (id int PRIMARY KEY, amount bigint);
CREATE VIEW v AS SELECT id, amount FROM t;
CREATE VIEW vv AS SELECT id, amount * 2 AS double FROM v;
