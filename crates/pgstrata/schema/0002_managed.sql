-- Managed code (functions, procedures, views, triggers and their comments) and package roles.
-- One row per object Strata installed from a package's managed code: its identity in the catalog, the hash of the
-- source it came from, and what the catalog looked like right after (for drift detection).

-- migrate:up
CREATE TABLE strata.managed_object (
    package          text NOT NULL REFERENCES strata.package (name) ON UPDATE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('function', 'procedure', 'view', 'trigger', 'comment')),
    -- From the catalog: schema.name(identity arguments) for routines, schema.name for views, "trigger ON schema.table"
    -- for triggers, "<kind> <object>" for comments.
    identity         text NOT NULL,
    -- The object's oid (for comments: the commented object's), and the column number of a commented view column.
    object_oid       oid NOT NULL,
    sub_id           integer NOT NULL DEFAULT 0,
    -- xmin of the catalog row(s) right after installation: unchanged means untouched since.
    catalog_version  text NOT NULL,
    -- md5 of pg_get_functiondef / pg_get_viewdef / pg_get_triggerdef / the comment, right after installation.
    catalog_hash     text NOT NULL,
    source_hash      text NOT NULL,
    file             text NOT NULL,
    line             integer NOT NULL,
    -- Installation order (dependencies first).
    seq              integer NOT NULL,
    installed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id           bigint REFERENCES strata.run (id),
    PRIMARY KEY (package, kind, identity)
);
COMMENT ON TABLE strata.managed_object IS 'Objects installed from packages'' managed code, with source and catalog hashes.';

-- What the package role was granted for `uses` (so removing a use revokes), and the hash of the test files the last
-- deploy ran.
ALTER TABLE strata.package
    ADD COLUMN granted_uses text[] NOT NULL DEFAULT '{}',
    ADD COLUMN tests_hash text;

-- migrate:down
ALTER TABLE strata.package DROP COLUMN tests_hash, DROP COLUMN granted_uses;
DROP TABLE strata.managed_object;
