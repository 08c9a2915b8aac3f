-- strata:no-transaction
-- Built without blocking writers: CREATE INDEX CONCURRENTLY cannot run inside a transaction, so this migration runs
-- statement by statement (Strata splits it with a real PostgreSQL parser, never on `;`).

-- migrate:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_customer_idx ON invoice (customer_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_open_idx ON invoice (issued_at) WHERE status = 'open';

-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS invoice_open_idx;
DROP INDEX CONCURRENTLY IF EXISTS invoice_customer_idx;
