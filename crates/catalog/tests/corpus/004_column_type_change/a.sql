CREATE TABLE t (id int PRIMARY KEY, n int, s varchar(20), price numeric(10,2));
