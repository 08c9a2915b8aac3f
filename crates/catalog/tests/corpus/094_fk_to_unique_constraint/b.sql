CREATE TABLE p (id int PRIMARY KEY, code varchar(20) CONSTRAINT p_code_key UNIQUE);
CREATE TABLE c (code varchar(20) REFERENCES p (code) ON UPDATE CASCADE);
