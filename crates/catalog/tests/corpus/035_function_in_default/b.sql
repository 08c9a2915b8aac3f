CREATE FUNCTION gen_code() RETURNS text LANGUAGE sql AS $$ SELECT 'c' || floor(random() * 1000)::text $$;
CREATE TABLE t (id int PRIMARY KEY, code text DEFAULT gen_code());
