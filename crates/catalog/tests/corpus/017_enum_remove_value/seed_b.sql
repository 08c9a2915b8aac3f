INSERT INTO invoice VALUES (1, 'draft'), (2, 'paid');
