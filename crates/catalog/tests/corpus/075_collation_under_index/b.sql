CREATE TABLE t (id int, name text COLLATE "C");
CREATE INDEX t_name ON t (name);
