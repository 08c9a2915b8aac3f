CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
                qty int CONSTRAINT qty_positive CHECK (qty > 0));
COMMENT ON CONSTRAINT qty_positive ON c IS 'no zero';
