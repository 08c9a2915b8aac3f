CREATE TYPE s AS ENUM ('old', 'keep');
CREATE TABLE t (s s);
