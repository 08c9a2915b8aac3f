CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL DEFAULT 1, b text, c int DEFAULT 5);
