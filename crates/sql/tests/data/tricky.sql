-- Leading comment; with a semicolon.
/* block comment ; /* nested ; */ still comment ; */
CREATE SCHEMA app;

CREATE TABLE app.accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "weird;name" text DEFAULT 'it''s; fine',
    note text DEFAULT E'back\'slash; still string',
    tag text DEFAULT U&'\0041;'
);

CREATE INDEX CONCURRENTLY accounts_note ON app.accounts (note);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_tag ON app.accounts (tag);
DROP INDEX CONCURRENTLY IF EXISTS app.accounts_note;
REINDEX (VERBOSE) TABLE CONCURRENTLY app.accounts;
REINDEX (CONCURRENTLY) INDEX app.accounts_tag;
REINDEX SCHEMA app;

CREATE OR REPLACE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.note := $$nested; dollar$$ || ';';
    -- a comment inside the body;
    RETURN NEW;
END
$fn$;

CREATE FUNCTION app.add(a int, b int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT a + b;
    SELECT CASE WHEN a > 0 THEN a ELSE b END;
END;

CREATE PROCEDURE app.p() LANGUAGE sql BEGIN ATOMIC INSERT INTO app.accounts (note) VALUES ('x'); END;

CREATE OR REPLACE VIEW app.v AS SELECT id, "weird;name" FROM app.accounts;
CREATE MATERIALIZED VIEW app.mv AS SELECT count(*) FROM app.accounts;
CREATE TRIGGER touch BEFORE UPDATE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION app.f();
COMMENT ON TABLE app.accounts IS 'Accounts; the real ones';
CREATE RULE r AS ON INSERT TO app.v DO INSTEAD (INSERT INTO app.accounts (note) VALUES ('a'); INSERT INTO app.accounts (note) VALUES ('b'));

DO $$ BEGIN RAISE NOTICE 'hi;'; END $$;
DO LANGUAGE plpgsql 'BEGIN NULL; END';
ALTER TYPE app.mood ADD VALUE IF NOT EXISTS 'meh';
ALTER TABLE app.accounts ADD COLUMN extra int;
ALTER TABLE app.parent DETACH PARTITION app.child CONCURRENTLY;
ALTER SYSTEM SET work_mem = '64MB';
ALTER DATABASE app SET TABLESPACE fast;
CREATE DATABASE other;
DROP DATABASE IF EXISTS other;
CREATE TABLESPACE fast LOCATION '/tmp/fast';
VACUUM (ANALYZE) app.accounts;
CLUSTER;
CLUSTER app.accounts USING accounts_pkey;
CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p;
CREATE SUBSCRIPTION s2 CONNECTION 'dbname=x' PUBLICATION p WITH (create_slot = false, slot_name = NONE);
BEGIN;
SET LOCAL lock_timeout = '1s';
START TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SAVEPOINT a;
ROLLBACK TO SAVEPOINT a;
COMMIT;
END;
ROLLBACK;
WITH moved AS (DELETE FROM app.accounts RETURNING *) INSERT INTO app.archive SELECT * FROM moved;
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT n FROM t;
(SELECT 1) UNION (SELECT 2);
VALUES (1), (2);
UPDATE app.accounts SET note = ';' WHERE id = 1;
DELETE FROM app.accounts WHERE note = $q$;$q$;
GRANT USAGE ON SCHEMA app TO public;
CREATE TEMP TABLE scratch (a int);
CREATE FOREIGN TABLE ft (a int) SERVER s;
DROP TABLE IF EXISTS scratch;
REFRESH MATERIALIZED VIEW CONCURRENTLY app.mv;
DISCARD ALL;
;;
-- The next statement uses syntax squawk does not know; its range must still be right.
ALTER TABLE app.accounts FROBNICATE (x = 1) WITH EXTRA WORDS;
CREATE TABLE app.after_unknown (id int);
SELECT 'no semicolon at the end' -- trailing comment
