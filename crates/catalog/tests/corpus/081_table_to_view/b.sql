CREATE TABLE base (id int, total int);
CREATE VIEW report AS SELECT id, total FROM base;
