CREATE TABLE t (id int PRIMARY KEY, price int, qty int, total int GENERATED ALWAYS AS (price * qty) STORED);
CREATE INDEX t_total ON t (total);
