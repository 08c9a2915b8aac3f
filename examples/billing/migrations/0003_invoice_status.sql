-- migrate:up
CREATE TYPE invoice_status AS ENUM ('draft', 'open', 'paid', 'void');
ALTER TABLE invoice ADD COLUMN status invoice_status NOT NULL DEFAULT 'draft';

-- migrate:down
ALTER TABLE invoice DROP COLUMN status;
DROP TYPE invoice_status;
