INSERT INTO client (name) VALUES ('Ann');
