CREATE DOMAIN code AS varchar(10) CHECK (VALUE <> '');
CREATE TABLE t (c code);
