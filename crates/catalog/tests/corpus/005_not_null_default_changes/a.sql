CREATE TABLE t (id int PRIMARY KEY, a int, b text DEFAULT 'x', c int NOT NULL DEFAULT 0);
