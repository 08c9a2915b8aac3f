CREATE TABLE base (id int, created date);
CREATE TABLE child (extra text);
