CREATE TABLE p (id int PRIMARY KEY, code text CONSTRAINT p_code_key UNIQUE);
CREATE TABLE c (code text REFERENCES p (code));
