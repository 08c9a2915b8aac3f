CREATE FUNCTION text_to_int(text) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT length($1)';
CREATE AGGREGATE my_sum(int) (sfunc = int4pl, stype = int);
