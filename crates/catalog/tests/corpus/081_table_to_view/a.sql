CREATE TABLE report (id int, total int);
