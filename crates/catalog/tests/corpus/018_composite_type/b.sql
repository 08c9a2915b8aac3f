CREATE TYPE addr AS (street text, city text, zip varchar(10));
CREATE TYPE pair AS (a int, b int);
COMMENT ON TYPE pair IS 'two ints';
