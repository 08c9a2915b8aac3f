-- Strata's history. Applied by Strata itself, in the same transaction as the first deploy, under the deploy lock.
-- Designed to grow: managed objects, test runs and adoption from other tools get their own tables (or new
-- `source` values) in later migrations, without rewriting these.

-- migrate:up
CREATE TABLE strata.package (
    name          text PRIMARY KEY,
    schema_name   text NOT NULL,
    uses          text[] NOT NULL DEFAULT '{}',
    extensions    text[] NOT NULL DEFAULT '{}',
    role_name     text,
    installed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE strata.package IS 'Packages Strata has deployed into this database.';

-- One row per strata command that touched the database (up, down, and later adopt/baseline).
CREATE TABLE strata.run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command         text NOT NULL,
    outcome         text NOT NULL DEFAULT 'running'
                    CHECK (outcome IN ('running', 'success', 'noop', 'failed', 'dry-run')),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    from_state      jsonb NOT NULL DEFAULT '{}',
    to_state        jsonb,
    detail          jsonb,
    error           text,
    strata_version  text NOT NULL,
    db_user         text NOT NULL DEFAULT current_user,
    os_user         text,
    client_host     text
);
COMMENT ON TABLE strata.run IS 'Every Strata run: when, by whom, from which state to which, and how it ended.';

-- The applied migrations, with the SQL exactly as applied: rollbacks run the stored down SQL, so they work even
-- after the code that contained the migration is gone.
CREATE TABLE strata.migration (
    id              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    package         text NOT NULL REFERENCES strata.package (name) ON UPDATE CASCADE,
    name            text NOT NULL,
    path            text NOT NULL,
    checksum        text NOT NULL,
    up_sql          text NOT NULL,
    down_sql        text,
    no_transaction  boolean NOT NULL DEFAULT false,
    applied_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    applied_by      text NOT NULL DEFAULT current_user,
    duration_ms     double precision NOT NULL DEFAULT 0,
    strata_version  text NOT NULL,
    run_id          bigint REFERENCES strata.run (id),
    -- 'strata' when Strata ran it; later: 'baseline', 'adopted:dbmate', … when recorded without running.
    source          text NOT NULL DEFAULT 'strata',
    PRIMARY KEY (package, name)
);
COMMENT ON TABLE strata.migration IS 'Applied migrations with their checksums and the up and down SQL as applied.';

-- Append-only audit trail: every apply, revert and accepted change.
CREATE TABLE strata.migration_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint REFERENCES strata.run (id),
    package      text NOT NULL,
    name         text NOT NULL,
    action       text NOT NULL CHECK (action IN ('apply', 'revert', 'accept-change', 'refresh-down', 'record')),
    checksum     text,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms  double precision
);
CREATE INDEX ON strata.migration_log (package, name);

-- migrate:down
DROP TABLE strata.migration_log;
DROP TABLE strata.migration;
DROP TABLE strata.run;
DROP TABLE strata.package;
