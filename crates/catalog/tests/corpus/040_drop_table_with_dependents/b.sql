CREATE TABLE c (id int PRIMARY KEY, p_id int);
