CREATE DOMAIN tag AS text CHECK (VALUE ~ '^[a-z]+$');
CREATE TABLE t (tags tag[], ints int[] DEFAULT '{}', matrix float8[][]);
