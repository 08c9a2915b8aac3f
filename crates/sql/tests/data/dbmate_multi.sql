-- A dbmate migration with two up and two down sections (dbmate itself mishandles this: #820).
-- migrate:up
CREATE TABLE accounts (id bigint PRIMARY KEY);
CREATE FUNCTION note() RETURNS text LANGUAGE sql AS $$
-- migrate:down  (inside a dollar quote: not a marker)
SELECT 'x'
$$;

-- migrate:down
DROP FUNCTION note();
DROP TABLE accounts;

-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY accounts_id ON accounts (id);

-- migrate:down
-- strata:no-transaction
DROP INDEX CONCURRENTLY accounts_id;
