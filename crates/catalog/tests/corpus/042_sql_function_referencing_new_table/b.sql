CREATE FUNCTION count_orders() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM public.orders $$;
CREATE TABLE orders (id int PRIMARY KEY);
