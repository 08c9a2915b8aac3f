CREATE TABLE t (id int, price numeric);
CREATE VIEW v AS SELECT id, price FROM t;
COMMENT ON COLUMN v.price IS 'view price';
COMMENT ON COLUMN t.price IS 'in cents';
