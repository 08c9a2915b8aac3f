CREATE TABLE t (id int PRIMARY KEY, price numeric(10,2), qty int, total numeric GENERATED ALWAYS AS (price * qty) STORED);
CREATE INDEX t_total ON t (total);
