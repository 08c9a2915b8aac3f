INSERT INTO t (id, a, b) VALUES (1, 2, 3);
