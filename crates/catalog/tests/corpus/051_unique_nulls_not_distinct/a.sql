CREATE TABLE p (id int PRIMARY KEY, code text);
