CREATE TABLE t (id int PRIMARY KEY, a int);
COMMENT ON TABLE t IS 'new ''quoted'' \ text';
