CREATE TABLE t (id int PRIMARY KEY, a int);
CREATE FUNCTION total() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT sum(a) FROM public.t $$;
CREATE VIEW summary AS SELECT total() AS total;
