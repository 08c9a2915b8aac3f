CREATE TABLE t (id int PRIMARY KEY, a text, c boolean NOT NULL DEFAULT false, d numeric(10,2));
