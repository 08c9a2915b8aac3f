INSERT INTO t VALUES ('sad'), ('happy');
