CREATE TABLE t (id int PRIMARY KEY, qty text DEFAULT '0');
