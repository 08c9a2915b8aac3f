CREATE FUNCTION norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(t) $$;
CREATE TABLE u (name text CHECK (norm(name) <> ''), code text DEFAULT norm('X'));
CREATE INDEX u_norm ON u (norm(name));
CREATE VIEW uv AS SELECT norm(name) FROM u;
