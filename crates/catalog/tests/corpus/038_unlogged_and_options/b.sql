CREATE UNLOGGED TABLE t (id int PRIMARY KEY) WITH (fillfactor = 70, autovacuum_enabled = false);
