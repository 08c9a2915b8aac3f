CREATE TABLE t (id int PRIMARY KEY, n bigint, s text, price numeric(12,2));
