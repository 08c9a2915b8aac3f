CREATE TABLE item (id int, name text, price numeric);
CREATE FUNCTION items() RETURNS SETOF item LANGUAGE sql AS 'SELECT * FROM public.item';
