CREATE TYPE lvl AS ENUM ('low', 'high');
CREATE FUNCTION is_high(l lvl) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT l = 'high' $$;
CREATE TABLE t (l lvl CHECK (l <> 'low'));
