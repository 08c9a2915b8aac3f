CREATE FUNCTION area(r float8) RETURNS float8 LANGUAGE sql AS 'SELECT pi() * r * r';
CREATE FUNCTION area(w float8, h float8) RETURNS float8 LANGUAGE sql AS 'SELECT w * h';
CREATE FUNCTION area(s int) RETURNS int LANGUAGE sql AS 'SELECT s * s';
