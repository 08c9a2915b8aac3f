INSERT INTO t VALUES (1, 'x', true, 1.5);
