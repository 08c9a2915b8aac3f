CREATE FUNCTION base_val() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 42';
CREATE FUNCTION derived() RETURNS int LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT base_val() + 1; END;
CREATE TABLE t (a int DEFAULT derived(), b int CHECK (b <> base_val()));
CREATE VIEW v AS SELECT a, derived() AS d FROM t;
CREATE INDEX t_expr ON t ((a + base_val()));
