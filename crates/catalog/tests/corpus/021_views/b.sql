CREATE TABLE t (id int PRIMARY KEY, a int, b text);
CREATE VIEW v1 AS SELECT id, a, b FROM t WHERE a > 0;
CREATE VIEW v2 WITH (security_barrier = true) AS SELECT v1.id FROM v1;
COMMENT ON VIEW v2 IS 'layered';
