CREATE TABLE orders (id int PRIMARY KEY);
CREATE FUNCTION count_orders() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM public.orders $$;
CREATE VIEW order_count AS SELECT count_orders() AS n;
