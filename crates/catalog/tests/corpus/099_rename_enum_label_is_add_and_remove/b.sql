CREATE TYPE s AS ENUM ('new', 'keep');
CREATE TABLE t (s s);
