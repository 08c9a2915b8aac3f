CREATE SCHEMA legacy;
CREATE TYPE legacy.k AS ENUM ('x');
CREATE TABLE legacy.t (id int PRIMARY KEY, k legacy.k);
CREATE FUNCTION legacy.f(legacy.t) RETURNS int LANGUAGE sql AS 'SELECT $1.id';
CREATE VIEW legacy.v AS SELECT legacy.f(t) FROM legacy.t;
CREATE SEQUENCE legacy.s;
