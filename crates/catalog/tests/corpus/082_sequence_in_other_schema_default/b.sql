CREATE SCHEMA ids;
CREATE SEQUENCE ids.t_seq AS integer;
CREATE TABLE t (id int NOT NULL DEFAULT nextval('ids.t_seq'));
