-- rename: table public.customer public.client
-- rename: column public.client full_name name
CREATE TABLE client (id serial PRIMARY KEY, name text);
