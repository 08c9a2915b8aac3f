CREATE TYPE status AS ENUM ('draft', 'sent', 'paid', 'void');
CREATE TABLE invoice (id int PRIMARY KEY, s status NOT NULL DEFAULT 'draft');
CREATE VIEW open_invoices AS SELECT id FROM invoice WHERE s <> 'paid';
