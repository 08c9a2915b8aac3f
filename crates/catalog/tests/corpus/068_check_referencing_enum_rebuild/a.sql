CREATE TYPE st AS ENUM ('a', 'b', 'c');
CREATE TABLE t (s st NOT NULL DEFAULT 'a' CONSTRAINT not_c CHECK (s <> 'c'));
CREATE INDEX t_s_b ON t (s) WHERE s = 'b';
