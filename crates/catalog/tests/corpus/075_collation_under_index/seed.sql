INSERT INTO t VALUES (1, 'b'), (2, 'a');
