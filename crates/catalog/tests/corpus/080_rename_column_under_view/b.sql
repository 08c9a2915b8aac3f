-- rename: column public.t nm name
CREATE TABLE t (id int PRIMARY KEY, name text);
CREATE VIEW v AS SELECT id, name FROM t;
