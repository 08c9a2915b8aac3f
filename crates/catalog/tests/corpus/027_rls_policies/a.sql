CREATE TABLE doc (id int PRIMARY KEY, owner text, body text);
