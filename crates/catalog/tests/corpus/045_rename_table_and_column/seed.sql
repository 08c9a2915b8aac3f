INSERT INTO customer (full_name) VALUES ('Ann');
