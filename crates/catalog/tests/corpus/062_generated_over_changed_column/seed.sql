INSERT INTO t (id, price, qty) VALUES (1, 3, 4);
