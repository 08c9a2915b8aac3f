CREATE TABLE t (id int, a int);
CREATE VIEW v WITH (check_option = local, security_invoker = true) AS SELECT id, a FROM t WHERE a > 0;
