CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE app.accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    balance numeric(12, 2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX CONCURRENTLY accounts_created ON app.accounts (created_at);
CREATE FUNCTION app.add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION app.total() RETURNS numeric LANGUAGE sql
BEGIN ATOMIC
    SELECT sum(balance) FROM app.accounts;
END;
CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_touch BEFORE UPDATE ON app.accounts
    FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE VIEW app.rich AS SELECT id, email FROM app.accounts WHERE balance > 1000;
COMMENT ON VIEW app.rich IS 'Accounts with more than 1000';
INSERT INTO app.accounts (email) VALUES ('a@example.com'), ('b@example.com');
UPDATE app.accounts SET balance = balance + 1 WHERE email LIKE '%@example.com';
DO $$ BEGIN RAISE NOTICE 'done'; END $$;
