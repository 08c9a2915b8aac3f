CREATE SEQUENCE ids;
CREATE TABLE a (id bigint DEFAULT nextval('ids'));
CREATE TABLE b (id bigint DEFAULT nextval('ids'));
