CREATE TABLE t (id int, price int);
CREATE VIEW v AS SELECT id, price FROM t;
COMMENT ON COLUMN v.price IS 'view price';
