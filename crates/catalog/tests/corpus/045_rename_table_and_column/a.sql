CREATE TABLE customer (id serial PRIMARY KEY, full_name text);
