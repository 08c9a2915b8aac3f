INSERT INTO t VALUES (1, 'x', 5), (2, 'y', 6);
